"""How right is the expected wait? Each caller's EWT at entry against its actual wait.

    .venv/bin/python -m benchmarks.ewt_accuracy [--quick] [--days 6] [--seed 1]
        [--append benchmarks/RESULTS.md]

Days run through :func:`sim.simulate` — the real ``EngineCore`` and router on a virtual
clock — at several loads, in two centres:

* **single skill**: one queue, 20 agents, lognormal talk times (mean 180 s, sd 120 s),
  5 s wrap-up, 3 s ring, callers' patience exponential (mean 300 s);
* **multi-skill**: three queues (consult, repair — priority 5 —, complaint) and 24 agents
  in three groups, some serving two queues, the same talk-time shape per queue with
  different means (150 / 240 / 300 s), and an escalation stage that admits the consult
  group to complaint callers after 60 s.

At every arrival the estimator (``acd.domain.ewt``) replays the next minutes; the naive
estimator is position × AHT ÷ agents, with AHT the queue's mean handle time so far and
agents the available agents able to take the queue, in the same run. When the caller is
answered, both are compared with its actual wait (entry → answer). Reported per load:
per caller |told − actual| ÷ actual wait — its median, its 90th percentile and the share
within ±20 % (only callers who waited ≥ 20 s count: a 2 s error on a 1 s wait says
nothing) —, the median absolute error in seconds, and the shares within ±30 % and within
±30 s. Occupancy is the agents' busy share of their available time.

The oracle (``benchmarks.ewt_oracle``) replays the true model from the exact state at
each sampled caller's entry: what the best possible estimator would have told, and two
bounds no estimator can beat on those callers — the smallest median per-caller error,
and the largest share within ±20 % it could expect.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from acd.config import parse_config
from acd.domain import CallArrived, CallState, Effect, EngineCore, Event
from acd.domain.ewt import naive_estimate
from acd.domain.facts import CallAbandoned, CallConnected, CallOffered, CallWaiting
from acd.domain.records import AgentStatus
from benchmarks.ewt_oracle import (
    MIN_WAIT,
    Clairvoyant,
    Model,
    Snapshot,
    best_share,
    bound,
    coverage,
    oracle_waits,
    replay,
    statistics_of,
)
from sim import parse_scenario
from sim.simulator import Simulation

SINGLE = """
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 5, sl_target: 20}
agents:
""" + "".join(f"  - {{id: a{i:02d}, skills: {{consult: 1}}}}\n" for i in range(20))

MULTI = """
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 5, sl_target: 20}
  - {id: repair, skills: {repair: 1}, wrap_up: 10, sl_target: 30, priority: 5}
  - id: complaint
    skills: {complaint: 2}
    wrap_up: 15
    sl_target: 30
    stages: [{after: 60, skills: {complaint: 1}}]
agents:
""" + "".join(f"  - {{id: c{i:02d}, skills: {{consult: 2, complaint: 1}}}}\n" for i in range(10)) \
    + "".join(f"  - {{id: r{i:02d}, skills: {{repair: 1, consult: 1}}}}\n" for i in range(8)) \
    + "".join(f"  - {{id: k{i:02d}, skills: {{complaint: 2}}}}\n" for i in range(6))


def single_scenario(rate: float, hours: int = 8) -> str:
    return f"""seed: 1
ring_time: 3
no_answer_probability: 0
warmup: 3600
queues:
  consult:
    arrivals: [{{from: "08:00", to: "{8 + hours:02d}:00", calls_per_hour: {rate:g}}}]
    handle_time: {{distribution: lognormal, mean: 180, sd: 120}}
    patience: {{distribution: exponential, mean: 300}}
"""


def multi_scenario(scale: float, hours: int = 8) -> str:
    end = f"{8 + hours:02d}:00"
    return f"""seed: 1
