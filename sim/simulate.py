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
* ``Publish`` → the per-queue figures (offered, answered, waits, abandons, talk time);
  agent busy/available time is read from the core's agent records after each event.

A caller whose patience runs out while waiting or ringing hangs up (``CallHungUp``).
Partner sites (``Offer`` with a ``site_id``) pick up after the ring time too, or not with
the same no-answer probability; the core hears of a partner's answer when ``Dial``
returns (``DialFinished`` ANSWER with the talk time), and the caller no longer hangs up in
between. A caller reaching a queue outside its hours gets ``CallClosed`` — unless an open
partner covering the caller's region (drawn from the scenario's ``regions`` shares) offers
the service, as in :mod:`acd.runtime.call_flow`.

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

import argparse
import heapq
import itertools
import json
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import date as Date
from datetime import time as clock_time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from acd.config import Config, ConfigError, load_config, yaml_where
from acd.domain.core import (
    AgentState,
    AgentStatus,
    CallAnswered,
    CallArrived,
    CallClosed,
    CallHungUp,
    CallState,
    DialFinished,
    Effect,
    EngineCore,
    Event,
    Offer,
    Publish,
    SetAgentStatus,
    StartTimer,
)
from routing import AgentSpec
from routing.erlang import (
    ErlangA,
    average_speed_of_answer,
    erlang_a,
    erlang_c,
    service_level,
)

DAY = 86_400.0
#: A Monday.
DEFAULT_DATE = Date(2025, 3, 3)

# -- the scenario file ----------------------------------------------------------------------

_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$")


