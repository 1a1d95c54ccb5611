"""Typed read views of the core, for the API, the metrics and the pages.

Everything here reads; nothing mutates. Read on the engine's event loop between two
inbox steps, so one view is one consistent state. The API turns these values into its
JSON models; the Prometheus collector reads them at scrape time.

Costs are bounded for a large engine (tens of thousands of waiting callers): per-queue
counts are kept by the core as calls move (``EngineCore.live_count``) and by the router
(``Router.waiting``); the longest wait walks only that queue's waiting calls; ``calls``
pages through the calls in the router's order with a cursor instead of building one
huge list, and a call's ``position`` is its place in the router's order — the order in
which agents will really be offered the calls.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from acd.domain.core import EngineCore
from acd.domain.ewt import Sweep
from acd.domain.figures import Window, WindowFigures
from acd.domain.records import LIVE_CALL_STATES, Agent, Call, CallState
from acd.domain.settings import QueueSettings, Settings, SiteSettings
from routing.regions import REGION_NAMES

#: The estimator's replay is computed again at most this often (seconds).
SWEEP_EVERY = 0.25

#: What a wallboard shows per agent, from the two axes (status, state) and the phone.
PRESENCES = ("ready", "ringing", "on_call", "wrap_up", "paused", "unavailable", "logged_out")


def agent_presence(status: str, state: str, phone_free: bool, site_open: bool = True,
                   ) -> str:
    """One word per agent: ``ready`` (may be offered a call now), ``ringing``,
    ``on_call``, ``wrap_up``, ``paused``, ``unavailable`` (available but the phone is busy,
    unregistered, unreachable or not heard of while AMI is up, or its site is closed) or
    ``logged_out``."""
    if state in ("ringing", "on_call", "wrap_up"):
        return state
    if status == "logged_out":
        return "logged_out"
    if status == "paused":
        return "paused"
    return "ready" if phone_free and site_open else "unavailable"


def presence_of(agent: Agent) -> str:
    return agent_presence(agent.status.value, agent.state.value, agent.phone_free,
                          agent.site_open)


def queue_members(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Queue id → the agents whose skills meet every minimum of the queue."""
    return {
        q.id: tuple(a.id for a in settings.agents.values()
                    if all(a.skills.get(s, 0) >= lvl for s, lvl in q.skills.items()))
        for q in settings.queues.values()
    }


@dataclass(frozen=True, slots=True)
class AgentRead:
    id: str
    name: str
    status: str
    reason: str
    state: str
    presence: str
    device: str
    call_id: str | None
    queues: tuple[str, ...]
    answered: int
    missed: int


@dataclass(frozen=True, slots=True)
class CallRead:
    id: str
    queue: str
    caller: str
    state: str
    #: The queue's priority plus the caller's own.
    priority: int
    #: Place among the queue's waiting calls in the router's order (waiting calls only).
    position: int | None
    wait: float
    entry_time: float
    agent: str | None
    talk: float | None
    segment: str
    region: str
    region_source: str
    site: str | None
    did: str
    menu_choice: str
    stage: int
    #: Expected wait from now (seconds) when the estimate is sure; waiting calls only.
    ewt: float | None = None


@dataclass(frozen=True, slots=True)
class QueueRead:
    id: str
    name: str
    priority: int
    sl_target: float
    waiting: int
    longest_wait: float
    ringing: int
    connected: int
    #: Presence → how many of the agents able to take the queue's calls.
    agents: Mapping[str, int]
    rolling: WindowFigures
    today: WindowFigures
    #: What a caller arriving now would wait (seconds), when sure.
    ewt: float | None = None


@dataclass(frozen=True, slots=True)
class SiteRead:
    id: str
    name: str
    kind: str
    regions: tuple[str, ...]
    services: tuple[str, ...]
    capacity: int
    active: int
    offered: int
    answered: int
    rejected: int
    open: bool
    preference: int


@dataclass(frozen=True, slots=True)
class RegionRead:
    region: str
    name: str
    calls: int
    answered: int
    abandoned: int
    overflowed: int


@dataclass(frozen=True, slots=True)
class CallPage:
    calls: tuple[CallRead, ...]
    #: Give it back as ``cursor`` for the next page; ``None``: this was the last.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ExplanationRead:
    call_id: str
    queue: str
    state: str
    region: str
    site: str | None
    lines: tuple[str, ...]
    #: The last routing decision as recorded (stage, strategy, candidates, agent or site,
    #: excluded, excluded_sites); empty before the first offer.
    decision: Mapping[str, Any]


