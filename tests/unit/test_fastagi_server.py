"""FastAGI server and session against a fake Asterisk fed by the recorded transcripts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from acd.protocol.agi import AGIProtocolError
from acd.runtime.fastagi import (
    AGICommandError,
    AGIHangupError,
    AGISession,
    AGITimeoutError,
    FastAGIServer,
)
from tests.unit.transcripts import load

ENV_TIMEOUT = 0.3


def agi_script(name: str) -> tuple[bytes, list[bytes]]:
    """A transcript as (environment bytes, what Asterisk sent after each of our commands)."""
    env, replies = b"", []
    for chunk in load(name):
        if chunk.dir == "send":
            replies += [b""] * chunk.data.count(b"\n")
        elif chunk.dir == "recv" and not replies:
            env += chunk.data
        elif chunk.dir == "recv":
            replies[-1] += chunk.data
    return env, replies


ENV, _ = agi_script("agi_inbound")


class FakeAsterisk:
    """Asterisk's side of one FastAGI call: connect, send the environment, answer lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.commands: list[str] = []

    @classmethod
    async def connect(cls, port: int, env: bytes = ENV) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fake = cls(reader, writer)
        await fake.send(env)
        return fake

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, within: float = 2.0) -> str:
        line = await asyncio.wait_for(self.reader.readline(), within)
        assert line.endswith(b"\n"), f"connection closed instead of a command: {line!r}"
        self.commands.append(line.decode().rstrip("\n"))
        return self.commands[-1]

    async def serve(self, replies: list[bytes]) -> None:
        for reply in replies:
            await self.command()
            await self.send(reply)

    async def closed_by_server(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.reader.read(), within) == b""
        return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Harness:
    server: FastAGIServer
    sessions: asyncio.Queue[AGISession] = field(default_factory=asyncio.Queue)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    fakes: list[FakeAsterisk] = field(default_factory=list)

    async def call(self, env: bytes = ENV) -> tuple[FakeAsterisk, AGISession]:
        fake = await self.connect(env)
        return fake, await asyncio.wait_for(self.sessions.get(), 2)

    async def connect(self, env: bytes = ENV) -> FakeAsterisk:
        fake = await FakeAsterisk.connect(self.server.port, env)
        self.fakes.append(fake)
        return fake


Handler = Callable[[AGISession], Awaitable[None]]


@contextlib.asynccontextmanager
async def running(handler: Handler | None = None) -> AsyncIterator[Harness]:
    harness: Harness

    async def park(session: AGISession) -> None:
        await harness.sessions.put(session)
        await harness.release.wait()

    harness = Harness(FastAGIServer(handler or park, "127.0.0.1", 0, env_timeout=ENV_TIMEOUT))
    await harness.server.start()
    try:
        yield harness
    finally:
        harness.release.set()
        await harness.server.close(1.0)
        for fake in harness.fakes:
            await fake.close()


@pytest.fixture
async def agi() -> AsyncIterator[Harness]:
    async with running() as harness:
        yield harness


# ------------------------------------------------------------------ happy path


