"""Reports over the history database: one code path for the API, the CLI and the page.

A report is the pre-aggregated sums (``call_rollup``, ``agent_rollup``) of a range of
local days, grouped by period (15/30/60-minute interval, day, week, month) and by one
dimension (queue, agent, site, region, segment, DID, or all), with the figures of
:class:`acd.history.rollup.Totals` — the formulas of :mod:`acd.domain.figures`, the live
view's own. Blocking (SQL): run it in a worker thread from async code.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from acd.history.periods import Granularity, day_range, period_label
from acd.history.rollup import DIMENSIONS, Totals, occupancy
from acd.runtime.history.db import HistoryDB


@dataclass(frozen=True, slots=True)
class ReportQuery:
    first: date
    last: date
    dimension: str = "queue"
    granularity: Granularity = Granularity.DAY
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise ValueError(f"unknown dimension {self.dimension!r} (one of: "
                             f"{', '.join(DIMENSIONS)})")
        if self.last < self.first:
            raise ValueError("the range ends before it starts")


#: Columns of a call report (CSV order) after period and key.
COUNT_COLUMNS = ("offered", "answered", "answered_within", "abandoned", "abandoned_after",
                 "abandoned_short", "closed", "exited", "handled", "transferred",
                 "agent_offers", "rona", "overflowed", "partner_answered",
                 "callbacks_requested", "callbacks_completed", "callbacks_failed",
                 "callbacks_cancelled", "callbacks_answered")
FIGURE_COLUMNS = ("service_level", "asa", "aht", "abandon_rate", "rona_rate",
                  "partner_share", "partner_asa", "wait_max", "callback_delay_mean")


def _row(period: int, label: str, key: str, t: Totals) -> dict[str, Any]:
    return {"period": period, "label": label, "key": key,
            **{c: getattr(t, c) for c in COUNT_COLUMNS},
            "wait_answered": t.wait_answered, "talk": t.talk, "wrap_up": t.wrap_up,
            "wait_max": t.wait_max, "callback_delay": t.callback_delay, **t.figures()}


def call_report(db: HistoryDB, q: ReportQuery, *, refresh: bool = True) -> dict[str, Any]:
    """Per period and key: counts, sums and figures; plus each key's total and the
    grand total over the range."""
    if refresh:
        db.refresh()
    tz = db.timezone
    start, end = day_range(q.first, q.last, tz)
    sums = db.call_sums(q.dimension, start, end, q.granularity.value,
                        q.granularity.seconds, q.keys)
    rows = []
    by_key: dict[str, Totals] = defaultdict(Totals)
    total = Totals()
    for raw in sums:
        t = Totals.from_mapping(raw)
        period = int(raw["period"])
        rows.append(_row(period, period_label(q.granularity, period, tz), str(raw["key"]),
                         t))
        by_key[str(raw["key"])].add(t)
        total.add(t)
    return {
        "dimension": q.dimension, "granularity": q.granularity.value,
        "from": q.first.isoformat(), "to": q.last.isoformat(), "timezone": tz,
        "short_abandon": db.short_abandon,
        "rows": rows,
        "keys": [_row(0, "total", k, t) for k, t in sorted(by_key.items())],
        "total": _row(0, "total", "", total),
    }


def agent_report(db: HistoryDB, q: ReportQuery, *, refresh: bool = True) -> dict[str, Any]:
    """Per period and agent: calls answered and handled, AHT, RONA (from the records),
    and time: staffed, busy, idle, paused by reason, occupancy (from the agents'
    state history)."""
    if refresh:
        db.refresh()
    tz = db.timezone
    start, end = day_range(q.first, q.last, tz)
    calls = db.call_sums("agent", start, end, q.granularity.value, q.granularity.seconds,
                         q.keys)
    time_rows = db.agent_sums(start, end, q.granularity.value, q.granularity.seconds,
                              q.keys)
    seconds: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
    for r in time_rows:
        seconds[(int(r["period"]), str(r["agent"]))][str(r["what"])] = float(r["seconds"])
    totals: dict[tuple[int, str], Totals] = {}
    for raw in calls:
        totals[(int(raw["period"]), str(raw["key"]))] = Totals.from_mapping(raw)
    rows = []
    for period, agent in sorted(set(seconds) | set(totals)):
        t = totals.get((period, agent), Totals())
        s = seconds.get((period, agent), {})
        rows.append({
            "period": period, "label": period_label(q.granularity, period, tz),
            "agent": agent, "answered": t.answered, "handled": t.handled,
            "talk": t.talk, "wrap_up": t.wrap_up, "aht": t.aht,
            "agent_offers": t.agent_offers, "rona": t.rona, "rona_rate": t.rona_rate,
            "staffed": s.get("staffed", 0.0), "busy": s.get("busy", 0.0),
            "idle": s.get("idle", 0.0), "paused": s.get("paused", 0.0),
            "pauses": {k.split(":", 1)[1]: v for k, v in sorted(s.items())
                       if k.startswith("pause:")},
            "occupancy": occupancy(s),
        })
    return {"granularity": q.granularity.value, "from": q.first.isoformat(),
            "to": q.last.isoformat(), "timezone": tz, "rows": rows}


#: The columns of a callback report (after period, label and key).
CALLBACK_COLUMNS = ("callbacks_requested", "callbacks_completed", "callbacks_failed",
                    "callbacks_cancelled", "callbacks_answered", "callback_delay",
                    "callback_delay_mean")


def callback_report(db: HistoryDB, q: ReportQuery, *, refresh: bool = True,
                    ) -> dict[str, Any]:
    """Callback outcomes (issue 14): per period and key (queue by default), callbacks
    requested, completed, failed, cancelled, and the mean seconds from the request to
    the customer's answer — the call report's own sums, the periods with no callback
    left out."""
    report = call_report(db, q, refresh=refresh)

    def pick(r: dict[str, Any]) -> dict[str, Any]:
        return {"period": r["period"], "label": r["label"], "key": r["key"],
                **{c: r[c] for c in CALLBACK_COLUMNS}}

    return {**{k: report[k] for k in ("dimension", "granularity", "from", "to",
                                      "timezone")},
            "rows": [pick(r) for r in report["rows"] if r["callbacks_requested"]],
            "keys": [pick(r) for r in report["keys"] if r["callbacks_requested"]],
            "total": pick(report["total"])}


def to_csv(report: dict[str, Any]) -> str:
    """A report's rows as CSV (UTF-8, a header line)."""
    rows: list[dict[str, Any]] = report["rows"]
    out = io.StringIO()
    if not rows:
        return ""
    columns = [c for c in rows[0] if c != "period"]
    w = csv.writer(out)
    w.writerow(columns)
    for r in rows:
        w.writerow(["; ".join(f"{k}={v:.0f}" for k, v in r[c].items())
                    if isinstance(r[c], dict) else ("" if r[c] is None else r[c])
                    for c in columns])
    return out.getvalue()


# -- numbers: who sees them ------------------------------------------------------------


def mask_number(number: str) -> str:
    """``13800138000`` → ``138****8000``: enough to tell calls apart, not to call."""
    if len(number) <= 4:
        return "*" * len(number)
    if len(number) <= 8:  # a short or local number: the last two digits only
        return "*" * (len(number) - 2) + number[-2:]
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def masked(row: dict[str, Any], show: bool) -> dict[str, Any]:
    if show or not row.get("caller"):
        return row
    return {**row, "caller": mask_number(str(row["caller"]))}
