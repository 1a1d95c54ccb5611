"""``acd simulate --config acd.yaml --scenario day.yaml [--replications N] [--seed N]
[--date YYYY-MM-DD] [--json] [--verbose]`` (docs/simulate.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date as Date
from typing import Any

from acd.config import ConfigError, load_config
from sim.replicate import replicate
from sim.report import render
from sim.scenario import load_scenario


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        scenario = load_scenario(args.scenario, config)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    if args.date is not None:
        scenario = scenario.model_copy(update={"date": args.date})
    reps = replicate(config, scenario, replications=args.replications, seed=args.seed)
    if args.json:
        print(json.dumps(reps.to_dict(verbose=args.verbose), indent=2, allow_nan=False,
                         ensure_ascii=False))
    else:
        print(render(reps, f"{args.config} + {args.scenario}", verbose=args.verbose))
    return 0


def _replications(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 1000:
        raise argparse.ArgumentTypeError(f"{n} days: between 1 and 1000")
    return n


def _date(text: str) -> Date:
    try:
        return Date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_simulate_parser(sub: Any) -> None:
    """Register ``acd simulate`` on the CLI's subparsers."""
    p = sub.add_parser(
        "simulate",
        help="simulated days through the routing core: figures with 95 %% confidence "
             "intervals, next to Erlang C/A where it applies (docs/simulate.md)")
    p.add_argument("--config", "-c", required=True, help="the ACD config (acd.yaml)")
    p.add_argument("--scenario", "-s", required=True,
                   help="the scenario YAML (docs/simulate.md)")
    p.add_argument("--replications", "-n", type=_replications, default=None,
                   help="independent days to simulate (default: the scenario's "
                        "replications, 10)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the first day (default: the scenario's seed); day k "
                        "uses seed + k")
    p.add_argument("--date", type=_date, default=None,
                   help="simulate this date instead of the scenario's (YYYY-MM-DD: the "
                        "queues', sites' and partners' hours and holidays of that day)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also engine-internal figures (core events, wall time)")
    p.set_defaults(func=cmd_simulate)
