"""The engine's state machine: events in, effects out, no I/O.

One writer: :class:`EngineCore` is only ever touched by the engine's inbox loop
(``acd.runtime.engine``). Each :meth:`EngineCore.apply` takes one event, updates calls and
agents, asks the routing policy for matches, and returns the effects the adapters carry
out (dial an agent from a call's FastAGI session, start a timer, publish an event).

Vocabulary, kept on separate axes (STYLE.md):

* agent **status** — chosen by the person: logged_out, available, paused(reason);
* agent **state** — driven by the engine: idle, ringing, on_call, wrap_up;
* **device** state — what Asterisk says of the phone (NOT_INUSE, INUSE, UNAVAILABLE…);
* **call** state — waiting → offered → connected → completed, or abandoned.

An agent is routable when available, idle and its phone is free. A phone is free when
Asterisk says ``NOT_INUSE``; ``UNKNOWN`` (the engine has not heard of the device) counts
as free only on a server whose device state the engine cannot learn (no AMI, or AMI
lost): with AMI up, a device nobody told us about is not free. A dial that fails with
``CHANUNAVAIL``/``CONGESTION`` marks the phone unreachable (not the agent's fault: no
pause) until Asterisk reports it coming back or ``engine.unreachable_retry`` passes.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache, partial
from typing import Any

from acd.config import Config, RonaAction
from routing import AgentSpec, QueueSpec, Reason, Router, WaitingCall, Why
from routing.partners import PartnerSite, RegionRule, partner_candidates, partner_exclusions

#: Only for a failure that must not stop routing (the core otherwise returns effects).
log = logging.getLogger("acd.domain.core")


class AgentStatus(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    PAUSED = "paused"


class AgentState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class CallState(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    #: Handed back to the dialplan (engine stopping or stepping down): the caller waits
    #: on in the engine that is active now, with its place; not an abandon.
    RELEASED = "released"


#: Asterisk device states (``ast_devstate_str``) under which an idle agent may be offered
#: a call. UNKNOWN counts as free only where the engine has no device state (no AMI, or
#: AMI lost): we still route rather than stall. See ``EngineCore.phone_free``.
FREE_DEVICE_STATES = frozenset({"NOT_INUSE", "UNKNOWN"})

#: How many completed calls are remembered to recognise one coming back (transfer).
RECENT_CALLS = 2_000

#: DIALSTATUS values that mean "the agent did not take it" (ring-no-answer family).
RONA_STATUSES = frozenset({"NOANSWER", "BUSY"})

#: DIALSTATUS values that mean "the phone could not be reached" (unregistered, gone,
#: rejected by the network): the device is unavailable; the person is not at fault.
UNREACHABLE_STATUSES = frozenset({"CHANUNAVAIL", "CONGESTION"})


# -- events (inbox) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallArrived:
    call_id: str
    queue_id: str
    caller: str
    entry_time: float
    now: float
    channel: str = ""
    uniqueid: str = ""
    #: Added to the queue's priority (caller segment).
    priority_boost: int = 0
    segment: str = ""
    #: The caller's province (ISO 3166-2:CN) and whether it was really known.
    region: str = ""
    region_known: bool = False
    #: Partners first (primary region, or the queue is closed and a partner is open).
    partner_first: bool = False
    #: The Asterisk server the caller is on (``asterisk.servers[].name``); "" = default.
    server: str = ""


@dataclass(frozen=True, slots=True)
class CallClosed:
    """A caller reached a closed queue (after hours, holiday) and got the closed action."""

    call_id: str
    queue_id: str
    caller: str
    now: float


@dataclass(frozen=True, slots=True)
class CallHungUp:
    """The caller's channel is gone (HANGUP or the session's socket closed), or with
    ``released`` the session handed the caller back to the dialplan."""

    call_id: str
    now: float
    released: bool = False


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The agent picked up (AMI DialEnd ANSWER for the caller's channel)."""

    call_id: str
    agent_id: str
    now: float


@dataclass(frozen=True, slots=True)
class DialFinished:
    """``Dial`` returned in the call's session. ``talk`` is ANSWEREDTIME when answered."""

    call_id: str
    agent_id: str
    status: str
    now: float
    talk: float = 0.0
    #: Set when the dial went to a partner site instead of an agent.
    site_id: str = ""


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    device: str
    state: str
    now: float


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """Full device-state list after an AMI (re)connect: resync before trusting state.

    With ``server`` the snapshot comes from that Asterisk's live AMI: from then on a
    device of that server the engine has not heard of (UNKNOWN) is not free."""

    states: Mapping[str, str]
    now: float
    server: str = ""


@dataclass(frozen=True, slots=True)
class DeviceStateLost:
    """The AMI of ``server`` is down (lost, or never came up): the engine routes on what
    it last knew, and an UNKNOWN device counts as free again (rather than stall)."""

    server: str
    now: float


@dataclass(frozen=True, slots=True)
class PhoneRecheck:
    """Time to try again a phone a dial found unreachable (``engine.unreachable_retry``)."""

    agent_id: str
    token: int
    now: float


@dataclass(frozen=True, slots=True)
class SetAgentStatus:
    agent_id: str
    status: AgentStatus
    now: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TransferCall:
    """Move a waiting call to another queue; it keeps its entry time and place."""

    call_id: str
    queue_id: str
    now: float


@dataclass(frozen=True, slots=True)
class SetCallPriority:
    """A supervisor re-prioritises a waiting call (its wait still counts)."""

    call_id: str
    priority: int
    now: float


@dataclass(frozen=True, slots=True)
class PartnerDue:
    """A waiting call's wait may have made more partner sites eligible."""

    call_id: str
    now: float


@dataclass(frozen=True, slots=True)
class StageDue:
    """A waiting call may have reached its queue's next escalation stage."""

    call_id: str
    now: float


@dataclass(frozen=True, slots=True)
class WrapUpDone:
    agent_id: str
    token: int
    now: float


@dataclass(frozen=True, slots=True)
class OfferFailed:
    """The adapter could not deliver an offer (the call's session is gone)."""

    call_id: str
    agent_id: str
    now: float


