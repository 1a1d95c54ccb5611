"""Agents' phones as Asterisk sees them (issue 15.1), end to end with the real Asterisk.

An operator adds agents with ``acd asterisk-config`` + ``core reload`` while the engine
runs; their softphones are not open yet. Asterisk knows them as Unavailable, and they
are absent from its device-state cache (DeviceStateList) until their state first
changes. The engine must learn that (not treat a phone it has not heard of as free),
must never ring them, and must not pause their agents; the moment a phone registers,
its agent takes the next waiting caller.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness.rig import AgentPlan, Rig
from tests.e2e.test_calls import answered_by, numbers

pytestmark = pytest.mark.e2e


async def test_agents_added_by_a_reload_are_offered_only_once_their_phone_registers(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("7001", talk_ms=(7000, 7000)),
             AgentPlan("7002", scenario=None, in_asterisk=False),
             AgentPlan("7003", scenario=None, in_asterisk=False)]
    async with Rig(artifacts, plans) as rig:
        engine = rig.engine
        assert engine is not None

        def device(agent_id: str) -> str:
            return str(engine.snapshot()["agents"][agent_id]["device"])

        # Not in Asterisk at all yet: the resync asked, Asterisk said INVALID.
        assert device("7002") == device("7003") == "INVALID"
        await rig.reload_agents()
        # The Reload event makes the engine ask again: now they exist, unregistered.
        await rig.wait_for(lambda: device("7002") == device("7003") == "UNAVAILABLE", 5)

        callers = numbers(2, "0288")
        calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=60))
        # 7001 takes the first caller and talks 7 s; the second waits, ringing nobody.
        await rig.wait_for(lambda: len(rig.published("call_connected")) == 1, 15)
        await asyncio.sleep(1.5)
        offered = [e["agent"] for e in rig.published("call_offered")]
        assert offered == ["7001"], offered
        assert not rig.published("agent_no_answer") and not rig.published("agent_unreachable")
        snap = engine.snapshot()["agents"]
        assert snap["7002"]["status"] == snap["7003"]["status"] == "available"
        assert engine.core.router.waiting() == 1

        # 7002's softphone registers: the waiting caller rings it within a second.
        registered = await rig.register_phone("7002", talk_ms=(500, 800))
        await rig.wait_for(lambda: len(rig.published("call_offered")) == 2, 5)
        took = time.monotonic() - registered
        assert rig.published("call_offered")[1]["agent"] == "7002"
        assert took < 1.0, f"offered {took:.2f} s after the phone registered"
        result = await calls
        assert result.failed == 0 and result.successful == 2, result.errors_text()
        assert answered_by(rig) == {callers[0]: "7001", callers[1]: "7002"}
        # 7003 never registered: never rung, still available (not paused "no-answer")
        assert all(e["agent"] != "7003" for e in rig.published("call_offered"))
        assert engine.snapshot()["agents"]["7003"]["status"] == "available"


async def test_engine_restarted_after_a_reload_knows_unregistered_phones(
        chroot: Path, artifacts: Path) -> None:
    """The second way the issue found it: agents added by a reload, then the engine
    restarted: its resync must learn the phones that never changed state."""
    plans = [AgentPlan("7101", talk_ms=(400, 700)),
             AgentPlan("7102", scenario=None, in_asterisk=False),
             AgentPlan("7103", scenario=None, in_asterisk=False)]
    async with Rig(artifacts, plans, engine="none") as rig:
        await rig.reload_agents()
        engine = await rig.start_engine()
        snap = engine.snapshot()["agents"]
        assert snap["7102"]["device"] == snap["7103"]["device"] == "UNAVAILABLE"
        result = await rig.call(numbers(3, "0289"), rate=5, time_limit=60)
        assert result.failed == 0 and result.successful == 3, result.errors_text()
        assert {e["agent"] for e in rig.published("call_offered")} == {"7101"}
        assert {a["status"] for a in engine.snapshot()["agents"].values()} == {"available"}
