"""What every inference backend hands the contract suite (tests/providers/test_inference_contract.py).

Each backend module in tests/providers/backends/ exposes

    @asynccontextmanager
    async def open_backend() -> AsyncIterator[InferenceBackend]

which starts whatever the provider talks to (a tiny model, a fake Ollama server, a fake
OpenAI-compatible server, a stubbed Bedrock client), builds the provider through its real factory,
registers the models, yields, and cleans up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llama_stack.apis.models import Model

# Features a backend may claim; the suite runs a feature's cases only where it is claimed.
TOOLS = "tools"  # emits a get_weather(city="Paris") call when asked "What is the weather in Paris?"
IMAGES = "images"  # accepts image content in user messages
EMBEDDINGS = "embeddings"
LOGPROBS = "logprobs"
JSON_SCHEMA = "json_schema"  # response_format json_schema yields JSON valid under the schema


@dataclass
class InferenceBackend:
    name: str
    provider: Any  # the provider impl: the Inference methods + register_model / unregister_model
    model: Model  # a registered llm, already passed through provider.register_model
    embedding_model: Model | None = None
    features: frozenset[str] = field(default_factory=frozenset)
    # Streams the backend has open right now, when it can tell (fakes count them): lets the suite
    # prove that closing a stream early stops the work behind it.
    open_streams: Any = None  # Callable[[], int] | None
