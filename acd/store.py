"""What must survive an engine restart: agent statuses and waiting calls' places.

The store is written **behind** routing, never in its way. The engine's publish hook
(:meth:`StoreWriter.observe`, called in inbox order) only records *which* agent or call
changed; a background task (:meth:`StoreWriter.run`) reads their current values from the
core and writes them, coalesced by key — ten status flips of one agent between two writes
cost one write. The pending set is bounded: past ``max_pending`` keys it is dropped and a
full resync is scheduled instead.

When the backend fails (Redis down), the writer logs once, keeps retrying through a
backoff policy, and when the backend answers again writes the **whole current state**
(resync) rather than the changes it missed: Redis may have come back empty.

Layout in Redis (``<prefix>`` = ``store.key_prefix``, default ``acd``)::

    <prefix>:agents   hash  agent id → {"status": ..., "reason": ...}
    <prefix>:calls    hash  call id  → {"entry_time", "seq", "queue", "boost", "stage"}
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from acd.backoff import Backoff, ExponentialBackoff

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from acd.config import StoreConfig
    from acd.core import CallArrived, EngineCore, Event, Publish

log = logging.getLogger("acd.store")

#: Publish names after which a call's stored record is rewritten / removed.
CALL_UPDATED = frozenset({"call_waiting", "call_priority", "call_transferred", "call_stage",
                          "call_requeued"})
CALL_GONE = frozenset({"call_connected", "call_abandoned", "call_completed", "call_closed"})


@dataclass(frozen=True, slots=True)
class AgentRecord:
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A waiting call's place: seniority (entry time, sequence), queue and priority."""

    entry_time: float
    seq: int
    queue: str
    boost: int = 0
    stage: int = 0


@dataclass(slots=True)
class StoredState:
    agents: dict[str, AgentRecord] = field(default_factory=dict)
    calls: dict[str, CallRecord] = field(default_factory=dict)


#: A batch of changes: ("agent"|"call", id) → new record, or None to delete.
Key = tuple[str, str]
Changes = Mapping[Key, AgentRecord | CallRecord | None]


class Store(Protocol):
    async def load(self) -> StoredState: ...

    async def write(self, changes: Changes) -> None: ...

    async def replace(self, state: StoredState) -> None:
        """Make the stored state exactly ``state`` (resync)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """The default: kept in this process only (nothing survives a restart)."""

    def __init__(self) -> None:
        self.state = StoredState()

    async def load(self) -> StoredState:
        return StoredState(dict(self.state.agents), dict(self.state.calls))

    async def write(self, changes: Changes) -> None:
        for (kind, ident), rec in changes.items():
            table: dict[str, Any] = self.state.agents if kind == "agent" else self.state.calls
            if rec is None:
                table.pop(ident, None)
            else:
                table[ident] = rec

    async def replace(self, state: StoredState) -> None:
        self.state = StoredState(dict(state.agents), dict(state.calls))

    async def close(self) -> None:
        return None


class RedisStore:
    """Two hashes in Redis (see the module docstring). Every write is one MULTI/EXEC."""

    def __init__(self, client: aioredis.Redis, prefix: str = "acd") -> None:
        self.client = client
        self.agents_key = f"{prefix}:agents"
        self.calls_key = f"{prefix}:calls"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "acd", timeout: float = 1.0) -> RedisStore:
        return cls(redis_client(url, timeout), prefix)

    async def load(self) -> StoredState:
        agents_raw = await self.client.hgetall(self.agents_key)
        calls_raw = await self.client.hgetall(self.calls_key)
        state = StoredState()
        for k, v in agents_raw.items():
            try:
                state.agents[_s(k)] = AgentRecord(**json.loads(v))
            except (TypeError, ValueError):
                log.warning("store: ignoring bad agent record %r", k)
        for k, v in calls_raw.items():
            try:
                state.calls[_s(k)] = CallRecord(**json.loads(v))
            except (TypeError, ValueError):
                log.warning("store: ignoring bad call record %r", k)
        return state

    async def write(self, changes: Changes) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for (kind, ident), rec in changes.items():
                key = self.agents_key if kind == "agent" else self.calls_key
                if rec is None:
                    pipe.hdel(key, ident)
                else:
                    pipe.hset(key, ident, json.dumps(asdict(rec)))
            await pipe.execute()

    async def replace(self, state: StoredState) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.agents_key, self.calls_key)
            if state.agents:
                pipe.hset(self.agents_key, mapping={
                    a: json.dumps(asdict(r)) for a, r in state.agents.items()})
            if state.calls:
                pipe.hset(self.calls_key, mapping={
                    c: json.dumps(asdict(r)) for c, r in state.calls.items()})
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()


def redis_client(url: str, timeout: float = 1.0) -> aioredis.Redis:
    """A client that fails fast: the caller owns retries (a backoff policy), so a
    command never hangs routing-side code for longer than ``timeout``."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), health_check_interval=0)


def make_store(config: StoreConfig) -> Store:
    from acd.config import StoreBackend

    if config.backend is StoreBackend.REDIS:
        return RedisStore.from_url(config.url, prefix=config.key_prefix,
                                   timeout=config.timeout)
    return MemoryStore()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- from the engine's state ----------------------------------------------------------


def agent_record(core: EngineCore, agent_id: str) -> AgentRecord | None:
    agent = core.agents.get(agent_id)
    return None if agent is None else AgentRecord(agent.status.value, agent.reason)


def call_record(core: EngineCore, call_id: str) -> CallRecord | None:
    """The place of a call still in line (waiting, or ringing an agent)."""
    from acd.core import CallState

    call = core.calls.get(call_id)
    if call is None or call.state not in (CallState.WAITING, CallState.OFFERED):
        return None
    return CallRecord(call.entry_time, call.seq, call.queue_id, call.boost, call.stage)


