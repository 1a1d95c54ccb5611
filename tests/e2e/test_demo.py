"""``scripts/demo`` explains itself (issue 15.8), against the real Asterisk and SIPp:
the impatient callers, the VIP, the IVR choice and the partner overflow are marked, the
agent that never answers is explained, the engine's log is in the run's own folder, and
``--stay`` keeps the wallboard and API up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from harness import demo

pytestmark = pytest.mark.e2e


async def test_the_demo_tells_each_story_and_keeps_its_logs(
        chroot: Path, artifacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run(10, 4.0, stay=False, base=artifacts) == 0
    out = capsys.readouterr().out
    for text in ("↳ impatient (hangs up after 1.5 s)", "↳ VIP (+10 priority)",
                 "served ahead of", "↳ IVR: dialled 4008005678, pressed 2 → repair",
                 "sent to partner site gd-partner after", "↳ Guangdong: the partner covers",
                 "agent 1004: paused (no-answer)", "why: its softphone is set to ring",
                 "It stays paused", "Next: `scripts/demo --stay`"):
        assert text in out, text
    runs = _runs(artifacts)
    assert len(runs) == 1 and f"Everything from this run: {runs[0]}" in out
    log = (runs[0] / "engine.log").read_text()
    assert re.search(r"INFO acd\.events: call_waiting \{", log)
    assert re.search(r"INFO acd\.decision: call \S+ queue consult stage 0", log)
    assert list(runs[0].glob("demo-*/log/messages.log"))


def _runs(artifacts: Path) -> list[Path]:
    return [p for p in artifacts.iterdir() if p.is_dir()]


async def test_the_demo_stays_up_with_its_wallboard(
        chroot: Path, artifacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(demo.run(10, 4.0, stay=True, base=artifacts))
    seen = ""
    for _ in range(1200):
        await asyncio.sleep(0.1)
        seen += capsys.readouterr().out
        if "Ctrl-C ends it" in seen or task.done():
            break
    assert not task.done(), seen
    wall = re.search(r"wallboard\s+(http://127\.0\.0\.1:(\d+))/#token=(\S+)", seen)
    assert wall, seen
    base, token = wall.group(1), wall.group(3)
    async with httpx.AsyncClient() as client:
        page = await client.get(base + "/")
        assert page.status_code == 200 and 'lang="zh-CN"' in page.text
        queues = await client.get(base + "/api/v1/queues",
                                  headers={"Authorization": f"Bearer {token}"})
        assert queues.status_code == 200
        assert {q["id"] for q in queues.json()} == {"consult", "repair"}
        # the printed demo sign-ins open the agent desktop and the console
        desk = re.search(r"agent desk\s+(\S+)/desk\s+\(agent (\d+), PIN (\d+)\)", seen)
        console = re.search(r"console\s+\S+/console\s+\(supervisor (\w+), password (\S+)\)",
                            seen)
        assert desk and console, seen
        signed = await client.post(base + "/api/v1/session", json={
            "kind": "agent", "id": desk.group(2), "secret": desk.group(3)})
        assert signed.status_code == 200 and signed.json()["agent"] == desk.group(2)
        sup = await client.post(base + "/api/v1/session", json={
            "kind": "supervisor", "id": console.group(1), "secret": console.group(2)})
        assert sup.status_code == 200 and sup.json()["role"] == "admin"
    assert "scripts/sandbox call --name demo-" in seen
    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(task, 60) == 0
