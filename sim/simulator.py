"""``acd simulate``: a simulated day through the real routing core, on a virtual clock.

The normal ACD config (queues, agents and their skills, escalation stages, strategies)
plus a *scenario* YAML (arrival profile, handle times, caller patience, ring time, agent
shifts) drive :class:`acd.domain.core.EngineCore` — the very state machine ``acd serve`` runs —
through a discrete-event simulation: a heap of ``(time, seq, kind, payload)`` feeds the
core ``CallArrived``, ``CallAnswered``, ``DialFinished``, ``CallHungUp`` and
``SetAgentStatus`` events at virtual times, and the simulator carries out the effects it
returns, as the engine's adapters would:

* ``Offer`` → the agent picks up after ``ring_time`` (``CallAnswered``; ``DialFinished``
  ANSWER after the call's talk time), or, with probability ``no_answer_probability``,
  does not (``DialFinished`` NOANSWER after the engine's ``ring_timeout``); the core then
  pauses the agent (``rona_action: pause``) and the simulated agent makes itself available
  again after ``rona_recovery`` seconds, as a person would;
* ``StartTimer`` → its event is applied at now + delay (wrap-up end, escalation stage);
* a fact (``CallConnected``, ``CallAbandoned`` …) → the per-queue figures (offered,
  answered, waits, abandons, talk time), by the formulas of ``acd.domain.figures``;
  agent busy/available time is read from the core's agent records after each event.

A caller whose patience runs out while waiting or ringing hangs up (``CallHungUp``).
Partner sites (``Offer`` with a ``site_id``) pick up after the ring time too, or not with
the same no-answer probability; the core hears of a partner's answer when ``Dial``
returns (``DialFinished`` ANSWER with the talk time), and the caller no longer hangs up in
between. A caller reaching a queue outside its hours gets the closed action — unless an
open partner covering the caller's region (drawn from the scenario's ``regions`` shares)
offers the service: the core's own admission (:mod:`acd.domain.admission`) decides.

Figures per queue follow ACD_SPEC §5: service level = answered within the queue's
``sl_target`` ÷ (answered + abandoned after the target); ASA = mean wait of answered calls
(entry to pick-up, so it includes the ring time); abandon rate = abandoned ÷ (answered +
abandoned); AHT = talk + wrap-up per completed call; P(wait) = share of calls no agent was
free for on arrival; occupancy = busy (ringing, talking, wrap-up) ÷ staffed time, paused
time excluded.

For a queue whose agents serve no other queue of the scenario and that no partner site
takes (single-skill), the Erlang figures are printed alongside: Erlang C, or Erlang A
when callers have a patience. The day is cut at every change of arrival rate or
staffing, each piece is taken as a steady state (closed hours left out) and the pieces
are weighted by their expected calls; the agents counted are those eligible at the
queue's widest stage. The Erlang handle time is the time an agent is held per call: ring
time + mean talk + the queue's wrap-up; an answered caller's wait is its queue wait plus
the ring time. Ring-no-answer is not in the model.

Times of day are ``"HH:MM"`` (quote them or not: YAML's base-60 integers are not used),
local to the config's time zone on the scenario's ``date``. The simulator counts seconds
from that local midnight; the core is handed epoch seconds (``Simulation.epoch0`` + that),
so queue and partner hours and holidays apply as in production.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from datetime import date as Date
from typing import Any

from acd.config import Config
from acd.config.settings import settings_from
from acd.domain import (
    HOURS_START,
    AgentState,
    AgentStatus,
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallState,
    CloseCall,
    DialFinished,
    Effect,
    EngineCore,
    Event,
    ExitCall,
    Fact,
    HoursDue,
    Offer,
    SetAgentStatus,
    StartTimer,
)
from acd.domain import figures as formulas
from acd.domain.callbacks import CallbackFinished
from acd.domain.events import RequestCallback
from acd.domain.facts import (
    AgentNoAnswer,
    CallAbandoned,
    CallClosed,
    CallCompleted,
    CallConnected,
    CallExited,
    CallOverflowed,
    CallWaiting,
    PartnerRejected,
)
from routing import AgentSpec
from sim.erlang import ErlangFigures, erlang_figures, single_skill_queues
from sim.scenario import ArrivalWindow, Scenario, day_epoch

# -- results --------------------------------------------------------------------------------


@dataclass(slots=True)
class QueueFigures:
    """What happened to the callers counted (those after the warm-up) of one queue — or,
    as a tally of callers, of one region, one hour of arrival, or all of them."""

    #: The queue's service-level target (``None`` for a tally across queues: each call
    #: is then judged by its own queue's target).
    sl_target: float | None
    offered: int = 0
    answered: int = 0
    answered_within_target: int = 0
    abandoned: int = 0
    abandoned_after_target: int = 0
    #: Calls no agent was free for when they arrived.
    queued_on_arrival: int = 0
    wait_answered_total: float = 0.0
    wait_abandoned_total: float = 0.0
    handled: int = 0
    talk_total: float = 0.0
    wrap_total: float = 0.0
    #: Calls neither answered nor abandoned when the clock stopped.
    unanswered_at_end: int = 0
    rona: int = 0
    #: Calls offered to a partner site (once per call), and answered there.
    overflowed: int = 0
    answered_by_partner: int = 0
    #: Callers who reached the queue outside its hours: the closed action (not offered).
    closed: int = 0
    #: Callers who left the line by a queue exit (``exits.max_wait`` …, the queue closing
    #: with ``on_close: closed``): never counted as abandoned.
    exits: int = 0
    #: … of which the exit ended the call (voicemail, a message): sent away.
    exits_ended: int = 0
    #: Callers moved here by another queue's exit (``to: queue``).
    transferred_in: int = 0
    #: Callbacks: callers offered one (an exit to: callback), those who took it, those
    #: that reached the customer (answered), failed; seconds from the request to the
    #: customer's answer (total), and the callers' expected waits when they asked.
    callbacks_offered: int = 0
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    callbacks_failed: int = 0
    callback_delay_total: float = 0.0
    callback_ewt_total: float = 0.0
    callback_ewt_count: int = 0

    # The figures' one definition (acd.domain.figures), as the live view and reports.

    @property
    def service_level(self) -> float | None:
        """ACD_SPEC §5: answered within T ÷ (answered + abandoned after T) — over the
        callers who reached an open queue and stayed in line."""
        return formulas.service_level(self.answered_within_target, self.answered,
                                      self.abandoned_after_target)

    @property
    def service_level_all(self) -> float | None:
        """The same, every caller counted: those sent away (closed, or ended by an exit)
        count as not answered within T."""
        return formulas.service_level(self.answered_within_target, self.answered,
                                      self.abandoned_after_target + self.sent_away)

    @property
    def callers(self) -> int:
        """Everyone who called: put in line (offered) or sent away at once (closed)."""
        return self.offered + self.closed

    @property
    def sent_away(self) -> int:
        """Callers nobody answered because the queue was closed or an exit ended it."""
        return self.closed + self.exits_ended

    @property
    def sent_away_rate(self) -> float | None:
        return self.sent_away / self.callers if self.callers else None

    @property
    def asa(self) -> float | None:
        return formulas.asa(self.wait_answered_total, self.answered)

    @property
    def abandon_rate(self) -> float | None:
        return formulas.abandon_rate(self.abandoned, self.answered)

    @property
    def p_wait(self) -> float | None:
        return self.queued_on_arrival / self.offered if self.offered else None

    @property
    def aht(self) -> float | None:
        return formulas.aht(self.talk_total, self.wrap_total, self.handled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "callers": self.callers, "offered": self.offered, "answered": self.answered,
            "answered_within_target": self.answered_within_target,
            "abandoned": self.abandoned, "abandoned_after_target": self.abandoned_after_target,
            "unanswered_at_end": self.unanswered_at_end, "rona": self.rona,
            "sl_target": self.sl_target, "service_level": self.service_level,
            "service_level_all": self.service_level_all,
            "asa": self.asa, "p_wait": self.p_wait, "abandon_rate": self.abandon_rate,
            "aht": self.aht, "handled": self.handled, "overflowed": self.overflowed,
            "answered_by_partner": self.answered_by_partner, "closed": self.closed,
            "exits": self.exits, "exits_ended": self.exits_ended,
            "transferred_in": self.transferred_in, "sent_away": self.sent_away,
            "sent_away_rate": self.sent_away_rate,
            **({"callbacks_offered": self.callbacks_offered,
                "callbacks_requested": self.callbacks_requested,
                "callbacks_completed": self.callbacks_completed,
                "callbacks_failed": self.callbacks_failed,
                "callback_delay_mean": (self.callback_delay_total / self.callbacks_completed
                                        if self.callbacks_completed else None),
                "callback_promised_ewt_mean": (
                    self.callback_ewt_total / self.callback_ewt_count
                    if self.callback_ewt_count else None)}
               if self.callbacks_offered else {}),
        }


@dataclass(slots=True)
class SiteFigures:
    """One partner site over the counted part of the day."""

    capacity: int
    #: Offers to the site (a call tried twice counts twice), answered there, and not
    #: taken (busy, no answer, unreachable).
    offered: int = 0
    answered: int = 0
    rejected: int = 0
    handled: int = 0
    talk_total: float = 0.0
    #: Seconds × calls the site's capacity was held (from the offer to the hang-up).
    busy: float = 0.0
    peak: int = 0
    #: Seconds the site was open.
    open_seconds: float = 0.0

    @property
    def utilisation(self) -> float | None:
        """Capacity held ÷ capacity open."""
        room = self.capacity * self.open_seconds
        return self.busy / room if room > 0 else None

    @property
    def mean_talk(self) -> float | None:
        return self.talk_total / self.handled if self.handled else None

    def to_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "offered": self.offered,
                "answered": self.answered, "rejected": self.rejected,
                "handled": self.handled, "talk_s": self.talk_total, "busy_s": self.busy,
                "peak": self.peak, "open_s": self.open_seconds,
                "utilisation": self.utilisation}


@dataclass(slots=True)
class AgentTime:
    """Seconds of one agent (counted after the warm-up)."""

    staffed: float = 0.0  # logged in, or still busy with a call after logging out
    busy: float = 0.0  # ringing, on a call or in wrap-up
    paused: float = 0.0  # paused and idle
    answered: int = 0

    @property
    def available(self) -> float:
        return self.staffed - self.paused

    def add(self, other: AgentTime) -> None:
        self.staffed += other.staffed
        self.busy += other.busy
        self.paused += other.paused
        self.answered += other.answered

    def to_dict(self) -> dict[str, Any]:
        return {"staffed_s": self.staffed, "busy_s": self.busy, "paused_s": self.paused,
                "answered": self.answered, "occupancy": occupancy(self)}


def occupancy(t: AgentTime) -> float | None:
    return t.busy / t.available if t.available > 0 else None


#: Why no Erlang figure is given for a queue (codes; the report words them).
NO_AGENTS, SHARED_AGENTS, PARTNERS, EXITS = "no_agents", "shared_agents", "partners", "exits"
#: … callers also come from other queues' exits (``to: queue``): not Poisson arrivals.
TRANSFERS = "transfers"


@dataclass(slots=True)
class QueueResult:
    queue_id: str
    figures: QueueFigures
    #: Agents who may take this queue's calls (at its widest stage).
    pool: tuple[str, ...]
    single_skill: bool
    erlang: ErlangFigures | None = None
    occupancy: AgentTime = field(default_factory=AgentTime)
    #: Why there is no Erlang figure (``None`` when there is one).
    no_erlang: str | None = None


@dataclass(slots=True)
class SimResult:
    seed: int
    date: Date
    start: float
    end: float
    measure_from: float
    queues: dict[str, QueueResult]
    agents: dict[str, AgentTime]
    groups: dict[str, AgentTime]
    events: int
    wall_seconds: float
    core_stats: dict[str, dict[str, Any]]
    #: Every counted caller, whatever the queue.
    callers: QueueFigures = field(default_factory=lambda: QueueFigures(None))
    #: Callers by province (the scenario's ``regions`` shares; else the default region).
    regions: dict[str, QueueFigures] = field(default_factory=dict)
    #: Callers by hour of arrival (hours from the day's local midnight: 8 is 08:00–09:00).
    hours: dict[int, QueueFigures] = field(default_factory=dict)
    #: All agents' time by hour (staffed, busy, paused).
    hour_agents: dict[int, AgentTime] = field(default_factory=dict)
    #: Partner sites.
    sites: dict[str, SiteFigures] = field(default_factory=dict)

    @property
    def overall(self) -> AgentTime:
        total = AgentTime()
        for t in self.agents.values():
            total.add(t)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "date": self.date.isoformat(), "start": self.start,
            "end": self.end,
            "measure_from": self.measure_from, "events": self.events,
            "wall_seconds": self.wall_seconds,
            "queues": {
                qid: {"simulated": {**q.figures.to_dict(),
                                    "occupancy": occupancy(q.occupancy)},
                      "pool": list(q.pool), "single_skill": q.single_skill,
                      "no_erlang": q.no_erlang,
                      "erlang": None if q.erlang is None else q.erlang.to_dict()}
                for qid, q in self.queues.items()
            },
            "callers": self.callers.to_dict(),
            "regions": {r: f.to_dict() for r, f in self.regions.items()},
            "hours": {str(h): f.to_dict() for h, f in self.hours.items()},
            "hour_agents": {str(h): t.to_dict() for h, t in self.hour_agents.items()},
            "sites": {s: f.to_dict() for s, f in self.sites.items()},
            "agents": {aid: t.to_dict() for aid, t in self.agents.items()},
            "groups": {g: t.to_dict() for g, t in self.groups.items()},
            "overall": self.overall.to_dict(),
            "core_stats": self.core_stats,
        }


# -- the simulator --------------------------------------------------------------------------

#: Kinds of simulator events (heap entries are (time, seq, kind, payload)).
_ARRIVE, _APPLY, _ANSWER, _PATIENCE, _RECOVER, _SHIFT_ON, _SHIFT_OFF = range(7)

#: Called after every ``EngineCore.apply``: (core, event, effects). For tests.
ApplyHook = Callable[[EngineCore, Event, list[Effect]], None]

#: Exit actions after which the call is over (the caller was sent away).
_ENDING_EXITS = frozenset({"voicemail", "message"})


#: The number a simulated caller asks to be called back on (any allowed mobile).
SIM_NUMBER = "13800000000"


@dataclass(slots=True)
class _SimCall:
    queue_id: str
    arrived: float
    talk: float
    measured: bool
    #: When a partner site picked up (the core learns it only when the call ends).
    partner_answered: float | None = None
    overflowed: bool = False
    #: The caller's province.
    region: str = ""


@dataclass(slots=True)
class _AgentTrack:
    status: AgentStatus
    state: AgentState
    since: float
    site_open: bool = True
    wrap_queue: str | None = None  # queue of the agent's last completed (counted) call
    wrap_since: float = 0.0
    time: AgentTime = field(default_factory=AgentTime)


def _arrival_times(windows: Sequence[ArrivalWindow], rng: random.Random) -> Iterator[float]:
    """Piecewise-constant Poisson arrivals (memoryless, so each window starts afresh)."""
    for w in sorted(windows, key=lambda w: w.start):
        if w.calls_per_hour <= 0:
            continue
        rate = w.calls_per_hour / 3600.0
        t = w.start
        while True:
            t += rng.expovariate(rate)
            if t >= w.end:
                break
            yield t


def _exponential(rng: random.Random, mean: float) -> Callable[[], float]:
    rate = 1.0 / mean
    return lambda: rng.expovariate(rate)


def _regions(shares: Mapping[str, float], default: str,
             rng: random.Random) -> Callable[[], tuple[str, bool]]:
    """A caller's (region, known) drawn by the scenario's shares."""
    if not shares:
        return lambda: (default, False)
    names, weights = list(shares), list(itertools.accumulate(shares.values()))
    return lambda: (rng.choices(names, cum_weights=weights)[0], True)


def queue_pools(core: EngineCore) -> dict[str, tuple[str, ...]]:
    """Queue → agents who may take its calls at some stage (its widest)."""
    router = core.router
    specs = [AgentSpec(a.id, dict(a.skills), a.groups)
             for a in core.settings.agents.values()]
    pools: dict[str, tuple[str, ...]] = {}
    for qid in core.settings.queues:
        widest = router.stages(core.servers.router_queue(qid, core.servers.default))[-1]
        pools[qid] = tuple(s.agent_id for s in specs if widest.admits(s))
    return pools


def _hour_pieces(start: float, end: float) -> Iterator[tuple[int, float]]:
    """(hour index, seconds) of the span [start, end) cut at whole hours."""
    t = start
    while t < end:
        hour = int(t // 3600.0)
        nxt = min(end, (hour + 1) * 3600.0)
        yield hour, nxt - t
        t = nxt


class Simulation:
    """One simulated day. ``run()`` once; ``on_apply`` sees the core after every event."""

    def __init__(self, config: Config, scenario: Scenario, *, seed: int | None = None,
                 on_apply: ApplyHook | None = None) -> None:
        self.config = config
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        # No per-offer exclusions: nobody reads them here, and they cost as much CPU as
        # the rest of a simulated offer.
        self.core = EngineCore(settings_from(config).with_engine(explain_offers=False))
        self.on_apply = on_apply
        self.pools = queue_pools(self.core)
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._now = 0.0
        self._events = 0
        self._calls: dict[str, _SimCall] = {}
        self._call_ids = itertools.count(1)
        self._figures = {q.id: QueueFigures(float(q.sl_target)) for q in config.queues}
        self._targets = {q.id: float(q.sl_target) for q in config.queues}
        self._all = QueueFigures(None)
        self._by_region: dict[str, QueueFigures] = {}
        self._by_hour: dict[int, QueueFigures] = {}
        self._hour_time: dict[int, AgentTime] = {}
        self._rona_rng = random.Random(f"{self.seed}/rona")
        self._callback_rng = random.Random(f"{self.seed}/callbacks")
        self._callbacks_measured: dict[str, bool] = {}
        #: The core's clock: epoch seconds; the simulator's: seconds from local midnight.
        self.epoch0 = day_epoch(config, scenario.date)
        self._arrivals: dict[str, Iterator[float]] = {}
        self._talk: dict[str, Callable[[], float]] = {}
        self._patience: dict[str, Callable[[], float] | None] = {}
        self._region: dict[str, Callable[[], tuple[str, bool]]] = {}
        for qid, qs in scenario.queues.items():
            self._arrivals[qid] = _arrival_times(qs.arrivals,
                                                 random.Random(f"{self.seed}/{qid}/arrivals"))
            call_rng = random.Random(f"{self.seed}/{qid}/calls")
            self._talk[qid] = qs.handle_time.sampler(call_rng)
            self._patience[qid] = None if qs.patience is None \
                else _exponential(call_rng, qs.patience.mean)
            self._region[qid] = _regions(qs.regions, config.regions.default,
                                         random.Random(f"{self.seed}/{qid}/regions"))
        self.shifts = scenario.agent_shifts(config)
        starts = [w.start for qs in scenario.queues.values() for w in qs.arrivals]
        starts += [s.start for shifts in self.shifts.values() for s in shifts or ()]
        self.start = min(starts) if starts else 0.0
        self.measure_from = self.start + scenario.warmup
        self._on_shift: set[str] = set()
        self._agents = self.core.agents.by_id
        self._tracks = {aid: _AgentTrack(a.status, a.state, self.start, a.site_open)
                        for aid, a in self._agents.items()}
        self._sites = {p.site_id: SiteFigures(p.capacity)
                       for p in self.core.partners.partners}
        self._site_active = dict.fromkeys(self._sites, 0)
        self._site_since = dict.fromkeys(self._sites, self.start)
        self._busy = 0
        self._pending_arrivals = 0
        self._ran = False

    # -- scheduling --------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, payload))

    def _schedule_day(self) -> None:
        # the own sites' and queues' hours: the gates now, then their own timers
        self._push(self.start, _APPLY, HoursDue(HOURS_START, "", self._clock(self.start)))
        for aid in self._agents:
            shifts = self.shifts.get(aid)
            if shifts is None:
                self._push(self.start, _SHIFT_ON, aid)
                continue
            for s in shifts:
                self._push(s.start, _SHIFT_ON, aid)
                self._push(s.end, _SHIFT_OFF, aid)
        for qid, times in self._arrivals.items():
            first = next(times, None)
            if first is not None:
                self._push(first, _ARRIVE, qid)
                self._pending_arrivals += 1

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> SimResult:
        if self._ran:
            raise RuntimeError("a Simulation runs once")
        self._ran = True
        wall = time.perf_counter()
        self._schedule_day()
        heap, until = self._heap, self.scenario.until
        core_calls = self.core.calls
        end = self.start
        while heap:
            at, _, kind, payload = heapq.heappop(heap)
            if until is not None and at > until:
                end = until
                break
            self._now = end = at
            if kind == _APPLY:
                self._apply(payload)
            elif kind == _ANSWER:
                self._answer(*payload)
            elif kind == _ARRIVE:
                self._arrive(payload)
            elif kind == _PATIENCE:
                call = core_calls.get(payload)
                sim = self._calls.get(payload)
                if call is not None and sim is not None and sim.partner_answered is None \
                        and call.state in (CallState.WAITING, CallState.OFFERED):
                    self._apply(CallHungUp(payload, self._clock()))
            elif kind == _RECOVER:
                self._recover(payload)
            elif kind == _SHIFT_ON:
                self._on_shift.add(payload)
                self._apply(SetAgentStatus(payload, AgentStatus.AVAILABLE, self._clock()))
            elif kind == _SHIFT_OFF:
                self._on_shift.discard(payload)
                self._apply(SetAgentStatus(payload, AgentStatus.LOGGED_OUT, self._clock()))
            if not self._pending_arrivals and not core_calls and not self._busy:
                break  # the last caller is done (and every agent has wrapped up)
        return self._result(end, time.perf_counter() - wall)

    def _clock(self, at: float | None = None) -> float:
        """The core's time (epoch seconds) of a simulator time (default: now)."""
        return self.epoch0 + (self._now if at is None else at)

    def _apply(self, event: Event) -> list[Effect]:
        core, now = self.core, self._now
        effects = core.apply(event)
        self._events += 1
        if self.on_apply is not None:
            self.on_apply(core, event, effects)
        agents = self._agents
        touched: set[str] = set()
        agent_id = getattr(event, "agent_id", None)
        if isinstance(agent_id, str) and agent_id in agents:
            touched.add(agent_id)
        facts = False
        for eff in effects:
            if isinstance(eff, Fact):
                facts = True
                agent = getattr(eff, "agent", None)
                if isinstance(agent, str) and agent in agents:
                    touched.add(agent)
                self._observe_fact(eff)
            elif isinstance(eff, Offer):
                if eff.agent_id in agents:
                    touched.add(eff.agent_id)
                self._offer(eff)
            elif isinstance(eff, StartTimer):
                self._push(now + eff.delay, _APPLY, eff.event)
            elif isinstance(eff, ExitCall) and eff.callback:
                self._callback_exit(eff)
        for aid in touched:
            self._observe(aid)
        if facts and self._sites:
            self._observe_sites()
        return effects

    def _arrive(self, queue_id: str) -> None:
        now, clock = self._now, self._clock()
        call_id = f"c{next(self._call_ids)}"
        measured = now >= self.measure_from
        talk = self._talk[queue_id]()
        patience = self._patience[queue_id]
        wait_for = None if patience is None else patience()
        region, known = self._region[queue_id]()
        nxt = next(self._arrivals[queue_id], None)
        if nxt is None:
            self._pending_arrivals -= 1
        else:
            self._push(nxt, _ARRIVE, queue_id)
        # The core admits the caller as the engine does (acd.domain.admission): closed
        # outside hours, unless an open partner covering the region takes it first.
        sim = self._calls[call_id] = _SimCall(queue_id, now, talk, measured, region=region)
        effects = self._apply(CallArrived(call_id, queue_id, "simulated", clock, clock,
                                          region=region, region_known=known,
                                          region_source="lookup" if known else "default"))
        if any(isinstance(e, CloseCall | ExitCall) for e in effects):
            self._calls.pop(call_id, None)
            return
        if measured and not any(isinstance(e, Offer) and e.call_id == call_id
                                for e in effects):
            for f in (self._figures[queue_id], *self._tallies(sim)):
                f.queued_on_arrival += 1
        if wait_for is not None and call_id in self.core.calls:
            self._push(now + wait_for, _PATIENCE, call_id)

    def _callback_exit(self, exit_call: ExitCall) -> None:
        """A caller offered a callback: it confirms (``callback_accept``) after
        ``callback_confirm_time`` and hangs up, or just hangs up."""
        sim = self._calls.pop(exit_call.call_id, None)
        if sim is None:
            return
        f = self._figures[sim.queue_id]
        if sim.measured:
            f.callbacks_offered += 1
        if self._callback_rng.random() >= self.scenario.callback_accept:
            return
        if sim.measured:
            f.callbacks_requested += 1
        at = self._now + self.scenario.callback_confirm_time
        self._calls[f"{exit_call.call_id}-cb"] = _SimCall(sim.queue_id, sim.arrived,
                                                          sim.talk, sim.measured)
        self._callbacks_measured[f"{exit_call.call_id}-cb"] = sim.measured
        self._push(at, _APPLY, RequestCallback(exit_call.call_id, SIM_NUMBER,
                                               self._clock(at)))

    def _offer(self, offer: Offer) -> None:
        now, sc = self._now, self.scenario
        if offer.call_id in self.core.callbacks.by_id:
            # the agent answers after the ring time; then the customer's phone rings
            ring = sc.ring_time + sc.callback_ring_time
            if self._callback_rng.random() < sc.callback_answer_probability:
                self._push(now + ring, _ANSWER, (offer.call_id, offer.agent_id))
            else:
                settings = self.core.callbacks.settings
                assert settings is not None
                at = now + sc.ring_time + settings.customer_ring
                self._push(at, _APPLY, DialFinished(offer.call_id, offer.agent_id,
                                                    "CUSTOMER_NOANSWER", self._clock(at)))
            return
        if sc.no_answer_probability and self._rona_rng.random() < sc.no_answer_probability:
            at = self._clock(now + offer.timeout)
            self._push(now + offer.timeout, _APPLY,
                       DialFinished(offer.call_id, offer.agent_id, "NOANSWER", at,
                                    site_id=offer.site_id))
        elif offer.site_id:
            # A partner site picks up after the ring time; the core hears of it when Dial
            # returns, with the talk time (no AMI answer event for a trunk call).
            sim = self._calls[offer.call_id]
            sim.partner_answered = now + sc.ring_time
            end = now + sc.ring_time + sim.talk
            self._push(end, _APPLY, DialFinished(offer.call_id, "", "ANSWER", self._clock(end),
                                                 sim.talk, site_id=offer.site_id))
        else:
            self._push(now + sc.ring_time, _ANSWER, (offer.call_id, offer.agent_id))

    def _answer(self, call_id: str, agent_id: str) -> None:
        now = self._now
        self._apply(CallAnswered(call_id, agent_id, self._clock()))
        call = self.core.calls.get(call_id)
        if call is not None and call.state is CallState.CONNECTED and call.agent_id == agent_id:
            talk = self._calls[call_id].talk
            self._push(now + talk, _APPLY,
                       DialFinished(call_id, agent_id, "ANSWER", self._clock(now + talk), talk))

    def _recover(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        if agent.status is not AgentStatus.PAUSED \
                or agent.reason != self.config.engine.rona_pause_reason:
            return
        status = AgentStatus.AVAILABLE if agent_id in self._on_shift \
            else AgentStatus.LOGGED_OUT
        self._apply(SetAgentStatus(agent_id, status, self._clock()))

    # -- observing the core --------------------------------------------------------------

    def _tallies(self, sim: _SimCall) -> tuple[QueueFigures, QueueFigures, QueueFigures]:
        """The caller-level tallies a call counts in: all callers, its region, its hour."""
        region = self._by_region.get(sim.region)
        if region is None:
            region = self._by_region[sim.region] = QueueFigures(None)
        hour_of = int(sim.arrived // 3600.0)
        hour = self._by_hour.get(hour_of)
        if hour is None:
            hour = self._by_hour[hour_of] = QueueFigures(None)
        return self._all, region, hour

    def _observe_fact(self, fact: Fact) -> None:
        """The figures of the measured callers — per queue, and per caller by region and
        hour of arrival — and of the partner sites, from the core's facts."""
        match fact:
            case CallConnected(call_id=call_id, queue=queue, wait=wait, agent=agent,
                               site=site):
                sim = self._calls[call_id]
                if sim.measured:
                    within = formulas.answered_within(wait, self._targets[queue])
                    by_partner = agent not in self._tracks and bool(site)
                    for f in (self._figures[queue], *self._tallies(sim)):
                        f.answered += 1
                        f.wait_answered_total += wait
                        f.answered_within_target += within
                        f.answered_by_partner += by_partner
                    if agent in self._tracks:
                        self._tracks[agent].time.answered += 1
                    elif site and site in self._sites:
                        self._sites[site].answered += 1
            case CallWaiting(call_id=call_id, queue=queue, reentry=reentry):
                sim = self._calls[call_id]
                if not reentry and sim.measured:
                    for f in (self._figures[queue], *self._tallies(sim)):
                        f.offered += 1
            case CallClosed(call_id=call_id, queue=queue):
                sim_or_none = self._calls.get(call_id)
                if sim_or_none is not None and sim_or_none.measured:
                    for f in (self._figures[queue], *self._tallies(sim_or_none)):
                        f.closed += 1
            case CallCompleted(call_id=call_id, queue=queue, agent=agent, site=site,
                               talk=talk):
                sim = self._calls.pop(call_id)
                if sim.measured:
                    f = self._figures[queue]
                    f.handled += 1
                    f.talk_total += talk
                    if site and site in self._sites:
                        self._sites[site].handled += 1
                        self._sites[site].talk_total += talk
                if agent in self._tracks:
                    self._tracks[agent].wrap_queue = queue if sim.measured else None
            case CallAbandoned(call_id=call_id, queue=queue, wait=wait):
                sim = self._calls.pop(call_id)
                if sim.measured:
                    after = formulas.abandoned_after(wait, self._targets[queue])
                    for f in (self._figures[queue], *self._tallies(sim)):
                        f.abandoned += 1
                        f.wait_abandoned_total += wait
                        f.abandoned_after_target += after
            case CallExited(call_id=call_id, queue=queue, action=action, target=target):
                ends = action in _ENDING_EXITS
                # a callback exit: the caller's line was already handed to its callback
                exited = self._calls.pop(call_id, None) if ends else self._calls.get(call_id)
                if exited is None:
                    return
                sim = exited
                if sim.measured:
                    self._figures[queue].exits += 1
                    if ends:
                        for f in (self._figures[queue], *self._tallies(sim)):
                            f.exits_ended += 1
                    elif target is not None and target in self._figures:
                        self._figures[target].transferred_in += 1
                if target is not None and not ends:
                    sim.queue_id = target
            case CallbackFinished(callback_id=cb_id, queue=queue, outcome=outcome,
                                  delay=delay, ewt=ewt):
                if outcome != "completed":
                    self._calls.pop(cb_id, None)
                if self._callbacks_measured.pop(cb_id, False):
                    f = self._figures[queue]
                    if outcome == "completed":
                        f.callbacks_completed += 1
                        f.callback_delay_total += delay or 0.0
                        if ewt is not None:
                            f.callback_ewt_total += ewt
                            f.callback_ewt_count += 1
                    elif outcome == "failed":
                        f.callbacks_failed += 1
            case AgentNoAnswer(call_id=call_id):
                sim = self._calls[call_id]
                if sim.measured:
                    self._figures[sim.queue_id].rona += 1
            case CallOverflowed(call_id=call_id, site=site):
                sim = self._calls[call_id]
                if sim.measured:
                    if not sim.overflowed:
                        for f in (self._figures[sim.queue_id], *self._tallies(sim)):
                            f.overflowed += 1
                    if site in self._sites:
                        self._sites[site].offered += 1
                sim.overflowed = True
            case PartnerRejected(call_id=call_id, site=site):
                sim_or_none = self._calls.get(call_id)
                if sim_or_none is not None and sim_or_none.measured and site in self._sites:
                    self._sites[site].rejected += 1

    def _observe_sites(self) -> None:
        """Capacity held at each partner site (calls × seconds), from the core's counts."""
        stats, now = self.core.partners.stats, self._now
        for sid, tally in self._sites.items():
            active = stats[sid].active
            last = self._site_active[sid]
            if active == last:
                continue
            start = max(self._site_since[sid], self.measure_from)
            if now > start:
                tally.busy += last * (now - start)
            self._site_since[sid] = now
            self._site_active[sid] = active
            if now >= self.measure_from:
                tally.peak = max(tally.peak, active)

    def _observe(self, agent_id: str) -> None:
        """Account the agent's time since its last change, if its status, state or site's
        hours moved."""
        agent = self._agents[agent_id]
        track = self._tracks[agent_id]
        if agent.status is track.status and agent.state is track.state \
                and agent.site_open is track.site_open:
            return
        now = self._now
        self._accrue(track, now)
        was_busy = track.state is not AgentState.IDLE
        is_busy = agent.state is not AgentState.IDLE
        self._busy += int(is_busy) - int(was_busy)
        if track.state is AgentState.WRAP_UP and agent.state is not AgentState.WRAP_UP:
            if track.wrap_queue is not None:
                self._figures[track.wrap_queue].wrap_total += now - track.wrap_since
            track.wrap_queue = None
        if agent.state is AgentState.WRAP_UP and track.state is not AgentState.WRAP_UP:
            track.wrap_since = now
        if agent.status is AgentStatus.PAUSED and track.status is not AgentStatus.PAUSED \
                and agent.reason == self.config.engine.rona_pause_reason:
            # Paused by the engine for ring-no-answer: back after a while, as people are.
            self._push(now + self.scenario.rona_recovery, _RECOVER, agent_id)
        track.status, track.state, track.site_open = agent.status, agent.state, agent.site_open

    def _accrue(self, track: _AgentTrack, now: float) -> None:
        """Staffed: logged in while an own site of the agent's is open (or it works at
        none), or busy with a call; of which paused (idle) and busy."""
        start = max(track.since, self.measure_from)
        track.since = now
        if now <= start:
            return
        busy = track.state is not AgentState.IDLE
        on_duty = track.status is not AgentStatus.LOGGED_OUT and track.site_open
        if not busy and not on_duty:
            return
        paused = not busy and track.status is AgentStatus.PAUSED
        t = track.time
        hours = self._hour_time
        for hour, span in _hour_pieces(start, now):
            h = hours.get(hour)
            if h is None:
                h = hours[hour] = AgentTime()
            for x in (t, h):
                x.staffed += span
                if busy:
                    x.busy += span
                elif paused:
                    x.paused += span

    # -- the result ------------------------------------------------------------------------

    def _open_seconds(self, site_id: str, start: float, end: float) -> float:
        """Seconds of [start, end) the site is open (by the minute)."""
        site = next(s for s in self.config.sites if s.id == site_id)
        schedule = self.config.site_schedule(site)
        if schedule.always_open:
            return max(0.0, end - start)
        total, t = 0.0, start
        while t < end:
            nxt = min(end, (t // 60.0 + 1.0) * 60.0)
            if schedule.is_open(datetime.fromtimestamp(self.epoch0 + t, UTC)):
                total += nxt - t
            t = nxt
        return total

    def _result(self, end: float, wall: float) -> SimResult:
        self._now = end
        for track in self._tracks.values():
            self._accrue(track, end)
        for call in self.core.calls.values():
            sim = self._calls.get(call.call_id)
            if sim is not None and sim.measured \
                    and call.state in (CallState.WAITING, CallState.OFFERED):
                for f in (self._figures[call.queue_id], *self._tallies(sim)):
                    f.unanswered_at_end += 1
        measured_from = max(self.start, self.measure_from)
        for sid, tally in self._sites.items():
            self._now = end
            start = max(self._site_since[sid], self.measure_from)
            if end > start:
                tally.busy += self._site_active[sid] * (end - start)
            tally.open_seconds = self._open_seconds(sid, measured_from, end)
        agents = {aid: tr.time for aid, tr in self._tracks.items()}
        groups: dict[str, AgentTime] = {}
        for a in self.config.agents:
            for g in a.groups:
                groups.setdefault(g, AgentTime()).add(agents[a.id])
        shown = reported_queues(self.config, self.scenario)
        single = single_skill_queues(self.pools, shown)
        partnered = {qid for qid in shown
                     if any(p.offers(qid) for p in self.core.partners.partners)}
        targets = {t for qid in shown if (t := _exit_target(self.config, qid)) is not None}
        queues: dict[str, QueueResult] = {}
        for qid in shown:
            pool_time = AgentTime()
            for aid in self.pools[qid]:
                pool_time.add(agents[aid])
            exits = self.config.queue(qid).exits
            if not self.pools[qid]:
                why: str | None = NO_AGENTS
            elif qid not in single:
                why = SHARED_AGENTS if qid in self.scenario.queues else TRANSFERS
            elif qid in partnered:
                why = PARTNERS
            elif any(v is not None for v in (exits.max_wait, exits.max_waiting,
                                             exits.max_ewt)):
                why = EXITS
            elif qid in targets:
                why = TRANSFERS
            else:
                why = None
            erl = erlang_figures(self.config, self.scenario, qid, self.pools[qid],
                                 self.measure_from) if why is None else None
            queues[qid] = QueueResult(qid, self._figures[qid], self.pools[qid], why is None,
                                      erl, pool_time, why)
        core_stats = {qid: asdict(self.core.figures.total(qid))
                      for qid in self.core.settings.queues}
        return SimResult(self.seed, self.scenario.date, self.start, end, self.measure_from,
                         queues, agents, groups, self._events, wall, core_stats,
                         self._all, dict(sorted(self._by_region.items())),
                         dict(sorted(self._by_hour.items())),
                         dict(sorted(self._hour_time.items())), self._sites)


def _exit_target(config: Config, queue_id: str) -> str | None:
    """The queue a queue's exit (``exits.action``: ``to: queue``) moves callers to."""
    action = config.queue(queue_id).exits.action
    return None if action is None else action.queue


def reported_queues(config: Config, scenario: Scenario) -> list[str]:
    """The scenario's queues, then those their exits can move callers to (every day the
    same list, so the days' results line up)."""
    out = list(scenario.queues)
    for qid in out:  # grows while it is walked: targets of targets
        target = _exit_target(config, qid)
        if target is not None and target not in out:
            out.append(target)
    return out


def simulate(config: Config, scenario: Scenario, *, seed: int | None = None,
             on_apply: ApplyHook | None = None) -> SimResult:
    """Run one simulated day of ``scenario`` through the routing core of ``config``."""
    return Simulation(config, scenario, seed=seed, on_apply=on_apply).run()
