"""The outbound dialer (acd.runtime.callbacks) against a fake AMI client at the transport
boundary: what it originates, how the outbound account's events come back as the core's
events, and that an Originate is never sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from acd.config import parse_config
from acd.config.settings import settings_from
from acd.domain import AgentStatus
from acd.domain.callbacks import CallbackState
from acd.domain.events import RequestCallback
from acd.protocol.ami import AMIEvent, AMIResponse, make_message
from acd.runtime.ami_client import AMIConnectionLostError
from acd.runtime.callbacks import CallbackDialer, dial_key, masked
from acd.runtime.engine import Engine
from tests.unit.test_callbacks import CONFIG


class FakeAMI:
    """Records the actions; answers Originate with Success (or raises ``fail``)."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, Any]] = []
        self.fail: Exception | None = None

    async def action(self, name: str, fields: Any = (), timeout: float | None = None,  # noqa: ASYNC109
                     ) -> AMIResponse:
        self.sent.append((name, fields))
        if self.fail is not None:
            raise self.fail
        msg = make_message((("Response", "Success"), ("ActionID", f"id-{len(self.sent)}"),
                            ("Message", "Originate successfully queued")))
        assert isinstance(msg, AMIResponse)
        return msg


def event(*headers: tuple[str, str]) -> AMIEvent:
    msg = make_message(headers)
    assert isinstance(msg, AMIEvent)
    return msg


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Engine, CallbackDialer, FakeAMI]]:
    settings = settings_from(parse_config(CONFIG))
    engine = Engine(settings)
    fake = FakeAMI()
    assert settings.callbacks is not None
    dialer = CallbackDialer(engine, settings.callbacks, fake, ring_timeout=15)  # type: ignore[arg-type]
    engine.callback_dialer = dialer
    engine.fact_hooks.append(dialer.observe)
    async with engine.running():
        await engine.activate()
        yield engine, dialer, fake
        await dialer.stop()


async def settle(engine: Engine) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
        await engine.flushed()


async def _scheduled(engine: Engine, dialer: CallbackDialer) -> str:
    cb_id = await dialer.request(RequestCallback(
        "", "13800138001", engine.clock(), callback_id="api-1", queue_id="consult"))
    await settle(engine)
    return cb_id


async def test_the_agent_is_rung_first_through_the_outbound_context(rig: Any) -> None:
    engine, dialer, fake = rig
    await _scheduled(engine, dialer)
    (name, fields), = fake.sent
    assert name == "Originate"
    f = dict(fields)
    assert (f["Channel"], f["Context"], f["Exten"], f["Async"]) == \
        ("PJSIP/agent1", "acd-outbound", "13800138001", "true")
    assert f["CallerID"] == '"Callback 13800138001" <13800138001>'
    assert ("Variable", "ACD_CB_ID=api-1") in fields
    assert ("Variable", "ACD_CB_ATTEMPT=1") in fields
    assert dialer.originated == 1


async def test_the_agent_not_answering_is_a_ring_no_answer(rig: Any) -> None:
    engine, dialer, _fake = rig
    await _scheduled(engine, dialer)
    dialer.on_event(event(("Event", "OriginateResponse"), ("ActionID", "id-1"),
                          ("Response", "Failure"), ("Reason", "3")))
    await settle(engine)
    assert engine.core.agents["a1"].status is AgentStatus.PAUSED
    cb = engine.core.callbacks.by_id["api-1"]
    assert (cb.state, cb.attempts) == (CallbackState.PENDING, 0)


async def test_the_customer_answers_and_the_callback_completes(rig: Any) -> None:
    engine, dialer, _fake = rig
    await _scheduled(engine, dialer)
    dialer.on_event(event(("Event", "OriginateResponse"), ("ActionID", "id-1"),
                          ("Response", "Success"), ("Reason", "4")))
    dialer.on_event(event(("Event", "UserEvent"), ("UserEvent", "ACDCallbackAnswered"),
                          ("Id", "api-1"), ("Attempt", "1")))
    await settle(engine)
    assert engine.core.calls["api-1"].state.value == "connected"
    # an event of another attempt is not ours
    dialer.on_event(event(("Event", "UserEvent"), ("UserEvent", "ACDCallback"),
                          ("Id", "api-1"), ("Attempt", "7"), ("Status", "BUSY")))
    dialer.on_event(event(("Event", "UserEvent"), ("UserEvent", "ACDCallback"),
                          ("Id", "api-1"), ("Attempt", "1"), ("Status", "ANSWER")))
    await settle(engine)
    assert "api-1" not in engine.core.calls
    assert engine.core.callbacks.totals["completed"] == 1
    assert dialer.delays[0] == 1


