"""The restart store and the hot-standby lease, against a real redis-server (no mocks).

Each test starts its own ``redis-server`` (harness/redis.py) on a unix socket and stops
it at the end; a test that needs "Redis goes away" stops and starts it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from acd.config import parse_config
from acd.domain import AgentStatus, CallArrived, CallHungUp, Fact, SetAgentStatus
from acd.domain.figures import Window
from acd.runtime.ha import Lease
from acd.runtime.store import (
    AgentRecord,
    CallRecord,
    MemoryStore,
    RedisStore,
    Restorer,
    StoredState,
    StoreFenced,
    StoreWriter,
    redis_client,
    state_of,
)
from app.node import Node
from harness.redis import RedisServer
from tests.unit.conftest import core_of

CONFIG = """
fastagi: {{host: 127.0.0.1, port: 0}}
engine: {{drain_timeout: 0}}
queues:
  - {{id: consult, skills: {{consult: 1}}, wrap_up: 0}}
  - {{id: repair, skills: {{consult: 1}}, wrap_up: 0}}
agents:
  - {{id: a1, endpoint: agent1, skills: {{consult: 1}}, contact: "sip:agent1@127.0.0.1:6001"}}
  - {{id: a2, endpoint: agent2, skills: {{consult: 1}}, contact: "sip:agent2@127.0.0.1:6002"}}
store: {{backend: redis, url: "{url}", timeout: 0.5, restore_grace: 1.0}}
{extra}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = redis_client(server.url)
    try:
        yield c
    finally:
        await c.aclose()


def config(server: RedisServer, extra: str = "") -> str:
    return CONFIG.format(url=server.url, extra=extra)


