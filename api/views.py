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

from acd.core import Agent, Call, CallState
from acd.stats import LiveStats, Window, WindowFigures, agent_presence, queue_members
from api.models import (
    AgentCounts,
    AgentView,
    CallsView,
    CallView,
    Presence,
    QueueView,
    WindowView,
)

if TYPE_CHECKING:
    from acd.config import QueueConfig
    from acd.engine import Engine


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
            presence=_presence(a), device=a.device_state, call_id=a.call_id,
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


_LIVE = (CallState.WAITING, CallState.OFFERED, CallState.CONNECTED)


def _order(c: Call) -> tuple[int, float, int]:
    """Queue order: priority first, then seniority (entry time, arrival sequence)."""
    return (-c.priority, c.entry_time, c.seq)


def _presence(a: Agent) -> Presence:
    return Presence(agent_presence(a.status.value, a.state.value, a.device_state))


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
