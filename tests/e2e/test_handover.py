"""Graceful hand-over and restarts with agents in a conversation (real components).

* SIGTERM to the active engine of a hot-standby pair: its waiting callers go back to
  the dialplan at once (no ``ACD_RESULT``), re-enter the standby with their
  ``ACD_ENTRY`` and are served in entry order — well within the drain timeout, which
  only the call in a conversation may use.
* SIGKILL while an agent talks: the restarted engine sees the agent's phone in use
  (AMI resync) and routes the next call to the free agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from harness.redis import RedisServer
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO acd\.events: (\w+) (\{.*\})$")


def count_text(path: Path, text: str) -> int:
    return path.read_text(errors="replace").count(text) if path.exists() else 0


def events(path: Path, name: str) -> list[tuple[float, dict[str, object]]]:
    """``acd.events`` lines of an ``acd serve`` log: (wall-clock time, data)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m and m.group(3) == name:
            stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            out.append((stamp + int(m.group(2)) / 1000, json.loads(m.group(4))))
    return out


async def wait_log(path: Path, text: str, within: float = 15.0, count: int = 1) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if count_text(path, text) >= count:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{text!r} x{count} not in {path}")


def ha_pair(artifacts: Path, redis: RedisServer, agent: str) -> tuple[Rig, int]:
    """A rig for an active/standby pair (engine "one" active first, lease ttl 2 s) with
    one slow agent (2.5 s calls), so callers queue behind it; and the standby's port."""
    # restore_grace 6 s: the callers handed back re-enter the standby well within it (one
    # retry pause, 1 s, after the hand-back), so they are released to it in entry order;
    # the hold ends as soon as every stored caller is back, so it costs nothing here.
    store = {"backend": "redis", "url": redis.url, "restore_grace": 6}
    rig = Rig(artifacts, [AgentPlan(agent, talk_ms=(2500, 2600))], engine="none",
              wrap_up=0, agi_retries=40, agi_retry_pause=1,
              extra_config={"store": store,
                            "engine": {"ring_timeout": 4, "drain_timeout": 15},
                            "ha": {"node_id": "one", "lease_ttl": 2}})
    return rig, rig.use_standby_port()


async def test_sigterm_hands_waiting_callers_to_the_standby_at_once(
        chroot: Path, artifacts: Path) -> None:
    with RedisServer(artifacts / "redis") as redis:
        rig, standby_port = ha_pair(artifacts, redis, "7301")
        async with rig:
            await rig.start_active_standby(standby_port)
            callers = [f"0573{i:04d}" for i in range(9)]
            calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=80))
            # The first caller talks to the (slow) agent, the 8 others wait.
            await wait_log(artifacts / "engine.log", "call_waiting", count=9)
            await wait_log(artifacts / "engine.log", "call_connected")
            await asyncio.sleep(0.3)
            assert rig.process is not None
            terminated = time.time()
            os.kill(rig.process.pid, signal.SIGTERM)
            await wait_log(artifacts / "standby.log", "call_waiting", count=8, within=15)
            arrived = events(artifacts / "standby.log", "call_waiting")
            handover = max(t for t, _ in arrived) - terminated
            await asyncio.wait_for(rig.process.wait(), 20)
            stopped = time.time() - terminated
            result = await calls
            assert result.failed == 0, result.errors_text()
            assert result.successful == 9
            # One agent answering one call at a time: answered in entry order.
            assert [e.caller for e in rig.phone_events("7301", "answered")] == callers
            old = (artifacts / "engine.log").read_text(errors="replace")
            assert "8 waiting call(s) handed back to the dialplan" in old
            assert "after drain timeout" not in old  # only the talking call was drained
            assert not events(artifacts / "engine.log", "call_abandoned")
            assert not events(artifacts / "standby.log", "call_abandoned")
            assert sorted(d["caller"] for _, d in arrived) == sorted(callers[1:])
            assert rig.asterisk is not None
            assert "app_queue fallback" not in rig.asterisk.log_path.read_text(
                errors="replace")
            (artifacts / "handover.json").write_text(json.dumps(
                {"handover_s": round(handover, 3), "old_engine_exit_s": round(stopped, 3),
                 "waiting": 8, "drain_timeout": 15}))
            print(f"8 waiting callers on the standby {handover:.3f} s after SIGTERM; "
                  f"old engine exited after {stopped:.3f} s")
            assert handover < 5.0, handover
            assert stopped < 10.0, stopped  # the talking call, not the drain timeout