ring_time: 3
no_answer_probability: 0
warmup: 3600
queues:
  consult:
    arrivals: [{{from: "08:00", to: "{end}", calls_per_hour: {150 * scale:g}}}]
    handle_time: {{distribution: lognormal, mean: 150, sd: 100}}
    patience: {{distribution: exponential, mean: 300}}
  repair:
    arrivals: [{{from: "08:00", to: "{end}", calls_per_hour: {80 * scale:g}}}]
    handle_time: {{distribution: lognormal, mean: 240, sd: 160}}
    patience: {{distribution: exponential, mean: 300}}
  complaint:
    arrivals: [{{from: "08:00", to: "{end}", calls_per_hour: {60 * scale:g}}}]
    handle_time: {{distribution: lognormal, mean: 300, sd: 200}}
    patience: {{distribution: exponential, mean: 300}}
"""


@dataclass
class Caller:
    """One caller who waited: what each estimator said at its entry, what happened."""

    queue: str
    ewt: float | None
    naive: float | None
    #: The oracle's statistics of its drawn waits (None: not sampled).
    oracle: dict[str, float] | None = None
    #: The oracle's coverage (see ``benchmarks.ewt_oracle.coverage``).
    coverage: tuple[float, list[float]] | None = None
    #: The clairvoyant replay's wait (inf: gives up), when checked.
    check: float | None = None
    wait: float | None = None
    abandoned: bool = False


@dataclass
class Tally:
    """Every caller who waited, over the days of one load."""

    callers: list[Caller] = field(default_factory=list)
    busy: float = 0.0
    available: float = 0.0
    #: Seconds spent in the oracle's replays.
    oracle_seconds: float = 0.0


@dataclass(frozen=True)
class OracleSpec:
    """Which callers the oracle replays, and how often."""

    rounds: int = 512
    every: int = 1
    check: bool = False


class Watch:
    """The simulation's on_apply hook: estimates at entry, actual waits at answer."""

    def __init__(self, tally: Tally, sim: Simulation, oracle: OracleSpec | None,
                 seed: int, scale: float = 1.0) -> None:
        self.tally = tally
        self.scale = scale
        self.pending: dict[str, Caller] = {}
        self.oracle = oracle
        self.seed = seed
        core = sim.core
        self.model = None if oracle is None else Model.of(core, sim.scenario, sim.epoch0)
        self.clairvoyant = None if oracle is None or not oracle.check or self.model is None \
            else Clairvoyant(self.model, sim.scenario, sim.seed, sim.epoch0)
        self.arrivals: dict[str, int] = {}
        self.offered_at: dict[str, float] = {}
        self.waited = 0

    def __call__(self, core: EngineCore, event: Event, effects: list[Effect]) -> None:
        if isinstance(event, CallArrived) and self.clairvoyant is not None:
            i = self.arrivals.get(event.queue_id, 0)
            self.arrivals[event.queue_id] = i + 1
            self.clairvoyant.index[event.call_id] = (event.queue_id, i)
        for eff in effects:
            if isinstance(eff, CallOffered):
                self.offered_at[eff.call_id] = event.now
            elif isinstance(eff, CallWaiting) and not eff.reentry:
                call = core.calls.get(eff.call_id)
                if call is None or call.state is not CallState.WAITING:
                    continue  # offered at once: nothing to tell, nothing to measure
                self.pending[eff.call_id] = self._entry(core, event.now, eff.call_id,
                                                        eff.queue)
            elif isinstance(eff, CallConnected) and eff.agent is not None:
                caller = self.pending.pop(eff.call_id, None)
                if caller is not None:
                    caller.wait = eff.wait
                    self.tally.callers.append(caller)
            elif isinstance(eff, CallAbandoned):
                caller = self.pending.pop(eff.call_id, None)
                if caller is not None:
                    caller.abandoned = True
                    self.tally.callers.append(caller)

    def _entry(self, core: EngineCore, now: float, call_id: str, queue: str) -> Caller:
        sweep = core.estimator.sweep(now)
        est = sweep.calls.get(call_id)
        ewt = est.seconds if est is not None and est.sure else None
        position = est.position if est is not None else 1
        caller = Caller(queue, ewt, self._naive(core, queue, position))
        if self.oracle is None or self.model is None:
            return caller
        snap = Snapshot.of(core, now, call_id, self.offered_at)
        if self.clairvoyant is not None:
            caller.check = replay(self.model, snap, self.clairvoyant,
                                  target_patience=True) - now
        self.waited += 1
        if (self.waited - 1) % self.oracle.every == 0:
            started = time.perf_counter()
            waits = oracle_waits(self.model, snap, self.oracle.rounds,
                                 hash((self.seed, self.waited)))
            patience = self.model.queues[queue].patience
            caller.oracle = statistics_of(waits, patience)
            caller.coverage = coverage(waits, patience, MIN_WAIT * self.scale)
            self.tally.oracle_seconds += time.perf_counter() - started
        return caller

    def _naive(self, core: EngineCore, queue: str, position: int) -> float | None:
        totals = core.figures.total(queue)
        aht = ((totals.talk + totals.wrap_up) / totals.handled) if totals.handled else None
        view_agents = sum(1 for a in core.agents.values()
                          if a.status is AgentStatus.AVAILABLE
                          and a.agent_id in core.estimator.admitted(queue, 0))
        return naive_estimate(position, aht, view_agents)


