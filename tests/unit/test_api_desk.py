"""Sign-in sessions, the agent desktop's and the console's API, the audit log and the
pages (issue 13), over a real engine (no Asterisk), as tests/unit/test_api_routes.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from acd.config import Config, passwords
from api.server import serving
from tests.unit.conftest import ApiRig

PIN = passwords.hash_password("2468", n=1024)
PW = passwords.hash_password("sup-pass", n=1024)
ADMIN_PW = passwords.hash_password("admin-pass", n=1024)
JSON = {"Content-Type": "application/json"}
ZT = "zhang-token-0123456789abcdef"


def config(second: str = "replace") -> Config:
    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "store": {"restore_grace": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 5},
                   {"id": "repair", "skills": {"repair": 1}}],
        "agents": [
            {"id": "1001", "skills": {"consult": 1}, "pin_hash": PIN,
             "status": "logged_out"},
            {"id": "1002", "skills": {"repair": 1}, "pin_hash": PIN,
             "status": "logged_out"},
        ],
        "desktop": {"second_sign_in": second,
                    "dispositions": [{"code": "solved", "name": "已解决"}]},
        "supervision": {"supervisors": [
            {"id": "zhang", "password_hash": PW, "queues": ["consult"]},
            {"id": "boss", "role": "admin", "password_hash": ADMIN_PW}]},
        "api": {"tokens": [{"name": "zhang-tool", "role": "supervisor", "env": "ZT",
                            "supervisor": "zhang"}]},
    })


@pytest.fixture
async def rig() -> AsyncIterator[ApiRig]:
    async with ApiRig(config(), environ={"ZT": ZT}) as r:
        yield r


async def sign_in(http: httpx.AsyncClient, kind: str, who: str, secret: str) -> Any:
    r = await http.post("/api/v1/session", json={"kind": kind, "id": who, "secret": secret})
    assert r.status_code == 200, r.text
    return r


def client(rig: ApiRig) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=rig.app),
                             base_url="http://acd.test")


async def test_sign_in_sets_a_strict_httponly_cookie_and_needs_csrf(rig: ApiRig) -> None:
    http = rig.http
    bad = await http.post("/api/v1/session",
                          json={"kind": "agent", "id": "1001", "secret": "1111"})
    unknown = await http.post("/api/v1/session",
                              json={"kind": "agent", "id": "9999", "secret": "2468"})
    assert bad.status_code == unknown.status_code == 401
    r = await sign_in(http, "agent", "1001", "2468")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "2468" not in cookie
    csrf = r.json()["csrf"]
    assert (await http.get("/api/v1/desk")).json()["agent"]["id"] == "1001"
    # a state change with the cookie but no CSRF token is refused
    nocsrf = await http.post("/api/v1/agents/1001/state", json={"action": "ready"})
    assert nocsrf.status_code == 403
    ok = await http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                         headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["status"] == "available"
    # only its own agent
    other = await http.post("/api/v1/agents/1002/state", json={"action": "ready"},
                            headers={"X-CSRF-Token": csrf})
    assert other.status_code == 403
    assert (await http.get("/api/v1/console")).status_code == 403


async def test_sign_in_refuses_forms_and_other_origins(rig: ApiRig) -> None:
    body = json.dumps({"kind": "agent", "id": "1001", "secret": "2468"})
    form = await rig.http.post("/api/v1/session", content=body,
                               headers={"Content-Type": "text/plain"})
    assert form.status_code in (403, 422) and "set-cookie" not in form.headers
    cross = await rig.http.post("/api/v1/session", content=body,
                                headers={**JSON, "Origin": "http://evil.test"})
    assert cross.status_code == 403


async def test_no_session_fixation_and_a_second_sign_in_replaces_the_first(
        rig: ApiRig) -> None:
    first, second = client(rig), client(rig)
    first.cookies.set("acd_session", "planted-by-an-attacker", domain="acd.test")
    await sign_in(first, "agent", "1001", "2468")
    assert first.cookies.get("acd_session") != "planted-by-an-attacker"
    assert (await first.get("/api/v1/desk")).status_code == 200
    await sign_in(second, "agent", "1001", "2468")
    assert (await first.get("/api/v1/desk")).status_code == 401
    assert (await second.get("/api/v1/desk")).status_code == 200
    r = await second.delete("/api/v1/session",
                            headers={"X-CSRF-Token": (await second.get(
                                "/api/v1/session")).json()["csrf"]})
    assert r.status_code == 200
    assert (await second.get("/api/v1/desk")).status_code == 401
    await first.aclose()
    await second.aclose()


async def test_second_sign_in_refused_when_configured() -> None:
    async with ApiRig(config("refuse")) as rig:
        await sign_in(rig.http, "agent", "1001", "2468")
        other = client(rig)
        r = await other.post("/api/v1/session",
                             json={"kind": "agent", "id": "1001", "secret": "2468"})
        assert r.status_code == 409 and r.json()["error"] == "signed_in_elsewhere"
        await other.aclose()


async def test_console_is_scoped_and_supervisor_actions_are_audited(rig: ApiRig) -> None:
    sup = client(rig)
    csrf = (await sign_in(sup, "supervisor", "zhang", "sup-pass")).json()["csrf"]
    h = {"X-CSRF-Token": csrf}
    view = (await sup.get("/api/v1/console")).json()
    assert [q["id"] for q in view["queues"]] == ["consult"]
    assert [a["id"] for a in view["agents"]] == ["1001"]
    assert view["scope"]["queues"] == ["consult"]
    r = await sup.post("/api/v1/agents/1001/state", json={"action": "pause",
                                                          "reason": "lunch"}, headers=h)
    assert r.status_code == 200
    out = await sup.post("/api/v1/agents/1002/sign-out", headers=h)
    assert out.status_code == 403  # outside the scope
    assert (await sup.get("/api/v1/audit")).status_code == 403  # admins only
    admin = client(rig)
    await sign_in(admin, "supervisor", "boss", "admin-pass")
    entries = (await admin.get("/api/v1/audit")).json()
    assert [(e["who"], e["action"], e["status"]) for e in entries][:4] == [
        ("supervisor:boss", "POST /api/v1/session", 200),
        ("supervisor:zhang", "POST /api/v1/agents/1002/sign-out", 403),
        ("supervisor:zhang", "POST /api/v1/agents/1001/state", 200),
        ("supervisor:zhang", "POST /api/v1/session", 200)]
    await sup.aclose()
    await admin.aclose()


async def test_supervisor_ends_an_agents_page_session(rig: ApiRig) -> None:
    agent = client(rig)
    await sign_in(agent, "agent", "1001", "2468")
    sup = client(rig)
    csrf = (await sign_in(sup, "supervisor", "zhang", "sup-pass")).json()["csrf"]
    r = await sup.post("/api/v1/agents/1001/sign-out", headers={"X-CSRF-Token": csrf})
    assert r.json() == {"agent": "1001", "ended": True}
    assert (await agent.get("/api/v1/desk")).status_code == 401
    await agent.aclose()
    await sup.aclose()


async def test_pages_have_a_strict_csp_and_no_inline_script(rig: ApiRig) -> None:
    for page in ("/desk", "/console"):
        r = await rig.http.get(page)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)
        assert "style=" not in r.text and " on" not in re.sub(r"<[^>]*>", "", "")
        assert not re.search(r"\son[a-z]+=", r.text)
    js = await rig.http.get("/static/desk.js")
    assert js.status_code == 200 and "innerHTML" not in js.text


async def test_the_offer_pops_on_the_agents_page_stream_with_the_caller(
        rig: ApiRig) -> None:
    r = await sign_in(rig.http, "agent", "1001", "2468")
    csrf = r.json()["csrf"]
    cookie = rig.http.cookies.get("acd_session")
    await rig.http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                        headers={"X-CSRF-Token": csrf})
    async with serving(rig.app) as server:
        url = f"ws://127.0.0.1:{server.port}/api/v1/events"
        async with connect(url, additional_headers={
                "Cookie": f"acd_session={cookie}", "Origin": "http://evil.test"}) as evil:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(evil.recv(), 3)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with connect(url, additional_headers={
                "Cookie": f"acd_session={cookie}",
                "Origin": f"http://127.0.0.1:{server.port}"}) as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "snapshot"
            rig.arrive("c1", caller="13912345678", region="CN-GD", session=True)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
                if msg["type"] == "pop":
                    break
            assert msg["call"]["caller"] == "13912345678"
            assert msg["call"]["region"] == "CN-GD" and msg["call"]["queue"] == "consult"
    h = (await rig.http.get("/api/v1/desk/history", params={"call": "c1"})).json()
    assert h == {"caller": "13912345678", "source": "live", "contacts": []}
    assert (await rig.http.get("/api/v1/desk/history",
                               params={"call": "other"})).status_code == 404


async def test_a_token_bound_to_a_supervisor_has_its_scope(rig: ApiRig) -> None:
    h = {"Authorization": f"Bearer {ZT}"}
    assert [q["id"] for q in (await rig.http.get("/api/v1/queues", headers=h)).json()] \
        == ["consult"]
    assert [a["id"] for a in (await rig.http.get("/api/v1/agents", headers=h)).json()] \
        == ["1001"]
    assert (await rig.http.get("/api/v1/agents/1002", headers=h)).status_code == 403
    rig.arrive("r1", queue="repair")
    rig.arrive("c1", queue="consult")
    await rig.settle()
    calls = (await rig.http.get("/api/v1/calls", headers=h)).json()
    assert [c["id"] for c in calls["waiting"]] == ["c1"]
    assert (await rig.http.get("/api/v1/calls/r1", headers=h)).status_code == 404
    move = await rig.http.post("/api/v1/calls/c1/move", json={"queue": "repair"}, headers=h)
    assert move.status_code == 403  # not into a queue outside the scope
    prio = await rig.http.post("/api/v1/calls/r1/priority", json={"priority": 5}, headers=h)
    assert prio.status_code == 403
    ok = await rig.http.post("/api/v1/calls/c1/priority", json={"priority": 5}, headers=h)
    assert ok.status_code == 200


async def test_a_supervisor_sends_a_waiting_call_to_a_partner() -> None:
    from acd.config import parse_config
    from tests.unit.test_api_partners import CONFIG as PARTNERS

    cfg = parse_config(PARTNERS + """api:
  tokens: [{name: sup, role: supervisor, env: ST}]
