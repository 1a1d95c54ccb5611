"""The engine's AMI resync against a fake Asterisk: restart detection, agents already in a
conversation, and a reader that never waits for the engine's inbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from acd.config import parse_config
from acd.config.settings import settings_from
from acd.domain import CallArrived, CallHungUp, DeviceSnapshot, DeviceStateChanged
from acd.runtime.ami_client import AMIClient
from acd.runtime.asterisk import AsteriskLink
from acd.runtime.backoff import ConstantBackoff
from acd.runtime.engine import Engine
from app.node import Node
from tests.unit.conftest import make_core
from tests.unit.test_ami_client import FakeAMI

CONFIG = """
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 3, sl_target: 20}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@127.0.0.1:6001"}
  - {id: a2, endpoint: agent2, skills: {consult: 1}, contact: "sip:agent2@127.0.0.1:6002"}
"""


def _block(*headers: tuple[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"


class Asterisk(FakeAMI):
    """FakeAMI with the resync actions scripted: device states, channels, start time."""

    def __init__(self) -> None:
        super().__init__()
        self.devices = {"PJSIP/agent1": "NOT_INUSE", "PJSIP/agent2": "NOT_INUSE"}
        self.channels: list[tuple[str, str]] = []
        self.started = ("2026-11-23", "13:00:00")
        self.on["DeviceStateList"] = self._device_list
        self.on["CoreShowChannels"] = self._channels
        self.on["CoreStatus"] = self._core_status
        self.on["Getvar"] = self._getvar
        #: What ``DEVICE_STATE(...)`` says of devices not in Asterisk's cache (never
        #: changed since start: DeviceStateList leaves them out); others are INVALID.
        self.uncached: dict[str, str] = {}

    def _list(self, aid: str, items: list[bytes], complete: str) -> bytes:
        return (_block(("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                       ("Message", "will follow"))
                + b"".join(items)
                + _block(("Event", complete), ("ActionID", aid), ("EventList", "Complete"),
                         ("ListItems", str(len(items)))))

    def _device_list(self, action: dict[str, str]) -> bytes:
        aid = action["ActionID"]
        return self._list(aid, [
            _block(("Event", "DeviceStateChange"), ("ActionID", aid), ("Device", d),
                   ("State", s)) for d, s in self.devices.items()
        ], "DeviceStateListComplete")

    def _channels(self, action: dict[str, str]) -> bytes:
        aid = action["ActionID"]
        return self._list(aid, [
            _block(("Event", "CoreShowChannel"), ("ActionID", aid), ("Channel", ch),
                   ("ChannelStateDesc", st)) for ch, st in self.channels
        ], "CoreShowChannelsComplete")

    def _getvar(self, action: dict[str, str]) -> bytes:
        variable = action["Variable"]
        device = variable.removeprefix("DEVICE_STATE(").removesuffix(")")
        value = self.devices.get(device) or self.uncached.get(device, "INVALID")
        return _block(("Response", "Success"), ("ActionID", action["ActionID"]),
                      ("Variable", variable), ("Value", value))

    def _core_status(self, action: dict[str, str]) -> bytes:
        return _block(("Response", "Success"), ("ActionID", action["ActionID"]),
                      ("CoreStartupDate", self.started[0]),
                      ("CoreStartupTime", self.started[1]), ("CoreCurrentCalls", "0"))


@pytest.fixture
async def asterisk() -> AsyncIterator[tuple[Asterisk, int]]:
    fake = Asterisk()
    port = await fake.start()
    yield fake, port
    await fake.close()


def _engine(port: int) -> AsteriskLink:
    """An engine whose AMI link talks to the fake; its inbox is NOT consumed, so the test
    sees exactly what the AMI side posted."""
    engine = Engine(settings_from(parse_config(CONFIG)))
    link = AsteriskLink(engine, "main")
    link.client = AMIClient("127.0.0.1", port, "acd", "secret", on_event=link.on_event,
                            on_connect=link.resync, on_down=link.down,
                            backoff=ConstantBackoff(0.01), ping_interval=30)
    engine.amis["main"] = link.client
    return link


def _drain(engine: Engine) -> list[object]:
    out = []
    while not engine.inbox.empty():
        out.append(engine.inbox.get_nowait())
    return out


async def test_agent_phone_in_a_conversation_is_in_use_even_if_device_state_lags(
        asterisk: tuple[Asterisk, int]) -> None:
    fake, port = asterisk
    fake.channels = [("PJSIP/agent1-0000002a", "Up"), ("PJSIP/agent2-0000002b", "Ringing"),
                     ("PJSIP/trunk-0000002c", "Up")]
    link = _engine(port)
    engine = link.engine
    assert engine.ami is not None
    await engine.ami.start()
    try:
        await engine.ami.wait_connected(5)
        snaps = [e for e in _drain(engine) if isinstance(e, DeviceSnapshot)]
        assert len(snaps) == 1
        assert snaps[0].states == {"PJSIP/agent1": "INUSE", "PJSIP/agent2": "NOT_INUSE"}
        # the core, fed the snapshot, does not route to agent a1
        engine.core.initial_effects(0.0)
        engine.core.apply(snaps[0])
        assert not engine.core.agents["a1"].routable
        assert engine.core.agents["a2"].routable
    finally:
        await engine.ami.close()


async def test_resync_learns_devices_left_out_of_the_device_state_list(
        asterisk: tuple[Asterisk, int]) -> None:
    """Agents added by a reload whose phone never registered are not in Asterisk's
    device-state cache: the resync asks for each (Getvar DEVICE_STATE) and the core does
    not count them free."""
    fake, port = asterisk
    fake.devices = {"PJSIP/agent1": "NOT_INUSE"}
    fake.uncached = {"PJSIP/agent2": "UNAVAILABLE"}
    link = _engine(port)
    engine = link.engine
    assert engine.ami is not None
    await engine.ami.start()
    try:
        await engine.ami.wait_connected(5)
        asked = [a["Variable"] for a in fake.named("Getvar")]
        assert asked == ["DEVICE_STATE(PJSIP/agent2)"]  # only the one left out
        snaps = [e for e in _drain(engine) if isinstance(e, DeviceSnapshot)]
        assert snaps[0].states == {"PJSIP/agent1": "NOT_INUSE",
                                   "PJSIP/agent2": "UNAVAILABLE"}
        assert snaps[0].server == "main"
        engine.core.initial_effects(0.0)
        engine.core.apply(snaps[0])
        assert engine.core.agents["a1"].routable and not engine.core.agents["a2"].routable
    finally:
        await engine.ami.close()


async def test_a_reload_makes_the_engine_read_device_states_again(
        asterisk: tuple[Asterisk, int]) -> None:
    fake, port = asterisk
    fake.devices = {"PJSIP/agent1": "NOT_INUSE"}  # agent2 not configured in Asterisk yet
    link = _engine(port)
    engine = link.engine
    assert engine.ami is not None
    await engine.ami.start()
    try:
        await engine.ami.wait_connected(5)
        first = [e for e in _drain(engine) if isinstance(e, DeviceSnapshot)]
        assert first[0].states["PJSIP/agent2"] == "INVALID"
        fake.uncached = {"PJSIP/agent2": "UNAVAILABLE"}  # `core reload` added its endpoint
        fake.push(_block(("Event", "Reload"), ("Module", "All"), ("Status", "0"))
                  + _block(("Event", "Reload"), ("Module", "res_pjsip.so"), ("Status", "0")))
        await _wait(lambda: link.refreshes >= 1)
        await _wait(lambda: link._refresh is not None and link._refresh.done())
        snaps = [e for e in _drain(engine) if isinstance(e, DeviceSnapshot)]
        assert snaps and snaps[-1].states["PJSIP/agent2"] == "UNAVAILABLE"
        assert 1 <= link.refreshes <= 2  # two Reload events: at most one rerun
    finally:
        await engine.ami.close()


async def test_ami_that_never_comes_up_lets_the_engine_route_without_device_state() -> None:
    from acd.domain import DeviceStateLost

    engine = Engine(settings_from(parse_config(CONFIG)), device_state_servers=["main"])
    assert engine.core.agents.device_state_known == {"main"}
    assert not engine.core.agents["a1"].phone_free  # not heard of, AMI expected
    link = AsteriskLink(engine, "main")
    client = AMIClient("127.0.0.1", 9, "acd", "x", on_event=link.on_event,
                       on_down=link.down, backoff=ConstantBackoff(0.01), connect_timeout=0.2)
    await client.start()
    try:
        await _wait(lambda: not engine.inbox.empty())
        await asyncio.sleep(0.1)  # several failed attempts: reported once
        lost = _drain(engine)
        assert len(lost) == 1 and isinstance(lost[0], DeviceStateLost)
        engine.core.apply(lost[0])
        assert engine.core.agents["a1"].phone_free
    finally:
        await client.close()


async def test_asterisk_restart_is_detected_and_sessionless_calls_end(
        asterisk: tuple[Asterisk, int]) -> None:
    fake, port = asterisk
    link = _engine(port)
    engine = link.engine
    assert engine.ami is not None
    engine.core.apply(CallArrived("gone", "consult", "13800138000", 1.0, 1.0))
    engine.core.apply(CallArrived("live", "consult", "13800138001", 1.0, 1.0))
    engine.open_session("live")
    await engine.ami.start()
    try:
        await engine.ami.wait_connected(5)
        assert link.restarts == 0 and link.resyncs == 1
        _drain(engine)
        fake.drop()  # a plain reconnect: same start time, nothing ends
        await _wait(lambda: link.resyncs == 2)
        assert link.restarts == 0
        assert not [e for e in _drain(engine) if isinstance(e, CallHungUp)]
        fake.started = ("2026-11-23", "13:05:00")  # Asterisk restarted
        fake.drop()
        await _wait(lambda: link.resyncs == 3)
        assert link.restarts == 1
        ended = [e.call_id for e in _drain(engine) if isinstance(e, CallHungUp)]
        assert ended == ["gone"]  # the call with a live session ends through its session
    finally:
        await engine.ami.close()


async def test_a_stalled_inbox_never_blocks_the_ami_reader(
        asterisk: tuple[Asterisk, int]) -> None:
    """on_event only enqueues: with nobody consuming the inbox, 20 000 events are read
    and an action still gets its reply at once."""
    fake, port = asterisk
    link = _engine(port)
    engine = link.engine
    assert engine.ami is not None
    await engine.ami.start()
    try:
        await engine.ami.wait_connected(5)
        _drain(engine)
        n = 20_000
        fake.push(b"".join(_block(("Event", "DeviceStateChange"), ("Device", "PJSIP/agent1"),
                                  ("State", "INUSE" if i % 2 else "NOT_INUSE"))
                           for i in range(n)))
        await _wait(lambda: engine.inbox.qsize() >= n)
        began = time.monotonic()
        await engine.ami.action("Ping", timeout=2)
        assert time.monotonic() - began < 0.5
        assert all(isinstance(e, DeviceStateChanged) for e in _drain(engine))
    finally:
        await engine.ami.close()


async def _wait(predicate: object, within: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


TWO_SERVERS = """
asterisk:
  servers:
    - {name: east, ami: {host: 127.0.0.1, port: %d, reconnect_max: 0.5}}
    - {name: west, ami: {host: 127.0.0.1, port: %d, reconnect_max: 0.5,
                         secret_env: ACD_WEST_SECRET}}