def parse_clock(value: object) -> float:
    """``"08:30"`` or ``"08:30:15"`` → seconds since midnight (``"24:00"`` allowed)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time of day: write it as \"HH:MM\"")
    m = _CLOCK.match(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not a time of day (HH:MM or HH:MM:SS)")
    seconds = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)
    if seconds > DAY:
        raise ValueError(f"{value!r} is after 24:00")
    return float(seconds)


def fmt_clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}" + (f":{s % 60:02d}" if s % 60 else "")


Clock = Annotated[float, BeforeValidator(parse_clock)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ArrivalWindow(_Model):
    """Poisson arrivals at a constant rate from ``from`` to ``to``."""

    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")
    calls_per_hour: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ArrivalWindow:
        if self.end <= self.start:
            raise ValueError(f"'to' ({fmt_clock(self.end)}) must be after 'from' "
                             f"({fmt_clock(self.start)})")
        return self


class HandleTime(_Model):
    """Talk time of an answered call (the queue's wrap-up comes on top)."""

    distribution: Literal["exponential", "lognormal", "constant"] = "exponential"
    mean: float = Field(gt=0)
    #: Standard deviation, lognormal only (default: the mean, as spread as exponential).
    sd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _sd_for_lognormal(self) -> HandleTime:
        if self.sd is not None and self.distribution != "lognormal":
            raise ValueError("sd applies to the lognormal distribution only")
        return self

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        mean = self.mean
        if self.distribution == "constant":
            return lambda: mean
        if self.distribution == "exponential":
            rate = 1.0 / mean
            return lambda: rng.expovariate(rate)
        sd = mean if self.sd is None else self.sd
        sigma = math.sqrt(math.log1p((sd / mean) ** 2))
        mu = math.log(mean) - sigma * sigma / 2.0
        return lambda: rng.lognormvariate(mu, sigma)


class Patience(_Model):
    """How long a caller waits before hanging up."""

    distribution: Literal["exponential"] = "exponential"
    mean: float = Field(gt=0)


def _none_word(value: object) -> object:
    return None if isinstance(value, str) and value.strip().lower() in ("none", "") else value


Region = Annotated[str, Field(pattern=r"^CN-[A-Z]{2,7}$")]


class QueueScenario(_Model):
    arrivals: list[ArrivalWindow] = Field(min_length=1)
    handle_time: HandleTime
    #: ``none`` (or omitted): callers wait as long as it takes.
    patience: Annotated[Patience | None, BeforeValidator(_none_word)] = None
    #: Callers' provinces (ISO 3166-2:CN) → relative share, for partner routing;
    #: omitted: every caller gets the config's default (unknown) region.
    regions: dict[Region, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)

    @field_validator("arrivals")
    @classmethod
    def _no_overlap(cls, v: list[ArrivalWindow]) -> list[ArrivalWindow]:
        ordered = sorted(v, key=lambda w: w.start)
        for a, b in itertools.pairwise(ordered):
            if b.start < a.end:
                raise ValueError(f"windows {fmt_clock(a.start)}-{fmt_clock(a.end)} and "
                                 f"{fmt_clock(b.start)}-{fmt_clock(b.end)} overlap")
        return v


class Shift(_Model):
    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Shift:
        if self.end <= self.start:
            raise ValueError(f"'to' ({fmt_clock(self.end)}) must be after 'from' "
                             f"({fmt_clock(self.start)})")
        return self


class Scenario(_Model):
    """A simulated day: what callers do, how agents answer, who works when."""

    seed: int = 1
    #: The simulated date, in the config's time zone (queue and partner hours, holidays).
    date: Date = DEFAULT_DATE
    #: Seconds an agent's phone rings before the agent (or partner) picks up.
    ring_time: float = Field(default=2.0, ge=0)
    #: Chance an offered agent does not pick up at all (ring-no-answer, RONA).
    no_answer_probability: float = Field(default=0.0, ge=0, lt=1)
    #: Seconds a RONA-paused agent takes to make itself available again.
    rona_recovery: float = Field(default=30.0, ge=0)
    #: Seconds from the start of the day whose calls are simulated but not counted.
    warmup: float = Field(default=0.0, ge=0)
    #: Stop the clock here (default: when the last call is done).
    until: Clock | None = None
    #: Queue id → its callers. Queues left out get no calls.
    queues: dict[str, QueueScenario] = Field(min_length=1)
    #: Agent id → shifts. Agents left out are available all day.
    shifts: dict[str, list[Shift]] = Field(default_factory=dict)

    @field_validator("shifts")
    @classmethod
    def _shifts_apart(cls, v: dict[str, list[Shift]]) -> dict[str, list[Shift]]:
        for agent, shifts in v.items():
            ordered = sorted(shifts, key=lambda s: s.start)
            for a, b in itertools.pairwise(ordered):
                if b.start < a.end:
                    raise ValueError(f"agent {agent}: shifts {fmt_clock(a.start)}-"
                                     f"{fmt_clock(a.end)} and {fmt_clock(b.start)}-"
                                     f"{fmt_clock(b.end)} overlap")
        return v

    def check_against(self, config: Config) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems with the ACD config (unknown queue or agent …), as (path, message)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        queue_ids = [q.id for q in config.queues]
        for qid in self.queues:
            if qid not in queue_ids:
                problems.append((("queues", qid),
                                 f"unknown queue {qid!r} (the config has "
                                 f"{', '.join(queue_ids)})"))
        agent_ids = {a.id for a in config.agents}
        for aid in self.shifts:
            if aid not in agent_ids:
                problems.append((("shifts", aid), f"unknown agent {aid!r}"))
        if self.ring_time >= config.engine.ring_timeout:
            problems.append((("ring_time",),
                             f"{self.ring_time:g} s is not below the engine's ring_timeout "
                             f"({config.engine.ring_timeout} s): no call would be answered"))
        return problems


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 integers, so ``12:00`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
               r"|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def parse_scenario(text: str, source: str = "<scenario>",
                   config: Config | None = None) -> Scenario:
    """Parse and validate a scenario (against ``config`` if given); raise ConfigError
    naming the file, key path and line of every problem."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data: Any = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}{where}: invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping (seed, queues, …)"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([
            f"{yaml_where(source, root, tuple(err['loc']))}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        ]) from None
    if config is not None:
        problems = scenario.check_against(config)
        if problems:
            raise ConfigError([f"{yaml_where(source, root, p)}: {msg}" for p, msg in problems])
    return scenario


def load_scenario(path: str | Path, config: Config | None = None) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: not UTF-8 text"]) from None
    return parse_scenario(text, str(p), config)


# -- results --------------------------------------------------------------------------------


@dataclass(slots=True)
class QueueFigures:
    """What happened to one queue's callers (those counted: after the warm-up)."""

    sl_target: float
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
    #: Callers who reached the queue outside its hours (not counted as offered).
    closed: int = 0

    @property
    def service_level(self) -> float | None:
        den = self.answered + self.abandoned_after_target
        return self.answered_within_target / den if den else None

    @property
    def asa(self) -> float | None:
        return self.wait_answered_total / self.answered if self.answered else None

    @property
    def abandon_rate(self) -> float | None:
        den = self.answered + self.abandoned
        return self.abandoned / den if den else None

    @property
    def p_wait(self) -> float | None:
        return self.queued_on_arrival / self.offered if self.offered else None

    @property
    def aht(self) -> float | None:
        return (self.talk_total + self.wrap_total) / self.handled if self.handled else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "offered": self.offered, "answered": self.answered,
            "answered_within_target": self.answered_within_target,
            "abandoned": self.abandoned, "abandoned_after_target": self.abandoned_after_target,
            "unanswered_at_end": self.unanswered_at_end, "rona": self.rona,
            "sl_target": self.sl_target, "service_level": self.service_level,
            "asa": self.asa, "p_wait": self.p_wait, "abandon_rate": self.abandon_rate,
            "aht": self.aht, "handled": self.handled, "overflowed": self.overflowed,
            "answered_by_partner": self.answered_by_partner, "closed": self.closed,
        }


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


@dataclass(frozen=True, slots=True)
class ErlangFigures:
    """The Erlang model's figures for one single-skill queue over the day."""

    model: str  # "Erlang C" or "Erlang A"
    agents_min: int
    agents_max: int
    handle: float  # seconds an agent is held per call: ring + talk + wrap-up
    offered: float  # expected calls
    service_level: float | None
    asa: float  # of answered calls, ring included; inf when overloaded
    p_wait: float
    abandon_rate: float | None  # Erlang A only
    occupancy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "agents_min": self.agents_min,
                "agents_max": self.agents_max, "handle": self.handle,
                "offered": self.offered, "service_level": self.service_level,
                "asa": _finite(self.asa), "p_wait": self.p_wait,
                "abandon_rate": self.abandon_rate, "occupancy": self.occupancy}


@dataclass(slots=True)
class QueueResult:
    queue_id: str
    figures: QueueFigures
    #: Agents who may take this queue's calls (at its widest stage).
    pool: tuple[str, ...]
    single_skill: bool
    erlang: ErlangFigures | None = None
    occupancy: AgentTime = field(default_factory=AgentTime)


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
                      "erlang": None if q.erlang is None else q.erlang.to_dict()}
                for qid, q in self.queues.items()
            },
            "agents": {aid: t.to_dict() for aid, t in self.agents.items()},
            "groups": {g: t.to_dict() for g, t in self.groups.items()},
            "overall": self.overall.to_dict(),
            "core_stats": self.core_stats,
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) or math.isnan(x) else x


# -- the simulator --------------------------------------------------------------------------

#: Kinds of simulator events (heap entries are (time, seq, kind, payload)).
_ARRIVE, _APPLY, _ANSWER, _PATIENCE, _RECOVER, _SHIFT_ON, _SHIFT_OFF = range(7)

#: Called after every ``EngineCore.apply``: (core, event, effects). For tests.
ApplyHook = Callable[[EngineCore, Event, list[Effect]], None]


@dataclass(slots=True)
class _SimCall:
    queue_id: str
    arrived: float
    talk: float
    measured: bool
    #: When a partner site picked up (the core learns it only when the call ends).
    partner_answered: float | None = None
    overflowed: bool = False


@dataclass(slots=True)
class _AgentTrack:
    status: AgentStatus
    state: AgentState
    since: float
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


def day_epoch(config: Config, day: Date) -> float:
    """Epoch seconds of local midnight of ``day`` in the config's time zone: the core's
    clock is epoch time (partner hours are checked against it)."""
    return datetime.combine(day, clock_time(0), ZoneInfo(config.timezone)).timestamp()


def queue_pools(config: Config, core: EngineCore | None = None) -> dict[str, tuple[str, ...]]:
    """Queue → agents who may take its calls at some stage (its widest)."""
    router = (core or EngineCore(config)).router
    specs = [AgentSpec(a.id, dict(a.skills), frozenset(a.groups)) for a in config.agents]
    pools: dict[str, tuple[str, ...]] = {}
    for q in config.queues:
        widest = router.stages(q.id)[-1]
        pools[q.id] = tuple(s.agent_id for s in specs if widest.admits(s))
    return pools


class Simulation:
    """One simulated day. ``run()`` once; ``on_apply`` sees the core after every event."""

    def __init__(self, config: Config, scenario: Scenario, *, seed: int | None = None,
                 on_apply: ApplyHook | None = None) -> None:
        self.config = config
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        # No per-offer exclusions: nobody reads them here, and they cost as much CPU as
        # the rest of a simulated offer.
        self.core = EngineCore(config.model_copy(update={
            "engine": config.engine.model_copy(update={"explain_offers": False})}))
        self.on_apply = on_apply
        self.pools = queue_pools(config, self.core)
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._now = 0.0
        self._events = 0
        self._calls: dict[str, _SimCall] = {}
        self._call_ids = itertools.count(1)
        self._figures = {q.id: QueueFigures(float(q.sl_target)) for q in config.queues}
        self._targets = {q.id: float(q.sl_target) for q in config.queues}
        self._rona_rng = random.Random(f"{self.seed}/rona")
        #: The core's clock: epoch seconds; the simulator's: seconds from local midnight.
        self.epoch0 = day_epoch(config, scenario.date)
        self._arrivals: dict[str, Iterator[float]] = {}
        self._talk: dict[str, Callable[[], float]] = {}
        self._patience: dict[str, Callable[[], float] | None] = {}
        self._region: dict[str, Callable[[], tuple[str, bool]]] = {}
        self._schedules = {qid: config.schedule(qid) for qid in scenario.queues}
        for qid, qs in scenario.queues.items():
            self._arrivals[qid] = _arrival_times(qs.arrivals,
                                                 random.Random(f"{self.seed}/{qid}/arrivals"))
            call_rng = random.Random(f"{self.seed}/{qid}/calls")
            self._talk[qid] = qs.handle_time.sampler(call_rng)
            self._patience[qid] = None if qs.patience is None \
                else _exponential(call_rng, qs.patience.mean)
            self._region[qid] = _regions(qs.regions, config.regions.default,
                                         random.Random(f"{self.seed}/{qid}/regions"))
        starts = [w.start for qs in scenario.queues.values() for w in qs.arrivals]
        starts += [s.start for shifts in scenario.shifts.values() for s in shifts]
        self.start = min(starts) if starts else 0.0
        self.measure_from = self.start + scenario.warmup
        self._on_shift: set[str] = set()
        self._tracks = {aid: _AgentTrack(a.status, a.state, self.start)
                        for aid, a in self.core.agents.items()}
        self._busy = 0
        self._pending_arrivals = 0
        self._ran = False

    # -- scheduling --------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, payload))

    def _schedule_day(self) -> None:
        for aid in self.core.agents:
            shifts = self.scenario.shifts.get(aid)
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
        agents = core.agents
        touched: set[str] = set()
        agent_id = getattr(event, "agent_id", None)
        if agent_id in agents:
            touched.add(agent_id)
        for eff in effects:
            if isinstance(eff, Publish):
                agent = eff.data.get("agent")
                if agent in agents:
                    touched.add(agent)
                self._publish(eff)
            elif isinstance(eff, Offer):
                if eff.agent_id in agents:
                    touched.add(eff.agent_id)
                self._offer(eff)
            elif isinstance(eff, StartTimer):
                self._push(now + eff.delay, _APPLY, eff.event)
        for aid in touched:
            self._observe(aid)
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
        partner_first = False
        schedule = self._schedules[queue_id]
        if not schedule.always_open and not schedule.is_open(datetime.fromtimestamp(clock, UTC)):
            # As acd.runtime.call_flow: closed, unless an open partner covering the caller's
            # region offers the service; then the partners go first.
            core = self.core
            if not any(p.covers(region) and p.offers(queue_id)
                       and core.partner_open(p.site_id, clock) for p in core.partners):
                self._apply(CallClosed(call_id, queue_id, "simulated", clock))
                if measured:
                    self._figures[queue_id].closed += 1
                return
            partner_first = True
        self._calls[call_id] = _SimCall(queue_id, now, talk, measured)
        effects = self._apply(CallArrived(call_id, queue_id, "simulated", clock, clock,
                                          region=region, region_known=known,
                                          partner_first=partner_first))
        if measured and not any(isinstance(e, Offer) and e.call_id == call_id
                                for e in effects):
            self._figures[queue_id].queued_on_arrival += 1
        if wait_for is not None and call_id in self.core.calls:
            self._push(now + wait_for, _PATIENCE, call_id)

    def _offer(self, offer: Offer) -> None:
        now, sc = self._now, self.scenario
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
        agent = self.core.agents[agent_id]
        if agent.status is not AgentStatus.PAUSED \
                or agent.reason != self.config.engine.rona_pause_reason:
            return
        status = AgentStatus.AVAILABLE if agent_id in self._on_shift \
            else AgentStatus.LOGGED_OUT
        self._apply(SetAgentStatus(agent_id, status, self._clock()))

    # -- observing the core --------------------------------------------------------------

    def _publish(self, p: Publish) -> None:
        name, data = p.name, p.data
        if name == "call_connected":
            sim = self._calls[data["call_id"]]
            if sim.measured:
                f = self._figures[data["queue"]]
                wait = float(data["wait"])
                f.answered += 1
                f.wait_answered_total += wait
                if wait <= f.sl_target:
                    f.answered_within_target += 1
                agent = data.get("agent")
                if agent in self._tracks:
                    self._tracks[agent].time.answered += 1
                elif data.get("site"):
                    f.answered_by_partner += 1
        elif name == "call_waiting":
            if not data["reentry"] and self._calls[data["call_id"]].measured:
                self._figures[data["queue"]].offered += 1
        elif name == "call_completed":
            sim = self._calls.pop(data["call_id"])
            if sim.measured:
                f = self._figures[data["queue"]]
                f.handled += 1
                f.talk_total += float(data["talk"])
            agent = data.get("agent")
            if agent in self._tracks:
                self._tracks[agent].wrap_queue = data["queue"] if sim.measured else None
        elif name == "call_abandoned":
            sim = self._calls.pop(data["call_id"])
            if sim.measured:
                f = self._figures[data["queue"]]
                wait = float(data["wait"])
                f.abandoned += 1
                f.wait_abandoned_total += wait
                if wait > f.sl_target:
                    f.abandoned_after_target += 1
        elif name == "agent_no_answer":
            sim = self._calls[data["call_id"]]
            if sim.measured:
                self._figures[sim.queue_id].rona += 1
        elif name == "call_overflowed":
            sim = self._calls[data["call_id"]]
            if sim.measured and not sim.overflowed:
                self._figures[sim.queue_id].overflowed += 1
            sim.overflowed = True

    def _observe(self, agent_id: str) -> None:
        """Account the agent's time since its last change, if its status or state moved."""
        agent = self.core.agents[agent_id]
        track = self._tracks[agent_id]
        if agent.status is track.status and agent.state is track.state:
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
        track.status, track.state = agent.status, agent.state

    def _accrue(self, track: _AgentTrack, now: float) -> None:
        start = max(track.since, self.measure_from)
        track.since = now
        span = now - start
        if span <= 0:
            return
        busy = track.state is not AgentState.IDLE
        t = track.time
        if busy or track.status is not AgentStatus.LOGGED_OUT:
            t.staffed += span
        if busy:
            t.busy += span
        elif track.status is AgentStatus.PAUSED:
            t.paused += span

    # -- the result ------------------------------------------------------------------------

    def _result(self, end: float, wall: float) -> SimResult:
        self._now = end
        for track in self._tracks.values():
            self._accrue(track, end)
        for call in self.core.calls.values():
            sim = self._calls.get(call.call_id)
            if sim is not None and sim.measured \
                    and call.state in (CallState.WAITING, CallState.OFFERED):
                self._figures[call.queue_id].unanswered_at_end += 1
        agents = {aid: tr.time for aid, tr in self._tracks.items()}
        groups: dict[str, AgentTime] = {}
        for a in self.config.agents:
            for g in a.groups:
                groups.setdefault(g, AgentTime()).add(agents[a.id])
        single = single_skill_queues(self.pools, self.scenario) - {
            qid for qid in self.scenario.queues
            if any(p.offers(qid) for p in self.core.partners)}
        queues: dict[str, QueueResult] = {}
        for qid in self.scenario.queues:
            pool_time = AgentTime()
            for aid in self.pools[qid]:
                pool_time.add(agents[aid])
            erl = erlang_figures(self.config, self.scenario, qid, self.pools[qid],
                                 self.measure_from) if qid in single else None
            queues[qid] = QueueResult(qid, self._figures[qid], self.pools[qid], qid in single,
                                      erl, pool_time)
        core_stats = {qid: {name: getattr(st, name) for name in st.__dataclass_fields__}
                      for qid, st in self.core.stats.items()}
        return SimResult(self.seed, self.scenario.date, self.start, end, self.measure_from,
                         queues, agents, groups, self._events, wall, core_stats)


def simulate(config: Config, scenario: Scenario, *, seed: int | None = None,
             on_apply: ApplyHook | None = None) -> SimResult:
    """Run one simulated day of ``scenario`` through the routing core of ``config``."""
    return Simulation(config, scenario, seed=seed, on_apply=on_apply).run()


def single_skill_queues(pools: Mapping[str, tuple[str, ...]],
                        scenario: Scenario) -> set[str]:
    """Queues with callers whose agents take no other queue's callers (Erlang applies)."""
    busy = [q for q in scenario.queues if q in pools]
    out: set[str] = set()
    for q in busy:
        mine = set(pools[q])
        if mine and all(mine.isdisjoint(pools[o]) for o in busy if o != q):
            out.add(q)
    return out


# -- the Erlang side --------------------------------------------------------------------------


def _erlang_a_extras(ea: ErlangA, abandon_target: float) -> tuple[float, float, float]:
    """(P(answered), mean wait in queue of answered callers, P(abandoned within target)).

    A caller who finds ``j`` callers ahead reaches an agent after ``V_j``, the sum of
    exponential steps at rates ``cμ + iθ`` (i = j … 0); it is answered if its own
    patience outlasts ``V_j``: ``P = E[e^{-θV}] = Π r_i/(r_i+θ)`` and
    ``E[V·1{answered}] = P · Σ 1/(r_i+θ)``. The callers still waiting at ``t`` are
    ``e^{-θt}·P(V > t)``, ``P(V > t)`` by uniformisation as in :mod:`routing.erlang`.
    """
    c_mu, theta = ea.servers * ea.service_rate, ea.abandon_rate
    answered = ea.p_no_wait
    wait_answered = 0.0
    p_served = 1.0  # Π_{i≤j} r_i/(r_i+θ)
    inv_sum = 0.0  # Σ_{i≤j} 1/(r_i+θ)
    for j, share in enumerate(ea.ahead):
        r = c_mu + j * theta
        p_served *= r / (r + theta)
        inv_sum += 1.0 / (r + theta)
        answered += share * p_served
        wait_answered += share * p_served * inv_sum
    asa = wait_answered / answered if answered > 0 else math.inf
    if abandon_target <= 0.0:
        return answered, asa, 0.0
    size = len(ea.ahead)
    rate = c_mu + size * theta
    up = [(c_mu + j * theta) / rate for j in range(size)]
    mass = list(ea.ahead)
    mean = rate * abandon_target
    steps = math.ceil(mean + 12.0 * math.sqrt(mean) + 30.0)
    log_mean = math.log(mean)
    survival = math.exp(-mean) * math.fsum(mass)
    for n in range(1, steps + 1):
        mass = [mass[j] * (1.0 - up[j]) + mass[j + 1] * up[j + 1] for j in range(size - 1)] \
            + [mass[-1] * (1.0 - up[-1])]
        survival += math.fsum(mass) * math.exp(-mean + n * log_mean - math.lgamma(n + 1))
    still_waiting = math.exp(-theta * abandon_target) * survival
    within = ea.service_level(abandon_target) - ea.p_no_wait
    short = ea.p_wait - within - still_waiting
    return answered, asa, min(max(short, 0.0), 1.0)


def _staffed(scenario: Scenario, pool: Sequence[str], at: float) -> int:
    n = 0
    for aid in pool:
        shifts = scenario.shifts.get(aid)
        if shifts is None or any(s.start <= at < s.end for s in shifts):
            n += 1
    return n


def erlang_figures(config: Config, scenario: Scenario, queue_id: str,
                   pool: Sequence[str], measure_from: float = 0.0) -> ErlangFigures:
    """Erlang C (or A, with patience) for a single-skill queue over the scenario's day:
    piecewise steady states between changes of arrival rate or staffing, weighted by
    their expected calls."""
    qs = scenario.queues[queue_id]
    q = config.queue(queue_id)
    ring = scenario.ring_time
    handle = ring + qs.handle_time.mean + q.wrap_up
    target = float(q.sl_target)
    patience = None if qs.patience is None else qs.patience.mean
    cuts = {w.start for w in qs.arrivals} | {w.end for w in qs.arrivals} | {measure_from}
    for aid in pool:
        for s in scenario.shifts.get(aid, ()):
            cuts |= {s.start, s.end}
    first = max(measure_from, min(w.start for w in qs.arrivals))
    last = max(w.end for w in qs.arrivals)
    schedule = config.schedule(queue_id)
    if not schedule.always_open:  # opening hours: cut the day by the minute
        cuts |= {60.0 * m for m in range(int(first // 60), int(last // 60) + 1)}
    points = sorted(t for t in cuts if first <= t <= last)
    epoch0 = day_epoch(config, scenario.date)
    calls = within = sl_den = answered = wait_ans = queued = abandoned = 0.0
    busy = staffed = 0.0
    c_seen: list[int] = []
    cache: dict[tuple[int, float], tuple[ErlangA, float, float, float]] = {}
    for a, b in itertools.pairwise(points):
        mid = (a + b) / 2.0
        c = _staffed(scenario, pool, mid)
        c_seen.append(c)
        staffed += c * (b - a)
        rate = sum(w.calls_per_hour for w in qs.arrivals if w.start <= mid < w.end) / 3600.0
        if rate <= 0.0 or (not schedule.always_open and not schedule.is_open(
                datetime.fromtimestamp(epoch0 + mid, UTC))):
            continue  # no callers, or they get the closed action
        n = rate * (b - a)
        calls += n
        load = rate * handle
        if patience is None:
            if c == 0 or load >= c:  # the queue grows without bound
                queued += n
                sl_den += n
                answered += n
                wait_ans = math.inf
                busy += c * (b - a)
                continue
            queued += n * erlang_c(c, load)
            sl = service_level(c, rate, handle, target - ring) if target >= ring else 0.0
            within += n * sl
            sl_den += n
            answered += n
            wait_ans += n * (average_speed_of_answer(c, rate, handle) + ring)
            busy += load * (b - a)
        else:
            if c == 0:
                short = -math.expm1(-target / patience)
                queued += n
                abandoned += n
                sl_den += n * (1.0 - short)
                continue
            key = (c, rate)
            if key not in cache:
                ea = erlang_a(c, rate, handle, patience)
                cache[key] = (ea, *_erlang_a_extras(ea, target))
            ea, p_ans, asa_q, short = cache[key]
            queued += n * ea.p_wait
            within += n * (ea.service_level(target - ring) if target >= ring else 0.0)
            sl_den += n * (1.0 - short)
            answered += n * p_ans
            abandoned += n * (1.0 - p_ans)
            wait_ans += n * p_ans * (asa_q + ring)
            busy += rate * p_ans * handle * (b - a)
    return ErlangFigures(
        model="Erlang C" if patience is None else "Erlang A",
        agents_min=min(c_seen, default=0), agents_max=max(c_seen, default=0),
        handle=handle, offered=calls,
        service_level=within / sl_den if sl_den > 0 else None,
        asa=wait_ans / answered if answered > 0 else math.inf,
        p_wait=queued / calls if calls > 0 else 0.0,
        abandon_rate=None if patience is None else (abandoned / calls if calls else None),
        occupancy=busy / staffed if staffed > 0 else None,
    )


# -- output ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100.0 * x:.1f} %"


def _sec(x: float | None) -> str:
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.1f} s"


def render(result: SimResult, title: str = "") -> str:
    """The human-readable report."""
    lines: list[str] = []
    if title:
        lines.append(title)
    counted = f", counted from {fmt_clock(result.measure_from)}" \
        if result.measure_from > result.start else ""
    lines.append(f"simulated {result.date.isoformat()} {fmt_clock(result.start)}–"
                 f"{fmt_clock(result.end)}{counted}, "
                 f"seed {result.seed}: {result.events} core events in "
                 f"{result.wall_seconds:.2f} s")
    for qid, q in result.queues.items():
        f, e = q.figures, q.erlang
        lines.append("")
        if e is not None:
            staff = str(e.agents_min) if e.agents_min == e.agents_max \
                else f"{e.agents_min}–{e.agents_max}"
            lines.append(f"queue {qid}: single-skill, {staff} agents; {e.model} with handle "
                         f"{e.handle:.0f} s (ring + talk + wrap-up)")
        else:
            why = "no agents" if not q.pool else "agents shared with other queues"
            lines.append(f"queue {qid}: {len(q.pool)} agents ({why}; no Erlang figure)")
        rows: list[tuple[str, str, str]] = [
            ("offered", str(f.offered), "—" if e is None else f"{e.offered:.1f}"),
            ("answered", str(f.answered), ""),
            ("abandoned", str(f.abandoned), ""),
            (f"service level (≤ {f.sl_target:g} s)", _pct(f.service_level),
             "" if e is None else _pct(e.service_level)),
            ("ASA", _sec(f.asa), "" if e is None else _sec(e.asa)),
            ("P(wait)", _pct(f.p_wait), "" if e is None else _pct(e.p_wait)),
            ("abandon rate", _pct(f.abandon_rate),
             "" if e is None or e.abandon_rate is None else _pct(e.abandon_rate)),
            ("AHT (talk + wrap-up)", _sec(f.aht), ""),
            ("occupancy", _pct(occupancy(q.occupancy)),
             "" if e is None else _pct(e.occupancy)),
        ]
        if f.rona:
            rows.append(("ring-no-answer", str(f.rona), ""))
        if f.overflowed:
            rows.append(("to partner sites", str(f.overflowed), ""))
            rows.append(("answered by partners", str(f.answered_by_partner), ""))
        if f.closed:
            rows.append(("closed (outside hours)", str(f.closed), ""))
        if f.unanswered_at_end:
            rows.append(("unanswered at the end", str(f.unanswered_at_end), ""))
        head = ("", "simulated", "" if e is None else e.model)
        lines.append(f"  {head[0]:<24}{head[1]:>12}{head[2]:>12}".rstrip())
        for label, sim, model in rows:
            lines.append(f"  {label:<24}{sim:>12}{model:>12}".rstrip())
    lines.append("")
    lines.append(f"  {'agents':<24}{'staffed h':>12}{'busy h':>12}{'occupancy':>12}")
    groups: list[tuple[str, AgentTime]] = [
        (f"queue {qid} pool ({len(q.pool)})", q.occupancy) for qid, q in result.queues.items()]
    groups += [(f"group {g}", t) for g, t in sorted(result.groups.items())]
    groups.append((f"all ({len(result.agents)})", result.overall))
    for label, t in groups:
        lines.append(f"  {label:<24}{t.staffed / 3600:>12.1f}{t.busy / 3600:>12.1f}"
                     f"{_pct(occupancy(t)):>12}")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        scenario = load_scenario(args.scenario, config)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    result = simulate(config, scenario, seed=args.seed)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        print(render(result, f"{args.config} + {args.scenario}"))
    return 0


def add_simulate_parser(sub: Any) -> None:
    """Register ``acd simulate`` on the CLI's subparsers."""
    p = sub.add_parser("simulate",
                       help="a simulated day through the routing core, next to Erlang C/A")
    p.add_argument("--config", "-c", required=True, help="the ACD config (acd.yaml)")
    p.add_argument("--scenario", "-s", required=True, help="the simulation YAML")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_simulate)
