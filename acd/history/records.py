"""The call's whole life and the agents' state history, built from the core's facts.

Pure: no I/O, no asyncio, no clock — :meth:`RecordBuilder.observe` is handed each fact
with the engine's clock (``Engine.fact_hooks`` order) and keeps one open
:class:`CallRecord` per live call and one open interval per agent. Whenever a record
changes in a way worth keeping (arrival, each offer and its outcome, answer, end,
wrap-up end) it is marked; :meth:`RecordBuilder.take` hands the changed records over as
**whole snapshots**, so whoever writes them (``acd.runtime.history``) can write them
twice, or after another engine, without harm: the call id is the key.

One fact, one handler. Adding a fact type (callbacks …) is one method and one line in
``_HANDLERS`` — as call exits were::

    def _exited(self, f: CallExited, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        rec.exits.append({...})
        ...
        self._end(rec, "exited", now)

    _HANDLERS[CallExited] = RecordBuilder._exited

Memory is bounded by the live calls, the agents, and the completed calls whose agent is
still in wrap-up (one per agent).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from acd.domain.callbacks import CallbackFinished, CallbackRequested
from acd.domain.facts import (
    AgentChanged,
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
from acd.domain.figures import abandoned_after, answered_within

#: Outcomes of a call. ``waiting``/``offered``/``connected`` are open (the call lives
#: on); ``released`` (handed back to the dialplan, to go on in another engine) is open
#: too: a later record of the same call replaces it.
OPEN_OUTCOMES = frozenset({"waiting", "offered", "connected", "released"})
FINAL_OUTCOMES = frozenset({"completed", "abandoned", "closed", "exited"})

#: Outcomes of one offer.
OFFER_OUTCOMES = frozenset({"pending", "answered", "rona", "busy", "unreachable",
                            "rejected", "failed", "cancelled", "abandoned", "released"})


@dataclass(slots=True)
class OfferRecord:
    """One ring of an agent's phone or one dial to a partner site."""

    at: float
    #: ``agent`` or ``site``.
    kind: str
    target: str
    stage: int
    #: The caller's wait when the offer went out.
    wait: float
    outcome: str = "pending"
    #: Asterisk's DIALSTATUS when it tells (NOANSWER, BUSY, CHANUNAVAIL …).
    dialstatus: str = ""
    ended: float | None = None

    def to_row(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "target": self.target,
                "stage": self.stage, "wait": self.wait, "outcome": self.outcome,
                "dialstatus": self.dialstatus, "ended": self.ended}


