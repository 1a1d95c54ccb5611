"""Read-only views of the engine's live state, built on the engine's loop.

Every function here runs synchronously on the event loop that runs the engine, so it
reads one consistent state between two inbox steps (the engine has one writer; the API
never mutates the core). Nothing here awaits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from acd.config import SiteKind
from acd.domain.core import Agent, Call, CallState
from acd.domain.figures import LiveStats, Window, WindowFigures, agent_presence, queue_members
from api.models import (
    AgentCounts,
    AgentView,
    CallExplanation,
    CallsView,
    CallView,
    Decision,
    Exclusions,
    Presence,
    QueueView,
    RegionView,
    SiteExclusion,
    SiteView,
    WindowView,
)
from routing.regions import REGION_NAMES

if TYPE_CHECKING:
    from acd.config import QueueConfig, SiteConfig
    from acd.runtime.engine import Engine


class LiveViews:
    """Views over one engine (and the per-window stats fed by it)."""

    def __init__(self, engine: Engine, stats: LiveStats) -> None:
        self.engine = engine
        self.stats = stats
        config = engine.config
        self.members = queue_members(config)
        self.queues_of: dict[str, list[str]] = defaultdict(list)
        for qid, agents in self.members.items():
            for aid in agents:
                self.queues_of[aid].append(qid)
        self.names = {a.id: a.name for a in config.agents}
        #: Opening hours of every site (the core keeps the partners' only).
        self.site_schedules = {s.id: config.site_schedule(s) for s in config.sites}

    def now(self) -> float:
        return self.engine.clock()

    # -- queues --------------------------------------------------------------------------

    def queues(self) -> list[QueueView]:
        now = self.now()
        by_queue = self._calls_by_queue()
        presences = self._presences()
        return [self._queue(q, by_queue.get(q.id, []), presences, now)
                for q in self.engine.config.queues]

    def queue(self, queue_id: str) -> QueueView | None:
        for q in self.engine.config.queues:
            if q.id == queue_id:
                calls = [c for c in self.engine.core.calls.values() if c.queue_id == q.id]
                return self._queue(q, calls, self._presences(), self.now())
        return None

    def _queue(self, q: QueueConfig, calls: list[Call], presences: dict[str, Presence],
               now: float) -> QueueView:
        waiting = [c for c in calls if c.state is CallState.WAITING]
        counts = dict.fromkeys(Presence, 0)
        for aid in self.members.get(q.id, ()):
            if aid in presences:
                counts[presences[aid]] += 1
        return QueueView(
            id=q.id, name=q.name or q.id, priority=q.priority, sl_target_seconds=q.sl_target,
            waiting=len(waiting),
            longest_wait_seconds=round(max((now - c.entry_time for c in waiting), default=0.0),
                                       3),
            ringing=sum(1 for c in calls if c.state is CallState.OFFERED),
            connected=sum(1 for c in calls if c.state is CallState.CONNECTED),
            agents=AgentCounts(**{p.value: n for p, n in counts.items()}),
            rolling_15m=window_view(self.stats.window(q.id, Window.ROLLING, now)),
            today=window_view(self.stats.window(q.id, Window.TODAY, now)),
        )

    def _calls_by_queue(self) -> dict[str, list[Call]]:
        out: dict[str, list[Call]] = defaultdict(list)
        for c in self.engine.core.calls.values():
            out[c.queue_id].append(c)
        return out

    # -- agents --------------------------------------------------------------------------

    def _presences(self) -> dict[str, Presence]:
        return {aid: _presence(a) for aid, a in self.engine.core.agents.items()}

    def agents(self) -> list[AgentView]:
        return [self._agent(a) for a in self.engine.core.agents.values()]

    def agent(self, agent_id: str) -> AgentView | None:
        a = self.engine.core.agents.get(agent_id)
        return None if a is None else self._agent(a)

    def _agent(self, a: Agent) -> AgentView:
        return AgentView(
            id=a.agent_id, name=self.names.get(a.agent_id, "") or a.agent_id,
            status=a.status.value, reason=a.reason,
            state=a.state.value,
            presence=_presence(a), device=a.device_shown, call_id=a.call_id,
            queues=list(self.queues_of.get(a.agent_id, [])), answered=a.answered,
            missed=a.missed,
        )

    # -- calls ---------------------------------------------------------------------------

    def calls(self, agent_id: str | None = None) -> CallsView:
        """All live calls, or only those an agent holds (ringing or connected)."""
        now = self.now()
        waiting: list[CallView] = []
        active: list[CallView] = []
        for c, position in self._ordered():
            if agent_id is not None and c.agent_id != agent_id:
                continue
            view = call_view(c, position, now)
            (waiting if c.state is CallState.WAITING else active).append(view)
        return CallsView(waiting=waiting, active=active)

    def call(self, call_id: str) -> CallView | None:
        c = self.engine.core.calls.get(call_id)
        if c is None or c.state not in _LIVE:
            return None
        position = None
        if c.state is CallState.WAITING:
            ahead = [o for o in self.engine.core.calls.values()
                     if o.queue_id == c.queue_id and o.state is CallState.WAITING
                     and _order(o) < _order(c)]
            position = len(ahead) + 1
        return call_view(c, position, self.now())

    def _ordered(self) -> Iterable[tuple[Call, int | None]]:
        calls = sorted((c for c in self.engine.core.calls.values() if c.state in _LIVE),
                       key=lambda c: (c.queue_id, _order(c)))
        places: dict[str, int] = defaultdict(int)
        for c in calls:
            if c.state is CallState.WAITING:
                places[c.queue_id] += 1
                yield c, places[c.queue_id]
            else:
                yield c, None

    def call_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in _LIVE}
        for c in self.engine.core.calls.values():
            if c.state in _LIVE:
                counts[c.state.value] += 1
        return counts


    # -- sites and regions ---------------------------------------------------------------

    def sites(self) -> list[SiteView]:
        now = self.now()
        return [self._site(s, now) for s in self.engine.config.sites]

    def site(self, site_id: str) -> SiteView | None:
        for s in self.engine.config.sites:
            if s.id == site_id:
                return self._site(s, self.now())
        return None

    def _site(self, s: SiteConfig, now: float) -> SiteView:
        st = self.engine.core.site_stats.get(s.id)
        return SiteView(
            id=s.id, name=s.name or s.id, kind=s.kind.value, regions=list(s.regions),
            services=list(s.services), capacity=s.capacity,
            active=st.active if st else 0, offered=st.offered if st else 0,
            answered=st.answered if st else 0, rejected=st.rejected if st else 0,
            open=self.site_open(s, now), preference=s.preference,
        )

    def site_open(self, s: SiteConfig, now: float) -> bool:
        core = self.engine.core
        if s.kind is SiteKind.PARTNER and any(p.site_id == s.id for p in core.partners):
            return core.partner_open(s.id, now)
        return self.site_schedules[s.id].is_open(_dt(now))

    def regions(self) -> list[RegionView]:
        """Regions with calls since the engine started, plus the configured policy regions
        (zeros until a call comes)."""
        stats = self.engine.core.region_stats
        codes = sorted({*stats, *self.engine.config.regions.policies})
        out = []
        for code in codes:
            st = stats.get(code)
            out.append(RegionView(
                region=code, name=REGION_NAMES.get(code, ("", ""))[0],
                calls=st.calls if st else 0, answered=st.answered if st else 0,
                abandoned=st.abandoned if st else 0, overflowed=st.overflowed if st else 0))
        return out

    # -- explanations --------------------------------------------------------------------

    def explanation(self, call_id: str) -> CallExplanation | None:
        c = self.engine.core.calls.get(call_id)
        if c is None or c.state not in _LIVE:
            return None
        lines = self.engine.core.explain(call_id)
        d = c.decision
        decision = None
        if d:
            excluded = d.get("excluded")
            decision = Decision(stage=_int(d.get("stage")), strategy=_str(d.get("strategy")),
                                candidates=_int(d.get("candidates")),
                                agent=_str(d.get("agent")), site=_str(d.get("site")),
                                excluded=(Exclusions.model_validate(excluded)
                                          if isinstance(excluded, dict) else None),
                                excluded_sites=[SiteExclusion.model_validate(e) for e in
                                                d.get("excluded_sites") or ()])
        return CallExplanation(call_id=c.call_id, queue=c.queue_id, state=c.state.value,
                               region=c.region, site=c.site_id, lines=list(lines),
                               decision=decision)


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None


def _str(v: object) -> str | None:
    return None if v is None or v == "" else str(v)


_LIVE = (CallState.WAITING, CallState.OFFERED, CallState.CONNECTED)


def _order(c: Call) -> tuple[int, float, int]:
    """Queue order: priority first, then seniority (entry time, arrival sequence)."""
    return (-c.priority, c.entry_time, c.seq)


def _presence(a: Agent) -> Presence:
    return Presence(agent_presence(a.status.value, a.state.value, a.phone_free))


def call_view(c: Call, position: int | None, now: float) -> CallView:
    answered = c.answered_at
    wait = (answered if answered is not None else now) - c.entry_time
    return CallView(
        id=c.call_id, queue=c.queue_id, caller=c.caller,
        state=c.state.value,
        priority=c.priority, position=position, wait_seconds=round(max(0.0, wait), 3),
        entry_time=_dt(c.entry_time), agent=c.agent_id,
        talk_seconds=round(now - answered, 3) if answered is not None else None,
        segment=getattr(c, "segment", ""),
        region=c.region, site=c.site_id,
    )


def window_view(fig: WindowFigures) -> WindowView:
    c = fig.counts
    return WindowView(
        window=fig.window, since=_dt(fig.since), offered=c.offered, answered=c.answered,
        answered_within_target=c.answered_within_target, abandoned=c.abandoned,
        abandoned_after_target=c.abandoned_after_target, overflowed=c.overflowed,
        closed=c.closed, completed=c.handled, service_level=_r(fig.service_level, 4),
        asa_seconds=_r(fig.asa, 3), aht_seconds=_r(fig.aht, 3),
        abandon_rate=_r(fig.abandon_rate, 4),
    )


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
