"""`llama stack run demo` as a real subprocess, driven by raw HTTP and the official client.

The demo serves SmolLM2-135M-Instruct, a real (small) instruct model: with greedy decoding its
answers are deterministic, so the tests assert them. The tiny random Llama 3 beside it proves
only mechanics (Llama 3 prompts, streaming, completion), never text.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from tests.providers.transformers_support import gguf_test_cache_dir
from tests.servers import free_port

LLAMA = str(Path(sys.executable).with_name("llama"))
SMOL = "SmolLM2-135M-Instruct"
REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def semgrep_core() -> str:
    """The semgrep-core the demo's CodeShield runs: on PATH (scripts/test.sh puts it there), or
    in the venv scripts/install-codeshield.sh makes."""
    found = shutil.which("semgrep-core") or next(
        (str(path) for path in REPO.glob(".venv-semgrep/lib/python3*/site-packages/semgrep/bin/semgrep-core")), None
    )
    if found is None or importlib.util.find_spec("codeshield") is None:
        pytest.skip("the demo's shield needs codeshield and semgrep-core: bash scripts/install-codeshield.sh")
    return found


USE = "universal-sentence-encoder-multilingual-3"  # the demo's first embedding model


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {**os.environ, "SQLITE_STORE_DIR": str(state), "HF_HUB_OFFLINE": "1", "SEMGREP_CORE_PATH": semgrep_core()}
    env.setdefault("LLAMA_TINY_MODEL_DIR", str(tmp_path_factory.getbasetemp() / "tiny-models"))
    env.setdefault("LLAMA_GGUF_CACHE_DIR", str(gguf_test_cache_dir()))  # shared: converting takes a minute
    # The log goes to a file: a pipe nobody reads fills up and blocks the server mid-write.
    log = state / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [LLAMA, "stack", "run", "demo", "--port", str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # a first start dequantizes SmolLM2 on a busy CPU
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/alpha/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server did not become healthy in 300 s")
        time.sleep(0.2)
    yield base_url
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)  # generous: the machine running the suite may be busy
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"the server did not stop within 60 s of SIGTERM:\n{log.read_text()[-3000:]}") from None
    assert code == 0, f"the server must shut down cleanly on SIGTERM:\n{log.read_text()[-3000:]}"


def test_curl_style_requests(demo: str) -> None:
    models = httpx.get(f"{demo}/alpha/models/list").json()
    assert {m["identifier"]: m["model_type"] for m in models} == {
        SMOL: "llm",
        "tiny-random-llama-3": "llm",
        "all-MiniLM-L6-v2": "embedding",
        USE: "embedding",
    }
    response = httpx.post(
        f"{demo}/alpha/inference/chat-completion",
        json={"model_id": SMOL, "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        timeout=60,
    )
    assert response.status_code == 200
    message = response.json()["completion_message"]
    assert message["content"] == "The capital of France is Paris."
    assert message["stop_reason"] == "end_of_turn"  # SmolLM2's own <|im_end|>, not a Llama 3 token

    response = httpx.post(
        f"{demo}/alpha/inference/chat-completion",
        json={
            "model_id": "tiny-random-llama-3",
            "messages": [{"role": "user", "content": "Hello"}],
            "sampling_params": {"strategy": "greedy", "max_tokens": 8},
        },
        timeout=60,
    )
    assert response.status_code == 200
    message = response.json()["completion_message"]
    assert message["role"] == "assistant" and message["stop_reason"] in {"out_of_tokens", "end_of_turn"}


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is the capital of France?", "Paris"),
        ("What is 2+2?", "4"),
        ("Who wrote Hamlet?", "Shakespeare"),
    ],
)
def test_the_demo_model_answers_simple_questions(demo: str, question: str, expected: str) -> None:
    client = LlamaStackClient(base_url=demo, timeout=60)
    messages: Any = [{"role": "user", "content": question}]
    params: Any = {"strategy": "greedy", "max_tokens": 32}
    whole = client.inference.chat_completion(model_id=SMOL, messages=messages, sampling_params=params)
    assert expected in str(whole.completion_message.content)
    chunks = list(
        client.inference.chat_completion(model_id=SMOL, messages=messages, sampling_params=params, stream=True)
    )
    assert "".join(str(c.event.delta) for c in chunks) == whole.completion_message.content
    assert len([c for c in chunks if c.event.delta]) > 2, "the answer streams token by token"


def test_the_demo_model_completes_text(demo: str) -> None:
    client = LlamaStackClient(base_url=demo, timeout=60)
    completion = client.inference.completion(
        model_id=SMOL, content="The capital of France is", sampling_params={"strategy": "greedy", "max_tokens": 4}
    )
    assert completion.content.strip().startswith("Paris")


def test_official_client_against_the_demo(demo: str) -> None:
    client = LlamaStackClient(base_url=demo, timeout=60)
    assert {m.identifier for m in client.models.list()} == {SMOL, "tiny-random-llama-3", "all-MiniLM-L6-v2", USE}

    params = {"strategy": "greedy", "max_tokens": 12}
    messages = [{"role": "user", "content": "Tell me about llamas"}]
    whole = client.inference.chat_completion(model_id="tiny-random-llama-3", messages=messages, sampling_params=params)
    chunks = list(
        client.inference.chat_completion(
            model_id="tiny-random-llama-3", messages=messages, sampling_params=params, stream=True
        )
    )
    assert chunks[0].event.event_type == "start" and chunks[-1].event.event_type == "complete"
    assert "".join(c.event.delta for c in chunks) == whole.completion_message.content
    assert chunks[-1].event.stop_reason == whole.completion_message.stop_reason

    completion = client.inference.completion(
        model_id="tiny-random-llama-3",
        content="Once upon a time",
        sampling_params={"strategy": "greedy", "max_tokens": 5},
    )
    assert completion.stop_reason == "out_of_tokens"
    streamed = list(
        client.inference.completion(
            model_id="tiny-random-llama-3",
            content="Once upon a time",
            sampling_params={"strategy": "greedy", "max_tokens": 5},
            stream=True,
        )
    )
    assert "".join(c.delta for c in streamed) == completion.content

    vectors = client.inference.embeddings(
        model_id="all-MiniLM-L6-v2", contents=["a llama grazes", "an alpaca eats grass", "tax law"]
    )
    assert [len(v) for v in vectors.embeddings] == [384, 384, 384]


def test_a_bad_run_yaml_exits_1_naming_the_key(tmp_path: Path) -> None:
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        "version: 2\nimage_name: broken\nproviders:\n  inference:\n"
        "  - provider_id: x\n    provider_type: inline::transformers\n    config:\n      device: toaster\n"
    )
    result = subprocess.run([LLAMA, "stack", "run", str(run_yaml)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "providers.inference[0].config.device" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_official_agent_helper_answers_from_a_memory_bank_on_the_demo(demo: str) -> None:
    """A multi-turn session through the official Agent helper, with retrieval from a FAISS bank
    over real MiniLM embeddings. The first answer names a llama the model cannot know from its
    training: it comes from the bank. Sessions persist and read back afterwards."""
    from llama_stack_client.lib.agents.agent import Agent
    from llama_stack_client.lib.agents.event_logger import EventLogger

    client = LlamaStackClient(base_url=demo, timeout=120)
    client.memory_banks.register(
        memory_bank_id="llama-facts",
        params={"memory_bank_type": "vector", "embedding_model": "all-MiniLM-L6-v2", "chunk_size_in_tokens": 128},
    )
    client.memory.insert(
        bank_id="llama-facts",
        documents=[
            {"document_id": "pet", "content": "Zorblat is the name of the demo team's pet llama.", "metadata": {}},
            {"document_id": "wool", "content": "Llama wool is soft and lanolin-free.", "metadata": {}},
            {"document_id": "tax", "content": "Income tax is due in April.", "metadata": {}},
        ],
    )
    config: Any = {
        "model": SMOL,
        "instructions": "You are a helpful assistant. Answer from the documents given.",
        "enable_session_persistence": True,
        "max_infer_iters": 2,
        "sampling_params": {"strategy": "greedy", "max_tokens": 48},
        "tools": [
            {
                "type": "memory",
                "memory_bank_configs": [{"bank_id": "llama-facts", "type": "vector"}],
                "query_generator_config": {"type": "default", "sep": " "},
                "max_tokens_in_context": 512,
                "max_chunks": 1,
            }
        ],
    }
    agent: Any = Agent(client, config)  # the 0.0.63 stubs type its ids as int
    session_id = agent.create_session("demo-rag")
    turns = [("What is the name of the demo team's pet llama?", "Zorblat"), ("Is llama wool soft?", "lanolin-free")]
    for index, (question, retrieved) in enumerate(turns):
        events = list(agent.create_turn(messages=[{"role": "user", "content": question}], session_id=session_id))
        logger: Any = EventLogger()
        assert list(logger.log(iter(events)))  # the official logger understands every event
        turn = events[-1].event.payload.turn
        retrieval = [step for step in turn.steps if step.step_type == "memory_retrieval"]
        assert retrieval and retrieved in str(retrieval[0].inserted_context)
        assert "Income tax" not in str(retrieval[0].inserted_context)
        if index == 0:
            assert "Zorblat" in str(turn.output_message.content)
    session = client.agents.session.retrieve(agent_id=agent.agent_id, session_id=session_id)
    assert len(session.turns) == 2


def test_the_readme_examples_print_real_answers(demo: str) -> None:
    """The README's `Use it` Python examples, run as written against the demo."""
    section = README.read_text().split("## Use it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 3
    printed = []
    for block in blocks:
        code = block.replace("http://localhost:5000", demo)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        printed.append(result.stdout)
    assert printed[0] == "The capital of France is Paris."
    assert "Zorblat" in printed[1]
    assert "Paris" in printed[2]  # the same model through the openai SDK's Responses API


def test_the_demo_shield_flags_insecure_code(demo: str) -> None:
    """No guard weights ship with the demo: its shield is CodeShield, running real semgrep rules."""
    client = LlamaStackClient(base_url=demo, timeout=60)
    assert [shield.identifier for shield in client.shields.list()] == ["code_scanner"]
    insecure = (
        "```python\nimport hashlib\n\ndef digest(password):\n    return hashlib.md5(password.encode()).hexdigest()\n```"
    )
    flagged = client.safety.run_shield(
        shield_id="code_scanner", messages=[{"role": "user", "content": insecure}], params={}
    )
    assert flagged.violation is not None and flagged.violation.violation_level == "error"
    clean = client.safety.run_shield(
        shield_id="code_scanner", messages=[{"role": "user", "content": "What is the capital of France?"}], params={}
    )
    assert clean.violation is None


def test_llama_guard_joins_the_demo_when_safety_model_names_a_guard() -> None:
    from llama_stack.distribution.spec import load_run_config
    from llama_stack.distribution.templates import get_template

    run_yaml = get_template("demo").run_yaml
    plain = load_run_config(run_yaml, env={})
    assert [shield.shield_id for shield in plain.shields] == ["code_scanner"]
    guarded = load_run_config(run_yaml, env={"SAFETY_MODEL": "/weights/Llama-Guard-3-1B"})
    assert [(s.shield_id, s.provider_id, s.params) for s in guarded.shields][1:] == [
        ("/weights/Llama-Guard-3-1B", "llama-guard", {"text_model": "/weights/Llama-Guard-3-1B"})
    ]
    guard = next(model for model in guarded.models if model.model_id == "/weights/Llama-Guard-3-1B")
    assert (guard.provider_id, guard.provider_model_id) == ("transformers", "/weights/Llama-Guard-3-1B")


def test_the_openai_surface_on_the_demo(demo: str) -> None:
    """The official openai SDK against the demo: responses answered by SmolLM2 (greedy), a file in
    a vector store, a conversation, and moderations by the demo's only shield (no Llama Guard
    ships with it, and moderations say so). A 135M model seldom calls tools when told to, so
    file_search through responses is proven on the vllm distribution instead."""
    import openai

    client = openai.OpenAI(base_url=f"{demo}/v1", api_key="none", max_retries=0, timeout=120)
    answer = client.responses.create(model=SMOL, input="What is the capital of France?", temperature=0)
    assert answer.status == "completed" and "Paris" in answer.output_text

    note = client.files.create(
        file=("zorblat.txt", b"The keeper of the lighthouse is called Zorblat."), purpose="assistants"
    )
    store = client.vector_stores.create(name="lighthouse", file_ids=[note.id])
    assert (
        client.vector_stores.search(vector_store_id=store.id, query="lighthouse keeper").data[0].filename
        == "zorblat.txt"
    )
    conversation = client.conversations.create()
    events = list(
        client.responses.create(
            model=SMOL, input="Say hello.", conversation=conversation.id, stream=True, max_output_tokens=16
        )
    )
    assert events[-1].type == "response.completed"
    assert len(client.conversations.items.list(conversation.id).data) == 2

    insecure = "import hashlib\n\ndef digest(password):\n    return hashlib.md5(password.encode()).hexdigest()\n"
    # A vector store made without an embedding model embeds with the multilingual one the demo
    # registers first: German and French questions find the English document that answers them.
    documents = {
        "bees.txt": b"Honey bees pollinate fruit trees and live in hives of up to sixty thousand workers.",
        "tides.txt": b"Tides rise and fall twice a day, pulled by the gravity of the moon and the sun.",
        "bread.txt": b"Sourdough bread rises slowly because wild yeast ferments the dough overnight.",
    }
    files = [client.files.create(file=(name, text), purpose="assistants").id for name, text in documents.items()]
    shelf = client.vector_stores.create(name="multilingual", file_ids=files)
    for question, expected in [
        ("Wie viele Arbeiterinnen leben in einem Bienenstock?", "bees.txt"),
        ("Pourquoi la mer monte-t-elle deux fois par jour ?", "tides.txt"),
        ("¿Por qué el pan de masa madre sube despacio?", "bread.txt"),
    ]:
        assert client.vector_stores.search(vector_store_id=shelf.id, query=question).data[0].filename == expected

    moderation = client.moderations.create(model="code_scanner", input=insecure)
    assert moderation.results[0].flagged
    with pytest.raises(openai.BadRequestError, match="SAFETY_MODEL"):
        client.moderations.create(input="hello")