@dataclass(slots=True)
class CallRecord:
    """A call's whole life (one per call id)."""

    call_id: str
    #: First entry (the dialplan's ACD_ENTRY: kept across retries and takeovers).
    entry_time: float
    queue: str
    first_queue: str
    #: 1 for the call as it came in; 2, 3 … when an agent who answered it transferred it
    #: back to a queue (each leg has its own answer, talk and wrap-up).
    leg: int = 1
    #: Counted as an offered call (the first leg; not a transfer's further legs) — as
    #: the live figures count ``CallWaiting`` that is not a re-entry.
    offered: bool = True
    caller: str = ""
    region: str = ""
    region_known: bool = False
    region_source: str = ""
    segment: str = ""
    did: str = ""
    menu_choice: str = ""
    server: str = ""
    priority: int = 0
    #: The furthest escalation stage reached.
    stage: int = 0
    #: The service-level target of the queue when the call ended (seconds).
    sl_target: float = 0.0
    outcome: str = "waiting"
    answered_at: float | None = None
    ended_at: float | None = None
    agent: str | None = None
    #: The partner site that answered (None: an own agent, or nobody).
    site: str | None = None
    #: The own site of the agent who answered.
    agent_site: str | None = None
    wait: float = 0.0
    talk: float | None = None
    wrap_up: float | None = None
    #: Times the call went back to the dialplan and came in again (retries, takeovers).
    reentries: int = 0
    offers: list[OfferRecord] = field(default_factory=list)
    #: Queue moves: {"at", "from", "to"}.
    transfers: list[dict[str, Any]] = field(default_factory=list)
    #: How the caller left the line by a queue's exit (``reason/action``: max_wait/queue,
    #: caller_key/voicemail …); the last one. ``exits`` lists them all: {"at", "queue",
    #: "reason", "action", "target"} (an exit to another queue or to the partners goes
    #: on in the same record; to voicemail or a message it ends it, outcome ``exited``).
    exit: str | None = None
    exits: list[dict[str, Any]] = field(default_factory=list)
    #: The routing decision of the last offer (stage, strategy, candidates, why the others
    #: did not get it).
    decision: dict[str, Any] | None = None
    #: The recording of the conversation (file name, seconds, bytes), when recorded.
    recording: dict[str, Any] | None = None
    #: The agent's disposition code and note (agent desktop).
    disposition: str | None = None
    note: str | None = None
    #: A callback's context (None: not a callback): ``requested_at``, ``ewt`` (the
    #: expected wait the caller was told), ``reason`` (caller_key, max_ewt, api,
    #: ``campaign:<id>``), ``origin`` (the inbound call it replaced), then ``outcome``
    #: (completed, failed, cancelled), ``attempts``, ``status`` and ``delay`` (request →
    #: the customer's answer) when it ends.
    callback: dict[str, Any] | None = None
    updated_at: float = 0.0

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES

    @property
    def within_target(self) -> bool:
        """Answered within the service-level target (figures.answered_within)."""
        return self.answered_at is not None and answered_within(self.wait, self.sl_target)

    @property
    def abandoned_after_target(self) -> bool:
        return self.outcome == "abandoned" and abandoned_after(self.wait, self.sl_target)

    def to_row(self) -> dict[str, Any]:
        """The record as plain JSON-able data (the spool and the database)."""
        return {
            "call_id": self.call_id, "leg": self.leg, "offered": self.offered,
            "entry_time": self.entry_time, "queue": self.queue,
            "first_queue": self.first_queue, "caller": self.caller, "region": self.region,
            "region_known": self.region_known, "region_source": self.region_source,
            "segment": self.segment, "did": self.did, "menu_choice": self.menu_choice,
            "server": self.server, "priority": self.priority, "stage": self.stage,
            "sl_target": self.sl_target, "outcome": self.outcome, "final": self.final,
            "answered_at": self.answered_at, "ended_at": self.ended_at,
            "agent": self.agent, "site": self.site, "agent_site": self.agent_site,
            "wait": self.wait, "talk": self.talk, "wrap_up": self.wrap_up,
            "reentries": self.reentries, "exit": self.exit, "exits": list(self.exits),
            "offers": [o.to_row() for o in self.offers],
            "transfers": list(self.transfers), "decision": self.decision,
            "recording": self.recording, "disposition": self.disposition,
            "note": self.note,
            "callback": dict(self.callback) if self.callback is not None else None,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class AgentInterval:
    """An agent's status (logged out, available, paused + reason) and engine-driven
    state (idle, ringing, on call, wrap-up) from ``start`` to ``end``."""

    agent: str
    start: float
    end: float
    status: str
    reason: str
    state: str
    call_id: str | None

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def to_row(self) -> dict[str, Any]:
        return {"agent": self.agent, "start": self.start, "end": self.end,
                "status": self.status, "reason": self.reason, "state": self.state,
                "call_id": self.call_id}


@dataclass(slots=True)
class _AgentNow:
    status: str
    reason: str
    state: str
    call_id: str | None
    since: float


def _seconds(value: float) -> float:
    """As the live figures read a wait or talk time: never negative, NaN → 0."""
    return max(0.0, float(value)) if value == value else 0.0


#: How many completed calls are remembered to recognise one transferred back to a queue
#: (as the core does).
RECENT_CALLS = 2_000

#: The outcome of an agent's offer by the DIALSTATUS of a ring-no-answer.
_RONA_OUTCOME = {"BUSY": "busy"}


class RecordBuilder:
    """Facts in (in the engine's order), changed records out (:meth:`take`).

    ``sl_targets``: queue → service-level target (seconds); ``agent_sites``: agent → its
    own site (for reports per site)."""

    def __init__(self, sl_targets: Mapping[str, float],
                 agent_sites: Mapping[str, str] | None = None) -> None:
        self.sl_targets = dict(sl_targets)
        self.agent_sites = dict(agent_sites or {})
        self.calls: dict[str, CallRecord] = {}
        #: Completed calls whose agent is still in wrap-up: agent → record.
        self._wrapping: dict[str, CallRecord] = {}
        self._agents: dict[str, _AgentNow] = {}
        self._changed: dict[tuple[str, int], CallRecord] = {}
        self._intervals: list[AgentInterval] = []
        #: Calls that completed lately: call id → its last leg (a transfer back to a
        #: queue starts the next one).
        self._done: OrderedDict[str, int] = OrderedDict()
        #: Calls whose end this builder saw (any final outcome), newest last.
        self._ended: OrderedDict[str, None] = OrderedDict()
        #: Callbacks requested whose first CallWaiting (their place in line) is to come:
        #: that one is not a re-entry of the record.
        self._new_callbacks: set[str] = set()
        #: Callbacks' records that ended as calls (completed), until their outcome comes.
        self._ended_callbacks: OrderedDict[str, CallRecord] = OrderedDict()

    # -- input ---------------------------------------------------------------------------

    def observe(self, fact: Fact, now: float) -> None:
        handler = _HANDLERS.get(type(fact))
        if handler is not None:
            handler(self, fact, now)

    def take(self) -> tuple[list[CallRecord], list[AgentInterval]]:
        """The records changed since the last call (each once, as it is now) and the
        agent intervals that closed."""
        calls, self._changed = list(self._changed.values()), {}
        intervals, self._intervals = self._intervals, []
        return calls, intervals

    @property
    def pending(self) -> int:
        return len(self._changed) + len(self._intervals)

    # -- calls ---------------------------------------------------------------------------

    def _mark(self, rec: CallRecord, now: float) -> None:
        rec.updated_at = now
        self._changed[(rec.call_id, rec.leg)] = rec

    def _call(self, call_id: str, queue: str, now: float) -> CallRecord:
        """The open record of a call; one is started if a fact of a call we never saw
        arrive comes first (an engine that took over, a closed queue)."""
        rec = self.calls.get(call_id)
        if rec is None:
            rec = CallRecord(call_id, now, queue, queue,
                             sl_target=self.sl_targets.get(queue, 0.0))
            self.calls[call_id] = rec
        return rec

    def _waiting(self, f: CallWaiting, now: float) -> None:
        rec = self.calls.get(f.call_id)
        if rec is None:
            leg = self._done.pop(f.call_id, 0) + 1
            rec = CallRecord(f.call_id, f.entry_time, f.queue, f.queue, leg=leg,
                             offered=not f.reentry)
            self.calls[f.call_id] = rec
        elif f.call_id in self._new_callbacks:
            self._new_callbacks.discard(f.call_id)
            rec.entry_time = min(rec.entry_time, f.entry_time)
        else:
            rec.reentries += 1
            rec.entry_time = min(rec.entry_time, f.entry_time)
        rec.queue = f.queue
        rec.caller, rec.priority, rec.segment = f.caller, f.priority, f.segment
        rec.region, rec.server = f.region, f.server
        rec.region_known, rec.region_source = f.region_known, f.region_source
        rec.did, rec.menu_choice = f.did, f.menu_choice
        rec.sl_target = self.sl_targets.get(f.queue, 0.0)
        rec.outcome = "waiting"
        self._mark(rec, now)

    def _offered(self, f: CallOffered, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        rec.offers.append(OfferRecord(now, "agent", f.agent, f.stage, _seconds(f.wait)))
        rec.stage = max(rec.stage, f.stage)
        rec.outcome = "offered"
        rec.decision = {"stage": f.stage, "strategy": f.strategy,
                        "candidates": f.candidates,
                        **({"excluded": dict(f.excluded)} if f.excluded else {})}
        self._mark(rec, now)

    def _overflowed(self, f: CallOverflowed, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        rec.offers.append(OfferRecord(now, "site", f.site, f.stage, _seconds(f.wait)))
        rec.stage = max(rec.stage, f.stage)
        rec.outcome = "offered"
        rec.decision = {"stage": f.stage, "strategy": f.strategy,
                        "candidates": f.candidates,
                        "excluded_sites": [dict(e) for e in f.excluded_sites]}
        self._mark(rec, now)

    def _end_offer(self, call_id: str, target: str | None, outcome: str, now: float,
                   dialstatus: str = "") -> None:
        """The pending offer (to ``target``, or any) of a call ends with ``outcome``."""
        rec = self.calls.get(call_id)
        if rec is None:
            return
        for offer in reversed(rec.offers):
            if offer.outcome == "pending" and (target is None or offer.target == target):
                offer.outcome, offer.ended = outcome, now
                offer.dialstatus = dialstatus or offer.dialstatus
                self._mark(rec, now)
                return

    def _no_answer(self, f: AgentNoAnswer, now: float) -> None:
        self._end_offer(f.call_id, f.agent, _RONA_OUTCOME.get(f.dialstatus, "rona"), now,
                        f.dialstatus)

    def _unreachable(self, f: AgentUnreachable, now: float) -> None:
        self._end_offer(f.call_id, f.agent, "unreachable", now, f.dialstatus)

    def _rejected(self, f: PartnerRejected, now: float) -> None:
        self._end_offer(f.call_id, f.site, "rejected", now, f.dialstatus)

    def _requeued(self, f: CallRequeued, now: float) -> None:
        # An offer that ended without a ring-no-answer, unreachable or rejected fact
        # (the session was gone, the dial was cancelled): the agent is not at fault.
        self._end_offer(f.call_id, None, "failed", now)
        rec = self.calls.get(f.call_id)
        if rec is not None:
            rec.outcome = "waiting"
            self._mark(rec, now)

    def _connected(self, f: CallConnected, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        self._end_offer(f.call_id, f.agent or f.site, "answered", now)
        rec.outcome = "connected"
        rec.queue = f.queue
        rec.wait = _seconds(f.wait)
        rec.answered_at = rec.entry_time + rec.wait
        rec.agent, rec.site = f.agent, f.site
        rec.agent_site = self.agent_sites.get(f.agent) if f.agent else None
        rec.sl_target = self.sl_targets.get(f.queue, rec.sl_target)
        self._mark(rec, now)

    def _completed(self, f: CallCompleted, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        if rec.answered_at is None:  # its answer was never seen here (takeover)
            rec.wait = _seconds(f.wait)
            rec.answered_at = rec.entry_time + rec.wait
            rec.agent, rec.site = f.agent, f.site
            rec.agent_site = self.agent_sites.get(f.agent) if f.agent else None
        rec.talk = _seconds(f.talk)
        self._end(rec, "completed", now)
        if f.agent is not None:
            rec.wrap_up = 0.0
            self._wrapping[f.agent] = rec  # its wrap-up ends with the agent's next state

    def _abandoned(self, f: CallAbandoned, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        self._end_offer(f.call_id, None, "abandoned", now)
        rec.wait = _seconds(f.wait)
        self._end(rec, "abandoned", now)

    def _closed(self, f: CallClosed, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        self._end(rec, "closed", now)

    def _released(self, f: CallReleased, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        self._end_offer(f.call_id, None, "released", now)
        rec.wait = _seconds(f.wait)
        rec.outcome = "released"
        rec.ended_at = now
        self._mark(rec, now)
        del self.calls[f.call_id]  # it goes on elsewhere (or here, as a new entry)

    def _end(self, rec: CallRecord, outcome: str, now: float, **fields: Any) -> None:
        rec.outcome = outcome
        rec.ended_at = now
        rec.sl_target = self.sl_targets.get(rec.queue, rec.sl_target)
        for key, value in fields.items():
            setattr(rec, key, value)
        self._mark(rec, now)
        self.calls.pop(rec.call_id, None)
        self._ended[rec.call_id] = None
        self._ended.move_to_end(rec.call_id)
        if len(self._ended) > 5 * RECENT_CALLS:
            self._ended.popitem(last=False)
        if outcome == "completed" and rec.callback is not None:
            self._ended_callbacks[rec.call_id] = rec
            if len(self._ended_callbacks) > RECENT_CALLS:
                self._ended_callbacks.popitem(last=False)
        if outcome == "completed":
            self._done[rec.call_id] = rec.leg
            self._done.move_to_end(rec.call_id)
            if len(self._done) > RECENT_CALLS:
                self._done.popitem(last=False)

    def _exited(self, f: CallExited, now: float) -> None:
        rec = self._call(f.call_id, f.queue, now)
        rec.exits.append({"at": now, "queue": f.queue, "reason": f.reason,
                          "action": f.action, "target": f.target})
        rec.exit = f"{f.reason}/{f.action}"
        if f.action in ("queue", "partner"):
            # the caller goes on: in another queue (a CallTransferred-like move follows)
            # or to the partner sites
            if f.target:
                rec.queue = f.target
                rec.sl_target = self.sl_targets.get(f.target, rec.sl_target)
            self._mark(rec, now)
            return
        rec.wait = _seconds(f.wait)
        self._end(rec, "exited", now)

    def _transferred(self, f: CallTransferred, now: float) -> None:
        rec = self.calls.get(f.call_id)
        if rec is None:
            return
        rec.transfers.append({"at": now, "from": f.from_queue, "to": f.queue})
        rec.queue = f.queue
        rec.sl_target = self.sl_targets.get(f.queue, rec.sl_target)
        self._mark(rec, now)

    def _stage(self, f: CallStageReached, now: float) -> None:
        rec = self.calls.get(f.call_id)
        if rec is not None and f.stage > rec.stage:
            rec.stage = f.stage
            self._mark(rec, now)

    def _priority(self, f: CallPriorityChanged, now: float) -> None:
        rec = self.calls.get(f.call_id)
        if rec is not None:
            rec.priority = f.priority
            self._mark(rec, now)

    # -- agents --------------------------------------------------------------------------

    def _agent(self, f: AgentChanged, now: float) -> None:
        cur = self._agents.get(f.agent)
        if f.state != "wrap_up":
            rec = self._wrapping.pop(f.agent, None)
            if rec is not None:  # the wrap-up of its last call ends (or there was none)
                wrapping = cur is not None and cur.state == "wrap_up"
                rec.wrap_up = max(0.0, now - cur.since) if wrapping and cur else 0.0
                self._mark(rec, now)
        if cur is not None and (cur.status, cur.reason, cur.state, cur.call_id) == (
                f.status, f.reason, f.state, f.call_id):
            return  # only the phone changed
        if cur is not None and cur.status != "logged_out" and now > cur.since:
            self._intervals.append(AgentInterval(f.agent, cur.since, now, cur.status,
                                                 cur.reason, cur.state, cur.call_id))
        self._agents[f.agent] = _AgentNow(f.status, f.reason, f.state, f.call_id, now)

    def _disposed(self, f: CallDisposed, now: float) -> None:
        """The agent's disposition and note: on the open record, or on the one whose
        wrap-up runs (the desktop gives them during the call or its wrap-up)."""
        rec = self.calls.get(f.call_id)
        if rec is None:
            wrapping = self._wrapping.get(f.agent)
            rec = wrapping if wrapping is not None and wrapping.call_id == f.call_id \
                else None
        if rec is None:
            return
        rec.disposition, rec.note = f.disposition or None, f.note or None
        self._mark(rec, now)

    def knows(self, call_id: str) -> bool:
        """Whether this builder has the call open or saw it end (then its record is
        its own doing, not an orphan's)."""
        return call_id in self.calls or call_id in self._ended

    def close_intervals(self, now: float) -> None:
        """Every agent's open interval is written up to ``now`` (the engine stops); the
        next one starts there."""
        for agent, cur in self._agents.items():
            if cur.status != "logged_out" and now > cur.since:
                self._intervals.append(AgentInterval(agent, cur.since, now, cur.status,
                                                     cur.reason, cur.state, cur.call_id))
                cur.since = now

    def agent_states(self) -> dict[str, tuple[str, str, str, float]]:
        """Agent → (status, reason, state, since): the intervals still open."""
        return {a: (s.status, s.reason, s.state, s.since) for a, s in self._agents.items()}


_HANDLERS: dict[type[Fact], Callable[[RecordBuilder, Any, float], None]] = {
    CallWaiting: RecordBuilder._waiting,
    CallOffered: RecordBuilder._offered,
    CallOverflowed: RecordBuilder._overflowed,
    AgentNoAnswer: RecordBuilder._no_answer,
    AgentUnreachable: RecordBuilder._unreachable,
    PartnerRejected: RecordBuilder._rejected,
    CallRequeued: RecordBuilder._requeued,
    CallConnected: RecordBuilder._connected,
    CallCompleted: RecordBuilder._completed,
    CallAbandoned: RecordBuilder._abandoned,
    CallClosed: RecordBuilder._closed,
    CallReleased: RecordBuilder._released,
    CallExited: RecordBuilder._exited,
    CallTransferred: RecordBuilder._transferred,
    CallStageReached: RecordBuilder._stage,
    CallPriorityChanged: RecordBuilder._priority,
    AgentChanged: RecordBuilder._agent,
    CallDisposed: RecordBuilder._disposed,
}


def _callback_requested(builder: RecordBuilder, f: CallbackRequested, now: float,
                        ) -> None:
    """A callback is in line: its record starts (not an offered call — the call it
    replaced was) with the callback's context; a restored one (another engine took
    over) keeps the record it has."""
    rec = builder.calls.get(f.callback_id)
    if rec is None:
        rec = CallRecord(f.callback_id, min(f.entry_time, now), f.queue, f.queue,
                         offered=False, caller=f.number, server=f.server,
                         sl_target=builder.sl_targets.get(f.queue, 0.0))
        builder.calls[f.callback_id] = rec
        builder._new_callbacks.add(f.callback_id)
    rec.callback = {**(rec.callback or {}), "requested_at": f.requested_at,
                    "ewt": f.ewt, "reason": f.reason, "origin": f.call_id,
                    "not_before": f.not_before}
    builder._mark(rec, now)


def _callback_finished(builder: RecordBuilder, f: CallbackFinished, now: float) -> None:
    """A callback that ended without a conversation (failed, cancelled) ends its record
    as an exit (``callback/failed``); a completed one ended with its CallCompleted (its
    record gets the outcome)."""
    builder._new_callbacks.discard(f.callback_id)
    rec = builder.calls.get(f.callback_id) or builder._ended_callbacks.pop(f.callback_id,
                                                                            None)
    if rec is None:
        return
    rec.callback = {**(rec.callback or {}), "outcome": f.outcome,
                    "attempts": f.attempts, "status": f.status, "delay": f.delay}
    if f.ewt is not None:
        rec.callback.setdefault("ewt", f.ewt)
    if f.outcome == "completed":
        builder._mark(rec, now)
        return
    rec.exit = f"callback/{f.outcome}"
    builder._end(rec, "exited", now)


_HANDLERS[CallbackRequested] = _callback_requested
_HANDLERS[CallbackFinished] = _callback_finished
