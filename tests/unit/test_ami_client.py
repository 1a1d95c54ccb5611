"""AMI client against a fake Asterisk whose replies come from the recorded transcript."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from acd.protocol.ami import AMIEvent, AMIProtocolError
from acd.runtime.ami_client import (
    AMIActionError,
    AMIClient,
    AMIConnectionLostError,
    AMINotConnectedError,
    AMITimeoutError,
)
from acd.runtime.backoff import ConstantBackoff
from tests.unit.transcripts import received

SECRET = "pa55-w0rd-never-logged"
DROP = b"<drop the connection>"


def recorded_blocks() -> dict[str, list[bytes]]:
    """The session transcript's messages, grouped by ActionID (``""`` for none)."""
    data = received("ami_session")
    data = data[data.index(b"\r\n") + 2 :]  # skip the banner
    groups: dict[str, list[bytes]] = {}
    for block in data.split(b"\r\n\r\n"):
        if block:
            aid = next(
                (ln[10:].decode() for ln in block.split(b"\r\n") if ln.startswith(b"ActionID: ")),
                "",
            )
            groups.setdefault(aid, []).append(block + b"\r\n\r\n")
    return groups


RECORDED = recorded_blocks()


def recorded_reply(recorded_id: str) -> Callable[[dict[str, str]], bytes]:
    """Reply with what Asterisk answered to ``recorded_id``, under the new ActionID."""
    blocks = [b for b in RECORDED[recorded_id] if not b.startswith(b"Event: OriginateResponse")]
    raw = b"".join(blocks)
    return lambda action: raw.replace(
        f"ActionID: {recorded_id}\r\n".encode(), f"ActionID: {action['ActionID']}\r\n".encode()
    )


class FakeAMI:
    """Asterisk's side of AMI: a banner, then one reply per action (None: stay silent)."""

    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        login = recorded_reply("rec-1")
        boot_events = b"".join(RECORDED[""][:2])  # FullyBooted, SuccessfulAuth
        self.on: dict[str, Callable[[dict[str, str]], bytes | None]] = {
            "Login": lambda action: login(action) + boot_events,
            "Ping": recorded_reply("rec-2"),
            "DeviceStateList": recorded_reply("rec-5"),
            "CoreShowChannels": recorded_reply("rec-11"),
            "Status": recorded_reply("rec-8"),
            "Originate": recorded_reply("rec-10"),
            "Logoff": recorded_reply("rec-19"),
        }

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while not writer.is_closing():
                block = (await reader.readuntil(b"\r\n\r\n")).decode()
                action = dict(ln.split(": ", 1) for ln in block.split("\r\n") if ln)
                self.actions.append(action)
                reply = self.on.get(action["Action"], recorded_reply("rec-7"))(action)
                if reply == DROP:
                    writer.close()
                elif reply:
                    writer.write(reply)
        writer.close()

    def named(self, name: str) -> list[dict[str, str]]:
        return [a for a in self.actions if a["Action"] == name]

    def push(self, data: bytes) -> None:
        """Unsolicited bytes (events) to every live connection."""
        for writer in self.writers:
            if not writer.is_closing():
                writer.write(data)

    def drop(self) -> None:
        for writer in self.writers:
            writer.close()

    async def close(self) -> None:
        self.server.close()
        self.drop()
        for writer in self.writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self.server.wait_closed()


class RecordingBackoff(ConstantBackoff):
    def __init__(self) -> None:
        super().__init__(0.01)
        self.calls: list[int] = []

    def compute(self, failures: int) -> float:
        self.calls.append(failures)
        return super().compute(failures)


class Recorder:
    def __init__(self) -> None:
        self.events: list[AMIEvent] = []
        self.connects = 0
        self.disconnects = 0