class Errors(NamedTuple):
    """One estimator's errors on a set of answered callers."""

    median_abs: float
    #: Median over callers of |error| / wait, for waits ≥ 20 s (the goal's figure).
    per_caller: float
    within_30pct: float
    within_30s: float
    #: Median |error| ÷ median wait.
    over_median_wait: float
    callers: int
    #: 90th percentile of |error| / wait, the same callers as ``per_caller``.
    p90: float = math.nan
    #: Share within ±20 % of the wait, the same callers as ``per_caller``.
    within_20pct: float = math.nan


@dataclass(frozen=True)
class Row:
    centre: str
    load: str
    occupancy: float
    answered: int
    unsure: float
    ewt: Errors
    naive: Errors
    #: On the callers the oracle replayed: the oracle's, the estimator's, naive's.
    oracle: Errors
    ewt_sampled: Errors
    naive_sampled: Errors
    #: The oracle's other statistics (per caller |err|/wait), by name.
    oracle_told: dict[str, float]
    #: No estimator's per-caller median relative error can be below this (the oracle's
    #: coverage bound, on the callers it replayed).
    bound: float
    #: No estimator can expect a larger share of those callers within ±20 % (the same
    #: coverage, at 20 %).
    best_within_20pct: float
    #: Clairvoyant replays that did not reproduce the actual outcome, of how many.
    check: tuple[int, int]
    oracle_seconds: float
    #: The 20 s and 30 s of the columns are times this.
    scale: float = 1.0


