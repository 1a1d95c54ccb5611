"""Expected waits off the routing path (acd.runtime.estimates) and ``max_ewt``.

The replay runs in the background in steps; the inbox routes calls between two steps,
and whoever reads an estimate (announcements, API, metrics, ``max_ewt``) reads the latest
published replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from acd.config import Config
from acd.domain import (
    AgentStatus,
    CallAnswered,
    CallArrived,
    ExitCall,
    Fact,
    SetAgentStatus,
)
from acd.runtime.engine import Engine
from app.node import Node
from tests.unit.conftest import make_core

LINE = """
queues:
  - id: consult
    skills: {consult: 1}
    wrap_up: 0
    expected_handle_time: 100
    exits:
      max_ewt: 150
      action: {to: message}
agents:
  - {id: a1, skills: {consult: 1}, contact: "sip:a1@h"}
"""


def exits(effects: list[object]) -> list[ExitCall]:
    return [e for e in effects if isinstance(e, ExitCall)]


def test_max_ewt_sends_the_caller_whose_sure_wait_is_too_long_away_at_once() -> None:
    core = make_core(LINE)
    core.apply(CallArrived("t1", "consult", "1", 100.0, 100.0))
    core.apply(CallAnswered("t1", "a1", 100.0))
    # a1 talks (100 s expected): c1 waits ≈ 100 s, c2 ≈ 200 s > 150
    assert exits(core.apply(CallArrived("c1", "consult", "2", 100.0, 100.0))) == []
    assert exits(core.apply(CallArrived("c2", "consult", "3", 100.0, 100.0))) == [
        ExitCall("c2", "consult", "vm-goodbye", None)]
    assert core.figures.total("consult").exits == 1


def test_max_ewt_reads_the_background_replay_placing_the_caller_by_its_newcomer() -> None:
    core = make_core(LINE)
    core.estimates_in_background = True
    core.apply(CallArrived("t1", "consult", "1", 100.0, 100.0))
    core.apply(CallAnswered("t1", "a1", 100.0))
    # no replay published yet: nothing is sure, nobody is sent away
    assert exits(core.apply(CallArrived("c1", "consult", "2", 100.0, 100.0))) == []
    core.background_sweep = core.estimator.sweep(100.0)
    # c2 stands where the replay's newcomer stood (second): ≈ 200 s > 150
    assert exits(core.apply(CallArrived("c2", "consult", "3", 100.0, 100.0))) == [
        ExitCall("c2", "consult", "vm-goodbye", None)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_770_000_000.0

    def __call__(self) -> float:
        return self.now


def config(agents: int = 1) -> Config:
    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0,
                    "expected_handle_time": 60}],
        "agents": [{"id": f"{1001 + i}", "skills": {"consult": 1}} for i in range(agents)],
    })


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with Node(config(), ami_secrets=None, clock=Clock()) as node:
        yield node.engine


async def test_the_inbox_routes_calls_while_a_replay_runs(engine: Engine) -> None:
    clock = engine.clock
    assert isinstance(clock, Clock)
    for i in range(300):  # 1001 takes the first, 299 wait
        engine.open_session(f"c{i}")
        engine.post(CallArrived(f"c{i}", "consult", "1", clock.now, clock.now))
    await asyncio.wait_for(engine.flushed(), 5)
    engine.post(CallAnswered("c0", "1001", clock.now))
    await asyncio.wait_for(engine.flushed(), 5)
    engine.estimates.chunk = 64
    replay = asyncio.create_task(engine.estimates.replay())
    await asyncio.sleep(0)  # the replay's first step
    facts: list[Fact] = []
    engine.fact_hooks.append(lambda fact, now: facts.append(fact))
    engine.post(SetAgentStatus("1001", AgentStatus.PAUSED, clock.now))
    await asyncio.wait_for(engine.flushed(), 5)
    assert [f.name for f in facts] == ["agent"]
    assert not replay.done()  # applied between two steps of the replay
    sweep = await replay
    assert len(sweep.calls) == 299 and engine.core.background_sweep is sweep


async def test_an_announcement_waits_for_a_replay_that_walked_its_caller(
        engine: Engine) -> None:
    clock = engine.clock
    assert isinstance(clock, Clock)
    for call_id in ("t1", "w1"):
        engine.open_session(call_id)
    engine.post(CallArrived("t1", "consult", "1", clock.now, clock.now))
    await asyncio.wait_for(engine.flushed(), 5)
    engine.post(CallAnswered("t1", "1001", clock.now))
    await asyncio.wait_for(engine.flushed(), 5)
    await engine.estimates.replay()
    engine.post(CallArrived("w1", "consult", "2", clock.now, clock.now))
    await asyncio.wait_for(engine.flushed(), 5)
    published = engine.core.background_sweep
    assert published is not None and "w1" not in published.calls
    position, ewt = await engine.announcement("w1")
    sweep = engine.core.background_sweep
    assert sweep is not None and "w1" in sweep.calls  # the background replayed it
    assert position == 1 and ewt == pytest.approx(60, abs=1)
