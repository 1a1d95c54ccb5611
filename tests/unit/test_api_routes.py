"""REST resources and the WebSocket over a real Engine driven with synthetic events.

No Asterisk: the engine runs in this loop (FastAGI on an ephemeral port, no AMI); the
tests post what caller sessions would post. REST goes through httpx's ASGI transport;
the WebSocket through a real uvicorn server on 127.0.0.1 and the ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from acd.config import ApiRole, Config
from acd.domain import CallAnswered, CallHungUp, DialFinished
from api.auth import Principal, TokenStore
from api.server import serving
from tests.unit.conftest import ApiRig

SUP = "supervisor-token-0123456789"
AGENT = "agent-1001-token-0123456789"
TOKENS = TokenStore([(SUP, Principal("wallboard", ApiRole.SUPERVISOR)),
                     (AGENT, Principal("agent-1001", ApiRole.AGENT, "1001"))])
H = {"Authorization": f"Bearer {SUP}"}
HA = {"Authorization": f"Bearer {AGENT}"}


def config(command_timeout: float = 5.0) -> Config:
    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        # synthetic callers who waited before the engine started: no restart hold
        "store": {"restore_grace": 0},
        "queues": [
            {"id": "consult", "name": "Consultation", "skills": {"consult": 1},
             "sl_target": 20, "wrap_up": 0},
            {"id": "repair", "skills": {"repair": 1}, "priority": 5, "sl_target": 30},
        ],
        "agents": [
            {"id": "1001", "name": "Li Wei", "skills": {"consult": 2, "repair": 1},
             "status": "logged_out"},
            {"id": "1002", "skills": {"consult": 1}, "status": "logged_out"},
        ],
        "api": {"command_timeout": command_timeout},
    })


@pytest.fixture
async def rig() -> AsyncIterator[ApiRig]:
    async with ApiRig(config(), tokens=TOKENS) as r:
        yield r


async def test_waiting_calls_have_queue_order_positions(rig: ApiRig) -> None:
    rig.arrive("a", waited=10)
    rig.arrive("b", waited=30)
    rig.arrive("vip", waited=1, boost=10)  # priority first, then seniority
    rig.arrive("r", queue="repair", waited=5)
    await rig.settle()
    calls = (await rig.http.get("/api/v1/calls", headers=H)).json()
    consult = [(c["id"], c["position"]) for c in calls["waiting"] if c["queue"] == "consult"]
    assert consult == [("vip", 1), ("b", 2), ("a", 3)]
    assert [c["position"] for c in calls["waiting"] if c["queue"] == "repair"] == [1]
    assert calls["active"] == []
    one = (await rig.http.get("/api/v1/calls/a", headers=H)).json()
    assert one["position"] == 3 and one["state"] == "waiting" and one["agent"] is None
    assert one["wait_seconds"] >= 10 and one["priority"] == 0
    queues = {q["id"]: q for q in (await rig.http.get("/api/v1/queues", headers=H)).json()}
    assert queues["consult"]["waiting"] == 3
    assert 30 <= queues["consult"]["longest_wait_seconds"] < 35
    assert queues["consult"]["today"]["offered"] == 3
    assert queues["consult"]["rolling_15m"]["offered"] == 3
    assert queues["consult"]["agents"]["logged_out"] == 2
    assert queues["repair"]["agents"]["logged_out"] == 1  # only 1001 has the repair skill
    assert queues["repair"]["waiting"] == 1
    one_queue = (await rig.http.get("/api/v1/queues/repair", headers=H)).json()
    assert one_queue["waiting"] == 1 and one_queue["priority"] == 5


async def test_agent_actions_and_answered_figures(rig: ApiRig) -> None:
    url = "/api/v1/agents/1001/state"
    r = await rig.http.post(url, json={"action": "login", "reason": "meeting"}, headers=HA)
    assert (r.json()["status"], r.json()["reason"]) == ("paused", "meeting")
    r = await rig.http.post(url, json={"action": "pause"}, headers=HA)
    assert (r.json()["status"], r.json()["reason"]) == ("paused", "break")
    r = await rig.http.post(url, json={"action": "login"}, headers=HA)  # already in: no-op
    assert r.json()["reason"] == "break"
    r = await rig.http.post(url, json={"action": "pause", "reason": "nap"}, headers=HA)
    assert (r.status_code, r.json()["error"]) == (422, "unknown_pause_reason")
    # a call that waits, then the agent makes itself ready and is offered it
    offers = rig.engine.open_session("c1")
    rig.arrive("c1", waited=25)
    await rig.settle()
    r = await rig.http.post(url, json={"action": "ready"}, headers=HA)
    assert r.status_code == 200
    offer = await asyncio.wait_for(offers.get(), 1)
    assert offer.agent_id == "1001"
    mine = (await rig.http.get("/api/v1/calls", headers=HA)).json()
    assert [(c["id"], c["state"], c["agent"]) for c in mine["active"]] == \
        [("c1", "offered", "1001")]
    assert (await rig.http.get("/api/v1/calls/c1", headers=HA)).status_code == 200
    now = rig.engine.clock()
    rig.engine.post(CallAnswered("c1", "1001", now))
    await rig.settle()
    agent = (await rig.http.get("/api/v1/agents/1001", headers=HA)).json()
    assert (agent["state"], agent["presence"], agent["call_id"]) == ("on_call", "on_call", "c1")
    assert agent["queues"] == ["consult", "repair"]
    rig.engine.post(DialFinished("c1", "1001", "ANSWER", now + 1, talk=1.0))
    await rig.settle()
    q = (await rig.http.get("/api/v1/queues/consult", headers=H)).json()
    for window in ("rolling_15m", "today"):
        w = q[window]
        assert (w["offered"], w["answered"], w["answered_within_target"]) == (1, 1, 0)
        assert w["service_level"] == 0.0 and w["asa_seconds"] >= 25
        assert w["completed"] == 1 and w["abandon_rate"] == 0.0
    r = await rig.http.post(url, json={"action": "logout"}, headers=H)  # a supervisor
    assert r.json()["status"] == "logged_out"
    assert (await rig.http.get("/api/v1/calls", headers=HA)).json() == \
        {"waiting": [], "active": [], "next_cursor": None}


async def test_domain_errors_map_to_clear_4xx(rig: ApiRig) -> None:
    r = await rig.http.post("/api/v1/agents/9999/state", json={"action": "ready"}, headers=H)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_agent")
    r = await rig.http.get("/api/v1/agents/9999", headers=H)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_agent")
    r = await rig.http.get("/api/v1/queues/nope", headers=H)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_queue")
    r = await rig.http.get("/api/v1/calls/nope", headers=H)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_call")
    r = await rig.http.post("/api/v1/agents/1001/state", json={"action": "dance"}, headers=H)
    assert r.status_code == 422
    r = await rig.http.post("/api/v1/agents/1001/state",
                            json={"action": "pause", "reason": "x" * 65}, headers=H)
    assert r.status_code == 422
    # a call another agent holds is not for this agent's eyes: it answers as no call
    offers = rig.engine.open_session("c9")
    rig.arrive("c9")
    await rig.http.post("/api/v1/agents/1002/state", json={"action": "ready"}, headers=H)
    assert (await asyncio.wait_for(offers.get(), 1)).agent_id == "1002"
    r = await rig.http.get("/api/v1/calls/c9", headers=HA)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_call")


async def test_engine_that_does_not_answer_gives_503() -> None:
    r = ApiRig(config(command_timeout=0.1), tokens=TOKENS)  # node not started: nobody
    async with r.app.router.lifespan_context(r.app), r.http:  # reads the inbox
        resp = await r.http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                                 headers=H)
        assert (resp.status_code, resp.json()["error"]) == (503, "engine_unavailable")
        ready = await r.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["accepting"] is False


async def test_wallboard_page_is_served_with_a_strict_policy(rig: ApiRig) -> None:
    r = await rig.http.get("/")
    assert r.status_code == 200 and "wallboard.js" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    js = await rig.http.get("/wallboard.js")
    assert js.status_code == 200 and "bearer." in js.text


# -- WebSocket -------------------------------------------------------------------------


async def recv(ws: ClientConnection, within: float = 1.0) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return msg


async def recv_until(ws: ClientConnection, pred: Any, within: float = 1.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if pred(msg):
            return msg


@pytest.fixture
async def served() -> AsyncIterator[tuple[ApiRig, str]]:
    async with ApiRig(config(), tokens=TOKENS) as rig, serving(rig.app) as server:
        yield rig, f"ws://127.0.0.1:{server.port}/api/v1/events"


async def test_websocket_snapshot_then_events_within_a_second(
        served: tuple[ApiRig, str]) -> None:
    rig, url = served
    async with connect(url, subprotocols=["acd.v1", f"bearer.{SUP}"]) as ws:
        assert ws.subprotocol == "acd.v1"
        snap = await recv(ws)
        assert snap["type"] == "snapshot"
        assert [q["id"] for q in snap["queues"]] == ["consult", "repair"]
        assert {a["id"] for a in snap["agents"]} == {"1001", "1002"}
        t0 = time.monotonic()
        rig.arrive("w1", caller="02087654321")
        ev = await recv_until(ws, lambda m: m["type"] == "event", within=1.0)
        assert time.monotonic() - t0 < 1.0
        assert ev["name"] == "call_waiting" and ev["data"]["call_id"] == "w1"
        summary = await recv_until(ws, lambda m: m["type"] == "summary", within=1.0)
        consult = next(q for q in summary["queues"] if q["id"] == "consult")
        assert consult["waiting"] == 1 and summary["calls"]["waiting"] == 1


async def test_websocket_authorization_header_and_agent_filter(
        served: tuple[ApiRig, str]) -> None:
    rig, url = served
    async with connect(url, additional_headers={"Authorization": f"Bearer {AGENT}"}) as ws:
        snap = await recv(ws)
        assert snap["queues"] == [] and [a["id"] for a in snap["agents"]] == ["1001"]
        await rig.http.post("/api/v1/agents/1002/state", json={"action": "ready"}, headers=H)
        await rig.http.post("/api/v1/agents/1001/state", json={"action": "pause"}, headers=H)
        ev = await recv_until(ws, lambda m: m["type"] == "event")
        assert ev["data"]["agent"] == "1001"  # 1002's change was not sent


async def test_websocket_agent_sees_why_not_others_only_as_counts(
        served: tuple[ApiRig, str]) -> None:
    rig, url = served
    async with connect(url, additional_headers={"Authorization": f"Bearer {AGENT}"}) as mine, \
            connect(url, subprotocols=["acd.v1", f"bearer.{SUP}"]) as sup:
        await recv(mine)
        await recv(sup)
        await rig.http.post("/api/v1/agents/1001/state", json={"action": "ready"}, headers=H)
        await rig.http.post("/api/v1/agents/1002/state", json={"action": "ready"}, headers=H)
        rig.engine.open_session("x1")  # so the offer has a caller session to go to
        rig.arrive("x1")

        def offered(m: dict[str, Any]) -> bool:
            return m["type"] == "event" and m["name"] == "call_offered"

        to_agent = (await recv_until(mine, offered))["data"]
        to_sup = (await recv_until(sup, offered))["data"]
        assert to_agent["agent"] == to_sup["agent"] == "1001"  # the longest idle
        assert [r["agent"] for r in to_sup["excluded"]["runners_up"]] == ["1002"]
        assert to_agent["excluded"]["runners_up"] == []  # no colleagues' names or states
        assert to_agent["excluded"]["counts"] == to_sup["excluded"]["counts"]


@pytest.mark.parametrize("token", [None, "not-a-known-token-0123456789"])
async def test_websocket_without_a_valid_token_is_closed_4401(
        served: tuple[ApiRig, str], token: str | None) -> None:
    _, url = served
    protocols = ["acd.v1"] + ([f"bearer.{token}"] if token else [])
    async with connect(url, subprotocols=protocols) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_client_hanging_up_ends_its_subscription(served: tuple[ApiRig, str]) -> None:
    rig, url = served
    async with connect(url, subprotocols=["acd.v1", f"bearer.{SUP}"]) as ws:
        await recv(ws)
        assert len(rig.engine._subscribers) == 1
    for _ in range(100):
        if not rig.engine._subscribers:
            break
        await asyncio.sleep(0.01)
    assert not rig.engine._subscribers


async def test_hung_up_call_leaves_the_views(rig: ApiRig) -> None:
    rig.arrive("h1", waited=40)
    await rig.settle()
    rig.engine.post(CallHungUp("h1", rig.engine.clock()))
    await rig.settle()
    q = (await rig.http.get("/api/v1/queues/consult", headers=H)).json()
    assert q["waiting"] == 0 and q["longest_wait_seconds"] == 0
    assert q["today"]["abandoned"] == 1 and q["today"]["abandoned_after_target"] == 1
    assert q["today"]["service_level"] == 0.0 and q["today"]["abandon_rate"] == 1.0


async def test_supervisor_moves_and_reprioritises_waiting_calls(rig: ApiRig) -> None:
    rig.arrive("old", queue="repair", waited=60)
    rig.arrive("a", waited=30)
    rig.arrive("b", waited=10)
    await rig.settle()
    # moved into consult, the repair caller lines up by its wait: ahead of both
    r = await rig.http.post("/api/v1/calls/old/move", json={"queue": "consult"}, headers=H)
    assert r.status_code == 200, r.text
    assert (r.json()["queue"], r.json()["position"]) == ("consult", 1)
    assert r.json()["wait_seconds"] >= 60
    # the newest caller jumps the line with a priority
    r = await rig.http.post("/api/v1/calls/b/priority", json={"priority": 50}, headers=H)
    assert (r.json()["position"], r.json()["priority"]) == (1, 50)
    order = [c["id"] for c in (await rig.http.get("/api/v1/calls", headers=H)).json()["waiting"]]
    assert order == ["b", "old", "a"]
    queues = {q["id"]: q for q in (await rig.http.get("/api/v1/queues", headers=H)).json()}
    assert (queues["consult"]["waiting"], queues["repair"]["waiting"]) == (3, 0)
    # errors: unknown queue, out-of-range priority, agents may not, call not waiting
    r = await rig.http.post("/api/v1/calls/a/move", json={"queue": "nope"}, headers=H)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_queue")
    r = await rig.http.post("/api/v1/calls/a/priority", json={"priority": 5000}, headers=H)
    assert r.status_code == 422
    r = await rig.http.post("/api/v1/calls/a/priority", json={"priority": 1}, headers=HA)
    assert r.status_code == 403
    offers = rig.engine.open_session("b")
    await rig.http.post("/api/v1/agents/1002/state", json={"action": "ready"}, headers=H)
    assert (await asyncio.wait_for(offers.get(), 1)).agent_id == "1002"
    r = await rig.http.post("/api/v1/calls/b/move", json={"queue": "repair"}, headers=H)
    assert (r.status_code, r.json()["error"]) == (409, "call_not_waiting")


async def test_positions_follow_the_routers_order_with_stage_boosts(api_rig: Any) -> None:
    """A stage's priority_boost counts in the order agents get calls: the position shown
    is that order (it used to be computed from the call's own priority only)."""
    cfg = Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1},
                    "stages": [{"after": 20, "priority_boost": 10}]}],
        "agents": [{"id": "1001", "skills": {"consult": 1}, "status": "logged_out"}],
        "api": {},
    })
    async with api_rig(cfg, tokens=TOKENS) as rig:
        rig.arrive("vip", waited=1, boost=5)  # the caller's own priority 5, stage 0
        rig.arrive("old", waited=30)  # priority 0, but in stage 1 (+10) after 20 s
        await rig.settle()
        calls = (await rig.http.get("/api/v1/calls", headers=H)).json()
        assert [(c["id"], c["position"], c["stage"]) for c in calls["waiting"]] == [
            ("old", 1, 1), ("vip", 2, 0)]
        one = (await rig.http.get("/api/v1/calls/vip", headers=H)).json()
        assert one["position"] == 2
        # and it is the order agents really get them
        rig.sessions["old"] = rig.engine.open_session("old")
        r = await rig.http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                                headers=H)
        assert r.status_code == 200
        assert (await rig.offer("old")).agent_id == "1001"