async def until(predicate: Callable[[], bool], limit: float = 2.0) -> None:
    """Poll ``predicate`` (a test helper: the client exposes no event for everything)."""
    for _ in range(int(limit / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAMI]:
    server = FakeAMI()
    await server.start()
    yield server
    await server.close()


@contextlib.asynccontextmanager
async def client_for(fake: FakeAMI, **kwargs: Any) -> AsyncIterator[tuple[AMIClient, Recorder]]:
    rec = Recorder()

    async def on_connect() -> None:
        rec.connects += 1

    def on_disconnect() -> None:
        rec.disconnects += 1

    options: dict[str, Any] = {
        "on_event": rec.events.append,
        "on_connect": on_connect,
        "on_disconnect": on_disconnect,
        "backoff": ConstantBackoff(0.01),
        "connect_timeout": 1.0,
        "action_timeout": 1.0,
        "ping_interval": 5.0,
    }
    options.update(kwargs)
    client = AMIClient(
        "127.0.0.1", fake.server.sockets[0].getsockname()[1], "acd", SECRET, **options
    )
    await client.start()
    try:
        yield client, rec
    finally:
        await client.close()


# ------------------------------------------------------------------ happy path


async def test_login_then_on_connect_resyncs_before_connected(fake: FakeAMI) -> None:
    states: dict[str, str] = {}
    seen_connected: list[bool] = []
    client: AMIClient

    async def resync() -> None:
        seen_connected.append(client.connected)
        _, items = await client.list_action("DeviceStateList")
        states.update((e.get("Device") or "", e.get("State") or "") for e in items[:-1])

    async with client_for(fake, on_connect=resync, events="call,agent") as (client, _):
        await client.wait_connected(2)
        assert client.connected and client.version == "11.0.0"
    assert seen_connected == [False]  # on_connect runs before the state is trusted
    assert states == {"Custom:agent1": "INUSE", "Custom:agent2": "NOT_INUSE"}
    login = fake.actions[0]
    assert (login["Action"], login["Username"], login["Secret"]) == ("Login", "acd", SECRET)
    assert login["Events"] == "call,agent"
    assert fake.named("Logoff")  # close() logs off politely


async def test_list_action_collects_recorded_core_show_channels(fake: FakeAMI) -> None:
    async with client_for(fake) as (client, _):
        await client.wait_connected(2)
        response, events = await client.list_action("CoreShowChannels")
        assert response.get("EventList") == "start"
        assert [e.name for e in events] == [
            "CoreShowChannel",
            "CoreShowChannel",
            "CoreShowChannelsComplete",
        ]
        assert events[1].get("CallerIDName") == "Zoë Élan"
        with pytest.raises(AMIActionError, match="No such channel"):
            await client.list_action("Status", {"Channel": "PJSIP/nope-00000000"})


async def test_action_error_and_plain_action(fake: FakeAMI) -> None:
    async with client_for(fake) as (client, _):
        await client.wait_connected(2)
        with pytest.raises(AMIActionError, match="Invalid/unknown command") as err:
            await client.action("NoSuchAction")
        assert err.value.response.response == "Error"
        pong = await client.action("Ping")
        assert pong.get("Ping") == "Pong"


async def test_events_reach_on_event_and_a_failing_callback_does_not_kill_the_reader(
    fake: FakeAMI, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def on_event(event: AMIEvent) -> None:
        seen.append(event.name)
        if event.name == "Newchannel":
            raise RuntimeError("engine bug")

    async with client_for(fake, on_event=on_event) as (client, _):
        await client.wait_connected(2)
        fake.push(b"".join(RECORDED[""][3:6]))  # recorded unsolicited events
        await until(lambda: len(seen) == 5)
        assert (await client.action("Ping")).get("Ping") == "Pong"  # the reader is alive
    assert seen == ["FullyBooted", "SuccessfulAuth", "Newchannel", "Newchannel", "Newexten"]
    assert caplog.text.count("on_event callback failed for Newchannel") == 2


async def test_action_ids_are_unique(fake: FakeAMI) -> None:
    async with client_for(fake) as (client, _):
        await client.wait_connected(2)
        await asyncio.gather(*(client.action("Ping") for _ in range(20)))
    ids = [a["ActionID"] for a in fake.actions]
    assert len(ids) == len(set(ids))
    assert len({i.rsplit("-", 1)[0] for i in ids}) == 1  # one prefix per client


async def test_header_injection_is_refused_and_nothing_is_sent(fake: FakeAMI) -> None:
    async with client_for(fake) as (client, _):
        await client.wait_connected(2)
        sent_before = len(fake.actions)
        with pytest.raises(AMIProtocolError):
            await client.action("Originate", {"Channel": "Local/x\r\nAction: Hangup"})
        await client.action("Ping")
        assert [a["Action"] for a in fake.actions[sent_before:]] == ["Ping"]


# ----------------------------------------------------------------- reconnecting


async def test_reconnects_with_backoff_and_resyncs_after_the_server_drops(
    fake: FakeAMI,
) -> None:
    backoff = RecordingBackoff()
    async with client_for(fake, backoff=backoff) as (client, rec):
        await client.wait_connected(2)
        fake.drop()
        await until(lambda: rec.disconnects == 1)
        await until(lambda: rec.connects == 2 and client.connected)
        assert backoff.calls == [1]  # failures reset after a good connection
        fake.drop()
        await until(lambda: rec.connects == 3 and client.connected)
        assert backoff.calls == [1, 1]
        assert (rec.connects, rec.disconnects) == (3, 2)
    assert fake.connections == 3
    assert len(fake.named("Login")) == 3


async def test_on_down_once_per_down_period(fake: FakeAMI) -> None:
    downs: list[float] = []
    login_ok = fake.on["Login"]
    fake.on["Login"] = lambda action: DROP  # the first attempts fail
    async with client_for(fake, on_down=lambda: downs.append(time.monotonic())) as (
            client, rec):
        await until(lambda: fake.connections >= 3)
        assert len(downs) == 1  # three failed attempts, one report
        fake.on["Login"] = login_ok
        await client.wait_connected(2)
        fake.drop()
        await until(lambda: rec.disconnects == 1 and client.connected)
        assert len(downs) == 2  # lost after being up: reported again


async def test_action_in_flight_fails_on_drop_and_is_never_resent(fake: FakeAMI) -> None:
    fake.on["Originate"] = lambda action: DROP  # Asterisk dies before answering
    async with client_for(fake) as (client, rec):
        await client.wait_connected(2)
        with pytest.raises(AMIConnectionLostError):
            await client.action("Originate", [("Channel", "Local/s@test"), ("Async", "true")])
        await until(lambda: rec.connects == 2 and client.connected)
        fake.on["Originate"] = recorded_reply("rec-10")
        await client.action("Ping")  # the new connection works...
        await asyncio.sleep(0.05)
    assert len(fake.named("Originate")) == 1  # ...and the Originate was not replayed


async def test_list_action_in_flight_fails_on_drop(fake: FakeAMI) -> None:
    fake.on["DeviceStateList"] = lambda action: None  # silent, then we drop
    async with client_for(fake) as (client, _):
        await client.wait_connected(2)
        pending = asyncio.create_task(client.list_action("DeviceStateList"))
        await until(lambda: bool(fake.named("DeviceStateList")))
        fake.drop()
        with pytest.raises(AMIConnectionLostError):
            await pending
    assert len(fake.named("DeviceStateList")) == 1


async def test_not_connected_before_start_and_while_down(fake: FakeAMI) -> None:
    client = AMIClient("127.0.0.1", 1, "acd", SECRET, on_event=lambda e: None)
    with pytest.raises(AMINotConnectedError):
        await client.action("Ping")
    async with client_for(fake, backoff=ConstantBackoff(0.5)) as (client, rec):
        await client.wait_connected(2)
        fake.drop()
        await until(lambda: rec.disconnects == 1)
        assert not client.connected
        with pytest.raises(AMINotConnectedError):
            await client.action("Originate", {"Channel": "Local/s@test"})
    assert not fake.named("Originate")


async def test_wait_connected_times_out_when_nothing_listens() -> None:
    client = AMIClient(
        "127.0.0.1",
        1,
        "acd",
        SECRET,
        on_event=lambda e: None,
        backoff=ConstantBackoff(0.05),
        connect_timeout=0.2,
    )
    await client.start()
    try:
        with pytest.raises(AMITimeoutError):
            await client.wait_connected(0.3)
    finally:
        await client.close()


async def test_login_failure_is_retried_and_the_secret_is_never_logged(
    fake: FakeAMI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login_ok = fake.on["Login"]
    fake.on["Login"] = lambda action: recorded_reply("rec-7")(action).replace(
        b"Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show "
        b"available commands.",
        b"Authentication failed",
    )
    backoff = RecordingBackoff()
    async with client_for(fake, backoff=backoff) as (client, rec):
        await until(lambda: len(fake.named("Login")) >= 2)
        assert rec.connects == 0 and not client.connected
        fake.on["Login"] = login_ok
        await client.wait_connected(2)
        assert SECRET not in repr(client)
    assert backoff.calls[:2] == [1, 2]  # consecutive failures grow the delay
    assert "Authentication failed" in caplog.text
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


async def test_ping_detects_a_silent_peer(fake: FakeAMI) -> None:
    fake.on["Ping"] = lambda action: None  # a hung Asterisk: TCP up, no answers
    async with client_for(fake, ping_interval=0.05, action_timeout=0.1) as (client, rec):
        await client.wait_connected(2)
        await until(lambda: rec.disconnects >= 1 and fake.connections >= 2)


async def test_on_connect_failure_drops_the_connection_and_retries(
    fake: FakeAMI, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = 0
    client: AMIClient

    async def flaky_resync() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("resync failed")

    async with client_for(fake, on_connect=flaky_resync) as (client, rec):
        await client.wait_connected(2)
        assert attempts == 2 and fake.connections == 2
        assert rec.disconnects == 0  # never declared connected, so never "disconnected"
    assert "on_connect failed" in caplog.text


async def test_timed_out_action_late_reply_is_dropped(fake: FakeAMI) -> None:
    late: list[bytes] = []

    def silent(action: dict[str, str]) -> None:
        late.append(recorded_reply("rec-9")(action))

    fake.on["Getvar"] = silent
    async with client_for(fake) as (client, rec):
        await client.wait_connected(2)
        with pytest.raises(AMITimeoutError):
            await client.action("Getvar", {"Variable": "X"}, timeout=0.05)
        fake.push(late[0])  # the reply shows up after the caller gave up
        assert (await client.action("Ping")).get("Ping") == "Pong"
        assert client.connected
    assert not [e for e in rec.events if e.action_id == fake.named("Getvar")[0]["ActionID"]]


async def test_close_stops_reconnecting_and_fails_pending_actions(fake: FakeAMI) -> None:
    fake.on["Originate"] = lambda action: None
    async with client_for(fake) as (client, _):
        await client.wait_connected(2)
        pending = asyncio.create_task(client.action("Originate", {"Channel": "Local/s@test"}))
        await until(lambda: bool(fake.named("Originate")))
        await client.close()
        with pytest.raises(AMIConnectionLostError):
            await pending
        assert not client.connected
        with pytest.raises(AMINotConnectedError):
            await client.action("Ping")
    await asyncio.sleep(0.05)
    assert fake.connections == 1
