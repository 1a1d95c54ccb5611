"""The records the core keeps — agents and calls — and their transition tables.

Separate axes (STYLE.md):

* agent **status** — chosen by the person: logged_out, available, paused(reason); any
  status may follow any other;
* agent **state** — driven by the engine: idle → ringing → on_call → wrap_up → idle;
* **device** state — what Asterisk says of the phone (NOT_INUSE, INUSE, UNAVAILABLE…);
* **call** state — waiting ⇄ offered → connected → completed, or abandoned / released /
  exited.

Engine-driven states change only through :meth:`Agent.move` and :meth:`Call.move`, which
check the tables below: an illegal transition raises :class:`IllegalTransition` and
leaves the record untouched (h11's state machine does the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from acd.domain.errors import IllegalTransition
from routing.model import WaitingCall


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
    #: Left the line early by a queue's exit (voicemail, a closing message): not an
    #: abandon either.
    EXITED = "exited"


_A = AgentState
#: The engine-driven agent state: from → the states it may go to.
AGENT_TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = MappingProxyType({
    _A.IDLE: frozenset({_A.RINGING}),
    _A.RINGING: frozenset({_A.IDLE, _A.ON_CALL}),  # not answered / answered
    _A.ON_CALL: frozenset({_A.WRAP_UP, _A.IDLE}),  # with / without wrap-up
    _A.WRAP_UP: frozenset({_A.IDLE}),
})

_C = CallState
#: The call's life: from → the states it may go to. Completed, abandoned and released are
#: final.
CALL_TRANSITIONS: Mapping[CallState, frozenset[CallState]] = MappingProxyType({
    _C.WAITING: frozenset({_C.OFFERED, _C.ABANDONED, _C.RELEASED, _C.EXITED}),
    # offered → waiting: not answered, the call goes back with its place
    _C.OFFERED: frozenset({_C.WAITING, _C.CONNECTED, _C.ABANDONED, _C.RELEASED}),
    _C.CONNECTED: frozenset({_C.COMPLETED}),
    _C.COMPLETED: frozenset(),
    _C.ABANDONED: frozenset(),
    _C.RELEASED: frozenset(),
    _C.EXITED: frozenset(),
})

#: Call states the live views show (the rest are gone).
LIVE_CALL_STATES = frozenset({_C.WAITING, _C.OFFERED, _C.CONNECTED})


@dataclass(slots=True)
class Agent:
    agent_id: str
    device: str
    #: The Asterisk server the phone is on.
    server: str = ""
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
    #: When the current wrap-up ends (engine time; meaningful in WRAP_UP).
    wrap_ends: float = 0.0
    #: A dial found the phone unreachable (CHANUNAVAIL/CONGESTION) and Asterisk has not
    #: said it came back since; ``recheck_token`` tells the current retry timer.
    unreachable: bool = False
    recheck_token: int = 0
    #: Whether the phone may be rung now (kept by the agent book: ``phone_free``).
    phone_free: bool = True
    #: False while every own site the agent works at (its groups) is closed (hours).
    site_open: bool = True

    @property
    def routable(self) -> bool:
        return (self.status is AgentStatus.AVAILABLE and self.state is AgentState.IDLE
                and self.phone_free and self.site_open)

    @property
    def device_shown(self) -> str:
        """The device state for people: UNAVAILABLE while a dial found it unreachable."""
        return "UNAVAILABLE" if self.unreachable else self.device_state

    def move(self, state: AgentState) -> None:
        """Change the engine-driven state, as the table allows."""
        if state not in AGENT_TRANSITIONS[self.state]:
            raise IllegalTransition("agent", self.agent_id, self.state.value, state.value)
        self.state = state


@dataclass(slots=True)
class Call:
    call_id: str
    queue_id: str
    #: The caller's number, normalised (routing.numbers); "" when withheld.
    caller: str
    entry_time: float
    arrived: float
    channel: str = ""
    uniqueid: str = ""
    state: CallState = CallState.WAITING
    #: The queue's priority plus the caller's own (``boost``).
    priority: int = 0
    seq: int = 0
    agent_id: str | None = None
    offers: int = 0
    answered_at: float | None = None
    ended_at: float | None = None
    tried: list[str] = field(default_factory=list)
    segment: str = ""
    #: The caller's own priority on top of the queue's (segment, or a supervisor's).
    boost: int = 0
    #: The router's record of this call (stage, seniority) while it is in line.
    waiting: WaitingCall | None = None
    stage: int = 0
    region: str = ""
    region_known: bool = False
    #: How the region was found: lookup, ivr (area code keyed), override, default.
    region_source: str = ""
    did: str = ""
    #: The IVR key the caller pressed ("" when there was no menu).
    menu_choice: str = ""
    partner_first: bool = False
    #: A queue exit sent the call to the partners: any partner may take it now.
    partner_exit: bool = False
    #: When the pending max_wait timer fires (one timer per call).
    wait_limit_at: float | None = None
    server: str = ""
    #: The partner site the call is offered to / connected with.
    site_id: str | None = None
    holds_site: bool = False
    stage_timer_at: float | None = None
    tried_sites: set[str] = field(default_factory=set)
    #: The last routing decision: stage, strategy, candidates, chosen agent or site, and
    #: why the others did not get it.
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def wait(self) -> float:
        """Seconds waited from first entry to answer (or to now/end if never answered)."""
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return max(0.0, (end if end is not None else self.arrived) - self.entry_time)

    def move(self, state: CallState) -> None:
        """Change the call's state, as the table allows."""
        if state not in CALL_TRANSITIONS[self.state]:
            raise IllegalTransition("call", self.call_id, self.state.value, state.value)
        self.state = state
