"""The history database on SQLite and on a real PostgreSQL: idempotent, monotone writes,
pre-aggregates equal to the records, retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acd.history.rollup import Totals, rollup
from acd.runtime.history.db import HistoryDB


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryDB:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = HistoryDB(url, timezone="Asia/Shanghai")
    database.upgrade()
    request.addfinalizer(database.close)
    return database


def call_row(call_id: str, entry: float, outcome: str = "completed", *, leg: int = 1,
             updated: float | None = None, wait: float = 5.0, agent: str | None = "a1",
             **extra: Any) -> dict[str, Any]:
    answered = outcome in ("completed", "connected")
    row: dict[str, Any] = {
        "call_id": call_id, "leg": leg, "offered": leg == 1, "entry_time": entry,
        "queue": "q", "first_queue": "q", "caller": "13800138000", "region": "CN-GD",
        "region_known": True, "region_source": "lookup", "segment": "", "did": "400",
        "menu_choice": "", "server": "", "priority": 0, "stage": 0, "sl_target": 20.0,
        "outcome": outcome, "final": outcome in ("completed", "abandoned", "closed"),
        "answered_at": entry + wait if answered else None,
        "ended_at": entry + 60 if outcome != "connected" else None,
        "agent": agent if answered else None, "site": None, "agent_site": None,
        "wait": wait, "talk": 55.0 if outcome == "completed" else None,
        "wrap_up": 3.0 if outcome == "completed" else None, "reentries": 0, "exit": None,
        "offers": [{"at": entry + 1, "kind": "agent", "target": agent or "a1", "stage": 0,
                    "wait": 1.0, "outcome": "answered" if answered else "pending",
                    "dialstatus": "", "ended": None}],
        "transfers": [], "decision": {"stage": 0}, "recording": None,
        "disposition": None, "note": None,
        "updated_at": updated if updated is not None else entry + 60,
    }
    row.update(extra)
    return row


T0 = 1_764_720_000.0  # 2025-12-03 08:00 Asia/Shanghai


def test_a_snapshot_written_twice_or_late_leaves_one_row_the_latest(db: HistoryDB) -> None:
    open_row = call_row("c1", T0, "connected", updated=T0 + 6)
    final = call_row("c1", T0, "completed", updated=T0 + 61)
    db.write([open_row], [])
    db.write([final], [])
    db.write([final], [])          # spool replay
    db.write([open_row], [])       # an older snapshot arriving late (the other engine)
    (row,) = db.call("c1")
    assert row["outcome"] == "completed" and row["talk"] == 55.0
    assert [o["outcome"] for o in row["offers"]] == ["answered"]
    assert db.count_calls() == 1


def test_an_open_record_from_the_new_engine_replaces_a_released_one(db: HistoryDB) -> None:
    db.write([call_row("c1", T0, "released", updated=T0 + 10, agent=None)], [])
    db.write([call_row("c1", T0, "waiting", updated=T0 + 12, agent=None)], [])
    assert db.call("c1")[0]["outcome"] == "waiting"
    db.write([call_row("c1", T0, "abandoned", updated=T0 + 30, agent=None)], [])
    db.write([call_row("c1", T0, "released", updated=T0 + 10, agent=None)], [])
    assert db.call("c1")[0]["outcome"] == "abandoned"


def test_rollups_equal_the_records(db: HistoryDB) -> None:
    rows = [call_row(f"c{i}", T0 + 37 * i, ["completed", "abandoned", "completed"][i % 3],
                     wait=float(i % 40)) for i in range(120)]
    db.write(rows, [{"agent": "a1", "start": T0, "end": T0 + 3000, "status": "available",
                     "reason": "", "state": "idle", "call_id": None}])
    assert db.refresh() > 0
    sums = db.call_sums("queue", T0 - 3600, T0 + 86_400, "day", None)
    (day,) = sums
    got = Totals.from_mapping(day)
    want = rollup(rows)[("queue", "q")]
    assert got == want
    assert got.offered == 120 and got.abandoned == 40
    # 15-minute intervals add up to the day
    parts = db.call_sums("queue", T0 - 3600, T0 + 86_400, "15m", 900)
    assert sum(p["offered"] for p in parts) == 120 and len(parts) == 5
    agents = db.agent_sums(T0, T0 + 86_400, "day", None)
    assert {r["what"]: r["seconds"] for r in agents} == {"staffed": 3000, "idle": 3000}


def test_retention(db: HistoryDB) -> None:
    day = 86_400
    db.write([call_row("old", T0 - 800 * day, note="x"),
              call_row("mid", T0 - 400 * day, note="y",
                       recording={"file": "mid.wav", "seconds": 55, "bytes": 1}),
              call_row("new", T0 - 10 * day, note="z")], [])
    done = db.purge(T0, records_days=730, numbers_days=365, notes_days=365,
                    recordings_days=90)
    assert done["calls"] == 1 and done["numbers"] == 1 and done["notes"] == 1
    assert done["recording_files"] == ["mid.wav"]
    assert db.call("old") == []
    (mid,) = db.call("mid")
    assert mid["caller"] == "" and mid["note"] is None and mid["recording"] is None
    assert db.call("new")[0]["caller"] == "13800138000"


def test_the_migrations_build_exactly_the_tables_the_code_uses(db: HistoryDB) -> None:
    """``alembic check``: a table or column added to tables.py without a migration fails."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from acd.runtime.history.db import MIGRATIONS

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.check(cfg)


def test_day_rows_are_the_sum_of_their_buckets(db: HistoryDB) -> None:
    rows = [call_row(f"c{i}", T0 + 600 * i, "completed", wait=float(i)) for i in range(30)]
    db.write(rows, [])
    db.refresh()
    by_day = db.call_sums("all", T0 - 3600, T0 + 86_400, "day", None)
    by_hour = db.call_sums("all", T0 - 3600, T0 + 86_400, "60m", 3600)
    by_half = db.call_sums("all", T0 - 3600, T0 + 86_400, "30m", 1800)
    assert sum(r["offered"] for r in by_day) == sum(r["offered"] for r in by_hour) == 30
    # 30 calls 10 minutes apart from 08:00: 5 hours, 10 half hours, one day
    assert (len(by_day), len(by_hour), len(by_half)) == (1, 5, 10)
    assert [r["offered"] for r in by_hour] == [6, 6, 6, 6, 6]
    assert all(r["period"] % 3600 == 0 for r in by_hour)
    assert max(r["wait_max"] for r in by_day) == 29.0
