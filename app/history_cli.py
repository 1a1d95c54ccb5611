"""``acd report`` and ``acd replay``: the history database from the command line.

::

    acd report -c acd.yaml --from 2026-12-01 --to 2026-12-07 --by queue --granularity day
    acd report -c acd.yaml --agents --csv > agents.csv
    acd report -c acd.yaml --callbacks --from 2026-12-01 --to 2026-12-07  # outcomes
    acd report -c acd.yaml --purge                       # apply the retention now
    acd replay --from 2026-12-01 --to 2026-12-01 --config new.yaml

The database is the config's ``history.url`` (or ``--db URL``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from acd.config import ConfigError, load_config
from acd.history.periods import Granularity
from acd.history.rollup import DIMENSIONS


def _db(args: argparse.Namespace) -> Any:
    from acd.runtime.history.db import HistoryDB

    config = load_config(args.config)
    if config.history is None and not args.db:
        raise ConfigError([f"{args.config}: no history section (and no --db)"])
    url = args.db or config.history.database_url()  # type: ignore[union-attr]
    short = config.history.short_abandon if config.history is not None else 0.0
    db = HistoryDB(url, timezone=config.timezone, short_abandon=short)
    db.upgrade()
    return config, db


def _day(value: str | None, tz: str) -> date:
    return date.fromisoformat(value) if value else datetime.now(ZoneInfo(tz)).date()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.1f}"
    if isinstance(v, dict):
        return ",".join(f"{k}={s / 60:.0f}m" for k, s in v.items())
    return str(v)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def cmd_report(args: argparse.Namespace) -> int:
    from acd.runtime.history.reports import (
        ReportQuery,
        agent_report,
        call_report,
        callback_report,
        to_csv,
    )
    from acd.runtime.history.service import purge

    try:
        config, db = _db(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    try:
        if args.purge:
            assert config.history is not None
            print(json.dumps(purge(db, config.history, time.time())))
            return 0
        first = _day(args.first, db.timezone)
        q = ReportQuery(first, _day(args.last, db.timezone) if args.last else first,
                        "agent" if args.agents else args.by, Granularity(args.granularity),
                        tuple(args.key or ()))
        if args.agents:
            report = agent_report(db, q)
        elif args.callbacks:
            report = callback_report(db, q)
        else:
            report = call_report(db, q)
        if args.csv:
            sys.stdout.write(to_csv(report))
        elif args.json:
            print(json.dumps(report, indent=2, default=str))
        elif args.agents:
            print_table(report["rows"], ["label", "agent", "answered", "handled", "aht",
                                         "rona", "staffed", "paused", "occupancy",
                                         "pauses"])
        elif args.callbacks:
            print(f"callbacks by {q.dimension}, {q.granularity.value}, {q.first} .. "
                  f"{q.last} ({db.timezone})")
            print_table(report["rows"] + [{**report["total"], "label": "total"}],
                        ["label", "key", "callbacks_requested", "callbacks_completed",
                         "callbacks_failed", "callbacks_cancelled", "callbacks_answered",
                         "callback_delay_mean"])
        else:
            print(f"calls by {q.dimension}, {q.granularity.value}, {q.first} .. {q.last} "
                  f"({db.timezone})")
            cols = ["label", "key", "offered", "answered", "abandoned", "service_level",
                    "asa", "aht", "abandon_rate", "wait_max", "rona_rate", "overflowed",
                    "partner_share"]
            print_table(report["rows"] + [{**report["total"], "label": "total"}], cols)
    finally:
        db.close()
    return 0


def add_history_parsers(sub: Any) -> None:
    p = sub.add_parser("report", help="reports from the call history database")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--db", help="database URL (default: the config's history.url)")
    p.add_argument("--from", dest="first", help="first local day, YYYY-MM-DD (today)")
    p.add_argument("--to", dest="last", help="last local day (the first)")
    p.add_argument("--by", choices=DIMENSIONS, default="queue")
    p.add_argument("--granularity", choices=[g.value for g in Granularity], default="day")
    p.add_argument("--key", action="append", help="only this queue/agent/... (repeat)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--agents", action="store_true",
                      help="agents: calls, AHT, RONA, occupancy, pauses by reason")
    kind.add_argument("--callbacks", action="store_true",
                      help="callback outcomes: requested, completed, failed, cancelled, "
                           "mean time from request to answer")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true")
    out.add_argument("--json", action="store_true")
    p.add_argument("--purge", action="store_true", help="apply the retention now")
    p.set_defaults(func=cmd_report)
    from sim.replay import add_replay_parser

    add_replay_parser(sub)
