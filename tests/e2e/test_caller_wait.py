"""The caller's wait (issue 11), end to end through the real Asterisk and SIPp: what a
waiting caller hears (Asterisk's own log of what it played), the key that takes it out
of the line into a voicemail (the message file in Asterisk's spool), and ``max_wait``
sending a caller to another queue with its place."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from acd.domain import AgentStatus
from harness.rig import AgentPlan, Rig
from tests.e2e.test_calls import answered_by

pytestmark = pytest.mark.e2e


def queue(qid: str, skill: str, **more: Any) -> dict[str, Any]:
    return {"id": qid, "skills": {skill: 1}, "wrap_up": 0, "sl_target": 20, **more}


def played(rig: Rig, sound: str) -> list[str]:
    """Asterisk's verbose log lines of the channels that were played ``sound``."""
    assert rig.asterisk is not None
    log = rig.asterisk.log_path.read_text(errors="replace")
    return [ln for ln in log.splitlines() if f"Playing '{sound}." in ln]


def stamp(line: str) -> float:
    """Seconds of the day of an Asterisk log line ``[YYYY-MM-DD HH:MM:SS.mmm] …``."""
    clock = line[12:24]
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def log_lines(rig: Rig, needle: str) -> list[str]:
    assert rig.asterisk is not None
    log = rig.asterisk.log_path.read_text(errors="replace")
    return [ln for ln in log.splitlines() if needle in ln]


async def test_a_waiting_caller_hears_its_place_and_expected_wait(
        chroot: Path, artifacts: Path) -> None:
    queues = [queue("consult", "consult", expected_handle_time=60,
                    announce={"first_after": 1, "every": 30})]
    plans = [AgentPlan("8101", talk_ms=(9000, 9000))]
    async with Rig(artifacts, plans, extra_config={"queues": queues}) as rig:
        callers = ["13800138101", "13800138102"]
        calls = asyncio.create_task(rig.call(callers, rate=5, time_limit=60))
        # the first caller talks to 8101 for 9 s; the second waits and is told
        await rig.wait_for(lambda: bool(played(rig, "queue-holdtime")), 15)
        result = await calls
        assert result.failed == 0 and result.successful == 2, result.errors_text()
        assert answered_by(rig) == {callers[0]: "8101", callers[1]: "8101"}
        first_in_line = played(rig, "queue-youarenext")
        hold = played(rig, "queue-holdtime")
        assert len(first_in_line) == 1 and len(hold) == 1  # the waiting caller, once
        assert "carrier-sandbox-00000001" in hold[0]  # the second caller's channel
        assert stamp(first_in_line[0]) < stamp(hold[0])  # place first, then the wait
        # the prompts never hold the caller back from a freed agent: the agent is free
        # when the first call ends, and the second caller's Dial follows at once, cutting
        # whatever prompt was playing (AMI PlayDTMF '#', the prompts' escape digit)
        first_done = log_lines(rig, "carrier-sandbox-00000000>AGI Script")
        dials = log_lines(rig, "Executing Application: (Dial)")
        assert len(first_done) == 1 and len(dials) == 2
        assert 0 <= stamp(dials[1]) - stamp(first_done[0]) < 0.5
        prompts = [ln for ln in log_lines(rig, "carrier-sandbox-00000001> Playing")]
        assert all(stamp(p) <= stamp(dials[1]) for p in prompts)


