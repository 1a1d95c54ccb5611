"""A proactive campaign through the real Asterisk and SIPp (issue 12.2): 10 contacts, 2
agents; one customer busy then answered on the retry, one on the do-not-call list never
dialled, one (Urumqi) outside its local-time window not dialled; every attempt rings an
agent first (progressive: one per free agent); an inbound caller arriving during the
campaign is served before the contacts released after it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.rig import AgentPlan, Rig
from harness.sipp import busy_once_scenario, start_uas

pytestmark = pytest.mark.e2e

BUSY, DNC, URUMQI, INBOUND = "13800138802", "13800138809", "09912345678", "13800138950"


def window_around_now_in_beijing() -> list[str]:
    """Beijing now ± 1 h (Urumqi, 2 h behind, is outside it)."""
    now = datetime.now(UTC) + timedelta(hours=8)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    if start.date() == end.date():
        return [f"{start:%H:%M}-{end:%H:%M}"]
    return [f"{start:%H:%M}-23:59", f"00:00-{end:%H:%M}"]


async def test_a_campaign_of_ten_contacts_blended_with_inbound(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("9101", talk_ms=(2000, 2000)), AgentPlan("9102", talk_ms=(2000, 2000))]
    rig = Rig(artifacts, plans, wrap_up=0)
    customer = await start_uas(busy_once_scenario(BUSY, artifacts), rig.ports, artifacts,
                               "customers", variables={"talk_min": 20000,
                                                       "talk_max": 20000, "seen": 0},
                               trace_messages=False)
    try:
        rig.extra_config = {
            "queues": [
                {"id": "consult", "skills": {"consult": 1}, "priority": 10, "wrap_up": 0},
                {"id": "outbound", "skills": {"consult": 1}, "priority": 0, "wrap_up": 0}],
            "callbacks": {"trunk": {"contact": f"sip:127.0.0.1:{customer.port}"}},
            "campaigns": [{
                "id": "aftersale", "queue": "outbound",
                "hours": {"daily": window_around_now_in_beijing()},
                "attempts": 2, "retry_after": 3, "do_not_call": [DNC],
                "guard": {"max_inbound_wait": 5},
                "timezones": {"CN-XJ": "Asia/Urumqi"}}]}
        async with rig:
            assert rig.engine is not None and rig.engine.campaign_runner is not None
            runner = rig.engine.campaign_runner
            contacts = [f"1380013880{i}" for i in range(1, 10)] + [URUMQI]
            counts = runner.load("aftersale", "number,name\n" + "\n".join(contacts))
            assert counts == {"added": 9, "do_not_call": 1, "refused": 0, "duplicates": 0}
            campaign = runner.campaigns["aftersale"]
            # an inbound caller arrives while both agents work the campaign
            await rig.wait_for(lambda: len(customer.result().by_event("answered")) >= 2, 20)
            inbound = asyncio.create_task(rig.call([INBOUND], name="inbound", time_limit=60))
            await rig.wait_for(lambda: campaign.progress()["reached"] == 8, 60)
            result = await inbound
            assert result.failed == 0 and result.successful == 1, result.errors_text()
            invites = [e.agent for e in customer.result().by_event("offered")]
            assert DNC not in invites and URUMQI not in invites  # never dialled
            assert invites.count(BUSY) == 2  # busy, then answered on the retry
            assert sorted(set(invites)) == [c for c in contacts[:8]]
            assert len(invites) == 9
            busy = customer.result().by_event("busy")
            assert [e.agent for e in busy] == [BUSY]
            states = {c.number: c.state.value for c in campaign.contacts}
            assert states[DNC] == "do_not_call" and states[URUMQI] == "pending"
            assert campaign.contacts[1].attempts == 2
            # inbound first: the engine's first offer after the caller joined the line
            # was the caller's, though contacts were still waiting to be called
            facts = [(e.name, e.data) for e in rig.events]
            joined = next(i for i, (n, d) in enumerate(facts)
                          if n == "call_waiting" and d["caller"] == INBOUND)
            call_id = facts[joined][1]["call_id"]
            offers = [d["call_id"] for n, d in facts[joined:] if n == "call_offered"]
            assert offers[0] == call_id, offers[:3]
            assert any(o.startswith("cmp-") for o in offers[1:])  # the campaign went on
            wait = next(d["wait"] for n, d in facts if n == "call_connected"
                        and d["call_id"] == call_id)
            assert wait < 5.0
    finally:
        await customer.stop()