@dataclass(frozen=True, slots=True)
class PartnerChannels:
    """Partner trunk channels that Asterisk ``server`` has and no call of ours explains
    (AMI resync: calls put through before a restart or takeover). Each holds a place in
    its site's capacity until it hangs up. Replaces what was known for that server."""

    server: str
    #: Channel name → partner site id.
    channels: Mapping[str, str]
    now: float


@dataclass(frozen=True, slots=True)
class ChannelGone:
    """AMI ``Hangup`` of a channel (only sent for channels :class:`PartnerChannels`
    reported)."""

    server: str
    channel: str
    now: float


Event = (
    CallArrived | CallClosed | CallHungUp | CallAnswered | DialFinished | DeviceStateChanged
    | DeviceSnapshot | DeviceStateLost | PhoneRecheck | SetAgentStatus | TransferCall
    | SetCallPriority | StageDue | PartnerDue | WrapUpDone
    | OfferFailed | PartnerChannels | ChannelGone
)


# -- effects (for the adapters) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """Dial ``dial`` from the call's session, ringing at most ``timeout`` seconds."""

    call_id: str
    agent_id: str
    dial: str
    timeout: int
    #: Set when the target is a partner site (``agent_id`` is then empty).
    site_id: str = ""


@dataclass(frozen=True, slots=True)
class StartTimer:
    delay: float
    event: Event


@dataclass(frozen=True, slots=True)
class Publish:
    """A state change for logs, subscribers and (later) the API/WebSocket."""

    name: str
    data: Mapping[str, Any]


Effect = Offer | StartTimer | Publish


class DomainError(Exception):
    """A command that cannot be carried out; state is untouched. ``code`` is stable."""

    code = "domain_error"


class UnknownAgent(DomainError):
    code = "unknown_agent"


class UnknownPauseReason(DomainError):
    code = "unknown_pause_reason"


class UnknownCall(DomainError):
    code = "unknown_call"


class UnknownQueue(DomainError):
    code = "unknown_queue"


class CallNotWaiting(DomainError):
    code = "call_not_waiting"


# -- records --------------------------------------------------------------------------


@dataclass(slots=True)
class Agent:
    agent_id: str
    device: str
    status: AgentStatus = AgentStatus.LOGGED_OUT
    reason: str = ""
    state: AgentState = AgentState.IDLE
    #: What Asterisk last said of the phone (UNKNOWN: nothing yet).
    device_state: str = "UNKNOWN"
    idle_since: float = 0.0
    call_id: str | None = None
    answered: int = 0
    missed: int = 0
    consecutive_missed: int = 0
    wrap_token: int = 0
    #: The Asterisk server the phone is on.
    server: str = ""
    #: A dial found the phone unreachable (CHANUNAVAIL/CONGESTION) and Asterisk has not
    #: said it came back since; ``recheck_token`` tells the current retry timer.
    unreachable: bool = False
    recheck_token: int = 0
    #: Whether the phone may be rung now (kept by the core: EngineCore.phone_free).
    phone_free: bool = True

    @property
    def routable(self) -> bool:
        return (
            self.status is AgentStatus.AVAILABLE
            and self.state is AgentState.IDLE
            and self.phone_free
        )

    @property
    def device_shown(self) -> str:
        """The device state for people: UNAVAILABLE while a dial found it unreachable."""
        return "UNAVAILABLE" if self.unreachable else self.device_state


@dataclass(slots=True)
class Call:
    call_id: str
    queue_id: str
    caller: str
    entry_time: float
    arrived: float
    channel: str = ""
    uniqueid: str = ""
    state: CallState = CallState.WAITING
    priority: int = 0
    seq: int = 0
    agent_id: str | None = None
    offers: int = 0
    answered_at: float | None = None
    ended_at: float | None = None
    tried: list[str] = field(default_factory=list)
    segment: str = ""
    #: The caller's own priority on top of the queue's (segment, supervisor).
    boost: int = 0
    #: The router's record of this call (stage, seniority) while it is in line.
    waiting: WaitingCall | None = None
    stage: int = 0
    region: str = ""
    region_known: bool = False
    partner_first: bool = False
    server: str = ""
    #: The partner site the call is offered to / connected with.
    site_id: str | None = None
    holds_site: bool = False
    stage_timer_at: float | None = None
    tried_sites: set[str] = field(default_factory=set)
    #: The last routing decision: stage, strategy, candidates, chosen agent.
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def wait(self) -> float:
        """Seconds waited from first entry to answer (or to now/end if never answered)."""
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return max(0.0, (end if end is not None else self.arrived) - self.entry_time)


@dataclass(slots=True)
class QueueStats:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within_target: int = 0
    wait_answered_total: float = 0.0
    rona: int = 0
    closed: int = 0
    transferred_in: int = 0
    transferred_out: int = 0
    overflowed: int = 0
    abandoned_after_target: int = 0


@dataclass(slots=True)
class SiteStats:
    offered: int = 0
    answered: int = 0
    rejected: int = 0
    active: int = 0


@dataclass(slots=True)
class RegionStats:
    calls: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0


