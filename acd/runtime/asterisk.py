"""The engine's view of each Asterisk over AMI: phones, answers, hangups, restarts.

One :class:`AsteriskLink` per Asterisk server owns an :class:`~acd.runtime.ami_client.AMIClient`
and turns what AMI says into inbox events:

* ``DeviceStateChange`` of an agent phone of this server → ``DeviceStateChanged``;
* ``DialEnd`` ANSWER on a caller's channel → ``CallAnswered`` (the agent picked up);
* ``Hangup`` of a partner channel put through before a restart → ``ChannelGone``;
* ``DTMFEnd`` received on a caller's channel → ``CallerKey`` (its exit key, perhaps);
* ``Reload`` → the device states are read again (agents added by a reload are absent
  from Asterisk's device-state cache until their state first changes).

**Resync before trust.** After every (re)connect, before the client counts as connected,
the link detects an Asterisk restart (``CoreStatus`` start time: every FastAGI session of
that Asterisk is gone, calls without a live session end), reads every agent phone's state
(``DeviceStateList``, then ``Getvar DEVICE_STATE(...)`` for each phone the list left out)
and the channels in conversation (``CoreShowChannels``: a phone with an ``Up`` channel is
``INUSE`` even if the device state lags; partner trunk channels no call of ours explains
hold places in their site's capacity). When AMI is down the engine routes on what it last
knew (``DeviceStateLost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from acd.domain import (
    CallAnswered,
    CallerKey,
    CallHungUp,
    ChannelGone,
    DeviceSnapshot,
    DeviceStateChanged,
    DeviceStateLost,
    PartnerChannels,
)
from acd.domain.agents import FREE_DEVICE_STATES
from acd.protocol.ami import AMIEvent
from acd.runtime.ami_client import AMIActionError, AMIClient
from acd.runtime.backoff import ExponentialBackoff
from acd.runtime.engine import Engine

log = logging.getLogger("acd.engine")


@dataclass(frozen=True, slots=True)
class AMISettings:
    """Where one Asterisk's AMI is and how to talk to it (the secret from the env)."""

    server: str
    host: str
    port: int
    username: str
    secret: str
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 10.0
    reconnect_max: float = 10.0

    def __repr__(self) -> str:  # never the secret
        return f"AMISettings({self.server!r}, {self.username}@{self.host}:{self.port})"


