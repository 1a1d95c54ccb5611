"""Skill-based routing through the real Asterisk: multi-skill agents, escalation stages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.rig import DID, AgentPlan, Rig

pytestmark = pytest.mark.e2e

REPAIR_DID = "4008002222"


async def test_multi_skill_agent_serves_both_queues(chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("9001", skills={"consult": 2, "repair": 3}, talk_ms=(400, 800)),
             AgentPlan("9002", skills={"consult": 4}, talk_ms=(400, 800))]
    extra = {"queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0.3},
                        {"id": "repair", "skills": {"repair": 2}, "wrap_up": 0.3}],
             "dids": {DID: "consult", REPAIR_DID: "repair"}}
    async with Rig(artifacts, plans, extra_config=extra) as rig:
        results = await asyncio.gather(
            rig.call(["13500000001", "13500000002", "13500000003"], rate=1,
                     service=REPAIR_DID, name="repair"),
            rig.call(["13600000001", "13600000002", "13600000003"], rate=1, name="consult"),
        )
        for r in results:
            assert r.failed == 0, r.errors_text()
        queue_of = {e["call_id"]: e["queue"] for e in rig.published("call_waiting")}
        served: dict[str, set[str]] = {}
        for e in rig.published("call_connected"):
            served.setdefault(e["agent"], set()).add(queue_of[e["call_id"]])
        assert served["9001"] >= {"repair"}  # only 9001 has the repair skill
        assert served["9002"] == {"consult"}  # never offered a repair call
        assert sum(1 for q in queue_of.values() if q == "repair") == 3


async def test_escalation_stage_reaches_a_lower_level_agent_after_its_wait(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("9101", skills={"repair": 1}, talk_ms=(300, 600))]
    extra = {"queues": [{"id": "repair", "skills": {"repair": 3}, "wrap_up": 0.3,
                         "stages": [{"after": 3, "min_level_delta": 2}]}],
             "dids": {DID: "repair"}, "default_queue": "repair"}
    async with Rig(artifacts, plans, extra_config=extra) as rig:
        result = await rig.call(["13700000001"], time_limit=30)
        assert result.failed == 0, result.errors_text()
        stage = rig.published("call_stage")
        assert stage and stage[0]["stage"] == 1
        offered = rig.published("call_offered")
        assert len(offered) == 1 and offered[0]["stage"] == 1
        assert offered[0]["agent"] == "9101"
        assert offered[0]["wait"] >= 2.9  # not before the stage's wait
        connected = rig.published("call_connected")
        assert connected and connected[0]["wait"] >= 3.0
