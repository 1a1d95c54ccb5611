"""Lease tokens and timing (issue 10.7, 10.8), against a real Redis.

* A fencing token never repeats, even when Redis loses its data: the stale holder's
  write is refused after a FLUSHALL and a new holder (it used to get token 1 again, and
  the stale write went through).
* The lease's age counts from the acquire's *send* time; the lease is renewed while
  ``activate()`` runs (it may take longer than the ttl: the store load alone may take
  3 × ``store.timeout``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from acd.runtime.ha import VALID_FRACTION, HotStandby, Lease
from acd.runtime.store import AgentRecord, RedisStore, StoreFenced
from harness.redis import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(server.url)
    try:
        yield c
    finally:
        await c.aclose()


async def test_tokens_do_not_repeat_when_redis_loses_its_data(
        client: aioredis.Redis) -> None:
    a = Lease(client, "a", 30)
    assert await a.acquire()
    stale = RedisStore(client, fence=lambda: a.token)
    await stale.write({("agent", "a1"): AgentRecord("available")})
    await client.flushall()  # Redis restarted empty, or failed over to a stale replica
    b = Lease(client, "b", 30)
    assert await b.acquire()
    assert a.token is not None and b.token is not None
    assert b.token.split(":")[0] == a.token.split(":")[0] == "1"  # the counter restarted
    assert b.token != a.token  # ... the token did not
    current = RedisStore(client, fence=lambda: b.token)
    await current.write({("agent", "a1"): AgentRecord("paused", "lunch")})
    with pytest.raises(StoreFenced):
        await stale.write({("agent", "a1"): AgentRecord("logged_out")})
    with pytest.raises(StoreFenced):
        await stale.replace(await current.load())
    assert (await current.load()).agents == {"a1": AgentRecord("paused", "lunch")}
    assert not await a.renew()  # and a's renew fails: it steps down
    tokens = set()
    for _ in range(20):
        await b.release()
        assert await b.acquire()
        tokens.add(b.token)
    assert len(tokens) == 20


class SlowActivation:
    """An Activatable whose activation takes ``seconds`` (a store load that retries)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[str] = []

    async def activate(self) -> None:
        self.calls.append("activate")
        await asyncio.sleep(self.seconds)
        self.calls.append("active")

    async def deactivate(self, *, hand_over: bool = False) -> None:
        self.calls.append("deactivate")


async def until(predicate: object, within: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_the_lease_is_renewed_while_activate_runs(client: aioredis.Redis) -> None:
    ttl = 0.6
    target = SlowActivation(3 * ttl)
    standby = HotStandby(target, Lease(client, "one", ttl), ttl)
    rival = Lease(client, "two", ttl)
    standby.start()
    try:
        await until(lambda: target.calls == ["activate"])
        started = time.monotonic()
        while "active" not in target.calls:
            assert not await rival.acquire(), \
                f"lease lost {time.monotonic() - started:.2f}s into a slow activation"
            assert standby.lease_valid()
            await asyncio.sleep(0.05)
        assert time.monotonic() - started > 2 * ttl
        assert standby.active and target.calls == ["activate", "active"]
    finally:
        await standby.stop()


async def test_stepping_down_during_activation_cancels_it(client: aioredis.Redis) -> None:
    ttl = 0.6
    target = SlowActivation(30)
    standby = HotStandby(target, Lease(client, "one", ttl), ttl)
    standby.start()
    try:
        await until(lambda: target.calls == ["activate"])
        assert standby.activating
        await client.set("acd:fence", "9:usurper")  # the next renew finds it lost
        await until(lambda: "deactivate" in target.calls, within=2)
        assert not standby.activating and not standby.active
        assert "active" not in target.calls
    finally:
        await standby.stop()


class SlowLease:
    """A lease whose acquire is answered ``delay`` seconds after it was sent, and whose
    renews never come back (Redis stalls)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.node_id = "slow"
        self.token: str | None = None
        self.answered = 0.0

    async def acquire(self) -> bool:
        await asyncio.sleep(self.delay)
        self.token = "1:slow"
        self.answered = time.monotonic()
        return True

    async def renew(self) -> bool:
        await asyncio.sleep(3600)
        return True

    async def release(self) -> None:
        self.token = None


async def test_the_lease_age_counts_from_the_acquire_s_send_time() -> None:
    ttl, delay = 1.0, 0.4
    lease = SlowLease(delay)
    target = SlowActivation(0)
    standby = HotStandby(target, lease, ttl)  # type: ignore[arg-type]
    standby.start()
    try:
        await until(lambda: standby.active, within=3)
        # Valid for VALID_FRACTION × ttl from the *send*: 0.8 - 0.4 = 0.4 s after the
        # answer, not 0.8 s.
        await asyncio.sleep(ttl * VALID_FRACTION - delay + 0.15)
        assert not standby.lease_valid()
        assert time.monotonic() - lease.answered < ttl * VALID_FRACTION
    finally:
        await standby.stop()
