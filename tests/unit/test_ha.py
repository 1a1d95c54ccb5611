"""The hot-standby loop (acd.runtime.ha) drives whatever is Activatable: here a recorder
(no engine), against a real Redis — the lease is Redis's, the protocol is ours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from acd.runtime.ha import HotStandby, Lease
from harness.redis import RedisServer


class Recorder:
    """An Activatable that remembers what the lease told it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def activate(self) -> None:
        self.calls.append("activate")

    async def deactivate(self, *, hand_over: bool = False) -> None:
        self.calls.append("deactivate(hand_over)" if hand_over else "deactivate")


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


async def until(predicate: object, within: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_the_holder_is_activated_and_a_lost_lease_hands_over(
        client: aioredis.Redis) -> None:
    target = Recorder()
    standby = HotStandby(target, Lease(client, "one", 0.6), 0.6)
    standby.start()
    try:
        await until(lambda: target.calls == ["activate"])
        assert standby.active and standby.lease_valid()
        # another node is granted the lease (ours was taken away): the next renew sees it
        await client.set("acd:lease", "someone-else")
        await client.set("acd:fence", "2:someone-else")
        await until(lambda: "deactivate(hand_over)" in target.calls, within=2)
        assert not standby.active and not standby.lease_valid()
    finally:
        await standby.stop()


async def test_a_graceful_stop_releases_the_lease_for_the_standby(
        client: aioredis.Redis) -> None:
    one, two = Recorder(), Recorder()
    first = HotStandby(one, Lease(client, "one", 5), 5)
    second = HotStandby(two, Lease(client, "two", 5), 5)
    first.start()
    await until(lambda: one.calls == ["activate"])
    second.start()
    try:
        await asyncio.sleep(0.2)
        assert two.calls == []  # waits for the lease
        started = time.monotonic()
        await first.stop()  # releases: no need to wait for the 5 s ttl
        await until(lambda: two.calls == ["activate"], within=3)
        assert time.monotonic() - started < 1.5
    finally:
        await second.stop()