async def test_agent_talking_across_an_engine_restart_is_not_offered(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("7401", talk_ms=(15000, 15000)),
             AgentPlan("7402", talk_ms=(15000, 15000))]
    async with Rig(artifacts, plans, engine="process", wrap_up=0,
                   agi_retries=40, agi_retry_pause=1) as rig:
        log = artifacts / "engine.log"
        await wait_log(log, "engine active")
        first = asyncio.create_task(rig.call(["05740001"], name="first", time_limit=60))
        await wait_log(log, "call_connected", within=20)
        talking = str(events(log, "call_connected")[0][1]["agent"])
        free = "7402" if talking == "7401" else "7401"
        await rig.kill_engine_process()
        await rig.start_engine_process()
        await wait_log(log, "resynced:", count=2)
        await wait_log(log, "1 agent phones in a conversation")
        second = asyncio.create_task(rig.call(["05740002"], name="second", time_limit=60))
        for result in await asyncio.gather(first, second):
            assert result.failed == 0, result.errors_text()
            assert result.successful == 1
        # The talking agent's phone was offered the first call only.
        assert [e.caller for e in rig.phone_events(talking, "offered")] == ["05740001"]
        assert [e.caller for e in rig.phone_events(talking, "answered")] == ["05740001"]
        assert [e.caller for e in rig.phone_events(free, "answered")] == ["05740002"]


async def test_an_active_engine_paused_past_its_lease_steps_down_and_hands_over(
        chroot: Path, artifacts: Path) -> None:
    """SIGSTOP the active engine longer than its lease: the standby takes the lease.
    On SIGCONT the old node must neither ring the agent it frees nor write the store over
    the new active's state: it steps down and hands its waiting callers back, and they
    are served by the new active, in entry order, none lost or counted abandoned."""
    with RedisServer(artifacts / "redis") as redis:
        rig, standby_port = ha_pair(artifacts, redis, "7501")
        async with rig:
            await rig.start_active_standby(standby_port)
            callers = [f"0574{i:04d}" for i in range(6)]
            calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=90))
            await wait_log(artifacts / "engine.log", "call_waiting", count=6)
            await wait_log(artifacts / "engine.log", "call_connected")
            assert rig.process is not None
            os.kill(rig.process.pid, signal.SIGSTOP)
            try:
                # The standby takes the lease within ttl + ttl/6; the talking call ends
                # (2.5 s) while the old node is frozen.
                await wait_log(artifacts / "standby.log", "lease acquired", within=6)
                await asyncio.sleep(1.5)
            finally:
                os.kill(rig.process.pid, signal.SIGCONT)
            await wait_log(artifacts / "engine.log", "steps down", within=5)
            result = await calls
            assert result.failed == 0, result.errors_text()
            assert result.successful == 6
            answered = [e.caller for e in rig.phone_events("7501", "answered")]
            assert answered == callers  # one agent: entry order kept across the takeover
            # The phone rang once per caller, in entry order: after SIGCONT the old node
            # rang nobody (whether the fenced write, the renew or the lease check came
            # first), so no ring was started and then cancelled.
            offered = [e.caller for e in rig.phone_events("7501", "offered")]
            assert offered == callers
            old = (artifacts / "engine.log").read_text(errors="replace")
            assert "handed back to the dialplan" in old
            for log_name in ("engine.log", "standby.log"):
                assert not events(artifacts / log_name, "call_abandoned")
            assert sorted(d["caller"] for _, d in
                          events(artifacts / "standby.log", "call_waiting")) == \
                sorted(callers[1:])
