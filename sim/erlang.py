"""The Erlang side of a simulated day: Erlang C (or A, with patience) for the queues where
it applies (single-skill: their agents take no other queue's callers and no partner
site takes their calls), over the day's piecewise steady states."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from acd.config import Config, SiteKind
from routing.erlang import (
    ErlangA,
    average_speed_of_answer,
    erlang_a,
    erlang_c,
    service_level,
)
from sim.scenario import Scenario, day_epoch


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) or math.isnan(x) else x


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


def single_skill_queues(pools: Mapping[str, tuple[str, ...]],
                        with_callers: Iterable[str]) -> set[str]:
    """Queues with callers whose agents take no other queue's callers (Erlang applies)."""
    busy = [q for q in with_callers if q in pools]
    out: set[str] = set()
    for q in busy:
        mine = set(pools[q])
        if mine and all(mine.isdisjoint(pools[o]) for o in busy if o != q):
            out.add(q)
    return out


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


class _Duty:
    """Who of a pool can take calls at a time of day: on shift (the scenario's shifts,
    group shifts resolved) and at an own site that is open (its hours gate its agents)."""

    def __init__(self, config: Config, scenario: Scenario, pool: Sequence[str]) -> None:
        shifts = scenario.agent_shifts(config)
        self.epoch0 = day_epoch(config, scenario.date)
        own = {s.id: config.site_schedule(s) for s in config.sites
               if s.kind is SiteKind.OWN}
        groups = {a.id: a.groups for a in config.agents}
        self.agents = [(shifts.get(aid), [own[g] for g in groups.get(aid, ()) if g in own])
                       for aid in pool]
        #: Some agent's own site has hours: the day is cut by the minute.
        self.gated = any(not sch.always_open for _, sites in self.agents for sch in sites)

    def cuts(self) -> set[float]:
        return {t for shifts, _ in self.agents for s in shifts or () for t in (s.start, s.end)}

    def staffed(self, at: float) -> int:
        moment = datetime.fromtimestamp(self.epoch0 + at, UTC)
        n = 0
        for shifts, sites in self.agents:
            if shifts is not None and not any(s.start <= at < s.end for s in shifts):
                continue
            if sites and not any(sch.is_open(moment) for sch in sites):
                continue
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
    duty = _Duty(config, scenario, pool)
    cuts = {w.start for w in qs.arrivals} | {w.end for w in qs.arrivals} | {measure_from}
    cuts |= duty.cuts()
    first = max(measure_from, min(w.start for w in qs.arrivals))
    last = max(w.end for w in qs.arrivals)
    schedule = config.schedule(queue_id)
    if not schedule.always_open or duty.gated:  # opening hours: cut the day by the minute
        cuts |= {60.0 * m for m in range(int(first // 60), int(last // 60) + 1)}
    points = sorted(t for t in cuts if first <= t <= last)
    epoch0 = day_epoch(config, scenario.date)
    calls = within = sl_den = answered = wait_ans = queued = abandoned = 0.0
    busy = staffed = 0.0
    c_seen: list[int] = []
    cache: dict[tuple[int, float], tuple[ErlangA, float, float, float]] = {}
    for a, b in itertools.pairwise(points):
        mid = (a + b) / 2.0
        c = duty.staffed(mid)
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
