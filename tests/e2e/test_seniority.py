"""Seniority survives an engine that dies (issue 11.6), through the real Asterisk and
SIPp: 2 agents busy, 15 callers waiting, SIGKILL.

(a) No restart: every caller falls back to app_queue, which serves them in the order
    they first called (``QUEUE_PRIO`` from ``ACD_ENTRY``), whatever the order in which
    their retries reached it.
(b) Restart after 3 s (memory store: no list of who waited): the callers' retries reach
    the new engine in any order; it holds the re-entries for ``restore_grace`` and
    serves them by ``ACD_ENTRY``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.rig import AgentPlan, Rig
from tests.e2e.test_calls import numbers

pytestmark = pytest.mark.e2e

#: Long enough that the 15 waiting callers are back in line (fallback or new engine)
#: before an agent is free again.
TALK_MS = (4500, 5000)


#: Two agents freed together take two callers together: their answers may come in
#: either order within this many seconds.
TOGETHER = 0.5


def answered_at(rig: Rig) -> dict[str, float]:
    """Caller number → when an agent's phone answered it."""
    return {ev.caller: ev.time for agent in rig.phones
            for ev in rig.phone_events(agent, "answered")}


def out_of_turn(callers: list[str], at: dict[str, float]) -> list[tuple[str, str]]:
    """(earlier caller, later caller) pairs where the later one was served first (beyond
    a pair served together)."""
    return [(a, b) for i, a in enumerate(callers) for b in callers[i + 1:]
            if at[b] < at[a] - TOGETHER]


async def test_without_the_engine_app_queue_serves_callers_in_entry_order(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("7101", talk_ms=TALK_MS), AgentPlan("7102", talk_ms=TALK_MS)]
    async with Rig(artifacts, plans, engine="process", agi_retries=2,
                   agi_retry_pause=1) as rig:
        callers = numbers(17, "0571")  # in the order they call: 10 a second
        calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=150))
        await asyncio.sleep(2.4)  # 2 talking, 15 waiting in the engine
        await rig.kill_engine_process()
        result = await calls
        assert result.failed == 0, result.errors_text()
        assert result.successful == 17
        at = answered_at(rig)
        assert sorted(at) == sorted(callers)
        assert out_of_turn(callers[2:], at) == []  # the 15 waiting: oldest first
        assert rig.asterisk is not None
        log = rig.asterisk.log_path.read_text(errors="replace")
        assert log.count("Executing [s@hotline-fallback:1]") == 15  # each waiting caller


async def test_a_restarted_engine_without_a_store_serves_reentries_in_entry_order(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("7201", talk_ms=TALK_MS), AgentPlan("7202", talk_ms=TALK_MS)]
    async with Rig(artifacts, plans, engine="process", agi_retries=12,
                   agi_retry_pause=1) as rig:
        callers = numbers(17, "0572")
        calls = asyncio.create_task(rig.call(callers, rate=10, time_limit=150))
        await asyncio.sleep(2.4)
        await rig.kill_engine_process()
        await asyncio.sleep(3.0)  # the callers retry the dead engine meanwhile
        await rig.start_engine_process()
        result = await calls
        assert result.failed == 0, result.errors_text()
        assert result.successful == 17
        at = answered_at(rig)
        assert sorted(at) == sorted(callers)
        assert out_of_turn(callers[2:], at) == []
        assert rig.asterisk is not None
        log = rig.asterisk.log_path.read_text(errors="replace")
        assert "app_queue fallback" not in log  # the new engine took them all