async def test_a_busy_customer_is_an_attempt(rig: Any) -> None:
    engine, dialer, _fake = rig
    await _scheduled(engine, dialer)
    dialer.on_event(event(("Event", "UserEvent"), ("UserEvent", "ACDCallback"),
                          ("Id", "api-1"), ("Attempt", "1"), ("Status", "BUSY")))
    await settle(engine)
    cb = engine.core.callbacks.by_id["api-1"]
    assert (cb.state, cb.attempts) == (CallbackState.RETRY, 1)


async def test_an_originate_in_doubt_is_never_sent_again(rig: Any) -> None:
    engine, dialer, fake = rig
    fake.fail = AMIConnectionLostError("lost while sending Originate")
    await _scheduled(engine, dialer)
    assert [name for name, _ in fake.sent] == ["Originate"]
    assert dialer.in_doubt == 1
    assert engine.core.callbacks.by_id["api-1"].state is CallbackState.DIALING
    # its dialplan events still count: the customer was busy
    dialer.on_event(event(("Event", "UserEvent"), ("UserEvent", "ACDCallback"),
                          ("Id", "api-1"), ("Attempt", "1"), ("Status", "BUSY")))
    await settle(engine)
    assert [name for name, _ in fake.sent] == ["Originate"]
    assert engine.core.callbacks.by_id["api-1"].attempts == 1


async def test_the_outbound_account_down_is_not_an_attempt(rig: Any) -> None:
    engine, dialer, fake = rig
    fake.connected = False
    await _scheduled(engine, dialer)
    assert fake.sent == []
    cb = engine.core.callbacks.by_id["api-1"]
    assert (cb.state, cb.attempts) == (CallbackState.RETRY, 0)
    assert engine.core.agents["a1"].status is AgentStatus.AVAILABLE


def test_names_in_logs_and_dialplan() -> None:
    assert masked("13800138001") == "*******8001"
    assert dial_key("main:1796.5-cb") == "main17965cb"


# -- the API ---------------------------------------------------------------------------------


async def test_callbacks_through_the_api(api_rig: Any) -> None:
    from acd.config import ApiRole, Config
    from api.auth import Principal, TokenStore

    sup, agent = "supervisor-token-0123456789", "agent-1001-token-0123456789"
    tokens = TokenStore([(sup, Principal("wallboard", ApiRole.SUPERVISOR)),
                         (agent, Principal("agent-1001", ApiRole.AGENT, "1001"))])
    h = {"Authorization": f"Bearer {sup}"}
    raw = {"fastagi": {"host": "127.0.0.1", "port": 0}, "api": {},
           "queues": [{"id": "consult", "skills": {"consult": 1}}],
           "agents": [{"id": "1001", "skills": {"consult": 1}, "status": "logged_out"}]}
    async with api_rig(Config.model_validate(raw), tokens=tokens) as rig:
        r = await rig.http.post("/api/v1/callbacks", headers=h,
                                json={"number": "13800138000", "queue": "consult"})
        assert r.status_code == 404  # no callbacks section: nothing could dial
    raw["callbacks"] = {}
    async with api_rig(Config.model_validate(raw), tokens=tokens,
                       environ={"ACD_AMI_OUTBOUND_SECRET": "x"}) as rig:
        at = rig.engine.clock() + 3600
        r = await rig.http.post("/api/v1/callbacks", headers=h, json={
            "number": "+86 138 0013 8000", "queue": "consult", "at": at})
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["number"], body["state"], body["not_before"], body["reason"]) == \
            ("13800138000", "scheduled", at, "api:wallboard")
        listed = await rig.get("/api/v1/callbacks", h)
        assert [c["callback_id"] for c in listed] == [body["callback_id"]]
        r = await rig.http.post("/api/v1/callbacks", headers=h, json={
            "number": "0044201234567", "queue": "consult"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_command"
        r = await rig.http.post("/api/v1/callbacks", headers=h, json={
            "number": "13800138000", "queue": "nope"})
        assert r.status_code == 404
        r = await rig.http.post("/api/v1/callbacks", json={
            "number": "13800138000", "queue": "consult"},
            headers={"Authorization": f"Bearer {agent}"})
        assert r.status_code == 403
        r = await rig.http.delete(f"/api/v1/callbacks/{body['callback_id']}", headers=h)
        assert r.status_code == 204
        figures = await rig.get("/api/v1/callbacks/figures", h)
        assert (figures["requested"], figures["cancelled"], figures["pending"]) == (1, 1, 0)
        metrics = await rig.metrics()
        assert metrics[("acd_callbacks_total", (("stage", "cancelled"),))] == 1