def state_of(core: EngineCore) -> StoredState:
    state = StoredState()
    for agent_id in core.agents:
        rec = agent_record(core, agent_id)
        if rec is not None:
            state.agents[agent_id] = rec
    for call_id in core.calls:
        crec = call_record(core, call_id)
        if crec is not None:
            state.calls[call_id] = crec
    return state


class StoreWriter:
    """Writes the engine's changes to a :class:`Store` in the background.

    :meth:`observe` is an engine publish hook: synchronous, O(1), never raises into the
    inbox loop. :meth:`run` is the writer task.
    """

    def __init__(self, store: Store, core: EngineCore, *, max_pending: int = 10_000,
                 backoff: Backoff | None = None) -> None:
        self.store = store
        self.core = core
        self.max_pending = max_pending
        self.backoff = backoff or ExponentialBackoff(base=0.1, cap=2.0)
        self._pending: set[Key] = set()
        self._wake = asyncio.Event()
        #: Write the whole state next (after start, overflow, or a failure).
        self.resync_needed = True
        self.failing = False
        self.writes = 0
        self.resyncs = 0
        #: Set while idle with nothing pending (tests, graceful stop).
        self.idle = asyncio.Event()
        self.on_recovered: Callable[[], None] | None = None

    # -- the hook (inbox order, synchronous) -------------------------------------------

    def observe(self, pub: Publish, _now: float) -> None:
        data = pub.data
        if pub.name == "agent":
            self._mark(("agent", str(data["agent"])))
        elif pub.name in CALL_UPDATED or pub.name in CALL_GONE:
            self._mark(("call", str(data["call_id"])))

    def _mark(self, key: Key) -> None:
        self.idle.clear()
        if self.resync_needed:
            self._wake.set()
            return  # the resync will carry it
        if len(self._pending) >= self.max_pending:
            self._pending.clear()
            self.resync_needed = True
        else:
            self._pending.add(key)
        self._wake.set()

    def request_resync(self) -> None:
        self.resync_needed = True
        self._pending.clear()
        self.idle.clear()
        self._wake.set()

    # -- the task ----------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while True:
            if not self.resync_needed and not self._pending:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if not self.failing:
                    log.warning("store unavailable (%s: %s): routing goes on; will resync "
                                "when it is back", type(exc).__name__, exc)
                    self.failing = True
                self.resync_needed = True
                self._pending.clear()
                await asyncio.sleep(self.backoff.compute(failures))
                continue
            if self.failing:
                log.info("store is back: full state written (resync)")
                self.failing = False
                if self.on_recovered is not None:
                    self.on_recovered()
            failures = 0

    async def _flush(self) -> None:
        if self.resync_needed:
            # Read the state and clear the flag in one step (no await between), so a
            # change observed during the write is written after it.
            self.resync_needed = False
            self._pending.clear()
            state = state_of(self.core)
            await self.store.replace(state)
            self.resyncs += 1
            return
        keys, self._pending = self._pending, set()
        changes: dict[Key, AgentRecord | CallRecord | None] = {}
        for kind, ident in keys:
            changes[(kind, ident)] = (agent_record(self.core, ident) if kind == "agent"
                                      else call_record(self.core, ident))
        await self.store.write(changes)
        self.writes += 1

    async def drained(self, within: float) -> bool:
        """Wait until everything observed so far is written (or ``within`` seconds)."""
        try:
            await asyncio.wait_for(self.idle.wait(), within)
        except TimeoutError:
            return False
        return True


class Restorer:
    """After a restart or takeover: each stored waiting call that re-enters through the
    dialplan gets its queue and priority back (its seniority comes from ``ACD_ENTRY``),
    and arrivals are **held** until every stored call is back (or the grace period
    ends), then released oldest first — so a caller who re-entered a second earlier
    does not overtake one who had waited longer."""

    def __init__(self) -> None:
        self.calls: dict[str, CallRecord] = {}
        self.holding = False
        self._held: dict[str, CallArrived] = {}

    def begin(self, calls: Mapping[str, CallRecord]) -> None:
        self.calls = dict(calls)
        self._held = {}
        self.holding = bool(self.calls)

    @property
    def complete(self) -> bool:
        """Every stored call still expected is held."""
        return self.holding and all(c in self._held for c in self.calls)

    def intercept(self, event: Event) -> Event | None:
        """The event to apply now, or None when it is held (or void: a held caller
        hung up before the core heard of the call)."""
        from acd.core import CallArrived, CallHungUp

        if isinstance(event, CallArrived):
            event = self._restore(event)
            if self.holding:
                self._held[event.call_id] = event
                return None
        elif (isinstance(event, CallHungUp) and self.holding
              and self._held.pop(event.call_id, None) is not None):
            self.calls.pop(event.call_id, None)
            return None
        return event

    def _restore(self, ev: CallArrived) -> CallArrived:
        rec = self.calls.get(ev.call_id) if self.holding else self.calls.pop(ev.call_id, None)
        if rec is None:
            return ev
        return replace(ev, queue_id=rec.queue, priority_boost=rec.boost,
                       entry_time=min(ev.entry_time, rec.entry_time))

    def release(self) -> list[CallArrived]:
        """Stop holding; the held arrivals, oldest first (stored sequence breaks ties)."""
        held = sorted(self._held.values(), key=lambda e: (
            e.entry_time, self.calls[e.call_id].seq if e.call_id in self.calls else 1 << 62,
            e.now))
        for e in held:
            self.calls.pop(e.call_id, None)
        self._held = {}
        self.holding = False
        return held
