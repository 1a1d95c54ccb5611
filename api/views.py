"""The API's JSON models of the domain's typed read views (``acd.domain.views``).

Everything here runs synchronously on the engine's event loop, so it reads one
consistent state between two inbox steps (the engine has one writer; the API never
mutates the core). Nothing here awaits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from acd.domain import CallState
from acd.domain.figures import WindowFigures
from acd.domain.views import (
    AgentRead,
    CallRead,
    ExplanationRead,
    LiveView,
    QueueRead,
    RegionRead,
    SiteRead,
)
from acd.runtime.engine import Engine
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


class LiveViews:
    """JSON models over one engine's read views."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.view: LiveView = engine.view

    def now(self) -> float:
        return self.engine.clock()

    # -- queues and agents ---------------------------------------------------------------

    def queues(self) -> list[QueueView]:
        return [queue_view(q) for q in self.view.queues(self.now())]

    def queue(self, queue_id: str) -> QueueView | None:
        q = self.view.queue(queue_id, self.now())
        return None if q is None else queue_view(q)

    def agents(self) -> list[AgentView]:
        now = self.now()
        return [agent_view(a, now) for a in self.view.agents()]

    def agent(self, agent_id: str) -> AgentView | None:
        a = self.view.agent(agent_id)
        return None if a is None else agent_view(a, self.now())

    # -- calls ---------------------------------------------------------------------------

    def calls(self, agent_id: str | None = None, *, queue: str | None = None,
              state: CallState | None = None, cursor: str | None = None,
              limit: int | None = None) -> CallsView:
        """Live calls (waiting in router order with positions, then active), filtered and
        paged (see ``LiveView.calls``; raises ``BadCursor``)."""
        page = self.view.calls(self.now(), agent=agent_id, queue=queue, state=state,
                               cursor=cursor, limit=limit)
        waiting = [call_view(c) for c in page.calls if c.state == CallState.WAITING.value]
        active = [call_view(c) for c in page.calls if c.state != CallState.WAITING.value]
        return CallsView(waiting=waiting, active=active, next_cursor=page.next_cursor)

    def call(self, call_id: str) -> CallView | None:
        c = self.view.call(call_id, self.now())
        return None if c is None else call_view(c)

    def call_counts(self) -> dict[str, int]:
        return self.view.call_counts()

    # -- sites and regions ---------------------------------------------------------------

    def sites(self) -> list[SiteView]:
        return [site_view(s) for s in self.view.sites(self.now())]

    def site(self, site_id: str) -> SiteView | None:
        s = self.view.site(site_id, self.now())
        return None if s is None else site_view(s)

    def regions(self) -> list[RegionView]:
        return [region_view(r) for r in self.view.regions()]

    # -- explanations --------------------------------------------------------------------

    def explanation(self, call_id: str) -> CallExplanation | None:
        e = self.view.explanation(call_id)
        return None if e is None else explanation_view(e)


def queue_view(q: QueueRead) -> QueueView:
    return QueueView(
        id=q.id, name=q.name, priority=q.priority, sl_target_seconds=round(q.sl_target),
        waiting=q.waiting, longest_wait_seconds=round(q.longest_wait, 3),
        ringing=q.ringing, connected=q.connected,
        agents=AgentCounts(**{Presence(p).value: n for p, n in q.agents.items()}),
        rolling_15m=window_view(q.rolling), today=window_view(q.today),
        ewt_seconds=None if q.ewt is None else round(q.ewt, 1))


def agent_view(a: AgentRead, now: float | None = None) -> AgentView:
    return AgentView(
        id=a.id, name=a.name, status=a.status, reason=a.reason, state=a.state,
        presence=Presence(a.presence), device=a.device, call_id=a.call_id,
        queues=list(a.queues), answered=a.answered, missed=a.missed,
        status_seconds=None if now is None else round(max(0.0, now - a.status_since), 1),
        state_seconds=None if now is None else round(max(0.0, now - a.state_since), 1),
        wrap_up_left=None if now is None or a.wrap_up_ends is None
        else round(max(0.0, a.wrap_up_ends - now), 1),
        last_call_id=a.last_call_id)


def call_view(c: CallRead) -> CallView:
    return CallView(
        id=c.id, queue=c.queue, caller=c.caller, state=c.state,
        priority=c.priority, position=c.position, wait_seconds=round(c.wait, 3),
        entry_time=_dt(c.entry_time), agent=c.agent,
        talk_seconds=round(c.talk, 3) if c.talk is not None else None,
        segment=c.segment, region=c.region, site=c.site, region_source=c.region_source,
        did=c.did, menu_choice=c.menu_choice, stage=c.stage,
        ewt_seconds=None if c.ewt is None else round(c.ewt, 1))


def site_view(s: SiteRead) -> SiteView:
    return SiteView(
        id=s.id, name=s.name, kind=s.kind, regions=list(s.regions),
        services=list(s.services), capacity=s.capacity, active=s.active, offered=s.offered,
        answered=s.answered, rejected=s.rejected, open=s.open, preference=s.preference)


def region_view(r: RegionRead) -> RegionView:
    return RegionView(region=r.region, name=r.name, calls=r.calls, answered=r.answered,
                      abandoned=r.abandoned, overflowed=r.overflowed)


def explanation_view(e: ExplanationRead) -> CallExplanation:
    d: Mapping[str, Any] = e.decision
    decision = None
    if d:
        excluded = d.get("excluded")
        decision = Decision(stage=_int(d.get("stage")), strategy=_str(d.get("strategy")),
                            candidates=_int(d.get("candidates")),
                            agent=_str(d.get("agent")), site=_str(d.get("site")),
                            excluded=(Exclusions.model_validate(excluded)
                                      if isinstance(excluded, dict) else None),
                            excluded_sites=[SiteExclusion.model_validate(x) for x in
                                            d.get("excluded_sites") or ()])
    return CallExplanation(call_id=e.call_id, queue=e.queue, state=e.state,
                           region=e.region, site=e.site, lines=list(e.lines),
                           decision=decision)


def window_view(fig: WindowFigures) -> WindowView:
    c = fig.counts
    return WindowView(
        window=fig.window, since=_dt(fig.since), offered=c.offered, answered=c.answered,
        answered_within_target=c.answered_within_target, abandoned=c.abandoned,
        abandoned_after_target=c.abandoned_after_target, overflowed=c.overflowed,
        closed=c.closed, completed=c.handled, service_level=_r(fig.service_level, 4),
        asa_seconds=_r(fig.asa, 3), aht_seconds=_r(fig.aht, 3),
        abandon_rate=_r(fig.abandon_rate, 4),
        callbacks_requested=c.callbacks_requested,
        callbacks_completed=c.callbacks_completed, callbacks_failed=c.callbacks_failed,
        callbacks_cancelled=c.callbacks_cancelled,
        callbacks_answered=c.callbacks_answered, callbacks_told=c.callbacks_told,
        callback_delay_seconds=_r(fig.callback_delay, 3),
        callback_told_ewt_seconds=_r(fig.callback_told_ewt, 3),
        callback_told_delay_seconds=_r(fig.callback_told_delay, 3),
    )


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None


def _str(v: object) -> str | None:
    return None if v is None or v == "" else str(v)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
