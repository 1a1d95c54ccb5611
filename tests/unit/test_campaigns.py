"""Campaigns (issue 12.2): contacts, the window in the contact's local time, the
do-not-call list, progressive pacing, the blending guard, outcomes — the domain and the
runner with the real engine and the callbacks' dialer on a fake AMI client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from acd.config import ConfigError, parse_config
from acd.config.settings import settings_from
from acd.domain import AgentStatus, CallArrived, SetAgentStatus
from acd.domain.callbacks import CallbackFinished
from acd.domain.campaigns import (
    Campaign,
    CampaignSettings,
    ContactState,
    parse_attempt_id,
    parse_csv,
)
from acd.runtime.callbacks import CallbackDialer
from acd.runtime.campaigns import CampaignRunner
from acd.runtime.engine import Engine
from tests.unit.test_callback_dialer import FakeAMI, event

CONFIG = """
timezone: Asia/Shanghai
queues:
  - {id: consult, skills: {consult: 1}, priority: 10, wrap_up: 0}
  - {id: outbound, skills: {consult: 1}, priority: 0, wrap_up: 0}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@127.0.0.1:6001"}
  - {id: a2, endpoint: agent2, skills: {consult: 1}, contact: "sip:agent2@127.0.0.1:6002"}
callbacks:
  trunk: {contact: "sip:127.0.0.1:7000"}
campaigns:
  - id: aftersale
    queue: outbound
    hours: {daily: "09:00-20:00"}
    attempts: 2
    retry_after: 600
    do_not_call: ["13800138003"]
    outcome_codes: [satisfied, complaint, no_interest]
    guard: {max_inbound_wait: 20}
    timezones: {CN-XJ: Asia/Urumqi}
