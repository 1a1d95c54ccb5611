"""The sandbox as an operator uses it (issue 15.9): ``scripts/sandbox start``, ``load
CONFIG`` (render the Asterisk side of an ACD config + reload), ``call --from … --to …
--digits …`` (a SIPp caller), and one line — not a traceback — for a port in use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from acd.config import load_config
from acd.domain import Fact
from app.node import Node
from harness.ports import SandboxPorts
from harness.sandbox import REPO_ROOT, AsteriskInstance
from harness.sandbox import main as sandbox
from harness.sipp import start_uas

pytestmark = pytest.mark.e2e


def test_a_port_in_use_is_one_line(chroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ports = SandboxPorts.default()
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        with contextlib.suppress(OSError):  # already taken by someone else: as good
            holder.bind(("127.0.0.1", ports.ami))
            holder.listen()
        name = f"busy-{os.getpid()}"
        try:
            assert sandbox(["start", "--name", name]) == 1
        finally:
            with contextlib.suppress(Exception):
                AsteriskInstance.attach(name).stop()
            sandbox(["clean"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("sandbox: error: port ") and "already in use" in err
    assert "--free-ports" in err


async def test_load_a_config_and_place_a_call(
        chroot: Path, artifacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"operator-{os.getpid()}"
    started = await asyncio.to_thread(
        subprocess.run, [str(REPO_ROOT / "scripts" / "sandbox"), "start", "--name", name,
                         "--free-ports"], capture_output=True, text=True, check=False)
    assert started.returncode == 0, started.stderr
    assert "scripts/sandbox load CONFIG" in started.stdout  # the next step
    inst = AsteriskInstance.attach(name)
    phone = None
    node: Node | None = None
    try:
        phone = await start_uas("agent_answer", SandboxPorts.free(), artifacts, "agent1001",
                                {"talk_min": 500, "talk_max": 800}, trace_messages=False)
        raw: dict[str, Any] = {
            "asterisk": {"ami": {"port": inst.ports.ami}, "agi_retries": 4},
            "fastagi": {"port": inst.ports.agi},
            "queues": [{"id": "consult", "skills": {"consult": 1}},
                       {"id": "repair", "skills": {"repair": 1}}],
            "default_queue": "consult",
            "ivr": {"timeout": 4, "options": {"1": "consult", "2": "repair"}},
            "agents": [{"id": "1001", "endpoint": "agent1001",
                        "skills": {"consult": 1, "repair": 1},
                        "contact": f"sip:agent1001@127.0.0.1:{phone.port}"}],
        }
        config_path = artifacts / "acd.yaml"
        config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        capsys.readouterr()
        assert await asyncio.to_thread(sandbox, ["load", str(config_path), "--name", name]) == 0
        out = capsys.readouterr().out
        assert f"loaded {config_path} into sandbox instance {name!r}" in out
        assert f"agi://127.0.0.1:{inst.ports.agi}" in out
        assert "ACD_RETRIES=4" in await inst.acli("dialplan show globals")
        assert "agent1001" in await inst.acli("pjsip show endpoints")

        events: list[Fact] = []
        loaded = load_config(config_path)
        node = Node(loaded, ami_secrets={s.name: inst.ami_secret
                                         for s in loaded.asterisk.server_list})
        engine = node.engine
        async with engine.subscribe() as queue:
            async def collect() -> None:
                while True:
                    events.append(await queue.get())

            collector = asyncio.create_task(collect())
            await node.__aenter__()
            assert engine.ami is not None
            await engine.ami.wait_connected(10)
            code = await asyncio.to_thread(
                sandbox, ["call", "--from", "13926012345", "--digits", "2", "--name", name,
                          "--time-limit", "40"])
            out = capsys.readouterr().out
            assert code == 0, out
            assert "answered after" in out and "the far end hung up" in out
            waiting = [e.data for e in events if e.name == "call_waiting"]
            assert [(w["caller"], w["queue"]) for w in waiting] == [("13926012345", "repair")]
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    finally:
        if node is not None:
            await node.__aexit__(None, None, None)
        if phone is not None:
            await phone.stop()
        await asyncio.to_thread(inst.stop)
        with contextlib.suppress(Exception):
            inst.save_logs(artifacts)
        with contextlib.suppress(Exception):
            inst.remove()
