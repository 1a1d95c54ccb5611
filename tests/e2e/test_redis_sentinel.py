"""Redis Sentinel (issue 10, "Also"): a real master, a real replica and a real
``redis-sentinel``; the master is killed, Sentinel promotes the replica, and the engine
(store and lease through ``store.sentinel``) follows: it is the active engine again and
writes to the new master, with what it had saved before the failover. (In tests/e2e: a
few seconds of real failover; no Asterisk.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from acd.config import parse_config
from acd.domain import AgentStatus
from acd.runtime.store import AgentRecord, RedisStore
from app.node import Node
from harness.ports import SandboxPorts
from harness.redis import RedisServer, SentinelServer

pytestmark = pytest.mark.e2e

MASTER = "acd"
CONFIG = """
fastagi: {{host: 127.0.0.1, port: 0}}
queues: [{{id: consult, skills: {{consult: 1}}}}]
agents:
  - {{id: a1, skills: {{consult: 1}}, contact: "sip:a1@127.0.0.1:6001"}}
  - {{id: a2, skills: {{consult: 1}}, contact: "sip:a2@127.0.0.1:6002"}}
store:
  backend: redis
  timeout: 0.5
  sentinel: {{master: {master}, sentinels: ["127.0.0.1:{sentinel}"]}}
ha: {{node_id: one, lease_ttl: 3}}
"""


class Cluster:
    def __init__(self, master: RedisServer, replica: RedisServer,
                 sentinel: SentinelServer) -> None:
        self.master, self.replica, self.sentinel = master, replica, sentinel


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    m_port, r_port, s_port = SandboxPorts.free().alloc(3)
    master = RedisServer(tmp_path / "master", port=m_port).start()
    replica = sentinel = None
    try:
        replica = RedisServer(tmp_path / "replica", port=r_port, replica_of=m_port).start()
        sentinel = SentinelServer(tmp_path / "sentinel", s_port, MASTER, m_port).start()
        yield Cluster(master, replica, sentinel)
    finally:
        for proc in (sentinel, replica, master):
            if proc is not None:
                proc.stop()


async def until(predicate: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        await asyncio.sleep(0.1)


async def test_the_engine_follows_a_sentinel_failover(cluster: Cluster) -> None:
    sentinel = aioredis.Redis(host="127.0.0.1", port=cluster.sentinel.port)
    master = aioredis.Redis(host="127.0.0.1", port=cluster.master.port)
    replica = aioredis.Redis(host="127.0.0.1", port=cluster.replica.port)

    async def replica_known() -> bool:
        replicas = await sentinel.execute_command("SENTINEL", "REPLICAS", MASTER)
        for r in replicas:
            fields = r if isinstance(r, dict) else dict(zip(r[::2], r[1::2], strict=True))
            port = fields.get(b"port", fields.get("port", 0))
            if int(port) == cluster.replica.port:
                return True
        return False

    async def master_port() -> int:
        reply = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                               MASTER)
        return int(reply[1])

    try:
        await until(replica_known, 15, "sentinel knows the replica")
        cfg = parse_config(CONFIG.format(master=MASTER, sentinel=cluster.sentinel.port))
        async with Node(cfg, ami_secrets=None) as node:
            engine = node.engine
            await until(lambda: engine.accepting, 10, "active")
            await engine.set_agent_status("a1", AgentStatus.PAUSED, "lunch")
            assert await engine.store_writer.drained(5)
            await until(lambda: replica.hget("acd:agents", "a1"), 5, "replicated")

            cluster.master.kill()  # the master's host dies
            deadline = time.monotonic() + 20
            while await master_port() != cluster.replica.port:
                assert time.monotonic() < deadline, "sentinel did not fail over"
                await asyncio.sleep(0.1)

            # The engine is (or becomes again) the active one, on the new master.
            await until(lambda: engine.accepting and node.standby is not None
                        and node.standby.active, 15, "active after the failover")
            await engine.set_agent_status("a2", AgentStatus.PAUSED, "break")
            await until(lambda: engine.store_writer.idle.is_set()
                        and not engine.store_writer.failing, 10, "store written")
            stored = await RedisStore(replica).load()
            assert stored.agents["a1"] == AgentRecord("paused", "lunch")
            assert stored.agents["a2"] == AgentRecord("paused", "break")
            assert (await replica.get("acd:lease")) is not None  # the lease lives there
    finally:
        for client in (sentinel, master, replica):
            await client.aclose()