"""


def test_contacts_from_csv_and_attempt_ids() -> None:
    assert parse_csv("number,name\n13900000001,Wang\n\n# x\n13900000002\n") == [
        ("13900000001", "Wang"), ("13900000002", "")]
    assert parse_attempt_id("cmp-aftersale-3-2") == ("aftersale", 3)
    assert parse_attempt_id("cmp-my-campaign-3-2") == ("my-campaign", 3)
    assert parse_attempt_id("c1-cb") is None


def test_the_window_is_the_contacts_local_time() -> None:
    s = CampaignSettings("c", "outbound", {"daily": "09:00-20:00"},
                         timezones={"CN-XJ": "Asia/Urumqi"})
    c = Campaign(s)
    c.add([("13900000001", ""), ("09912345678", "")],
          lambda n: "CN-XJ" if n.startswith("0991") else "CN-BJ", lambda n: True)
    beijing, urumqi = c.contacts
    assert urumqi.timezone == "Asia/Urumqi" and beijing.timezone == "Asia/Shanghai"
    # 01:30 UTC: 09:30 in Beijing, 07:30 in Urumqi
    at = datetime(2026, 12, 3, 1, 30, tzinfo=UTC).timestamp()
    assert c.in_window(beijing, at) and not c.in_window(urumqi, at)
    assert c.due(at, 10) == [beijing]


def test_do_not_call_and_numbers_not_allowed_are_never_due() -> None:
    s = CampaignSettings("c", "outbound", {}, do_not_call=frozenset({"13900000003"}))
    c = Campaign(s)
    counts = c.add([("13900000003", ""), ("0044123", ""), ("13900000004", ""),
                    ("13900000004", "")], lambda n: "", lambda n: n.startswith("139"))
    assert counts == {"added": 1, "do_not_call": 1, "refused": 1, "duplicates": 1}
    assert [x.number for x in c.due(0.0, 10)] == ["13900000004"]


def test_attempts_spacing_and_outcomes() -> None:
    c = Campaign(CampaignSettings("c", "q", {}, attempts=2, retry_after=60,
                                  outcome_codes=("sale",)))
    c.add([("13900000001", "")], lambda n: "", lambda n: True)
    (x,) = c.contacts
    c.finished(x, "failed", "BUSY", "a1", 100.0)
    assert (x.state, x.attempts, x.next_at) == (ContactState.PENDING, 1, 160.0)
    assert c.due(159.0, 1) == [] and c.due(160.0, 1) == [x]
    c.finished(x, "completed", "ANSWER", "a1", 200.0)
    assert x.state is ContactState.REACHED
    with pytest.raises(ValueError):
        c.set_outcome(0, "nope")
    c.set_outcome(0, "sale")
    p = c.progress()
    assert (p["contacts"], p["attempted"], p["reached"], p["outcomes"]) == \
        (1, 1, 1, {"sale": 1})


def test_a_campaign_needs_callbacks_and_its_queue() -> None:
    with pytest.raises(ConfigError, match="callbacks section"):
        parse_config(CONFIG.replace("callbacks:\n  trunk: {contact: \"sip:127.0.0.1:7000\"}\n",
                                    ""))
    with pytest.raises(ConfigError, match="no queue"):
        parse_config(CONFIG.replace("queue: outbound", "queue: nope"))


# -- the runner -----------------------------------------------------------------------------


NINE_THIRTY_BEIJING = datetime(2026, 12, 3, 1, 30, tzinfo=UTC).timestamp()


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Engine, CampaignRunner, FakeAMI]]:
    config = parse_config(CONFIG)
    settings = settings_from(config)
    clock = [NINE_THIRTY_BEIJING]
    engine = Engine(settings, clock=lambda: clock[0], restore_grace=0.0)
    fake = FakeAMI()
    assert settings.callbacks is not None
    dialer = CallbackDialer(engine, settings.callbacks, fake)  # type: ignore[arg-type]
    engine.callback_dialer = dialer
    engine.fact_hooks.append(dialer.observe)
    runner = CampaignRunner(engine, {c.id: c.settings(config.timezone)
                                     for c in config.campaigns})
    engine.campaign_runner = runner
    engine.fact_hooks.append(runner.observe)
    async with engine.running():
        await engine.activate()
        yield engine, runner, fake
        await dialer.stop()


async def settle(engine: Engine) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
        await engine.flushed()


def numbers(n: int) -> str:
    return "\n".join(f"138001380{i:02d}" for i in range(1, n + 1))


def originated(fake: FakeAMI) -> list[str]:
    return [dict(f)["Exten"] for name, f in fake.sent if name == "Originate"]


async def test_progressive_one_attempt_per_free_agent_never_the_dnc(rig: Any) -> None:
    engine, runner, fake = rig
    counts = runner.load("aftersale", numbers(5))
    assert counts["do_not_call"] == 1 and counts["added"] == 4
    await runner.tick()
    await settle(engine)
    # two agents free: two attempts, each ringing an agent first
    assert originated(fake) == ["13800138001", "13800138002"]
    await runner.tick()
    await settle(engine)
    assert len(originated(fake)) == 2  # nobody free: nothing more (never predictive)
    # the first is reached, the second busy
    for i, status in ((1, "ANSWER"), (2, "BUSY")):
        if status == "ANSWER":
            engine.callback_dialer.on_event(event(
                ("Event", "UserEvent"), ("UserEvent", "ACDCallbackAnswered"),
                ("Id", f"cmp-aftersale-{i - 1}-1"), ("Attempt", "1")))
        engine.callback_dialer.on_event(event(
            ("Event", "UserEvent"), ("UserEvent", "ACDCallback"),
            ("Id", f"cmp-aftersale-{i - 1}-1"), ("Attempt", "1"), ("Status", status)))
    await settle(engine)
    c = runner.campaigns["aftersale"]
    assert [x.state for x in c.contacts[:2]] == [ContactState.REACHED, ContactState.PENDING]
    assert c.contacts[2].state is ContactState.DO_NOT_CALL
    await runner.tick()
    await settle(engine)
    assert "13800138003" not in originated(fake)
    assert originated(fake)[2:] == ["13800138004", "13800138005"]


async def test_inbound_first_the_guard_holds_outbound(rig: Any) -> None:
    engine, runner, fake = rig
    runner.load("aftersale", numbers(2))
    for a in ("a1", "a2"):
        await engine.command(SetAgentStatus(a, AgentStatus.PAUSED, engine.clock(), "break"))
    # an inbound caller has waited 30 s (> guard 20 s)
    now = engine.clock()
    session = engine.open_session("in1")  # the caller's FastAGI session (its offers)
    engine.post(CallArrived("in1", "consult", "13800138000", now - 30, now))
    await asyncio.sleep(0.05)  # past the (zero) restart hold of old entry times
    await settle(engine)
    await engine.command(SetAgentStatus("a1", AgentStatus.AVAILABLE, engine.clock()))
    await settle(engine)
    # a1 took the inbound caller; a2 is paused: nothing for the campaign
    offer = session.get_nowait()
    assert getattr(offer, "agent_id", None) == "a1"
    await runner.tick()
    assert originated(fake) == []
    await engine.command(SetAgentStatus("a2", AgentStatus.AVAILABLE, engine.clock()))
    await runner.tick()
    await settle(engine)
    assert originated(fake) == ["13800138001"]  # inbound served, a2 free: outbound now


async def test_outside_the_contacts_window_nothing_is_dialled(rig: Any) -> None:
    _engine, runner, fake = rig
    runner.load("aftersale", "09912345678\n")  # Urumqi: 07:30 there
    c = runner.campaigns["aftersale"]
    assert c.contacts[0].timezone == "Asia/Urumqi"
    await runner.tick()
    assert originated(fake) == []


async def test_campaigns_through_the_api(api_rig: Any) -> None:
    from acd.config import ApiRole
    from api.auth import Principal, TokenStore

    sup = "supervisor-token-0123456789"
    tokens = TokenStore([(sup, Principal("wallboard", ApiRole.SUPERVISOR))])
    h = {"Authorization": f"Bearer {sup}"}
    config = parse_config(CONFIG + "api: {}\nfastagi: {host: 127.0.0.1, port: 0}\n")
    async with api_rig(config, tokens=tokens,
                       environ={"ACD_AMI_OUTBOUND_SECRET": "x"}) as rig:
        r = await rig.http.post("/api/v1/campaigns/aftersale/contacts", headers={
            **h, "Content-Type": "text/csv"}, content=b"number,name\n13900000001,Li\n")
        assert r.status_code == 200, r.text
        assert r.json()["added"] == 1
        progress = await rig.get("/api/v1/campaigns", h)
        assert progress[0]["campaign"] == "aftersale" and progress[0]["contacts"] == 1
        contacts = await rig.get("/api/v1/campaigns/aftersale/contacts", h)
        assert contacts[0]["number"] == "13900000001"
        r = await rig.http.post("/api/v1/campaigns/aftersale/contacts/0/outcome",
                                headers=h, json={"code": "satisfied"})
        assert r.status_code == 200 and r.json()["outcome"] == "satisfied"
        r = await rig.http.post("/api/v1/campaigns/aftersale/contacts/0/outcome",
                                headers=h, json={"code": "bogus"})
        assert r.status_code == 422
        r = await rig.http.post("/api/v1/campaigns/nope/contacts", headers=h, content=b"")
        assert r.status_code == 404
        metrics = await rig.metrics()
        assert metrics[("acd_campaign_contacts",
                        (("campaign", "aftersale"), ("state", "pending")))] == 1


def test_a_finished_attempt_of_another_campaign_is_ignored() -> None:
    config = parse_config(CONFIG)
    runner = CampaignRunner.__new__(CampaignRunner)
    runner.campaigns = {c.id: Campaign(c.settings(config.timezone))
                        for c in config.campaigns}
    runner.observe(CallbackFinished("cmp-other-0-1", "outbound", "completed", 1, "ANSWER",
                                    1.0, None), 0.0)
    runner.observe(CallbackFinished("cmp-aftersale-5-1", "outbound", "completed", 1,
                                    "ANSWER", 1.0, None), 0.0)


async def test_campaign_progress_survives_in_the_store(rig: Any) -> None:
    from acd.runtime.store import StoredState

    engine, runner, _fake = rig
    engine.store_writer.campaign_record = runner.record
    engine.store_writer.campaign_ids = lambda: list(runner.campaigns)
    runner.load("aftersale", numbers(4))
    await runner.tick()  # contacts 1 and 2 are being dialled
    await settle(engine)
    writer_state = StoredState()
    writer_state.campaigns["aftersale"] = runner.record("aftersale") or {}
    # a new engine's runner takes the stored progress; the attempts that were being
    # dialled and did not come back as callbacks are not called again
    config = parse_config(CONFIG)
    other = Engine(settings_from(config))
    again = CampaignRunner(other, {c.id: c.settings(config.timezone)
                                   for c in config.campaigns})
    assert again.restore(writer_state.campaigns) == 1
    states = [c.state for c in again.campaigns["aftersale"].contacts]
    assert states == [ContactState.REACHED, ContactState.REACHED,
                      ContactState.DO_NOT_CALL, ContactState.PENDING]
    assert again.campaigns["aftersale"].contacts[0].last_status == "TAKEOVER"
