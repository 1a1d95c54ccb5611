"""Callbacks that keep their place (issue 12.1), end to end through the real Asterisk and
SIPp: a waiting caller presses the callback key, confirms its number and hangs up; its
phone — a SIPp UAS behind the callbacks' trunk, on the caller's number — is called back
through AMI Originate (the agent rung first, through the originate-only context) and
connected to the agent, before a caller who came later. The customer's phone counts the
INVITEs: exactly one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from acd.domain import AgentStatus
from harness.redis import RedisServer
from harness.rig import AgentPlan, Rig, wait_for_log
from harness.sipp import (
    busy_first_scenario,
    keys_caller_scenario,
    slow_answer_scenario,
    start_uas,
)

pytestmark = pytest.mark.e2e


def callback_queue(**more: Any) -> dict[str, Any]:
    return {"id": "consult", "skills": {"consult": 1}, "wrap_up": 0, "sl_target": 20,
            "exits": {"key": "1", "key_action": {"to": "callback"},
                      "key_prompt": ["vm-press", "{key}", "vm-tocallback"]}, **more}


async def test_a_callback_keeps_the_callers_place_and_is_dialled_once(
        chroot: Path, artifacts: Path) -> None:
    rig = Rig(artifacts, [AgentPlan("8701", talk_ms=(7000, 7000))])
    customer = await start_uas("agent_answer", rig.ports, artifacts, "customer",
                               variables={"talk_min": 20000, "talk_max": 20000},
                               trace_messages=False)
    try:
        rig.extra_config = {
            "queues": [callback_queue()],
            "callbacks": {"trunk": {"contact": f"sip:127.0.0.1:{customer.port}"},
                          "attempts": 2, "retry_after": 2}}
        async with rig:
            assert rig.engine is not None
            first, second, later = "13800138701", "13800138702", "13800138703"
            a = asyncio.create_task(rig.call([first], name="first", time_limit=60))
            await rig.wait_for(lambda: bool(rig.published("call_connected")), 10)
            # the second caller waits, presses 1 (callback), then 1 (its number is right)
            keys = keys_caller_scenario([(1500, "1"), (3500, "1")], artifacts)
            b = asyncio.create_task(rig.call([second], name="second", scenario=keys,
                                             time_limit=60))
            await asyncio.sleep(2.5)
            c = asyncio.create_task(rig.call([later], name="later", time_limit=60))
            await rig.wait_for(lambda: bool(rig.published("callback_requested")), 20)
            requested = rig.published("callback_requested")[0]
            waiting = {w["caller"]: w for w in rig.published("call_waiting")}
            # its place: the caller's own entry time
            assert requested["number"] == second
            assert requested["entry_time"] == waiting[second]["entry_time"]
            assert waiting[second]["entry_time"] < waiting[later]["entry_time"]
            exited = rig.published("call_exited")[0]
            assert (exited["reason"], exited["action"]) == ("caller_key", "callback")
            result = await b
            assert result.failed == 0 and result.successful == 1, result.errors_text()
            for task in (a, c):
                result = await task
                assert result.failed == 0 and result.successful == 1, result.errors_text()
            await rig.wait_for(lambda: bool(rig.published("callback_finished")), 20)
            finished = rig.published("callback_finished")[0]
            assert (finished["outcome"], finished["attempts"], finished["agent"]) == \
                ("completed", 1, "8701")
            # served before the caller who came later, by the same agent
            assert [e.caller for e in rig.phone_events("8701", "answered")] == \
                [first, second, later]
            # the customer's phone: one INVITE, to the caller's number
            invites = customer.result().by_event("offered")
            assert [e.agent for e in invites] == [second]
            assert len(customer.result().by_event("answered")) == 1
            figures = rig.engine.core.figures.total("consult")
            assert figures.abandoned == 0
            assert rig.engine.core.callbacks.totals["completed"] == 1
            # the live figures (wallboard, API, reports' definition) count it too
            assert (figures.callbacks_requested, figures.callbacks_completed,
                    figures.callbacks_answered) == (1, 1, 1)
            assert figures.callback_delay == pytest.approx(finished["delay"], abs=1e-3)
            assert figures.callback_delay > 0
    finally:
        await customer.stop()


@pytest.mark.parametrize("kill_while", ["agent_rings", "customer_rings"])
async def test_a_callback_is_dialled_exactly_once_across_a_sigkill(
        chroot: Path, artifacts: Path, kill_while: str) -> None:
    """Issue 12.3: the engine is SIGKILLed with a callback's Originate out — while the
    agent's phone still rings (the dial is voided in AstDB by the next engine: the late
    answer is refused, the callback dialled again from its place) or while the customer's
    phone rings (the dial had started: not dialled again). Either way the customer's
    phone sees exactly one INVITE, and it is answered."""
    slow_agent = kill_while == "agent_rings"
    agent_scenario = slow_answer_scenario(4000, artifacts) if slow_agent else "agent_answer"
    customer_scenario = "agent_answer" if slow_agent else slow_answer_scenario(4000, artifacts)
    with RedisServer(artifacts / "redis") as redis:
        talk = 4000 if slow_agent else 9000  # the agent waits out the customer's ring
        rig = Rig(artifacts, [AgentPlan("8801", scenario=str(agent_scenario),
                                        variables={"talk_min": talk, "talk_max": talk})],
                  engine="process", ring_timeout=8, wrap_up=0, agi_retries=40,
                  agi_retry_pause=1)
        customer = await start_uas(customer_scenario, rig.ports, artifacts, "customer",
                                   variables={"talk_min": 3000, "talk_max": 3000},
                                   trace_messages=False)
        try:
            rig.extra_config = {
                "queues": [callback_queue()],
                "store": {"backend": "redis", "url": redis.url, "restore_grace": 1},
                "callbacks": {"trunk": {"contact": f"sip:127.0.0.1:{customer.port}"},
                              "attempts": 2, "retry_after": 2}}
            log = artifacts / "engine.log"
            async with rig:
                await wait_for_log(log, "engine active")
                first, second = "13800138801", "13800138802"
                a = asyncio.create_task(rig.call([first], name="first", time_limit=60))
                await asyncio.sleep(0.5)
                keys = keys_caller_scenario([(1500, "1"), (3500, "1")], artifacts)
                b = asyncio.create_task(rig.call([second], name="second", scenario=keys,
                                                 time_limit=60))
                await wait_for_log(log, "callback confirmed", within=20)
                trigger = "originate: callback" if slow_agent else "the customer is dialled"
                await wait_for_log(log, trigger, within=30)
                await rig.kill_engine_process()
                (artifacts / "engine-1.log").write_bytes(log.read_bytes())
                log.write_text("")
                await rig.start_engine_process()
                await wait_for_log(log, "engine active", within=15)
                verdict = ("1 of 1 stored back in line" if slow_agent
                           else "had started before this engine took over")
                await wait_for_log(log, verdict, within=10)
                await rig.wait_for(lambda: bool(customer.result().by_event("hungup")
                                                or customer.result().by_event("far_hungup")),
                                   30)
                for task in (a, b):
                    result = await task
                    assert result.failed == 0 and result.successful == 1, \
                        result.errors_text()
                await asyncio.sleep(1.0)
                invites = customer.result().by_event("offered")
                assert [e.agent for e in invites] == [second]  # exactly once
                assert len(customer.result().by_event("answered")) == 1
                if slow_agent:  # the voided dial was refused, the second one went out
                    await wait_for_log(log, "originate: callback", within=1)
                else:
                    assert "originate: callback" not in log.read_text()
        finally:
            await customer.stop()


async def test_a_busy_customer_is_called_again_after_the_spacing(
        chroot: Path, artifacts: Path) -> None:
    """The retry policy through the real dialplan: the customer's phone answers 486 to
    the first callback (DIALSTATUS BUSY from the agent channel's hangup handler), the
    callback waits ``retry_after`` and is dialled again, answered; two INVITEs, one
    answered, the outcome recorded with its two attempts."""
    rig = Rig(artifacts, [AgentPlan("8901", talk_ms=(3000, 3000), status="logged_out")])
    customer = await start_uas(busy_first_scenario(artifacts), rig.ports, artifacts,
                               "customer", variables={"talk_min": 20000, "talk_max": 20000,
                                                      "seen": 0},
                               trace_messages=False)
    try:
        rig.extra_config = {
            "queues": [callback_queue()],
            "callbacks": {"trunk": {"contact": f"sip:127.0.0.1:{customer.port}"},
                          "attempts": 3, "retry_after": 3}}
        async with rig:
            assert rig.engine is not None
            keys = keys_caller_scenario([(1500, "1"), (3500, "1")], artifacts)
            result = await rig.call(["13800138901"], scenario=keys, time_limit=60)
            assert result.failed == 0 and result.successful == 1, result.errors_text()
            assert rig.published("callback_requested")
            await rig.engine.set_agent_status("8901", AgentStatus.AVAILABLE)
            await rig.wait_for(lambda: bool(rig.published("callback_finished")), 30)
            attempt = rig.published("callback_attempt")[0]
            assert (attempt["attempt"], attempt["status"]) == (1, "BUSY")
            dialing = rig.published("callback_dialing")
            assert [d["attempt"] for d in dialing] == [1, 2]
            finished = rig.published("callback_finished")[0]
            assert (finished["outcome"], finished["attempts"]) == ("completed", 2)
            busy = customer.result().by_event("busy")
            answered = customer.result().by_event("answered")
            assert len(busy) == 1 and len(answered) == 1
            assert answered[0].time - busy[0].time >= 3.0  # the spacing
            assert len(customer.result().by_event("offered")) == 2
            # the agent was not paused for the customer's busy line
            assert rig.engine.core.agents["8901"].status is AgentStatus.AVAILABLE
    finally:
        await customer.stop()
