"""The /alpha face, route for route as the Llama Stack v0.0.63 server and its official client
expect them. Handlers only parse, call a router and serialise; they never know providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from llama_stack.apis.agents import (
    CreateAgentRequest,
    CreateSessionRequest,
    CreateTurnRequest,
    DeleteAgentRequest,
    GetSessionRequest,
    SessionRef,
    StepRef,
    TurnRef,
)
from llama_stack.apis.errors import NotFound, NotImplementedYet
from llama_stack.apis.inference import ChatCompletionRequest, CompletionRequest, EmbeddingsRequest
from llama_stack.apis.inspect import HealthInfo, ProviderInfo
from llama_stack.apis.memory import InsertDocumentsRequest, QueryDocumentsRequest
from llama_stack.apis.memory_banks import RegisterMemoryBankRequest, UnregisterMemoryBankRequest
from llama_stack.apis.models import RegisterModelRequest, UnregisterModelRequest
from llama_stack.apis.safety import RunShieldRequest
from llama_stack.apis.shields import RegisterShieldRequest
from llama_stack.distribution.guardrails import guarded_chat
from llama_stack.distribution.provider import Api
from llama_stack.distribution.request_context import current_caller
from llama_stack.distribution.resolver import Stack
from llama_stack.server.params import JsonBodyRoute, json_response, query_and_body
from llama_stack.server.sse import sse_response

# API families the v0.0.63 client knows that this stack does not serve: answered 501, not 404.
UNSERVED_FAMILIES = (
    "batch-inference",
    "datasetio",
    "datasets",
    "eval",
    "eval-tasks",
    "post-training",
    "scoring",
    "scoring-functions",
    "synthetic-data-generation",
    "telemetry",
)


Handler = Callable[[Request], Awaitable[Response]]


def found(value: Any, what: str) -> Any:
    if value is None:
        raise NotFound(f"{what} is not registered.")
    return value


def llama_router(stack: Stack) -> APIRouter:
    router = APIRouter(prefix="/alpha", route_class=JsonBodyRoute)
    apis = stack.faces  # an API the distribution does not serve answers 501 naming what to add
    keys_on = bool(stack.config.server.auth and stack.config.server.auth.keys)

    def get_and_post(path: str) -> Callable[[Handler], Handler]:
        """One handler for GET and POST, as two routes so that each method has its own OpenAPI
        operation id (the v0.0.63 client sends some reads as GET with a query, some as POST)."""

        def register(handler: Handler) -> Handler:
            for method in ("GET", "POST"):
                router.add_api_route(path, handler, methods=[method], name=f"{handler.__name__}_{method.lower()}")
            return handler

        return register

    @router.post("/inference/chat-completion")
    async def chat_completion(request: ChatCompletionRequest) -> Response:
        # Shields asked for in the body's `guardrails` field wrap the call (docs/safety.md).
        inference = apis[Api.inference]
        chat = inference if request.guardrails is None else await guarded_chat(stack, inference, request.guardrails)
        if request.stream:
            return await sse_response(chat.chat_completion_stream(request))
        return json_response(await chat.chat_completion(request))

    @router.post("/inference/completion")
    async def completion(request: CompletionRequest) -> Response:
        if request.stream:
            return await sse_response(apis[Api.inference].completion_stream(request))
        return json_response(await apis[Api.inference].completion(request))

    @router.post("/inference/embeddings")
    async def embeddings(request: EmbeddingsRequest) -> Response:
        return json_response(await apis[Api.inference].embeddings(request))

    @router.post("/safety/run-shield")
    async def run_shield(request: RunShieldRequest) -> Response:
        return json_response(await apis[Api.safety].run_shield(request))

    @router.post("/memory/insert")
    async def memory_insert(request: InsertDocumentsRequest) -> Response:
        await apis[Api.memory].insert_documents(request)
        return json_response(None)

    @router.post("/memory/query")
    async def memory_query(request: QueryDocumentsRequest) -> Response:
        return json_response(await apis[Api.memory].query_documents(request))

    # Registries -------------------------------------------------------------------------------
    @router.get("/models/list")
    async def models_list() -> Response:
        return json_response(await stack.models.list_models())

    @router.get("/models/get")
    async def models_get(identifier: str = Query(min_length=1)) -> Response:
        return json_response(await stack.models.get_usable(identifier))

    @router.post("/models/register")
    async def models_register(request: RegisterModelRequest) -> Response:
        return json_response(await stack.models.register_model(request))

    @router.post("/models/unregister")
    async def models_unregister(request: UnregisterModelRequest) -> Response:
        await stack.models.unregister_model(request.model_id)
        return json_response(None)

    @router.get("/shields/list")
    async def shields_list() -> Response:
        return json_response(await stack.shields.list_shields())

    @router.get("/shields/get")
    async def shields_get(identifier: str = Query(min_length=1)) -> Response:
        return json_response(await stack.shields.get(identifier))

    @router.post("/shields/register")
    async def shields_register(request: RegisterShieldRequest) -> Response:
        return json_response(await stack.shields.register_shield(request))

    @router.get("/memory-banks/list")
    async def banks_list() -> Response:
        return json_response(await stack.memory_banks.list_memory_banks())

    @router.get("/memory-banks/get")
    async def banks_get(memory_bank_id: str = Query(min_length=1)) -> Response:
        return json_response(await stack.memory_banks.get(memory_bank_id))

    @router.post("/memory-banks/register")
    async def banks_register(request: RegisterMemoryBankRequest) -> Response:
        return json_response(await stack.memory_banks.register_memory_bank(request))

    @router.post("/memory-banks/unregister")
    async def banks_unregister(request: UnregisterMemoryBankRequest) -> Response:
        await stack.memory_banks.unregister_memory_bank(request.memory_bank_id)
        return json_response(None)

    # Agents -----------------------------------------------------------------------------------
    @router.post("/agents/create")
    async def agents_create(request: CreateAgentRequest) -> Response:
        return json_response(await apis[Api.agents].create_agent(request))

    @router.post("/agents/delete")
    async def agents_delete(request: DeleteAgentRequest) -> Response:
        await apis[Api.agents].delete_agent(request.agent_id)
        return json_response(None)

    @router.post("/agents/session/create")
    async def session_create(request: CreateSessionRequest) -> Response:
        return json_response(await apis[Api.agents].create_session(request))

    @get_and_post("/agents/session/get")
    async def session_get(request: Request) -> Response:
        params = await query_and_body(request, GetSessionRequest, lists=("turn_ids",))
        return json_response(await apis[Api.agents].get_session(params))

    @router.post("/agents/session/delete")
    async def session_delete(request: Request) -> Response:
        await apis[Api.agents].delete_session(await query_and_body(request, SessionRef))
        return json_response(None)

    @router.post("/agents/turn/create")
    async def turn_create(request: CreateTurnRequest) -> Response:
        events = apis[Api.agents].create_turn(request)
        if request.stream:
            return await sse_response(events)
        final = None
        async for chunk in events:
            final = chunk
        payload = getattr(final.event.payload, "turn", None) if final is not None else None
        return json_response(payload)

    @get_and_post("/agents/turn/get")
    async def turn_get(request: Request) -> Response:
        return json_response(await apis[Api.agents].get_turn(await query_and_body(request, TurnRef)))

    @get_and_post("/agents/step/get")
    async def step_get(request: Request) -> Response:
        return json_response(await apis[Api.agents].get_step(await query_and_body(request, StepRef)))

    # Inspect ----------------------------------------------------------------------------------
    @router.get("/health")
    async def health(detail: bool = False) -> Response:
        # 200 with status "OK" while the server answers, as before. While a provider is still
        # loading in the background or failed to start (or with ?detail=true), `ready` and
        # `providers` say how each one stands. A provider that failed to start makes it a 503, so
        # a container's or orchestrator's health check sees the server as broken.
        # Without a valid key on a server with keys, the state alone: provider ids and start errors
        # describe the deployment, which is no business of an unauthenticated caller.
        report = stack.health()
        status_code = 503 if report.status == "Error" else 200
        if report.ready and not detail:
            return json_response(HealthInfo(status=report.status))
        if keys_on and current_caller() is None:
            return json_response(report.model_dump(exclude={"providers"}), status_code=status_code)
        return json_response(report, status_code=status_code)

    @router.get("/providers/list")
    async def providers_list() -> Response:
        listing: dict[str, list[ProviderInfo]] = {}
        for provider in stack.providers:
            info = ProviderInfo(provider_id=provider.provider_id, provider_type=provider.spec.provider_type)
            listing.setdefault(provider.api.value, []).append(info)
        return json_response(listing)

    async def unserved(request: Request) -> Response:
        family = request.url.path.split("/")[2]
        raise NotImplementedYet(
            f"the {family} API is not part of this stack; it serves inference, safety, memory, "
            "agents and their registries"
        )

    for family in UNSERVED_FAMILIES:
        router.add_api_route(
            f"/{family}/{{rest:path}}", unserved, methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
    return router
