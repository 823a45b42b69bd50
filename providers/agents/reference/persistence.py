"""Agents, sessions and turns in the kvstore, so that every replica sharing it sees them.

    agent:<agent_id>                              the AgentConfig
    session:<agent_id>:<session_id>               name, start time, the session's memory bank
    turn:<agent_id>:<session_id>:<turn_id>        a finished Turn, steps included
    progress:<agent_id>:<session_id>:<turn_id>    the running turn's steps so far
    turn-owner:<agent_id>:<session_id>:<turn_id>  the API key that ran the turn ("" when shared)

Agents and sessions record the key that created them (`owner`, None when shared: created while
access control is off).

Turn ids are time-ordered (UUID version 7), so a session's turns read back in the order they
started with one range query.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime

from pydantic import Field

from llama_stack.apis.agents import AgentConfig, Turn
from llama_stack.apis.common import WireModel
from llama_stack.apis.errors import NotFound
from llama_stack.distribution.store.api import KVStore, prefix_upper_bound


class AgentRecord(WireModel):
    agent_id: str
    agent_config: AgentConfig
    created_at: datetime
    owner: str | None = None


class SessionRecord(WireModel):
    session_id: str
    session_name: str
    started_at: datetime
    memory_bank_id: str | None = None
    owner: str | None = None


class _TurnList(WireModel):
    turns: list[Turn] = Field(default_factory=list)


_clock_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def time_ordered_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, a 12-bit sequence within the millisecond, random bits."""
    global _last_ms, _sequence
    with _clock_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms, _sequence = _last_ms, _sequence + 1
            if _sequence > 0xFFF:
                ms, _sequence = ms + 1, 0
        else:
            _sequence = 0
        _last_ms = ms
        sequence = _sequence
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (sequence << 64) | (0b10 << 62) | random_bits
    return str(uuid.UUID(int=value))


def random_id() -> str:
    return str(uuid.uuid4())


def _checked(*ids: str) -> None:
    """Ids become key parts: one holding the separator cannot name anything stored."""
    for value in ids:
        if not value or ":" in value:
            raise NotFound(f"'{value}' is not a valid id.")


class AgentStore:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    async def close(self) -> None:
        await self.kv.close()

    # Agents ---------------------------------------------------------------------------------------

    async def put_agent(self, record: AgentRecord) -> None:
        await self.kv.set(f"agent:{record.agent_id}", record.model_dump_json())

    async def get_agent(self, agent_id: str) -> AgentRecord:
        _checked(agent_id)
        raw = await self.kv.get(f"agent:{agent_id}")
        if raw is None:
            raise NotFound(f"Agent '{agent_id}' does not exist.")
        return AgentRecord.model_validate_json(raw)

    async def delete_agent(self, agent_id: str) -> list[SessionRecord]:
        """Forget the agent and all its sessions; returns the sessions, for their banks."""
        await self.get_agent(agent_id)
        sessions = await self.sessions(agent_id)
        for session in sessions:
            await self.delete_session(agent_id, session.session_id)
        await self.kv.delete(f"agent:{agent_id}")
        return sessions

    # Sessions -------------------------------------------------------------------------------------

    async def sessions(self, agent_id: str) -> list[SessionRecord]:
        return [SessionRecord.model_validate_json(raw) for raw in await self._range(f"session:{agent_id}:")]

    async def put_session(self, agent_id: str, record: SessionRecord) -> None:
        await self.kv.set(f"session:{agent_id}:{record.session_id}", record.model_dump_json())

    async def get_session(self, agent_id: str, session_id: str) -> SessionRecord:
        _checked(agent_id, session_id)
        raw = await self.kv.get(f"session:{agent_id}:{session_id}")
        if raw is None:
            raise NotFound(f"Session '{session_id}' of agent '{agent_id}' does not exist.")
        return SessionRecord.model_validate_json(raw)

    async def delete_session(self, agent_id: str, session_id: str) -> None:
        await self.get_session(agent_id, session_id)
        for kind in ("turn", "progress", "turn-owner"):
            for key in await self.kv.keys_with_prefix(f"{kind}:{agent_id}:{session_id}:"):
                await self.kv.delete(key)
        await self.kv.delete(f"session:{agent_id}:{session_id}")

    # Turns ----------------------------------------------------------------------------------------

    async def put_turn(self, agent_id: str, turn: Turn) -> None:
        key = f"{agent_id}:{turn.session_id}:{turn.turn_id}"
        await self.kv.set(f"turn:{key}", turn.model_dump_json())
        await self.kv.delete(f"progress:{key}")

    async def put_turn_owner(self, agent_id: str, session_id: str, turn_id: str, owner: str | None) -> None:
        await self.kv.set(f"turn-owner:{agent_id}:{session_id}:{turn_id}", owner or "")

    async def turn_owner(self, agent_id: str, session_id: str, turn_id: str) -> str | None:
        return await self.kv.get(f"turn-owner:{agent_id}:{session_id}:{turn_id}") or None

    async def put_progress(self, agent_id: str, turn: Turn) -> None:
        await self.kv.set(f"progress:{agent_id}:{turn.session_id}:{turn.turn_id}", turn.model_dump_json())

    async def drop_progress(self, agent_id: str, session_id: str, turn_id: str) -> None:
        await self.kv.delete(f"progress:{agent_id}:{session_id}:{turn_id}")
        await self.kv.delete(f"turn-owner:{agent_id}:{session_id}:{turn_id}")

    async def turns(self, agent_id: str, session_id: str) -> list[Turn]:
        """The finished turns of a session, oldest first."""
        raws = await self._range(f"turn:{agent_id}:{session_id}:")
        return _TurnList.model_validate_json('{"turns": [' + ",".join(raws) + "]}").turns

    async def get_turn(self, agent_id: str, session_id: str, turn_id: str) -> Turn:
        """A finished turn, or the running one with the steps it has completed so far."""
        _checked(agent_id, session_id, turn_id)
        for kind in ("turn", "progress"):
            raw = await self.kv.get(f"{kind}:{agent_id}:{session_id}:{turn_id}")
            if raw is not None:
                return Turn.model_validate_json(raw)
        raise NotFound(f"Turn '{turn_id}' of session '{session_id}' does not exist.")

    async def _range(self, prefix: str) -> list[str]:
        end = prefix_upper_bound(prefix)
        assert end is not None
        return await self.kv.values_in_range(prefix, end)
