"""Shared-partner regional routing end to end: each partner site is a SIPp server on its
own port behind its own PJSIP trunk (rendered by ``acd asterisk-config``)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from harness.rig import AgentPlan, Rig, SitePlan, wait_for_log
from harness.sipp import dtmf_caller_scenario

pytestmark = pytest.mark.e2e

GUANGZHOU = ["02088886601", "02088886602", "02088886603", "02088886604", "02088886605"]
HANGZHOU = "057188886666"


def concurrency(rig: Rig, site: str) -> int:
    """Most calls the partner's server held at once, from its own log."""
    changes: list[tuple[float, int]] = []
    for ev in rig.partners[site].result().events:
        if ev.event == "answered":
            changes.append((ev.time, 1))
        elif ev.event in ("hungup", "far_hungup"):
            changes.append((ev.time, -1))
    peak = level = 0
    for _, delta in sorted(changes):
        level += delta
        peak = max(peak, level)
    return peak


def regions(overflow_after: float, **policies: dict[str, object]) -> dict[str, object]:
    return {"overflow_after": overflow_after, "policies": policies}


async def test_guangdong_caller_overflows_to_the_guangdong_partner(
        chroot: Path, artifacts: Path) -> None:
    sites = [SitePlan("gd", ["CN-GD"]), SitePlan("zj", ["CN-ZJ"])]
    extra = {"regions": regions(30, **{"CN-GD": {"mode": "overflow", "after": 3}})}
    async with Rig(artifacts, [AgentPlan("1001", status="logged_out")], sites=sites,
                   extra_config=extra) as rig:
        result = await rig.call([GUANGZHOU[0]], time_limit=30)
        assert result.failed == 0, result.errors_text()
        over = rig.published("call_overflowed")
        assert [(o["site"], o["region"]) for o in over] == [("gd", "CN-GD")]
        assert over[0]["wait"] >= 2.9  # not before the region's overflow wait
        assert [e.caller for e in rig.partners["gd"].result().by_event("answered")] == [
            GUANGZHOU[0]]
        assert rig.partners["zj"].result().by_event("offered") == []
        assert rig.engine is not None
        assert rig.engine.core.partners.stats["gd"].answered == 1
        # the wait told is the wait until the partner answered (Dial's ANSWEREDTIME
        # counts from the engine's answer of the caller: it made the wait look ~0 s)
        connected = rig.published("call_connected")
        assert len(connected) == 1 and connected[0]["site"] == "gd"
        assert over[0]["wait"] <= connected[0]["wait"] <= over[0]["wait"] + 3.0


async def test_primary_region_goes_to_the_partner_first(chroot: Path, artifacts: Path) -> None:
    sites = [SitePlan("zj", ["CN-ZJ"])]
    extra = {"regions": regions(30, **{"CN-ZJ": {"mode": "primary"}})}
    async with Rig(artifacts, [AgentPlan("1002")], sites=sites, extra_config=extra) as rig:
        result = await rig.call([HANGZHOU], time_limit=30)
        assert result.failed == 0, result.errors_text()
        assert [o["site"] for o in rig.published("call_overflowed")] == ["zj"]
        assert rig.published("call_offered") == []  # the free own agent was not rung
        assert rig.phone_events("1002", "offered") == []


async def test_partner_capacity_is_never_exceeded_under_a_burst(
        chroot: Path, artifacts: Path) -> None:
    sites = [SitePlan("gd", ["CN-GD"], capacity=2, talk_ms=(1500, 2500))]
    extra = {"regions": regions(30, **{"CN-GD": {"mode": "primary"}})}
    async with Rig(artifacts, [AgentPlan("1003", status="logged_out")], sites=sites,
                   extra_config=extra) as rig:
        result = await rig.call(GUANGZHOU, rate=10, time_limit=60)
        assert result.failed == 0 and result.successful == 5, result.errors_text()
        assert concurrency(rig, "gd") == 2
        assert len(rig.partners["gd"].result().by_event("answered")) == 5
        assert rig.engine is not None
        assert rig.engine.core.partners.stats["gd"].active == 0


