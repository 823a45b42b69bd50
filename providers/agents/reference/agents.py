"""The Agents API of v0.0.63 over the kvstore: agents, sessions, turns and steps.

Nothing about an agent lives only in this process: every call reads the store, so a replica
sharing it serves any agent or session another replica created. Turns of one session run one at
a time in a process (each sees the previous one's answer).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx

from llama_stack.apis.agents import (
    CreateAgentRequest,
    CreateAgentResponse,
    CreateSessionRequest,
    CreateSessionResponse,
    CreateTurnRequest,
    GetSessionRequest,
    GetStepResponse,
    Session,
    SessionRef,
    StepRef,
    Turn,
    TurnRef,
    TurnStreamChunk,
)
from llama_stack.apis.errors import InvalidRequest, ModelNotFound, NotFound
from llama_stack.distribution.provider import Api, Deps
from llama_stack.providers.agents.tools.memory import Retriever
from llama_stack.providers.agents.tools.sandbox import Sandbox
from llama_stack.providers.agents.tools.toolbox import ToolServices, build_toolbox

from . import events
from .config import MetaReferenceAgentsConfig
from .history import session_messages
from .persistence import AgentRecord, AgentStore, SessionRecord, random_id
from .turn import TurnPlan, TurnRunner


class MetaReferenceAgents:
    def __init__(
        self,
        config: MetaReferenceAgentsConfig,
        deps: Deps,
        store: AgentStore,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.models: Any = deps[Api.models]
        self.safety: Any | None = deps.get(Api.safety)
        self.banks: Any | None = deps.get(Api.memory_banks)
        self.retriever = Retriever(deps.get(Api.memory), self.banks, self.models, config.session_bank_embedding_model)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=config.web.timeout_s, follow_redirects=True)
        self.sandbox = Sandbox(config.sandbox, tenants=deps.multi_tenant)
        self.services = ToolServices(sandbox=self.sandbox, http=self.http, web=config.web)
        self.runner = TurnRunner(deps[Api.inference], self.safety, self.retriever, store)
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def shutdown(self) -> None:
        if self._owns_http:
            await self.http.aclose()
        await self.store.close()

    # Agents ---------------------------------------------------------------------------------------

    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse:
        config = request.agent_config
        if await self.models.get_model(config.model) is None:
            raise ModelNotFound(config.model, available=[m.identifier for m in await self.models.list_models()])
        if (config.input_shields or config.output_shields) and self.safety is None:
            raise InvalidRequest("the agent's shields need the safety API, which this distribution does not serve")
        if any(tool.type == "memory" for tool in config.tools):
            self.retriever.require("the memory tool")
        record = AgentRecord(agent_id=random_id(), agent_config=config, created_at=events.now())
        await self.store.put_agent(record)
        return CreateAgentResponse(agent_id=record.agent_id)

    async def delete_agent(self, agent_id: str) -> None:
        for session in await self.store.delete_agent(agent_id):
            await self._drop_bank(session)

    # Sessions -------------------------------------------------------------------------------------

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        await self.store.get_agent(request.agent_id)
        record = SessionRecord(session_id=random_id(), session_name=request.session_name, started_at=events.now())
        await self.store.put_session(request.agent_id, record)
        return CreateSessionResponse(session_id=record.session_id)

    async def get_session(self, request: GetSessionRequest) -> Session:
        record = await self.store.get_session(request.agent_id, request.session_id)
        turns = await self.store.turns(request.agent_id, request.session_id)
        if request.turn_ids is not None:
            wanted = set(request.turn_ids)
            turns = [turn for turn in turns if turn.turn_id in wanted]
        bank = None
        if record.memory_bank_id is not None and self.banks is not None:
            bank = await self.banks.get_memory_bank(record.memory_bank_id)
        return Session(
            session_id=record.session_id,
            session_name=record.session_name,
            turns=turns,
            started_at=record.started_at,
            memory_bank=bank,
        )

    async def delete_session(self, request: SessionRef) -> None:
        record = await self.store.get_session(request.agent_id, request.session_id)
        await self.store.delete_session(request.agent_id, request.session_id)
        await self._drop_bank(record)

    async def _drop_bank(self, session: SessionRecord) -> None:
        if session.memory_bank_id is None:
            return
        try:
            await self.retriever.drop_session_bank(session.memory_bank_id)
        except NotFound:
            pass  # another replica dropped it, or it was unregistered by hand

    # Turns and steps ------------------------------------------------------------------------------

    def create_turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]:
        return self._turn(request)

    async def _turn(self, request: CreateTurnRequest) -> AsyncIterator[TurnStreamChunk]:
        # Everything that can refuse the request happens before the first event, so the route
        # still answers with a status code (404, 400) rather than an error inside a stream.
        agent = await self.store.get_agent(request.agent_id)
        await self.store.get_session(request.agent_id, request.session_id)
        if request.attachments:
            self.retriever.require("attaching documents to a turn")
        lock = self._session_locks.setdefault(request.session_id, asyncio.Lock())
        async with lock:
            session = await self.store.get_session(request.agent_id, request.session_id)
            turns = await self.store.turns(request.agent_id, request.session_id)
            plan = TurnPlan(
                agent_id=agent.agent_id,
                config=agent.agent_config,
                session=session,
                toolbox=build_toolbox(agent.agent_config, self.services),
                request=request,
                history=session_messages(agent.agent_config.instructions, turns),
            )
            async with aclosing(self.runner.run(plan)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def get_turn(self, request: TurnRef) -> Turn:
        await self.store.get_session(request.agent_id, request.session_id)
        return await self.store.get_turn(request.agent_id, request.session_id, request.turn_id)

    async def get_step(self, request: StepRef) -> GetStepResponse:
        turn = await self.get_turn(request)
        for step in turn.steps:
            if step.step_id == request.step_id:
                return GetStepResponse(step=step)
        raise NotFound(f"Step '{request.step_id}' of turn '{request.turn_id}' does not exist.")
