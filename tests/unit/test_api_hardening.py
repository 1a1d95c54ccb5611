"""The API's doors (issue 10.2, 10.12, 10.13): the body limit before routing and auth,
security headers on every response, the OpenAPI pages behind a setting, no probing of
other agents' calls, failed authentications counted, logged at a bounded rate and
throttled per client, and HTTPS with uvicorn's own TLS.

Through httpx's ASGI transport where the app is enough, and through a real uvicorn
socket where the wire matters (a Content-Length nobody sends, TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI

from acd.config import Config
from api.server import serving
from api.ws import CLOSE_THROTTLED, CLOSE_UNAUTHORIZED
from tests.unit.conftest import ApiRig

TOKENS = {"ACD_TOKEN_SUPERVISOR": "supervisor-token-0123456789",
          "ACD_TOKEN_AGENT_1001": "agent-1001-token-0123456789",
          "ACD_TOKEN_AGENT_1002": "agent-1002-token-0123456789"}
SUPERVISOR = {"Authorization": f"Bearer {TOKENS['ACD_TOKEN_SUPERVISOR']}"}
AGENT = {"Authorization": f"Bearer {TOKENS['ACD_TOKEN_AGENT_1001']}"}
LIMIT = 4096
HEALTHCHECK = Path(__file__).resolve().parents[2] / "deploy" / "engine" / "healthcheck.py"


def config(**api: Any) -> Config:
    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}}],
        "agents": [{"id": "1001", "skills": {"consult": 1}, "status": "logged_out"},
                   {"id": "1002", "skills": {"consult": 1}, "status": "logged_out"}],
        "api": {"tokens": [
            {"name": "wallboard", "role": "supervisor", "env": "ACD_TOKEN_SUPERVISOR"},
            {"name": "agent-1001", "role": "agent", "agent": "1001",
             "env": "ACD_TOKEN_AGENT_1001"},
            {"name": "agent-1002", "role": "agent", "agent": "1002",
             "env": "ACD_TOKEN_AGENT_1002"}],
            "limits": {"max_body_bytes": LIMIT, "auth_failures": 3,
                       "auth_failure_refill": 60}, **api},
    })


@contextlib.asynccontextmanager
async def rig(**api: Any) -> AsyncIterator[ApiRig]:
    async with ApiRig(config(**api), environ=TOKENS) as r:
        yield r


def client(app: FastAPI, address: str = "192.0.2.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 4000)),
                             base_url="http://acd.test")


# -- the body limit ----------------------------------------------------------------------


async def test_an_announced_oversized_body_is_refused_before_it_is_read() -> None:
    """A client announces 200 MiB and sends nothing: 413 at once, with no token, before
    the route or the token is looked at (the old app read the whole body first)."""
    async with rig() as r, serving(r.app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /api/v1/agents/1001/state HTTP/1.1\r\nHost: acd\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 209715200\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 413 ")
        body = json.loads(await asyncio.wait_for(reader.read(), 2))
        assert body["error"] == "payload_too_large"
        writer.close()
        metrics = (await r.http.get("/metrics")).text
        assert 'acd_api_requests_refused_total{reason="body_too_large"} 1.0' in metrics


async def test_a_streamed_body_without_length_is_cut_at_the_limit() -> None:
    """Chunked transfer, no Content-Length: refused once the limit is passed, whatever
    the token, and the route never runs."""
    seen: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            seen.append(1)
            yield b"x" * 1024

    async with rig() as r:
        for http in (r.http, client(r.app)):
            seen.clear()
            resp = await http.post("/api/v1/agents/1001/state", content=chunks(),
                                   headers={**SUPERVISOR, "Content-Type": "application/json"})
            assert "content-length" not in resp.request.headers
            assert resp.status_code == 413, resp.text
            assert resp.json()["error"] == "payload_too_large"
            assert len(seen) <= LIMIT // 1024 + 2  # stopped reading at the limit
        # over a real socket, chunked, with no token at all: 413 (not 401) once the
        # limit is passed, while the client is still sending
        async with serving(r.app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /api/v1/agents/1001/state HTTP/1.1\r\nHost: acd\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(LIMIT // 1024 + 1):
                writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 413 "), head
            writer.close()
        assert r.engine.core.agents["1001"].status.value == "logged_out"


async def test_a_command_within_the_limit_goes_through() -> None:
    async with rig() as r:
        resp = await r.http.post("/api/v1/agents/1001/state", json={"action": "ready"},
                                 headers=SUPERVISOR)
        assert resp.status_code == 200 and resp.json()["status"] == "available"
        body = {"action": "pause", "reason": "lunch", "pad": "x" * (LIMIT - 100)}
        resp = await r.http.post("/api/v1/agents/1001/state", json=body, headers=SUPERVISOR)
        assert resp.status_code == 422  # read and validated: an unknown field


# -- security headers ---------------------------------------------------------------------


async def test_security_headers_on_every_response() -> None:
    async with rig() as r:
        @r.app.get("/boom", include_in_schema=False)
        async def fail() -> None:
            raise RuntimeError("a bug")

        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=r.app,
                                                               raise_app_exceptions=False),
                                 base_url="http://acd.test")
        responses = {
            "healthz": await http.get("/healthz"),
            "metrics": await http.get("/metrics"),
            "wallboard": await http.get("/"),
            "script": await http.get("/wallboard.js"),
            "401": await http.get("/api/v1/queues"),
            "200": await http.get("/api/v1/queues", headers=SUPERVISOR),
            "404": await http.get("/nowhere"),
            "405": await http.delete("/healthz"),
            "413": await http.post("/api/v1/agents/1001/state", content=b"x" * (LIMIT + 1)),
            "422": await http.post("/api/v1/agents/1001/state", json={},
                                   headers=SUPERVISOR),
            "500": await http.get("/boom"),
        }
        for what, resp in responses.items():
            h = resp.headers
            assert h["x-content-type-options"] == "nosniff", what
            assert h["x-frame-options"] == "DENY", what
            assert h["referrer-policy"] == "no-referrer", what
            assert h["cross-origin-resource-policy"] == "same-origin", what
            assert h["cache-control"] == "no-store", what
            assert "content-security-policy" in h, what
            assert "strict-transport-security" not in h, what  # plain HTTP here
        assert responses["500"].status_code == 500
        # the wallboard keeps its own policy (its script and WebSocket)
        assert "script-src 'self'" in responses["wallboard"].headers["content-security-policy"]
        assert responses["401"].headers["content-security-policy"] == \
            "default-src 'none'; frame-ancestors 'none'"
        await http.aclose()


# -- the OpenAPI pages ---------------------------------------------------------------------


@pytest.mark.parametrize(("host", "docs", "served"), [
    ("127.0.0.1", None, True), ("::1", None, True), ("localhost", None, True),
    ("0.0.0.0", None, False), ("192.0.2.7", None, False),
    ("0.0.0.0", True, True), ("127.0.0.1", False, False)])
async def test_docs_and_schema_only_on_loopback_unless_configured(
        host: str, docs: bool | None, served: bool) -> None:
    extra: dict[str, Any] = {"host": host}
    if docs is not None:
        extra["docs"] = docs
    async with rig(**extra) as r:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert ((await r.http.get(path)).status_code == 200) is served, path
        assert (await r.http.get("/healthz")).status_code == 200


# -- no probing ------------------------------------------------------------------------------


async def test_an_agent_gets_the_same_answer_for_another_agents_call_and_no_call() -> None:
    async with rig() as r:
        offers = r.engine.open_session("held-by-1002")
        r.arrive("held-by-1002")
        await r.http.post("/api/v1/agents/1002/state", json={"action": "ready"},
                          headers=SUPERVISOR)
        assert (await asyncio.wait_for(offers.get(), 1)).agent_id == "1002"
        # the supervisor sees it
        assert (await r.http.get("/api/v1/calls/held-by-1002",
                                 headers=SUPERVISOR)).status_code == 200
        for suffix in ("", "/explanation"):
            theirs = await r.http.get(f"/api/v1/calls/held-by-1002{suffix}", headers=AGENT)
            nothing = await r.http.get(f"/api/v1/calls/no-such-call{suffix}",
                                       headers=AGENT)
            assert theirs.status_code == nothing.status_code == 404
            assert theirs.json()["error"] == nothing.json()["error"] == "unknown_call"
            assert theirs.json()["detail"].replace("held-by-1002", "ID") == \
                nothing.json()["detail"].replace("no-such-call", "ID")
            assert dict(theirs.headers) == dict(nothing.headers)


# -- failed authentication -------------------------------------------------------------------


async def test_failed_auth_is_counted_logged_at_a_bounded_rate_and_throttled(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="acd.api")
    async with rig() as r:
        guesser, other = client(r.app, "192.0.2.66"), client(r.app, "192.0.2.77")
        for i in range(3):  # the burst: each unknown token is looked at (401)
            resp = await guesser.get("/api/v1/queues",
                                     headers={"Authorization": f"Bearer guess-{i:020d}"})
            assert resp.status_code == 401
        # now even the right token is not looked at from that client
        resp = await guesser.get("/api/v1/queues", headers=SUPERVISOR)
        assert resp.status_code == 429 and resp.json()["error"] == "too_many_requests"
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        # other clients are not affected; a missing token is counted, never throttled
        assert (await other.get("/api/v1/queues", headers=SUPERVISOR)).status_code == 200
        for _ in range(5):
            assert (await other.get("/api/v1/queues")).status_code == 401
        assert (await other.get("/api/v1/queues", headers=SUPERVISOR)).status_code == 200

        metrics = (await r.http.get("/metrics")).text
        assert 'acd_api_auth_failures_total{reason="invalid"} 3.0' in metrics
        assert 'acd_api_auth_failures_total{reason="missing"} 5.0' in metrics
        assert 'acd_api_auth_failures_total{reason="throttled"} 1.0' in metrics
        lines = [rec.getMessage() for rec in caplog.records
                 if "failed authentication" in rec.getMessage()]
        # one line per client within the minute, not one per attempt
        assert len(lines) == 2, lines
        assert "192.0.2.66" in lines[0] and "192.0.2.77" in lines[1]
        for secret in TOKENS.values():
            assert secret not in caplog.text
        assert "guess-" not in caplog.text
        await guesser.aclose()
        await other.aclose()


async def test_the_event_stream_counts_and_throttles_failed_auth_too() -> None:
    async with rig() as r, serving(r.app) as server:
        url = f"ws://127.0.0.1:{server.port}/api/v1/events"
        codes = []
        for i in range(4):
            async with websockets.connect(
                    url, subprotocols=["acd.v1", f"bearer.guess-{i:020d}"]) as ws:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 2)
                codes.append(ws.close_code)
        assert codes == [CLOSE_UNAUTHORIZED] * 3 + [CLOSE_THROTTLED]
        assert r.app.state.acd.failed_auth.counts["invalid"] == 3


# -- TLS ----------------------------------------------------------------------------------


def self_signed(tmp: Path) -> tuple[str, str]:
    cert, key = tmp / "api.crt", tmp / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return str(cert), str(key)


async def test_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with rig(tls_cert=cert, tls_key=key) as r:
        api = r.config.api
        assert api is not None
        async with serving(r.app, tls_cert=api.tls_cert, tls_key=api.tls_key) as server:
            trust = ssl.create_default_context(cafile=cert)
            async with httpx.AsyncClient(verify=trust) as http:
                resp = await http.get(f"https://127.0.0.1:{server.port}/api/v1/queues",
                                      headers=SUPERVISOR)
                assert resp.status_code == 200
                assert resp.headers["strict-transport-security"].startswith("max-age=")
            async with httpx.AsyncClient() as http:  # plain HTTP gets nothing useful
                with pytest.raises(httpx.HTTPError):
                    await http.get(f"http://127.0.0.1:{server.port}/healthz")


def test_tls_needs_both_files() -> None:
    from acd.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"tls_cert and api\.tls_key"):
        parse_config("queues: [{id: q}]\napi: {tls_cert: /etc/acd/api.crt}\n")


async def test_the_container_health_check_speaks_https_when_the_api_does(
        tmp_path: Path) -> None:
    import os
    import sys

    cert, key = self_signed(tmp_path)
    async with rig(tls_cert=cert, tls_key=key) as r, serving(
            r.app, tls_cert=cert, tls_key=key) as server:
        cfg = tmp_path / "acd.yaml"
        cfg.write_text(f"queues: [{{id: q}}]\napi: {{host: 127.0.0.1, port: {server.port}, "
                       f"tls_cert: {cert}, tls_key: {key}}}\n")
        check = HEALTHCHECK
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(check), env={**os.environ, "ACD_CONFIG": str(cfg)},
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
