"""The agent loop's own cost, over a scripted model with a fixed latency per inference call:
per turn and per step (events, persistence of every step, history, shields), and the code
sandbox's start-up cost under bubblewrap and the restricted subprocess.

    python -m benchmarks.bench_agents [--latency-ms 50] [--turns 20] [--tool-steps 4] [--runs 20]

Overhead = wall time of a turn - (inference calls x latency). The state lives in a temporary
SQLite kvstore, as in the default config.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import percentile
from llama_stack.apis.agents import CodeInterpreterToolDefinition, SearchToolDefinition
from llama_stack.apis.errors import ProviderError
from llama_stack.distribution.provider import Api
from llama_stack.providers.agents.tools.config import SandboxConfig
from llama_stack.providers.agents.tools.sandbox import SYSTEM_PYTHONS, Isolation, Sandbox
from tests.providers.agents.fakes import SHIELD, call, install, new_session, run_config, run_turn, running, say, user


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


async def timed_turns(agents: Any, llm: Any, turns: int, script: list[Any], **agent: Any) -> list[float]:
    """Wall time of each turn of one session; `script` is replayed before every turn."""
    agent_id, session_id = await new_session(agents, **agent)
    walls = []
    for n in range(turns):
        llm.will(*script)
        started = time.perf_counter()
        await run_turn(agents, agent_id, session_id, user(f"question {n}"))
        walls.append(time.perf_counter() - started)
    return walls


def report(name: str, walls: list[float], inference_calls: int, steps: int, latency: float) -> None:
    overheads = [wall - inference_calls * latency for wall in walls]
    median = statistics.median(overheads)
    print(
        f"{name:<38} wall {ms(statistics.median(walls))}  overhead/turn {ms(median)}  "
        f"overhead/step {ms(median / steps)}  (turn 1 {ms(overheads[0])}, turn {len(walls)} {ms(overheads[-1])})"
    )


async def loop_overhead(latency: float, turns: int, tool_steps: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        config = run_config(Path(state), llm={"latency_s": latency})
        async with running(config) as stack:
            agents, llm = stack.routers[Api.agents], stack.models.providers["llm"]
            print(f"scripted inference latency {latency * 1000:.0f} ms per call; {turns} turns per session\n")
            walls = await timed_turns(agents, llm, turns, [say("a short answer of several words")])
            report("text answer (1 step)", walls, 1, 1, latency)
            shields = {"input_shields": [SHIELD], "output_shields": [SHIELD]}
            walls = await timed_turns(agents, llm, turns, [say("a short answer of several words")], **shields)
            report("with input+output shields (3 steps)", walls, 1, 3, latency)
            # brave_search without an API key answers at once ("no API key"): the tool step costs
            # only the loop.
            script = [call("brave_search", call_id=f"c{i}", query="x") for i in range(tool_steps)] + [say("done")]
            walls = await timed_turns(agents, llm, turns, script, tools=[SearchToolDefinition()])
            steps = 2 * tool_steps + 1
            report(f"{tool_steps} tool calls ({steps} steps)", walls, tool_steps + 1, steps, latency)
            code = [call("code_interpreter", code="print(1)"), say("done")]
            walls = await timed_turns(agents, llm, max(turns // 4, 3), code, tools=[CodeInterpreterToolDefinition()])
            report("code_interpreter call (3 steps)", walls, 2, 3, latency)


def installed_pythons() -> list[str]:
    return [python for python in (sys.executable, *SYSTEM_PYTHONS) if os.path.exists(python)]


async def sandbox_startup(runs: int) -> None:
    print("\ncode sandbox: wall time of running `pass`, interpreter start-up included")
    for python in installed_pythons():
        for isolation in Isolation:
            sandbox = Sandbox(SandboxConfig(isolation=isolation.value, python=python))
            label = f"{isolation.value:<11} {python:<30}"
            try:
                await sandbox.plan()
            except ProviderError:
                print(f"{label} cannot run as the sandbox user here")
                continue
            await sandbox.run("pass")  # warm the page cache
            walls = [(await sandbox.run("pass"))[1].duration_s for _ in range(runs)]
            print(f"{label} median {ms(statistics.median(walls))}  p90 {ms(percentile(walls, 0.9))}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--tool-steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    install()
    await loop_overhead(args.latency_ms / 1000, args.turns, args.tool_steps)
    await sandbox_startup(args.runs)


if __name__ == "__main__":
    asyncio.run(main())