class EngineCore:
    """Calls, agents and the routing policy; mutated only through :meth:`apply`."""

    def __init__(self, config: Config, *, device_state_servers: Iterable[str] = ()) -> None:
        self.config = config
        #: Servers whose device state comes over AMI: until it is lost, an UNKNOWN device
        #: there is not free (the engine learns every agent's device at each resync).
        self.device_state_known: set[str] = set(device_state_servers)
        self.agents: dict[str, Agent] = {}
        self._agent_by_device: dict[str, str] = {}
        for a in config.agents:
            device = f"PJSIP/{a.sip_endpoint}"
            self.agents[a.id] = Agent(a.id, device, server=config.agent_server(a))
            self._agent_by_device[device.upper()] = a.id
        for agent in self.agents.values():
            agent.phone_free = self.phone_free(agent)
        servers = [srv.name for srv in config.asterisk.server_list]
        #: With several Asterisk servers a call may only go to agents on its own server
        #: (the agent is dialled from the caller's channel): each queue is split into one
        #: router queue per server, and groups are qualified by server (see _per_server).
        self._split = len(servers) > 1
        self.default_server = servers[0]
        self.router = Router(*self._router_specs(config, servers))
        self.calls: dict[str, Call] = {}
        self._by_uniqueid: dict[str, str] = {}
        self.finished: deque[Call] = deque(maxlen=10_000)
        self.stats: dict[str, QueueStats] = {q.id: QueueStats() for q in config.queues}
        self.partners = [
            PartnerSite(s.id, f"PJSIP/{s.number}@{s.trunk_endpoint}", s.capacity,
                        frozenset(s.regions), frozenset(s.services), s.preference)
            for s in config.partners()
        ]
        self._site_schedules = {s.id: config.site_schedule(s) for s in config.partners()}
        self._partner_by_device = {f"PJSIP/{s.trunk_endpoint}".upper(): s.id
                                   for s in config.partners()}
        self.site_stats: dict[str, SiteStats] = {s.id: SiteStats() for s in config.sites}
        #: (server, channel) → site: partner calls found in Asterisk that no call of ours
        #: explains (put through before a restart): counted in the site's ``active``.
        self._recovered_channels: dict[tuple[str, str], str] = {}
        self.region_stats: dict[str, RegionStats] = {}
        #: Waiting calls that may go to a partner now (their wait or policy allows it).
        self._partner_ready: set[str] = set()
        self._seq = itertools.count(1)
        self._now = 0.0
        #: False while this engine is not the active one (hot standby, stepped down,
        #: stopping): state is still kept, but no call is offered to anyone.
        self.routing = True
        #: Recently completed calls by id, to recognise a call that comes back.
        self._recent: OrderedDict[str, Call] = OrderedDict()

    def _router_specs(self, config: Config, servers: list[str],
                      ) -> tuple[list[QueueSpec], list[AgentSpec]]:
        if not self._split:
            return ([q.spec() for q in config.queues],
                    [AgentSpec(a.id, dict(a.skills), frozenset(a.groups))
                     for a in config.agents])
        all_groups = {g for a in config.agents for g in a.groups}
        for q in config.queues:
            all_groups |= set(q.groups or ()) | {g for st in q.stages for g in st.groups or ()}

        def qualify(groups: frozenset[str] | None, srv: str) -> frozenset[str]:
            # None (every agent) → every agent of that server; a set → the same groups on
            # that server. Every agent carries "@<server>", so stages still only widen.
            if groups is None:
                return frozenset({f"@{srv}"} | {f"{g}@{srv}" for g in all_groups})
            return frozenset(f"{g}@{srv}" for g in groups)

        queues = [
            replace(spec, queue_id=self._rq(spec.queue_id, srv),
                    groups=qualify(spec.groups, srv),
                    stages=tuple(replace(st, groups=qualify(st.groups, srv))
                                 for st in spec.stages))
            for spec in (q.spec() for q in config.queues) for srv in servers
        ]
        agents = [
            AgentSpec(a.id, dict(a.skills),
                      frozenset({f"@{config.agent_server(a)}"}
                                | {f"{g}@{config.agent_server(a)}" for g in a.groups}))
            for a in config.agents
        ]
        return queues, agents

    def _server_of(self, name: str) -> str:
        known = {s.name for s in self.config.asterisk.server_list}
        return name if name in known else self.default_server

    def _rq(self, queue_id: str, server: str) -> str:
        """The router's queue for a call of ``queue_id`` on ``server``."""
        return f"{queue_id}@{server}" if self._split else queue_id

    def initial_effects(self, now: float) -> list[Effect]:
        """Apply each agent's configured start status."""
        effects: list[Effect] = []
        for a in self.config.agents:
            if a.status == "available":
                effects += self.apply(SetAgentStatus(a.id, AgentStatus.AVAILABLE, now))
        return effects

    # -- the one entry point -----------------------------------------------------------

    def apply(self, event: Event) -> list[Effect]:
        out: list[Effect] = []
        self._now = event.now
        match event:
            case CallArrived():
                self._call_arrived(event, out)
            case CallClosed():
                self.stats[event.queue_id].closed += 1
                out.append(Publish("call_closed", {"call_id": event.call_id,
                                                   "queue": event.queue_id}))
            case CallHungUp():
                self._call_hung_up(event, out)
            case CallAnswered():
                self._call_answered(event, out)
            case DialFinished():
                self._dial_finished(event, out)
            case DeviceStateChanged():
                self._device_state(event.device, event.state, event.now, out)
            case DeviceSnapshot():
                self._device_snapshot(event, out)
            case DeviceStateLost():
                self._device_state_lost(event, out)
            case PhoneRecheck():
                self._phone_recheck(event, out)
            case SetAgentStatus():
                self._set_status(event, out)
            case TransferCall():
                self._transfer(event, out)
            case SetCallPriority():
                self._set_priority(event, out)
            case StageDue():
                self._stage_due(event, out)
            case PartnerDue():
                self._partner_due(event, out)
            case WrapUpDone():
                self._wrap_up_done(event, out)
            case OfferFailed():
                self._offer_failed(event, out)
            case PartnerChannels():
                self._partner_channels(event, out)
            case ChannelGone():
                self._channel_gone(event, out)
        if self.routing:
            self._dispatch(out)
        if self._partner_ready and self.routing:
            self._try_partners(out)
        return out

    # -- calls -------------------------------------------------------------------------

    def _call_arrived(self, ev: CallArrived, out: list[Effect]) -> None:
        existing = self.calls.get(ev.call_id)
        if existing is not None and existing.state is CallState.CONNECTED:
            # Re-entry of a call an agent had answered: a blind transfer from the agent's
            # phone to a queue. The answered leg is complete; the caller queues again
            # with its original entry time.
            self._complete(existing, ev.now, out)
            existing = None
        served = self._recent.pop(ev.call_id, None) if existing is None else None
        if served is not None:
            # A call already served coming back (agent's blind transfer to a queue's
            # feature code; the dialplan kept ACD_ENTRY and ACD_CALL_ID): same entry time
            # and sequence, counted as a transfer, not as a new offered call.
            entry_time = min(served.entry_time, ev.entry_time)
            seq, is_new = served.seq, False
            if served.queue_id != ev.queue_id:
                self.stats[served.queue_id].transferred_out += 1
                self.stats[ev.queue_id].transferred_in += 1
        elif existing is not None:
            # The same call re-entering (its session dropped and the dialplan retried):
            # it keeps its place. Whatever the old session held is released first.
            self._release_agent(existing, ev.now, out)
            self.router.remove_call(existing.call_id)
            entry_time = min(existing.entry_time, ev.entry_time)
            seq = existing.seq
            is_new = False
        else:
            entry_time, seq, is_new = ev.entry_time, next(self._seq), True
        queue = self.config.queue(ev.queue_id)
        call = Call(
            ev.call_id, ev.queue_id, ev.caller, min(entry_time, ev.now), ev.now,
            ev.channel, ev.uniqueid, priority=queue.priority + ev.priority_boost, seq=seq,
            segment=ev.segment, boost=ev.priority_boost,
            region=ev.region, region_known=ev.region_known,
            partner_first=ev.partner_first, server=self._server_of(ev.server),
        )
        self.calls[call.call_id] = call
        if call.uniqueid:
            self._by_uniqueid[self._channel_key(call.server, call.uniqueid)] = call.call_id
        if is_new:
            self.stats[call.queue_id].offered += 1
            if call.region:
                self.region_stats.setdefault(call.region, RegionStats()).calls += 1
        if not (self.partners and self._rule(call).primary
                and self._offer_first_partner(call, out)):
            self._enqueue(call, ev.now, out)
            self._arm_partners(call, ev.now, out)
        out.append(Publish("call_waiting", {
            "call_id": call.call_id, "queue": call.queue_id, "caller": call.caller,
            "entry_time": call.entry_time, "reentry": not is_new,
            "priority": call.priority, "segment": call.segment, "region": call.region,
            "server": call.server,
        }))

    def _call_hung_up(self, ev: CallHungUp, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        if call.state is CallState.CONNECTED:
            # The caller hung up on the agent; Dial's return (DialFinished) completes it.
            # If the session died before reporting, complete it here.
            self._complete(call, ev.now, out)
            return
        if call.state in (CallState.WAITING, CallState.OFFERED):
            self.router.remove_call(call.call_id)
            self._release_agent(call, ev.now, out)
            self._release_site(call)
            self._partner_ready.discard(call.call_id)
            call.ended_at = ev.now
            if ev.released:
                call.state = CallState.RELEASED
                out.append(Publish("call_released", {
                    "call_id": call.call_id, "queue": call.queue_id, "wait": call.wait,
                }))
                self._finish(call)
                return
            call.state = CallState.ABANDONED
            self.stats[call.queue_id].abandoned += 1
            if call.wait > self.config.queue(call.queue_id).sl_target:
                self.stats[call.queue_id].abandoned_after_target += 1
            if call.region in self.region_stats:
                self.region_stats[call.region].abandoned += 1
            out.append(Publish("call_abandoned", {
                "call_id": call.call_id, "queue": call.queue_id, "wait": call.wait,
            }))
            self._finish(call)

    def _call_answered(self, ev: CallAnswered, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.state is not CallState.OFFERED or call.agent_id != ev.agent_id:
            return
        self._connect(call, ev.now, out)

    def _connect(self, call: Call, now: float, out: list[Effect]) -> None:
        assert call.agent_id is not None
        self._count_answered(call, now)
        agent = self.agents[call.agent_id]
        agent.state = AgentState.ON_CALL
        agent.answered += 1
        agent.consecutive_missed = 0
        out.append(Publish("call_connected", {
            "call_id": call.call_id, "queue": call.queue_id, "agent": agent.agent_id,
            "wait": call.wait, "offers": call.offers,
        }))
        out.append(self._agent_event(agent))

    def _count_answered(self, call: Call, answered_at: float) -> None:
        """The call is connected (to an agent or a partner site): queue and region figures."""
        call.state = CallState.CONNECTED
        call.answered_at = answered_at
        st = self.stats[call.queue_id]
        st.answered += 1
        st.wait_answered_total += call.wait
        if call.wait <= self.config.queue(call.queue_id).sl_target:
            st.answered_within_target += 1
        if call.region in self.region_stats:
            self.region_stats[call.region].answered += 1

    def _dial_finished(self, ev: DialFinished, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if ev.site_id:
            if call is not None and call.site_id == ev.site_id:
                self._partner_dial_finished(call, ev, out)
            return
        if call is None or call.agent_id != ev.agent_id:
            return
        if ev.status == "ANSWER":
            if call.state is CallState.OFFERED:
                # AMI did not tell us (down or slow): the answer time is end - talk time.
                self._connect(call, ev.now - max(ev.talk, 0.0), out)
            if call.state is CallState.CONNECTED:
                self._complete(call, ev.now, out)
            return
        if call.state is not CallState.OFFERED:
            return
        agent = self.agents[ev.agent_id]
        if ev.status in UNREACHABLE_STATUSES:
            # The phone could not be reached (unregistered, gone): not a ring-no-answer,
            # the person is not paused; the phone is unavailable until Asterisk says it
            # is back or the retry time passes. The call keeps its place.
            out.append(Publish("agent_unreachable", {
                "agent": agent.agent_id, "call_id": call.call_id, "dialstatus": ev.status,
            }))
            call.agent_id = None
            agent.call_id = None
            agent.state = AgentState.IDLE
            agent.idle_since = ev.now
            self._mark_unreachable(agent, ev.now, out)
            out.append(self._agent_event(agent))
            self._requeue(call, out)
        elif ev.status in RONA_STATUSES:
            agent.missed += 1
            self.stats[call.queue_id].rona += 1
            out.append(Publish("agent_no_answer", {
                "agent": agent.agent_id, "call_id": call.call_id, "dialstatus": ev.status,
            }))
            call.agent_id = None
            agent.call_id = None
            agent.state = AgentState.IDLE
            agent.idle_since = ev.now
            agent.consecutive_missed += 1
            engine_cfg = self.config.engine
            if (engine_cfg.rona_action is RonaAction.PAUSE
                    and agent.status is AgentStatus.AVAILABLE
                    and agent.consecutive_missed >= engine_cfg.rona_limit):
                self._change_status(agent, AgentStatus.PAUSED,
                                    self.config.engine.rona_pause_reason, ev.now, out)
            else:
                # below the limit, or the agent logged out / paused while it rang: the
                # person's own choice stands
                self._refresh(agent)
                out.append(self._agent_event(agent))
            self._requeue(call, out)
        else:
            # CANCEL (caller hung up while it rang) or an unknown status: the agent is
            # not at fault; the caller's hangup arrives as CallHungUp.
            self._release_agent(call, ev.now, out)
            self._requeue(call, out)

    def _offer_failed(self, ev: OfferFailed, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.agent_id != ev.agent_id or call.state is not CallState.OFFERED:
            return
        self._release_agent(call, ev.now, out)
        self._requeue(call, out)

    def _waiting_call(self, call_id: str) -> Call:
        """Check first: the call exists and waits (not ringing an agent, not talking)."""
        call = self.calls.get(call_id)
        if call is None:
            raise UnknownCall(f"no call {call_id!r}")
        if call.state is not CallState.WAITING:
            raise CallNotWaiting(f"call {call_id!r} is {call.state.value}, not waiting")
        return call

    def _transfer(self, ev: TransferCall, out: list[Effect]) -> None:
        call = self._waiting_call(ev.call_id)
        if ev.queue_id not in self.stats:
            raise UnknownQueue(f"no queue {ev.queue_id!r}")
        old = call.queue_id
        if old == ev.queue_id:
            return
        call.waiting = self.router.move_call(call.call_id, self._rq(ev.queue_id, call.server),
                                            queued_at=ev.now)
        call.queue_id = ev.queue_id
        call.stage = call.waiting.stage
        call.priority = self.config.queue(ev.queue_id).priority + call.boost
        self.stats[old].transferred_out += 1
        self.stats[ev.queue_id].transferred_in += 1
        self._arm_stage_timer(call, ev.now, out)
        out.append(Publish("call_transferred", {
            "call_id": call.call_id, "from": old, "queue": call.queue_id,
            "entry_time": call.entry_time,
        }))

    def _set_priority(self, ev: SetCallPriority, out: list[Effect]) -> None:
        call = self._waiting_call(ev.call_id)
        if not 0 <= ev.priority <= 1000:
            raise DomainError("priority must be within 0..1000")
        waiting = self.router.remove_call(call.call_id) or call.waiting
        call.boost = ev.priority
        call.priority = self.config.queue(call.queue_id).priority + call.boost
        assert waiting is not None
        call.waiting = replace(waiting, priority=call.boost)
        self.router.add_call(call.waiting)
        out.append(Publish("call_priority", {"call_id": call.call_id,
                                             "priority": call.priority}))

    def _enqueue(self, call: Call, now: float, out: list[Effect]) -> None:
        """Put a call in line: new, or back (RONA) with its seniority and stage."""
        if call.waiting is None:
            call.waiting = WaitingCall(call.call_id, self._rq(call.queue_id, call.server),
                                       call.boost,
                                       call.entry_time, call.seq)
        self.router.add_call(call.waiting)
        self._advance_stage(call, now, out)

    def _advance_stage(self, call: Call, now: float, out: list[Effect]) -> None:
        """Move a waiting call to the stage its wait has reached; arm the next timer."""
        due = self.router.due_stage(call.call_id, now)
        if due > call.stage:
            call.waiting = self.router.set_stage(call.call_id, due)
            call.stage = due
            out.append(Publish("call_stage", {"call_id": call.call_id,
                                              "queue": call.queue_id, "stage": due}))
        self._arm_stage_timer(call, now, out)

    def _arm_stage_timer(self, call: Call, now: float, out: list[Effect]) -> None:
        at = self.router.next_stage_at(call.call_id)
        if at is not None and at != call.stage_timer_at:  # one timer per stage boundary
            call.stage_timer_at = at
            out.append(StartTimer(max(0.0, at - now), StageDue(call.call_id, at)))

    def _stage_due(self, ev: StageDue, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.state is not CallState.WAITING:
            return  # offered/talking/gone: re-checked when it waits again
        self._advance_stage(call, ev.now, out)

    # -- partner sites -----------------------------------------------------------------

    def _rule(self, call: Call) -> RegionRule:
        regions = self.config.regions
        return RegionRule(primary=call.partner_first or regions.is_primary(call.region),
                          overflow_after=regions.overflow_wait(call.region),
                          any_after=regions.any_partner_after)

    def _arm_partners(self, call: Call, now: float, out: list[Effect]) -> None:
        """Mark the call ready for partners now, or time the moment it will be."""
        if not self.partners or call.state is not CallState.WAITING:
            return
        rule = self._rule(call)
        waited = now - call.entry_time
        if rule.covering_allowed(waited) or rule.any_allowed(waited):
            self._partner_ready.add(call.call_id)
        later = rule.next_change(waited)
        if later is not None:
            out.append(StartTimer(later - waited, PartnerDue(call.call_id,
                                                             call.entry_time + later)))

    def _partner_due(self, ev: PartnerDue, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            self._arm_partners(call, ev.now, out)

    def partner_open(self, site_id: str, now: float) -> bool:
        return self._site_schedules[site_id].is_open(datetime.fromtimestamp(now, UTC))

    def _open_partners(self) -> set[str]:
        return {p.site_id for p in self.partners if self.partner_open(p.site_id, self._now)}

    def _best_partner(self, call: Call, open_sites: set[str]) -> PartnerSite | None:
        """The partner site that should take the call now, if any (routing.partners)."""
        candidates = partner_candidates(
            self.partners, region=call.region, queue_id=call.queue_id,
            waited=self._now - call.entry_time, rule=self._rule(call),
            open_sites=open_sites,
            active={sid: st.active for sid, st in self.site_stats.items()},
            tried=call.tried_sites)
        return candidates[0] if candidates else None

    def _try_partners(self, out: list[Effect]) -> None:
        open_sites = self._open_partners()
        for call_id in sorted(self._partner_ready, key=lambda c: (self.calls[c].entry_time,
                                                                   self.calls[c].seq)):
            call = self.calls[call_id]
            if call.state is not CallState.WAITING:
                continue
            site = self._best_partner(call, open_sites)
            if site is not None:
                self._offer_partner(call, site, out)  # counts it against the capacity

    def _offer_first_partner(self, call: Call, out: list[Effect]) -> bool:
        """Primary region (or closed queue): a covering partner before any agent."""
        if not self.routing:
            return False
        site = self._best_partner(call, self._open_partners())
        if site is None:
            return False
        self._offer_partner(call, site, out)
        return True

    def _offer_partner(self, call: Call, site: PartnerSite, out: list[Effect]) -> None:
        # Why the other sites did not get it, before this offer changes tried/active
        # (partner sites are few: a plain walk).
        others: list[tuple[str, str]] = []
        try:
            others = partner_exclusions(
                self.partners, chosen=site.site_id, region=call.region,
                queue_id=call.queue_id, waited=self._now - call.entry_time,
                rule=self._rule(call), open_sites=self._open_partners(),
                active={sid: st.active for sid, st in self.site_stats.items()},
                tried=call.tried_sites)
        except Exception:  # a diagnostic must never hold up an offer
            log.exception("call %s: other sites' exclusions not recorded", call.call_id)
        candidates = 1 + sum(why.startswith("ranked below") for _, why in others)
        waiting = self.router.remove_call(call.call_id)
        if waiting is not None:
            call.waiting = waiting
        self._partner_ready.discard(call.call_id)
        call.state = CallState.OFFERED
        call.site_id = site.site_id
        call.agent_id = None
        call.offers += 1
        call.tried_sites.add(site.site_id)
        call.holds_site = True
        st = self.site_stats[site.site_id]
        st.offered += 1
        st.active += 1
        self.stats[call.queue_id].overflowed += 1
        if call.region in self.region_stats:
            self.region_stats[call.region].overflowed += 1
        call.decision = {"site": site.site_id, "stage": call.stage,
                         "strategy": "partner", "candidates": candidates,
                         "excluded_sites": [{"site": sid, "reason": why}
                                            for sid, why in others]}
        out.append(Publish("call_overflowed", {
            "call_id": call.call_id, "queue": call.queue_id, "site": site.site_id,
            "region": call.region, "wait": self._now - call.entry_time,
            "attempt": call.offers, "stage": call.stage, "strategy": "partner",
            "candidates": candidates, "excluded_sites": call.decision["excluded_sites"],
        }))
        out.append(Offer(call.call_id, "", site.dial, self.config.engine.ring_timeout,
                         site_id=site.site_id))

    def _partner_dial_finished(self, call: Call, ev: DialFinished,
                               out: list[Effect]) -> None:
        site_id = ev.site_id
        if ev.status == "ANSWER":
            if call.state is CallState.OFFERED:
                self._count_answered(call, ev.now - max(ev.talk, 0.0))
                self.site_stats[site_id].answered += 1
                out.append(Publish("call_connected", {
                    "call_id": call.call_id, "queue": call.queue_id, "agent": None,
                    "site": site_id, "wait": call.wait, "offers": call.offers}))
            if call.state is CallState.CONNECTED:
                self._complete(call, ev.now, out)
            return
        if call.state is not CallState.OFFERED:
            return
        # busy / rejected / unavailable / no answer: the next partner, else back in line
        self.site_stats[site_id].rejected += 1
        out.append(Publish("partner_rejected", {"call_id": call.call_id, "site": site_id,
                                                "dialstatus": ev.status}))
        self._release_site(call)
        self._requeue(call, out)
        self._partner_ready.add(call.call_id)

    def _release_site(self, call: Call) -> None:
        """The call no longer holds a place in its partner's capacity."""
        if call.site_id is not None and call.holds_site:
            self.site_stats[call.site_id].active -= 1
            call.holds_site = False
            if call.state is CallState.OFFERED:
                call.site_id = None

    def explain(self, call_id: str) -> list[str]:
        """Why a waiting call goes where it goes (scans every agent: on demand only),
        or the recorded decision of a call already offered, with why the other agents
        did not get it (counted when the offer was made)."""
        call = self.calls.get(call_id)
        if call is None:
            raise UnknownCall(f"no call {call_id!r}")
        if call.state is CallState.WAITING:
            states = {a.agent_id: self._describe(a) for a in self.agents.values()}
            return self.router.explain(call_id, states).lines()
        d = call.decision
        target = d.get("agent") or f"partner site {d.get('site')}"
        lines = [f"offered to {target} at stage {d.get('stage')} by "
                 f"{d.get('strategy')} among {d.get('candidates')} candidate(s); "
                 f"now {call.state.value}"]
        excluded = d.get("excluded")
        if isinstance(excluded, dict):
            lines.append(f"  {excluded['summary']}")
            lines += [f"  runner-up {r['text']}" for r in excluded["runners_up"]]
        lines += [f"  site {e['site']}: {e['reason']}" for e in d.get("excluded_sites") or ()]
        return lines

    @staticmethod
    def _describe(agent: Agent) -> str:
        if agent.status is AgentStatus.PAUSED:
            return f"paused ({agent.reason})"
        if agent.status is AgentStatus.LOGGED_OUT:
            return "logged out"
        if agent.state is not AgentState.IDLE:
            return agent.state.value
        return f"phone {agent.device_shown}"

    def _requeue(self, call: Call, out: list[Effect]) -> None:
        """Back to waiting with its original entry time and sequence: it keeps its place."""
        call.state = CallState.WAITING
        call.agent_id = None
        self._enqueue(call, self._now, out)
        out.append(Publish("call_requeued", {"call_id": call.call_id, "queue": call.queue_id}))

    def _complete(self, call: Call, now: float, out: list[Effect]) -> None:
        call.state = CallState.COMPLETED
        call.ended_at = now
        agent = self.agents.get(call.agent_id or "")
        out.append(Publish("call_completed", {
            "call_id": call.call_id, "queue": call.queue_id, "agent": call.agent_id,
            "site": call.site_id, "wait": call.wait,
            "talk": now - (call.answered_at if call.answered_at is not None else now),
        }))
        self._release_site(call)
        if agent is not None and agent.call_id == call.call_id:
            agent.call_id = None
            wrap = self.config.queue(call.queue_id).wrap_up
            agent.wrap_token += 1
            if wrap > 0:
                agent.state = AgentState.WRAP_UP
                out.append(StartTimer(wrap, WrapUpDone(agent.agent_id, agent.wrap_token,
                                                       now + wrap)))
                out.append(self._agent_event(agent))
            else:
                agent.state = AgentState.IDLE
                agent.idle_since = now
                self._refresh(agent)
                out.append(self._agent_event(agent))
        self._finish(call)

    def _finish(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        self._partner_ready.discard(call.call_id)
        if call.state is CallState.COMPLETED:
            self._recent[call.call_id] = call
            if len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
        key = self._channel_key(call.server, call.uniqueid)
        if self._by_uniqueid.get(key) == call.call_id:
            del self._by_uniqueid[key]
        self.finished.append(call)

    def _release_agent(self, call: Call, now: float, out: list[Effect]) -> None:
        """An offer that ends without fault of the agent: back to idle, not penalised."""
        if call.agent_id is None:
            return
        agent = self.agents.get(call.agent_id)
        call.agent_id = None
        if agent is None or agent.state is not AgentState.RINGING:
            return
        agent.call_id = None
        agent.state = AgentState.IDLE
        agent.idle_since = now
        self._refresh(agent)
        out.append(self._agent_event(agent))

    # -- agents ------------------------------------------------------------------------

    def _channel_key(self, server: str, uniqueid: str) -> str:
        """Uniqueids are only unique per Asterisk: qualify them with several servers."""
        return f"{server}/{uniqueid}" if self._split else uniqueid

    def qualify_call_id(self, raw: str, server: str) -> str:
        """The engine-wide id of a call (ACD_CALL_ID is the caller channel's Uniqueid,
        unique per Asterisk only: with several servers it is qualified by the server)."""
        return f"{self._server_of(server)}/{raw}" if self._split else raw

    def partner_for_device(self, device: str) -> str | None:
        """The partner site whose trunk endpoint is ``device`` (``PJSIP/<endpoint>``)."""
        return self._partner_by_device.get(device.upper())

    def holds_recovered_channel(self, server: str, channel: str) -> bool:
        return (server, channel) in self._recovered_channels

    def _partner_channels(self, ev: PartnerChannels, out: list[Effect]) -> None:
        now_known = {(ev.server, ch): site for ch, site in ev.channels.items()
                     if site in self.site_stats}
        for key, site in list(self._recovered_channels.items()):
            if key[0] == ev.server and key not in now_known:
                del self._recovered_channels[key]
                self.site_stats[site].active -= 1
        for key, site in now_known.items():
            if key not in self._recovered_channels:
                self._recovered_channels[key] = site
                self.site_stats[site].active += 1
        for site in sorted(set(now_known.values())):
            out.append(Publish("site_recovered", {
                "site": site, "server": ev.server,
                "channels": sum(1 for s in now_known.values() if s == site),
                "active": self.site_stats[site].active}))

    def _channel_gone(self, ev: ChannelGone, out: list[Effect]) -> None:
        site = self._recovered_channels.pop((ev.server, ev.channel), None)
        if site is not None:
            # A place at that partner is free again: calls ready for partners stay in
            # ``_partner_ready``, so the end of this apply tries them.
            self.site_stats[site].active -= 1

    def call_for_uniqueid(self, uniqueid: str, server: str = "") -> str | None:
        """The call whose caller channel has this Asterisk Uniqueid."""
        return self._by_uniqueid.get(self._channel_key(self._server_of(server), uniqueid))

    def agent_for_device(self, device: str) -> Agent | None:
        aid = self._agent_by_device.get(device.upper())
        return None if aid is None else self.agents[aid]

    def phone_free(self, agent: Agent) -> bool:
        """Whether the agent's phone may be rung: Asterisk says NOT_INUSE, or says nothing
        on a server whose device state the engine cannot learn; never while a dial found
        it unreachable."""
        if agent.unreachable:
            return False
        state = agent.device_state
        return state == "NOT_INUSE" or (state == "UNKNOWN"
                                        and agent.server not in self.device_state_known)

    def _device_state(self, device: str, state: str, now: float, out: list[Effect]) -> None:
        agent = self.agent_for_device(device)
        if agent is None or agent.device_state == state:
            return
        if agent.unreachable and state in FREE_DEVICE_STATES \
                and agent.device_state not in FREE_DEVICE_STATES:
            # Asterisk saw the phone come back (it registered): try it again now. A
            # plain "free" repeated after the failed dial is no such news.
            agent.unreachable = False
        agent.device_state = state
        self._refresh(agent)
        out.append(self._agent_event(agent))

    def _device_snapshot(self, ev: DeviceSnapshot, out: list[Effect]) -> None:
        if ev.server:
            self._set_device_state_known(ev.server, True, out)
        for device, state in ev.states.items():
            self._device_state(device, state, ev.now, out)

    def _device_state_lost(self, ev: DeviceStateLost, out: list[Effect]) -> None:
        self._set_device_state_known(ev.server, False, out)

    def _set_device_state_known(self, server: str, known: bool, out: list[Effect]) -> None:
        if (server in self.device_state_known) == known:
            return
        if known:
            self.device_state_known.add(server)
        else:
            self.device_state_known.discard(server)
        for agent in self.agents.values():
            if agent.server == server and agent.device_state == "UNKNOWN":
                self._refresh(agent)
                out.append(self._agent_event(agent))

    def _mark_unreachable(self, agent: Agent, now: float, out: list[Effect]) -> None:
        agent.unreachable = True
        agent.recheck_token += 1
        self._refresh(agent)
        retry = self.config.engine.unreachable_retry
        out.append(StartTimer(retry, PhoneRecheck(agent.agent_id, agent.recheck_token,
                                                  now + retry)))

    def _phone_recheck(self, ev: PhoneRecheck, out: list[Effect]) -> None:
        agent = self.agents.get(ev.agent_id)
        if agent is None or not agent.unreachable or agent.recheck_token != ev.token:
            return
        agent.unreachable = False
        self._refresh(agent)
        out.append(self._agent_event(agent))

    def _set_status(self, ev: SetAgentStatus, out: list[Effect]) -> None:
        agent = self.agents.get(ev.agent_id)
        if agent is None:
            raise UnknownAgent(f"unknown agent {ev.agent_id!r}")
        allowed = {*self.config.engine.pause_reasons, self.config.engine.rona_pause_reason}
        if ev.status is AgentStatus.PAUSED and ev.reason not in allowed:
            raise UnknownPauseReason(
                f"pause reason {ev.reason!r} is not configured (one of: "
                f"{', '.join(sorted(allowed))})")
        if ev.status is AgentStatus.AVAILABLE:
            agent.consecutive_missed = 0
            # The person says it is there: its phone is worth another try.
            agent.unreachable = False
        self._change_status(agent, ev.status, ev.reason, ev.now, out)

    def _change_status(self, agent: Agent, status: AgentStatus, reason: str, now: float,
                       out: list[Effect]) -> None:
        if agent.status is AgentStatus.LOGGED_OUT and status is not AgentStatus.LOGGED_OUT:
            agent.idle_since = now
        agent.status = status
        agent.reason = reason if status is AgentStatus.PAUSED else ""
        self._refresh(agent)
        out.append(self._agent_event(agent))

    def _wrap_up_done(self, ev: WrapUpDone, out: list[Effect]) -> None:
        agent = self.agents.get(ev.agent_id)
        if agent is None or agent.wrap_token != ev.token or agent.state is not AgentState.WRAP_UP:
            return
        agent.state = AgentState.IDLE
        agent.idle_since = ev.now
        self._refresh(agent)
        out.append(self._agent_event(agent))

    def _refresh(self, agent: Agent) -> None:
        """Keep the router's view of one agent in step with its record."""
        agent.phone_free = self.phone_free(agent)
        if agent.routable:
            self.router.set_routable(agent.agent_id, agent.idle_since,
                                     calls_today=agent.answered)
        else:
            self.router.set_unroutable(agent.agent_id)

    def _agent_event(self, agent: Agent) -> Publish:
        return Publish("agent", {
            "agent": agent.agent_id, "status": agent.status.value, "reason": agent.reason,
            "state": agent.state.value, "device": agent.device_shown,
            "call_id": agent.call_id,
        })

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(self, out: list[Effect]) -> None:
        for m in self.router.dispatch():
            call = self.calls[m.call_id]
            agent = self.agents[m.agent_id]
            call.state = CallState.OFFERED
            call.agent_id = agent.agent_id
            call.offers += 1
            call.tried.append(agent.agent_id)
            agent.state = AgentState.RINGING
            agent.call_id = call.call_id
            call.decision = {"agent": agent.agent_id, "stage": m.stage,
                             "strategy": m.strategy.value, "candidates": m.candidates}
            if self.config.engine.explain_offers:
                # why the others did not get it, before the offer goes out (off the
                # router's decision path: O(agents its stage admits), Router.exclusions)
                try:
                    excluded = self.router.exclusions(
                        m, partial(_why_unroutable, self.agents))
                    call.decision["excluded"] = excluded.as_dict()
                except Exception:  # a diagnostic must never hold up an offer
                    log.exception("call %s: exclusions of the offer not recorded",
                                  call.call_id)
            out.append(Publish("call_offered", {
                "call_id": call.call_id, "queue": call.queue_id, "attempt": call.offers,
                "wait": self._now - call.entry_time, **call.decision,
            }))
            out.append(Offer(call.call_id, agent.agent_id, agent.device,
                             self.config.engine.ring_timeout))
            out.append(self._agent_event(agent))

    # -- views -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "queues": {
                qid: {
                    "waiting": sum(1 for c in self.calls.values()
                                   if c.queue_id == qid and c.state is CallState.WAITING),
                    **vars_of(st),
                }
                for qid, st in self.stats.items()
            },
            "agents": {
                a.agent_id: {"status": a.status.value, "reason": a.reason,
                             "state": a.state.value, "device": a.device_shown,
                             "phone_free": a.phone_free, "answered": a.answered, "missed": a.missed}
                for a in self.agents.values()
            },
            "calls": {
                c.call_id: {"queue": c.queue_id, "state": c.state.value, "agent": c.agent_id,
                            "caller": c.caller, "entry_time": c.entry_time}
                for c in self.calls.values()
            },
        }


@lru_cache(maxsize=512)
def _reason(code: Why, detail: str = "") -> Reason:
    """One shared object per reason (pause reasons and device states are few)."""
    return Reason(code, detail=detail)


# Looked up once: reading an enum member through its class costs more than the rest of
# _why_unroutable, which runs for each admitted agent who is not free, at every offer.
_AVAILABLE, _LOGGED_OUT, _IDLE = AgentStatus.AVAILABLE, AgentStatus.LOGGED_OUT, AgentState.IDLE
_BY_STATE = {AgentState.RINGING: _reason(Why.RINGING), AgentState.ON_CALL: _reason(Why.ON_CALL),
             AgentState.WRAP_UP: _reason(Why.WRAP_UP)}
_NO_AGENT, _AWAY, _TAKEN = _reason(Why.NOT_ROUTABLE), _reason(Why.LOGGED_OUT), _reason(Why.RINGING)
_PAUSED, _PHONE = Why.PAUSED, Why.PHONE


def _why_unroutable(agents: Mapping[str, Agent], agent_id: str) -> Reason:
    """Why the router does not count an agent as free, from its record: the person's
    status first, then the engine's state, then the phone."""
    agent = agents.get(agent_id)
    if agent is None:
        return _NO_AGENT
    status = agent.status
    if status is _AVAILABLE:
        if agent.state is not _IDLE:
            return _BY_STATE[agent.state]
        if not agent.phone_free:
            return _reason(_PHONE, agent.device_shown)
        # routable by its record: another match of the same dispatch took it, rings next
        return _TAKEN
    if status is _LOGGED_OUT:
        return _AWAY
    return _reason(_PAUSED, agent.reason)


def vars_of(st: QueueStats) -> dict[str, Any]:
    return {name: getattr(st, name) for name in st.__dataclass_fields__}
