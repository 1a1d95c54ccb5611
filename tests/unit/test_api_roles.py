"""Roles × endpoints: 401 (no or unknown token) vs 403 (role not allowed), agent binding.

The app runs over a real Engine (no Asterisk: FastAGI on an ephemeral port, no AMI),
driven through httpx's ASGI transport with the app's lifespan running.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from acd.config import Config
from api.auth import TokenStore
from tests.unit.conftest import ApiRig

TOKENS = {
    "ACD_TOKEN_AGENT_1001": "agent-1001-token-0123456789",
    "ACD_TOKEN_AGENT_1002": "agent-1002-token-0123456789",
    "ACD_TOKEN_SUPERVISOR": "supervisor-token-0123456789",
    "ACD_TOKEN_ADMIN": "admin-token-0123456789abcdef",
}
ROLES = {
    "none": None,
    "bad": "not-a-known-token-0123456789",
    "agent": TOKENS["ACD_TOKEN_AGENT_1001"],
    "supervisor": TOKENS["ACD_TOKEN_SUPERVISOR"],
    "admin": TOKENS["ACD_TOKEN_ADMIN"],
}


def config(**api: Any) -> Config:
    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "queues": [{"id": "consult", "name": "Consultation", "skills": {"consult": 1}}],
        "agents": [{"id": "1001", "skills": {"consult": 2}},
                   {"id": "1002", "skills": {"consult": 1}, "status": "logged_out"}],
        "sites": [{"id": "bj", "kind": "own"}],
        "api": {"tokens": [
            {"name": "agent-1001", "role": "agent", "agent": "1001",
             "env": "ACD_TOKEN_AGENT_1001"},
            {"name": "agent-1002", "role": "agent", "agent": "1002",
             "env": "ACD_TOKEN_AGENT_1002"},
            {"name": "wallboard", "role": "supervisor", "env": "ACD_TOKEN_SUPERVISOR"},
            {"name": "ops", "role": "admin", "env": "ACD_TOKEN_ADMIN"},
        ], **api},
    })


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(config()) as c:
        yield c


@contextlib.asynccontextmanager
async def _client(cfg: Config) -> AsyncIterator[httpx.AsyncClient]:
    async with ApiRig(cfg, environ=TOKENS) as rig:
        yield rig.http


def auth(role: str) -> dict[str, str]:
    token = ROLES[role]
    return {"Authorization": f"Bearer {token}"} if token else {}


PAUSE = {"action": "pause", "reason": "lunch"}
# (method, path, body) → expected status for none, bad, agent(1001), supervisor, admin
MATRIX: list[tuple[str, str, dict[str, Any] | None, tuple[int, int, int, int, int]]] = [
    ("GET", "/healthz", None, (200, 200, 200, 200, 200)),
    ("GET", "/readyz", None, (200, 200, 200, 200, 200)),
    ("GET", "/metrics", None, (200, 200, 200, 200, 200)),
    ("GET", "/", None, (200, 200, 200, 200, 200)),
    ("GET", "/openapi.json", None, (200, 200, 200, 200, 200)),
    ("GET", "/api/v1/queues", None, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/queues/consult", None, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/agents", None, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/agents/1001", None, (401, 401, 200, 200, 200)),
    ("GET", "/api/v1/agents/1002", None, (401, 401, 403, 200, 200)),
    ("POST", "/api/v1/agents/1001/state", PAUSE, (401, 401, 200, 200, 200)),
    ("POST", "/api/v1/agents/1002/state", PAUSE, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/calls", None, (401, 401, 200, 200, 200)),
    ("GET", "/api/v1/calls/no-such-call", None, (401, 401, 404, 404, 404)),
    ("GET", "/api/v1/calls/no-such-call/explanation", None, (401, 401, 404, 404, 404)),
    ("GET", "/api/v1/sites", None, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/sites/bj", None, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/sites/no-such-site", None, (401, 401, 403, 404, 404)),
    ("GET", "/api/v1/regions", None, (401, 401, 403, 200, 200)),
    ("GET", "/api/v1/config", None, (401, 401, 403, 403, 200)),
    ("POST", "/api/v1/calls/no-such-call/move", {"queue": "consult"},
     (401, 401, 403, 404, 404)),
    ("POST", "/api/v1/calls/no-such-call/priority", {"priority": 5},
     (401, 401, 403, 404, 404)),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX,
                         ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
async def test_role_matrix(client: httpx.AsyncClient, method: str, path: str,
                           body: dict[str, Any] | None,
                           expected: tuple[int, int, int, int, int]) -> None:
    got = []
    for role in ROLES:
        r = await client.request(method, path, json=body, headers=auth(role))
        got.append(r.status_code)
        if r.status_code == 401:
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"] == "unauthorized"
        if r.status_code == 403:
            assert r.json()["error"] == "forbidden"
    assert tuple(got) == expected


async def test_agent_token_cannot_change_another_agent(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/agents/1002/state", json={"action": "ready"},
                          headers=auth("agent"))
    assert r.status_code == 403
    assert "own agent" in r.json()["detail"]
    r = await client.get("/api/v1/agents/1002", headers=auth("supervisor"))
    assert r.json()["status"] == "logged_out"  # untouched
    # ... but its own, yes
    r = await client.post("/api/v1/agents/1001/state", json=PAUSE, headers=auth("agent"))
    assert r.status_code == 200 and r.json()["reason"] == "lunch"


async def test_wrong_scheme_and_malformed_headers_are_401(client: httpx.AsyncClient) -> None:
    token = ROLES["supervisor"]
    for header in (f"Basic {token}", f"Token {token}", "Bearer", "Bearer ", token or "",
                   f"Bearer {token}x", f"Bearer {(token or '')[:-1]}"):
        r = await client.get("/api/v1/queues", headers={"Authorization": header})
        assert r.status_code == 401, header


async def test_metrics_can_require_a_token() -> None:
    async with _client(config(metrics_auth=True)) as c:
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers=auth("agent"))).status_code == 403
        assert (await c.get("/metrics", headers=auth("supervisor"))).status_code == 200


def test_tokens_come_from_the_environment_and_are_never_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = dict(TOKENS)
    del env["ACD_TOKEN_ADMIN"]
    env["ACD_TOKEN_AGENT_1002"] = "xyz-9q"
    api = config().api
    store = TokenStore.from_config(api, env)
    assert len(store) == 2  # admin unset, agent 1002 too short
    assert "ACD_TOKEN_ADMIN is not set" in caplog.text
    assert "shorter than" in caplog.text
    for secret in (*TOKENS.values(), "xyz-9q"):
        assert secret not in caplog.text
        assert secret not in repr(store)
    who = store.authenticate(TOKENS["ACD_TOKEN_SUPERVISOR"])
    assert who is not None and who.name == "wallboard" and who.role.value == "supervisor"
    assert store.authenticate(TOKENS["ACD_TOKEN_ADMIN"]) is None
    assert store.authenticate("") is None and store.authenticate(None) is None


def test_token_config_is_checked() -> None:
    from acd.config import ConfigError, parse_config

    base = "queues: [{id: q}]\nagents: [{id: a1}]\napi:\n  tokens:\n"
    cases = {
        "    - {name: t, role: agent, env: X}\n": "needs agent",
        "    - {name: t, role: supervisor, env: X, agent: a1}\n": "only a token with role agent",
        "    - {name: t, role: agent, env: X, agent: a9}\n": "unknown agent 'a9'",
        "    - {name: t, role: admin, env: 'not a name'}\n": "api.tokens[t].env",
        "    - {name: t, role: root, env: X}\n": "api.tokens[t].role",
        "    - {name: t, role: admin, env: X}\n    - {name: t, role: admin, env: Y}\n":
            "duplicate token name",
    }
    for tokens, message in cases.items():
        with pytest.raises(ConfigError) as err:
            parse_config(base + tokens, "acd.yaml")
        assert message in str(err.value), str(err.value)
