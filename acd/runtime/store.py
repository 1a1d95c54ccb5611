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
    <prefix>:stats    hash  queue id → the queue's figures (figures.LiveStats.dump_queue):
                            per-minute buckets of the rolling window, today, since start
    <prefix>:callbacks hash callback id → the pending callback (domain.callbacks.Callback:
                            number, queue, entry time, attempts, dials, state …)
    <prefix>:campaigns hash campaign id → its contacts and their progress

**Fencing.** Every write is one Lua script that first compares ``<prefix>:fence`` with
the fencing token this engine's lease was granted (acd.runtime.ha: ``<n>:<random epoch>``,
so a token never comes back even if Redis loses its data). An engine that lost its lease
without knowing it yet (paused, partitioned) is refused (:class:`StoreFenced`) instead of
overwriting what the new active engine wrote; it then steps down. A store with no token
source (no hot standby: one engine) writes unconditionally, through the same script.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from acd.domain import CallArrived, CallHungUp, CallState, EngineCore, Event, Fact
from acd.domain.callbacks import (
    CallbackAttempted,
    CallbackDialing,
    CallbackFinished,
    CallbackRequested,
)
from acd.domain.facts import (
    CALL_LEFT_LINE,
    CALL_PLACE_CHANGED,
    AgentChanged,
    AgentNoAnswer,
    CallOverflowed,
    CallTransferred,
)
from acd.runtime.backoff import Backoff, ExponentialBackoff

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from acd.config import StoreConfig
    from acd.domain.figures import LiveStats

log = logging.getLogger("acd.store")

#: Facts that change a callback's stored record.
CALLBACK_CHANGED = (CallbackRequested, CallbackDialing, CallbackAttempted, CallbackFinished)

#: Facts that may change a queue's figures (acd.domain.figures.LiveStats.observe).
STATS_CHANGED = (*CALL_PLACE_CHANGED, *CALL_LEFT_LINE, CallOverflowed, CallTransferred,
                 AgentChanged, AgentNoAnswer)


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
    #: Queue id → its figures as :meth:`acd.domain.figures.LiveStats.dump_queue` gives them.
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Callback id → the pending callback (:meth:`acd.domain.callbacks.Callback.as_dict`).
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Campaign id → ``{"contacts": [...]}`` (acd.runtime.campaigns).
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> StoredState:
        return StoredState(dict(self.agents), dict(self.calls), dict(self.stats),
                           dict(self.callbacks), dict(self.campaigns))


#: A batch of changes: ("agent"|"call"|"stats", id) → new record, or None to delete.
Key = tuple[str, str]
Record = AgentRecord | CallRecord | dict[str, Any]
Changes = Mapping[Key, Record | None]


#: Key kind → the StoredState field (and the Redis hash suffix) it lives in.
_TABLES = {"agent": "agents", "call": "calls", "stats": "stats", "callback": "callbacks",
           "campaign": "campaigns"}


#: The pending-set key meaning "ask the stats which queues changed".
_STATS: Key = ("stats", "")


class StoreFenced(RuntimeError):
    """The store refused a write: another engine holds a newer fencing token."""


class Store(Protocol):
    #: What it holds survives a restart of the process (else a restarted engine has no
    #: list of the callers who waited: it orders their re-entries blind).
    durable: bool

    async def load(self) -> StoredState: ...

    async def write(self, changes: Changes) -> None: ...

    async def replace(self, state: StoredState) -> None:
        """Make the stored state exactly ``state`` (resync)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """The default: kept in this process only (nothing survives a restart)."""

    #: What it holds survives a restart of the process.
    durable = False

    def __init__(self) -> None:
        self.state = StoredState()

    async def load(self) -> StoredState:
        return self.state.copy()

    async def write(self, changes: Changes) -> None:
        for (kind, ident), rec in changes.items():
            table: dict[str, Any] = getattr(self.state, _TABLES[kind])
            if rec is None:
                table.pop(ident, None)
            else:
                table[ident] = rec

    async def replace(self, state: StoredState) -> None:
        self.state = state.copy()

    async def close(self) -> None:
        return None


#: KEYS: the fence, then the hashes.  ARGV[1]: the expected fencing token ("" = no
#: check); ARGV[2]: "1" to empty the hashes first (a resync); ARGV[3]: JSON list of
#: [hash index (1-based among the hashes), field] (delete) or [index, field, value] (set).
_WRITE = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED fencing token ' .. ARGV[1] .. ' is no longer current')
end
if ARGV[2] == '1' then
  for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
end
for _, op in ipairs(cjson.decode(ARGV[3])) do
  if #op == 2 then
    redis.call('HDEL', KEYS[op[1] + 1], op[2])
  else
    redis.call('HSET', KEYS[op[1] + 1], op[2], op[3])
  end
end
return 1
"""