async def test_replays_the_inbound_transcript_with_the_helpers(agi: Harness) -> None:
    env, replies = agi_script("agi_inbound")
    fake, session = await agi.call(env)
    assert agi.server.port != 0  # port=0 picked a real port
    assert session.env.script == "inbound"
    assert session.env.args == ("arg1", "arg 2", "ünï")
    serving = asyncio.create_task(fake.serve(replies))

    await session.answer()
    assert await session.get_variable("CALLERID(name)") == "Zoë Élan"
    assert await session.get_variable("NOT_SET_ANYWHERE") is None
    await session.set_variable("FOO", "bar baz")
    assert (await session.command('GET FULL VARIABLE "${FOO}"')).data == "bar baz-1001"
    with pytest.raises(AGICommandError) as bad:
        await session.set_music(True)  # answered 510 by the transcript
    assert bad.value.response.code == 510
    with pytest.raises(AGICommandError) as usage:
        await session.set_music(False)  # answered with the 520 usage block
    assert usage.value.response.code == 520
    await session.command('SET MUSIC ON "default"')
    await session.set_music(False)
    assert (await session.command('STREAM FILE no-such-sound ""')).fields["endpos"] == "0"
    await session.command("WAIT FOR DIGIT 50")
    assert not session.hung_up
    await session.exec("Verbose", "hello from agi")  # the reply group ends with HANGUP
    await asyncio.wait_for(session.wait_hangup(), 1)
    assert session.hung_up
    assert await session.get_variable("FOO") == "bar baz"  # works on a dead channel
    with pytest.raises(AGIHangupError, match="511"):
        await session.answer()
    await serving

    assert fake.commands == [
        "ANSWER",
        'GET VARIABLE "CALLERID(name)"',
        'GET VARIABLE "NOT_SET_ANYWHERE"',
        'SET VARIABLE "FOO" "bar baz"',
        'GET FULL VARIABLE "${FOO}"',
        "SET MUSIC ON",
        "SET MUSIC OFF",
        'SET MUSIC ON "default"',
        "SET MUSIC OFF",
        'STREAM FILE no-such-sound ""',
        "WAIT FOR DIGIT 50",
        'EXEC Verbose "hello from agi"',
        'GET VARIABLE "FOO"',
        "ANSWER",
    ]


async def test_hangup_while_idle_wakes_wait_hangup(agi: Harness) -> None:
    fake, session = await agi.call()
    waiter = asyncio.create_task(session.wait_hangup())
    await asyncio.sleep(0.05)
    assert not waiter.done() and not session.hung_up
    await fake.send(b"HANGUP\n")  # no command pending: only the reader can see it
    await asyncio.wait_for(waiter, 1)
    assert session.hung_up and not session.closed


async def test_hangup_in_the_same_read_as_the_environment(agi: Harness) -> None:
    _, session = await agi.call(ENV + b"HANGUP\n")
    await asyncio.wait_for(session.wait_hangup(), 1)


async def test_hangup_while_a_command_is_pending_then_its_reply(agi: Harness) -> None:
    env, replies = agi_script("agi_pending")
    fake, session = await agi.call(env)
    serving = asyncio.create_task(fake.serve([replies[0], b"200 result=-1\n"]))
    await session.answer()
    dial = asyncio.create_task(session.exec("Wait", "30"))
    await serving
    assert (await dial).result_int == -1
    get = asyncio.create_task(session.get_variable("AGISTATUS"))
    await fake.command()
    await fake.send(b"HANGUP\n")
    await asyncio.wait_for(session.wait_hangup(), 1)
    assert not get.done()
    await fake.send(b"200 result=0\n")
    assert await get is None


# --------------------------------------------------- timeouts and cancellation


async def test_command_timeout_then_the_next_command_gets_the_right_reply(agi: Harness) -> None:
    fake, session = await agi.call()
    first = asyncio.create_task(session.command("GET VARIABLE A", timeout=0.1))
    assert await fake.command() == "GET VARIABLE A"
    with pytest.raises(AGITimeoutError):
        await first
    with pytest.raises(TimeoutError):  # also a builtin TimeoutError
        raise AGITimeoutError("x")

    second = asyncio.create_task(session.command("GET VARIABLE B", timeout=2))
    with pytest.raises(TimeoutError):  # not pipelined: B waits until A's reply is read
        await fake.command(within=0.1)
    await fake.send(b"200 result=1 (a)\n")  # A's late reply: read and discarded
    assert await fake.command() == "GET VARIABLE B"
    await fake.send(b"200 result=1 (b)\n")
    assert (await second).data == "b"


