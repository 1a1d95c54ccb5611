"""Call history on the real path (Asterisk sandbox, SIPp phones, real databases).

* A burst, with ring-no-answers and callers who give up: every call has exactly one
  record, as many as SIPp placed and as Asterisk's CDR counts; each answered record names
  the agent the CDR says answered; today's report equals the live "today" figures.
* Nothing lost: the engine SIGKILLed mid-burst (and restarted), the active engine of a
  pair SIGKILLed mid-burst (the standby takes over; both write one PostgreSQL), the
  PostgreSQL server stopped and started mid-burst: every call of the burst has exactly
  one complete record, checked call by call against Asterisk's CDR. Conversations that
  outlive the engine are closed from AMI's ``Cdr`` events.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acd.domain.figures import Window
from acd.history.periods import Granularity
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.reports import ReportQuery, call_report
from harness.cdr import caller_calls
from harness.media import talking_agent_scenario
from harness.postgres import PostgresServer
from harness.redis import RedisServer
from harness.rig import AgentPlan, Rig
from harness.sandbox import INSTANCES_DIR

pytestmark = pytest.mark.e2e


def history_section(artifacts: Path, url: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"url": url or f"sqlite:///{artifacts / 'history.db'}",
            "spool_dir": str(artifacts / "spool"), "flush_interval": 0.1, **extra}


def count_text(path: Path, text: str) -> int:
    return path.read_text(errors="replace").count(text) if path.exists() else 0


async def wait_log(path: Path, text: str, count: int = 1, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if count_text(path, text) >= count:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{text!r} x{count} not in {path}")


async def wait_cdr(rig: Rig, n: int, within: float = 15.0) -> dict[str, Any]:
    assert rig.asterisk is not None
    deadline = time.monotonic() + within
    while True:
        calls = caller_calls(rig.asterisk)
        if len(calls) >= n or time.monotonic() > deadline:
            return calls
        await asyncio.sleep(0.2)


async def test_burst_one_record_per_call_matching_sipp_cdr_and_live_today(
        chroot: Path, artifacts: Path) -> None:
    agents = [AgentPlan("7401", talk_ms=(800, 1200)), AgentPlan("7402", talk_ms=(800, 1200)),
              AgentPlan("7403", "agent_noanswer")]
    async with Rig(artifacts, agents, ring_timeout=2,
                   extra_config={"history": history_section(artifacts)}) as rig:
        assert rig.engine is not None and rig.node is not None
        history = rig.node.history
        assert history is not None
        callers = [f"0745{i:04d}" for i in range(14)]
        quitters = [f"0746{i:04d}" for i in range(3)]
        served, gave_up = await asyncio.gather(
            rig.call(callers, rate=8, time_limit=90),
            rig.call(quitters, rate=10, scenario="caller_abandon",
                     patience_ms=[1500, 1800, 2100], name="quitters", time_limit=60))
        assert served.failed == 0, served.errors_text()
        placed = served.successful + gave_up.successful + gave_up.failed
        assert placed == 17
        cdr = await wait_cdr(rig, placed)
        await asyncio.sleep(1.0)  # the last wrap-ups (0.5 s) end
        await rig.engine_settled()
        live = rig.engine.core.figures.window("consult", Window.TODAY, time.time()).counts
        await asyncio.wait_for(history.writer.drained(), 15)

        rows = await asyncio.to_thread(history.db.calls_between, 0, time.time() + 60,
                                       limit=10_000)
        ids = [r["call_id"] for r in rows]
        assert len(ids) == len(set(ids)) == placed == len(cdr)
        assert set(ids) == set(cdr)
        assert all(r["final"] for r in rows), [r for r in rows if not r["final"]]
        by_id = {r["call_id"]: r for r in rows}
        for uid, call in cdr.items():
            rec = by_id[uid]
            if call.answered_by is None:
                assert rec["outcome"] == "abandoned", (uid, rec)
            else:
                assert rec["outcome"] == "completed"
                assert f"agent{rec['agent']}" == call.answered_by
                # (a CDR's billsec counts from the caller's own answer, so it includes the
                # wait of the first dial: the talk is at most that)
                assert 0.5 < rec["talk"] <= call.billsec + 1.5
        assert sum(r["outcome"] == "abandoned" for r in rows) >= 1
        ronas = [o for r in rows for o in r["offers"] if o["outcome"] == "rona"]
        assert ronas and all(o["target"] == "7403" for o in ronas)

        # today's report = the live "today" = the CDR's calls
        day = datetime.now(ZoneInfo(rig.engine.settings.timezone)).date()
        today = ReportQuery(day, day, "queue", Granularity.DAY)
        report = await asyncio.to_thread(call_report, history.db, today)
        (row,) = [r for r in report["rows"] if r["key"] == "consult"]
        assert (row["offered"], row["answered"], row["abandoned"], row["handled"],
                row["answered_within"], row["rona"]) == (
            live.offered, live.answered, live.abandoned, live.handled,
            live.answered_within_target, live.rona)
        assert row["offered"] == len(cdr)
        assert row["answered"] == sum(c.answered_by is not None for c in cdr.values())
        assert row["aht"] == pytest.approx((live.talk + live.wrap_up) / live.handled)


# -- nothing lost: engine SIGKILL, takeover, database restart --------------------------


async def wait_records(url: str, ids: set[str], within: float = 30.0,
                       timezone: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    """Poll the database (as a report would) until every call of ``ids`` has a final
    record, or the time is up; returns every record."""
    db = HistoryDB(url, timezone=timezone)
    try:
        deadline = time.monotonic() + within
        while True:
            try:
                rows = await asyncio.to_thread(db.calls_between, 0, time.time() + 60,
                                               limit=10_000)
            except Exception:
                rows = []
            done = {r["call_id"] for r in rows if r["final"]}
            if ids <= done or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.3)
    finally:
        db.close()


def check_one_complete_record_each(rows: list[dict[str, Any]], cdr: dict[str, Any]) -> None:
    ids = [r["call_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a call has two records"
    assert set(ids) == set(cdr), (set(ids) ^ set(cdr))
    open_rows = [r for r in rows if not r["final"]]
    assert not open_rows, open_rows
    by_id = {r["call_id"]: r for r in rows}
    for uid, call in cdr.items():
        rec = by_id[uid]
        if call.answered_by is None:
            assert rec["outcome"] == "abandoned", (uid, rec, call.legs)
        else:
            assert rec["outcome"] == "completed", (uid, rec, call.legs)
            assert f"agent{rec['agent']}" == call.answered_by, (uid, rec, call.legs)
            assert rec["talk"] is not None and rec["talk"] > 0


async def test_engine_sigkilled_mid_burst_every_call_has_one_complete_record(
        chroot: Path, artifacts: Path) -> None:
    url = f"sqlite:///{artifacts / 'history.db'}"
    plans = [AgentPlan(a, talk_ms=(4000, 6000)) for a in ("7411", "7412", "7413")]
    async with Rig(artifacts, plans, engine="process", agi_retries=20, agi_retry_pause=1,
                   wrap_up=0.5,
                   extra_config={"history": history_section(artifacts, url)}) as rig:
        callers = [f"0747{i:04d}" for i in range(12)]
        calls = asyncio.create_task(rig.call(callers, rate=4, time_limit=120))
        # mid-burst: three callers talking, others waiting or still coming
        await wait_log(artifacts / "engine.log", "call_connected", count=3)
        await asyncio.sleep(0.5)
        await rig.kill_engine_process()
        await rig.start_engine_process()   # same node, same spool: it takes over
        result = await calls
        assert result.failed == 0, result.errors_text()
        cdr = await wait_cdr(rig, len(callers))
        assert len(cdr) == len(callers)
        rows = await wait_records(url, set(cdr))
        check_one_complete_record_each(rows, cdr)
        # the conversations across the kill were closed from the CDR
        assert count_text(artifacts / "engine.log", "closed from the CDR") >= 1


async def test_takeover_mid_burst_both_engines_write_one_postgresql(
        chroot: Path, artifacts: Path) -> None:
    with RedisServer(artifacts / "redis") as redis, PostgresServer() as pg:
        url = pg.create_database("acd")
        store = {"backend": "redis", "url": redis.url, "restore_grace": 6}
        rig = Rig(artifacts, [AgentPlan(a, talk_ms=(3000, 4000)) for a in ("7421", "7422")],
                  engine="none", wrap_up=0, agi_retries=40, agi_retry_pause=1,
                  extra_config={"store": store, "history": history_section(artifacts, url),
                                "engine": {"ring_timeout": 4, "drain_timeout": 15},
                                "ha": {"node_id": "one", "lease_ttl": 2}})
        standby_port = rig.use_standby_port()
        async with rig:
            await rig.start_active_standby(standby_port)
            callers = [f"0748{i:04d}" for i in range(10)]
            calls = asyncio.create_task(rig.call(callers, rate=4, time_limit=120))
            await wait_log(artifacts / "engine.log", "call_connected", count=2)
            await asyncio.sleep(0.5)
            await rig.kill_engine_process()         # the active dies mid-burst
            result = await calls
            assert result.failed == 0, result.errors_text()
            cdr = await wait_cdr(rig, len(callers))
            assert len(cdr) == len(callers)
            # the killed node comes back (as the standby) and writes what it spooled
            await rig.start_engine_process()
            rows = await wait_records(url, set(cdr))
            check_one_complete_record_each(rows, cdr)
            writers = {r["writer"] for r in rows}
            assert writers == {"one", "two"}, writers  # both engines wrote to one database


async def test_postgresql_restarted_under_load_loses_no_record(
        chroot: Path, artifacts: Path) -> None:
    with PostgresServer() as pg:
        url = pg.create_database("acd")
        plans = [AgentPlan(a, talk_ms=(800, 1500)) for a in ("7431", "7432")]
        async with Rig(artifacts, plans,
                       extra_config={"history": history_section(artifacts, url)}) as rig:
            assert rig.node is not None and rig.node.history is not None
            writer = rig.node.history.writer
            callers = [f"0749{i:04d}" for i in range(16)]
            calls = asyncio.create_task(rig.call(callers, rate=4, time_limit=120))
            await asyncio.sleep(1.5)
            await asyncio.to_thread(pg.stop)        # the database goes away mid-burst
            await asyncio.sleep(2.0)
            assert writer.failing and writer.spool.segments()
            await asyncio.to_thread(pg.start)
            result = await calls
            assert result.failed == 0, result.errors_text()
            cdr = await wait_cdr(rig, len(callers))
            await asyncio.wait_for(writer.drained(), 30)
            rows = await wait_records(url, set(cdr))
            check_one_complete_record_each(rows, cdr)
            assert writer.stats.failures > 0 and not writer.failing


# -- recordings ------------------------------------------------------------------------------


async def test_recorded_call_file_length_matches_talk_and_access_is_role_checked_and_audited(
        chroot: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.setenv("ACD_TEST_SUP", "s" * 32)
    monkeypatch.setenv("ACD_TEST_AGENT", "g" * 32)
    talking = talking_agent_scenario(artifacts / "media")  # a phone that sends audio
    rig = Rig(artifacts, [AgentPlan("7441", str(talking),
                                    variables={"talk_min": 3000, "talk_max": 3200})],
              name="rec")
    spool = chroot / str(INSTANCES_DIR).lstrip("/") / rig.name / "spool"
    rig.extra_config.update({
        "history": history_section(artifacts, recording={"consult": {"mode": "all"}},
                                   recording_path="acd",
                                   recordings_dir=str(spool / "monitor" / "acd")),
        "api": {"tokens": [{"name": "sup", "role": "supervisor", "env": "ACD_TEST_SUP"},
                           {"name": "a7441", "role": "agent", "env": "ACD_TEST_AGENT",
                            "agent": "7441"}]},
    })
    async with rig:
        assert rig.node is not None and rig.node.history is not None
        history = rig.node.history
        result = await rig.call(["07500001"], time_limit=30)
        assert result.successful == 1, result.errors_text()
        (done,) = rig.published("call_completed")
        deadline = time.monotonic() + 10
        while True:
            await asyncio.wait_for(history.writer.drained(), 10)
            (row,) = await asyncio.to_thread(history.db.call, done["call_id"])
            if row["recording"] is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        rec = row["recording"]
        assert rec is not None, row
        path = spool / "monitor" / "acd" / rec["file"]
        assert path.is_file() and rec["bytes"] == path.stat().st_size > 1000
        # the file holds the conversation, not the hold music: its length is the talk time
        assert abs(rec["seconds"] - row["talk"]) < 0.5, (rec, row["talk"])
        assert 2.8 < rec["seconds"] < 3.8

        assert rig.node.app is not None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rig.node.app),
                                     base_url="http://acd.test") as http:
            url = f"/api/v1/reports/recordings/{done['call_id']}"
            agent = await http.get(url, headers={"Authorization": "Bearer " + "g" * 32})
            assert agent.status_code == 403
            play = await http.get(url, headers={"Authorization": "Bearer " + "s" * 32})
            assert play.status_code == 200, play.text
            assert play.headers["content-type"] == "audio/wav"
            assert play.content == path.read_bytes()
            got = await http.get(url + "?download=true",
                                 headers={"Authorization": "Bearer " + "s" * 32})
            assert "attachment" in got.headers["content-disposition"]
        audit = await asyncio.to_thread(history.db.recording_audit, done["call_id"])
        assert [(a["who"], a["action"]) for a in audit] == [("sup", "play"),
                                                             ("sup", "download")]