async def test_the_exit_key_while_waiting_leaves_a_voicemail(
        chroot: Path, artifacts: Path) -> None:
    queues = [queue("consult", "consult", exits={
        "key": "1",
        "key_action": {"to": "voicemail", "mailbox": "100@hotline", "sound": "vm-leavemsg"}})]
    plans = [AgentPlan("8201", status="logged_out")]  # nobody answers: the caller waits
    async with Rig(artifacts, plans, extra_config={"queues": queues}) as rig:
        assert rig.engine is not None and rig.asterisk is not None
        result = await rig.call(["13800138201"], scenario="caller_message", time_limit=60)
        assert result.failed == 0, result.errors_text()
        await rig.wait_for(lambda: bool(rig.published("call_exited")), 5)
        exited = rig.published("call_exited")[0]
        assert (exited["reason"], exited["action"]) == ("caller_key", "voicemail")
        figures = rig.engine.core.figures.total("consult")
        assert (figures.exits, figures.abandoned) == (1, 0)
        spool = rig.asterisk.root / "spool" / "voicemail" / "hotline" / "100" / "INBOX"
        await rig.wait_for(lambda: any(spool.glob("msg0000.*")), 5)
        info = (spool / "msg0000.txt").read_text()
        assert "13800138201" in info  # the caller's number on the message
        duration = int(re.search(r"^duration=(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
        assert 5 <= duration <= 14  # from the tone to the hang-up: the 8 s message in it


async def test_max_wait_sends_a_caller_to_another_queue_keeping_its_place(
        chroot: Path, artifacts: Path) -> None:
    queues = [queue("consult", "consult", exits={
                  "max_wait": 3, "action": {"to": "queue", "queue": "repair"}}),
              queue("repair", "repair")]
    plans = [AgentPlan("8301", skills={"consult": 1}, status="logged_out"),
             AgentPlan("8302", skills={"repair": 1}, status="logged_out",
                       talk_ms=(500, 800))]
    async with Rig(artifacts, plans, extra_config={
            "queues": queues, "dids": {"4008001234": "consult", "4008009999": "repair"}}) as rig:
        assert rig.engine is not None
        first = asyncio.create_task(rig.call(["13900000001"], name="consult", time_limit=60))
        await asyncio.sleep(1.0)  # a repair caller arrives after the consult caller …
        second = asyncio.create_task(rig.call(["13900000002"], name="repair",
                                              service="4008009999", time_limit=60))
        # … the consult caller reaches max_wait (3 s) and joins repair with its entry
        await rig.wait_for(lambda: bool(rig.published("call_exited")), 8)
        exited = rig.published("call_exited")[0]
        assert (exited["reason"], exited["action"], exited["target"]) == \
            ("max_wait", "queue", "repair")
        await rig.engine.set_agent_status("8302", AgentStatus.AVAILABLE)
        for task in (first, second):
            result = await task
            assert result.failed == 0 and result.successful == 1, result.errors_text()
        # it had waited longer: the repair agent took it first
        assert [e.caller for e in rig.phone_events("8302", "answered")] == [
            "13900000001", "13900000002"]
        totals = rig.engine.core.figures.total("consult")
        assert (totals.exits, totals.abandoned) == (1, 0)


async def test_the_queues_hold_music_plays_while_the_agent_rings_too(
        chroot: Path, artifacts: Path) -> None:
    """Issue 11.7: the queue's moh_class while waiting and while the phone rings (Dial's
    m(class)); the dialplan's CHANNEL(musicclass)=default does not win."""
    queues = [queue("consult", "consult", moh_class="calm")]
    plans = [AgentPlan("8501", talk_ms=(500, 800))]
    calm = "[calm]\nmode = files\ndirectory = moh\nsort = random\n"
    async with Rig(artifacts, plans, extra_config={"queues": queues},
                   asterisk_files={"musiconhold_local.conf": calm}) as rig:
        result = await rig.call(["13800138501"], time_limit=60)
        assert result.failed == 0 and result.successful == 1, result.errors_text()
        dial = log_lines(rig, "Executing Application: (Dial)")
        assert len(dial) == 1 and "m(calm)" in dial[0]
        music = log_lines(rig, "Started music on hold, class")
        assert music and all("class 'calm'" in ln for ln in music), music
        assert any(stamp(ln) >= stamp(dial[0]) for ln in music)  # while ringing


def next_boundary(now: float, at_least: float = 15.0) -> float:
    """The next whole UTC minute at least ``at_least`` seconds away (hours are minutes)."""
    boundary = (int(now) // 60 + 1) * 60.0
    return boundary if boundary - now >= at_least else boundary + 60.0


async def test_a_site_that_closes_while_callers_wait(
        chroot: Path, artifacts: Path) -> None:
    """Issue 11.5 through the real Asterisk: at closing time (a) the waiting caller of a
    queue with ``on_close: closed`` hears the closed message and its call ends, (b) the
    own site's agent finishing a call afterwards is offered nothing, (c) the waiting
    caller of a queue that stays is served by an agent of a site still open."""
    import time
    from datetime import UTC, datetime

    now = time.time()
    closing = next_boundary(now)
    until = datetime.fromtimestamp(closing, UTC).strftime("%H:%M")
    hours = {"daily": f"00:00-{until}"} if until != "00:00" else {}
    talk = int((closing - now + 4) * 1000)  # 8601's first call ends after closing
    queues = [queue("consult", "consult", hours=hours, on_close="closed",
                    closed={"action": "message", "sound": "vm-goodbye"}),
              queue("repair", "repair")]
    plans = [AgentPlan("8601", skills={"consult": 1, "repair": 1}, groups=["bj"],
                       talk_ms=(talk, talk)),
             AgentPlan("8602", skills={"repair": 1}, groups=["cd"], status="logged_out",
                       talk_ms=(500, 800))]
    sites = [{"id": "bj", "kind": "own", "hours": hours}, {"id": "cd", "kind": "own"}]
    async with Rig(artifacts, plans, extra_config={
            "timezone": "UTC", "queues": queues, "sites": sites,
            "dids": {"4008001234": "consult", "4008009999": "repair"}}) as rig:
        assert rig.engine is not None
        first = asyncio.create_task(rig.call(["13900000601"], name="first",
                                             service="4008009999", time_limit=150))
        await rig.wait_for(lambda: bool(rig.published("call_connected")), 10)
        consult = asyncio.create_task(rig.call(["13900000602"], name="consult",
                                               time_limit=150))
        repair = asyncio.create_task(rig.call(["13900000603"], name="repair",
                                              service="4008009999", time_limit=150))
        await rig.wait_for(lambda: len(rig.published("call_waiting")) == 3, 10)
        # closing time: the consult caller leaves with the closed message
        await rig.wait_for(lambda: bool(rig.published("call_exited")), closing - now + 10)
        exited = rig.published("call_exited")[0]
        assert (exited["reason"], exited["queue"]) == ("queue_closed", "consult")
        assert played(rig, "vm-goodbye")
        result = await consult
        assert result.failed == 0, result.errors_text()
        # 8601 hangs up after closing: its site is closed, the repair caller still waits
        assert (await first).failed == 0
        await asyncio.sleep(1.0)
        offered = [o["agent"] for o in rig.published("call_offered")]
        assert offered == ["8601"]  # the first call only
        agent = rig.engine.core.agents["8601"]
        assert not agent.site_open and agent.status.value == "available"
        # an agent of a site still open takes it
        await rig.engine.set_agent_status("8602", AgentStatus.AVAILABLE)
        result = await repair
        assert result.failed == 0 and result.successful == 1, result.errors_text()
        assert answered_by(rig) == {"13900000601": "8601", "13900000603": "8602"}
