"""The asyncio engine: one ordered inbox, one writer, adapters that carry out effects.

Everything that changes state — a FastAGI session reporting a call, an AMI event, a
timer, an operator command — is posted to :attr:`Engine.inbox`. A single task takes
events in order and hands each to :class:`acd.domain.core.EngineCore`, which returns effects.
The engine then carries them out without waiting: an ``Offer`` goes to the call's own
session task, a ``StartTimer`` to ``loop.call_later``, a ``Publish`` to the log and to
subscribers. No I/O happens inside a transition and no lock is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from acd.config import Config
from acd.domain.core import (
    FREE_DEVICE_STATES,
    AgentStatus,
    CallAnswered,
    CallHungUp,
    CallState,
    ChannelGone,
    DeviceSnapshot,
    DeviceStateChanged,
    DeviceStateLost,
    DomainError,
    Effect,
    EngineCore,
    Event,
    Offer,
    OfferFailed,
    PartnerChannels,
    Publish,
    SetAgentStatus,
    StartTimer,
)
from acd.domain.figures import LiveStats
from acd.protocol.ami import AMIEvent
from acd.runtime.ami_client import AMIActionError, AMIClient
from acd.runtime.backoff import ExponentialBackoff
from acd.runtime.fastagi import FastAGIServer
from acd.runtime.store import RedisStore, Restorer, StoredState, StoreWriter, make_store
from routing.regions import RegionResolver
from routing.regions import preload as preload_regions

log = logging.getLogger("acd.runtime.engine")
events_log = logging.getLogger("acd.events")


@dataclass(slots=True)
class _Command:
    """An operator command: applied in inbox order, its result or error returned."""

    event: Event
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())


class Engine:
    """Owns the core, the inbox, the FastAGI server and the AMI client."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 ami_secret: str | None = None,
                 ami_secrets: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.clock = clock
        #: With AMI, device state is learnt from every server: until its AMI is lost, a
        #: phone the engine has not heard of is not offered calls.
        self.core = EngineCore(config, device_state_servers=(
            [srv.name for srv in config.asterisk.server_list] if ami_secret is not None
            else ()))
        self.core.routing = False  # until this engine is the active one (activate)
        self.segments = config.segment_table()
        self.schedules = {q.id: config.schedule(q.id) for q in config.queues}
        self.regions = RegionResolver(config.regions.default, config.regions.overrides)
        self.inbox: asyncio.Queue[Event | _Command] = asyncio.Queue()
        self._offers: dict[str, asyncio.Queue[Offer]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._subscribers: set[asyncio.Queue[Publish]] = set()
        #: Observers called synchronously, in inbox order: each Publish with the engine's
        #: clock, and each applied event with the seconds ``core.apply`` took (API stats,
        #: metrics). An observer that raises is logged and never stops routing.
        self.publish_hooks: list[Callable[[Publish, float], None]] = []
        self.apply_hooks: list[Callable[[Event, float], None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._ami_secret = ami_secret
        #: Secrets of further Asterisk servers by name (else their ``secret_env``).
        self._ami_secrets = dict(ami_secrets or {})
        self.ami: AMIClient | None = None
        #: Every AMI client by Asterisk server name (``asterisk.servers``).
        self.amis: dict[str, AMIClient] = {}
        self._agent_server = {a.id: config.agent_server(a) for a in config.agents}
        self.agi: FastAGIServer | None = None
        self.accepting = False
        #: Set by ``stop()``: sessions of callers who only wait go back to the dialplan.
        self.releasing = False
        #: Per-queue figures (rolling 15 min, today): engine state, so they are stored
        #: and survive a restart or a takeover like the rest.
        self.stats = LiveStats({q.id: float(q.sl_target) for q in config.queues},
                               config.timezone)
        self.publish_hooks.append(self._observe_stats)
        #: Restart state (acd.runtime.store): written behind routing by a background writer,
        #: loaded when this engine becomes active; ``ha`` is the hot-standby lease.
        self.store = make_store(config.store)
        self.store_writer = StoreWriter(self.store, self.core, stats=self.stats)
        self.publish_hooks.append(self.store_writer.observe)
        self.restorer = Restorer()
        self.ha: Any = None
        self._writer_task: asyncio.Task[None] | None = None
        self._grace: asyncio.TimerHandle | None = None
        #: Asterisk's start time at the last AMI connect (CoreStatus), to see restarts.
        self._asterisk_started: dict[str | None, str] = {}
        self.asterisk_restarts = 0
        self.ami_resyncs = 0
        #: Per server: the device refresh that follows an Asterisk ``Reload`` (agents
        #: added by a reload have no device state in DeviceStateList until they change).
        self._device_refresh: dict[str, asyncio.Task[None]] = {}
        self._device_refresh_again: set[str] = set()
        self.device_refreshes = 0

    def _observe_stats(self, ev: Publish, now: float) -> None:
        self.stats.observe(ev.name, ev.data, now)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        from acd.runtime.call_flow import handle_call  # local: call_flow imports Engine types

        # The number geocoder loads its data (~0.3 s) on first use: not on a caller's time.
        await asyncio.to_thread(preload_regions)
        if self.config.engine.explain_offers:
            # Likewise each stage's roster for the offers' exclusions (≈ 0.5 s at 10k
            # agents), before the inbox runs.
            self.core.router.prepare_exclusions()
        self._loop_task = asyncio.create_task(self._run(), name="acd-inbox")
        self._carry_out(self.core.initial_effects(self.clock()))
        if self._ami_secret is not None:
            # One AMI client per Asterisk server; ``self.ami`` is the first one's.
            for i, server in enumerate(self.config.asterisk.server_list):
                ami_cfg = server.ami
                secret = (self._ami_secrets.get(server.name) if self._ami_secrets else None) \
                    or (self._ami_secret if i == 0 else ami_cfg.secret().get_secret_value())
                client = AMIClient(
                    ami_cfg.host, ami_cfg.port, ami_cfg.username, secret,
                    on_event=functools.partial(self._on_ami_event, server=server.name),
                    on_connect=functools.partial(self._ami_resync, server.name),
                    on_down=functools.partial(self._ami_down, server.name),
                    backoff=ExponentialBackoff(cap=ami_cfg.reconnect_max),
                    connect_timeout=ami_cfg.connect_timeout,
                    action_timeout=ami_cfg.action_timeout,
                    ping_interval=ami_cfg.ping_interval,
                )
                self.amis[server.name] = client
                if self.ami is None:
                    self.ami = client
                await client.start()
        self.agi = FastAGIServer(
            lambda session: handle_call(self, session),
            self.config.fastagi.host, self.config.fastagi.port,
            env_timeout=self.config.fastagi.env_timeout,
        )
        await self.agi.start()
        if self.config.ha is None:
            await self.activate()
        else:
            from acd.runtime.ha import HotStandby, Lease
            from acd.runtime.store import redis_client

            ha = self.config.ha
            lease = Lease(redis_client(self.config.store.url, self.config.store.timeout),
                          ha.node_id, ha.lease_ttl, self.config.store.key_prefix)
            self.ha = HotStandby(self, lease, ha.lease_ttl)
            if isinstance(self.store, RedisStore):
                # Store writes carry the lease's fencing token: a node that lost the
                # lease without knowing yet is refused, and steps down.
                self.store.fence = lambda: lease.token
                standby = self.ha
                self.store_writer.on_fenced = lambda exc: standby.step_down_soon(
                    f"store write fenced ({exc})")
            self.ha.start()
            log.info("hot standby: node %s waits for the lease", ha.node_id)
        log.info("engine started: FastAGI on %s:%s", self.config.fastagi.host, self.agi.port)

    async def activate(self) -> None:
        """Become the engine that takes calls: load the store first (agent statuses
        through the inbox, waiting calls' places for their re-entry), then accept."""
        try:
            state = await asyncio.wait_for(self.store.load(), 3 * self.config.store.timeout)
        except Exception as exc:
            log.warning("store not loaded (%s: %s): starting from the config",
                        type(exc).__name__, exc)
            state = StoredState()
        restored = 0
        for agent_id, rec in state.agents.items():
            try:
                await self.command(SetAgentStatus(agent_id, AgentStatus(rec.status),
                                                  self.clock(), rec.reason))
                restored += 1
            except (ValueError, DomainError) as exc:
                log.warning("stored status of agent %s not restored: %s", agent_id, exc)
        stats_restored = self.stats.restore(state.stats, self.clock())
        self.restorer.begin(state.calls)
        if self.restorer.holding:
            self._grace = asyncio.get_running_loop().call_later(
                self.config.store.restore_grace, self._release_held)
        self.releasing = False
        self.core.routing = True
        self.store_writer.request_resync()
        if self._writer_task is None:
            self._writer_task = asyncio.create_task(self.store_writer.run(),
                                                    name="acd-store-writer")
        self.accepting = True
        log.info("engine active: %d agent statuses, %d waiting calls and %d queues' "
                 "figures from the store", restored, len(state.calls), stats_restored)

    async def deactivate(self, *, hand_over: bool = False) -> None:
        """Stop taking calls and stop writing the store (another node is active).

        ``hand_over`` (the lease was lost while this process runs on): callers who only
        wait go back to the dialplan at once, which retries the active engine with their
        ``ACD_ENTRY``; there they get their place back from the store. Kept here, they
        could be offered to an agent the active engine offers a call to as well."""
        self.accepting = False
        # From now on the core offers no call to anyone (set here, between two events, so
        # even events already in the inbox cannot make this node ring an agent).
        self.core.routing = False
        if hand_over:
            released = self.release_waiting()
            if released:
                log.warning("stepped down: %d waiting call(s) handed back to the dialplan "
                            "for the active engine", released)
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None

    def _release_held(self) -> None:
        """End of the restore hold: held arrivals go to the inbox, oldest first."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        now = self.clock()
        for ev in self.restorer.release():
            self.post(replace(ev, now=now))

    async def stop(self) -> None:
        """Stop taking calls, let sessions finish up to the drain timeout, then cancel."""
        self.accepting = False
        # The store first (sessions cancelled below must not erase their calls' places),
        # then the lease, so a standby takes over with the latest state.
        if self._writer_task is not None:
            await self.store_writer.drained(1.0)
        await self.deactivate()
        if self.ha is not None:
            await self.ha.stop()
        # Waiting callers go back to the dialplan at once (it retries the standby with
        # their ACD_ENTRY); only calls ringing or talking use the drain timeout.
        released = self.release_waiting()
        if released:
            log.info("shutdown: %d waiting call(s) handed back to the dialplan", released)
        if self.agi is not None:
            await self.agi.close(self.config.engine.drain_timeout)
        for client in {*self.amis.values(), *([self.ami] if self.ami else [])}:
            await client.close()
        for task in list(self._device_refresh.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._grace is not None:
            self._grace.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        with contextlib.suppress(Exception):
            await self.store.close()
        if self.ha is not None:
            with contextlib.suppress(Exception):
                await self.ha.lease.client.aclose()

    # -- the inbox ---------------------------------------------------------------------

    def post(self, event: Event) -> None:
        """Queue an event; safe from any coroutine or callback on the loop."""
        self.inbox.put_nowait(event)

    async def command(self, event: Event) -> None:
        """Apply an operator command in inbox order; raises its DomainError, if any."""
        cmd = _Command(event)
        self.inbox.put_nowait(cmd)
        await cmd.done

    async def set_agent_status(self, agent_id: str, status: AgentStatus,
                               reason: str = "") -> None:
        await self.command(SetAgentStatus(agent_id, status, self.clock(), reason))

    async def _run(self) -> None:
        while True:
            item = await self.inbox.get()
            event = item.event if isinstance(item, _Command) else item
            if self.restorer.holding or self.restorer.calls:
                held = self.restorer.intercept(event)
                if self.restorer.complete:
                    self._release_held()
                if held is None:
                    continue
                event = held
            try:
                started = time.perf_counter()
                effects = self.core.apply(event)
                self._notify(self.apply_hooks, event, time.perf_counter() - started)
            except DomainError as exc:
                if isinstance(item, _Command) and not item.done.done():
                    item.done.set_exception(exc)
                else:
                    log.warning("rejected %s: %s", type(event).__name__, exc)
                continue
            except Exception:
                # A bug must not stop routing for every other caller.
                log.exception("engine failed to apply %r", event)
                if isinstance(item, _Command) and not item.done.done():
                    item.done.set_exception(RuntimeError("internal error"))
                continue
            self._carry_out(effects)
            if isinstance(item, _Command) and not item.done.done():
                item.done.set_result(None)

    def _carry_out(self, effects: list[Effect]) -> None:
        loop = asyncio.get_running_loop()
        for eff in effects:
            try:
                self._carry_out_one(eff, loop)
            except Exception:
                # A bug in one adapter step must not stop the inbox (every other caller).
                log.exception("engine failed to carry out %r", eff)

    def _carry_out_one(self, eff: Effect, loop: asyncio.AbstractEventLoop) -> None:
        match eff:
            case Offer():
                q = self._offers.get(eff.call_id)
                if q is not None and self.ha is not None and not self.ha.lease_valid():
                    # Our lease may have run out (this process was paused or cut
                    # off): the standby may be active and ringing the same agents.
                    # Never ring anyone on a lease we may no longer hold.
                    from acd.runtime.call_flow import RELEASE

                    q.put_nowait(RELEASE)
                    self.releasing = True
                    self.ha.step_down_soon(
                        "lease ran out before a renew (process paused or cut off)")
                elif q is None and self.releasing:
                    pass  # stopping: a released call re-enters elsewhere; no retry
                elif q is None:
                    self.post(OfferFailed(eff.call_id, eff.agent_id, self.clock()))
                else:
                    q.put_nowait(eff)
            case StartTimer():
                self._start_timer(loop, eff.delay, eff.event)
            case Publish():
                events_log.info("%s %s", eff.name, json.dumps(dict(eff.data), default=str))
                if eff.name in ("call_offered", "call_overflowed"):
                    try:
                        _log_decision(eff.data)
                    except Exception:  # a log line must not stop carrying out
                        log.exception("decision line of %s not logged", eff.name)
                for sub in self._subscribers:
                    sub.put_nowait(eff)
                self._notify(self.publish_hooks, eff, self.clock())

    def _notify(self, hooks: list[Callable[[Any, float], None]], item: Any,
                value: float) -> None:
        for hook in hooks:
            try:
                hook(item, value)
            except Exception:
                log.exception("observer %r failed", hook)

    def _start_timer(self, loop: asyncio.AbstractEventLoop, delay: float,
                     event: Event) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self.post(event)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def open_partner_covers(self, region: str, queue_id: str) -> bool:
        """A partner site open now covers ``region`` and offers the queue's service."""
        now = self.clock()
        return any(p.covers(region) and p.offers(queue_id)
                   and self.core.partner_open(p.site_id, now) for p in self.core.partners)

    # -- sessions (used by acd.runtime.call_flow) ----------------------------------------------

    def open_session(self, call_id: str) -> asyncio.Queue[Offer]:
        q: asyncio.Queue[Offer] = asyncio.Queue()
        self._offers[call_id] = q
        return q

    def close_session(self, call_id: str, q: asyncio.Queue[Offer]) -> None:
        if self._offers.get(call_id) is q:
            del self._offers[call_id]

    def release_waiting(self) -> int:
        """Release every session whose call is not offered or connected (waiting, or
        not yet routed): it returns without ACD_RESULT and is not counted abandoned."""
        from acd.runtime.call_flow import RELEASE  # local: call_flow imports Engine types

        self.releasing = True
        released = 0
        for call_id, q in list(self._offers.items()):
            call = self.core.calls.get(call_id)
            if call is None or call.state is CallState.WAITING:
                q.put_nowait(RELEASE)
                released += 1
        return released

    # -- AMI ---------------------------------------------------------------------------

    def _on_server(self, device: str, server: str | None) -> bool:
        """The device is an agent phone on ``server`` (None: any server). Endpoint names
        are unique across servers, so a device name plus its server is unambiguous."""
        agent = self.core.agent_for_device(device)
        return agent is not None and (server is None
                                      or self._agent_server.get(agent.agent_id) == server)

    def _on_ami_event(self, ev: AMIEvent, server: str | None = None) -> None:
        now = self.clock()
        if ev.name == "DeviceStateChange":
            device, state = ev.get("Device"), ev.get("State")
            if device and state and (server is None or self._on_server(device, server)):
                self.post(DeviceStateChanged(device, state, now))
        elif ev.name == "Reload":
            # A reload may have added agents' endpoints: learn their devices now (they
            # are absent from DeviceStateList until their state first changes).
            self._refresh_devices_soon(server or self.core.default_server)
        elif ev.name == "Hangup":
            channel = ev.get("Channel") or ""
            if self.core.holds_recovered_channel(server or "", channel):
                self.post(ChannelGone(server or "", channel, now))
        elif ev.name == "DialEnd" and ev.get("DialStatus") == "ANSWER":
            uniqueid = ev.get("Uniqueid") or ""
            dest = ev.get("DestChannel") or ""
            call_id = self.core.call_for_uniqueid(uniqueid, server or "")
            agent = self.core.agent_for_device(dest.rsplit("-", 1)[0]) if dest else None
            if call_id is not None and agent is not None:
                self.post(CallAnswered(call_id, agent.agent_id, now))

    async def _ami_resync(self, server: str | None = None) -> None:
        """After every (re)connect: read every device state before trusting ours.

        Also detects an Asterisk restart (``CoreStatus`` start time changed: every
        FastAGI session of that Asterisk is gone, so calls without a live session end
        here rather than wait forever) and marks agents whose phone has an ``Up``
        channel (``CoreShowChannels``) as ``INUSE`` even if the device state lags.
        """
        ami = self.amis[server] if server is not None else self.ami
        assert ami is not None
        await self._check_restart(ami, server)
        states = await self._device_states(ami, server)
        busy_devices, partner_channels = await self._channels(ami, server or "")
        busy = {dev for dev in busy_devices
                if server is None or self._on_server(dev, server)}
        by_upper = {dev.upper(): dev for dev in states}
        for dev in busy:
            key = by_upper.get(dev.upper(), dev)
            if states.get(key, "UNKNOWN") in FREE_DEVICE_STATES:
                states[key] = "INUSE"
        self.post(DeviceSnapshot(states, self.clock(), server or self.core.default_server))
        self.post(PartnerChannels(server or "", partner_channels, self.clock()))
        self.ami_resyncs += 1
        log.info("AMI %s resynced: %d device states, %d agent phones in a conversation, "
                 "%d partner channel(s) put through before", server or "", len(states),
                 len(busy), len(partner_channels))

    async def _device_states(self, ami: AMIClient, server: str | None) -> dict[str, str]:
        """The state of every agent phone on ``server``: ``DeviceStateList`` (Asterisk's
        cache), then ``Getvar DEVICE_STATE(...)`` for each agent device the list left out
        — a device whose state never changed since Asterisk started (an endpoint added by
        a reload, a phone that never registered) is not in the cache. ``INVALID`` means
        Asterisk has no such endpoint: not free either."""
        _, items = await ami.list_action("DeviceStateList")
        states = {
            dev: st for ev in items
            if (dev := ev.get("Device")) is not None and (st := ev.get("State")) is not None
            and (server is None or self._on_server(dev, server))
        }
        known = {dev.upper() for dev in states}
        missing = [a.device for a in self.core.agents.values()
                   if (server is None or a.server == server)
                   and a.device.upper() not in known]
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

    def _ami_down(self, server: str) -> None:
        """The AMI of ``server`` is down: route on what was last known."""
        log.warning("AMI %s down: routing on the device states last known; phones never "
                    "heard of count as free until it is back", server)
        self.post(DeviceStateLost(server, self.clock()))

    def _refresh_devices_soon(self, server: str) -> None:
        """Read the device states of ``server`` again (after a Reload), one refresh at a
        time per server; a Reload during a refresh makes it run once more."""
        task = self._device_refresh.get(server)
        if task is not None and not task.done():
            self._device_refresh_again.add(server)
            return
        self._device_refresh[server] = asyncio.get_running_loop().create_task(
            self._refresh_devices(server), name=f"acd-device-refresh-{server}")

    async def _refresh_devices(self, server: str) -> None:
        ami = self.amis.get(server) or self.ami
        while ami is not None:
            self._device_refresh_again.discard(server)
            try:
                states = await self._device_states(ami, server if server in self.amis
                                                   else None)
            except Exception as exc:  # AMI lost: the reconnect's resync reads them all
                log.warning("AMI %s: device states not refreshed after a reload (%s)",
                            server, exc)
                return
            self.post(DeviceSnapshot(states, self.clock(), server))
            self.device_refreshes += 1
            log.info("AMI %s: %d device states read after a reload", server, len(states))
            if server not in self._device_refresh_again:
                return

    async def _check_restart(self, ami: AMIClient, server: str | None = None) -> None:
        """Compare Asterisk's start time with the one seen at the last connect."""
        try:
            reply = await ami.action("CoreStatus")
        except AMIActionError as exc:  # not allowed for this AMI user: no detection
            log.warning("AMI CoreStatus refused (%s): Asterisk restarts are not detected",
                        exc)
            return
        started = f"{reply.get('CoreStartupDate') or ''} {reply.get('CoreStartupTime') or ''}"
        previous = self._asterisk_started.get(server)
        self._asterisk_started[server] = started
        if previous is None or previous == started:
            return
        self.asterisk_restarts += 1
        gone = [cid for cid in self.core.calls if cid not in self._offers]
        log.warning("Asterisk %s restarted (started %s, was %s): %d calls without a "
                    "session end", server or "", started.strip(), previous.strip(), len(gone))
        now = self.clock()
        for call_id in gone:
            self.post(CallHungUp(call_id, now))

    async def _channels(self, ami: AMIClient, server: str,
                        ) -> tuple[set[str], dict[str, str]]:
        """From ``CoreShowChannels``: agent devices (``PJSIP/<endpoint>``) with a channel
        in state Up, and the partner trunk channels (any state: ringing holds a place
        too) whose call is not one of ours (their ``Linkedid`` is no caller we know):
        channel → site."""
        _, channels = await ami.list_action("CoreShowChannels")
        busy: set[str] = set()
        partners: dict[str, str] = {}
        for ev in channels:
            channel = ev.get("Channel") or ""
            if "-" not in channel:
                continue
            device = channel.rsplit("-", 1)[0]
            site = self.core.partner_for_device(device)
            if site is not None:
                if self.core.call_for_uniqueid(ev.get("Linkedid") or "", server) is None:
                    partners[channel] = site
            elif (ev.get("ChannelStateDesc") == "Up"
                  and self.core.agent_for_device(device) is not None):
                busy.add(device)
        return busy, partners

    # -- observers ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Publish]]:
        q: asyncio.Queue[Publish] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    def snapshot(self) -> dict[str, Any]:
        return self.core.snapshot()


#: One line per offer: the decision and why the other agents did not get the call.
decision_log = logging.getLogger("acd.decision")


def _log_decision(d: Mapping[str, Any]) -> None:
    """The ``acd.decision`` line of one offer (ids only: never a caller number)."""
    if not decision_log.isEnabledFor(logging.INFO):
        return
    excluded = d.get("excluded")
    why = named = ""
    if isinstance(excluded, Mapping):
        why = f"; {excluded.get('summary', '')}"
        texts = [str(r.get("text")) for r in excluded.get("runners_up") or ()]
        named = f"; runners-up: {'; '.join(texts)}" if texts else ""
    sites = d.get("excluded_sites")
    if sites:
        why += "; other sites: " + "; ".join(f"{e.get('site')}: {e.get('reason')}"
                                              for e in sites)
    target = f"agent {d.get('agent')}" if d.get("agent") else f"site {d.get('site')}"
    decision_log.info("call %s queue %s stage %s attempt %s -> %s by %s among %s "
                      "candidate(s)%s%s", d.get("call_id"), d.get("queue"), d.get("stage"),
                      d.get("attempt"), target, d.get("strategy"), d.get("candidates"),
                      why, named)
