"""Who may open a FastAGI session (issue 10.1): the allow list, the cap on sessions, the
per-peer connection rate, the shared secret, one live session per call id, entry times
clamped, and a silent peer logged in one line.

A real node (the product's composition root, no AMI) and the FastAGI fake of
``test_call_flow`` playing Asterisk's side. A refused connection is closed before any
command: to the dialplan an engine that cannot be reached (it retries, then app_queue).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from typing import Any

import pytest

from acd.config import Config, ConfigError, parse_config
from acd.domain import AgentStatus, CallState
from acd.runtime.agi_guard import AGIGuard, peer_address
from acd.runtime.call_flow import parse_entry_time
from acd.runtime.fastagi import AGISession
from app.node import Node
from tests.unit.test_call_flow import CONFIG, Caller, call, env, node

SECRET = "s3cret-shared-with-asterisk-0123"


def config_with(fastagi_yaml: str) -> Config:
    return parse_config(CONFIG.replace("fastagi: {host: 127.0.0.1, port: 0}",
                                       f"fastagi: {{host: 127.0.0.1, port: 0, {fastagi_yaml}}}"))


class Asterisk(Caller):
    """Asterisk with ``ACD_AGI_SECRET`` in its environment (or not)."""

    secret: str | None = None

    def reply(self, cmd: str, dial_status: str, digit: str) -> bytes:
        if cmd.startswith("GET FULL VARIABLE") and \
                shlex.split(cmd)[3] == "${ENV(ACD_AGI_SECRET)}":
            return f"200 result=1 ({self.secret or ''})\n".encode()
        return super().reply(cmd, dial_status, digit)


async def asterisk(n: Node, environment: bytes, secret: str | None) -> Asterisk:
    reader, writer = await asyncio.open_connection("127.0.0.1", n.agi_port)
    fake = Asterisk(reader, writer)
    fake.secret = secret
    await fake.send(environment)
    return fake


def refused(n: Node) -> dict[str, int]:
    return {k: v for k, v in n.agi_guard.refused.items() if v}


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and text in r.getMessage()]


# -- the allow list ------------------------------------------------------------------------


async def test_a_peer_outside_the_allow_list_is_refused_before_a_byte_is_read(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node(config_with("allow: [192.0.2.0/24]")) as n:
        callers = [await call(n, env(did="4008001234", call_id=f"x.{i}")) for i in range(5)]
        for caller in callers:
            assert await caller.closed_by_server(2.0)
            assert caller.commands == []  # not answered: the dialplan retries elsewhere
            await caller.close()
        await n.engine.flushed()
        assert not n.engine.core.calls
        assert refused(n) == {"not_allowed": 5}
        lines = warnings(caplog, "refused a session from 127.0.0.1")
        assert len(lines) == 1 and "not in fastagi.allow" in lines[0]  # bounded


async def test_the_default_allows_this_host_only() -> None:
    guard = AGIGuard(parse_config("queues: [{id: q}]").fastagi.allow)
    assert guard.allowed("127.0.0.1") and guard.allowed("::1")
    assert guard.allowed("127.0.1.2")  # all of loopback (load generators spread over it)
    assert guard.allowed("::ffff:127.0.0.1")  # IPv4-mapped
    assert not guard.allowed("10.0.0.5") and not guard.allowed("") \
        and not guard.allowed("not-an-ip")
    assert peer_address("fe80::1%eth0") is not None
    with pytest.raises(ConfigError, match="no IP address"):
        config_with("allow: [asterisk.example]")


# -- the shared secret ---------------------------------------------------------------------


async def test_with_a_secret_only_a_peer_that_knows_it_gets_a_session(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = config_with("secret_env: ACD_AGI_SECRET")
    async with node(cfg, environ={"ACD_AGI_SECRET": SECRET}) as n:
        good = await asterisk(n, env(did="4008001234", call_id="ok.1"), SECRET)
        seen = await good.play()
        assert seen[0].startswith("GET FULL VARIABLE") and seen[1] == "ANSWER"
        assert any(c.startswith("EXEC Dial") for c in seen)
        await good.close()
        for secret, why in ((SECRET + "x", "wrong ACD_AGI_SECRET"),
                            (None, "has no ACD_AGI_SECRET"), (SECRET[:-1], "wrong")):
            bad = await asterisk(n, env(did="4008001234", call_id="forged.1"), secret)
            cmd = await bad.command()
            assert cmd.startswith("GET FULL VARIABLE")
            await bad.send(bad.reply(cmd, "ANSWER", ""))
            assert await bad.closed_by_server(2.0)
            assert bad.commands == [cmd]  # nothing else: not answered, no ACD_RESULT
            await bad.close()
            assert warnings(caplog, why), why
        await n.engine.flushed()
        assert "forged.1" not in n.engine.core.calls
        assert refused(n) == {"secret": 3}
    assert SECRET[:-1] not in caplog.text  # never logged, not even in part


async def test_a_secret_named_but_not_set_stops_the_engine() -> None:
    with pytest.raises(ConfigError, match="ACD_AGI_SECRET is not set"):
        Node(config_with("secret_env: ACD_AGI_SECRET"), ami_secrets=None, environ={})


async def test_a_peer_silent_at_the_secret_check_is_refused() -> None:
    cfg = config_with("secret_env: ACD_AGI_SECRET")
    async with node(cfg, environ={"ACD_AGI_SECRET": SECRET}) as n:
        n.agi_guard.secret_timeout = 0.2
        silent = await asterisk(n, env(), None)
        await silent.command()  # asked, never answers
        assert await silent.closed_by_server(2.0)
        assert refused(n) == {"secret": 1}
        await silent.close()


# -- caps ------------------------------------------------------------------------------------


def fastagi_metrics(n: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(s.labels.items())): s.value for fam in n.registry.collect()
            for s in fam.samples if s.name.startswith("acd_fastagi")}


async def test_sessions_beyond_the_cap_are_refused_until_one_ends() -> None:
    async with node(config_with("max_sessions: 2")) as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        first = await call(n, env(did="4008001234", call_id="c.1"))
        second = await call(n, env(did="4008001234", call_id="c.2"))
        await first.play(until="SET MUSIC")
        await second.play(until="SET MUSIC")
        third = await call(n, env(did="4008001234", call_id="c.3"))
        assert await third.closed_by_server(2.0) and third.commands == []
        m = fastagi_metrics(n)
        assert m[("acd_fastagi_refused_total", (("reason", "max_sessions"),))] == 1
        await first.close()
        await asyncio.sleep(0.1)
        fourth = await call(n, env(did="4008001234", call_id="c.4"))
        assert (await fourth.play(until="SET MUSIC"))[0] == "ANSWER"
        m = fastagi_metrics(n)
        assert m[("acd_fastagi_sessions", ())] == 2
        assert m[("acd_fastagi_max_sessions", ())] == 2
        for c in (second, third, fourth):
            await c.close()


async def test_a_peer_connecting_too_fast_is_refused_beyond_its_burst() -> None:
    async with node(config_with("limits: {peer_rate: 0.5, peer_burst: 3}")) as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        callers = [await call(n, env(did="4008001234", call_id=f"r.{i}")) for i in range(5)]
        closed = [await c.closed_by_server(0.5) for c in callers]
        assert closed == [False, False, False, True, True]
        assert refused(n) == {"peer_rate": 2}
        for c in callers:
            await c.close()


# -- one live session per call -----------------------------------------------------------------


async def test_a_second_session_for_a_live_call_is_refused_and_the_first_keeps_it(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node() as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        real = await call(n, env(did="4008001234", call_id="live.1"))
        await real.play(until="SET MUSIC")
        await asyncio.sleep(0.05)
        await n.engine.flushed()
        assert n.engine.core.calls["live.1"].state is CallState.WAITING
        # a forged session reuses the live call's id (it would answer Dial with NOANSWER)
        forged = await call(n, env(did="4008001234", call_id="live.1"))
        assert await forged.closed_by_server(2.0) and forged.commands == []
        await forged.close()
        assert warnings(caplog, "second FastAGI session")
        await asyncio.sleep(0.05)
        await n.engine.flushed()
        assert n.engine.core.calls["live.1"].state is CallState.WAITING  # not hung up
        # the agent comes: the real caller is the one rung
        await n.engine.set_agent_status("a1", AgentStatus.AVAILABLE)
        seen = await real.play()
        assert any(c.startswith("EXEC Dial") for c in seen)
        assert n.engine.refused_sessions == 1
        samples = {tuple(s.labels.items()): s.value for fam in n.registry.collect()
                   for s in fam.samples if s.name == "acd_fastagi_refused_total"}
        assert samples[(("reason", "duplicate_call"),)] == 1
        await real.close()


async def test_a_retry_after_the_first_session_is_gone_is_taken() -> None:
    async with node() as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        first = await call(n, env(did="4008001234", call_id="again.1"))
        await first.play(until="SET MUSIC")
        first.writer.close()  # Asterisk's side went away (the AGI ended)
        second = await call(n, env(did="4008001234", call_id="again.1"))
        assert (await second.play(until="SET MUSIC"))[0] == "ANSWER"
        await second.close()


# -- entry times ------------------------------------------------------------------------------


def test_entry_times_are_clamped_not_trusted() -> None:
    now = 1_000_000.0
    assert parse_entry_time(str(now - 30), now) == now - 30
    assert parse_entry_time(str(now - 86_000), now, max_age=600) == now - 600
    assert parse_entry_time(str(now + 3600), now) == now
    for junk in ("", "nan", "inf", "-inf", "yesterday", None):
        assert parse_entry_time(junk, now) == now


async def test_a_forged_old_entry_time_does_not_jump_the_queue(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = config_with("max_entry_age: 600")
    # callers who "waited" before the engine started: not a restart, no restart hold
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"restore_grace": 0})})
    async with node(cfg) as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        now = time.time()
        honest = await call(n, env(did="4008001234", call_id="h.1", entry=now - 900))
        await honest.play(until="SET MUSIC")
        forged = await call(n, env(did="4008001234", call_id="f.1", entry=now - 86_000))
        await forged.play(until="SET MUSIC")
        future = await call(n, env(did="4008001234", call_id="t.1", entry=now + 3600))
        await future.play(until="SET MUSIC")
        await asyncio.sleep(0.05)
        await n.engine.flushed()
        calls = n.engine.core.calls
        assert now - 601 <= calls["h.1"].entry_time <= now - 599  # clamped too
        assert now - 601 <= calls["f.1"].entry_time <= now - 599
        assert calls["t.1"].entry_time <= time.time()
        assert warnings(caplog, "more than fastagi.max_entry_age")
        assert warnings(caplog, "in the future")
        for c in (honest, forged, future):
            await c.close()


# -- a silent peer ----------------------------------------------------------------------------


async def test_a_session_silent_after_its_environment_logs_one_warning(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    command = AGISession.command

    async def quick(self: AGISession, cmd: str, timeout: float | None = 10.0) -> Any:  # noqa: ASYNC109
        return await command(self, cmd, 0.2)

    monkeypatch.setattr(AGISession, "command", quick)
    caplog.set_level(logging.DEBUG)
    async with node() as n:
        silent = await call(n, env(did="4008001234", call_id="mute.1"))
        assert await silent.command() == "ANSWER"  # and then nothing
        assert await silent.closed_by_server(3.0)
        await silent.close()
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == []
    lines = warnings(caplog, "stopped answering")
    assert len(lines) == 1 and "mute.1" in lines[0] and "127.0.0.1" in lines[0]
