"""Start-up time per distribution: from `llama stack run NAME` to the first healthy /alpha/health,
(with the CPU seconds the server had used by then, a figure load disturbs less), and to the first
answer of a chat completion, with providers started in the background (now)
and eagerly (LLAMA_STACK_EAGER_START=1: every model loaded before the port is bound, as before).

The remote distributions run against fake backends in their own processes (the test suite's fake
OpenAI-compatible server, for vLLM, TGI, Together, Fireworks and Databricks; its fake Ollama);
Bedrock has no fake server, so it is timed to healthy only, with its endpoint on a closed port.
The demo runs once first, unmeasured, so its models are cached on disk as a user's second start
finds them; its CodeShield needs semgrep-core (SEMGREP_CORE_PATH, as scripts/demo.sh sets it), or
its eager start fails. Each start gets fresh state (a new SQLITE_STORE_DIR); figures are medians.

    python -m benchmarks.bench_startup [--runs 3] [--only vllm,demo] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import httpx

from benchmarks.harness import Server, free_port, serving, stack, table

LLM = "meta-llama/Llama-3.2-3B-Instruct"
# Every model id the remote distributions' run.yamls register, so the fake serves them all.
FAKE_MODELS = (
    LLM,
    "meta-llama/Llama-Guard-3-1B",
    "meta-llama/Llama-Guard-3-8B",
    "togethercomputer/m2-bert-80M-8k-retrieval",
    "nomic-ai/nomic-embed-text-v1.5",
    "databricks-gte-large-en",
    # The names Together and Fireworks give the Llama model (the adapters' model-id maps).
    "meta-llama/Llama-3.2-3B-Instruct-Turbo",
    "accounts/fireworks/models/llama-v3p2-3b-instruct",
)
EAGER = {"LLAMA_STACK_EAGER_START": "1"}


@dataclass
class Distribution:
    name: str
    backend: str | None  # "openai", "ollama" or None (no fake: timed to healthy only)
    env: dict[str, str] = field(default_factory=dict)  # {url} stands for the fake backend's URL
    model: str = LLM


DISTRIBUTIONS = (
    Distribution("vllm", "openai", {"VLLM_URL": "{url}/v1"}),
    Distribution("tgi", "openai", {"TGI_URL": "{url}/v1"}),
    Distribution("together", "openai", {"TOGETHER_URL": "{url}/v1", "TOGETHER_API_KEY": "fake"}),
    Distribution("fireworks", "openai", {"FIREWORKS_URL": "{url}/v1", "FIREWORKS_API_KEY": "fake"}),
    Distribution(
        "databricks", "openai", {"DATABRICKS_URL": "{url}/v1", "DATABRICKS_API_TOKEN": "fake", "INFERENCE_MODEL": LLM}
    ),
    # The fake Ollama holds no guard model: SAFETY_MODEL= leaves the shield out.
    Distribution("ollama", "ollama", {"OLLAMA_URL": "{url}", "OLLAMA_PULL_MISSING_MODELS": "true", "SAFETY_MODEL": ""}),
    Distribution(
        "bedrock",
        None,
        {"BEDROCK_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    ),
    Distribution("demo", None, {}, model="SmolLM2-135M-Instruct"),
)


@dataclass
class Start:
    healthy_s: float
    cpu_s: float  # CPU seconds the server process had used when it was healthy: steadier under load
    answer_s: float | None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def backend(kind: str | None) -> Iterator[str | None]:
    """The fake backend of `kind` as a process of its own (run as a command, never imported)."""
    if kind is None:
        yield None
        return
    port = free_port()
    if kind == "openai":
        command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port), "--models", *FAKE_MODELS]
        with serving(command, port, "/fake/stats") as server:
            yield server.url
        return
    command = [sys.executable, "-m", "tests.deploy.fake_ollama"]
    with serving(command, port, "/api/tags", env={"OLLAMA_PORT": str(port)}) as server:
        yield server.url


def first_answer(server: Server, model: str, started: float) -> float | None:
    """Seconds from the spawn until a chat completion answers (it waits for a loading model)."""
    body = {
        "model_id": model,
        "messages": [{"role": "user", "content": "Say hi"}],
        "sampling_params": {"max_tokens": 4},
    }
    response = httpx.post(f"{server.url}/alpha/inference/chat-completion", json=body, timeout=600)
    if response.status_code != 200:
        print(f"  chat completion answered {response.status_code}: {response.text[:300]}", file=sys.stderr)
        return None
    return time.perf_counter() - started


def start_once(dist: Distribution, url: str | None, extra_env: dict[str, str]) -> Start:
    with tempfile.TemporaryDirectory(prefix=f"bench-startup-{dist.name}-") as state:
        env = {name: value.replace("{url}", url or "") for name, value in dist.env.items()}
        env.update(SQLITE_STORE_DIR=state, **extra_env)
        launched = time.perf_counter()
        with stack(dist.name, env=env) as server:
            cpu = cpu_seconds(server.pid)
            answer = first_answer(server, dist.model, launched) if dist.backend or dist.name == "demo" else None
            return Start(server.startup_s, cpu, answer)


def median(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.median(present):.2f}" if present else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="starts per distribution and mode (median shown)")
    parser.add_argument("--only", default="", help="comma-separated distribution names")
    parser.add_argument("--no-baseline", action="store_true", help="skip the eager starts")
    args = parser.parse_args()
    wanted = {name for name in args.only.split(",") if name}
    modes = {"background": {}} if args.no_baseline else {"eager (before)": EAGER, "background": {}}
    rows = []
    for dist in DISTRIBUTIONS:
        if wanted and dist.name not in wanted:
            continue
        with ExitStack() as stack_of_backends:
            url = stack_of_backends.enter_context(backend(dist.backend))
            if dist.name == "demo":
                start_once(dist, url, {})  # caches the demo's models on disk, as after a first run
            figures: dict[str, list[Start]] = {mode: [] for mode in modes}
            for _ in range(args.runs):
                for mode, env in modes.items():  # interleaved, so both see the same load
                    figures[mode].append(start_once(dist, url, env))
        row: list[str] = [dist.name]
        for starts in figures.values():
            row += [median([s.healthy_s for s in starts]), median([s.cpu_s for s in starts])]
            row.append(median([s.answer_s for s in starts]))
        rows.append(row)
        print("  ".join(row), file=sys.stderr, flush=True)  # each row as it comes: a full run is long
    headers = ["distribution"]
    for mode in modes:
        headers += [f"healthy s, {mode}", f"CPU s, {mode}", f"first answer s, {mode}"]
    print(table(headers, rows))
    load = os.getloadavg()
    print(
        f"median of {args.runs} starts each; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