async def test_calls_are_paged_and_filtered(rig: ApiRig) -> None:
    for i in range(7):
        rig.arrive(f"c{i}", waited=100 - i)  # c0 waited longest: first in line
    rig.arrive("r1", queue="repair", waited=5)
    await rig.settle()
    seen: list[tuple[str, int]] = []
    cursor = None
    pages = 0
    while True:
        params = {"queue": "consult", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await rig.http.get("/api/v1/calls", headers=H, params=params)).json()
        seen += [(c["id"], c["position"]) for c in page["waiting"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [(f"c{i}", i + 1) for i in range(7)]
    waiting = (await rig.http.get("/api/v1/calls", headers=H,
                                  params={"state": "waiting"})).json()
    assert len(waiting["waiting"]) == 8 and waiting["active"] == []
    bad = await rig.http.get("/api/v1/calls", headers=H, params={"cursor": "not-ours"})
    assert bad.status_code == 422


async def test_supervisor_priority_replaces_the_callers_segment_priority(
        rig: ApiRig) -> None:
    rig.arrive("vip", boost=40)
    await rig.settle()
    r = await rig.http.post("/api/v1/calls/vip/priority", json={"priority": 5}, headers=H)
    assert r.status_code == 200 and r.json()["priority"] == 5  # 0 (queue) + 5, not 45


async def test_a_call_is_not_moved_into_a_closed_queue(api_rig: Any) -> None:
    cfg = config().model_copy(update={"queues": [
        *config().queues,
        config().queues[0].model_copy(update={"id": "night",
                                               "hours": {"daily": "00:00-00:01"}})]})
    # 10:40 in Shanghai: "night" (open 00:00-00:01) is closed
    async with api_rig(cfg, tokens=TOKENS, clock=lambda: 1_770_000_000.0) as rig:
        rig.arrive("c1")
        await rig.settle()
        r = await rig.http.post("/api/v1/calls/c1/move", json={"queue": "night"}, headers=H)
        assert (r.status_code, r.json()["error"]) == (409, "queue_closed")
        assert (await rig.http.get("/api/v1/calls/c1", headers=H)).json()["queue"] == \
            "consult"


async def test_expected_wait_on_calls_queues_and_its_error_in_metrics(api_rig: Any) -> None:
    clock = [1_770_000_000.0]
    cfg = Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0,
                    "expected_handle_time": 60}],
        "agents": [{"id": "1001", "skills": {"consult": 1}}],
        "api": {},
    })
    async with api_rig(cfg, tokens=TOKENS, clock=lambda: clock[0]) as rig:
        rig.arrive("c1", session=True)
        await rig.settle()
        assert (await rig.offer("c1")).agent_id == "1001"
        rig.engine.post(CallAnswered("c1", "1001", clock[0]))
        clock[0] += 10  # 10 s into the call
        rig.arrive("c2", session=True)
        await rig.replayed()
        call = (await rig.http.get("/api/v1/calls/c2", headers=H)).json()
        assert call["ewt_seconds"] == pytest.approx(50, abs=1)  # 60 s expected, 10 gone
        queue = (await rig.http.get("/api/v1/queues/consult", headers=H)).json()
        assert queue["ewt_seconds"] == pytest.approx(110, abs=1)  # after c2's 60 s too
        clock[0] += 40  # c1 ends early: c2 is answered after 40 s, told 50
        rig.engine.post(DialFinished("c1", "1001", "ANSWER", clock[0], talk=50.0))
        await rig.settle()
        assert (await rig.offer("c2")).agent_id == "1001"
        rig.engine.post(CallAnswered("c2", "1001", clock[0]))
        await rig.settle()
        m = await rig.metrics()
        count = m[("acd_ewt_error_seconds_count", (("direction", "over"), ("queue", "consult")))]
        assert count == 1
        assert m[("acd_ewt_error_seconds_sum", (("direction", "over"),
                                                ("queue", "consult")))] == pytest.approx(10, abs=1)


