"""Call history: what the writer costs routing, and how fast reports answer.

    .venv/bin/python -m benchmarks.history_bench writer  [--seconds 15] [--rate 400]
    .venv/bin/python -m benchmarks.history_bench reports [--calls 1000000] [--days 30]

**writer** — agent-free → ring latency with and without the history writer, under load.
The real :class:`acd.runtime.engine.Engine` (its inbox, the core, the store writer) runs
in this process with 40 agents and wrap-up 0; callers arrive at ``--rate`` per second
(default 100/s: 360 000 calls an hour) and each answered call talks 0.5 s, so the agents
can take 80 calls a second: the queue never empties and every hang-up frees an agent who
is offered the next caller in the same inbox step. Latency: from posting the
``DialFinished`` that frees the agent to the moment that caller's session takes the
``Offer`` from its queue (``time.perf_counter``). Three runs: no history, history on
SQLite (WAL, a file in a temp dir), history on PostgreSQL 15 (a real server started here,
unix socket); the writer spools every batch (fsync) and writes it in a worker thread, as
in production.

**reports** — a generated history of ``--calls`` calls over ``--days`` days (5 queues,
200 agents, 31 regions, 4 segments, 10 DIDs; answered/abandoned/RONA mixes) is loaded
into SQLite and into PostgreSQL (bulk inserts), the pre-aggregates are built by the
product's own ``HistoryDB.refresh`` (timed), then each report is timed (median of 5) the
way the API runs it: ``call_report``/``agent_report`` over the whole range. For contrast,
the same month-by-queue-by-day report is computed with one ``GROUP BY`` over the raw
``calls`` table (what the pre-aggregates avoid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from acd.config import Config
from acd.config.settings import settings_from
from acd.domain import CallArrived, DialFinished, Offer
from acd.history import RecordBuilder
from acd.history.periods import Granularity, bucket_of, day_range, local_periods
from acd.runtime.engine import Engine
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.reports import ReportQuery, agent_report, call_report
from acd.runtime.history.service import SWITCH_INTERVAL
from acd.runtime.history.spool import Spool
from acd.runtime.history.writer import HistoryWriter
from harness.postgres import PostgresServer

TZ = "Asia/Shanghai"

# -- writer overhead -----------------------------------------------------------------------


def _config(agents: int) -> Config:
    return Config.model_validate({
        "queues": [{"id": "q", "skills": {"s": 1}, "wrap_up": 0, "sl_target": 20}],
        "agents": [{"id": f"a{i}", "skills": {"s": 1}} for i in range(agents)],
        "engine": {"explain_offers": True},
    })


async def _latency_run(url: str | None, seconds: float, rate: float, agents: int,
                       workdir: Path, talk: float = 0.5) -> dict[str, Any]:
    config = _config(agents)
    engine = Engine(settings_from(config))
    writer = None
    if url is not None:
        db = HistoryDB(url, timezone=TZ)
        db.upgrade()  # as History.running() does before the engine takes calls
        sys.setswitchinterval(SWITCH_INTERVAL)
        writer = HistoryWriter(RecordBuilder({"q": 20.0}), db, Spool(workdir / "spool"),
                               flush_interval=0.2)
        engine.fact_hooks.append(writer.observe)
    samples: list[float] = []
    freed: dict[str, float] = {}  # agent → when its DialFinished was posted
    loop = asyncio.get_running_loop()
    consumers: set[asyncio.Task[None]] = set()

    async def session(call_id: str, q: Any) -> None:
        offer = await q.get()
        assert isinstance(offer, Offer)
        t = time.perf_counter()
        if offer.agent_id in freed:
            samples.append(t - freed.pop(offer.agent_id))

        def hang_up() -> None:
            freed[offer.agent_id] = time.perf_counter()
            engine.post(DialFinished(call_id, offer.agent_id, "ANSWER", time.time(), talk))

        loop.call_later(talk, hang_up)

    async with engine.running():
        await engine.activate()
        if writer is not None:
            await writer.start()
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            due = int((time.perf_counter() - start) * rate)
            while n < due:
                call_id = f"c{n}"
                # the session exists before the call is reported (as call_flow does)
                task = asyncio.create_task(session(call_id, engine.open_session(call_id)))
                consumers.add(task)
                task.add_done_callback(consumers.discard)
                now = time.time()
                engine.post(CallArrived(call_id, "q", f"1380000{n:04d}", now, now))
                n += 1
            await asyncio.sleep(0.002)
        for task in list(consumers):
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        await engine.deactivate()
        written = 0
        if writer is not None:
            await writer.stop()
            written = writer.db.count_calls()
            writer.db.close()
            sys.setswitchinterval(0.005)
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p * len(samples)))] * 1e3

    return {"calls": n, "offers_measured": len(samples), "records_written": written,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": samples[-1] * 1e3, "mean_ms": statistics.mean(samples) * 1e3}


def writer_bench(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        pg_url = pg.create_database("bench")
        for name, url in (("none", None), ("sqlite", f"sqlite:///{tmp}/h.db"),
                          ("postgresql", pg_url), ("none (again)", None)):
            work = Path(tmp) / name.replace(" ", "_")
            work.mkdir()
            out[name] = asyncio.run(_latency_run(url, args.seconds, args.rate, args.agents,
                                                 work, args.talk))
            print(name, json.dumps(out[name]), flush=True)
    return out


# -- report speed ----------------------------------------------------------------------------

QUEUES = ("consult", "order", "repair", "complaint", "sales")
REGIONS = tuple(f"CN-{c}" for c in (
    "BJ", "TJ", "HE", "SX", "NM", "LN", "JL", "HL", "SH", "JS", "ZJ", "AH", "FJ", "JX", "SD",
    "HA", "HB", "HN", "GD", "GX", "HI", "CQ", "SC", "GZ", "YN", "XZ", "SN", "GS", "QH", "NX",
    "XJ"))
SEGMENTS = ("", "vip", "dealer", "retailer")


def generate(n: int, days: int, first: date, seed: int = 1) -> tuple[list[dict[str, Any]],
                                                                    list[dict[str, Any]]]:
    """Rows for ``calls`` and ``offers`` (as the writer would store them)."""
    rng = random.Random(seed)
    t0, _ = day_range(first, first, TZ)
    calls_rows, offer_rows = [], []
    for i in range(n):
        day = i * days // n
        entry = t0 + day * 86_400 + 8 * 3600 + rng.random() * 12 * 3600
        queue = QUEUES[rng.randrange(5)]
        wait = rng.expovariate(1 / 15)
        r = rng.random()
        agent = f"a{rng.randrange(200)}"
        b = bucket_of(entry)
        p = local_periods(b, TZ)
        answered = r < 0.88
        site = "gd" if answered and rng.random() < 0.1 else None
        row = {
            "call_id": f"g{i}", "leg": 1, "offered": True, "entry_time": entry,
            "bucket": b, "day": p.day, "week": p.week, "month": p.month,
            "queue": queue, "first_queue": queue, "caller": f"138{rng.randrange(10**8):08d}",
            "region": REGIONS[rng.randrange(len(REGIONS))], "region_known": True,
            "region_source": "lookup", "segment": SEGMENTS[rng.randrange(4)],
            "did": f"40080{rng.randrange(10):05d}", "menu_choice": "", "server": "",
            "priority": 0, "stage": 0, "sl_target": 20.0,
            "outcome": "completed" if answered else "abandoned", "final": True,
            "answered_at": entry + wait if answered else None, "ended_at": entry + wait + 200,
            "agent": None if site or not answered else agent, "site": site,
            "agent_site": None, "wait": wait,
            "talk": rng.expovariate(1 / 180) if answered else None,
            "wrap_up": 5.0 if answered else None, "reentries": 0, "exit": None,
            "transfers": None, "decision": None, "recording": None, "disposition": None,
            "note": None, "updated_at": entry + 300, "writer": "gen",
        }
        calls_rows.append(row)
        if not site:
            if rng.random() < 0.05:
                offer_rows.append({"call_id": row["call_id"], "leg": 1, "at": entry + 1,
                                   "target": f"a{rng.randrange(200)}", "kind": "agent",
                                   "stage": 0, "wait": 1.0, "outcome": "rona",
                                   "dialstatus": "NOANSWER", "ended": entry + 16})
            if answered:
                offer_rows.append({"call_id": row["call_id"], "leg": 1, "at": entry + wait - 2,
                                   "target": agent, "kind": "agent", "stage": 0,
                                   "wait": wait - 2, "outcome": "answered", "dialstatus": "",
                                   "ended": entry + wait})
        else:
            offer_rows.append({"call_id": row["call_id"], "leg": 1, "at": entry + wait - 2,
                               "target": site, "kind": "site", "stage": 1, "wait": wait - 2,
                               "outcome": "answered", "dialstatus": "", "ended": entry + wait})
    return calls_rows, offer_rows


def intervals(days: int, first: date) -> list[dict[str, Any]]:
    t0, _ = day_range(first, first, TZ)
    out = []
    for d in range(days):
        for a in range(200):
            start = t0 + d * 86_400 + 8 * 3600
            for k, (state, status, reason, length) in enumerate(
                    [("idle", "available", "", 3600), ("on_call", "available", "", 7200),
                     ("idle", "paused", "lunch", 3600), ("wrap_up", "available", "", 1800),
                     ("idle", "available", "", 7200)]):
                out.append({"agent": f"a{a}", "start": start, "end": start + length,
                            "status": status, "reason": reason, "state": state,
                            "call_id": None, "bucket": bucket_of(start)})
                start += length
                _ = k
    return out


def _load(db: HistoryDB, calls_rows: list[dict[str, Any]], offer_rows: list[dict[str, Any]],
          ival_rows: list[dict[str, Any]]) -> None:
    from acd.runtime.history.tables import agent_intervals, calls, offers, rollup_dirty

    buckets = sorted({r["bucket"] for r in calls_rows} | {r["bucket"] for r in ival_rows})
    if db.postgres:
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, rows in ((calls, calls_rows), (offers, offer_rows),
                                (agent_intervals, ival_rows)):
                cols = [c.name for c in table.columns]
                quoted = ", ".join(f'"{c}"' for c in cols)
                with cur.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row([json.dumps(r[c]) if c in ("transfers", "decision",
                                                                   "recording")
                                        and r[c] is not None else r[c] for c in cols])
            raw.commit()
        finally:
            raw.close()
    else:
        with db.engine.begin() as conn:
            for table, rows in ((calls, calls_rows), (offers, offer_rows),
                                (agent_intervals, ival_rows)):
                for i in range(0, len(rows), 20_000):
                    conn.execute(table.insert(), rows[i:i + 20_000])
    with db.engine.begin() as conn:
        for i in range(0, len(buckets), 5000):
            conn.execute(rollup_dirty.insert(), [{"bucket": b} for b in buckets[i:i + 5000]])


def _time(fn: Any, repeat: int = 5) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def reports_bench(args: argparse.Namespace) -> dict[str, Any]:
    first = date(2026, 11, 1)
    last = first + timedelta(days=args.days - 1)
    t = time.perf_counter()
    calls_rows, offer_rows = generate(args.calls, args.days, first)
    ival_rows = intervals(args.days, first)
    print(f"generated {len(calls_rows)} calls, {len(offer_rows)} offers, "
          f"{len(ival_rows)} agent intervals in {time.perf_counter() - t:.1f} s", flush=True)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg:
        for name, url in (("sqlite", f"sqlite:///{tmp}/h.db"),
                          ("postgresql", pg.create_database("bench"))):
            out[name] = _bench_db(name, url, first, last, calls_rows, offer_rows, ival_rows)
    return out


def _bench_db(name: str, url: str, first: date, last: date,
              calls_rows: list[dict[str, Any]], offer_rows: list[dict[str, Any]],
              ival_rows: list[dict[str, Any]]) -> dict[str, Any]:
    from sqlalchemy import text

    db = HistoryDB(url, timezone=TZ)
    db.upgrade()
    t = time.perf_counter()
    _load(db, calls_rows, offer_rows, ival_rows)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    buckets = db.refresh()
    refresh_s = time.perf_counter() - t
    if db.postgres:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    res: dict[str, Any] = {"load_s": load_s, "rollup_build_s": refresh_s,
                           "buckets": buckets, "calls": db.count_calls()}
    queries = {
        "month by queue by day": ReportQuery(first, last, "queue", Granularity.DAY),
        "month by agent by day": ReportQuery(first, last, "agent", Granularity.DAY),
        "month by region by week": ReportQuery(first, last, "region", Granularity.WEEK),
        "month by DID by month": ReportQuery(first, last, "did", Granularity.MONTH),
        "month, all, 60-min intervals": ReportQuery(first, last, "all", Granularity.MIN60),
        "one day, by queue, 15-min": ReportQuery(first, first, "queue", Granularity.MIN15),
    }
    for label, q in queries.items():
        secs, rep = _time(lambda q=q: call_report(db, q))
        total = rep["total"]["offered"]
        res[label] = {"seconds": secs, "rows": len(rep["rows"]), "offered": total}
        print(name, label, f"{secs * 1000:.0f} ms", len(rep["rows"]), "rows", total,
              "calls", flush=True)
    secs, rep = _time(lambda: agent_report(db, ReportQuery(first, last, "agent",
                                                           Granularity.DAY)))
    res["agents: month by day (occupancy, pauses)"] = {"seconds": secs,
                                                      "rows": len(rep["rows"])}
    print(name, "agents month", f"{secs * 1000:.0f} ms", flush=True)
    start, end = day_range(first, last, TZ)
    raw_sql = text(
        "SELECT queue, day, count(*), sum(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 "
        "END), sum(CASE WHEN answered_at IS NOT NULL AND wait <= sl_target THEN 1 ELSE 0 "
        "END), sum(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END), sum(wait), "
        "max(wait), sum(talk), sum(wrap_up) FROM calls WHERE entry_time >= :s AND "
        "entry_time < :e GROUP BY queue, day")

    def raw() -> int:
        with db.engine.connect() as conn:
            return len(conn.execute(raw_sql, {"s": start, "e": end}).all())

    secs, _ = _time(raw, repeat=3)
    res["contrast: GROUP BY over raw calls (month by queue by day)"] = {"seconds": secs}
    print(name, "raw GROUP BY", f"{secs * 1000:.0f} ms", flush=True)
    db.close()
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="history_bench")
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--seconds", type=float, default=15.0)
    w.add_argument("--rate", type=float, default=100.0)
    w.add_argument("--agents", type=int, default=40)
    w.add_argument("--talk", type=float, default=0.5)
    r = sub.add_parser("reports")
    r.add_argument("--calls", type=int, default=1_000_000)
    r.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    result = writer_bench(args) if args.what == "writer" else reports_bench(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
