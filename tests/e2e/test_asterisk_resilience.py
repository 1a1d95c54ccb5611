"""The engine against a real Asterisk 22 that drops AMI or restarts under it.

(a) Asterisk kicks the engine's AMI session (``manager kick session``): the engine
    reconnects, resyncs, and a device state it had wrong is right again within 2 s.
(b) Asterisk stops and starts again on the same ports while an agent is talking: the
    engine sees the restart (CoreStatus start time), resyncs within 2 s of Asterisk being
    up, the agent is not stuck, and a new call is routed normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from acd.domain import AgentState, DeviceStateChanged
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e


def _engine_sessions(output: str, user: str) -> list[str]:
    """File descriptors of ``user``'s AMI sessions in ``manager show connected``."""
    lines = [ln.split() for ln in output.splitlines() if ln.strip()]
    header = next(ln for ln in lines if "FileDes" in ln)
    col = header.index("FileDes")
    # "IP Address" is two words in the header, one in the rows
    col -= 1 if "Address" in header[:col] else 0
    return [ln[col] for ln in lines if ln[0] == user and len(ln) > col]


async def test_ami_kicked_engine_reconnects_and_resyncs_within_2s(
        chroot: Path, artifacts: Path) -> None:
    async with Rig(artifacts, [AgentPlan("5001")]) as rig:
        assert rig.engine is not None and rig.asterisk is not None
        engine, ast = rig.engine, rig.asterisk
        assert rig.node is not None
        link = rig.node.links["main"]
        agent = engine.core.agents["5001"]
        await rig.wait_for(lambda: agent.device_state == "NOT_INUSE", 5)
        resyncs = link.resyncs
        # The engine's view goes wrong (as if a DeviceStateChange was lost)...
        engine.post(DeviceStateChanged(agent.device, "UNAVAILABLE", engine.clock()))
        await rig.wait_for(lambda: agent.device_state == "UNAVAILABLE", 2)
        # ...and Asterisk drops the engine's AMI connection.
        fds = _engine_sessions(await ast.acli("manager show connected"), ast.ami_user)
        assert fds, "the engine's AMI session is not listed"
        began = time.monotonic()
        for fd in fds:
            await ast.acli(f"manager kick session {fd}")
        await rig.wait_for(lambda: link.resyncs > resyncs
                           and agent.device_state == "NOT_INUSE", 2)
        took = time.monotonic() - began
        (artifacts / "timing.txt").write_text(f"ami kick -> resynced: {took:.3f}s\n")
        assert link.restarts == 0  # a dropped connection is not a restart
        result = await rig.call(["13800135001"], rate=1, time_limit=40)
        assert result.successful == 1, result.errors_text()
        assert [e["agent"] for e in rig.published("call_offered")] == ["5001"]


async def test_asterisk_restart_detected_resynced_and_next_call_routed(
        chroot: Path, artifacts: Path) -> None:
    async with Rig(artifacts, [AgentPlan("5101", talk_ms=(30_000, 30_000))]) as rig:
        assert rig.engine is not None and rig.asterisk is not None
        engine, ast = rig.engine, rig.asterisk
        assert rig.node is not None
        link = rig.node.links["main"]
        agent = engine.core.agents["5101"]
        # A call in conversation when Asterisk goes away.
        first = asyncio.create_task(rig.call(["13800135101"], rate=1, time_limit=45,
                                             name="before-restart"))
        await rig.wait_for(lambda: agent.state is AgentState.ON_CALL, 20)
        resyncs = link.resyncs
        await asyncio.to_thread(ast.stop)
        # Its FastAGI session died: the engine releases the agent, nothing stays stuck.
        await rig.wait_for(lambda: not engine.core.calls, 5)
        await asyncio.to_thread(ast.start)  # same name, same ports, same AMI secret
        began = time.monotonic()
        await rig.wait_for(lambda: link.restarts == 1
                           and link.resyncs > resyncs and engine.ami is not None
                           and engine.ami.connected, 2)
        took = time.monotonic() - began
        await rig.wait_for(lambda: agent.routable, 5)  # wrap-up over, phone free
        (artifacts / "timing.txt").write_text(
            f"asterisk booted -> restart detected and resynced: {took:.3f}s\n")
        # A new call afterwards is routed to the agent as usual.
        result = await rig.call(["13800135102"], rate=1, time_limit=60, name="after")
        assert result.successful == 1, result.errors_text()
        offered = [e["agent"] for e in rig.published("call_offered")]
        assert offered == ["5101", "5101"]
        await rig.wait_for(lambda: not engine.core.calls, 10)
        first.cancel()  # its caller was cut off by the restart: its outcome is moot
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await first
