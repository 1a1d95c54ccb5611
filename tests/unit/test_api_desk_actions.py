"""The agent desktop's call actions (issue 13.2): transfer the caller to a queue keeping
its place, request a callback for the caller, and the callback / campaign context of the
pop — over a real engine with a fake AMI client (no Asterisk)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from acd.config import Config, passwords
from acd.domain import CallAnswered, CallArrived, DialFinished
from acd.domain.events import RequestCallback
from api.desk import call_context
from tests.unit.conftest import ApiRig
from tests.unit.test_callback_dialer import FakeAMI

PIN = passwords.hash_password("2468", n=1024)
CALLER = "13912345678"


def config(callbacks: bool = True) -> Config:
    raw: dict[str, Any] = {
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "store": {"restore_grace": 0},
        "api": {},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 30},
                   {"id": "repair", "skills": {"repair": 1}},
                   {"id": "night", "skills": {"repair": 1},
                    "hours": {"daily": "00:00-00:01"}}],
        "agents": [
            {"id": "1001", "skills": {"consult": 1}, "pin_hash": PIN,
             "status": "logged_out"},
            {"id": "1002", "skills": {"consult": 1}, "pin_hash": PIN,
             "status": "logged_out"},
        ],
    }
    if callbacks:
        raw["callbacks"] = {"attempts": 2}
    return Config.model_validate(raw)


async def signed_in(rig: ApiRig, agent: str) -> dict[str, str]:
    r = await rig.http.post("/api/v1/session",
                            json={"kind": "agent", "id": agent, "secret": "2468"})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf"]}


async def connected(rig: ApiRig, h: dict[str, str], call_id: str = "c1") -> None:
    """``call_id`` offered to the signed-in agent 1001, which answers."""
    rig.sessions[call_id] = rig.engine.open_session(call_id)
    now = rig.engine.clock()
    rig.engine.post(CallArrived(call_id, "consult", CALLER, now - 20, now,
                                f"PJSIP/trunk-{call_id}", f"u-{call_id}"))
    r = await rig.http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                            headers=h)
    assert r.status_code == 200, r.text
    offer = await rig.offer(call_id)
    assert offer.agent_id == "1001"  # type: ignore[union-attr]


@pytest.fixture
async def rig() -> AsyncIterator[ApiRig]:
    async with ApiRig(config(), environ={"ACD_AMI_OUTBOUND_SECRET": "x"}) as r:
        yield r


async def test_transfer_only_the_agents_own_call_in_conversation(rig: ApiRig) -> None:
    h = await signed_in(rig, "1001")
    url = "/api/v1/desk/transfer"
    r = await rig.http.post(url, json={"queue": "repair"}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "not_in_conversation"
    assert "no call in conversation" in r.json()["detail"]
    await connected(rig, h)
    # ringing, not answered yet: refused
    r = await rig.http.post(url, json={"queue": "repair"}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "not_in_conversation"
    rig.engine.post(CallAnswered("c1", "1001", rig.engine.clock()))
    await rig.settle()
    # no CSRF token with the cookie: refused
    assert (await rig.http.post(url, json={"queue": "repair"})).status_code == 403
    same = await rig.http.post(url, json={"queue": "consult"}, headers=h)
    assert same.status_code == 409 and same.json()["error"] == "same_queue"
    unknown = await rig.http.post(url, json={"queue": "nope"}, headers=h)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_queue"
    closed = await rig.http.post(url, json={"queue": "night"}, headers=h)
    assert closed.status_code == 409 and closed.json()["error"] == "queue_closed"
    # no AMI link to the caller's Asterisk: nothing moved, said so
    r = await rig.http.post(url, json={"queue": "repair"}, headers=h)
    assert r.status_code == 503 and "AMI" in r.json()["detail"]
    fake = FakeAMI()
    rig.engine.amis[rig.engine.core.calls["c1"].server] = fake  # type: ignore[assignment]
    r = await rig.http.post(url, json={"queue": "repair"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": "c1", "from_queue": "consult", "queue": "repair"}
    # the caller's channel (never the agent's) gets the queue, then goes to the hotline
    assert fake.sent == [
        ("Setvar", {"Channel": "PJSIP/trunk-c1", "Variable": "ACD_QUEUE",
                    "Value": "repair"}),
        ("Redirect", {"Channel": "PJSIP/trunk-c1", "Context": "hotline-acd",
                      "Exten": "s", "Priority": "1"})]
    # Asterisk refusing it: 503 with its reason
    fake.fail = RuntimeError("No such channel")
    r = await rig.http.post(url, json={"queue": "repair"}, headers=h)
    assert r.status_code == 503 and "No such channel" in r.json()["detail"]


async def test_an_agent_cannot_transfer_or_call_back_a_colleagues_call(
        rig: ApiRig) -> None:
    h1 = await signed_in(rig, "1001")
    await connected(rig, h1)
    rig.engine.post(CallAnswered("c1", "1001", rig.engine.clock()))
    await rig.settle()
    rig.engine.amis[rig.engine.core.calls["c1"].server] = FakeAMI()  # type: ignore[assignment]
    other = ApiRig.__new__(ApiRig)  # a second browser: its own cookie jar
    import httpx
    other.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=rig.app),
                                   base_url="http://acd.test")
    async with other.http:
        h2 = await signed_in(other, "1002")
        r = await other.http.post("/api/v1/desk/transfer", json={"queue": "repair"},
                                  headers=h2)
        assert r.status_code == 409 and r.json()["error"] == "not_in_conversation"
        r = await other.http.post("/api/v1/desk/callback", json={}, headers=h2)
        assert r.status_code == 409 and r.json()["error"] == "no_call"
    assert rig.engine.core.calls["c1"].queue_id == "consult"


async def test_request_a_callback_for_the_caller(rig: ApiRig) -> None:
    h = await signed_in(rig, "1001")
    url = "/api/v1/desk/callback"
    r = await rig.http.post(url, json={}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "no_call"
    await connected(rig, h)
    rig.engine.post(CallAnswered("c1", "1001", rig.engine.clock()))
    await rig.settle()
    at = rig.engine.clock() + 3600
    r = await rig.http.post(url, json={"at": at}, headers=h)
    assert r.status_code == 201, r.text
    cb = r.json()
    assert (cb["number"], cb["call_id"], cb["queue"], cb["state"], cb["not_before"],
            cb["reason"]) == (CALLER, "c1", "consult", "scheduled", at, "desk:1001")
    assert (await rig.http.post(url, json={"number": "13800000000"},
                                headers=h)).status_code == 422  # never another number
    # after the conversation, in its wrap-up: still this caller
    rig.engine.post(DialFinished("c1", "1001", "ANSWER", rig.engine.clock(), talk=5.0))
    await rig.settle()
    assert (await rig.http.get("/api/v1/desk")).json()["agent"]["state"] == "wrap_up"
    r = await rig.http.post(url, json={"queue": "repair"}, headers=h)
    assert r.status_code == 201, r.text
    assert (r.json()["number"], r.json()["queue"], r.json()["not_before"]) == (
        CALLER, "repair", 0.0)
    listed = rig.engine.core.callback_list()
    assert len(listed) == 2


async def test_callback_refused_when_callbacks_are_not_configured() -> None:
    async with ApiRig(config(callbacks=False)) as rig:
        h = await signed_in(rig, "1001")
        await connected(rig, h)
        rig.engine.post(CallAnswered("c1", "1001", rig.engine.clock()))
        await rig.settle()
        r = await rig.http.post("/api/v1/desk/callback", json={}, headers=h)
        assert r.status_code == 409 and r.json()["error"] == "callbacks_not_configured"
        assert "not configured" in r.json()["detail"]
        desk = (await rig.http.get("/api/v1/desk")).json()
        assert desk["callbacks"] is False and desk["context"] is None
        assert desk["queues"] == ["consult", "repair", "night"]


async def test_the_pop_context_of_a_callback(rig: ApiRig) -> None:
    dialer = rig.engine.callback_dialer
    assert dialer is not None
    now = rig.engine.clock()
    await dialer.request(RequestCallback("c9", "13800138000", now, callback_id="cb-1",
                                         queue_id="consult", entry_time=now - 60,
                                         requested_at=now - 30, ewt=120.0,
                                         reason="caller_key"))
    state = rig.app.state.acd
    ctx = call_context(state, "cb-1")
    assert ctx is not None
    assert (ctx.kind, ctx.number, ctx.requested_at, ctx.attempt, ctx.max_attempts,
            ctx.reason, ctx.origin_call_id, ctx.ewt, ctx.campaign) == (
        "callback", "13800138000", now - 30, 1, 2, "caller_key", "c9", 120.0, None)
    assert call_context(state, "c1") is None  # an inbound caller: no context


async def test_the_pop_context_of_a_campaign_attempt() -> None:
    from acd.config import parse_config
    from tests.unit.test_campaigns import CONFIG as CAMPAIGNS

    cfg = parse_config(CAMPAIGNS + "api: {}\n")
    async with ApiRig(cfg, environ={"ACD_AMI_OUTBOUND_SECRET": "x"}) as rig:
        runner = rig.engine.campaign_runner
        dialer = rig.engine.callback_dialer
        assert runner is not None and dialer is not None
        runner.load("aftersale", "number,name\n13800138001,王<b>先生</b>\n")
        now = rig.engine.clock()
        await dialer.request(RequestCallback(
            "", "13800138001", now, callback_id="cmp-aftersale-0-1", queue_id="outbound",
            entry_time=now, reason="campaign:aftersale", max_attempts=1))
        ctx = call_context(rig.app.state.acd, "cmp-aftersale-0-1")
        assert ctx is not None and ctx.contact is not None
        assert (ctx.kind, ctx.campaign, ctx.attempt, ctx.max_attempts) == (
            "campaign", "aftersale", 1, 2)
        assert (ctx.contact.number, ctx.contact.name) == ("13800138001", "王<b>先生</b>")
        assert ctx.outcome_codes == ["satisfied", "complaint", "no_interest"]
