"""A call the core offers but whose session is gone (nobody on the line to dial) ends as
hung up: put back in line it was offered again at once to the same free agent, an inbox
loop that starved every other caller (found by the desktop work)."""

from __future__ import annotations

import asyncio

from acd.domain import CallArrived
from acd.domain.facts import CallAbandoned
from acd.runtime.engine import Engine
from app.node import Node
from tests.unit.test_metrics import Clock, config


async def test_an_offer_to_a_call_without_a_session_ends_it_and_frees_the_agent() -> None:
    async with Node(config(), ami_secrets=None, clock=Clock()) as node:
        engine: Engine = node.engine
        facts: list[object] = []
        engine.fact_hooks.append(lambda fact, _now: facts.append(fact))
        now = engine.clock()
        engine.post(CallArrived("ghost", "consult", "13800138000", now, now))
        await asyncio.wait_for(engine.flushed(), 2)  # settles: no offer loop
        assert "ghost" not in engine.core.calls
        assert [f.call_id for f in facts if isinstance(f, CallAbandoned)] == ["ghost"]
        # the agent is free for the next caller, who has a session
        offers = engine.open_session("live")
        engine.post(CallArrived("live", "consult", "13800138001", now, now))
        item = await asyncio.wait_for(offers.get(), 2)
        assert getattr(item, "agent_id", None) == "1001"
