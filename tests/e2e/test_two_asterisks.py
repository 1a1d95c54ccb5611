"""One engine, two Asterisk servers (two sandbox instances on their own ports): each
server's callers reach that server's agents, never an agent the caller's Asterisk cannot
dial."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

from acd.config import Config
from acd.config import asterisk as asterisk_config
from acd.domain import AgentStatus, Fact
from app.node import Node
from harness.ports import SandboxPorts
from harness.sandbox import AsteriskInstance
from harness.sipp import SippProcess, run_uac, start_uas

pytestmark = pytest.mark.e2e

DID = "4008001234"


async def test_two_asterisk_servers_feed_one_engine(chroot: Path, artifacts: Path) -> None:
    ports = {"bj": SandboxPorts.free(), "gz": SandboxPorts.free()}
    while ports["gz"].sip == ports["bj"].sip:
        ports["gz"] = SandboxPorts.free()
    agi_port = ports["bj"].agi  # both dialplans reach the one engine here
    phones: dict[str, SippProcess] = {}
    instances: dict[str, AsteriskInstance] = {}
    node: Node | None = None
    events: list[Fact] = []
    try:
        for srv, agent in (("bj", "agenta1"), ("gz", "agentb1")):
            phones[srv] = await start_uas("agent_answer", ports[srv], artifacts, agent,
                                          {"talk_min": 400, "talk_max": 800},
                                          trace_messages=False)
        raw: dict[str, Any] = {
            "asterisk": {"servers": [
                {"name": srv, "ami": {"port": ports[srv].ami, "ping_interval": 5,
                                      "secret_env": f"ACD_TEST_SECRET_{srv.upper()}"}}
                for srv in ("bj", "gz")]},
            "fastagi": {"port": agi_port},
            "engine": {"ring_timeout": 4},
            "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0.3}],
            "dids": {DID: "consult"},
            "agents": [
                {"id": "a1", "endpoint": "agenta1", "server": "bj", "skills": {"consult": 1},
                 "contact": f"sip:agenta1@127.0.0.1:{phones['bj'].port}"},
                {"id": "b1", "endpoint": "agentb1", "server": "gz", "skills": {"consult": 1},
                 "contact": f"sip:agentb1@127.0.0.1:{phones['gz'].port}"},
            ],
        }
        config = Config.model_validate(raw)
        for srv in ("bj", "gz"):
            inst = AsteriskInstance(
                f"two-{srv}-{os.getpid()}", ports[srv],
                {"SERVER_NAME": srv, "ACD_AGI_URLS": f"agi://127.0.0.1:{agi_port}",
                 "ACD_RETRIES": "3", "ACD_RETRY_PAUSE": "1"},
                extra_files=asterisk_config.render(config, {}, srv))
            instances[srv] = inst
            await asyncio.to_thread(inst.start)
        node = Node(config, ami_secrets={s: i.ami_secret for s, i in instances.items()})
        engine = node.engine
        async with engine.subscribe() as queue:
            collector = asyncio.create_task(_collect(queue, events))
            await node.__aenter__()
            for client in engine.amis.values():
                await client.wait_connected(10)

            results = await asyncio.gather(
                run_uac("caller", "127.0.0.1", ports["bj"].sip, DID, ["13800000001"],
                        artifacts, ports["bj"], name="bj-callers", trace_messages=False),
                run_uac("caller", "127.0.0.1", ports["gz"].sip, DID, ["13900000002"],
                        artifacts, ports["gz"], name="gz-callers", trace_messages=False))
            for r in results:
                assert r.failed == 0, r.errors_text()
            assert [e.caller for e in phones["bj"].result().by_event("answered")] == [
                "13800000001"]
            assert [e.caller for e in phones["gz"].result().by_event("answered")] == [
                "13900000002"]
            servers = {e.data["caller"]: e.data["server"] for e in events
                       if e.name == "call_waiting"}
            assert servers == {"13800000001": "bj", "13900000002": "gz"}

            # bj's only agent logs out: a bj caller waits, although gz's agent is free
            await engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
            task = asyncio.create_task(run_uac(
                "caller", "127.0.0.1", ports["bj"].sip, DID, ["13800000003"], artifacts,
                ports["bj"], name="bj-late", trace_messages=False))
            await _until(lambda: any(e.name == "call_waiting"
                                     and e.data["caller"] == "13800000003" for e in events))
            await asyncio.sleep(1.5)
            assert not [e for e in events if e.name == "call_offered"
                        and e.data["agent"] == "b1" and e.data["call_id"] != ""
                        and _caller(events, e.data["call_id"]) == "13800000003"]
            await engine.set_agent_status("a1", AgentStatus.AVAILABLE)
            late = await task
            assert late.failed == 0, late.errors_text()
            assert "13800000003" in [e.caller for e in
                                     phones["bj"].result().by_event("answered")]
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    finally:
        if node is not None:
            await node.__aexit__(None, None, None)
        for phone in phones.values():
            await phone.stop()
        for inst in instances.values():
            await asyncio.to_thread(inst.stop)
            with contextlib.suppress(Exception):
                inst.save_logs(artifacts)
            with contextlib.suppress(Exception):
                inst.remove()


async def _collect(queue: asyncio.Queue[Fact], into: list[Fact]) -> None:
    while True:
        into.append(await queue.get())


def _caller(events: list[Fact], call_id: str) -> str | None:
    for e in events:
        if e.name == "call_waiting" and e.data["call_id"] == call_id:
            return str(e.data["caller"])
    return None


async def _until(predicate: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)
