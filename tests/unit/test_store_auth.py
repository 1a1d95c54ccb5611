"""Redis with a password and TLS, and no password in what the API shows (issue 10.6),
against real redis-servers.

* ``store.password_env``: the store and the lease authenticate; without it Redis refuses
  them (``requirepass``); a named variable that is not set stops the engine.
* ``rediss://`` with ``store.tls_ca_file``: the engine talks TLS to Redis and checks its
  certificate.
* ``GET /api/v1/config`` shows a password written into ``store.url`` as ``***``.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from acd.config import ConfigError, parse_config
from acd.domain import AgentStatus
from acd.runtime.ha import Lease
from acd.runtime.store import AgentRecord, RedisStore, redis_client, store_client
from app.node import Node
from harness.ports import SandboxPorts
from harness.redis import RedisServer
from tests.unit.conftest import ApiRig

PASSWORD = "redis-pass-0123456789abcdef"

BASE = """
fastagi: {{host: 127.0.0.1, port: 0}}
queues: [{{id: consult, skills: {{consult: 1}}}}]
agents: [{{id: a1, skills: {{consult: 1}}, contact: "sip:a1@127.0.0.1:6001"}}]
store: {{backend: redis, url: "{url}", timeout: 0.5{store}}}
{extra}
"""


def config(url: str, store: str = "", extra: str = "") -> str:
    return BASE.format(url=url, store=store, extra=extra)


async def test_the_store_and_the_lease_authenticate_with_the_password_from_env(
        tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", password=PASSWORD) as server:
        env = {"ACD_REDIS_PASSWORD": PASSWORD}
        cfg = parse_config(config(server.url, ", password_env: ACD_REDIS_PASSWORD",
                                  "ha: {node_id: one, lease_ttl: 2}"))
        async with Node(cfg, ami_secrets=None, environ=env) as node:
            for _ in range(200):
                if node.engine.accepting:
                    break
                await asyncio.sleep(0.02)
            assert node.engine.accepting and node.engine.store_loaded  # lease + load
            await node.engine.set_agent_status("a1", AgentStatus.PAUSED, "lunch")
            assert await node.engine.store_writer.drained(5)
        authed = RedisStore(store_client(cfg.store, env))
        assert (await authed.load()).agents == {"a1": AgentRecord("paused", "lunch")}
        await authed.close()
        # without the password Redis refuses store and lease alike
        anonymous = redis_client(server.url)
        with pytest.raises((AuthenticationError, ResponseError, ConnectionError)):
            await RedisStore(anonymous).load()
        with pytest.raises((AuthenticationError, ResponseError, ConnectionError)):
            await Lease(anonymous, "intruder", 2).acquire()
        await anonymous.aclose()


def test_a_password_variable_that_is_not_set_stops_the_engine() -> None:
    cfg = parse_config(config("redis://127.0.0.1:6379/0", ", password_env: ACD_REDIS_PW"))
    with pytest.raises(ConfigError, match="ACD_REDIS_PW is not set"):
        Node(cfg, ami_secrets=None, environ={})


def test_store_urls_are_redis_rediss_or_unix() -> None:
    with pytest.raises(ConfigError, match="rediss://"):
        parse_config(config("http://127.0.0.1:6379"))
    for url in ("redis://h:1/0", "rediss://h:1/0", "unix:///run/redis.sock"):
        assert parse_config(config(url)).store.url == url


def certificate(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "redis.crt", tmp / "redis.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


async def test_rediss_talks_tls_and_checks_the_certificate(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other, _ = certificate(tmp_path / "other")
    port = SandboxPorts.free().alloc(1)[0]
    with RedisServer(tmp_path / "redis", port=port, tls=(cert, key)) as server:
        assert server.tcp_url.startswith("rediss://")
        cfg = parse_config(config(server.tcp_url, f', tls_ca_file: "{cert}"'))
        async with Node(cfg, ami_secrets=None) as node:
            assert node.engine.store_loaded
            await node.engine.set_agent_status("a1", AgentStatus.PAUSED, "lunch")
            assert await node.engine.store_writer.drained(5)
        store = RedisStore(store_client(cfg.store))
        assert (await store.load()).agents["a1"] == AgentRecord("paused", "lunch")
        await store.close()
        # a certificate the configured CA did not sign is refused
        wrong = parse_config(config(server.tcp_url, f', tls_ca_file: "{other}"'))
        store = RedisStore(store_client(wrong.store))
        with pytest.raises(ConnectionError):
            await store.load()
        await store.close()
        # and plain redis:// to the TLS port gets nothing
        plain = RedisStore(redis_client(server.tcp_url.replace("rediss://", "redis://"),
                                        0.5))
        with pytest.raises((ConnectionError, TimeoutError, OSError)):
            await plain.load()
        await plain.close()


async def test_the_config_endpoint_never_shows_a_password() -> None:
    url = "redis://acd:hunter2-in-the-url@redis.internal:6379/0"
    cfg = parse_config(config(url) + "api: {tokens: [{name: ops, role: admin, env: TOK}]}\n")
    rig = ApiRig(cfg, environ={"TOK": "admin-token-0123456789abcdef"})
    # the store is never contacted: only the running configuration is read
    async with rig.app.router.lifespan_context(rig.app), rig.http:
        r = await rig.http.get("/api/v1/config",
                               headers={"Authorization": "Bearer admin-token-0123456789abcdef"})
        assert r.status_code == 200
        assert "hunter2" not in r.text
        assert r.json()["store"]["url"] == "redis://acd:***@redis.internal:6379/0"


async def test_an_acl_user_limited_to_its_key_prefix_runs_store_and_lease(
        tmp_path: Path) -> None:
    """The ACL line docs/security.md recommends: enough for the engine, nothing beyond
    its prefix."""
    with RedisServer(tmp_path / "redis") as server:
        admin = redis_client(server.url)
        await admin.execute_command(
            "ACL", "SETUSER", "acd-prod", "on", ">prod-pass-0123456789", "~acd-prod:*",
            "+@read", "+@write", "+@scripting", "+@connection", "+ping", "-@dangerous")
        env = {"ACD_REDIS_PASSWORD": "prod-pass-0123456789"}
        cfg = parse_config(config(
            server.url, ", key_prefix: acd-prod, username: acd-prod, "
                        "password_env: ACD_REDIS_PASSWORD",
            "ha: {node_id: one, lease_ttl: 2}"))
        async with Node(cfg, ami_secrets=None, environ=env) as node:
            for _ in range(200):
                if node.engine.accepting:
                    break
                await asyncio.sleep(0.02)
            assert node.engine.accepting and node.engine.store_loaded
            await node.engine.set_agent_status("a1", AgentStatus.PAUSED, "lunch")
            assert await node.engine.store_writer.drained(5)
            assert not node.engine.store_writer.failing
        assert await admin.hget("acd-prod:agents", "a1") is not None
        assert await admin.exists("acd-prod:fence_seq")
        # the same user cannot touch another deployment's keys
        other = RedisStore(store_client(cfg.store, env), "acd-other")
        with pytest.raises(ResponseError, match=r"(?i)no permissions"):
            await other.write({("agent", "a1"): AgentRecord("available")})
        await other.close()
        await admin.aclose()