async def test_partner_that_rejects_passes_the_caller_to_the_next_partner(
        chroot: Path, artifacts: Path) -> None:
    sites = [SitePlan("gd-busy", ["CN-GD"], scenario="agent_busy", preference=10),
             SitePlan("gd-ok", ["CN-GD"], preference=1)]
    extra = {"regions": regions(30, **{"CN-GD": {"mode": "overflow", "after": 1}})}
    async with Rig(artifacts, [AgentPlan("1004", status="logged_out")], sites=sites,
                   extra_config=extra) as rig:
        result = await rig.call([GUANGZHOU[1]], time_limit=30)
        assert result.failed == 0, result.errors_text()
        assert [o["site"] for o in rig.published("call_overflowed")] == ["gd-busy", "gd-ok"]
        assert rig.published("partner_rejected")[0]["dialstatus"] == "BUSY"
        assert len(rig.partners["gd-ok"].result().by_event("answered")) == 1
        assert rig.engine is not None
        assert rig.engine.core.partners.stats["gd-busy"].rejected == 1


async def test_after_hours_the_24x7_partner_takes_the_call(
        chroot: Path, artifacts: Path) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    queues = [{"id": "consult", "skills": {"consult": 1}, "holidays": [today]}]
    sites = [SitePlan("night", ["CN-GD", "CN-ZJ"])]  # no hours: 24×7
    async with Rig(artifacts, [AgentPlan("1005")], sites=sites,
                   extra_config={"queues": queues}) as rig:
        result = await rig.call([GUANGZHOU[2]], time_limit=30)
        assert result.failed == 0, result.errors_text()
        assert rig.published("call_closed") == []
        assert [o["site"] for o in rig.published("call_overflowed")] == ["night"]


async def test_withheld_number_gets_the_default_region(chroot: Path, artifacts: Path) -> None:
    async with Rig(artifacts, [AgentPlan("1006")], sites=[SitePlan("gd", ["CN-GD"])]) as rig:
        results = await asyncio.gather(rig.call(["anonymous"], name="withheld"),
                                       rig.call([GUANGZHOU[3]], name="gz"))
        for r in results:
            assert r.failed == 0, r.errors_text()
        got = {e["caller"]: e["region"] for e in rig.published("call_waiting")}
        assert got[GUANGZHOU[3]] == "CN-GD"
        assert got.get("anonymous", got.get("")) == "CN-UNKNOWN"


async def test_withheld_caller_keys_an_area_code_that_wins(
        chroot: Path, artifacts: Path) -> None:
    extra = {"regions": {"overflow_after": 0,
                         "ask_area_code": {"prompt": "vm-enter-num-to-call", "timeout": 4}}}
    async with Rig(artifacts, [AgentPlan("1007", status="logged_out")],
                   sites=[SitePlan("gd", ["CN-GD"])], extra_config=extra) as rig:
        keyed = dtmf_caller_scenario("020#", artifacts, delay_ms=800)  # Guangzhou
        result = await rig.call(["anonymous"], scenario=keyed, time_limit=40)
        assert result.failed == 0, result.errors_text()
        waiting = rig.published("call_waiting")
        assert [w["region"] for w in waiting] == ["CN-GD"]
        assert [o["site"] for o in rig.published("call_overflowed")] == ["gd"]


async def test_partner_call_put_through_before_a_restart_still_holds_capacity(
        chroot: Path, artifacts: Path) -> None:
    """SIGKILL the engine while a caller talks to a capacity-1 partner: the restarted
    engine finds the trunk channel in Asterisk (AMI resync), counts it against the
    capacity, and sends the next Guangdong caller only when that call hangs up."""
    sites = [SitePlan("gd", ["CN-GD"], capacity=1, talk_ms=(8000, 8000))]
    extra = {"regions": regions(30, **{"CN-GD": {"mode": "primary"}})}
    async with Rig(artifacts, [AgentPlan("1009", status="logged_out")], sites=sites,
                   engine="process", agi_retries=40, agi_retry_pause=1,
                   extra_config=extra) as rig:
        log = artifacts / "engine.log"
        await wait_for_log(log, "engine active")
        first = asyncio.create_task(rig.call([GUANGZHOU[0]], name="first", time_limit=60))
        await wait_for_log(log, "call_overflowed", within=20)
        await asyncio.sleep(1.0)  # the partner answered and talks (8 s)
        await rig.kill_engine_process()
        await rig.start_engine_process()
        await wait_for_log(log, "1 partner channel(s) put through before", within=20)
        second = asyncio.create_task(rig.call([GUANGZHOU[1]], name="second", time_limit=60))
        for result in await asyncio.gather(first, second):
            assert result.failed == 0, result.errors_text()
            assert result.successful == 1
        answered = [e.caller for e in rig.partners["gd"].result().by_event("answered")]
        assert answered == GUANGZHOU[:2]
        assert concurrency(rig, "gd") == 1  # never two at once, across the restart
        text = log.read_text(errors="replace")
        assert "site_recovered" in text
