"""Facts: what the core tells the world happened, as typed values.

Every state change the core makes is announced by one fact in its effects (the engine
carries them to the log, the store writer, the live figures, the metrics, the WebSocket
and the history). Consumers match on the types and mypy sees every field::

    match fact:
        case CallConnected(queue=q, wait=w): ...

``fact.name`` is the stable wire name and ``fact.data`` the JSON-able payload the log
lines and the WebSocket carry (``{"type": "event", "name": ..., "data": ...}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

#: Field metadata: the key on the wire (a Python keyword such as ``from``) / leave the
#: key out when the value is None.
_WIRE = "wire"
_OMIT_NONE = "omit_none"


class Fact:
    """Base class of the facts. ``name``: the wire name."""

    __slots__ = ()
    name: ClassVar[str] = ""
    _layout: ClassVar[tuple[tuple[str, str, bool], ...] | None] = None

    @property
    def data(self) -> dict[str, Any]:
        """The payload as the log and the WebSocket carry it."""
        cls = type(self)
        layout = cls.__dict__.get("_layout")
        if layout is None:
            layout = tuple((f.name, f.metadata.get(_WIRE, f.name),
                            bool(f.metadata.get(_OMIT_NONE)))
                           for f in fields(self))  # type: ignore[arg-type]
            cls._layout = layout
        out: dict[str, Any] = {}
        for attr, key, omit_none in layout:
            value = getattr(self, attr)
            if value is None and omit_none:
                continue
            out[key] = dict(value) if isinstance(value, Mapping) else value
        return out


def _omit_none() -> Any:
    return field(default=None, metadata={_OMIT_NONE: True})


# -- calls ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallWaiting(Fact):
    """A call is in line (new, or back after a retry/transfer: ``reentry``)."""

    name: ClassVar[str] = "call_waiting"
    call_id: str
    queue: str
    caller: str
    entry_time: float
    reentry: bool
    priority: int
    segment: str
    region: str
    server: str
    #: How the region was found (lookup, ivr, override, default), the dialled number and
    #: the IVR key pressed: for the call's record (acd.history).
    region_known: bool = False
    region_source: str = ""
    did: str = ""
    menu_choice: str = ""


@dataclass(frozen=True, slots=True)
class CallOffered(Fact):
    """An agent's phone is rung for the call; why the others did not get it."""

    name: ClassVar[str] = "call_offered"
    call_id: str
    queue: str
    attempt: int
    wait: float
    agent: str
    stage: int
    strategy: str
    candidates: int
    excluded: Mapping[str, Any] | None = _omit_none()


@dataclass(frozen=True, slots=True)
class CallOverflowed(Fact):
    """The call is offered to a partner site; why the other sites did not get it."""

    name: ClassVar[str] = "call_overflowed"
    call_id: str
    queue: str
    site: str
    region: str
    wait: float
    attempt: int
    stage: int
    strategy: str
    candidates: int
    excluded_sites: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CallConnected(Fact):
    """Answered by an agent (``agent``) or a partner site (``site``)."""

    name: ClassVar[str] = "call_connected"
    call_id: str
    queue: str
    agent: str | None
    wait: float
    offers: int
    site: str | None = _omit_none()


@dataclass(frozen=True, slots=True)
class CallCompleted(Fact):
    name: ClassVar[str] = "call_completed"
    call_id: str
    queue: str
    agent: str | None
    site: str | None
    wait: float
    talk: float


@dataclass(frozen=True, slots=True)
class CallAbandoned(Fact):
    """The caller hung up before being answered."""

    name: ClassVar[str] = "call_abandoned"
    call_id: str
    queue: str
    wait: float


@dataclass(frozen=True, slots=True)
class CallReleased(Fact):
    """Handed back to the dialplan (engine stopping or stepping down): not abandoned."""

    name: ClassVar[str] = "call_released"
    call_id: str
    queue: str
    wait: float


@dataclass(frozen=True, slots=True)
class CallRequeued(Fact):
    """Back in line after an offer that was not answered, with its place."""

    name: ClassVar[str] = "call_requeued"
    call_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class CallClosed(Fact):
    """A caller reached a closed queue (after hours, holiday): the closed action."""

    name: ClassVar[str] = "call_closed"
    call_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class CallExited(Fact):
    """The caller left the queue's line early by an exit — not an abandon. ``reason``:
    max_wait, max_waiting, max_ewt, caller_key, stage; ``action``: queue, partner,
    voicemail, message; ``target``: the queue it went to, if any."""

    name: ClassVar[str] = "call_exited"
    call_id: str
    queue: str
    wait: float
    reason: str
    action: str
    target: str | None = None


@dataclass(frozen=True, slots=True)
class CallTransferred(Fact):
    name: ClassVar[str] = "call_transferred"
    call_id: str
    from_queue: str = field(metadata={_WIRE: "from"})
    queue: str = ""
    entry_time: float = 0.0


@dataclass(frozen=True, slots=True)
class CallPriorityChanged(Fact):
    name: ClassVar[str] = "call_priority"
    call_id: str
    priority: int


@dataclass(frozen=True, slots=True)
class CallStageReached(Fact):
    name: ClassVar[str] = "call_stage"
    call_id: str
    queue: str
    stage: int


# -- agents and sites -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentChanged(Fact):
    """An agent's status, state or phone changed (the whole record, as it is now)."""

    name: ClassVar[str] = "agent"
    agent: str
    status: str
    reason: str
    state: str
    device: str
    call_id: str | None
    #: False while every own site the agent works at is closed (its hours).
    site_open: bool = True


@dataclass(frozen=True, slots=True)
class AgentNoAnswer(Fact):
    """Ring-no-answer: the agent's phone rang and nobody took the call."""

    name: ClassVar[str] = "agent_no_answer"
    agent: str
    call_id: str
    dialstatus: str
    queue: str = ""


@dataclass(frozen=True, slots=True)
class AgentUnreachable(Fact):
    """The agent's phone could not be reached (CHANUNAVAIL, CONGESTION)."""

    name: ClassVar[str] = "agent_unreachable"
    agent: str
    call_id: str
    dialstatus: str


@dataclass(frozen=True, slots=True)
class PartnerRejected(Fact):
    name: ClassVar[str] = "partner_rejected"
    call_id: str
    site: str
    dialstatus: str


@dataclass(frozen=True, slots=True)
class SiteRecovered(Fact):
    """Partner calls put through before a restart, found in Asterisk (AMI resync)."""

    name: ClassVar[str] = "site_recovered"
    site: str
    server: str
    channels: int
    active: int


#: Facts after which a waiting call's stored place changes / the call leaves the line.
CALL_PLACE_CHANGED = (CallWaiting, CallPriorityChanged, CallTransferred, CallStageReached,
                      CallRequeued)
CALL_LEFT_LINE = (CallConnected, CallAbandoned, CallCompleted, CallClosed, CallExited)
