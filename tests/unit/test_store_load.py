"""A failed store read never wipes the saved state (issue 10.4), against a real Redis.

* A stale pooled connection (Redis restarted under the engine's client) fails the first
  load; the load is retried and the saved statuses come back. (It used to count as an
  empty store and the engine then rewrote Redis: "lunch" came back "available".)
* Redis down when the engine becomes active: it takes calls from the config and writes
  nothing; when Redis answers again the store is loaded late and what the engine has not
  changed since comes back, then the merged state is written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acd.config import parse_config
from acd.domain import AgentStatus
from acd.runtime.store import AgentRecord, RedisStore, redis_client
from app.node import Node
from harness.redis import RedisServer
from tests.unit.test_store import config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        yield srv
    finally:
        srv.stop()


async def until(predicate: object, within: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def stored(server: RedisServer) -> dict[str, AgentRecord]:
    store = RedisStore(redis_client(server.url))
    try:
        return (await store.load()).agents
    finally:
        await store.close()


async def save_lunch(server: RedisServer) -> None:
    """A first engine leaves a1 paused for lunch in the store, then stops."""
    first = Node(parse_config(config(server)), ami_secrets=None)
    async with first:
        await first.engine.set_agent_status("a1", AgentStatus.PAUSED, "lunch")
        assert await first.engine.store_writer.drained(5)
    assert (await stored(server))["a1"] == AgentRecord("paused", "lunch")


def metric(node: Node, name: str) -> float:
    from acd.runtime.metrics import EngineCollector

    for fam in EngineCollector(node.engine).collect():
        for sample in fam.samples:
            if sample.name == name:
                return float(sample.value)
    raise KeyError(name)


class Proxy:
    """TCP in front of the Redis socket. ``cut()`` leaves the connections open but
    carries nothing any more (a half-open connection: the peer is gone without a FIN,
    e.g. Redis restarted on another host after a failover); new connections work."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.dead: set[asyncio.StreamWriter] = set()
        self.live: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for client, up in self.live:
            client.close()
            up.close()
        for task in self.tasks:
            task.cancel()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    def cut(self) -> None:
        for client, up in self.live:
            self.dead.update((client, up))

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        self.live.append((writer, up_writer))
        for src, dst, key in ((reader, up_writer, writer), (up_reader, writer, up_writer)):
            task = asyncio.create_task(self._pump(src, dst, key))
            self.tasks.add(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    key: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if key in self.dead or dst in self.dead:
                continue  # swallowed: nobody answers, nobody closes
            dst.write(data)
            await dst.drain()


async def test_a_stale_pooled_connection_is_retried_not_taken_for_an_empty_store(
        server: RedisServer) -> None:
    await save_lunch(server)
    async with Proxy(str(server.socket_path)) as proxy:
        node = Node(parse_config(config(server).replace(server.url, proxy.url)),
                    ami_secrets=None)
        store = node.engine.store
        assert isinstance(store, RedisStore)
        await store.client.ping()  # the pool now holds a connection ...
        proxy.cut()  # ... whose peer went away without a word
        async with node:
            assert node.engine.store_loaded
            agent = node.engine.core.agents["a1"]
            assert (agent.status, agent.reason) == (AgentStatus.PAUSED, "lunch")
            assert await node.engine.store_writer.drained(5)
    assert (await stored(server))["a1"] == AgentRecord("paused", "lunch")


async def test_a_takeover_while_redis_restarts_waits_for_it(server: RedisServer) -> None:
    """The first load finds no Redis (restarting); one a moment later finds it."""
    await save_lunch(server)
    server.stop()
    node = Node(parse_config(config(server)), ami_secrets=None)  # store.timeout 0.5

    async def restart() -> None:
        await asyncio.sleep(0.4)
        await asyncio.to_thread(server.start)

    back = asyncio.create_task(restart())
    async with node:
        await back
        assert node.engine.store_loaded
        agent = node.engine.core.agents["a1"]
        assert (agent.status, agent.reason) == (AgentStatus.PAUSED, "lunch")
        assert await node.engine.store_writer.drained(5)
    assert (await stored(server))["a1"] == AgentRecord("paused", "lunch")


async def test_redis_down_at_start_nothing_is_written_and_a_late_load_merges(
        server: RedisServer) -> None:
    await save_lunch(server)
    redis_store = RedisStore(redis_client(server.url))
    await redis_store.write({("agent", "a2"): AgentRecord("paused", "break")})
    await redis_store.close()
    server.stop()
    node = Node(parse_config(config(server)), ami_secrets=None)
    node.engine.store_retry_backoff.compute = lambda failures: 0.1  # type: ignore[method-assign]
    async with node:
        engine = node.engine
        # Taking calls from the config; the store is not loaded and not written.
        assert engine.accepting and not engine.store_loaded
        assert engine.core.agents["a1"].status is AgentStatus.AVAILABLE
        assert metric(node, "acd_store_loaded") == 0.0
        # A supervisor changes a2 while the store is unreadable: that change is newer.
        await engine.set_agent_status("a2", AgentStatus.PAUSED, "training")
        server.start()  # Redis is back, with what it held
        await until(lambda: engine.store_loaded, within=5)
        await engine.flushed()
        a1, a2 = engine.core.agents["a1"], engine.core.agents["a2"]
        assert (a1.status, a1.reason) == (AgentStatus.PAUSED, "lunch")  # from the store
        assert (a2.status, a2.reason) == (AgentStatus.PAUSED, "training")  # kept
        assert metric(node, "acd_store_loaded") == 1.0
        assert await engine.store_writer.drained(5)
        assert await stored(server) == {"a1": AgentRecord("paused", "lunch"),
                                        "a2": AgentRecord("paused", "training")}