class RedisStore:
    """Three hashes in Redis (see the module docstring). Every write is one Lua script:
    atomic, and refused when the fencing token is stale.

    ``fence`` (hot standby) returns the token of the lease this engine holds, or None when
    it holds none: then nothing is written at all."""

    durable = True

    def __init__(self, client: aioredis.Redis, prefix: str = "acd",
                 fence: Callable[[], str | int | None] | None = None) -> None:
        self.client = client
        self.fence = fence
        self.fence_key = f"{prefix}:fence"
        self.keys = {kind: f"{prefix}:{table}" for kind, table in _TABLES.items()}
        self._index = {kind: i for i, kind in enumerate(self.keys, start=1)}

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "acd", timeout: float = 1.0) -> RedisStore:
        return cls(redis_client(url, timeout), prefix)

    async def load(self) -> StoredState:
        state = StoredState()
        for kind, key in self.keys.items():
            table: dict[str, Any] = getattr(state, _TABLES[kind])
            for k, v in (await self.client.hgetall(key)).items():
                try:
                    raw = json.loads(v)
                    table[_s(k)] = (AgentRecord(**raw) if kind == "agent"
                                    else CallRecord(**raw) if kind == "call"
                                    else _mapping(raw))
                except (TypeError, ValueError):
                    log.warning("store: ignoring bad %s record %r", kind, k)
        return state

    async def write(self, changes: Changes) -> None:
        ops = [[self._index[kind], ident] if rec is None
               else [self._index[kind], ident, _json(rec)]
               for (kind, ident), rec in changes.items()]
        await self._run(ops, clear=False)

    async def replace(self, state: StoredState) -> None:
        ops: list[list[Any]] = []
        for kind, table in _TABLES.items():
            for ident, rec in getattr(state, table).items():
                ops.append([self._index[kind], ident, _json(rec)])
        await self._run(ops, clear=True)

    async def _run(self, ops: list[list[Any]], *, clear: bool) -> None:
        token = ""
        if self.fence is not None:
            held = self.fence()
            if held is None:
                raise StoreFenced("this engine holds no lease: not writing the store")
            token = str(held)
        from redis.exceptions import ResponseError

        try:
            await self.client.eval(_WRITE, 1 + len(self.keys), self.fence_key,
                                   *self.keys.values(), token, "1" if clear else "0",
                                   json.dumps(ops))
        except ResponseError as exc:
            if "FENCED" in str(exc):
                raise StoreFenced(str(exc)) from exc
            raise

    async def close(self) -> None:
        await self.client.aclose()


def _json(rec: Record) -> str:
    return json.dumps(rec if isinstance(rec, dict) else asdict(rec))


