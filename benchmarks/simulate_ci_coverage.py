"""Are ``acd simulate``'s 95 % confidence intervals honest? Coverage against Erlang.

    .venv/bin/python -m benchmarks.simulate_ci_coverage [--quick] [--sets 100] [--days 10]
        [--seed 1] [--jobs N] [--append benchmarks/RESULTS.md]

``acd simulate`` gives each figure as the mean over ``n`` independent simulated days ±
t(0.975, n − 1)·s/√n (:mod:`sim.stats`). That interval is exact only if a day's figure is
normal; a day's service level is a ratio of a few thousand dependent calls. This measures
how often the interval really contains the true value, on queues whose true value is
known: one single-skill queue, Poisson arrivals at 240/h from 08:00 to 18:00 (the first
hour not counted), exponential talk of mean 180 s, no wrap-up, ring time or
ring-no-answer — M/M/c, which Erlang C describes exactly, and M/M/c+M (callers with
exponential patience of mean 180 s), which Erlang A describes exactly.

Each *set* is what one ``acd simulate -n DAYS`` run reports, through :func:`sim.replicate`
(the real ``EngineCore``); sets use disjoint seeds. For each figure: the share of sets
whose interval contains the model's value (95 % expected; the ± after it is the binomial
95 % range of that share over this many sets), the mean half-width, and the mean of all
days minus the model's value (bias: a day's figure is a ratio, and the mean of ratios
is not quite the ratio of means).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from acd.config import parse_config
from sim import parse_scenario, replicate

#: (label, agents, patience): Erlang C at 14 agents, Erlang A at 13.
MODELS = (("Erlang C (M/M/14)", 14, "none"),
          ("Erlang A (M/M/13+M, patience 180 s)", 13, "{distribution: exponential, mean: 180}"))
#: Figure → (label, how it is printed).
FIGURES = {"service_level": "SL ≤ 20 s", "asa": "ASA", "p_wait": "P(wait)",
           "abandon_rate": "abandon rate"}


def config_yaml(agents: int) -> str:
    rows = "\n".join(f"  - {{id: a{i:02d}, skills: {{q: 1}}}}" for i in range(agents))
    return f"queues:\n  - {{id: q, skills: {{q: 1}}, wrap_up: 0, sl_target: 20}}\n" \
           f"agents:\n{rows}\n"


def scenario_yaml(patience: str) -> str:
    return f"""ring_time: 0
warmup: 3600
queues:
  q:
    arrivals: [{{from: "08:00", to: "18:00", calls_per_hour: 240}}]
    handle_time: {{distribution: exponential, mean: 180}}
    patience: {patience}
