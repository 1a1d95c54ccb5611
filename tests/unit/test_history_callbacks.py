"""Callback outcomes in the call history (issue 14 item 3): the records the core's facts
build, their sums, and the report on SQLite and PostgreSQL (API and CLI alike)."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from acd.domain import (
    AgentStatus,
    CallAnswered,
    CallArrived,
    CallerKey,
    DialFinished,
    EngineCore,
    Fact,
    Offer,
    SetAgentStatus,
)
from acd.domain.callbacks import CallbackFinished, CallbackRequested
from acd.domain.events import CallbackDue, CancelCallback, RequestCallback
from acd.domain.figures import LiveStats, Window
from acd.history import RecordBuilder
from acd.history.rollup import Totals, rollup
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.reports import ReportQuery, callback_report, to_csv
from tests.unit.conftest import core_of
from tests.unit.test_callbacks import CONFIG
from tests.unit.test_history_db import T0, db

__all__ = ["db"]


def _records(builder: RecordBuilder) -> list[dict[str, Any]]:
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    calls, _ = builder.take()
    for rec in calls:
        latest[(rec.call_id, rec.leg)] = rec.to_row()
    return list(latest.values())


def _day_of_callbacks(t0: float = 0.0) -> list[dict[str, Any]]:
    return _run_callbacks(t0)[1]


def _run_callbacks(t0: float = 0.0) -> tuple[EngineCore, list[dict[str, Any]]]:
    """Three callers leave for a callback: the first is called back and talks (10 s from
    request to answer), the second is busy twice (failed), the third cancels."""
    core: EngineCore = core_of(CONFIG)
    core.initial_effects(t0)
    builder = RecordBuilder({"consult": 20.0})
    offered: list[tuple[str, str]] = []

    def apply(event: Any) -> None:
        for eff in core.apply(event):
            if isinstance(eff, Fact):
                builder.observe(eff, event.now)
            if isinstance(eff, Offer):
                offered.append((eff.call_id, eff.agent_id))

    apply(SetAgentStatus("a1", AgentStatus.PAUSED, t0 + 1, "break"))
    for i in (1, 2, 3):
        apply(CallArrived(f"c{i}", "consult", f"1380013800{i}", t0 + 9 + i, t0 + 9 + i))
        apply(CallerKey(f"c{i}", "1", t0 + 11 + i))
        apply(RequestCallback(f"c{i}", f"1380013800{i}", t0 + 14 + i))
    apply(CancelCallback("c3-cb", t0 + 18))
    apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, t0 + 20))
    assert offered[-1] == ("c1-cb", "a1")
    apply(CallAnswered("c1-cb", "a1", t0 + 25))
    apply(DialFinished("c1-cb", "a1", "ANSWER", t0 + 85, 60.0))
    apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, t0 + 86))
    assert offered[-1] == ("c2-cb", "a1")
    apply(DialFinished("c2-cb", "a1", "CUSTOMER_BUSY", t0 + 90))
    apply(CallbackDue("c2-cb", t0 + 150))
    apply(DialFinished("c2-cb", "a1", "CUSTOMER_NOANSWER", t0 + 160))
    assert not core.callbacks.by_id
    return core, _records(builder)


def test_callback_records_carry_their_context_and_outcome() -> None:
    rows = {r["call_id"]: r for r in _day_of_callbacks()}
    done, failed, cancelled = rows["c1-cb"], rows["c2-cb"], rows["c3-cb"]
    assert done["callback"]["requested_at"] == 15.0 and done["callback"]["reason"] == \
        "caller_key"
    assert done["callback"]["origin"] == "c1"
    assert (done["outcome"], done["callback"]["outcome"], done["callback"]["delay"]) == \
        ("completed", "completed", 10.0)
    assert (failed["outcome"], failed["exit"], failed["callback"]["attempts"]) == \
        ("exited", "callback/failed", 2)
    assert (cancelled["outcome"], cancelled["exit"]) == ("exited", "callback/cancelled")
    # a continuation of the call it replaced: not offered again, no re-entry at first
    assert not any(r["offered"] for r in (done, failed, cancelled))
    assert done["reentries"] == 0 and cancelled["reentries"] == 0
    assert failed["reentries"] == 1  # its retry came back in line once


def test_the_sums_of_callback_outcomes() -> None:
    sums = rollup(_day_of_callbacks())
    q = sums[("queue", "consult")]
    assert (q.callbacks_requested, q.callbacks_completed, q.callbacks_failed,
            q.callbacks_cancelled, q.callbacks_answered) == (3, 1, 1, 1, 1)
    assert q.callback_delay_mean == pytest.approx(10.0)
    assert q.offered == 3  # the three inbound calls, once each
    assert sums[("all", "")].callbacks_requested == 3
    assert Totals().callback_delay_mean is None


def test_a_campaign_attempt_is_not_a_callback() -> None:
    row = {"call_id": "k1", "outcome": "completed", "answered_at": 5.0, "wait": 5.0,
           "callback": {"requested_at": 0.0, "reason": "campaign:spring"}}
    assert rollup([row])[("all", "")].callbacks_requested == 0


def test_callback_report_per_queue_and_day(db: HistoryDB) -> None:
    rows = _day_of_callbacks(T0)
    # another day, another queue: one callback completed 40 s after its request
    other = [{**r, "call_id": r["call_id"] + "-x", "queue": "sales", "first_queue": "sales",
              "entry_time": r["entry_time"] + 86_400,
              "answered_at": (r["answered_at"] + 86_400 + 30)
              if r["answered_at"] is not None else None,
              "callback": ({**r["callback"],
                            "requested_at": r["callback"]["requested_at"] + 86_400}
                           if r.get("callback") else None)}
             for r in rows if r["call_id"] == "c1-cb"]
    db.write(rows + other, [])
    first = date(2025, 12, 3)
    report = callback_report(db, ReportQuery(first, date(2025, 12, 4)))
    by = {(r["label"], r["key"]): r for r in report["rows"]}
    assert set(by) == {("2025-12-03", "consult"), ("2025-12-04", "sales")}
    day1 = by[("2025-12-03", "consult")]
    assert (day1["callbacks_requested"], day1["callbacks_completed"],
            day1["callbacks_failed"], day1["callbacks_cancelled"]) == (3, 1, 1, 1)
    assert day1["callback_delay_mean"] == pytest.approx(10.0)
    assert by[("2025-12-04", "sales")]["callback_delay_mean"] == pytest.approx(40.0)
    total = report["total"]
    assert (total["callbacks_requested"], total["callbacks_answered"]) == (4, 2)
    assert total["callback_delay_mean"] == pytest.approx(25.0)
    table = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert table[0]["callbacks_requested"] == "3" and "callback_delay_mean" in table[0]


def test_the_live_figures_count_callbacks_as_the_records_do() -> None:
    """One definition: the live "today" counts = the records' sums; the promise (the
    EWT told) next to the delay, for the callbacks answered."""
    core, rows = _run_callbacks()
    live = core.figures.total("consult")
    t = rollup(rows)[("queue", "consult")]
    assert (live.callbacks_requested, live.callbacks_completed, live.callbacks_failed,
            live.callbacks_cancelled, live.callbacks_answered) == (
        t.callbacks_requested, t.callbacks_completed, t.callbacks_failed,
        t.callbacks_cancelled, t.callbacks_answered) == (3, 1, 1, 1, 1)
    assert live.callback_delay == t.callback_delay == 10.0
    today = core.figures.window("consult", Window.TODAY, 200.0)
    assert today.callback_delay == 10.0
    ewt = {r["call_id"]: r for r in rows}["c1-cb"]["callback"]["ewt"]
    assert (today.callback_told_ewt, today.callback_told_delay) == (
        (None, None) if ewt is None else (ewt, 10.0))


def test_the_ewt_told_next_to_the_delay_and_campaigns_apart() -> None:
    stats = LiveStats({"q": 20.0}, "UTC")
    for cb_id in ("x-cb", "cmp-spring-0-1"):
        stats.observe(CallbackRequested(cb_id, "x", "q", "13800138000", 0.0, 5.0, 45.0,
                                        0.0, 0, "", "caller_key"), 5.0)
        stats.observe(CallbackFinished(cb_id, "q", "completed", 1, "ANSWER", 30.0, 45.0,
                                       "a1"), 95.0)
    stats.observe(CallbackRequested("y-cb", "y", "q", "13800138001", 0.0, 6.0, None,
                                    0.0, 0, "", "caller_key", restored=True), 6.0)
    today = stats.window("q", Window.TODAY, 100.0)
    assert (today.counts.callbacks_requested, today.counts.callbacks_completed) == (1, 1)
    assert (today.callback_delay, today.callback_told_ewt, today.callback_told_delay) == \
        (30.0, 45.0, 30.0)


def test_acd_report_callbacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    url = f"sqlite:///{tmp_path / 'h.db'}"
    history = HistoryDB(url, timezone="Asia/Shanghai")
    history.upgrade()
    history.write(_day_of_callbacks(T0), [])
    history.close()
    root = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "acd.yaml"
    cfg.write_text((root / "config" / "acd.sample.yaml").read_text())
    args = ["report", "-c", str(cfg), "--db", url, "--from", "2025-12-03", "--callbacks"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "callbacks by queue" in out and "callback_delay_mean" in out
    (row,) = [line.split() for line in out.splitlines() if line.startswith("2025-12-03")]
    assert row[1:7] == ["consult", "3", "1", "1", "1", "1"] and row[7] == "10.0"
    assert main([*args, "--csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert table[0]["callbacks_cancelled"] == "1"


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_migration_0002_on_a_database_with_rows(engine: str, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    """An upgrade from 0001 keeps the rows, the new sums 0, and reports still add up."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    from acd.runtime.history.db import MIGRATIONS
    from tests.unit.test_history_db import call_row

    url = (f"sqlite:///{tmp_path / 'old.db'}" if engine == "sqlite"
           else request.getfixturevalue("postgres_url"))
    history = HistoryDB(url, timezone="Asia/Shanghai")
    request.addfinalizer(history.close)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with history.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text(
            "INSERT INTO call_rollup (bucket, dim, key, day, week, month, offered, "
            "answered, answered_within, abandoned, abandoned_after, abandoned_short, "
            "closed, exited, handled, transferred, wait_answered, wait_abandoned, "
            "wait_max, talk, wrap_up, agent_offers, rona, overflowed, partner_answered, "
            "partner_wait) VALUES (0, 'all', '', 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, "
            "1, 0, 1, 1, 1, 1, 0, 0, 0, 0)"))
    history.upgrade()
    with history.engine.connect() as conn:
        assert conn.execute(text("SELECT offered, callbacks_requested, callback_delay "
                                 "FROM call_rollup")).one() == (1, 0, 0.0)
    history.write([call_row("old-1", T0), *_day_of_callbacks(T0 + 3600)], [])
    report = callback_report(history, ReportQuery(date(2025, 12, 3), date(2025, 12, 3)))
    assert report["total"]["callbacks_requested"] == 3
