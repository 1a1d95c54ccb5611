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
median absolute error in seconds and as a share of the actual wait (only callers who
waited ≥ 20 s count in the share: a 2 s error on a 1 s wait says nothing), the share of
estimates within ±30 % of the actual wait, and within ±30 s. Occupancy is the agents'
busy share of their available time.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from acd.config import parse_config
from acd.domain import CallState, Effect, EngineCore, Event
from acd.domain.ewt import naive_estimate
from acd.domain.facts import CallConnected, CallWaiting
from acd.domain.records import AgentStatus
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


def single_scenario(rate: float) -> str:
    return f"""seed: 1
ring_time: 3
no_answer_probability: 0
warmup: 3600
queues:
  consult:
    arrivals: [{{from: "08:00", to: "16:00", calls_per_hour: {rate:g}}}]
    handle_time: {{distribution: lognormal, mean: 180, sd: 120}}
    patience: {{distribution: exponential, mean: 300}}
"""


def multi_scenario(scale: float) -> str:
    return f"""seed: 1
ring_time: 3
no_answer_probability: 0
warmup: 3600
queues:
  consult:
    arrivals: [{{from: "08:00", to: "16:00", calls_per_hour: {150 * scale:g}}}]
    handle_time: {{distribution: lognormal, mean: 150, sd: 100}}
    patience: {{distribution: exponential, mean: 300}}
  repair:
    arrivals: [{{from: "08:00", to: "16:00", calls_per_hour: {80 * scale:g}}}]
    handle_time: {{distribution: lognormal, mean: 240, sd: 160}}
    patience: {{distribution: exponential, mean: 300}}
  complaint:
    arrivals: [{{from: "08:00", to: "16:00", calls_per_hour: {60 * scale:g}}}]
    handle_time: {{distribution: lognormal, mean: 300, sd: 200}}
    patience: {{distribution: exponential, mean: 300}}
"""


@dataclass
class Tally:
    """Pairs (estimate, actual wait) of answered callers, for both estimators."""

    ewt: list[tuple[float, float]] = field(default_factory=list)
    naive: list[tuple[float, float]] = field(default_factory=list)
    unsure: int = 0
    answered: int = 0
    busy: float = 0.0
    available: float = 0.0