class BadCursor(ValueError):
    """A ``cursor`` this view did not hand out."""


_ACTIVE = (CallState.OFFERED, CallState.CONNECTED)
#: Sort key of a call in the pages: waiting first (router order), then active.
_PageKey = tuple[Any, ...]


class LiveView:
    """Read views over one core."""

    def __init__(self, core: EngineCore, names: Mapping[str, str] | None = None) -> None:
        self.core = core
        settings = core.settings
        self.members = queue_members(settings)
        self.queues_of: dict[str, list[str]] = defaultdict(list)
        for qid, agents in self.members.items():
            for aid in agents:
                self.queues_of[aid].append(qid)
        self.names = dict(names) if names is not None else {
            a.id: a.name for a in settings.agents.values()}
        servers = core.servers
        self._router_queues = {q: tuple(servers.router_queue(q, s) for s in servers.names)
                               for q in settings.queues}
        self._sweep: Sweep | None = None

    # -- expected waits --------------------------------------------------------------------

    def estimates(self, now: float) -> Sweep:
        """The estimator's latest replay. In the background (the runtime keeps it current
        off the routing path: :class:`acd.runtime.estimates.EstimateRefresher`) as it is;
        else computed here when the core changed, at most every ``SWEEP_EVERY`` seconds
        (a busy engine changes every millisecond), and at least every second (time
        passing moves the estimates)."""
        if self.background:
            found = self.core.background_sweep
            return found if found is not None else Sweep(now, -1)
        sweep = self._sweep
        if sweep is None or now - sweep.now >= 1.0 or (
                sweep.version != self.core.version and now - sweep.now >= SWEEP_EVERY):
            sweep = self._sweep = self.core.estimator.sweep(now)
        return sweep

    @property
    def background(self) -> bool:
        """The runtime refreshes the estimates off the routing path and publishes them
        on the core (:class:`acd.runtime.estimates.EstimateRefresher`)."""
        return self.core.estimates_in_background

    def ewt(self, call_id: str, now: float, *, fresh: bool = False) -> float | None:
        """A waiting caller's expected wait from now (None when unsure). ``fresh``: a
        caller the latest replay has not seen yet (it just arrived) gets a new replay,
        unless one ran in the last 50 ms (never in the background: there it is placed
        by the latest replay's newcomer in its queue, :meth:`Sweep.wait_of`)."""
        sweep = self.estimates(now)
        if fresh and not self.background and call_id not in sweep.calls \
                and now - sweep.now >= 0.05:
            sweep = self._sweep = self.core.estimator.sweep(now)
        call = self.core.calls.get(call_id)
        if call is None:
            return None
        rq = self.core.servers.router_queue(call.queue_id, call.server)
        position = self.core.router.position(call_id) if call_id not in sweep.calls else None
        return sweep.wait_of(call_id, rq, position, now)

    def queue_ewt(self, queue_id: str, now: float) -> float | None:
        """What a caller arriving in the queue now would wait (None when unsure)."""
        sweep = self.estimates(now)
        told = [e.seconds for rq in self._router_queues.get(queue_id, ())
                if (e := sweep.newcomer.get(rq)) is not None and e.sure
                and e.seconds is not None]
        return max(0.0, min(told) - (now - sweep.now)) if told else None

    # -- queues --------------------------------------------------------------------------

    def presences(self) -> dict[str, str]:
        return {a.agent_id: presence_of(a) for a in self.core.agents.values()}

    def queues(self, now: float) -> list[QueueRead]:
        presences = self.presences()
        return [self._queue(q, presences, now) for q in self.core.settings.queues.values()]

    def queue(self, queue_id: str, now: float) -> QueueRead | None:
        q = self.core.settings.queues.get(queue_id)
        return None if q is None else self._queue(q, self.presences(), now)

    def waiting(self, queue_id: str) -> int:
        router = self.core.router
        return sum(router.waiting(rq) for rq in self._router_queues[queue_id])

    def oldest_entry(self, queue_id: str) -> float | None:
        """Entry time of the longest-waiting call of the queue (None: nobody waits)."""
        router = self.core.router
        oldest: float | None = None
        for rq in self._router_queues[queue_id]:
            for key, _ in router.waiting_in(rq):
                if oldest is None or key[1] < oldest:
                    oldest = key[1]
        return oldest

    def _queue(self, q: QueueSettings, presences: Mapping[str, str], now: float) -> QueueRead:
        counts = dict.fromkeys(PRESENCES, 0)
        for aid in self.members.get(q.id, ()):
            p = presences.get(aid)
            if p is not None:
                counts[p] += 1
        oldest = self.oldest_entry(q.id)
        figures = self.core.figures
        return QueueRead(
            id=q.id, name=q.label, priority=q.priority, sl_target=q.sl_target,
            waiting=self.waiting(q.id),
            longest_wait=max(0.0, now - oldest) if oldest is not None else 0.0,
            ringing=self.core.live_count(q.id, CallState.OFFERED),
            connected=self.core.live_count(q.id, CallState.CONNECTED),
            agents=counts,
            rolling=figures.window(q.id, Window.ROLLING, now),
            today=figures.window(q.id, Window.TODAY, now),
            ewt=self.queue_ewt(q.id, now),
        )

    # -- agents --------------------------------------------------------------------------

    def agents(self) -> list[AgentRead]:
        return [self._agent(a) for a in self.core.agents.values()]

    def agent(self, agent_id: str) -> AgentRead | None:
        a = self.core.agents.get(agent_id)
        return None if a is None else self._agent(a)

    def _agent(self, a: Agent) -> AgentRead:
        return AgentRead(
            id=a.agent_id, name=self.names.get(a.agent_id, "") or a.agent_id,
            status=a.status.value, reason=a.reason, state=a.state.value,
            presence=presence_of(a), device=a.device_shown, call_id=a.call_id,
            queues=tuple(self.queues_of.get(a.agent_id, ())), answered=a.answered,
            missed=a.missed)

    # -- calls ---------------------------------------------------------------------------

    def call(self, call_id: str, now: float) -> CallRead | None:
        c = self.core.calls.get(call_id)
        if c is None or c.state not in LIVE_CALL_STATES:
            return None
        if c.state is not CallState.WAITING:
            return call_read(c, None, now)
        return call_read(c, self.core.router.position(call_id), now, self.ewt(call_id, now))

    def calls(self, now: float, *, agent: str | None = None, queue: str | None = None,
              state: CallState | None = None, cursor: str | None = None,
              limit: int | None = None) -> CallPage:
        """Live calls: waiting ones first, in each queue's router order (with their
        position), then those ringing or talking (by queue, then entry). Filtered by the
        agent holding them, the queue, the state; ``limit`` per page, ``cursor`` from the
        previous page. Raises :class:`BadCursor` for a cursor not handed out here."""
        after = _decode(cursor) if cursor else None
        keyed = self._page_keys(agent=agent, queue=queue, state=state)
        if after is not None:
            keyed = (kc for kc in keyed if kc[0] > after)
        if limit is None:
            page = sorted(keyed, key=lambda kc: kc[0])
            more = False
        else:
            page = heapq.nsmallest(limit + 1, keyed, key=lambda kc: kc[0])
            more = len(page) > limit
            page = page[:limit]
        positions = self._positions([c for k, c in page if k[0] == 0])
        reads = tuple(call_read(c, positions.get(c.call_id), now,
                                self.ewt(c.call_id, now) if k[0] == 0 else None)
                      for k, c in page)
        return CallPage(reads, _encode(page[-1][0]) if more and page else None)

    def _page_keys(self, *, agent: str | None, queue: str | None,
                   state: CallState | None) -> Iterator[tuple[_PageKey, Call]]:
        core = self.core
        calls = core.calls
        if agent is None and state in (None, CallState.WAITING):
            qids = [queue] if queue is not None else list(self._router_queues)
            for qid in qids:
                for rq in self._router_queues.get(qid, ()):
                    for key, call_id in core.router.waiting_in(rq):
                        call = calls.get(call_id)
                        if call is not None and call.state is CallState.WAITING:
                            yield (0, call.queue_id, key, call_id), call
        if state is CallState.WAITING:
            return
        for call in calls.values():
            if call.state not in _ACTIVE:
                continue
            if agent is not None and call.agent_id != agent:
                continue
            if queue is not None and call.queue_id != queue:
                continue
            if state is not None and call.state is not state:
                continue
            yield (1, call.queue_id, call.entry_time, call.seq, call.call_id), call

    def _positions(self, waiting: list[Call]) -> dict[str, int]:
        """Router-order positions of a page's waiting calls (one count per router queue
        in the page, then one step per call)."""
        router = self.core.router
        by_rq: dict[str, list[Call]] = defaultdict(list)
        for c in waiting:
            if c.waiting is not None:
                by_rq[c.waiting.queue_id].append(c)
        out: dict[str, int] = {}
        for rq, page_calls in by_rq.items():
            keys = [(router.order_key(c.call_id), c) for c in page_calls]
            keys = [(k, c) for k, c in keys if k is not None]
            if not keys:
                continue
            keys.sort(key=lambda kc: kc[0])  # type: ignore[arg-type,return-value]
            first = keys[0][0]
            assert first is not None
            ahead = sum(1 for k, _ in router.waiting_in(rq) if k < first)
            for i, (_, c) in enumerate(keys):
                out[c.call_id] = ahead + 1 + i
        return out

    def call_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in (CallState.WAITING, *_ACTIVE)}
        for (_, state), n in self.core.live_counts().items():
            counts[state.value] += n
        return counts

    # -- sites and regions ---------------------------------------------------------------

    def sites(self, now: float) -> list[SiteRead]:
        return [self._site(s, now) for s in self.core.settings.sites.values()]

    def site(self, site_id: str, now: float) -> SiteRead | None:
        s = self.core.settings.sites.get(site_id)
        return None if s is None else self._site(s, now)

    def _site(self, s: SiteSettings, now: float) -> SiteRead:
        st = self.core.partners.stats.get(s.id)
        return SiteRead(
            id=s.id, name=s.name or s.id, kind=s.kind.value, regions=tuple(sorted(s.regions)),
            services=tuple(sorted(s.services)), capacity=s.capacity,
            active=st.active if st else 0, offered=st.offered if st else 0,
            answered=st.answered if st else 0, rejected=st.rejected if st else 0,
            open=self.core.partners.is_open(s.id, now), preference=s.preference)

    def regions(self) -> list[RegionRead]:
        """Regions with calls since the engine started, plus the configured policy regions
        (zeros until a call comes)."""
        stats = self.core.region_stats
        codes = sorted({*stats, *self.core.settings.regions.policy_regions})
        out = []
        for code in codes:
            st = stats.get(code)
            out.append(RegionRead(
                region=code, name=REGION_NAMES.get(code, ("", ""))[0],
                calls=st.calls if st else 0, answered=st.answered if st else 0,
                abandoned=st.abandoned if st else 0, overflowed=st.overflowed if st else 0))
        return out

    # -- explanations --------------------------------------------------------------------

    def explanation(self, call_id: str) -> ExplanationRead | None:
        c = self.core.calls.get(call_id)
        if c is None or c.state not in LIVE_CALL_STATES:
            return None
        return ExplanationRead(c.call_id, c.queue_id, c.state.value, c.region, c.site_id,
                               tuple(self.core.explain(call_id)), dict(c.decision))

    # -- a plain snapshot (logs, tests, debugging) ---------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        """Queues, agents and calls as plain data (small engines only: it walks all)."""
        return {
            "queues": {q.id: {"waiting": q.waiting, "ringing": q.ringing,
                              "connected": q.connected} for q in self.queues(now)},
            "agents": {
                a.agent_id: {"status": a.status.value, "reason": a.reason,
                             "state": a.state.value, "device": a.device_shown,
                             "phone_free": a.phone_free, "answered": a.answered,
                             "missed": a.missed}
                for a in self.core.agents.values()
            },
            "calls": {
                c.call_id: {"queue": c.queue_id, "state": c.state.value, "agent": c.agent_id,
                            "caller": c.caller, "entry_time": c.entry_time}
                for c in self.core.calls.values()
            },
        }


def call_read(c: Call, position: int | None, now: float,
              ewt: float | None = None) -> CallRead:
    answered = c.answered_at
    wait = (answered if answered is not None else now) - c.entry_time
    return CallRead(
        id=c.call_id, queue=c.queue_id, caller=c.caller, state=c.state.value,
        priority=c.priority, position=position, wait=max(0.0, wait),
        entry_time=c.entry_time, agent=c.agent_id,
        talk=now - answered if answered is not None else None,
        segment=c.segment, region=c.region, region_source=c.region_source,
        site=c.site_id, did=c.did, menu_choice=c.menu_choice, stage=c.stage, ewt=ewt)


def _encode(key: _PageKey) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> _PageKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise BadCursor("not a cursor of this API") from exc
    if not isinstance(value, list) or not value or value[0] not in (0, 1):
        raise BadCursor("not a cursor of this API")
    if value[0] == 0:
        if len(value) != 4 or not isinstance(value[2], list) or len(value[2]) != 3:
            raise BadCursor("not a cursor of this API")
        return (0, str(value[1]), tuple(value[2]), str(value[3]))
    if len(value) != 5:
        raise BadCursor("not a cursor of this API")
    return (1, str(value[1]), value[2], value[3], str(value[4]))
