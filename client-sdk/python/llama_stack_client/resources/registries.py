"""The registries naming what the stack serves (client.models, client.shields,
client.memory_banks), the APIs that use those resources directly (client.safety runs a shield,
client.memory fills and searches a bank), and client.inspect."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from llama_stack.apis.common import InterleavedContent
from llama_stack.apis.inspect import HealthInfo, ProviderInfo, RouteInfo
from llama_stack.apis.memory import MemoryBankDocument, QueryDocumentsResponse
from llama_stack.apis.memory_banks import (
    GraphMemoryBankParams,
    KeyValueMemoryBankParams,
    KeywordMemoryBankParams,
    MemoryBank,
    VectorMemoryBankParams,
)
from llama_stack.apis.models import Model
from llama_stack.apis.safety import RunShieldResponse
from llama_stack.apis.shields import Shield

from ..calls import Call, Resource, body, endpoint, parse_none, parser
from ..errors import NotFoundError
from .inference import MessageParam

C = TypeVar("C", covariant=True)

JsonObject = Mapping[str, Any]
BankParams = (
    VectorMemoryBankParams | KeywordMemoryBankParams | KeyValueMemoryBankParams | GraphMemoryBankParams | JsonObject
)


def found(parse: Callable[[Any], Any], what: str) -> Callable[[Any], Any]:
    """Parses a `get` answer; a null answer (older servers send one for an unknown id) is a 404."""

    def parse_found(data: Any) -> Any:
        if data is None:
            raise NotFoundError(f"{what} is not registered.", status_code=404, error_type="not_found")
        return parse(data)

    return parse_found


# Aliases, because a resource's own `list` method hides the builtin inside its class body.
ModelList = list[Model]
ShieldList = list[Shield]
MemoryBankList = list[MemoryBank]

parse_model, parse_models = parser(Model), parser(ModelList)
parse_shield, parse_shields = parser(Shield), parser(ShieldList)
parse_bank, parse_banks = parser(MemoryBank), parser(MemoryBankList)


class Models(Resource[C]):
    @endpoint
    def list(self) -> Call[ModelList]:
        return Call("GET", "/alpha/models/list", parse_models)

    @endpoint
    def retrieve(self, identifier: str) -> Call[Model]:
        """The model registered as `identifier`; NotFoundError if there is none."""
        what = f"Model '{identifier}'"
        return Call("GET", "/alpha/models/get", found(parse_model, what), query={"identifier": identifier})

    @endpoint
    def register(
        self,
        *,
        model_id: str,
        provider_model_id: str | None = None,
        provider_id: str | None = None,
        model_type: Literal["llm", "embedding"] | None = None,
        metadata: JsonObject | None = None,
    ) -> Call[Model]:
        """Serve `model_id`, backed by `provider_model_id` (default: the same name) on
        `provider_id` (default: the only provider that can serve it)."""
        fields = body(
            model_id=model_id,
            provider_model_id=provider_model_id,
            provider_id=provider_id,
            model_type=model_type,
            metadata=metadata,
        )
        return Call("POST", "/alpha/models/register", parse_model, body=fields)

    @endpoint
    def unregister(self, model_id: str) -> Call[None]:
        return Call("POST", "/alpha/models/unregister", parse_none, body={"model_id": model_id})


class Shields(Resource[C]):
    @endpoint
    def list(self) -> Call[ShieldList]:
        return Call("GET", "/alpha/shields/list", parse_shields)

    @endpoint
    def retrieve(self, identifier: str) -> Call[Shield]:
        what = f"Shield '{identifier}'"
        return Call("GET", "/alpha/shields/get", found(parse_shield, what), query={"identifier": identifier})

    @endpoint
    def register(
        self,
        *,
        shield_id: str,
        provider_shield_id: str | None = None,
        provider_id: str | None = None,
        params: JsonObject | None = None,
    ) -> Call[Shield]:
        fields = body(
            shield_id=shield_id, provider_shield_id=provider_shield_id, provider_id=provider_id, params=params
        )
        return Call("POST", "/alpha/shields/register", parse_shield, body=fields)


class MemoryBanks(Resource[C]):
    @endpoint
    def list(self) -> Call[MemoryBankList]:
        return Call("GET", "/alpha/memory-banks/list", parse_banks)

    @endpoint
    def retrieve(self, memory_bank_id: str) -> Call[MemoryBank]:
        what = f"Memory bank '{memory_bank_id}'"
        query = {"memory_bank_id": memory_bank_id}
        return Call("GET", "/alpha/memory-banks/get", found(parse_bank, what), query=query)

    @endpoint
    def register(
        self,
        *,
        memory_bank_id: str,
        params: BankParams,
        provider_id: str | None = None,
        provider_memory_bank_id: str | None = None,
    ) -> Call[MemoryBank]:
        """Create a bank; `params` says its kind, e.g. VectorMemoryBankParams(embedding_model=...,
        chunk_size_in_tokens=512)."""
        fields = body(
            memory_bank_id=memory_bank_id,
            params=params,
            provider_id=provider_id,
            provider_memory_bank_id=provider_memory_bank_id,
        )
        return Call("POST", "/alpha/memory-banks/register", parse_bank, body=fields)

    @endpoint
    def unregister(self, memory_bank_id: str) -> Call[None]:
        return Call("POST", "/alpha/memory-banks/unregister", parse_none, body={"memory_bank_id": memory_bank_id})


DocumentParam = MemoryBankDocument | Mapping[str, Any]
ProvidersByApi = dict[str, list[ProviderInfo]]
RoutesByApi = dict[str, list[RouteInfo]]

parse_shield_response = parser(RunShieldResponse)
parse_query_response = parser(QueryDocumentsResponse)
parse_health = parser(HealthInfo)
parse_providers = parser(ProvidersByApi)
parse_routes = parser(RoutesByApi)


class Safety(Resource[C]):
    @endpoint
    def run_shield(
        self, *, shield_id: str, messages: Sequence[MessageParam], params: Mapping[str, Any] | None = None
    ) -> Call[RunShieldResponse]:
        """Run a registered shield over `messages`; the response's `violation` is None when safe."""
        fields = body(shield_id=shield_id, messages=messages, params=params)
        return Call("POST", "/alpha/safety/run-shield", parse_shield_response, body=fields)


class Memory(Resource[C]):
    @endpoint
    def insert(self, *, bank_id: str, documents: Sequence[DocumentParam], ttl_seconds: int | None = None) -> Call[None]:
        """Chunk, embed and store `documents` in the bank."""
        fields = body(bank_id=bank_id, documents=documents, ttl_seconds=ttl_seconds)
        return Call("POST", "/alpha/memory/insert", parse_none, body=fields)

    @endpoint
    def query(
        self, *, bank_id: str, query: InterleavedContent, params: Mapping[str, Any] | None = None
    ) -> Call[QueryDocumentsResponse]:
        """The chunks nearest to `query`, best first, with their scores."""
        fields = body(bank_id=bank_id, query=query, params=params)
        return Call("POST", "/alpha/memory/query", parse_query_response, body=fields)


class Inspect(Resource[C]):
    @endpoint
    def health(self) -> Call[HealthInfo]:
        return Call("GET", "/alpha/health", parse_health)

    @endpoint
    def providers(self) -> Call[ProvidersByApi]:
        """The providers serving each API: {"inference": [ProviderInfo, ...], ...}."""
        return Call("GET", "/alpha/providers/list", parse_providers)

    @endpoint
    def routes(self) -> Call[RoutesByApi]:
        """The routes the server exposes, grouped by API."""
        return Call("GET", "/alpha/routes/list", parse_routes)
