"""The Agents API of v0.0.63 over the kvstore: agents, sessions, turns and steps.

Nothing about an agent lives only in this process: every call reads the store, so a replica
sharing it serves any agent or session another replica created. A session runs one turn at a
time, across replicas (lease.py): a turn sent while another runs on its session answers 409.

Agents, sessions and turns belong to the API key that created them (distribution/ownership.py):
another key gets the same 404 as for an id that does not exist, on every route; an admin key
sees all. A turn runs the agent's model on the caller's behalf, so the caller's key must cover it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

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
    TurnCompletePayload,
    TurnRef,
    TurnStartPayload,
    TurnStreamChunk,
)
from llama_stack.apis.errors import Conflict, NotFound
from llama_stack.distribution.ownership import check_visible, may_see, owner_of_new_resource
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.request_context import current_caller, require_model
from llama_stack.providers.agents.tools.memory import Retriever
from llama_stack.providers.agents.tools.sandbox import Sandbox
from llama_stack.providers.agents.tools.toolbox import ToolServices, build_toolbox

from . import events
from .config import MetaReferenceAgentsConfig
from .history import session_messages
from .lease import Lease, SessionLeases
from .persistence import AgentRecord, AgentStore, SessionRecord, random_id
from .turn import TurnPlan, TurnRunner
from .validation import check_agent_config, check_turn_request, model_ids


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
        self.models = deps[Api.models]
        self.safety = deps.get(Api.safety)
        self.shields = deps.get(Api.shields) if self.safety is not None else None
        self.banks = deps.get(Api.memory_banks)
        self.retriever = Retriever(deps.get(Api.memory), self.banks, self.models, config.session_bank_embedding_model)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=config.web.timeout_s, follow_redirects=True)
        self.sandbox = Sandbox(config.sandbox, tenants=deps.multi_tenant)
        self.services = ToolServices(sandbox=self.sandbox, http=self.http, web=config.web)
        self.runner = TurnRunner(deps[Api.inference], self.safety, self.retriever, store)
        self.leases = SessionLeases(store.kv, config.session_lease_s)

    async def shutdown(self) -> None:
        if self._owns_http:
            await self.http.aclose()
        await self.store.close()

    # Agents ---------------------------------------------------------------------------------------

    async def create_agent(self, request: CreateAgentRequest) -> CreateAgentResponse:
        config = request.agent_config
        if any(tool.type == "memory" for tool in config.tools):
            self.retriever.require("the memory tool")
        await check_agent_config(config, self.models, self.shields, self.banks)
        record = AgentRecord(
            agent_id=random_id(), agent_config=config, created_at=events.now(), owner=owner_of_new_resource()
        )
        await self.store.put_agent(record)
        return CreateAgentResponse(agent_id=record.agent_id)

    async def _agent(self, agent_id: str) -> AgentRecord:
        """The agent, when the caller may see it; otherwise the same 404 as a missing one."""
        agent = await self.store.get_agent(agent_id)
        check_visible(agent.owner, lambda: NotFound(f"Agent '{agent_id}' does not exist."))
        return agent

    async def delete_agent(self, agent_id: str) -> None:
        await self._agent(agent_id)
        async with self._idle(agent_id, [s.session_id for s in await self.store.sessions(agent_id)]):
            for session in await self.store.delete_agent(agent_id):
                await self._drop_bank(session)

    # Sessions -------------------------------------------------------------------------------------

    async def create_session(self, request: CreateSessionRequest) -> CreateSessionResponse:
        await self._agent(request.agent_id)
        record = SessionRecord(
            session_id=random_id(),
            session_name=request.session_name,
            started_at=events.now(),
            owner=owner_of_new_resource(),
        )
        await self.store.put_session(request.agent_id, record)
        return CreateSessionResponse(session_id=record.session_id)

    async def _session(self, agent_id: str, session_id: str) -> tuple[AgentRecord, SessionRecord]:
        agent = await self._agent(agent_id)
        session = await self.store.get_session(agent_id, session_id)
        check_visible(session.owner, lambda: NotFound(f"Session '{session_id}' of agent '{agent_id}' does not exist."))
        return agent, session

    async def get_session(self, request: GetSessionRequest) -> Session:
        _, record = await self._session(request.agent_id, request.session_id)
        turns = await self.store.turns(request.agent_id, request.session_id)
        if request.turn_ids is not None:
            wanted = set(request.turn_ids)
            turns = [turn for turn in turns if turn.turn_id in wanted]
        turns = await self._visible_turns(request, turns)
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
        _, record = await self._session(request.agent_id, request.session_id)
        async with self._idle(request.agent_id, [request.session_id]):
            await self.store.delete_session(request.agent_id, request.session_id)
            await self._drop_bank(record)

    @asynccontextmanager
    async def _idle(self, agent_id: str, session_ids: list[str]) -> AsyncIterator[None]:
        """Hold these sessions' leases, so that no turn writes into a session being deleted; a
        session running a turn answers 409."""
        held: list[Lease] = []
        try:
            for session_id in session_ids:
                lease = await self.leases.acquire(f"{agent_id}:{session_id}")
                if lease is None:
                    raise Conflict(f"Session '{session_id}' is running a turn; delete it when that turn has ended.")
                held.append(lease)
            yield
        finally:
            for lease in held:
                await lease.release()

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
        # still answers with a status code (404, 403, 409, 400) rather than an error inside a stream.
        check_turn_request(request)
        agent, _ = await self._session(request.agent_id, request.session_id)
        for model_id in model_ids(agent.agent_config):
            require_model(model_id)
        if request.attachments:
            self.retriever.require("attaching documents to a turn")
        lease = await self.leases.acquire(f"{request.agent_id}:{request.session_id}")
        if lease is None:
            raise Conflict(
                f"Session '{request.session_id}' is running another turn; send this one when that turn has ended."
            )
        try:
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
                    payload = chunk.event.payload
                    if isinstance(payload, TurnStartPayload):
                        owner = owner_of_new_resource()
                        await self.store.put_turn_owner(agent.agent_id, session.session_id, payload.turn_id, owner)
                    elif isinstance(payload, TurnCompletePayload):
                        # The turn is saved: free the session before the app hears of it, so the
                        # app's next turn (e.g. a client tool's result) is never refused.
                        await lease.release()
                    yield chunk
        finally:
            await lease.release()

    async def _turn_owner(self, ref: SessionRef, turn_id: str) -> str | None:
        return await self.store.turn_owner(ref.agent_id, ref.session_id, turn_id)

    async def _visible_turns(self, ref: SessionRef, turns: list[Turn]) -> list[Turn]:
        caller = current_caller()
        if caller is None or caller.admin:  # nothing could be hidden: no store reads
            return turns
        return [turn for turn in turns if may_see(await self._turn_owner(ref, turn.turn_id))]

    async def get_turn(self, request: TurnRef) -> Turn:
        await self._session(request.agent_id, request.session_id)
        turn = await self.store.get_turn(request.agent_id, request.session_id, request.turn_id)
        check_visible(
            await self._turn_owner(request, request.turn_id),
            lambda: NotFound(f"Turn '{request.turn_id}' of session '{request.session_id}' does not exist."),
        )
        return turn

    async def get_step(self, request: StepRef) -> GetStepResponse:
        turn = await self.get_turn(request)
        for step in turn.steps:
            if step.step_id == request.step_id:
                return GetStepResponse(step=step)
        raise NotFound(f"Step '{request.step_id}' of turn '{request.turn_id}' does not exist.")
