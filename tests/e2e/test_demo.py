"""``scripts/demo`` explains itself (issue 15.8) and stays up for a newcomer (issue 13.7),
against the real Asterisk and SIPp: with ``--once`` the impatient callers, the VIP, the
IVR choice and the partner overflow are marked, the agent that never answers is
explained, the engine's log is in the run's own folder, and it exits; by default it
prints its URLs with the demo sign-ins, keeps a trickle of callers coming, and Ctrl-C
ends it — callers, phones, Asterisk and the engine — with no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness import demo
from harness.sandbox import REPO_ROOT, list_instances

pytestmark = pytest.mark.e2e


async def test_once_the_demo_tells_each_story_keeps_its_logs_and_exits(
        chroot: Path, artifacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run(10, 4.0, stay=False, base=artifacts) == 0  # scripts/demo --once
    out = capsys.readouterr().out
    for text in ("↳ impatient (hangs up after 1.5 s)", "↳ VIP (+10 priority)",
                 "served ahead of", "↳ IVR: dialled 4008005678, pressed 2 → repair",
                 "sent to partner site gd-partner after", "↳ Guangdong: the partner covers",
                 "agent 1004: paused (no-answer)", "why: its softphone is set to ring",
                 "It stays paused", "Next: `scripts/demo` (without --once) keeps"):
        assert text in out, text
    assert "Ctrl-C ends it" not in out and "The trickle" not in out  # --once: no staying up
    runs = _runs(artifacts)
    assert len(runs) == 1 and f"Everything from this run: {runs[0]}" in out
    log = (runs[0] / "engine.log").read_text()
    assert re.search(r"INFO acd\.events: call_waiting \{", log)
    assert re.search(r"INFO acd\.decision: call \S+ queue consult stage 0", log)
    assert list(runs[0].glob("demo-*/log/messages.log"))


def _runs(artifacts: Path) -> list[Path]:
    return [p for p in artifacts.iterdir() if p.is_dir()]


async def test_the_demo_stays_up_with_a_trickle_until_ctrl_c(
        chroot: Path, artifacts: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness.demo", "--calls", "4", "--artifacts", str(artifacts),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    seen: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            seen.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read())
    try:
        deadline = time.monotonic() + 60
        while "  a call      scripts/sandbox call" not in "".join(seen):
            assert proc.returncode is None and time.monotonic() < deadline, "".join(seen)
            await asyncio.sleep(0.1)
        out = "".join(seen)
        wall = re.search(r"wallboard\s+(http://127\.0\.0\.1:(\d+))/#token=(\S+)", out)
        desk = re.search(r"agent desk\s+(\S+/desk)\s+\(agent (\d+), PIN (\d+)", out)
        console = re.search(r"console\s+(\S+/console)\s+\(supervisor (\w+), password "
                            r"(\S+)\)", out)
        assert wall and desk and console, out
        base, token = wall.group(1), wall.group(3)
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=5) as client:

            async def answered() -> int:
                queues = await client.get(base + "/api/v1/queues", headers=auth)
                assert queues.status_code == 200
                return sum(q["today"]["answered"] for q in queues.json())

            page = await client.get(base + "/")
            assert page.status_code == 200 and 'lang="zh-CN"' in page.text
            for url in (desk.group(1), console.group(1)):
                assert (await client.get(url)).status_code == 200, url
            # the printed demo sign-ins open the agent desktop and the console
            signed = await client.post(base + "/api/v1/session", json={
                "kind": "agent", "id": desk.group(2), "secret": desk.group(3)})
            assert signed.status_code == 200 and signed.json()["agent"] == desk.group(2)
            sup = await client.post(base + "/api/v1/session", json={
                "kind": "supervisor", "id": console.group(2), "secret": console.group(3)})
            assert sup.status_code == 200 and sup.json()["role"] == "admin"
            # the trickle: new calls answered while nobody scripts them, each call's
            # story printed when it ended
            before = await answered()
            end = time.monotonic() + 15
            story = re.compile(r"^\d\d:\d\d:\d\d 1\d{10} +\w+ +answered by .*, talked", re.M)
            while await answered() < before + 2 or not story.search("".join(seen)):
                assert time.monotonic() < end, "".join(seen[-20:])
                await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(seen)
        await reader
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    out = "".join(seen)
    assert "Traceback" not in out and "stopped." in out, out
    name = f"demo-{proc.pid}"
    assert name not in list_instances(chroot)
    assert not _processes_with(str(artifacts), f"/{name}/"), out


def _processes_with(*needles: str) -> list[str]:
    """Command lines of live processes that mention any needle (SIPp names its files in
    the run's folder; Asterisk's config path names its instance)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            if any(n in cmd for n in needles):
                found.append(f"{entry.name}: {cmd}")
    return found