async def wait_until(pred: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


# -- the store ------------------------------------------------------------------------


async def test_redis_store_round_trip(server: RedisServer) -> None:
    store = RedisStore.from_url(server.url, prefix="t")
    try:
        await store.replace(StoredState({"a1": AgentRecord("paused", "lunch")},
                                        {"c1": CallRecord(100.5, 1, "consult", 3, 1)}))
        await store.write({("agent", "a2"): AgentRecord("available"),
                           ("call", "c1"): None,
                           ("call", "c2"): CallRecord(101.0, 2, "repair")})
        state = await store.load()
        assert state.agents == {"a1": AgentRecord("paused", "lunch"),
                                "a2": AgentRecord("available")}
        assert state.calls == {"c2": CallRecord(101.0, 2, "repair")}
        await store.replace(StoredState())
        assert await store.load() == StoredState()
    finally:
        await store.close()


async def test_a_stale_fencing_token_cannot_write(client: aioredis.Redis) -> None:
    old, new = Lease(client, "old", 0.3), Lease(client, "new", 5)
    assert await old.acquire()
    stale = RedisStore(client, fence=lambda: old.token)
    await stale.write({("agent", "a1"): AgentRecord("available")})
    await asyncio.sleep(0.5)  # "old" was paused past its ttl: "new" holds the lease now
    assert await new.acquire()
    current = RedisStore(client, fence=lambda: new.token)
    await current.write({("agent", "a1"): AgentRecord("paused", "lunch")})
    for attempt in (stale.write({("agent", "a1"): AgentRecord("logged_out")}),
                    stale.replace(StoredState())):
        with pytest.raises(StoreFenced):
            await attempt
    assert (await current.load()).agents == {"a1": AgentRecord("paused", "lunch")}
    # A node holding no lease at all does not even try.
    with pytest.raises(StoreFenced, match="no lease"):
        await RedisStore(client, fence=lambda: None).write({("agent", "a1"): None})


async def test_an_engine_whose_write_is_fenced_steps_down_at_once(
        server: RedisServer, client: aioredis.Redis) -> None:
    # ttl 9 s: the next renew is 3 s away, so only the fenced write can explain a quick
    # step-down.
    one = Node(parse_config(config(server, "ha: {node_id: one, lease_ttl: 9}")), ami_secrets=None)
    await one.__aenter__()
    try:
        await wait_until(lambda: one.engine.accepting)
        assert await one.engine.store_writer.drained(5)
        # Another node was granted the lease while "one" was cut off (it does not know).
        await client.delete("acd:lease")
        usurper = Lease(client, "two", 9)
        assert await usurper.acquire()
        await client.hset("acd:agents", "a1", '{"status": "paused", "reason": "lunch"}')
        await one.engine.set_agent_status("a1", AgentStatus.AVAILABLE)
        started = time.monotonic()
        await wait_until(lambda: not one.engine.accepting, within=2)
        assert time.monotonic() - started < 1.0
        assert not one.standby.active
        stored = await RedisStore(client).load()
        assert stored.agents["a1"] == AgentRecord("paused", "lunch")  # not overwritten
    finally:
        await one.__aexit__(None, None, None)


async def test_an_engine_past_its_lease_rings_nobody_and_steps_down(
        server: RedisServer) -> None:
    from acd.runtime.session import RELEASE

    one = Node(parse_config(config(server, "ha: {node_id: one, lease_ttl: 9}")), ami_secrets=None)
    await one.__aenter__()
    try:
        await wait_until(lambda: one.engine.accepting)
        for agent in ("a1", "a2"):
            await one.engine.set_agent_status(agent, AgentStatus.LOGGED_OUT)
        waiting, ringing = one.engine.open_session("w"), one.engine.open_session("r")
        now = one.engine.clock()
        one.engine.post(CallArrived("w", "consult", "", now, now))
        one.engine.post(CallArrived("r", "consult", "", now + 1, now))
        # As if this process had been frozen for most of the ttl: no renew for 8 s.
        one.standby._last_renew -= 8.0
        assert not one.standby.lease_valid()
        await one.engine.set_agent_status("a1", AgentStatus.AVAILABLE)  # would be offered "w"
        offer = await asyncio.wait_for(waiting.get(), 2)
        assert offer is RELEASE  # not rung: handed back instead
        await wait_until(lambda: not one.engine.accepting, within=2)
        assert not one.standby.active
        assert (await asyncio.wait_for(ringing.get(), 2)) is RELEASE  # waiting: handed back
    finally:
        await one.__aexit__(None, None, None)


async def test_queue_figures_survive_an_engine_restart(server: RedisServer) -> None:
    cfg = parse_config(config(server))
    one = Node(cfg, ami_secrets=None)
    await one.__aenter__()
    for agent in ("a1", "a2"):  # nobody to answer: c2 stays waiting (no session here)
        await one.engine.set_agent_status(agent, AgentStatus.LOGGED_OUT)
    now = one.engine.clock()
    one.engine.post(CallArrived("c1", "consult", "", now - 40, now))
    one.engine.post(CallHungUp("c1", now + 0.1))
    one.engine.post(CallArrived("c2", "repair", "", now, now))
    figures = one.engine.core.figures
    await wait_until(lambda: figures.window("repair", Window.TODAY, now).counts.offered)
    assert await one.engine.store_writer.drained(5)
    before = {(q, w): figures.window(q, w, now).counts for q in ("consult", "repair")
              for w in Window}
    assert before[("consult", Window.TODAY)].abandoned == 1
    await one.__aexit__(None, None, None)
    two = Node(cfg, ami_secrets=None)
    await two.__aenter__()
    try:
        after = {(q, w): two.engine.core.figures.window(q, w, now).counts
                 for q in ("consult", "repair") for w in Window}
        assert after == before
    finally:
        await two.__aexit__(None, None, None)


async def test_memory_store_round_trip() -> None:
    store = MemoryStore()
    await store.write({("agent", "a1"): AgentRecord("paused", "lunch")})
    assert (await store.load()).agents == {"a1": AgentRecord("paused", "lunch")}


async def test_writer_coalesces_and_follows_the_core(server: RedisServer,
                                                     client: aioredis.Redis) -> None:
    cfg = parse_config(config(server))
    core = core_of(cfg)
    store = RedisStore.from_url(server.url)
    writer = StoreWriter(store, core)
    task = asyncio.create_task(writer.run())
    try:
        def apply(ev: object) -> None:
            for eff in core.apply(ev):  # type: ignore[arg-type]
                if isinstance(eff, Fact):
                    writer.observe(eff, 0.0)

        for _ in range(50):  # 100 changes of one agent between two writes: few writes
            apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 1.0))
            apply(SetAgentStatus("a1", AgentStatus.PAUSED, 1.0, "lunch"))
        apply(CallArrived("c1", "consult", "", 10.0, 11.0, priority_boost=7))
        apply(CallArrived("c2", "repair", "", 12.0, 12.0))
        assert await writer.drained(5)
        assert writer.writes + writer.resyncs < 10
        state = await store.load()
        assert state == state_of(core, core.figures)
        assert state.agents["a1"] == AgentRecord("paused", "lunch")
        assert state.calls["c1"] == CallRecord(10.0, 1, "consult", 7, 0)
        apply(CallHungUp("c1", 13.0))
        assert await writer.drained(5)
        assert set((await store.load()).calls) == {"c2"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def test_writer_keeps_going_without_redis_and_resyncs_when_it_is_back(
        server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse_config(config(server))
    core = core_of(cfg)
    store = RedisStore.from_url(server.url, timeout=0.3)
    writer = StoreWriter(store, core)
    task = asyncio.create_task(writer.run())
    try:
        assert await writer.drained(5)
        server.stop()
        for i in range(20):  # routing goes on: each observe returns at once
            started = time.perf_counter()
            for eff in core.apply(SetAgentStatus("a2", AgentStatus.PAUSED, 1.0 + i, "lunch")):
                if isinstance(eff, Fact):
                    writer.observe(eff, 0.0)
            assert time.perf_counter() - started < 0.05
        await wait_until(lambda: writer.failing)
        await asyncio.sleep(0.5)
        assert sum("store unavailable" in r.message for r in caplog.records) == 1
        server.start()  # back, and empty (no persistence)
        await wait_until(lambda: not writer.failing, within=10)
        assert await writer.drained(5)
        state = await store.load()
        assert state.agents["a2"] == AgentRecord("paused", "lunch")
        assert state == state_of(core, core.figures)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


def test_restorer_holds_arrivals_and_releases_them_oldest_first() -> None:
    r = Restorer()
    r.begin({"old": CallRecord(100.0, 1, "repair", 5, 0),
             "mid": CallRecord(101.0, 2, "consult", 0, 0),
             "gone": CallRecord(100.5, 3, "consult", 0, 0)})
    assert r.intercept(CallArrived("new", "consult", "", 200.0, 200.0)) is None
    assert r.intercept(CallArrived("mid", "consult", "", 101.0, 200.1)) is None
    assert r.intercept(CallArrived("gone", "consult", "", 100.5, 200.2)) is None
    assert r.intercept(CallHungUp("gone", 200.3)) is None  # hung up while held
    assert not r.complete
    assert r.intercept(CallArrived("old", "consult", "", 100.0, 200.4)) is None
    assert r.complete
    released = r.release()
    assert [e.call_id for e in released] == ["old", "mid", "new"]
    assert (released[0].queue_id, released[0].priority_boost) == ("repair", 5)
    assert not r.holding
    ev = CallArrived("x", "consult", "", 1.0, 2.0)
    assert r.intercept(ev) is ev


def test_blind_restorer_holds_from_the_first_reentry_and_orders_by_entry() -> None:
    """No list of who waited (memory store after a restart): callers stamped before the
    takeover are re-entries; the first one starts the hold, the grace period ends it."""
    r = Restorer()
    r.begin({}, blind_since=200.0)
    assert r.watching and not r.holding
    fresh = CallArrived("fresh", "consult", "", 200.2, 200.2)
    assert r.intercept(fresh) is fresh  # a new caller before any re-entry: routed at once
    assert r.intercept(CallArrived("c15", "consult", "", 115.0, 201.0)) is None  # held
    assert r.holding and not r.complete  # blind: only the grace period ends it
    assert r.intercept(CallArrived("new", "consult", "", 201.1, 201.1)) is None
    assert r.intercept(CallArrived("c02", "consult", "", 102.0, 201.2)) is None
    assert r.intercept(CallArrived("c09", "consult", "", 109.0, 201.3)) is None
    assert [e.call_id for e in r.release()] == ["c02", "c09", "c15", "new"]
    assert not r.watching
    late = CallArrived("late", "consult", "", 100.0, 230.0)
    assert r.intercept(late) is late  # after the grace: the router orders it by entry


def test_a_restorer_with_a_list_is_not_blind() -> None:
    r = Restorer()
    r.begin({"a": CallRecord(100.0, 1, "consult", 0, 0)}, blind_since=200.0)
    assert r.blind_since is None and r.holding


# -- the lease ------------------------------------------------------------------------


async def test_lease_is_exclusive_fenced_and_expires(client: aioredis.Redis) -> None:
    a, b = Lease(client, "a", 0.5), Lease(client, "b", 0.5)
    assert await a.acquire()
    assert not await b.acquire()
    first = a.token
    for _ in range(4):  # renewed past its ttl
        await asyncio.sleep(0.2)
        assert await a.renew()
    assert not await b.acquire()
    await asyncio.sleep(0.7)  # a stopped renewing: expired
    assert await b.acquire()
    assert first is not None and b.token is not None
    assert int(b.token.split(":")[0]) == int(first.split(":")[0]) + 1
    assert not await a.renew()  # a lost it and knows
    assert a.token is None
    await b.release()
    assert await a.acquire()
    assert a.token is not None and int(a.token.split(":")[0]) == int(first.split(":")[0]) + 2
    assert a.token != first  # a new epoch each time


async def test_renew_fails_when_the_fence_moved(client: aioredis.Redis) -> None:
    a = Lease(client, "a", 5)
    assert await a.acquire()
    await client.set("acd:fence", "2:another")  # another holder was granted a token
    assert not await a.renew()


async def test_hot_standby_takes_over_within_the_lease_time(server: RedisServer) -> None:
    ha = "ha: {{node_id: {node}, lease_ttl: 1.0}}"
    one = Node(parse_config(config(server, ha.format(node="one"))), ami_secrets=None)
    two = Node(parse_config(config(server, ha.format(node="two"))), ami_secrets=None)
    await one.__aenter__()
    await wait_until(lambda: one.engine.accepting)
    await one.engine.set_agent_status("a1", AgentStatus.PAUSED, "lunch")
    await two.__aenter__()
    stopped = False
    try:
        await asyncio.sleep(1.5)
        assert one.engine.accepting and not two.engine.accepting
        assert await one.engine.store_writer.drained(5)
        # "one" dies without releasing: its lease task stops, the lease runs out
        await one.standby.abandon()
        killed = time.monotonic()
        await wait_until(lambda: two.engine.accepting, within=5)
        took = time.monotonic() - killed
        assert took <= 1.0 + 1.0 / 6 + 0.5, took
        assert two.engine.core.agents["a1"].status is AgentStatus.PAUSED  # from the store
        assert two.engine.core.agents["a1"].reason == "lunch"
        # graceful hand-back: two stops and releases, one (still up) takes over at once
        assert not one.engine.accepting
        one.standby.start()
        await asyncio.sleep(0.3)
        assert not one.engine.accepting
        await two.__aexit__(None, None, None)
        stopped = True
        started = time.monotonic()
        await wait_until(lambda: one.engine.accepting, within=3)
        assert time.monotonic() - started < 0.6
    finally:
        await one.__aexit__(None, None, None)
        if not stopped:
            await two.__aexit__(None, None, None)