"""


@dataclass(frozen=True, slots=True)
class SetResult:
    """One ``acd simulate -n DAYS`` run: per figure (model value, mean, low, high)."""

    figures: dict[str, tuple[float, float, float, float]]
    day_values: dict[str, list[float]]
    calls: int


def run_sets(agents: int, patience: str, days: int, seeds: Sequence[int]) -> list[SetResult]:
    config = parse_config(config_yaml(agents))
    scenario = parse_scenario(scenario_yaml(patience), config=config)
    out: list[SetResult] = []
    for seed in seeds:
        reps = replicate(config, scenario, replications=days, seed=seed)
        erl = reps.first.queues["q"].erlang
        assert erl is not None
        model = {"service_level": erl.service_level, "asa": erl.asa,
                 "p_wait": erl.p_wait, "abandon_rate": erl.abandon_rate}
        est = reps.queue("q")
        figs: dict[str, tuple[float, float, float, float]] = {}
        values: dict[str, list[float]] = {}
        for name, truth in model.items():
            e = est[name]
            if truth is None or e is None or e.low is None or e.high is None:
                continue
            figs[name] = (truth, e.mean, e.low, e.high)
            values[name] = [v for r in reps.results
                            if (v := getattr(r.queues["q"].figures, name)) is not None]
        out.append(SetResult(figs, values, sum(r.queues["q"].figures.callers
                                               for r in reps.results)))
    return out


@dataclass(frozen=True, slots=True)
class Row:
    model: str
    figure: str
    truth: float
    coverage: float
    coverage_range: float
    half_width: float
    bias: float
    unit: str


def summarise(model: str, sets: Sequence[SetResult]) -> list[Row]:
    rows: list[Row] = []
    for name, label in FIGURES.items():
        have = [s.figures[name] for s in sets if name in s.figures]
        if not have:
            continue
        k = len(have)
        cover = sum(low <= truth <= high for truth, _, low, high in have) / k
        days = [v for s in sets for v in s.day_values.get(name, [])]
        truth = have[0][0]
        unit = "s" if name == "asa" else "pp"
        scale = 1.0 if unit == "s" else 100.0
        rows.append(Row(model, label, truth, cover,
                        1.96 * math.sqrt(0.95 * 0.05 / k),
                        scale * sum((high - low) / 2 for _, _, low, high in have) / k,
                        scale * (sum(days) / len(days) - truth), unit))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = ["| model | figure | model's value | intervals containing it | mean ± | "
             "bias (mean of days − model) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        value = f"{r.truth:.1f} s" if r.unit == "s" else f"{100 * r.truth:.2f} %"
        lines.append(f"| {r.model} | {r.figure} | {value} | {100 * r.coverage:.1f} % "
                     f"(95 ± {100 * r.coverage_range:.1f}) | {r.half_width:.2f} {r.unit} | "
                     f"{r.bias:+.2f} {r.unit} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=100, help="acd simulate runs per model")
    parser.add_argument("--days", type=int, default=10, help="replications per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 sets")
    parser.add_argument("--append", type=Path, help="append the section to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.sets = min(args.sets, 10)
    start = time.perf_counter()
    rows: list[Row] = []
    calls = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for m, (label, agents, patience) in enumerate(MODELS):
            seeds = [args.seed + 1_000_000 * m + args.days * k for k in range(args.sets)]
            chunks = [seeds[i::args.jobs] for i in range(args.jobs) if seeds[i::args.jobs]]
            futures = [pool.submit(run_sets, agents, patience, args.days, c) for c in chunks]
            sets = [s for f in futures for s in f.result()]
            calls += sum(s.calls for s in sets)
            rows += summarise(label, sets)
            print(f"{label}: {len(sets)} sets, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr)
    total = time.perf_counter() - start
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--append" in shown:
        i = shown.index("--append")
        del shown[i:i + 2]
    command = " ".join([".venv/bin/python -m benchmarks.simulate_ci_coverage", *shown])
    section = "\n".join([
        "## Confidence intervals of `acd simulate`: coverage",
        "",
        "```",
        command,
        "```",
        "",
        f"Is \"82.9 % ± 2.0\" honest? {args.sets} runs of `acd simulate -n {args.days}` "
        f"(through `sim.replicate`, disjoint seeds) per model, on a queue whose true "
        f"figures are known: Poisson arrivals at 240/h from 08:00 to 18:00 (the first hour "
        f"not counted), exponential talk of mean 180 s, no wrap-up or ring time — M/M/c "
        f"(Erlang C) and M/M/c+M (Erlang A, exponential patience). *Intervals containing "
        f"it*: the share of runs whose 95 % interval (mean ± t·s/√n over the {args.days} "
        f"days) contains the model's value; 95 % is right, and the ± is the binomial "
        f"range of that share over {args.sets} runs. *Bias*: the mean of all "
        f"{args.sets * args.days} days minus the model's value. "
        f"{calls:,} counted calls; Python {platform.python_version()}, {args.jobs} worker "
        f"process(es) on {os.cpu_count()} CPU(s), {total:.0f} s in all.",
        "",
        table(rows),
        "",
    ])
    print(section)
    if args.append is not None:
        with args.append.open("a", encoding="utf-8") as f:
            f.write("\n" + section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