def errors(pairs: Sequence[tuple[float, float]], scale: float = 1.0) -> Errors:
    """The errors of (told, actual wait) pairs; ``scale``: the 20 s and 30 s times this
    (a centre of shorter calls)."""
    if not pairs:
        return Errors(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    abs_err = [abs(e - w) for e, w in pairs]
    rel = [abs(e - w) / w for e, w in pairs if w >= MIN_WAIT * scale]
    within_rel = sum(1 for e, w in pairs if abs(e - w) <= 0.3 * max(w, 1e-9)) / len(pairs)
    within_abs = sum(1 for e, w in pairs if abs(e - w) <= 30 * scale) / len(pairs)
    median_wait = statistics.median(w for _, w in pairs)
    return Errors(statistics.median(abs_err), statistics.median(rel) if rel else math.nan,
                  within_rel, within_abs, statistics.median(abs_err) / median_wait,
                  len(pairs), _percentile(rel, 90),
                  sum(1 for x in rel if x <= 0.2) / len(rel) if rel else math.nan)


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default); nan if empty."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def row_of(centre: str, load: str, tally: Tally, scale: float = 1.0) -> Row:
    answered = [c for c in tally.callers if c.wait is not None]
    sure = [c for c in answered if c.ewt is not None]
    ewt = [(c.ewt, c.wait) for c in sure if c.ewt is not None and c.wait is not None]
    naive = [(c.naive, c.wait) for c in sure if c.naive is not None and c.wait is not None]
    sampled = [c for c in sure if c.oracle is not None and c.naive is not None]
    told = {}
    for name in ("median", "cover20", "inverse", "stayers", "stayers_inverse"):
        told[name] = errors([(c.oracle[name], c.wait) for c in sampled
                             if c.oracle is not None and c.wait is not None],
                            scale).per_caller
    checked = [c for c in tally.callers if c.check is not None]
    wrong = sum(1 for c in checked if c.check is not None and not (
        (c.abandoned and c.check == math.inf)
        or (c.wait is not None and abs(c.check - c.wait) < 1e-3)))
    return Row(centre, load,
               tally.busy / tally.available if tally.available else math.nan,
               len(answered), (len(answered) - len(sure)) / len(answered) if answered else math.nan,
               errors(ewt, scale), errors(naive, scale),
               errors([(c.oracle["median"], c.wait) for c in sampled
                       if c.oracle is not None and c.wait is not None], scale),
               errors([(c.ewt, c.wait) for c in sampled
                       if c.ewt is not None and c.wait is not None], scale),
               errors([(c.naive, c.wait) for c in sampled
                       if c.naive is not None and c.wait is not None], scale),
               told, bound(covered := [c.coverage for c in tally.callers
                                       if c.coverage is not None]),
               best_share(covered, 0.2),
               (wrong, len(checked)), tally.oracle_seconds, scale)


def run(load: Load, days: int, seed: int, oracle: OracleSpec | None = None,
        dump: list[dict[str, object]] | None = None) -> Row:
    centre = load.centre
    config = parse_config(load.config)
    scenario = parse_scenario(load.scenario, config=config)
    tally = Tally()
    for day in range(days):
        sim = Simulation(config, scenario, seed=seed + day)
        first = len(tally.callers)
        sim.on_apply = Watch(tally, sim, oracle, seed + day, load.scale)
        result = sim.run()
        overall = result.overall
        tally.busy += overall.busy
        tally.available += overall.available
        if dump is not None:
            dump.extend({"centre": centre, "load": load.load, "day": day, **asdict(c)}
                        for c in tally.callers[first:])
    return row_of(centre, load.load, tally, load.scale)


SINGLE_LOADS = (300, 340, 370, 390)  # 20 agents, AHT ≈ 188 s: ~ 0.78 … 0.97 offered load
MULTI_LOADS = (0.85, 1.0, 1.1, 1.2, 1.3)


@dataclass(frozen=True)
class Load:
    """One centre at one load: its config, scenario, and its time scale (the 20 s and
    30 s of the columns are times ``scale``)."""

    centre: str
    load: str
    config: str
    scenario: str
    scale: float = 1.0
    #: The name ``--only`` knows it by.
    key: str = ""


def loads(only: str | None) -> list[Load]:
    """Every load of the default run, or those ``only`` names (comma-separated
    ``single:340``, ``multi:1.1``, ``e2e``: the shape of ``benchmarks.ewt_e2e accuracy``,
    not in the default run)."""
    out = [Load("single skill", f"{rate}/h", SINGLE, single_scenario(rate),
                key=f"single:{rate}") for rate in SINGLE_LOADS]
    out += [Load("multi-skill", f"×{scale:g}", MULTI, multi_scenario(scale),
                 key=f"multi:{scale:g}") for scale in MULTI_LOADS]
    if only is None:
        return out
    out.append(e2e_shape())
    wanted = {word.strip() for word in only.split(",")}
    wanted = {w if not w.startswith("multi:") else f"multi:{float(w[6:]):g}" for w in wanted}
    return [x for x in out if x.key in wanted]


