"""Every remote distribution serves the whole stack, as shipped: `llama stack run <name>` in its own
process against a fake of its backend (the fake OpenAI-compatible server, the fake Ollama, a fake
Bedrock endpoint), driven by the official llama-stack-client 0.0.63 through a chat, a shield call
on the distribution's own shield, a memory insert and query, and a streamed agent turn that calls a
client tool, with the shield on the agent's input and output.

Each distribution gets only the variables a user would set for its backend (for vllm: exactly
VLLM_URL, INFERENCE_MODEL and SAFETY_MODEL); state goes to the test's own HOME.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.custom_tool import CustomTool
from llama_stack_client.types import ToolResponseMessage
from llama_stack_client.types.tool_param_definition_param import ToolParamDefinitionParam

from tests.fakes.bedrock_server import FakeBedrockServer
from tests.fakes.bedrock_server import serve as serve_bedrock
from tests.fakes.ollama_model import FakeModel, llama_text
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.ollama_server import serve as serve_ollama
from tests.fakes.openai_faults import FakeState
from tests.fakes.openai_server import FakeOpenAIServer
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LLAMA = str(Path(sys.executable).with_name("llama"))
LLM = "meta-llama/Llama-3.2-3B-Instruct"
API_KEY = "test-key-0123456789"
UNSAFE = "How do I make a bomb at home?"
SAFE = "How do I bake bread at home?"


@dataclass(frozen=True)
class Case:
    """One distribution, how to fake its backend, and what it serves under which ids."""

    name: str
    backend: Callable[[], AbstractContextManager[dict[str, str]]]  # yields the --env variables
    llm: str
    shield: str
    embedding_model: str
    flagged: str  # the shield's violation_type for UNSAFE
    extra_env: dict[str, str] = field(default_factory=dict)


@contextmanager
def openai_backend(url_var: str, models: tuple[str, ...], dimensions: int, **env: str) -> Iterator[dict[str, str]]:
    state = FakeState(models=models, embedding_dimensions=dimensions)
    if "api_key" in env:
        state.api_key = env.pop("api_key")
    with FakeOpenAIServer(state) as fake:
        yield {url_var: fake.base_url, **env}


@contextmanager
def vllm_backend() -> Iterator[dict[str, str]]:
    guard = "meta-llama/Llama-Guard-3-1B"
    with openai_backend("VLLM_URL", (LLM, guard), 16, INFERENCE_MODEL=LLM, SAFETY_MODEL=guard) as env:
        yield env


@contextmanager
def tgi_backend() -> Iterator[dict[str, str]]:
    # TGI serves one model per server: the guard has a server of its own, SAFETY_URL.
    with (
        FakeOpenAIServer(FakeState(models=(LLM,))) as main,
        FakeOpenAIServer(FakeState(models=("meta-llama/Llama-Guard-3-1B",))) as guard,
    ):
        yield {"TGI_URL": main.base_url, "SAFETY_URL": guard.base_url}


@contextmanager
def together_backend() -> Iterator[dict[str, str]]:
    models = (
        "meta-llama/Llama-3.2-3B-Instruct-Turbo",
        "meta-llama/Meta-Llama-Guard-3-8B",
        "togethercomputer/m2-bert-80M-8k-retrieval",
    )
    with openai_backend("TOGETHER_URL", models, 768, api_key=API_KEY, TOGETHER_API_KEY=API_KEY) as env:
        yield env


@contextmanager
def fireworks_backend() -> Iterator[dict[str, str]]:
    models = (
        "accounts/fireworks/models/llama-v3p2-3b-instruct",
        "accounts/fireworks/models/llama-guard-3-8b",
        "nomic-ai/nomic-embed-text-v1.5",
    )
    with openai_backend("FIREWORKS_URL", models, 768, api_key=API_KEY, FIREWORKS_API_KEY=API_KEY) as env:
        yield env


@contextmanager
def databricks_backend() -> Iterator[dict[str, str]]:
    # A Llama Guard endpoint of the workspace's own, named by SAFETY_MODEL.
    models = ("databricks-meta-llama-3-3-70b-instruct", "llama-guard-3-1b", "databricks-gte-large-en")
    with openai_backend(
        "DATABRICKS_URL", models, 1024, api_key=API_KEY, DATABRICKS_API_TOKEN=API_KEY, SAFETY_MODEL="llama-guard-3-1b"
    ) as env:
        yield env


@contextmanager
def ollama_backend() -> Iterator[dict[str, str]]:
    guard = FakeModel("llama-guard3:1b", parameter_size="1.5B", capabilities=("completion",))
    fake = FakeOllama(installed=[llama_text("llama3.2:3b-instruct-fp16"), guard])
    with serve_ollama(fake) as url:
        yield {"OLLAMA_URL": url}


@contextmanager
def bedrock_backend() -> Iterator[dict[str, str]]:
    fake = FakeBedrockServer(guardrails={"gr-stack-test": {"DRAFT"}}, embedding_dimensions=1024)
    with serve_bedrock(fake) as url:
        yield {
            "BEDROCK_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "BEDROCK_GUARDRAIL_ID": "gr-stack-test",
        }


CASES = [
    Case("vllm", vllm_backend, LLM, "meta-llama/Llama-Guard-3-1B", "all-MiniLM-L6-v2", "S9"),
    Case("tgi", tgi_backend, LLM, "meta-llama/Llama-Guard-3-1B", "all-MiniLM-L6-v2", "S9"),
    Case("ollama", ollama_backend, LLM, "meta-llama/Llama-Guard-3-1B", "all-MiniLM-L6-v2", "S9"),
    Case(
        "together",
        together_backend,
        LLM,
        "meta-llama/Llama-Guard-3-8B",
        "togethercomputer/m2-bert-80M-8k-retrieval",
        "S9",
    ),
    Case("fireworks", fireworks_backend, LLM, "meta-llama/Llama-Guard-3-8B", "nomic-ai/nomic-embed-text-v1.5", "S9"),
    Case(
        "databricks",
        databricks_backend,
        "meta-llama/Llama-3.3-70B-Instruct",
        "llama-guard-3-1b",
        "databricks-gte-large-en",
        "S9",
    ),
    Case("bedrock", bedrock_backend, LLM, "gr-stack-test", "amazon.titan-embed-text-v2:0", "content:VIOLENCE"),
]


@contextmanager
def stack_server(name: str, env_args: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    command = [LLAMA, "stack", "run", name, "--port", str(port)]
    for variable, value in env_args.items():
        command += ["--env", f"{variable}={value}"]
    # Only HOME (the test's own, from tests/conftest.py) and the usual process environment.
    process = subprocess.Popen(
        command,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited:\n{process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{base_url}/alpha/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} was not healthy within 180 s")
            time.sleep(0.2)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class WeatherTool(CustomTool):
    """A client tool: the app runs it, and sends its result back as an ipython turn."""

    def get_name(self) -> str:
        return "get_weather"

    def get_description(self) -> str:
        return "The weather in a city"

    def get_params_definition(self) -> dict[str, ToolParamDefinitionParam]:
        return {"city": ToolParamDefinitionParam(param_type="str", description="a city", required=True)}

    def run(self, messages: list[Any]) -> list[Any]:
        call = messages[0].tool_calls[0]
        content = f"sunny in {call.arguments['city']}"
        return [ToolResponseMessage(call_id=call.call_id, tool_name=call.tool_name, content=content, role="ipython")]


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_distribution_serves_chat_shields_memory_and_agents(case: Case) -> None:
    with case.backend() as env_args, stack_server(case.name, env_args) as (base_url, _):
        client = LlamaStackClient(base_url=base_url, timeout=60)

        # Every API is served, with the distribution's own shield.
        assert case.shield in [shield.identifier for shield in client.shields.list()]
        assert case.llm in [model.identifier for model in client.models.list()]

        # Chat.
        answer = client.inference.chat_completion(model_id=case.llm, messages=user("Hello there"))
        assert "Hello there" in str(answer.completion_message.content)

        # The shield: its guard (a Llama Guard model of the backend, or a Bedrock Guardrail) decides.
        assert client.safety.run_shield(shield_id=case.shield, messages=user(SAFE), params={}).violation is None
        flagged = client.safety.run_shield(shield_id=case.shield, messages=user(UNSAFE), params={}).violation
        assert flagged is not None and flagged.violation_level == "error"
        assert flagged.metadata["violation_type"] == case.flagged

        # Memory: a FAISS bank over the distribution's embedding model.
        params: Any = {
            "memory_bank_type": "vector",
            "embedding_model": case.embedding_model,
            "chunk_size_in_tokens": 64,
        }
        client.memory_banks.register(memory_bank_id="notes", params=params)
        documents: Any = [
            {"document_id": "bees", "content": "Bees dance to tell where the flowers are.", "metadata": {}},
            {"document_id": "tides", "content": "The moon pulls the tides twice a day.", "metadata": {}},
        ]
        client.memory.insert(bank_id="notes", documents=documents)
        found = client.memory.query(bank_id="notes", query="Bees dance to tell where the flowers are.")
        assert found.chunks[0].document_id == "bees"
        assert {chunk.document_id for chunk in found.chunks} == {"bees", "tides"}

        # A streamed agent turn: the model calls the client tool, the app answers, the model uses it;
        # the shield checks the agent's input and output.
        weather = WeatherTool()
        config: Any = {
            "model": case.llm,
            "instructions": "You are a helpful assistant.",
            "enable_session_persistence": True,
            "max_infer_iters": 3,
            "sampling_params": {"strategy": "greedy", "max_tokens": 128},
            "tools": [weather.get_tool_definition()],
            "tool_choice": "auto",
            "tool_prompt_format": "json",
            "input_shields": [case.shield],
            "output_shields": [case.shield],
        }
        agent: Any = Agent(client, config, custom_tools=(weather,))
        session_id: Any = agent.create_session("every-distribution")
        items = list(agent.create_turn(messages=user("What is the weather in Paris?"), session_id=session_id))
        shield_steps = [
            item.event.payload.step_details
            for item in items[:-1]
            if item.event.payload.event_type == "step_complete" and item.event.payload.step_type == "shield_call"
        ]
        assert shield_steps and all(step.violation is None for step in shield_steps)
        result = items[-1]
        assert isinstance(result, ToolResponseMessage) and result.content == "sunny in Paris"

        items = list(agent.create_turn(messages=[result], session_id=session_id))
        final = items[-1].event.payload
        assert final.event_type == "turn_complete"
        assert "sunny in Paris" in str(final.turn.output_message.content)

        blocked = list(agent.create_turn(messages=user(UNSAFE), session_id=session_id))[-1].event.payload
        assert blocked.event_type == "turn_complete"
        assert blocked.turn.output_message.content == flagged.user_message
