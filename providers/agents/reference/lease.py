"""One turn at a time per session, across every replica sharing the agents kvstore.

A session's lease is held slot by slot: time is cut into slots of `slot_s` seconds, and a replica
holds the session during slot k when it was first to claim the counter `lease:<session>:<k>`
(the kvstore's `increment`, atomic across processes, returns 1 to the first claimant only). A
turn claims the current slot and the next one; while it runs, a heartbeat claims each next slot
before it begins. A claimant that was not first gives its claim back at once and is refused; the
holder gives back its claims when the turn ends. So a session is busy exactly while a live turn
keeps claiming its slots: a replica that crashed mid-turn stops claiming, and its session is free
again within two slots, without anyone cleaning up after it. Counters expire by themselves.

Replicas' clocks must agree to well within half a slot (NTP does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from llama_stack.distribution.store.api import KVStore

log = logging.getLogger(__name__)


class SessionLeases:
    def __init__(self, kv: KVStore, slot_s: float, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.slot_s = slot_s
        self.clock = clock

    def current_slot(self) -> int:
        return math.floor(self.clock() / self.slot_s)

    async def _claim(self, name: str, slot: int, by: int = 1) -> int:
        # A counter outlives the slot it stands for (claimed at most a slot early), then expires.
        return await self.kv.increment(f"lease:{name}:{slot}", by, ttl_s=3 * self.slot_s)

    async def acquire(self, name: str) -> Lease | None:
        """The session's lease, or None while another turn holds it."""
        slot = self.current_slot()
        claimed: list[int] = []
        for wanted in (slot, slot + 1):
            claimed.append(wanted)
            if await self._claim(name, wanted) != 1:
                await self._give_back(name, claimed)
                return None
        return Lease(self, name, claimed)

    async def _give_back(self, name: str, slots: list[int]) -> None:
        oldest_live = self.current_slot() - 1  # older counters have expired or never matter again
        for slot in slots:
            if slot >= oldest_live:
                await self._claim(name, slot, by=-1)


class Lease:
    """A held session lease: renewed in the background until `release`."""

    def __init__(self, leases: SessionLeases, name: str, slots: list[int]) -> None:
        self.leases = leases
        self.name = name
        self.slots = slots
        self._released = False
        self._heartbeat = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        leases = self.leases
        while True:
            await asyncio.sleep(leases.slot_s / 3)
            upcoming = leases.current_slot() + 1
            if upcoming in self.slots:
                continue
            try:
                claimed = await leases._claim(self.name, upcoming)
            except Exception:
                log.exception("could not renew the lease of session %s; retrying", self.name)
                continue
            self.slots.append(upcoming)
            if claimed != 1:
                # Only when this process stalled past its slots and another turn took the session.
                log.warning("lost the lease of session %s: another turn may be running on it", self.name)

    async def release(self) -> None:
        """Give the session back (idempotent)."""
        if self._released:
            return
        self._released = True
        self._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # cancelled, or it had failed (and logged) already
            await self._heartbeat
        await self.leases._give_back(self.name, self.slots)