class Watch:
    """The simulation's on_apply hook: estimates at entry, actual waits at answer."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.pending: dict[str, tuple[float | None, float | None]] = {}
        self.aht: dict[str, tuple[float, int]] = {}

    def __call__(self, core: EngineCore, event: Event, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, CallWaiting) and not eff.reentry:
                call = core.calls.get(eff.call_id)
                if call is None or call.state is not CallState.WAITING:
                    continue  # offered at once: nothing to tell, nothing to measure
                sweep = core.estimator.sweep(event.now)
                est = sweep.calls.get(eff.call_id)
                ewt = est.seconds if est is not None and est.sure else None
                position = est.position if est is not None else 1
                self.pending[eff.call_id] = (ewt, self._naive(core, eff.queue, position))
            elif isinstance(eff, CallConnected) and eff.agent is not None:
                pair = self.pending.pop(eff.call_id, None)
                if pair is None:
                    continue
                ewt, naive = pair
                self.tally.answered += 1
                if ewt is None:
                    self.tally.unsure += 1
                else:
                    self.tally.ewt.append((ewt, eff.wait))
                    if naive is not None:
                        self.tally.naive.append((naive, eff.wait))

    def _naive(self, core: EngineCore, queue: str, position: int) -> float | None:
        totals = core.figures.total(queue)
        aht = ((totals.talk + totals.wrap_up) / totals.handled) if totals.handled else None
        view_agents = sum(1 for a in core.agents.values()
                          if a.status is AgentStatus.AVAILABLE
                          and a.agent_id in core.estimator.admitted(queue, 0))
        return naive_estimate(position, aht, view_agents)


@dataclass(frozen=True)
class Row:
    centre: str
    load: str
    occupancy: float
    answered: int
    unsure: float
    ewt: tuple[float, float, float, float, float]
    naive: tuple[float, float, float, float, float]


def errors(pairs: Sequence[tuple[float, float]]) -> tuple[float, float, float, float, float]:
    """(median |error| s, median over callers of |error| / their wait for waits ≥ 20 s,
    share within ±30 %, share within ±30 s, median |error| ÷ median wait)."""
    if not pairs:
        return (math.nan,) * 5
    abs_err = [abs(e - w) for e, w in pairs]
    rel = [abs(e - w) / w for e, w in pairs if w >= 20]
    within_rel = sum(1 for e, w in pairs if abs(e - w) <= 0.3 * max(w, 1e-9)) / len(pairs)
    within_abs = sum(1 for e, w in pairs if abs(e - w) <= 30) / len(pairs)
    median_wait = statistics.median(w for _, w in pairs)
    return (statistics.median(abs_err), statistics.median(rel) if rel else math.nan,
            within_rel, within_abs, statistics.median(abs_err) / median_wait)


def run(centre: str, config_text: str, scenario_text: str, days: int, seed: int) -> Row:
    config = parse_config(config_text)
    scenario = parse_scenario(scenario_text, config=config)
    tally = Tally()
    for day in range(days):
        watch = Watch(tally)
        result = Simulation(config, scenario, seed=seed + day, on_apply=watch).run()
        overall = result.overall
        tally.busy += overall.busy
        tally.available += overall.available
    occupancy = tally.busy / tally.available if tally.available else math.nan
    return Row(centre, "", occupancy, tally.answered,
               tally.unsure / tally.answered if tally.answered else math.nan,
               errors(tally.ewt), errors(tally.naive))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 days per load")
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--append", type=Path, help="append the table to this file")
    args = parser.parse_args(argv)
    days = 2 if args.quick else args.days
    started = time.perf_counter()
    rows: list[Row] = []
    for rate in (300, 340, 370, 390):  # 20 agents, AHT ≈ 188 s: ~ 0.78 … 0.97 offered load
        row = run("single skill", SINGLE, single_scenario(rate), days, args.seed)
        rows.append(Row(row.centre, f"{rate}/h", row.occupancy, row.answered, row.unsure,
                        row.ewt, row.naive))
        print(_line(rows[-1]), flush=True)
    for scale in (0.85, 1.0, 1.1, 1.2):
        row = run("multi-skill", MULTI, multi_scenario(scale), days, args.seed)
        rows.append(Row(row.centre, f"×{scale:g}", row.occupancy, row.answered, row.unsure,
                        row.ewt, row.naive))
        print(_line(rows[-1]), flush=True)
    table = render(rows, days, time.perf_counter() - started,
                   " ".join(["python -m benchmarks.ewt_accuracy", *(argv or sys.argv[1:])]))
    print(table)
    if args.append:
        with args.append.open("a", encoding="utf-8") as fh:
            fh.write("\n" + table)
    return 0


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.0f} %"


def _line(r: Row) -> str:
    return (f"{r.centre} {r.load}: occupancy {_pct(r.occupancy)}, answered {r.answered}, "
            f"EWT median |err| {r.ewt[0]:.1f} s ({_pct(r.ewt[1])}), naive "
            f"{r.naive[0]:.1f} s ({_pct(r.naive[1])})")


def render(rows: Sequence[Row], days: int, seconds: float, command: str) -> str:
    out = [f"### Expected wait accuracy (acd simulate, {days} day(s) per load)", "",
           f"`{command}` — {platform.python_implementation()} "
           f"{platform.python_version()}, {seconds:.0f} s.", "",
           "| centre | arrivals | occupancy | waited | unsure | EWT median \\|err\\| | "
           "per caller \\|err\\|/wait | \\|err\\| ÷ median wait | within ±30 % | within "
           "±30 s | naive median \\|err\\| | naive per caller | naive ÷ median wait | naive "
           "±30 % | naive ±30 s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e, n = r.ewt, r.naive
        out.append(f"| {r.centre} | {r.load} | {_pct(r.occupancy)} | {r.answered} | "
                   f"{_pct(r.unsure)} | {e[0]:.1f} s | {_pct(e[1])} | {_pct(e[4])} | "
                   f"{_pct(e[2])} | {_pct(e[3])} | {n[0]:.1f} s | {_pct(n[1])} | "
                   f"{_pct(n[4])} | {_pct(n[2])} | {_pct(n[3])} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