""")
    async with ApiRig(cfg, environ={"ST": ZT}) as rig:
        h = {"Authorization": f"Bearer {ZT}"}
        rig.arrive("c1", caller="02812345678", region="CN-SC", session=True)
        await rig.settle()
        assert (await rig.http.get("/api/v1/calls/c1", headers=h)).json()["state"] == \
            "waiting"
        bad = await rig.http.post("/api/v1/calls/c1/partner", json={"site": "bj"},
                                  headers=h)
        assert bad.status_code == 404 and bad.json()["error"] == "unknown_site"
        r = await rig.http.post("/api/v1/calls/c1/partner", json={"site": "gd"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "offered" and r.json()["site"] == "gd"


async def test_a_revoked_session_closes_its_event_stream(rig: ApiRig) -> None:
    await sign_in(rig.http, "agent", "1001", "2468")
    cookie = rig.http.cookies.get("acd_session")
    async with serving(rig.app) as server:
        url = f"ws://127.0.0.1:{server.port}/api/v1/events"
        async with connect(url, additional_headers={"Cookie": f"acd_session={cookie}"}) \
                as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            assert rig.app.state.acd.sessions.end_for("agent:1001")
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # the next heartbeat or event finds the session gone
                    await asyncio.wait_for(ws.recv(), 7)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_the_audit_file_survives_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "audit.jsonl"
    cfg = config().model_copy(update={"desktop": config().desktop.model_copy(
        update={"audit_file": str(path)})})
    async with ApiRig(cfg, environ={"ZT": ZT}) as rig:
        r = await rig.http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                                headers={"Authorization": f"Bearer {ZT}"})
        assert r.status_code == 200
    assert json.loads(path.read_text().splitlines()[0])["who"] == "zhang-tool"
    async with ApiRig(cfg, environ={"ZT": ZT}) as rig:
        admin = client(rig)
        await sign_in(admin, "supervisor", "boss", "admin-pass")
        entries = (await admin.get("/api/v1/audit")).json()
        assert [e["action"] for e in entries] == ["POST /api/v1/session",  # boss, now
                                                  "POST /api/v1/agents/1001/state"]
        await admin.aclose()