def e2e_shape() -> Load:
    """The end-to-end accuracy run's hotline (``benchmarks.ewt_e2e``) as a simulation:
    its agents, talk times, wrap-up, ring, arrival rate; callers never hang up."""
    from benchmarks.ewt_e2e import ACCURACY, PHONE_RING

    e2e = ACCURACY
    config = f"""
queues:
  - {{id: consult, skills: {{consult: 1}}, wrap_up: {e2e.wrap_up:g}, sl_target: 20,
     expected_handle_time: {e2e.talk_mean:g}}}
agents:
""" + "".join(f"  - {{id: a{i:02d}, skills: {{consult: 1}}}}\n" for i in range(e2e.agents))
    scenario = f"""seed: 1
ring_time: {PHONE_RING:g}
no_answer_probability: 0
warmup: 600
queues:
  consult:
    arrivals: [{{from: "08:00", to: "12:00", calls_per_hour: {e2e.rate * 3600:.1f}}}]
    handle_time: {{distribution: lognormal, mean: {e2e.talk_mean:g}, sd: {e2e.talk_sd:g}}}
"""
    return Load("e2e shape", f"{e2e.rate * 3600:.0f}/h", config, scenario,
                e2e.handle / 188.0, "e2e")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 days per load")
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="some loads: single:340,multi:1.1")
    parser.add_argument("--oracle-rounds", type=int, default=512,
                        help="futures the oracle replays per caller (0: no oracle)")
    parser.add_argument("--oracle-every", type=int, default=1,
                        help="the oracle replays every N-th caller who waits")
    parser.add_argument("--check", action="store_true",
                        help="check the oracle's replay against the day's actual draws")
    parser.add_argument("--dump", type=Path, help="every caller's figures as JSON")
    parser.add_argument("--append", type=Path, help="append the tables to this file")
    args = parser.parse_args(argv)
    days = 2 if args.quick else args.days
    oracle = None if args.oracle_rounds <= 0 else \
        OracleSpec(args.oracle_rounds, args.oracle_every, args.check)
    started = time.perf_counter()
    rows: list[Row] = []
    dump: list[dict[str, object]] | None = [] if args.dump else None
    for load in loads(args.only):
        rows.append(run(load, days, args.seed, oracle, dump))
        print(_line(rows[-1]), flush=True)
    if args.dump and dump is not None:
        args.dump.write_text(json.dumps(dump, allow_nan=True))
    table = render(rows, days, time.perf_counter() - started, oracle,
                   " ".join(["python -m benchmarks.ewt_accuracy", *(argv or sys.argv[1:])]))
    print(table)
    if args.append:
        with args.append.open("a", encoding="utf-8") as fh:
            fh.write("\n" + table)
    return 0


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.0f} %"


def _s(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.1f} s"


def _line(r: Row) -> str:
    line = (f"{r.centre} {r.load}: occupancy {_pct(r.occupancy)}, answered {r.answered}, "
            f"EWT per caller {_pct(r.ewt.per_caller)} p90 {_pct(r.ewt.p90)} ±20 % "
            f"{_pct(r.ewt.within_20pct)}, naive {_pct(r.naive.per_caller)}")
    if r.oracle.callers:
        line += (f"; on {r.oracle.callers} sampled: oracle {_pct(r.oracle.per_caller)}, EWT "
                 f"{_pct(r.ewt_sampled.per_caller)}, naive "
                 f"{_pct(r.naive_sampled.per_caller)}; oracle told "
                 + ", ".join(f"{k} {_pct(v)}" for k, v in r.oracle_told.items())
                 + f"; bound {_pct(r.bound)}, ±20 % at most {_pct(r.best_within_20pct)} "
                 f"({r.oracle_seconds:.0f} s)")
    if r.check[1]:
        line += f"; clairvoyant check: {r.check[0]} of {r.check[1]} differ"
    return line


