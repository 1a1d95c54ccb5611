"""How a call enters, end to end: IVR digit by DTMF, caller segments, business hours.

DTMF mode: the sandbox endpoints use ``dtmf_mode=rfc4733``; SIPp sends the digits as
RFC 2833/4733 telephone-events by replaying the pcaps it ships
(``/usr/share/sip-tester/dtmf_2833_<d>.pcap``, see ``harness.sipp.dtmf_caller_scenario``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from acd.domain import AgentStatus
from harness.rig import AgentPlan, Rig
from harness.sipp import dtmf_caller_scenario

pytestmark = pytest.mark.e2e

MENU = "4008009999"  # not in the DID map: callers get the IVR menu
QUEUES = [
    {"id": "consult", "skills": {"consult": 1}, "wrap_up": 0.5},
    {"id": "repair", "skills": {"repair": 1}, "wrap_up": 0.5},
]


def callers_queue(rig: Rig) -> dict[str, str]:
    return {e["caller"]: e["queue"] for e in rig.published("call_waiting")}


async def test_ivr_digit_selects_the_queue(chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("7001", skills={"consult": 2}, talk_ms=(500, 900)),
             AgentPlan("7002", skills={"repair": 3}, talk_ms=(500, 900))]
    extra = {"queues": QUEUES, "ivr": {"prompt": "dir-welcome", "timeout": 3,
                                       "options": {"1": "consult", "2": "repair"}}}
    async with Rig(artifacts, plans, extra_config=extra) as rig:
        two = dtmf_caller_scenario("2", artifacts)
        one = dtmf_caller_scenario("1", artifacts)
        results = await asyncio.gather(
            rig.call(["13600000002"], scenario=two, service=MENU, name="press2"),
            rig.call(["13600000001"], scenario=one, service=MENU, name="press1"),
            rig.call(["13600000000"], service=MENU, name="nokey"),
        )
        for r in results:
            assert r.failed == 0, r.errors_text()
        assert callers_queue(rig) == {"13600000002": "repair", "13600000001": "consult",
                                      "13600000000": "consult"}
        took = {e["call_id"]: e["agent"] for e in rig.published("call_connected")}
        by_caller = {e["caller"]: took[e["call_id"]] for e in rig.published("call_waiting")}
        assert by_caller == {"13600000002": "7002", "13600000001": "7001",
                             "13600000000": "7001"}


async def test_vip_segment_is_served_before_earlier_callers(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("7101", status="logged_out", talk_ms=(300, 500))]
    extra = {"segments": [{"id": "vip", "numbers": ["+86 139 0000 0009"], "priority": 10}]}
    async with Rig(artifacts, plans, extra_config=extra) as rig:
        assert rig.engine is not None
        task = asyncio.create_task(
            rig.call(["13900000001", "13900000002", "13900000009"], rate=2))
        await rig.wait_for(lambda: len(rig.published("call_waiting")) == 3)
        await rig.engine.set_agent_status("7101", AgentStatus.AVAILABLE)
        result = await task
        assert result.failed == 0, result.errors_text()
        callers = {e["call_id"]: e["caller"] for e in rig.published("call_waiting")}
        order = [callers[e["call_id"]] for e in rig.published("call_offered")]
        assert order == ["13900000009", "13900000001", "13900000002"]
        vip = next(e for e in rig.published("call_waiting") if e["caller"] == "13900000009")
        assert vip["segment"] == "vip" and vip["priority"] == 10


async def test_closed_queue_plays_the_closed_message_and_offers_nobody(
        chroot: Path, artifacts: Path) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    queues = [{"id": "consult", "skills": {"consult": 1}, "holidays": [today],
               "closed": {"action": "message", "sound": "vm-goodbye"}}]
    async with Rig(artifacts, [AgentPlan("7201")], extra_config={"queues": queues}) as rig:
        assert rig.engine is not None
        result = await rig.call(["13700000000"], time_limit=30)
        assert result.failed == 0 and result.successful == 1, result.errors_text()
        assert rig.published("call_closed") and not rig.published("call_offered")
        assert rig.engine.core.figures.total("consult").closed == 1
        assert rig.phone_events("7201", "offered") == []
