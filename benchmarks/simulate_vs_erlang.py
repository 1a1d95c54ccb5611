"""Simulated service level against Erlang C: the routing core on a virtual clock.

    .venv/bin/python -m benchmarks.simulate_vs_erlang [--quick] [--agents 13 14 15 16]
        [--rate 240] [--aht 180] [--target 20] [--precision 0.5] [--seed 1] [--jobs N]
        [--append benchmarks/RESULTS.md] [--write-yaml DIR]

What ``acd simulate`` does, for one single-skill queue on a stationary day, at several
staffing levels: callers arrive at ``--rate`` an hour (Poisson) from 00:00 to 24:00, talk
for an exponential ``--aht`` seconds, with no wrap-up, no ring time, no ring-no-answer and
no abandonment — the M/M/c queue Erlang C describes exactly. Each day runs through
:func:`sim.simulate` (the real ``EngineCore`` and router) from an empty centre;
calls arriving in the first two hours are simulated but not counted (warm-up), so the
figures are steady-state ones like Erlang C's.

Days are independent replications (seeds ``seed``, ``seed+1``, …). The service level is
the pooled ratio Σ answered within target ÷ Σ answered over the days, its 95 % confidence
interval from the spread of the days (ratio estimator, normal approximation). The number
of days follows Stein's two-stage rule: a pilot of 40 days estimates the day-to-day
spread, then enough days are added for a half-width of ``--precision`` percentage
points; the interval reported is the one the days actually give.

``--write-yaml DIR`` writes the ACD config and scenario of each staffing level, so one
day of it can be replayed with ``acd simulate --config DIR/acd-c13.yaml --scenario
DIR/sim-c13.yaml``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from acd.config import parse_config
from routing.erlang import average_speed_of_answer, erlang_c, service_level
from sim import parse_scenario, simulate

PILOT_DAYS = 40
WARMUP = 7200.0
Z95 = statistics.NormalDist().inv_cdf(0.975)


def config_yaml(agents: int, target: int) -> str:
    rows = "\n".join(f"  - {{id: a{i:02d}, endpoint: a{i:02d}, skills: {{consult: 1}}}}"
                     for i in range(1, agents + 1))
    return (f"queues:\n  - {{id: consult, skills: {{consult: 1}}, wrap_up: 0, "
            f"sl_target: {target}}}\nagents:\n{rows}\n")


def scenario_yaml(rate: float, aht: float, seed: int) -> str:
    return f"""seed: {seed}
ring_time: 0
no_answer_probability: 0
warmup: {WARMUP:g}
queues:
  consult:
    arrivals: [{{from: "00:00", to: "24:00", calls_per_hour: {rate:g}}}]
    handle_time: {{distribution: exponential, mean: {aht:g}}}
    patience: none