class AsteriskLink:
    """One Asterisk server's AMI, feeding the engine's inbox."""

    def __init__(self, engine: Engine, server: str) -> None:
        self.engine = engine
        self.server = server
        self.client: AMIClient | None = None
        self._started: str | None = None
        self.restarts = 0
        self.resyncs = 0
        self.refreshes = 0
        self._refresh: asyncio.Task[None] | None = None
        self._refresh_again = False
        #: Called with (server, event) for every AMI event before the link's own
        #: handling (the call history reads ``Cdr``); one that raises is logged.
        self.observers: list[Callable[[str, AMIEvent], None]] = []

    @classmethod
    def connect(cls, engine: Engine, ami: AMISettings) -> AsteriskLink:
        link = cls(engine, ami.server)
        link.client = AMIClient(
            ami.host, ami.port, ami.username, ami.secret,
            on_event=link.on_event, on_connect=link.resync, on_down=link.down,
            backoff=ExponentialBackoff(cap=ami.reconnect_max),
            connect_timeout=ami.connect_timeout, action_timeout=ami.action_timeout,
            ping_interval=ami.ping_interval)
        return link

    async def start(self) -> None:
        assert self.client is not None
        self.engine.amis[self.server] = self.client
        await self.client.start()

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self.client is not None:
            await self.client.close()

    # -- events ----------------------------------------------------------------------

    def _mine(self, device: str) -> bool:
        """The device is an agent phone on this server (endpoint names are unique across
        servers, so a device name plus its server is unambiguous)."""
        agent = self.engine.core.agent_for_device(device)
        return agent is not None and agent.server == self.server

    def on_event(self, ev: AMIEvent) -> None:
        for observer in self.observers:
            try:
                observer(self.server, ev)
            except Exception:
                log.exception("AMI observer %r failed", observer)
        engine = self.engine
        now = engine.clock()
        if ev.name == "DeviceStateChange":
            device, state = ev.get("Device"), ev.get("State")
            if device and state and self._mine(device):
                engine.post(DeviceStateChanged(device, state, now))
        elif ev.name == "DTMFEnd" and ev.get("Direction") == "Received":
            # a key the caller pressed while waiting (no AGI command running): the
            # queue's exit key, perhaps; the core ignores it otherwise
            call_id = engine.core.call_for_uniqueid(ev.get("Uniqueid") or "", self.server)
            digit = ev.get("Digit") or ""
            if call_id is not None and len(digit) == 1:
                engine.post(CallerKey(call_id, digit, now))
        elif ev.name == "Reload":
            self.refresh_soon()
        elif ev.name == "Hangup":
            channel = ev.get("Channel") or ""
            if engine.core.partners.holds_recovered(self.server, channel):
                engine.post(ChannelGone(self.server, channel, now))
        elif ev.name == "DialEnd" and ev.get("DialStatus") == "ANSWER":
            uniqueid = ev.get("Uniqueid") or ""
            dest = ev.get("DestChannel") or ""
            call_id = engine.core.call_for_uniqueid(uniqueid, self.server)
            agent = engine.core.agent_for_device(dest.rsplit("-", 1)[0]) if dest else None
            if call_id is not None and agent is not None:
                engine.post(CallAnswered(call_id, agent.agent_id, now))

    def down(self) -> None:
        """This server's AMI is down: route on the device states last known."""
        log.warning("AMI %s down: routing on the device states last known; phones never "
                    "heard of count as free until it is back", self.server)
        self.engine.post(DeviceStateLost(self.server, self.engine.clock()))

    # -- resync ----------------------------------------------------------------------

    async def resync(self) -> None:
        """After every (re)connect: see the module docstring."""
        ami = self.client
        assert ami is not None
        await self._check_restart(ami)
        states = await self.device_states(ami)
        busy_devices, partner_channels = await self._channels(ami)
        busy = {dev for dev in busy_devices if self._mine(dev)}
        by_upper = {dev.upper(): dev for dev in states}
        for dev in busy:
            key = by_upper.get(dev.upper(), dev)
            if states.get(key, "UNKNOWN") in FREE_DEVICE_STATES:
                states[key] = "INUSE"
        engine = self.engine
        engine.post(DeviceSnapshot(states, engine.clock(), self.server))
        engine.post(PartnerChannels(self.server, partner_channels, engine.clock()))
        self.resyncs += 1
        log.info("AMI %s resynced: %d device states, %d agent phones in a conversation, "
                 "%d partner channel(s) put through before", self.server, len(states),
                 len(busy), len(partner_channels))

    async def device_states(self, ami: AMIClient) -> dict[str, str]:
        """The state of every agent phone of this server: ``DeviceStateList`` (Asterisk's
        cache), then ``Getvar DEVICE_STATE(...)`` for each agent device the list left out
        — a device whose state never changed since Asterisk started (an endpoint added by
        a reload, a phone that never registered) is not in the cache. ``INVALID`` means
        Asterisk has no such endpoint: not free either."""
        _, items = await ami.list_action("DeviceStateList")
        states = {
            dev: st for ev in items
            if (dev := ev.get("Device")) is not None and (st := ev.get("State")) is not None
            and self._mine(dev)
        }
        known = {dev.upper() for dev in states}
        missing = [a.device for a in self.engine.core.agents.values()
                   if a.server == self.server and a.device.upper() not in known]
        if missing:
            limit = asyncio.Semaphore(32)

            async def ask(device: str) -> None:
                async with limit:
                    try:
                        reply = await ami.action(
                            "Getvar", {"Variable": f"DEVICE_STATE({device})"})
                    except AMIActionError as exc:
                        log.warning("AMI: state of %s not read (%s)", device, exc)
                        return
                value = (reply.get("Value") or "").strip().upper()
                if value:
                    states[device] = value

            async with asyncio.TaskGroup() as group:
                for device in missing:
                    group.create_task(ask(device))
        return states

    def refresh_soon(self) -> None:
        """Read the device states again (after a Reload), one refresh at a time; a Reload
        during a refresh makes it run once more."""
        if self._refresh is not None and not self._refresh.done():
            self._refresh_again = True
            return
        self._refresh = asyncio.get_running_loop().create_task(
            self._refresh_devices(), name=f"acd-device-refresh-{self.server}")

    async def _refresh_devices(self) -> None:
        ami = self.client
        while ami is not None:
            self._refresh_again = False
            try:
                states = await self.device_states(ami)
            except Exception as exc:  # AMI lost: the reconnect's resync reads them all
                log.warning("AMI %s: device states not refreshed after a reload (%s)",
                            self.server, exc)
                return
            self.engine.post(DeviceSnapshot(states, self.engine.clock(), self.server))
            self.refreshes += 1
            log.info("AMI %s: %d device states read after a reload", self.server,
                     len(states))
            if not self._refresh_again:
                return

    async def _check_restart(self, ami: AMIClient) -> None:
        """Compare Asterisk's start time with the one seen at the last connect."""
        try:
            reply = await ami.action("CoreStatus")
        except AMIActionError as exc:  # not allowed for this AMI user: no detection
            log.warning("AMI CoreStatus refused (%s): Asterisk restarts are not detected",
                        exc)
            return
        started = f"{reply.get('CoreStartupDate') or ''} {reply.get('CoreStartupTime') or ''}"
        previous, self._started = self._started, started
        if previous is None or previous == started:
            return
        self.restarts += 1
        engine = self.engine
        gone = [cid for cid, call in engine.core.calls.items()
                if call.server == self.server and not engine.has_session(cid)]
        log.warning("Asterisk %s restarted (started %s, was %s): %d calls without a "
                    "session end", self.server, started.strip(), previous.strip(), len(gone))
        now = engine.clock()
        for call_id in gone:
            engine.post(CallHungUp(call_id, now))

    async def _channels(self, ami: AMIClient) -> tuple[set[str], dict[str, str]]:
        """From ``CoreShowChannels``: agent devices (``PJSIP/<endpoint>``) with a channel
        in state Up, and the partner trunk channels (any state: ringing holds a place
        too) whose call is not one of ours (their ``Linkedid`` is no caller we know):
        channel → site."""
        _, channels = await ami.list_action("CoreShowChannels")
        core = self.engine.core
        busy: set[str] = set()
        partners: dict[str, str] = {}
        for ev in channels:
            channel = ev.get("Channel") or ""
            if "-" not in channel:
                continue
            device = channel.rsplit("-", 1)[0]
            site = core.partner_for_device(device)
            if site is not None:
                if core.call_for_uniqueid(ev.get("Linkedid") or "", self.server) is None:
                    partners[channel] = site
            elif (ev.get("ChannelStateDesc") == "Up"
                  and core.agent_for_device(device) is not None):
                busy.add(device)
        return busy, partners


@contextlib.asynccontextmanager
async def asterisk_links(engine: Engine, amis: Sequence[AMISettings],
                         ) -> AsyncIterator[Mapping[str, AsteriskLink]]:
    """One link per Asterisk server, started (they connect in the background) and
    closed on the way out."""
    links = {ami.server: AsteriskLink.connect(engine, ami) for ami in amis}
    try:
        for link in links.values():
            await link.start()
        yield links
    finally:
        for link in links.values():
            await link.close()
        for server in links:
            engine.amis.pop(server, None)