fastagi: {port: 0}
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 3, sl_target: 20}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@127.0.0.1:6001"}
  - {id: a2, endpoint: agent2, skills: {consult: 1}, server: west,
     contact: "sip:agent2@127.0.0.1:6002"}
"""


def test_single_ami_form_is_one_server_named_main() -> None:
    cfg = parse_config(CONFIG)
    assert [s.name for s in cfg.asterisk.server_list] == ["main"]
    assert cfg.asterisk.server_list[0].ami == cfg.asterisk.ami
    assert {cfg.agent_server(a) for a in cfg.agents} == {"main"}


def test_agent_on_an_unknown_server_is_rejected() -> None:
    from acd.config import ConfigError

    with pytest.raises(ConfigError, match=r"agents\[a2\]\.server.*unknown Asterisk server"):
        parse_config(CONFIG.replace("skills: {consult: 1}, contact: \"sip:agent2",
                                    "skills: {consult: 1}, server: nowhere, "
                                    "contact: \"sip:agent2"))


async def test_two_asterisks_one_engine_each_server_owns_its_agents_devices() -> None:
    east, west = Asterisk(), Asterisk()
    east_port, west_port = await east.start(), await west.start()
    # Each server reports both endpoint names; only its own agents' states count.
    east.devices = {"PJSIP/agent1": "NOT_INUSE", "PJSIP/agent2": "UNAVAILABLE"}
    west.devices = {"PJSIP/agent1": "UNAVAILABLE", "PJSIP/agent2": "INUSE"}
    node = Node(parse_config(TWO_SERVERS % (east_port, west_port)),
                ami_secrets={"east": "east-secret", "west": "west-secret"})
    engine = node.engine
    await node.__aenter__()
    try:
        assert set(engine.amis) == {"east", "west"} and engine.ami is engine.amis["east"]
        for client in engine.amis.values():
            await client.wait_connected(5)
        a1, a2 = engine.core.agents["a1"], engine.core.agents["a2"]
        await _wait(lambda: (a1.device_state, a2.device_state) == ("NOT_INUSE", "INUSE"))
        # a live event from the wrong server is ignored, from the right one applied
        west.push(_block(("Event", "DeviceStateChange"), ("Device", "PJSIP/agent1"),
                         ("State", "UNAVAILABLE")))
        west.push(_block(("Event", "DeviceStateChange"), ("Device", "PJSIP/agent2"),
                         ("State", "NOT_INUSE")))
        await _wait(lambda: a2.device_state == "NOT_INUSE")
        assert a1.device_state == "NOT_INUSE"
        # a restart of one server is seen on that server only
        west.started = ("2026-11-23", "14:00:00")
        west.drop()
        await _wait(lambda: node.links["west"].restarts == 1)
        assert node.links["east"].restarts == 0
        assert engine.amis["east"].connected
        assert len(east.named("Login")) == 1  # east was never disturbed
    finally:
        await node.__aexit__(None, None, None)
        await east.close()
        await west.close()


def test_call_goes_only_to_agents_on_its_own_asterisk_server() -> None:
    from acd.domain import AgentStatus, CallArrived, Offer, SetAgentStatus

    cfg = parse_config("""
