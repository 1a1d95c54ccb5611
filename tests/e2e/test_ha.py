"""No caller lost: engine crash with a hot standby, engine restart, Redis restart.

Real components only: the sandbox Asterisk runs the shipped dialplan, the engines run
as ``acd serve`` processes (SIGKILLed here), Redis is a real ``redis-server`` started by
the test, SIPp plays callers and agents. With one agent answering one call at a time,
the order in which its phone answered is the order callers were served.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from acd.runtime.store import redis_client
from harness.redis import RedisServer
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e


def numbers(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def find_line(path: Path, text: str) -> str | None:
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            if text in line:
                return line
    return None


def count_lines(path: Path, text: str) -> int:
    return sum(text in line for line in path.read_text(errors="replace").splitlines())


async def wait_log(path: Path, text: str, within: float = 15.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        line = find_line(path, text)
        if line is not None:
            return line
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{text!r} not in {path}")


async def stored_agents(url: str) -> dict[str, dict[str, str]]:
    client: aioredis.Redis = redis_client(url)
    try:
        raw = await client.hgetall("acd:agents")
        return {k.decode(): json.loads(v) for k, v in raw.items()}
    finally:
        await client.aclose()


async def stored_calls(url: str) -> int:
    client: aioredis.Redis = redis_client(url)
    try:
        return int(await client.hlen("acd:calls"))
    finally:
        await client.aclose()


def assert_nobody_lost(rig: Rig, callers: list[str], agent: str | None = None) -> None:
    seen: dict[str, str] = {}
    for agent_id, phone in rig.phones.items():
        for ev in phone.result().by_event("answered"):
            assert ev.caller not in seen, f"{ev.caller} answered twice"
            seen[ev.caller] = agent_id
    assert sorted(seen) == sorted(callers)  # every caller reached an agent
    assert rig.asterisk is not None
    log = rig.asterisk.log_path.read_text(errors="replace")
    assert "app_queue fallback" not in log  # served by the engines, not the fallback
    if agent is not None:  # one agent: its phone answered callers in entry order
        assert [e.caller for e in rig.phone_events(agent, "answered")] == callers


async def test_standby_takes_over_when_the_active_engine_is_killed(
        chroot: Path, artifacts: Path) -> None:
    with RedisServer(artifacts / "redis") as redis:
        store = {"backend": "redis", "url": redis.url, "restore_grace": 4}
        rig = Rig(artifacts, [AgentPlan("7001", talk_ms=(200, 300))], engine="none",
                  wrap_up=0, agi_retries=40, agi_retry_pause=1,
                  extra_config={"store": store, "ha": {"node_id": "one", "lease_ttl": 2}})
        standby_port = rig.use_standby_port()
        async with rig:
            await rig.start_active_standby(standby_port)
            callers = numbers(20, "0571")
            calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=80))
            await asyncio.sleep(3.5)  # all 20 in: 1-2 served, the rest waiting
            assert await stored_calls(redis.url) >= 10
            killed = time.time()
            await rig.kill_engine_process()
            line = await wait_log(artifacts / "standby.log", "lease acquired", within=10)
            match = re.search(r" at (\d+\.\d+)", line)
            assert match is not None
            takeover = float(match.group(1)) - killed
            result = await calls
            assert result.failed == 0, result.errors_text()
            assert result.successful == 20
            assert_nobody_lost(rig, callers, agent="7001")
            (artifacts / "failover.json").write_text(json.dumps(
                {"takeover_s": round(takeover, 3), "callers": 20, "lost": 0}))
            print(f"takeover {takeover:.3f} s after SIGKILL, 20 callers, 0 lost")
            assert takeover <= 3.0, takeover


async def test_engine_restart_keeps_order_and_paused_agent(
        chroot: Path, artifacts: Path) -> None:
    with RedisServer(artifacts / "redis") as redis:
        store = {"backend": "redis", "url": redis.url, "restore_grace": 4}
        plans = [AgentPlan("7101", talk_ms=(200, 300)),
                 AgentPlan("7102", "agent_noanswer", status="logged_out")]
        async with Rig(artifacts, plans, engine="process", wrap_up=0, ring_timeout=2,
                       agi_retries=40, agi_retry_pause=1,
                       extra_config={"store": store}) as rig:
            # As if an engine that ran before had paused 7102 (ring-no-answer): the
            # config says "available", the store says paused; the store wins.
            await wait_log(artifacts / "engine.log", "engine active")
            for _ in range(100):  # the engine's first full write (resync)
                if len(await stored_agents(redis.url)) == 2:
                    break
                await asyncio.sleep(0.05)
            client: aioredis.Redis = redis_client(redis.url)
            try:
                await client.hset("acd:agents", "7102",
                                  json.dumps({"status": "paused", "reason": "no-answer"}))
            finally:
                await client.aclose()
            await rig.kill_engine_process()
            await rig.start_engine_process()
            await wait_log(artifacts / "engine.log", "engine active: 2 agent statuses")
            callers = numbers(10, "0755")
            calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=60))
            await asyncio.sleep(2.5)
            assert await stored_calls(redis.url) >= 5
            await rig.kill_engine_process()
            await asyncio.sleep(0.5)
            await rig.start_engine_process()
            result = await calls
            assert result.failed == 0, result.errors_text()
            assert_nobody_lost(rig, callers, agent="7101")
            agents = await stored_agents(redis.url)
            assert agents["7102"] == {"status": "paused", "reason": "no-answer"}
            assert agents["7101"]["status"] == "available"
            assert rig.phone_events("7102", "offered") == []  # paused throughout
            assert await stored_calls(redis.url) == 0


async def test_redis_restart_under_load_loses_nobody_and_resyncs(
        chroot: Path, artifacts: Path) -> None:
    with RedisServer(artifacts / "redis") as redis:
        store = {"backend": "redis", "url": redis.url, "timeout": 0.3}
        plans = [AgentPlan("7201", talk_ms=(300, 600)), AgentPlan("7202", talk_ms=(300, 600))]
        async with Rig(artifacts, plans, engine="process", wrap_up=0,
                       extra_config={"store": store}) as rig:
            await wait_log(artifacts / "engine.log", "engine active")
            callers = numbers(12, "0288")
            calls = asyncio.create_task(rig.call(callers, rate=4, time_limit=60))
            await asyncio.sleep(1.0)
            redis.stop()
            await asyncio.sleep(2.0)  # routing goes on without Redis
            redis.start()  # back, empty (no persistence)
            result = await calls
            assert result.failed == 0, result.errors_text()
            assert_nobody_lost(rig, callers)
            await wait_log(artifacts / "engine.log", "store is back")
            assert count_lines(artifacts / "engine.log", "store unavailable") == 1  # once
            await asyncio.sleep(0.5)
            agents = await stored_agents(redis.url)  # written after Redis came back
            assert set(agents) == {"7201", "7202"}
            assert all(a["status"] == "available" for a in agents.values())
            assert await stored_calls(redis.url) == 0
