"""``acd simulate --config acd.yaml --scenario day.yaml [--seed N] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from acd.config import ConfigError, load_config
from sim.report import render
from sim.scenario import load_scenario
from sim.simulator import simulate


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
