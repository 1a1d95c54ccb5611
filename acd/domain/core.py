"""The engine's state machine: events in, effects out, no I/O.

One writer: :class:`EngineCore` is only ever touched by the engine's inbox loop
(``acd.runtime.engine``) or by a simulator. Each :meth:`EngineCore.apply` takes one
event, updates calls and agents, asks the routing policy for matches, and returns the
effects the adapters carry out (dial an agent from a call's session, close a call, start
a timer) and the facts that say what happened.

The core is the call's life cycle; it delegates:

* agents — status, state, phones and the router's view: :mod:`acd.domain.agents`;
* partner sites — capacity, hours, which calls may go to them: :mod:`acd.domain.partners`;
* several Asterisk servers — router queues and ids per server: :mod:`acd.domain.servers`;
* admission — open, partners first or closed: :mod:`acd.domain.admission`;
* figures — fed its own facts, in order: :mod:`acd.domain.figures`;
* why an offer went where it went: :mod:`acd.domain.explain`.

States change only as the transition tables of :mod:`acd.domain.records` allow.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from acd.domain import admission
from acd.domain.agents import AgentBook
from acd.domain.callbacks import (
    CUSTOMER,
    IN_DOUBT,
    OUTBOUND_DOWN,
    Callback,
    CallbackAttempted,
    CallbackBook,
    CallbackDialing,
    CallbackFinished,
    CallbackRequested,
    CallbackState,
    Stashed,
    allowed,
)
from acd.domain.effects import CloseCall, Effect, ExitCall, Offer, StartTimer
from acd.domain.errors import (
    CallNotWaiting,
    InvalidCommand,
    NotYourCall,
    QueueClosed,
    SiteUnavailable,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
    UnknownSite,
)
from acd.domain.events import (
    AgentLogin,
    CallAnswered,
    CallArrived,
    CallbackDue,
    CallerKey,
    CallHungUp,
    CancelCallback,
    ChannelGone,
    DeviceSnapshot,
    DeviceStateChanged,
    DeviceStateLost,
    DialFinished,
    EndWrapUp,
    Event,
    ExtendWrapUp,
    HoursDue,
    OfferFailed,
    PartnerChannels,
    PartnerDue,
    PhoneRecheck,
    RequestCallback,
    SendToPartner,
    SetAgentStatus,
    SetCallPriority,
    SetDisposition,
    StageDue,
    TransferCall,
    WaitLimit,
    WrapUpDone,
)
from acd.domain.ewt import HandleTimes, Sweep, WaitEstimator
from acd.domain.explain import explain, why_unroutable
from acd.domain.facts import (
    AgentNoAnswer,
    AgentUnreachable,
    CallAbandoned,
    CallClosed,
    CallCompleted,
    CallConnected,
    CallDisposed,
    CallExited,
    CallOffered,
    CallOverflowed,
    CallPriorityChanged,
    CallReleased,
    CallRequeued,
    CallStageReached,
    CallTransferred,
    CallWaiting,
    Fact,
    PartnerRejected,
)
from acd.domain.figures import LiveStats
from acd.domain.partners import PartnerDesk
from acd.domain.records import LIVE_CALL_STATES, Agent, AgentStatus, Call, CallState
from acd.domain.servers import Servers
from acd.domain.settings import (
    ClosedAction,
    ExitAction,
    ExitTo,
    OnClose,
    QueueSettings,
    Settings,
    SiteKind,
)
from routing import Router, WaitingCall
from routing.hours import Schedule
from routing.partners import PartnerSite

#: Only for a failure that must not stop routing (the core otherwise returns effects).
log = logging.getLogger("acd.core")

#: How many completed calls are remembered to recognise one coming back (transfer).
RECENT_CALLS = 2_000

#: DIALSTATUS values that mean "the agent did not take it" (ring-no-answer family).
RONA_STATUSES = frozenset({"NOANSWER", "BUSY"})

#: DIALSTATUS values that mean "the phone could not be reached" (unregistered, gone,
#: rejected by the network): the device is unavailable; the person is not at fault.
UNREACHABLE_STATUSES = frozenset({"CHANUNAVAIL", "CONGESTION"})


@dataclass(slots=True)
class RegionStats:
    calls: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0


#: ``HoursDue.kind`` of the first look at the hours (the gates and the first timers).
HOURS_START = "start"


class EngineCore:
    """Calls, agents and the routing policy; mutated only through :meth:`apply`."""

    def __init__(self, settings: Settings, *, device_state_servers: Iterable[str] = ()) -> None:
        self.settings = settings
        self.queues: Mapping[str, QueueSettings] = settings.queues
        self.servers = Servers(settings.servers)
        self.router = Router(*self.servers.router_specs(
            [q.spec for q in settings.queues.values()], settings.agents.values()))
        self.agents = AgentBook(settings.agents.values(), self.router, settings.engine,
                                device_state_servers=device_state_servers,
                                desk=settings.desk)
        self.partners = PartnerDesk(settings.sites.values(), settings.regions,
                                    {q.id: q.partner_stages for q in settings.queues.values()})
        #: Own sites' hours: an agent is offered calls only while one of its own sites
        #: (its groups that are own sites) is open.
        self._own_sites = {s.id: s.schedule for s in settings.sites.values()
                           if s.kind is SiteKind.OWN}
        self.agents.set_sites({a.id: frozenset(a.groups) & self._own_sites.keys()
                               for a in settings.agents.values()})
        self.calls: dict[str, Call] = {}
        self._by_uniqueid: dict[str, str] = {}
        #: Calls that ended (completed, abandoned, released), newest last.
        self.finished: deque[Call] = deque(maxlen=10_000)
        #: Recently completed calls by id, to recognise a call that comes back.
        self._recent: OrderedDict[str, Call] = OrderedDict()
        #: Per-queue figures (rolling 15 min, today, since start), fed this core's facts.
        self.figures = LiveStats({q.id: q.sl_target for q in settings.queues.values()},
                                 settings.timezone)
        self.region_stats: dict[str, RegionStats] = {}
        #: Talk times per queue and agent (expected waits), fed this core's facts.
        self.handle_times = HandleTimes(
            {q.id: q.expected_handle_time for q in settings.queues.values()},
            {q.id: q.wrap_up for q in settings.queues.values()})
        self.estimator = WaitEstimator(self)
        #: The runtime replays the estimates in the background and publishes the latest
        #: here; otherwise (``None``) a caller's ``max_ewt`` check replays at once.
        self.background_sweep: Sweep | None = None
        self.estimates_in_background = False
        #: Bumped at every applied event: read views cache on it.
        self.version = 0
        #: (queue, state) → live calls of the queue in that state.
        self._live: dict[tuple[str, CallState], int] = {}
        self._seq = itertools.count(1)
        self._now = 0.0
        #: False while this engine is not the active one (hot standby, stepped down,
        #: stopping): state is still kept, but no call is offered to anyone.
        self.routing = True
        #: Outbound callbacks (virtual hold): acd.domain.callbacks.
        self.callbacks = CallbackBook(settings.callbacks)

    # -- the one entry point -----------------------------------------------------------

    def apply(self, event: Event) -> list[Effect]:
        out: list[Effect] = []
        self._now = event.now
        match event:
            case CallArrived():
                self._call_arrived(event, out)
            case CallHungUp():
                self._call_hung_up(event, out)
            case CallAnswered():
                self._call_answered(event, out)
            case DialFinished():
                self._dial_finished(event, out)
            case OfferFailed():
                self._offer_failed(event, out)
            case CallerKey():
                self._caller_key(event, out)
            case WaitLimit():
                self._wait_limit(event, out)
            case DeviceStateChanged():
                self.agents.device_state(event.device, event.state, out)
            case DeviceSnapshot():
                self.agents.device_snapshot(event, out)
            case DeviceStateLost():
                self.agents.set_device_state_known(event.server, False, out)
            case PhoneRecheck():
                self.agents.phone_recheck(event, out)
            case SetAgentStatus():
                self.agents.set_status(event.agent_id, event.status, event.reason,
                                       event.now, out)
            case AgentLogin():
                self.agents.login(event.agent_id, event.reason, event.now, out)
            case WrapUpDone():
                self.agents.wrap_up_done(event, out)
            case TransferCall():
                self._transfer(event, out)
            case SetCallPriority():
                self._set_priority(event, out)
            case EndWrapUp():
                self.agents.end_wrap_up(event.agent_id, event.now, out)
            case ExtendWrapUp():
                self.agents.extend_wrap_up(event.agent_id, event.seconds, event.now, out)
            case SetDisposition():
                self._set_disposition(event, out)
            case SendToPartner():
                self._send_to_partner(event, out)
            case StageDue():
                self._stage_due(event, out)
            case PartnerDue():
                call = self.calls.get(event.call_id)
                if call is not None:
                    self.partners.arm(call, event.now, out)
            case PartnerChannels():
                self.partners.channels(event, out)
            case ChannelGone():
                self.partners.channel_gone(event)
            case HoursDue():
                self._hours_due(event, out)
            case RequestCallback():
                self._request_callback(event, out)
            case CallbackDue():
                self._callback_due(event, out)
            case CancelCallback():
                self._cancel_callback(event, out)
        if self.routing:
            self._dispatch(out)
            if self.partners.ready:
                self._try_partners(out)
        figures, now = self.figures, event.now
        for eff in out:
            if isinstance(eff, Fact):
                figures.observe(eff, now)
                self._measure(eff)
        self.version += 1
        return out

    def _measure(self, fact: Fact) -> None:
        """Handle and ring times for the expected waits, from the core's own facts."""
        times = self.handle_times
        if isinstance(fact, CallOffered):
            times.offered(fact.call_id, fact.queue, fact.wait)
        elif isinstance(fact, CallConnected):
            times.waited(fact.queue, fact.wait, abandoned=False)
            if fact.agent is not None:
                times.answered(fact.call_id, fact.wait)
        elif isinstance(fact, CallCompleted):
            if fact.agent is not None:
                times.observe(fact.queue, fact.agent, fact.talk)
        elif isinstance(fact, CallAbandoned):
            times.waited(fact.queue, fact.wait, abandoned=True)
            times.forget(fact.call_id)
        elif isinstance(fact, CallReleased | CallRequeued):
            times.forget(fact.call_id)

    # -- hours: own sites gate their agents; a closing queue's waiting callers ----------

    def hours_effects(self, now: float) -> list[Effect]:
        """The own sites open now (their agents gated) and the timers of the next
        changes of the own sites' hours and of the queues that act when they close
        (once, at start: the timers re-arm themselves)."""
        return self.apply(HoursDue(HOURS_START, "", now))

    def _start_hours(self, now: float, out: list[Effect]) -> None:
        self.agents.sites_open(self._open_own_sites(now), out)
        for sid, schedule in self._own_sites.items():
            self._arm_hours("site", sid, schedule, now, out)
        for q in self.queues.values():
            if q.on_close is OnClose.CLOSED:
                self._arm_hours("queue", q.id, q.schedule, now, out)

    def _open_own_sites(self, now: float) -> frozenset[str]:
        at = datetime.fromtimestamp(now, UTC)
        return frozenset(sid for sid, schedule in self._own_sites.items()
                         if schedule.is_open(at))

    @staticmethod
    def _arm_hours(kind: str, target: str, schedule: Schedule, now: float,
                   out: list[Effect]) -> None:
        nxt = schedule.next_change(datetime.fromtimestamp(now, UTC))
        if nxt is not None:
            at = nxt.timestamp()
            out.append(StartTimer(max(0.0, at - now), HoursDue(kind, target, at)))

    def _hours_due(self, ev: HoursDue, out: list[Effect]) -> None:
        if ev.kind == HOURS_START:
            self._start_hours(ev.now, out)
            return
        if ev.kind == "site" and ev.target_id in self._own_sites:
            self.agents.sites_open(self._open_own_sites(ev.now), out)
            self._arm_hours("site", ev.target_id, self._own_sites[ev.target_id], ev.now, out)
            return
        queue = self.queues.get(ev.target_id)
        if ev.kind != "queue" or queue is None:
            return
        if not admission.is_open(queue, ev.now):
            # its waiting callers get the closed action (they chose on_close: closed)
            closed = queue.closed
            action = ExitAction(ExitTo.VOICEMAIL if closed.action is ClosedAction.VOICEMAIL
                                else ExitTo.MESSAGE, None, closed.mailbox, closed.sound)
            for call in sorted((c for c in self.calls.values()
                                if c.queue_id == queue.id and c.state is CallState.WAITING),
                               key=lambda c: (c.entry_time, c.seq)):
                self._exit(call, "queue_closed", action, ev.now, out)
        self._arm_hours("queue", queue.id, queue.schedule, ev.now, out)

    def initial_effects(self, now: float) -> list[Effect]:
        """Each agent's configured start status; the hours' gates and timers."""
        effects = self.hours_effects(now)
        for agent in self.agents.values():  # the times in status count from the start
            agent.status_since = agent.state_since = now
        for a in self.settings.agents.values():
            if a.starts_available:
                effects += self.apply(SetAgentStatus(a.id, AgentStatus.AVAILABLE, now))
        return effects

    # -- bookkeeping of the calls --------------------------------------------------------

    def _count(self, call: Call, delta: int) -> None:
        if call.state in LIVE_CALL_STATES:
            key = (call.queue_id, call.state)
            self._live[key] = self._live.get(key, 0) + delta

    def _move(self, call: Call, state: CallState) -> None:
        """Change a call's state (as the table allows), keeping the live counts."""
        self._count(call, -1)
        call.move(state)
        self._count(call, 1)

    def live_counts(self) -> Mapping[tuple[str, CallState], int]:
        """(queue, state) → live calls of the queue in that state."""
        return self._live

    def live_count(self, queue_id: str, state: CallState) -> int:
        """How many calls of the queue are in ``state`` now (live states only)."""
        return self._live.get((queue_id, state), 0)

    def _finish(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        self.partners.ready.discard(call.call_id)
        if call.state is CallState.COMPLETED:
            self._recent[call.call_id] = call
            if len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
        key = self.servers.channel_key(call.server, call.uniqueid)
        if self._by_uniqueid.get(key) == call.call_id:
            del self._by_uniqueid[key]
        self.finished.append(call)

    # -- calls -------------------------------------------------------------------------

    def _call_arrived(self, ev: CallArrived, out: list[Effect]) -> None:
        queue = self.queues.get(ev.queue_id)
        if queue is None:
            raise UnknownQueue(f"no queue {ev.queue_id!r}")
        existing = self.calls.get(ev.call_id)
        if existing is not None and existing.state is CallState.CONNECTED:
            # Re-entry of a call an agent had answered: a blind transfer from the agent's
            # phone to a queue. The answered leg is complete; the caller queues again
            # with its original entry time.
            self._complete(existing, ev.now, out)
            existing = None
        served = self._recent.pop(ev.call_id, None) if existing is None else None
        server = self.servers.of(ev.server)
        if existing is None:
            # A new entry (or an agent's transfer into this queue): its hours apply,
            # unless the store says it was admitted before a restart.
            verdict = admission.admit(
                queue, ev.now, restored=ev.restored,
                partner_covers=self.partners.open_covering(ev.region, queue.id, ev.now))
            if verdict is admission.Admission.CLOSED:
                out.append(CallClosed(ev.call_id, queue.id))
                closed = queue.closed
                out.append(CloseCall(ev.call_id, queue.id, closed.sound,
                                     closed.mailbox if closed.action is ClosedAction.VOICEMAIL
                                     else None))
                return
            partner_first = verdict is admission.Admission.PARTNER_FIRST
        else:
            partner_first = existing.partner_first
        if served is not None:
            # A call already served coming back (agent's blind transfer to a queue's
            # feature code; the dialplan kept ACD_ENTRY and ACD_CALL_ID): same entry time
            # and sequence, counted as a transfer, not as a new offered call.
            entry_time = min(served.entry_time, ev.entry_time)
            seq, is_new = served.seq, False
            if served.queue_id != ev.queue_id:
                out.append(CallTransferred(ev.call_id, served.queue_id, ev.queue_id,
                                           entry_time))
        elif existing is not None:
            # The same call re-entering (its session dropped and the dialplan retried):
            # it keeps its place. Whatever the old session held is released first.
            self._release_agent(existing, ev.now, out)
            self.partners.release(existing)
            self.router.remove_call(existing.call_id)
            self._count(existing, -1)
            entry_time = min(existing.entry_time, ev.entry_time)
            seq, is_new = existing.seq, False
        else:
            entry_time, seq, is_new = ev.entry_time, next(self._seq), True
        call = Call(
            ev.call_id, ev.queue_id, ev.caller, min(entry_time, ev.now), ev.now,
            ev.channel, ev.uniqueid, priority=queue.priority + ev.priority_boost, seq=seq,
            segment=ev.segment, boost=ev.priority_boost,
            region=ev.region, region_known=ev.region_known, region_source=ev.region_source,
            did=ev.did, menu_choice=ev.menu_choice, partner_first=partner_first,
            server=server,
        )
        self.calls[call.call_id] = call
        self._count(call, 1)
        if call.uniqueid:
            self._by_uniqueid[self.servers.channel_key(call.server, call.uniqueid)] = \
                call.call_id
        if is_new and call.region:
            self.region_stats.setdefault(call.region, RegionStats()).calls += 1
        if not (self.partners and self.partners.rule(call).primary
                and self._offer_first_partner(call, out)):
            self._enqueue(call, ev.now, out)
            self.partners.arm(call, ev.now, out)
        out.append(CallWaiting(call.call_id, call.queue_id, call.caller, call.entry_time,
                               not is_new, call.priority, call.segment, call.region,
                               call.server, call.region_known, call.region_source, call.did,
                               call.menu_choice))
        if existing is None and not ev.restored:
            self._check_line(call, queue, ev.now, out)

    def _check_line(self, call: Call, queue: QueueSettings, now: float,
                    out: list[Effect]) -> None:
        """A caller joining the line: the queue's limits may send it elsewhere at once
        (too many waiting, or a sure expected wait longer than ``max_ewt``)."""
        exits = queue.exits
        if exits.action is None or call.state is not CallState.WAITING:
            return
        if exits.max_waiting is not None and \
                sum(self.router.waiting(rq) for rq in self._router_queues(queue.id)) \
                > exits.max_waiting:
            self._exit(call, "max_waiting", exits.action, now, out)
            return
        if exits.max_ewt is not None:
            seconds = self._entry_wait(call, now)
            if seconds is not None and seconds > exits.max_ewt:
                self._exit(call, "max_ewt", exits.action, now, out)

    def _entry_wait(self, call: Call, now: float) -> float | None:
        """A joining caller's sure expected wait: from the background's latest replay
        (placed by its newcomer), or replayed now when there is no background."""
        rq = self.servers.router_queue(call.queue_id, call.server)
        if not self.estimates_in_background:
            return self.estimator.sweep(now).wait_of(call.call_id, rq, None, now)
        sweep = self.background_sweep
        if sweep is None:
            return None
        return sweep.wait_of(call.call_id, rq, self.router.position(call.call_id), now)

    def _router_queues(self, queue_id: str) -> list[str]:
        servers = self.servers
        return [servers.router_queue(queue_id, s) for s in servers.names]

    def _caller_key(self, ev: CallerKey, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.state is not CallState.WAITING:
            return  # talking (keys for the agent), ringing, or gone
        exits = self.queues[call.queue_id].exits
        if exits.key is not None and exits.key_action is not None and ev.digit == exits.key:
            self._exit(call, "caller_key", exits.key_action, ev.now, out)

    def _limits(self, queue: QueueSettings) -> list[tuple[float, str, ExitAction]]:
        """The waits at which a caller of the queue leaves the line, earliest first:
        ``exits.max_wait`` and the last stage's action (the last resort)."""
        out: list[tuple[float, str, ExitAction]] = []
        if queue.exits.max_wait is not None and queue.exits.action is not None:
            out.append((queue.exits.max_wait, "max_wait", queue.exits.action))
        if queue.last_resort is not None:
            out.append((queue.last_resort[0], "last_stage", queue.last_resort[1]))
        return sorted(out, key=lambda limit: limit[0])

    def _arm_wait_limit(self, call: Call, now: float, out: list[Effect]) -> None:
        limits = self._limits(self.queues[call.queue_id])
        if not limits or self.callbacks.is_callback(call.call_id):
            return
        due = call.entry_time + limits[0][0]
        if call.wait_limit_at is not None and call.wait_limit_at <= due:
            return  # a timer for this moment (or earlier: it re-checks) is on its way
        call.wait_limit_at = due
        out.append(StartTimer(max(0.0, due - now), WaitLimit(call.call_id, due)))

    def _wait_limit(self, ev: WaitLimit, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        call.wait_limit_at = None
        limits = self._limits(self.queues[call.queue_id])
        if not limits or self.callbacks.is_callback(call.call_id):
            return
        if call.state is not CallState.WAITING:
            return  # ringing or talking: if it comes back it is checked again
        after, reason, action = limits[0]
        if ev.now + 1e-6 >= call.entry_time + after:
            self._exit(call, reason, action, ev.now, out)
        else:
            self._arm_wait_limit(call, ev.now, out)

    def _exit(self, call: Call, reason: str, action: ExitAction, now: float,
              out: list[Effect]) -> None:
        """The caller leaves the line early: another queue, the partners, or out of the
        engine (voicemail, a closing message). Counted as an exit, never an abandon."""
        queue = self.queues[call.queue_id]
        if action.to is ExitTo.QUEUE and action.queue is not None:
            target = self.queues[action.queue]
            if admission.is_open(target, now):
                out.append(CallExited(call.call_id, queue.id, now - call.entry_time, reason,
                                      action.to.value, target.id))
                self._move_to_queue(call, target, now, out)
                return
            # the target is closed now: its closed action ends the call
            closed = target.closed
            action = ExitAction(ExitTo.VOICEMAIL if closed.action is ClosedAction.VOICEMAIL
                                else ExitTo.MESSAGE, None, closed.mailbox, closed.sound)
        if action.to is ExitTo.PARTNER:
            out.append(CallExited(call.call_id, queue.id, now - call.entry_time, reason,
                                  action.to.value))
            call.partner_exit = True
            self.partners.ready.add(call.call_id)  # offered at the end of this step
            return
        callback = action.to is ExitTo.CALLBACK and self.callbacks.enabled
        if callback:
            self._stash_callback(call, reason, now)
        self.router.remove_call(call.call_id)
        self.partners.ready.discard(call.call_id)
        call.ended_at = now
        self._move(call, CallState.EXITED)
        out.append(CallExited(call.call_id, queue.id, call.wait, reason, action.to.value))
        out.append(ExitCall(call.call_id, queue.id, action.sound,
                            action.mailbox if action.to is ExitTo.VOICEMAIL else None,
                            callback=callback))
        self._finish(call)

    def _call_hung_up(self, ev: CallHungUp, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        if call.state is CallState.CONNECTED:
            # The caller hung up on the agent; Dial's return (DialFinished) completes it.
            # If the session died before reporting, complete it here.
            self._complete(call, ev.now, out)
            return
        if call.state not in (CallState.WAITING, CallState.OFFERED):
            return
        self.router.remove_call(call.call_id)
        self._release_agent(call, ev.now, out)
        self.partners.release(call)
        self.partners.ready.discard(call.call_id)
        call.ended_at = ev.now
        if ev.released:
            self._move(call, CallState.RELEASED)
            out.append(CallReleased(call.call_id, call.queue_id, call.wait))
            self._finish(call)
            return
        self._move(call, CallState.ABANDONED)
        if call.region in self.region_stats:
            self.region_stats[call.region].abandoned += 1
        out.append(CallAbandoned(call.call_id, call.queue_id, call.wait))
        self._finish(call)

    def _call_answered(self, ev: CallAnswered, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.state is not CallState.OFFERED or call.agent_id != ev.agent_id:
            return  # late or duplicate (DialEnd after Dial returned, another agent …)
        self._connect(call, ev.now, out)

    def _connect(self, call: Call, now: float, out: list[Effect]) -> None:
        assert call.agent_id is not None
        self._answered(call, now)
        agent = self.agents.by_id[call.agent_id]
        out.append(CallConnected(call.call_id, call.queue_id, agent.agent_id, call.wait,
                                 call.offers))
        self.agents.connect(agent, now, out)
        cb = self.callbacks.by_id.get(call.call_id)
        if cb is not None:
            cb.state, cb.connected_at = CallbackState.CONNECTED, now

    def _answered(self, call: Call, answered_at: float) -> None:
        """The call is connected (to an agent or a partner site)."""
        self._move(call, CallState.CONNECTED)
        call.answered_at = answered_at
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
        if ev.status.startswith(CUSTOMER) or ev.status in (OUTBOUND_DOWN, IN_DOUBT):
            self._callback_not_reached(call, ev, out)
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
        agent = self.agents.by_id[ev.agent_id]
        call.agent_id = None
        if ev.status in UNREACHABLE_STATUSES:
            # The phone could not be reached (unregistered, gone): not a ring-no-answer,
            # the person is not paused; the phone is unavailable until Asterisk says it
            # is back or the retry time passes. The call keeps its place.
            out.append(AgentUnreachable(agent.agent_id, call.call_id, ev.status))
            self.agents.unreachable(agent, ev.now, out)
        elif ev.status in RONA_STATUSES:
            out.append(AgentNoAnswer(agent.agent_id, call.call_id, ev.status, call.queue_id))
            self.agents.no_answer(agent, ev.now, out)
        else:
            # CANCEL (caller hung up while it rang) or an unknown status: the agent is
            # not at fault; the caller's hangup arrives as CallHungUp.
            self.agents.release(agent, ev.now, out)
        self._requeue(call, out)

    def _offer_failed(self, ev: OfferFailed, out: list[Effect]) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.agent_id != ev.agent_id or call.state is not CallState.OFFERED:
            return
        self._release_agent(call, ev.now, out)
        self._requeue(call, out)

    def _release_agent(self, call: Call, now: float, out: list[Effect]) -> None:
        """An offer that ends without fault of the agent: back to idle, not penalised."""
        if call.agent_id is None:
            return
        agent = self.agents.get(call.agent_id)
        call.agent_id = None
        if agent is not None:
            self.agents.release(agent, now, out)

    def _requeue(self, call: Call, out: list[Effect]) -> None:
        """Back to waiting with its original entry time and sequence: it keeps its place."""
        self._move(call, CallState.WAITING)
        call.agent_id = None
        self._enqueue(call, self._now, out)
        out.append(CallRequeued(call.call_id, call.queue_id))
        cb = self.callbacks.by_id.get(call.call_id)
        if cb is not None:  # the agent did not take it: in line again, with its place
            cb.state, cb.agent_id = CallbackState.PENDING, ""

    def _complete(self, call: Call, now: float, out: list[Effect]) -> None:
        self._move(call, CallState.COMPLETED)
        call.ended_at = now
        answered = call.answered_at if call.answered_at is not None else now
        out.append(CallCompleted(call.call_id, call.queue_id, call.agent_id, call.site_id,
                                 call.wait, now - answered))
        self.partners.release(call)
        agent = self.agents.get(call.agent_id or "")
        if agent is not None and agent.call_id == call.call_id:
            self.agents.after_call(agent, self.queues[call.queue_id].wrap_up, now, out)
        if self.callbacks.is_callback(call.call_id):
            self._end_callback(call, CallbackState.COMPLETED, "ANSWER", out)
        self._finish(call)

    # -- supervisor commands -------------------------------------------------------------

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
        target = self.queues.get(ev.queue_id)
        if target is None:
            raise UnknownQueue(f"no queue {ev.queue_id!r}")
        if call.queue_id == target.id:
            return
        if not admission.is_open(target, ev.now):
            # Hours apply to every entry into a queue: a caller moved into a closed queue
            # would wait for agents who are not there.
            raise QueueClosed(f"queue {target.id!r} is closed now (its hours)")
        self._move_to_queue(call, target, ev.now, out)

    def _move_to_queue(self, call: Call, target: QueueSettings, now: float,
                       out: list[Effect]) -> None:
        """A waiting call joins another queue with its entry time (its place by
        seniority); its stages count from now."""
        old = call.queue_id
        self._count(call, -1)
        call.waiting = self.router.move_call(
            call.call_id, self.servers.router_queue(target.id, call.server), queued_at=now)
        call.queue_id = target.id
        self._count(call, 1)
        call.stage = call.waiting.stage
        call.priority = target.priority + call.boost
        self._arm_stage_timer(call, now, out)
        self._arm_wait_limit(call, now, out)
        out.append(CallTransferred(call.call_id, old, call.queue_id, call.entry_time))

    def _set_priority(self, ev: SetCallPriority, out: list[Effect]) -> None:
        call = self._waiting_call(ev.call_id)
        if not 0 <= ev.priority <= 1000:
            raise InvalidCommand("priority must be within 0..1000")
        waiting = self.router.remove_call(call.call_id) or call.waiting
        assert waiting is not None
        # The supervisor's value is the call's own priority: it replaces the segment's.
        call.boost = ev.priority
        call.priority = self.queues[call.queue_id].priority + call.boost
        call.waiting = replace(waiting, priority=call.boost)
        self.router.add_call(call.waiting)
        out.append(CallPriorityChanged(call.call_id, call.priority))

    def _set_disposition(self, ev: SetDisposition, out: list[Effect]) -> None:
        """Check first: the agent talked to this call last (or talks to it now), the code
        is one of the configured ones (when there is a list), the note is not too long."""
        agent = self.agents.get(ev.agent_id)
        if agent is None:
            raise UnknownAgent(f"unknown agent {ev.agent_id!r}")
        if ev.call_id not in (agent.last_call_id, agent.call_id) or not ev.call_id:
            raise NotYourCall(f"call {ev.call_id!r} is not agent {ev.agent_id}'s last call")
        desk = self.settings.desk
        if desk.dispositions and ev.disposition and ev.disposition not in desk.dispositions:
            raise InvalidCommand(f"disposition {ev.disposition!r} is not configured (one "
                                 f"of: {', '.join(desk.dispositions)})")
        if len(ev.note) > desk.note_max:
            raise InvalidCommand(f"a note has at most {desk.note_max} characters")
        out.append(CallDisposed(ev.call_id, ev.agent_id, ev.disposition, ev.note))

    def _send_to_partner(self, ev: SendToPartner, out: list[Effect]) -> None:
        """Check first: the call waits; the site (named, or the best one) is a partner
        that is open, has room and offers the call's queue. Then it is offered now."""
        call = self._waiting_call(ev.call_id)
        if not self.routing:
            raise SiteUnavailable("this engine is not the active one")
        if ev.site_id:
            site = self.settings.sites.get(ev.site_id)
            if site is None or site.partner is None:
                raise UnknownSite(f"no partner site {ev.site_id!r}")
            why = self.partners.refusal(site.partner, call.queue_id, ev.now)
            if why is not None:
                raise SiteUnavailable(f"partner site {ev.site_id!r}: {why}")
            chosen = site.partner
        else:
            best = self.partners.best_any(call, ev.now)
            if best is None:
                raise SiteUnavailable("no partner site is open with room for this call's "
                                      "service")
            chosen = best
        self._offer_partner(call, chosen, out)

    # -- waiting and stages --------------------------------------------------------------

    def _enqueue(self, call: Call, now: float, out: list[Effect]) -> None:
        """Put a call in line: new, or back (RONA) with its seniority and stage."""
        if call.waiting is None:
            call.waiting = WaitingCall(
                call.call_id, self.servers.router_queue(call.queue_id, call.server),
                call.boost, call.entry_time, call.seq)
        self.router.add_call(call.waiting)
        self._advance_stage(call, now, out)
        self._arm_wait_limit(call, now, out)

    def _advance_stage(self, call: Call, now: float, out: list[Effect]) -> None:
        """Move a waiting call to the stage its wait has reached; arm the next timer."""
        due = self.router.due_stage(call.call_id, now)
        if due > call.stage:
            call.waiting = self.router.set_stage(call.call_id, due)
            call.stage = due
            out.append(CallStageReached(call.call_id, call.queue_id, due))
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

    # -- dispatch to agents ------------------------------------------------------------

    def _dispatch(self, out: list[Effect]) -> None:
        agents = self.agents.by_id
        explain_offers = self.settings.engine.explain_offers
        ring_timeout = self.settings.engine.ring_timeout
        for m in self.router.dispatch():
            call = self.calls[m.call_id]
            agent = agents[m.agent_id]
            self._move(call, CallState.OFFERED)
            call.agent_id = agent.agent_id
            call.offers += 1
            call.tried.append(agent.agent_id)
            call.decision = {"agent": agent.agent_id, "stage": m.stage,
                             "strategy": m.strategy.value, "candidates": m.candidates}
            if explain_offers:
                # why the others did not get it, before the offer goes out (off the
                # router's decision path: O(agents its stage admits), Router.exclusions)
                try:
                    excluded = self.router.exclusions(m, partial(why_unroutable, agents))
                    call.decision["excluded"] = excluded.as_dict()
                except Exception:  # a diagnostic must never hold up an offer
                    log.exception("call %s: exclusions of the offer not recorded",
                                  call.call_id)
            out.append(CallOffered(call.call_id, call.queue_id, call.offers,
                                   self._now - call.entry_time, agent.agent_id, m.stage,
                                   m.strategy.value, m.candidates,
                                   call.decision.get("excluded")))
            out.append(Offer(call.call_id, agent.agent_id, agent.device, ring_timeout,
                             moh_class=self.queues[call.queue_id].moh_class))
            self.agents.ring(agent, call.call_id, self._now, out)
            cb = self.callbacks.by_id.get(call.call_id)
            if cb is not None:
                cb.state, cb.agent_id = CallbackState.DIALING, agent.agent_id
                cb.dials += 1
                out.append(CallbackDialing(cb.callback_id, agent.agent_id, cb.dials))

    # -- partner sites -----------------------------------------------------------------

    def _try_partners(self, out: list[Effect]) -> None:
        open_sites = self.partners.open_sites(self._now)
        for call in self.partners.ready_in_order(self.calls.__getitem__):
            if call.state is not CallState.WAITING:
                continue
            site = self.partners.best(call, self._now, open_sites)
            if site is not None:
                self._offer_partner(call, site, out)  # counts it against the capacity

    def _offer_first_partner(self, call: Call, out: list[Effect]) -> bool:
        """Primary region (or closed queue): a covering partner before any agent."""
        if not self.routing:
            return False
        site = self.partners.best(call, self._now)
        if site is None:
            return False
        self._offer_partner(call, site, out)
        return True

    def _offer_partner(self, call: Call, site: PartnerSite, out: list[Effect]) -> None:
        # Why the other sites did not get it, before this offer changes tried/active.
        others: list[tuple[str, str]] = []
        try:
            others = self.partners.why_not_others(call, site.site_id, self._now)
        except Exception:  # a diagnostic must never hold up an offer
            log.exception("call %s: other sites' exclusions not recorded", call.call_id)
        candidates = 1 + sum(why.startswith("ranked below") for _, why in others)
        waiting = self.router.remove_call(call.call_id)
        if waiting is not None:
            call.waiting = waiting
        self._move(call, CallState.OFFERED)
        call.agent_id = None
        call.offers += 1
        self.partners.take(call, site.site_id)
        if call.region in self.region_stats:
            self.region_stats[call.region].overflowed += 1
        excluded_sites = tuple({"site": sid, "reason": why} for sid, why in others)
        call.decision = {"site": site.site_id, "stage": call.stage, "strategy": "partner",
                         "candidates": candidates, "excluded_sites": list(excluded_sites)}
        out.append(CallOverflowed(call.call_id, call.queue_id, site.site_id, call.region,
                                  self._now - call.entry_time, call.offers, call.stage,
                                  "partner", candidates, excluded_sites))
        out.append(Offer(call.call_id, "", site.dial, self.settings.engine.ring_timeout,
                         site_id=site.site_id, moh_class=self.queues[call.queue_id].moh_class))

    def _partner_dial_finished(self, call: Call, ev: DialFinished,
                               out: list[Effect]) -> None:
        site_id = ev.site_id
        if ev.status == "ANSWER":
            if call.state is CallState.OFFERED:
                self._answered(call, ev.now - max(ev.talk, 0.0))
                self.partners.answered(site_id)
                out.append(CallConnected(call.call_id, call.queue_id, None, call.wait,
                                         call.offers, site_id))
            if call.state is CallState.CONNECTED:
                self._complete(call, ev.now, out)
            return
        if call.state is not CallState.OFFERED:
            return
        # busy / rejected / unavailable / no answer: the next partner, else back in line
        self.partners.rejected(site_id)
        out.append(PartnerRejected(call.call_id, site_id, ev.status))
        self.partners.release(call)
        self._requeue(call, out)
        self.partners.ready.add(call.call_id)

    # -- callbacks (acd.domain.callbacks): outbound work in the same line --------------

    def _stash_callback(self, call: Call, reason: str, now: float) -> None:
        """The caller leaves to be called back: remember its place until it confirms
        the number (``RequestCallback`` from its session)."""
        ewt: float | None = None
        try:
            ewt = self._entry_wait(call, now)
        except Exception:  # an estimate must never hold up the exit
            log.exception("call %s: expected wait at the callback request", call.call_id)
        self.callbacks.stash(call.call_id, Stashed(
            call.queue_id, call.caller, call.entry_time, call.seq, call.boost, call.server,
            call.region, ewt, reason))

    def _request_callback(self, ev: RequestCallback, out: list[Effect]) -> None:
        """Check first (callbacks on, the queue, the number), then put the callback in
        line with the place of the call it replaces."""
        book = self.callbacks
        if book.settings is None:
            raise InvalidCommand("callbacks are not configured")
        if not allowed(ev.number, book.settings.allow):
            raise InvalidCommand("the engine may not call that number (callbacks.allow)")
        stashed = book.take(ev.origin_call_id) if ev.origin_call_id else None
        if stashed is None and not ev.queue_id:
            raise UnknownCall(f"no call {ev.origin_call_id!r} left the line for a callback")
        queue_id = stashed.queue_id if stashed is not None else ev.queue_id
        queue = self.queues.get(queue_id)
        if queue is None:
            raise UnknownQueue(f"no queue {queue_id!r}")
        cb_id = ev.callback_id or f"{ev.origin_call_id}-cb"
        if cb_id in self.calls or cb_id in book.by_id:
            return  # the same request twice (a restore of one already here)
        if stashed is not None:
            entry_time, seq, boost = stashed.entry_time, stashed.seq, stashed.boost
            server, region, ewt, reason = (stashed.server, stashed.region, stashed.ewt,
                                           stashed.reason)
        else:
            entry_time = ev.entry_time or max(ev.not_before, ev.now)
            seq, boost, server, region = next(self._seq), 0, self.servers.of(ev.server), ""
            ewt, reason = ev.ewt, ev.reason or "api"
        cb = Callback(cb_id, ev.origin_call_id, queue_id, ev.number, entry_time,
                      ev.requested_at or ev.now, server, ewt, ev.not_before, ev.attempts,
                      dials=max(ev.dials, ev.attempts), state=CallbackState.SCHEDULED,
                      reason=reason, max_attempts=ev.max_attempts)
        book.by_id[cb_id] = cb
        if not ev.restored:
            book.totals["requested"] += 1
        call = Call(cb_id, queue_id, ev.number, min(entry_time, ev.now), ev.now, "", "",
                    priority=queue.priority + boost, seq=seq, boost=boost, region=region,
                    server=server)
        self.calls[cb_id] = call
        self._count(call, 1)
        out.append(CallbackRequested(cb_id, ev.origin_call_id, queue_id, ev.number,
                                     entry_time, cb.requested_at, ewt, ev.not_before,
                                     ev.attempts, server, reason, ev.restored))
        if ev.not_before > ev.now:
            cb.state = CallbackState.SCHEDULED
            out.append(StartTimer(ev.not_before - ev.now, CallbackDue(cb_id, ev.not_before)))
            return
        self._callback_in_line(call, ev.now, out)

    def _callback_in_line(self, call: Call, now: float, out: list[Effect]) -> None:
        cb = self.callbacks.by_id[call.call_id]
        window = self.callbacks.settings.window if self.callbacks.settings else None
        if window is not None:
            at = datetime.fromtimestamp(now, UTC)
            change = window.next_change(at)
            if not window.is_open(at):
                # outside the calling window: it waits, with its place, until it opens
                if cb.state is CallbackState.PENDING:
                    self.router.remove_call(call.call_id)
                cb.state = CallbackState.SCHEDULED
                if change is not None:
                    opens = change.timestamp()
                    out.append(StartTimer(max(0.0, opens - now),
                                          CallbackDue(call.call_id, opens)))
                return
            if change is not None:  # the window closes: look again then
                closes = change.timestamp()
                out.append(StartTimer(max(0.0, closes - now),
                                      CallbackDue(call.call_id, closes)))
        if cb.state is CallbackState.PENDING:
            return  # already in line (a look at the window while it is open)
        self._enqueue(call, now, out)
        cb.state = CallbackState.PENDING
        # a continuation of the call it replaced (its entry, its place): not a new call
        out.append(CallWaiting(call.call_id, call.queue_id, call.caller, call.entry_time,
                               True, call.priority, call.segment, call.region, call.server))

    def _callback_due(self, ev: CallbackDue, out: list[Effect]) -> None:
        call = self.calls.get(ev.callback_id)
        cb = self.callbacks.by_id.get(ev.callback_id)
        if call is None or cb is None or call.state is not CallState.WAITING \
                or cb.state not in (CallbackState.SCHEDULED, CallbackState.RETRY,
                                    CallbackState.PENDING):
            return
        if cb.state is CallbackState.RETRY and cb.retry_at is not None \
                and ev.now + 1e-6 < cb.retry_at:
            return  # a look at the window before its retry time: the retry timer comes
        cb.retry_at = None
        self._callback_in_line(call, ev.now, out)

    def _callback_not_reached(self, call: Call, ev: DialFinished, out: list[Effect]) -> None:
        """The agent took the callback but the customer was not reached (or the outbound
        link is down): the agent is free at once; retry after the spacing, or fail."""
        cb = self.callbacks.by_id.get(call.call_id)
        settings = self.callbacks.settings
        if cb is None or settings is None or call.state is not CallState.OFFERED:
            return
        self._release_agent(call, ev.now, out)
        self._move(call, CallState.WAITING)
        if ev.status == OUTBOUND_DOWN:
            delay = settings.down_retry  # nothing was sent: not an attempt
        else:
            cb.attempts += 1
            self.callbacks.totals["attempts"] += 1
            delay = settings.retry_after
        status = ev.status.removeprefix(CUSTOMER)
        if ev.status == IN_DOUBT or cb.attempts >= (cb.max_attempts or settings.attempts):
            out.append(CallbackAttempted(cb.callback_id, call.queue_id, cb.attempts, status,
                                         None))
            self._end_callback(call, CallbackState.FAILED, status, out)
            call.ended_at = ev.now
            self._move(call, CallState.EXITED)
            self._finish(call)
            return
        cb.state, cb.retry_at = CallbackState.RETRY, ev.now + delay
        out.append(CallbackAttempted(cb.callback_id, call.queue_id, cb.attempts, status,
                                     cb.retry_at))
        out.append(StartTimer(delay, CallbackDue(cb.callback_id, cb.retry_at)))

    def _cancel_callback(self, ev: CancelCallback, out: list[Effect]) -> None:
        call = self.calls.get(ev.callback_id)
        if call is None or not self.callbacks.is_callback(ev.callback_id):
            raise UnknownCall(f"no callback {ev.callback_id!r}")
        if call.state is not CallState.WAITING:
            raise CallNotWaiting(f"callback {ev.callback_id!r} is being dialled")
        self.router.remove_call(call.call_id)
        call.ended_at = ev.now
        self._end_callback(call, CallbackState.CANCELLED, "", out)
        self._move(call, CallState.EXITED)
        self._finish(call)

    def _end_callback(self, call: Call, state: CallbackState, status: str,
                      out: list[Effect]) -> None:
        cb = self.callbacks.by_id.pop(call.call_id)
        cb.state, cb.outcome = state, status
        if state is CallbackState.COMPLETED:
            cb.attempts += 1
            self.callbacks.totals["attempts"] += 1
        self.callbacks.totals[state.value] += 1
        delay = None if cb.connected_at is None else cb.connected_at - cb.requested_at
        out.append(CallbackFinished(cb.callback_id, cb.queue_id, state.value, cb.attempts,
                                    status, delay, cb.ewt, cb.agent_id or None))

    def callback_list(self) -> list[Callback]:
        """The callbacks not yet finished, oldest place first."""
        return sorted(self.callbacks.pending(), key=lambda cb: cb.entry_time)

    # -- lookups for the adapters ------------------------------------------------------

    def qualify_call_id(self, raw: str, server: str) -> str:
        return self.servers.qualify_call_id(raw, server)

    def call_for_uniqueid(self, uniqueid: str, server: str = "") -> str | None:
        """The call whose caller channel has this Asterisk Uniqueid."""
        return self._by_uniqueid.get(
            self.servers.channel_key(self.servers.of(server), uniqueid))

    def agent_for_device(self, device: str) -> Agent | None:
        return self.agents.for_device(device)

    def partner_for_device(self, device: str) -> str | None:
        return self.partners.site_for_trunk(device)

    def explain(self, call_id: str) -> list[str]:
        call = self.calls.get(call_id)
        if call is None:
            raise UnknownCall(f"no call {call_id!r}")
        return explain(call, self.router, self.agents.by_id)