async def test_cancel_mid_command_then_the_next_command_gets_the_right_reply(
    agi: Harness,
) -> None:
    fake, session = await agi.call()
    first = asyncio.create_task(session.exec("Dial", "PJSIP/100,20"))
    assert await fake.command() == 'EXEC Dial "PJSIP/100,20"'
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(session.get_variable("DIALSTATUS"))
    await fake.send(b"200 result=0\n")  # Dial's reply, after the cancel
    assert await fake.command() == 'GET VARIABLE "DIALSTATUS"'
    await fake.send(b"200 result=1 (CANCEL)\n")
    assert await second == "CANCEL"


async def test_cancel_while_queued_behind_another_command(agi: Harness) -> None:
    fake, session = await agi.call()
    first = asyncio.create_task(session.command("A"))
    queued = asyncio.create_task(session.command("B"))
    assert await fake.command() == "A"
    queued.cancel()
    await fake.send(b"200 result=1 (a)\n")
    assert (await first).data == "a"
    with pytest.raises(asyncio.CancelledError):
        await queued
    third = asyncio.create_task(session.command("C"))
    assert await fake.command() == "C"  # B was never sent
    await fake.send(b"200 result=1 (c)\n")
    assert (await third).data == "c"


async def test_timeout_waiting_for_an_earlier_abandoned_reply_sends_nothing(
    agi: Harness,
) -> None:
    fake, session = await agi.call()
    first = asyncio.create_task(session.command("EXEC Wait 30", timeout=0.05))
    assert await fake.command() == "EXEC Wait 30"
    with pytest.raises(AGITimeoutError):
        await first
    with pytest.raises(AGITimeoutError):
        await session.command("GET VARIABLE X", timeout=0.05)
    await fake.send(b"200 result=0\n")
    third = asyncio.create_task(session.command("GET VARIABLE Y"))
    assert await fake.command() == "GET VARIABLE Y"  # X was never written
    await fake.send(b"200 result=1 (y)\n")
    assert (await third).data == "y"


# --------------------------------------------------------- connection ending


async def test_eof_before_the_reply_raises_hangup_and_wakes_wait_hangup(agi: Harness) -> None:
    fake, session = await agi.call()
    pending = asyncio.create_task(session.command("EXEC Wait 30", timeout=None))
    await fake.command()
    await fake.close()
    with pytest.raises(AGIHangupError):
        await asyncio.wait_for(pending, 1)
    await asyncio.wait_for(session.wait_hangup(), 1)
    assert session.closed and session.hung_up
    with pytest.raises(AGIHangupError):
        await session.answer()


