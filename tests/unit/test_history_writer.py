"""The history writer: behind routing, spooled durably, catching up after an outage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from acd.domain.facts import CallAbandoned, CallCompleted, CallConnected, CallWaiting
from acd.history import RecordBuilder
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.spool import Spool
from acd.runtime.history.writer import HistoryWriter
from harness.postgres import PostgresServer

T0 = 1_764_720_000.0


def feed_calls(writer: HistoryWriter, first: int, n: int) -> None:
    for i in range(first, first + n):
        t = T0 + i
        cid = f"c{i}"
        writer.observe(CallWaiting(cid, "q", "138", t, False, 0, "", "CN-GD", ""), t)
        if i % 4 == 0:
            writer.observe(CallAbandoned(cid, "q", 3.0), t + 3)
        else:
            writer.observe(CallConnected(cid, "q", "a1", 2.0, 1), t + 2)
            writer.observe(CallCompleted(cid, "q", "a1", None, 2.0, 30.0), t + 32)


def make_writer(url: str, spool_dir: Path, **kw: object) -> HistoryWriter:
    db = HistoryDB(url, timezone="Asia/Shanghai")
    return HistoryWriter(RecordBuilder({"q": 20.0}), db, Spool(spool_dir),
                         flush_interval=0.05, **kw)  # type: ignore[arg-type]


async def test_records_reach_the_database_and_the_spool_empties(tmp_path: Path) -> None:
    writer = make_writer(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "spool")
    await writer.start()
    feed_calls(writer, 0, 40)
    await asyncio.wait_for(writer.drained(), 10)
    assert writer.db.count_calls() == 40
    assert writer.spool.segments() == []
    await writer.stop()
    writer.db.close()


async def test_postgres_restarted_under_load_loses_nothing(tmp_path: Path) -> None:
    with PostgresServer() as pg:
        url = pg.create_database("acd")
        writer = make_writer(url, tmp_path / "spool")
        await writer.start()
        feed_calls(writer, 0, 50)
        await asyncio.wait_for(writer.drained(), 20)
        await asyncio.to_thread(pg.stop)          # the database goes away …
        feed_calls(writer, 50, 100)                # … while calls go on
        await asyncio.sleep(0.5)
        assert writer.failing and writer.spool.segments()  # durably spooled meanwhile
        await asyncio.to_thread(pg.start)          # … and comes back
        feed_calls(writer, 150, 50)
        await asyncio.wait_for(writer.drained(), 30)
        assert not writer.failing
        assert writer.db.count_calls() == 200
        rows = writer.db.calls_between(T0 - 1, T0 + 1000, limit=1000)
        assert {r["call_id"] for r in rows} == {f"c{i}" for i in range(200)}
        assert all(r["final"] for r in rows)
        await writer.stop()
        writer.db.close()


async def test_a_database_down_at_start_does_not_hold_up_the_engine(tmp_path: Path) -> None:
    with PostgresServer() as pg:
        url = pg.create_database("acd")
        pg.stop()
        writer = make_writer(url, tmp_path / "spool")
        await asyncio.wait_for(writer.start(), 1)   # no migration on the caller's time
        feed_calls(writer, 0, 10)
        await asyncio.sleep(0.5)
        assert not writer.ready and writer.spool.segments()
        await asyncio.to_thread(pg.start)
        await asyncio.wait_for(writer.drained(), 30)
        assert writer.db.count_calls() == 10
        await writer.stop()
        writer.db.close()


async def test_a_spool_left_by_a_killed_engine_is_written_at_the_next_start(
        tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    first = make_writer(f"sqlite:///{tmp_path / 'h.db'}", spool_dir)
    feed_calls(first, 0, 12)
    calls, _ = first.builder.take()
    # What a killed engine leaves: a batch fsync-ed, then a line cut short by the kill.
    spool = Spool(spool_dir)
    spool.append({"calls": [c.to_row() for c in calls], "intervals": []})
    seg = spool.segments()[-1]
    with seg.open("ab") as f:
        f.write(json.dumps({"calls": [calls[0].to_row()]}).encode()[:40])
    second = make_writer(f"sqlite:///{tmp_path / 'h.db'}", spool_dir)
    await second.start()
    await asyncio.wait_for(second.drained(), 10)
    assert second.db.count_calls() == 12
    await second.stop()
    second.db.close()


async def test_observe_is_cheap_and_never_touches_the_database(tmp_path: Path) -> None:
    """The hook only updates memory: with the writer task not running, facts are kept
    in memory and nothing is written (the speed is measured in benchmarks/)."""
    writer = make_writer(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "spool",
                         batch_size=10**9)
    feed_calls(writer, 0, 500)
    assert writer.builder.pending == 500
    assert writer.spool.segments() == [] and not (tmp_path / "h.db").exists()
    writer.db.close()