"""


@dataclass(frozen=True, slots=True)
class Day:
    within: int
    answered: int
    queued: int
    offered: int
    wait: float
    busy: float
    available: float


def run_days(agents: int, rate: float, aht: float, target: int, seeds: Sequence[int]) \
        -> list[Day]:
    config = parse_config(config_yaml(agents, target))
    scenario = parse_scenario(scenario_yaml(rate, aht, 0), config=config)
    days: list[Day] = []
    for seed in seeds:
        r = simulate(config, scenario, seed=seed)
        q = r.queues["consult"]
        f = q.figures
        assert f.abandoned == 0 and f.unanswered_at_end == 0
        days.append(Day(f.answered_within_target, f.answered, f.queued_on_arrival, f.offered,
                        f.wait_answered_total, q.occupancy.busy, q.occupancy.available))
    return days


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    half_width: float  # 95 %

    def pp(self) -> str:
        return f"{100 * self.value:.2f} % ± {100 * self.half_width:.2f}"


def ratio(num: Sequence[float], den: Sequence[float]) -> Estimate:
    """Pooled ratio Σnum/Σden and its 95 % half-width (delta method over days)."""
    n = len(num)
    r = math.fsum(num) / math.fsum(den)
    mean_den = math.fsum(den) / n
    s2 = math.fsum((x - r * y) ** 2 for x, y in zip(num, den, strict=True)) / (n - 1)
    return Estimate(r, Z95 * math.sqrt(s2 / n) / mean_den)


@dataclass(frozen=True, slots=True)
class Row:
    agents: int
    load: float
    erlang_sl: float
    erlang_pw: float
    erlang_asa: float
    sl: Estimate
    pw: Estimate
    asa: Estimate
    occupancy: float
    days: int
    calls: int
    seconds: float


def measure(pool: ProcessPoolExecutor, jobs: int, agents: int, args: argparse.Namespace,
            first_seed: int) -> Row:
    start = time.perf_counter()

    def batch(seeds: list[int]) -> list[Day]:
        chunks = [seeds[i::jobs] for i in range(jobs) if seeds[i::jobs]]
        futures = [pool.submit(run_days, agents, args.rate, args.aht, args.target, c)
                   for c in chunks]
        out: list[Day] = []
        for fut in futures:
            out += fut.result()
        return out

    pilot = min(PILOT_DAYS, args.max_days)
    days = batch(list(range(first_seed, first_seed + pilot)))
    sl_pilot = ratio([d.within for d in days], [d.answered for d in days])
    sd_day = sl_pilot.half_width / Z95 * math.sqrt(len(days))  # one day's spread
    need = math.ceil((Z95 * sd_day / (args.precision / 100)) ** 2)
    need = min(max(need, pilot), args.max_days)
    if need > len(days):
        days += batch(list(range(first_seed + len(days), first_seed + need)))
    load = args.rate / 3600 * args.aht
    return Row(
        agents=agents, load=load,
        erlang_sl=service_level(agents, args.rate / 3600, args.aht, args.target),
        erlang_pw=erlang_c(agents, load),
        erlang_asa=average_speed_of_answer(agents, args.rate / 3600, args.aht),
        sl=ratio([d.within for d in days], [d.answered for d in days]),
        pw=ratio([d.queued for d in days], [d.offered for d in days]),
        asa=ratio([d.wait for d in days], [d.answered for d in days]),
        occupancy=math.fsum(d.busy for d in days) / math.fsum(d.available for d in days),
        days=len(days), calls=sum(d.offered for d in days),
        seconds=time.perf_counter() - start,
    )


def table(rows: Sequence[Row], target: int) -> str:
    lines = [
        f"| agents | load (Erl) | Erlang C SL ≤{target} s | simulated SL (95 % CI) | "
        "sim − Erlang | Erlang C P(wait) | simulated P(wait) | Erlang C ASA | "
        "simulated ASA | occupancy (sim / Erlang) | days | counted calls | wall |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        diff = 100 * (r.sl.value - r.erlang_sl)
        lines.append(
            f"| {r.agents} | {r.load:.1f} | {100 * r.erlang_sl:.2f} % | {r.sl.pp()} | "
            f"{diff:+.2f} pp | {100 * r.erlang_pw:.2f} % | {r.pw.pp()} | "
            f"{r.erlang_asa:.1f} s | {r.asa.value:.1f} s ± {r.asa.half_width:.1f} | "
            f"{100 * r.occupancy:.1f} % / {100 * r.load / r.agents:.1f} % | {r.days} | "
            f"{r.calls:,} | {r.seconds:.0f} s |")
    return "\n".join(lines)


def verdict(rows: Sequence[Row]) -> list[str]:
    out: list[str] = []
    for r in rows:
        diff = abs(r.sl.value - r.erlang_sl)
        inside = diff <= r.sl.half_width
        out.append(
            f"- c = {r.agents}: |sim − Erlang C| = {100 * diff:.2f} pp "
            f"({'within' if diff <= 0.01 else 'NOT within'} 1 pp); the Erlang figure is "
            f"{'inside' if inside else 'outside'} the simulation's 95 % interval "
            f"(± {100 * r.sl.half_width:.2f} pp).")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[13, 14, 15, 16])
    parser.add_argument("--rate", type=float, default=240.0, help="calls per hour")
    parser.add_argument("--aht", type=float, default=180.0, help="mean talk time, s")
    parser.add_argument("--target", type=int, default=20, help="service-level target, s")
    parser.add_argument("--precision", type=float, default=0.5,
                        help="wanted 95 %% half-width of the SL, percentage points")
    parser.add_argument("--max-days", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 pp precision, at most 40 days per level")
    parser.add_argument("--append", type=Path, help="append the section to this file")
    parser.add_argument("--write-yaml", type=Path, help="write each level's YAML here")
    args = parser.parse_args(argv)
    if args.quick:
        args.precision, args.max_days = 2.0, min(args.max_days, PILOT_DAYS)
    if args.write_yaml is not None:
        args.write_yaml.mkdir(parents=True, exist_ok=True)
        for c in args.agents:
            (args.write_yaml / f"acd-c{c}.yaml").write_text(config_yaml(c, args.target))
            (args.write_yaml / f"sim-c{c}.yaml").write_text(
                scenario_yaml(args.rate, args.aht, args.seed))
    start = time.perf_counter()
    rows: list[Row] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for i, c in enumerate(args.agents):
            # Disjoint seeds per level (1 000 000 apart) keep the levels independent.
            rows.append(measure(pool, args.jobs, c, args, args.seed + 1_000_000 * i))
            print(f"c={c}: {rows[-1].days} days, {rows[-1].seconds:.0f} s", file=sys.stderr)
    total = time.perf_counter() - start
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--append" in shown:  # where the section goes is not part of the measurement
        i = shown.index("--append")
        del shown[i:i + 2]
    command = " ".join([".venv/bin/python -m benchmarks.simulate_vs_erlang", *shown])
    load = args.rate / 3600 * args.aht
    section = "\n".join([
        "## Simulation vs Erlang C",
        "",
        "```",
        command,
        "```",
        "",
        f"One single-skill queue through the real `EngineCore` on a virtual clock "
        f"(`sim`): Poisson arrivals at {args.rate:g}/h for 24 h, exponential talk "
        f"time of mean {args.aht:g} s (load {load:.1f} Erlangs), no wrap-up, no ring time, "
        f"no ring-no-answer, callers never hang up: M/M/c, which Erlang C describes "
        f"exactly. Each day starts empty; calls of its first {WARMUP / 3600:g} h are not "
        f"counted. SL = answered within {args.target} s ÷ answered, pooled over "
        f"independent days; ± is the 95 % confidence half-width from the day-to-day "
        f"spread (ratio estimator, normal approximation); days per level by Stein's "
        f"two-stage rule for a ±{args.precision:g} pp target. ASA includes every caller "
        f"(none abandons). Simulated occupancy also counts the drain after 24:00, when "
        f"the last callers are served and agents fall idle, so it sits a little under "
        f"λ·AHT/c. Python {platform.python_version()}, {args.jobs} worker "
        f"process(es) on {os.cpu_count()} CPU(s), {total:.0f} s in all.",
        "",
        table(rows, args.target),
        "",
        *verdict(rows),
        "",
    ])
    print(section)
    if args.append is not None:
        with args.append.open("a", encoding="utf-8") as fh:
            fh.write("\n" + section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
