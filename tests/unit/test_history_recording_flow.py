"""Recording starts from the caller's own session (no AMI privilege): the queue's
announcement, then MixMonitor (option b: only while bridged), then the dial — once per
call; an unrecorded queue dials at once."""

from __future__ import annotations

from pathlib import Path

from acd.config import parse_config
from tests.unit.test_call_flow import CONFIG, call, env, node


def recorded(tmp_path: Path) -> str:
    return CONFIG + f"""
history:
  url: sqlite:///{tmp_path}/h.db
  spool_dir: {tmp_path}/spool
  recording: {{consult: {{mode: all, announce: custom/recorded}}}}
"""


async def test_a_recorded_queue_announces_then_records_then_dials(tmp_path: Path) -> None:
    async with node(parse_config(recorded(tmp_path))) as n:
        caller = await call(n, env(did="4008001234"))
        seen = await caller.play()
        mix = next(i for i, c in enumerate(seen) if c.startswith("EXEC MixMonitor"))
        assert seen[mix - 1] == 'STREAM FILE "custom/recorded" ""'
        assert seen[mix] == 'EXEC MixMonitor "acd/1700000000.1-1.wav,b"'
        assert seen[mix + 1].startswith("EXEC Dial")
        assert sum(c.startswith("EXEC MixMonitor") for c in seen) == 1
        await caller.close()


async def test_an_unrecorded_queue_dials_at_once(tmp_path: Path) -> None:
    config = parse_config(recorded(tmp_path).replace("consult: {mode: all",
                                                     "repair: {mode: all"))
    async with node(config) as n:
        caller = await call(n, env(did="4008001234"))
        seen = await caller.play()
        assert not any(c.startswith(("EXEC MixMonitor", "STREAM FILE")) for c in seen)
        await caller.close()
