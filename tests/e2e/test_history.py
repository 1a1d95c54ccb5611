"""Call history on the real path (Asterisk sandbox, SIPp phones, real databases).

* A burst, with ring-no-answers and callers who give up: every call has exactly one
  record, as many as SIPp placed and as Asterisk's CDR counts; each answered record names
  the agent the CDR says answered; today's report equals the live "today" figures.
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
from acd.runtime.history.reports import ReportQuery, call_report
from harness.cdr import caller_calls
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e


def history_section(artifacts: Path, url: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"url": url or f"sqlite:///{artifacts / 'history.db'}",
            "spool_dir": str(artifacts / "spool"), "flush_interval": 0.1, **extra}


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