async def test_the_ewt_error_counts_from_the_callers_entry_not_from_joining(
        api_rig: Any) -> None:
    """The told wait is kept from the caller's first entry (ACD_ENTRY), the origin of
    its actual wait: a caller Asterisk answered 2 s before it joined the engine's line,
    behind a call just answered (60 s expected), is told 60 s more: 62 s in all, and is
    answered 62 s after its entry: no error."""
    clock = [1_770_000_000.0]
    cfg = Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0,
                    "expected_handle_time": 60}],
        "agents": [{"id": "1001", "skills": {"consult": 1}}],
        "api": {},
    })
    async with api_rig(cfg, tokens=TOKENS, clock=lambda: clock[0]) as rig:
        rig.arrive("c1", session=True)
        await rig.settle()
        assert (await rig.offer("c1")).agent_id == "1001"
        rig.engine.post(CallAnswered("c1", "1001", clock[0]))
        rig.arrive("c2", session=True, waited=2.0)  # entered 2 s ago
        await rig.replayed()
        clock[0] += 60  # c1 ends when expected: c2 has waited 62 s since its entry
        rig.engine.post(DialFinished("c1", "1001", "ANSWER", clock[0], talk=60.0))
        await rig.settle()
        assert (await rig.offer("c2")).agent_id == "1001"
        rig.engine.post(CallAnswered("c2", "1001", clock[0]))
        await rig.settle()
        m = await rig.metrics()
        total = sum(m.get(("acd_ewt_error_seconds_sum", (("direction", d),
                                                         ("queue", "consult"))), 0.0)
                    for d in ("over", "under"))
        assert total == pytest.approx(0.0, abs=0.01)