def render(rows: Sequence[Row], days: int, seconds: float, oracle: OracleSpec | None,
           command: str) -> str:
    out = [f"### Expected wait accuracy (acd simulate, {days} day(s) per load)", "",
           f"`{command}` — {platform.python_implementation()} "
           f"{platform.python_version()}, {seconds:.0f} s.", "",
           "Every caller who waited and was answered, with a sure estimate. Per caller: "
           "\\|told − actual\\| ÷ actual wait, over callers who waited ≥ 20 s (median, "
           "90th percentile, share within ±20 %):", "",
           "| centre | arrivals | occupancy | answered | unsure | "
           "**EWT median per caller** | **EWT p90** | **EWT within ±20 %** | "
           "EWT median \\|err\\| | EWT \\|err\\| ÷ median wait | EWT within ±30 % | "
           "EWT within ±30 s | **naive median per caller** | naive p90 | "
           "naive within ±20 % | naive median \\|err\\| | naive ±30 % | naive ±30 s |",
           "|---|---|" + "---:|" * 16]
    for r in rows:
        e, n = r.ewt, r.naive
        out.append(f"| {r.centre} | {r.load} | {_pct(r.occupancy)} | {r.answered} | "
                   f"{_pct(r.unsure)} | **{_pct(e.per_caller)}** | **{_pct(e.p90)}** | "
                   f"**{_pct(e.within_20pct)}** | {_s(e.median_abs)} | "
                   f"{_pct(e.over_median_wait)} | {_pct(e.within_30pct)} | "
                   f"{_pct(e.within_30s)} | **{_pct(n.per_caller)}** | {_pct(n.p90)} | "
                   f"{_pct(n.within_20pct)} | {_s(n.median_abs)} | {_pct(n.within_30pct)} | "
                   f"{_pct(n.within_30s)} |")
    if oracle is not None and any(r.oracle.callers for r in rows):
        every = "every caller" if oracle.every == 1 else f"every {oracle.every}th caller"
        out += ["", f"The oracle ({oracle.rounds} futures from the exact state under the "
                f"true model; {every} who waited), on the same callers:", "",
                "| centre | arrivals | callers | **bound: median per caller ≥** | "
                "**bound: within ±20 % ≤** | oracle median per caller | oracle p90 | "
                "oracle within ±20 % | **EWT median per caller** | **EWT p90** | "
                "**EWT within ±20 %** | naive median per caller | naive within ±20 % | "
                "oracle median \\|err\\| | EWT median \\|err\\| | "
                "oracle told 1/wait-weighted | oracle told stayers' median |",
                "|---|---|" + "---:|" * 15]
        for r in rows:
            o, e, n = r.oracle, r.ewt_sampled, r.naive_sampled
            out.append(f"| {r.centre} | {r.load} | {o.callers} | **{_pct(r.bound)}** | "
                       f"**{_pct(r.best_within_20pct)}** | {_pct(o.per_caller)} | "
                       f"{_pct(o.p90)} | {_pct(o.within_20pct)} | **{_pct(e.per_caller)}** | "
                       f"**{_pct(e.p90)}** | **{_pct(e.within_20pct)}** | "
                       f"{_pct(n.per_caller)} | {_pct(n.within_20pct)} | "
                       f"{_s(o.median_abs)} | {_s(e.median_abs)} | "
                       f"{_pct(r.oracle_told['inverse'])} | "
                       f"{_pct(r.oracle_told['stayers'])} |")
    for r in rows:
        if r.scale != 1.0:
            out += ["", f"{r.centre}: calls {r.scale:.3f} times as long as the others, so "
                    f"waits ≥ {MIN_WAIT * r.scale:.1f} s count in the per-caller share and "
                    f"\"within ±30 s\" is within ±{30 * r.scale:.1f} s."]
    checks = [r.check for r in rows if r.check[1]]
    if checks:
        out += ["", f"Clairvoyant check: {sum(c[0] for c in checks)} of "
                f"{sum(c[1] for c in checks)} callers' replays with the day's actual draws "
                "differ from what happened."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