async def test_protocol_error_after_the_environment_closes_the_session(
    agi: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake, session = await agi.call()
    pending = asyncio.create_task(session.answer())
    await fake.command()
    await fake.send(b"this is not AGI\n")
    with pytest.raises(AGIHangupError, match="protocol error"):
        await asyncio.wait_for(pending, 1)
    assert await fake.closed_by_server(1)
    assert "protocol error" in caplog.text


async def test_illegal_command_is_refused_before_anything_is_sent(agi: Harness) -> None:
    fake, session = await agi.call()
    with pytest.raises(AGIProtocolError):
        await session.command("ANSWER\nHANGUP")
    with pytest.raises(ValueError):
        await session.exec("Dial x", "")
    answer = asyncio.create_task(session.answer())
    assert await fake.command() == "ANSWER"  # the first thing on the wire
    await fake.send(b"200 result=0\n")
    await answer


async def test_session_close_is_idempotent_and_ends_the_call(agi: Harness) -> None:
    fake, session = await agi.call()
    await session.close()
    await session.close()
    assert await fake.closed_by_server(1)
    with pytest.raises(AGIHangupError):
        await session.answer()


# ------------------------------------------------------------------ the server


async def test_empty_connection_is_closed_after_env_timeout(agi: Harness) -> None:
    start = time.monotonic()
    silent = await agi.connect(env=b"")
    assert await silent.closed_by_server(ENV_TIMEOUT + 1)
    assert ENV_TIMEOUT - 0.05 <= time.monotonic() - start < ENV_TIMEOUT + 1
    half = await agi.connect(env=b"agi_network: yes\nagi_netw")
    assert await half.closed_by_server(ENV_TIMEOUT + 1)
    assert agi.sessions.empty()
    await agi.call()  # the server still serves


async def test_garbage_is_closed_at_once(agi: Harness, caplog: pytest.LogCaptureFixture) -> None:
    start = time.monotonic()
    garbage = await agi.connect(env=b"GET / HTTP/1.1\r\nHost: acd\r\n\r\n")
    assert await garbage.closed_by_server(1)
    assert time.monotonic() - start < ENV_TIMEOUT
    assert "protocol error" in caplog.text
    eof = await agi.connect(env=b"agi_network: yes\n")
    await eof.close()  # EOF in the middle of the environment
    assert agi.sessions.empty()
    await agi.call()


async def test_handler_exception_is_logged_and_the_server_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def boom(session: AGISession) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("handler bug")

    async with running(boom) as harness:
        for _ in range(2):
            fake = await harness.connect()
            assert await fake.closed_by_server(1)  # the session is closed for it
    assert calls == 2
    assert caplog.text.count("handler failed") == 2
    assert "RuntimeError: handler bug" in caplog.text


async def test_close_drains_then_cancels_and_stops_accepting() -> None:
    finished: list[str] = []
    cancelled: list[str] = []
    forever = asyncio.Event()

    async def handler(session: AGISession) -> None:
        try:
            if session.env.script == "quick":
                await asyncio.sleep(0.1)
                finished.append("quick")
            else:
                await forever.wait()
        except asyncio.CancelledError:
            cancelled.append(session.env.script)
            raise

    server = FastAGIServer(handler, "127.0.0.1", 0, env_timeout=ENV_TIMEOUT)
    await server.start()
    port = server.port
    quick = await FakeAsterisk.connect(port, b"agi_network_script: quick\n\n")
    stuck = await FakeAsterisk.connect(port, b"agi_network_script: stuck\n\n")
    await asyncio.sleep(0.05)
    assert server.active == 2
    start = time.monotonic()
    await server.close(drain_timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 2
    assert (finished, cancelled) == (["quick"], ["stuck"])
    assert server.active == 0
    assert await stuck.closed_by_server(1)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    for fake in (quick, stuck):
        await fake.close()


async def test_env_timeout_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acd.runtime.fastagi")
    async with running() as harness:
        silent = await harness.connect(env=b"")
        assert await silent.closed_by_server(ENV_TIMEOUT + 1)
    assert "no environment within" in caplog.text


# ------------------------------------------------------------------ room for sessions


async def test_past_max_sessions_a_connection_is_closed_at_once_and_the_rest_go_on(
        ) -> None:
    async def until_hangup(session: AGISession) -> None:
        await agi.sessions.put(session)
        with contextlib.suppress(AGIHangupError, ConnectionError):
            await session.get_variable("UNANSWERED")  # ends when Asterisk hangs up

    async with running(until_hangup) as agi:
        await _past_max_sessions(agi)


async def _past_max_sessions(agi: Harness) -> None:
    agi.server.max_sessions = 2
    first, _ = await agi.call()
    await agi.call()
    third = await agi.connect()  # one too many: its Asterisk falls back at once
    assert await third.closed_by_server(1.0)
    assert agi.server.refused == 1 and agi.server.active == 2
    await first.close()  # a caller leaves: room again
    await _until(lambda: agi.server.active == 1)
    await agi.call()
    assert agi.server.active == 2


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition not reached")


def test_the_default_room_is_the_open_file_limit_less_a_reserve() -> None:
    import resource

    from acd.runtime.fastagi import FD_RESERVE, raise_file_limit, session_room

    limit = raise_file_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limit == soft and (soft == hard or hard == resource.RLIM_INFINITY)
    assert session_room() == max(16, soft - FD_RESERVE)