asterisk:
  servers:
    - {name: bj, ami: {port: 5038}}
    - {name: gz, ami: {port: 5039}}
queues:
  - {id: consult, skills: {consult: 1}, groups: [team1],
     stages: [{after: 5, groups: [team1, team2]}]}
agents:
  - {id: a1, server: bj, skills: {consult: 1}, groups: [team1], contact: "sip:a1@h"}
  - {id: b1, server: gz, skills: {consult: 1}, groups: [team1], contact: "sip:b1@h",
     status: logged_out}
""")
    core = make_core(cfg)
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 0.5))
    core.apply(SetAgentStatus("b1", AgentStatus.AVAILABLE, 0.5))

    def offered(effects: list[object]) -> list[tuple[str, str]]:
        return [(e.call_id, e.agent_id) for e in effects if isinstance(e, Offer)]

    # a call on bj waits although b1 (on gz) is free: b1 cannot be dialled from bj
    assert offered(core.apply(CallArrived("c-bj", "consult", "1", 1.0, 1.0,
                                          server="bj"))) == []
    assert offered(core.apply(CallArrived("c-gz", "consult", "2", 2.0, 2.0,
                                          server="gz"))) == [("c-gz", "b1")]
    assert offered(core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 3.0))) == [
        ("c-bj", "a1")]
    # an unknown/missing server name means the first server
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 4.0))
    core.apply(CallArrived("c-x", "consult", "3", 5.0, 5.0))
    assert core.calls["c-x"].server == "bj"
