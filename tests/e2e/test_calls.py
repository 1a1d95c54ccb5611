"""Real calls end to end: SIPp caller → Asterisk 22 → engine (FastAGI + AMI) → SIPp agent.

No mock anywhere: the sandbox Asterisk runs the shipped dialplan, the engine runs in
this event loop (or as an ``acd serve`` process for the crash test) and SIPp plays both
callers and agent softphones. What SIPp saw is compared with what the engine counted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from acd.domain import AgentStatus
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e


def numbers(n: int, prefix: str = "1380013") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def answered_by(rig: Rig) -> dict[str, str]:
    """caller number → agent id, from what the agents' phones saw."""
    out: dict[str, str] = {}
    for agent_id, phone in rig.phones.items():
        for ev in phone.result().by_event("answered"):
            assert ev.caller not in out, f"{ev.caller} answered twice"
            out[ev.caller] = agent_id
    return out


async def test_burst_of_30_calls_every_call_reaches_an_agent(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan(f"10{i:02d}", talk_ms=(600, 1400)) for i in range(1, 6)]
    async with Rig(artifacts, plans) as rig:
        callers = numbers(30)
        result = await rig.call(callers, rate=5, time_limit=90)
        assert result.failed == 0, result.errors_text()
        assert result.successful == 30
        assert rig.engine is not None
        await rig.wait_for(lambda: rig.engine is not None and not rig.engine.core.calls)
        stats = rig.engine.core.figures.total("consult")
        assert (stats.offered, stats.answered, stats.abandoned) == (30, 30, 0)
        took = answered_by(rig)
        assert sorted(took) == sorted(callers)  # each caller reached exactly one agent
        per_agent = Counter(took.values())
        snap = rig.engine.snapshot()["agents"]
        assert {a: snap[a]["answered"] for a in snap} == {p.agent_id: per_agent[p.agent_id]
                                                         for p in plans}
        assert all(per_agent[p.agent_id] > 0 for p in plans)  # load is spread
        # every connected call was recorded with its wait; nothing left behind
        assert len(rig.published("call_connected")) == 30
        assert rig.engine.core.router.waiting() == 0


async def test_longest_idle_agent_is_offered_first(chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan(a, status="logged_out", talk_ms=(8000, 9000))
             for a in ("2001", "2002", "2003")]
    async with Rig(artifacts, plans) as rig:
        assert rig.engine is not None
        for agent in ("2003", "2001", "2002"):  # idle since: 2003 longest
            await rig.engine.set_agent_status(agent, AgentStatus.AVAILABLE)
            await asyncio.sleep(0.05)
        result = await rig.call(numbers(3, "1390013"), rate=1, time_limit=60)
        assert result.failed == 0, result.errors_text()
        offered = [e["agent"] for e in rig.published("call_offered")]
        assert offered == ["2003", "2001", "2002"]
        took = answered_by(rig)
        assert [took[c] for c in numbers(3, "1390013")] == ["2003", "2001", "2002"]


async def test_ring_no_answer_pauses_agent_and_call_keeps_its_place(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("3001", "agent_noanswer", status="logged_out"),
             AgentPlan("3002", talk_ms=(5500, 6500), status="logged_out")]
    async with Rig(artifacts, plans, ring_timeout=3) as rig:
        assert rig.engine is not None
        await rig.engine.set_agent_status("3001", AgentStatus.AVAILABLE)  # longest idle
        await asyncio.sleep(0.05)
        await rig.engine.set_agent_status("3002", AgentStatus.AVAILABLE)
        first = asyncio.create_task(rig.call(["0755000001", "0755000002"], rate=2,
                                             name="first"))
        await asyncio.sleep(5.0)  # A has rung out at 3001 and waits again; B talks
        late = await rig.call(["0755000003"], name="late", time_limit=60)
        early = await first
        assert early.failed == 0 and late.failed == 0, early.errors_text()
        snap = rig.engine.snapshot()["agents"]
        assert snap["3001"]["status"] == "paused" and snap["3001"]["reason"] == "no-answer"
        assert snap["3001"]["missed"] == 1
        assert rig.published("agent_no_answer")[0]["agent"] == "3001"
        # 3001's phone rang for A and was cancelled; 3002 took B, then A, then C:
        # A kept its place ahead of C, who arrived later.
        assert [e.caller for e in rig.phone_events("3001", "offered")] == ["0755000001"]
        order = [e.caller for e in rig.phone_events("3002", "answered")]
        assert order == ["0755000002", "0755000001", "0755000003"]
        assert rig.engine.core.figures.total("consult").rona == 1


async def test_caller_who_hangs_up_while_waiting_is_abandoned(
        chroot: Path, artifacts: Path) -> None:
    async with Rig(artifacts, [AgentPlan("4001", status="logged_out")]) as rig:
        assert rig.engine is not None
        result = await rig.call(["02012345678"], scenario="caller_abandon",
                                patience_ms=[2500], time_limit=30)
        assert result.failed == 0, result.errors_text()
        assert len(result.by_event("abandoned")) == 1
        await rig.wait_for(lambda: bool(rig.published("call_abandoned")))
        abandoned = rig.published("call_abandoned")[0]
        assert 1.5 < abandoned["wait"] < 4.0
        core = rig.engine.core
        assert core.calls == {} and core.router.waiting() == 0
        assert core.figures.total("consult").abandoned == 1
        # nothing stuck: the agent logs in and the next caller is served at once
        await rig.engine.set_agent_status("4001", AgentStatus.AVAILABLE)
        result = await rig.call(["02012345679"], time_limit=30)
        assert result.failed == 0 and result.successful == 1
        assert answered_by(rig) == {"02012345679": "4001"}


async def test_agent_with_unavailable_device_is_not_offered(
        chroot: Path, artifacts: Path) -> None:
    # 5001's phone never registers: Asterisk reports PJSIP/agent5001 UNAVAILABLE.
    plans = [AgentPlan("5001", scenario=None), AgentPlan("5002", talk_ms=(300, 600))]
    async with Rig(artifacts, plans) as rig:
        assert rig.engine is not None
        snap = rig.engine.snapshot()["agents"]
        assert snap["5001"]["device"] == "UNAVAILABLE"
        assert snap["5002"]["device"] == "NOT_INUSE"
        result = await rig.call(numbers(3, "0288"), rate=2, time_limit=60)
        assert result.failed == 0, result.errors_text()
        assert {e["agent"] for e in rig.published("call_offered")} == {"5002"}
        assert rig.engine.snapshot()["agents"]["5001"]["status"] == "available"


async def test_engine_killed_while_callers_wait_nobody_is_dropped(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("6001", talk_ms=(2500, 3500)), AgentPlan("6002", talk_ms=(2500, 3500))]
    async with Rig(artifacts, plans, engine="process", agi_retries=2,
                   agi_retry_pause=1) as rig:
        callers = numbers(6, "0571")
        calls = asyncio.create_task(rig.call(callers, rate=5, time_limit=90))
        await asyncio.sleep(2.0)  # 2 callers talking, 4 waiting in the engine
        await rig.kill_engine_process()
        result = await calls
        assert result.failed == 0, result.errors_text()
        assert result.successful == 6
        took = answered_by(rig)
        assert sorted(took) == sorted(callers)  # every caller reached an agent
        assert rig.asterisk is not None
        log = rig.asterisk.log_path.read_text(errors="replace")
        assert "engine unreachable, app_queue fallback" in log