def _mapping(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return raw


def redis_client(url: str, timeout: float = 1.0, **options: Any) -> aioredis.Redis:
    """A client that fails fast: the caller owns retries (a backoff policy), so a
    command never hangs routing-side code for longer than ``timeout``. ``options``:
    ``password``, ``username``, ``ssl_ca_certs`` (``rediss://``) ..."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), health_check_interval=0, **options)


def store_client(config: StoreConfig, environ: Mapping[str, str] | None = None,
                 ) -> aioredis.Redis:
    """The Redis client of ``config``: its URL, or the master its sentinels name (the
    client follows a failover: on the next connection it asks them again); the password
    from ``store.password_env``, TLS with ``rediss://``. ``ConfigError`` when a password
    variable is not set."""
    password = config.password(environ)
    options: dict[str, Any] = {}
    if password is not None:
        options["password"] = password.get_secret_value()
    if config.username is not None:
        options["username"] = config.username
    if config.sentinel is not None:
        return _sentinel_client(config, options, environ)
    if config.url.startswith("rediss://") and config.tls_ca_file:
        options["ssl_ca_certs"] = config.tls_ca_file
    return redis_client(config.url, config.timeout, **options)


def _sentinel_client(config: StoreConfig, options: dict[str, Any],
                     environ: Mapping[str, str] | None) -> aioredis.Redis:
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel
    from redis.backoff import NoBackoff

    sentinel_cfg = config.sentinel
    assert sentinel_cfg is not None
    timeouts: dict[str, Any] = {"socket_timeout": config.timeout,
                                "socket_connect_timeout": config.timeout}
    sentinel_password = config.sentinel_password(environ)
    sentinel_kwargs = dict(timeouts)
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password.get_secret_value()
    manager = Sentinel(sentinel_cfg.addresses,  # type: ignore[no-untyped-call]
                       sentinel_kwargs=sentinel_kwargs)
    client: aioredis.Redis = manager.master_for(
        sentinel_cfg.master, redis_class=_sentinel_redis_class(), db=sentinel_cfg.db,
        retry=Retry(NoBackoff(), 0), health_check_interval=0, **timeouts, **options)
    client.sentinel_manager = manager  # type: ignore[attr-defined]
    return client


_SENTINEL_REDIS: Any = None


def _sentinel_redis_class() -> Any:
    """A Redis client class whose ``aclose()`` also closes its sentinels' clients."""
    global _SENTINEL_REDIS
    if _SENTINEL_REDIS is None:
        import redis.asyncio as aioredis

        class SentinelRedis(aioredis.Redis):
            sentinel_manager: Any = None

            async def aclose(self, close_connection_pool: bool | None = None) -> None:
                await super().aclose(close_connection_pool)
                manager, self.sentinel_manager = self.sentinel_manager, None
                for sentinel in manager.sentinels if manager is not None else ():
                    await sentinel.aclose()

        _SENTINEL_REDIS = SentinelRedis
    return _SENTINEL_REDIS


def make_store(config: StoreConfig, environ: Mapping[str, str] | None = None) -> Store:
    from acd.config import StoreBackend

    if config.backend is StoreBackend.REDIS:
        return RedisStore(store_client(config, environ), config.key_prefix)
    return MemoryStore()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- from the engine's state ----------------------------------------------------------


def agent_record(core: EngineCore, agent_id: str) -> AgentRecord | None:
    agent = core.agents.get(agent_id)
    return None if agent is None else AgentRecord(agent.status.value, agent.reason)


def call_record(core: EngineCore, call_id: str) -> CallRecord | None:
    """The place of a call still in line (waiting, or ringing an agent); a callback is
    kept as a callback (:func:`callback_record`), not as a caller who will re-enter."""
    call = core.calls.get(call_id)
    if call is None or call.state not in (CallState.WAITING, CallState.OFFERED) \
            or core.callbacks.is_callback(call_id):
        return None
    return CallRecord(call.entry_time, call.seq, call.queue_id, call.boost, call.stage)


def callback_record(core: EngineCore, callback_id: str) -> dict[str, Any] | None:
    """A callback not finished yet, as stored (None: finished or unknown)."""
    cb = core.callbacks.by_id.get(callback_id)
    return None if cb is None else cb.as_dict()


def state_of(core: EngineCore, stats: LiveStats | None = None) -> StoredState:
    state = StoredState()
    for callback_id in core.callbacks.by_id:
        cbrec = callback_record(core, callback_id)
        if cbrec is not None:
            state.callbacks[callback_id] = cbrec
    for agent_id in core.agents.by_id:
        rec = agent_record(core, agent_id)
        if rec is not None:
            state.agents[agent_id] = rec
    for call_id in core.calls:
        crec = call_record(core, call_id)
        if crec is not None:
            state.calls[call_id] = crec
    if stats is not None:
        for queue_id in stats.queue_ids:
            state.stats[queue_id] = stats.dump_queue(queue_id)
    return state


class StoreWriter:
    """Writes the engine's changes to a :class:`Store` in the background.

    :meth:`observe` is an engine publish hook: synchronous, O(1), never raises into the
    inbox loop. :meth:`run` is the writer task. With ``stats``, the queues' figures are
    written too (the queues it reports changed, coalesced like the rest).

    A write the store refuses as fenced (another engine holds the lease) is not retried:
    ``on_fenced`` is called and the task ends.
    """

    def __init__(self, store: Store, core: EngineCore, *, max_pending: int = 10_000,
                 backoff: Backoff | None = None, figures: bool = True) -> None:
        self.store = store
        self.core = core
        #: The queues' figures are written too (the core's own: ``core.figures``).
        self.stats: LiveStats | None = core.figures if figures else None
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
        self.on_fenced: Callable[[StoreFenced], None] | None = None
        #: Campaign id → its record, or None (acd.runtime.campaigns; wired by the node).
        self.campaign_record: Callable[[str], dict[str, Any] | None] | None = None
        self.campaign_ids: Callable[[], list[str]] | None = None

    def mark_campaign(self, campaign_id: str) -> None:
        """A campaign's progress changed: written behind, like the rest."""
        self._mark(("campaign", campaign_id))

    # -- the hook (inbox order, synchronous) -------------------------------------------

    def observe(self, fact: Fact, _now: float) -> None:
        if isinstance(fact, AgentChanged):
            self._mark(("agent", fact.agent))
        elif isinstance(fact, CALL_PLACE_CHANGED + CALL_LEFT_LINE):
            self._mark(("call", fact.call_id))
        if isinstance(fact, CALLBACK_CHANGED):
            self._mark(("callback", fact.callback_id))
        elif isinstance(fact, CALL_PLACE_CHANGED + CALL_LEFT_LINE) and \
                self.core.callbacks.is_callback(fact.call_id):
            self._mark(("callback", fact.call_id))
        if self.stats is not None and isinstance(fact, STATS_CHANGED):
            self._mark(_STATS)

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
            except StoreFenced as exc:
                log.error("store write refused (%s): another engine is active; this one "
                          "stops writing", exc)
                self._pending.clear()
                self.idle.set()
                if self.on_fenced is not None:
                    self.on_fenced(exc)
                return
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
            if self.stats is not None:
                self.stats.take_dirty()
            state = state_of(self.core, self.stats)
            if self.campaign_record is not None and self.campaign_ids is not None:
                for cid in self.campaign_ids():
                    rec = self.campaign_record(cid)
                    if rec is not None:
                        state.campaigns[cid] = rec
            await self.store.replace(state)
            self.resyncs += 1
            return
        keys, self._pending = self._pending, set()
        changes: dict[Key, Record | None] = {}
        for kind, ident in keys:
            if kind == "agent":
                changes[(kind, ident)] = agent_record(self.core, ident)
            elif kind == "call":
                changes[(kind, ident)] = call_record(self.core, ident)
            elif kind == "callback":
                changes[(kind, ident)] = callback_record(self.core, ident)
            elif kind == "campaign" and self.campaign_record is not None:
                changes[(kind, ident)] = self.campaign_record(ident)
        if _STATS in keys and self.stats is not None:
            for queue_id in self.stats.take_dirty():
                changes[("stats", queue_id)] = self.stats.dump_queue(queue_id)
        if changes:
            await self.store.write(changes)
            self.writes += 1

    async def drained(self, within: float) -> bool:
        """Wait until everything observed so far is written (or ``within`` seconds)."""
        try:
            await asyncio.wait_for(self.idle.wait(), within)
        except TimeoutError:
            return False
        return True


#: A caller stamped this long before the engine took over is a re-entry (seconds: the
#: dialplan's clock and the engine's may differ a little).
REENTRY_MARGIN = 0.5


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
        #: Blind (no list of who waited: no durable store, or it could not be read):
        #: callers stamped before this moment are re-entries; the first one starts the
        #: hold, which the grace period ends. None: not blind.
        self.blind_since: float | None = None

    def begin(self, calls: Mapping[str, CallRecord], *,
              blind_since: float | None = None) -> None:
        """Expect the stored ``calls``; with none known, ``blind_since`` (the moment this
        engine took over) makes re-entries stamped before it hold the line."""
        self.calls = dict(calls)
        self._held = {}
        self.holding = bool(self.calls)
        self.blind_since = None if self.calls else blind_since

    @property
    def watching(self) -> bool:
        """Arrivals go through :meth:`intercept`."""
        return self.holding or bool(self.calls) or self.blind_since is not None

    def expect(self, calls: Mapping[str, CallRecord]) -> None:
        """Stored places of calls that will re-enter from now on, without holding
        anyone (a store loaded after the engine started taking calls)."""
        for call_id, rec in calls.items():
            self.calls.setdefault(call_id, rec)

    @property
    def complete(self) -> bool:
        """Every stored call still expected is held (never when blind: only the grace
        period ends a blind hold)."""
        return (self.holding and self.blind_since is None
                and all(c in self._held for c in self.calls))

    def intercept(self, event: Event) -> Event | None:
        """The event to apply now, or None when it is held (or void: a held caller
        hung up before the core heard of the call)."""
        if isinstance(event, CallArrived):
            event = self._restore(event)
            if (not self.holding and self.blind_since is not None
                    and event.entry_time < self.blind_since - REENTRY_MARGIN):
                self.holding = True  # a caller from before the restart: hold from here
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
                       entry_time=min(ev.entry_time, rec.entry_time), restored=True)

    def release(self) -> list[CallArrived]:
        """Stop holding; the held arrivals, oldest first (stored sequence breaks ties)."""
        held = sorted(self._held.values(), key=lambda e: (
            e.entry_time, self.calls[e.call_id].seq if e.call_id in self.calls else 1 << 62,
            e.now))
        for e in held:
            self.calls.pop(e.call_id, None)
        self._held = {}
        self.holding = False
        self.blind_since = None
        return held
