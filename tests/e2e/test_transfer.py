"""Blind transfer from the agent's phone to another queue, end to end.

The agent's softphone (``harness/sipp/agent_transfer.xml``) sends a SIP REFER in the
dialog with Refer-To ``*82``. Asterisk 22's res_pjsip_refer looks ``*82`` up in the
agent endpoint's context ``[acd-agents]``, which includes the generated
``[acd-transfer]`` (``extensions_acd.conf``); the caller's channel leaves the Dial bridge
for ``*82``, which sets ``ACD_QUEUE=complaint`` and re-enters ``[hotline-acd]`` with the
``ACD_ENTRY`` and ``ACD_CALL_ID`` stamped at the first entry. The engine then queues the
caller in ``complaint`` with its original entry time: it is served before a caller who
entered ``complaint`` directly but later than its first entry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from acd.domain import AgentStatus
from harness.rig import DID, AgentPlan, Rig

pytestmark = pytest.mark.e2e

COMPLAINT_DID = "4008008282"
QUEUES = [
    {"id": "consult", "skills": {"consult": 1}, "wrap_up": 0.5, "transfer_code": "81"},
    {"id": "complaint", "skills": {"complaint": 1}, "wrap_up": 0.5, "transfer_code": "82"},
]
CALLER_A = "13800000001"  # consult, transferred by 8001 to *82
CALLER_B = "13900000002"  # complaint directly, after A's first entry


def waiting(rig: Rig, caller: str) -> list[dict[str, Any]]:
    return [e for e in rig.published("call_waiting") if e["caller"] == caller]


async def test_blind_transfer_to_a_queue_keeps_the_callers_place(
        chroot: Path, artifacts: Path) -> None:
    plans = [
        AgentPlan("8001", "agent_transfer", skills={"consult": 1},
                  variables={"transfer_to": "82", "talk_ms": 2500}),
        AgentPlan("8002", skills={"complaint": 1}, talk_ms=(800, 1200),
                  status="logged_out"),
    ]
    extra = {"queues": QUEUES, "dids": {DID: "consult", COMPLAINT_DID: "complaint"}}
    async with Rig(artifacts, plans, extra_config=extra) as rig:
        engine = rig.engine
        assert engine is not None and rig.asterisk is not None
        assert "exten => *82,1,Set(ACD_QUEUE=complaint)" in (
            rig.asterisk.etc_dir / "extensions_acd.conf").read_text()

        call_a = asyncio.create_task(rig.call([CALLER_A], name="caller_a", time_limit=90))
        await rig.wait_for(lambda: any(e["agent"] == "8001"
                                       for e in rig.published("call_connected")))
        # B enters complaint while A still talks to 8001: after A's first entry, before
        # A's transfer.
        call_b = asyncio.create_task(rig.call([CALLER_B], name="caller_b",
                                              service=COMPLAINT_DID, time_limit=90))
        await rig.wait_for(lambda: bool(waiting(rig, CALLER_B)))
        assert len(waiting(rig, CALLER_A)) == 1  # not transferred yet
        # 8001's phone sends the REFER; A re-enters the engine in complaint.
        await rig.wait_for(lambda: len(waiting(rig, CALLER_A)) == 2, within=15)
        snap = engine.snapshot()
        assert snap["queues"]["complaint"]["waiting"] == 2
        assert snap["agents"]["8001"]["answered"] == 1

        await engine.set_agent_status("8002", AgentStatus.AVAILABLE)
        result_a, result_b = await asyncio.gather(call_a, call_b)
        assert result_a.failed == 0 and result_a.successful == 1, result_a.errors_text()
        assert result_b.failed == 0 and result_b.successful == 1, result_b.errors_text()
        await rig.wait_for(lambda: not engine.core.calls)

        first_a, again_a = waiting(rig, CALLER_A)
        (only_b,) = waiting(rig, CALLER_B)
        assert (first_a["queue"], again_a["queue"], only_b["queue"]) == (
            "consult", "complaint", "complaint")
        # Same call, original entry time: A keeps its place ahead of B.
        assert again_a["call_id"] == first_a["call_id"]
        assert again_a["entry_time"] == pytest.approx(first_a["entry_time"], abs=1e-3)
        assert again_a["entry_time"] < only_b["entry_time"]

        offered = [(e["call_id"], e["queue"], e["agent"])
                   for e in rig.published("call_offered")]
        assert offered == [(first_a["call_id"], "consult", "8001"),
                           (again_a["call_id"], "complaint", "8002"),
                           (only_b["call_id"], "complaint", "8002")]
        # What the phones saw: 8001 answered A and transferred it (REFER 202, final
        # NOTIFY 200 in a sipfrag), then hung up; 8002 took A, then B.
        phone_8001 = rig.phones["8001"].result().events
        assert [e.event for e in phone_8001] == ["offered", "answered", "transferred",
                                                 "transfer_done", "hungup"]
        assert {e.caller for e in phone_8001} == {CALLER_A}
        assert [e.caller for e in rig.phone_events("8002", "answered")] == [CALLER_A,
                                                                           CALLER_B]
        completed = [(e["queue"], e["agent"]) for e in rig.published("call_completed")]
        assert completed == [("consult", "8001"), ("complaint", "8002"),
                             ("complaint", "8002")]
        stats = {q: engine.core.figures.total(q) for q in ("consult", "complaint")}
        assert (stats["consult"].answered, stats["complaint"].answered) == (1, 2)
        assert stats["complaint"].abandoned == 0

        # the engine recognises the served call coming back: a transfer, not a new call
        assert again_a["reentry"] is True
        assert (stats["consult"].transferred_out, stats["complaint"].transferred_in) == (1, 1)
        assert (stats["consult"].offered, stats["complaint"].offered) == (1, 1)
