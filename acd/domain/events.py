"""The inbox: everything that changes the core's state arrives as one of these events.

The FastAGI sessions report calls (``CallArrived``, ``CallHungUp``, ``DialFinished``),
AMI reports phones and answers (``DeviceStateChanged``, ``DeviceSnapshot``,
``CallAnswered`` …), timers come back as events (``StageDue``, ``WrapUpDone`` …), and
operators' commands are events too (``SetAgentStatus``, ``TransferCall`` …). Every event
carries ``now``: the core has no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from acd.domain.records import AgentStatus


@dataclass(frozen=True, slots=True)
class CallArrived:
    """A caller's session reached the engine (first entry, retry, or transfer)."""

    call_id: str
    #: The queue the entry plan chose (DID, segment, menu, or ACD_QUEUE on the channel).
    queue_id: str
    #: The caller's number, normalised once by the session (routing.numbers).
    caller: str
    entry_time: float
    now: float
    channel: str = ""
    uniqueid: str = ""
    #: The caller's own priority on top of the queue's (segment).
    priority_boost: int = 0
    segment: str = ""
    #: The caller's province (ISO 3166-2:CN), whether it was really known, and how it
    #: was found (lookup, ivr, override, default).
    region: str = ""
    region_known: bool = False
    region_source: str = ""
    #: The Asterisk server the caller is on (``asterisk.servers[].name``); "" = default.
    server: str = ""
    #: The dialled number (normalised) and the IVR key pressed, for people and history.
    did: str = ""
    menu_choice: str = ""
    #: A call the store remembered waiting before a restart or takeover: it was admitted
    #: then, so opening hours do not apply again.
    restored: bool = False


@dataclass(frozen=True, slots=True)
class CallHungUp:
    """The caller's channel is gone (HANGUP or the session's socket closed), or with
    ``released`` the session handed the caller back to the dialplan."""

    call_id: str
    now: float
    released: bool = False


@dataclass(frozen=True, slots=True)
class CallerKey:
    """The caller pressed a key while waiting (AMI DTMF, or during an announcement)."""

    call_id: str
    digit: str
    now: float


@dataclass(frozen=True, slots=True)
class WaitLimit:
    """A waiting call may have reached its queue's ``max_wait``."""

    call_id: str
    now: float


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
class OfferFailed:
    """The adapter could not deliver an offer (the call's session is gone)."""

    call_id: str
    agent_id: str
    now: float


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
    """The agent's status as the person (or a supervisor) chooses it. Paused without a
    reason: the first configured pause reason."""

    agent_id: str
    status: AgentStatus
    now: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentLogin:
    """An agent signs in: a logged-out agent becomes available, or paused with
    ``reason`` if one is given; an agent already signed in stays as it is."""

    agent_id: str
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
    """A supervisor sets a waiting call's own priority (it replaces the caller's segment
    priority; its wait still counts)."""

    call_id: str
    priority: int
    now: float


@dataclass(frozen=True, slots=True)
class EndWrapUp:
    """The agent ends its wrap-up now (ready for the next call sooner)."""

    agent_id: str
    now: float


@dataclass(frozen=True, slots=True)
class ExtendWrapUp:
    """The agent needs more time after its call: ``seconds`` more, bounded by
    ``desktop.wrap_up_max`` from the start of the wrap-up."""

    agent_id: str
    seconds: float
    now: float


@dataclass(frozen=True, slots=True)
class SetDisposition:
    """The agent's disposition code and note for the call it talked to last (or now)."""

    agent_id: str
    call_id: str
    disposition: str
    note: str
    now: float


@dataclass(frozen=True, slots=True)
class SendToPartner:
    """A supervisor sends a waiting call to a partner site now: ``site_id``, or the best
    open partner with room that offers the call's service (covering its region first)
    when empty."""

    call_id: str
    site_id: str
    now: float


@dataclass(frozen=True, slots=True)
class StageDue:
    """A waiting call may have reached its queue's next escalation stage."""

    call_id: str
    now: float


@dataclass(frozen=True, slots=True)
class HoursDue:
    """An own site's or a queue's opening hours may have changed (``kind``: ``site`` or
    ``queue``)."""

    kind: str
    target_id: str
    now: float


@dataclass(frozen=True, slots=True)
class PartnerDue:
    """A waiting call's wait may have made more partner sites eligible."""

    call_id: str
    now: float


@dataclass(frozen=True, slots=True)
class WrapUpDone:
    agent_id: str
    token: int
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


@dataclass(frozen=True, slots=True)
class RequestCallback:
    """A callback to put in line (acd.domain.callbacks): the caller confirmed its number
    after leaving the line (``origin_call_id`` names the call it replaces, whose place it
    takes), or the API scheduled one, or the store restored one (the fields below)."""

    origin_call_id: str
    number: str
    now: float
    callback_id: str = ""
    queue_id: str = ""
    entry_time: float = 0.0
    requested_at: float = 0.0
    server: str = ""
    ewt: float | None = None
    #: Not dialled before this time (a scheduled callback).
    not_before: float = 0.0
    attempts: int = 0
    dials: int = 0
    reason: str = ""
    restored: bool = False
    #: Attempts at most for this one (0: ``callbacks.attempts``); a campaign's are 1.
    max_attempts: int = 0


@dataclass(frozen=True, slots=True)
class CallbackDue:
    """A scheduled callback's time, or a retry's, has come: back in line."""

    callback_id: str
    now: float


@dataclass(frozen=True, slots=True)
class CancelCallback:
    """An operator cancels a callback that is not being dialled."""

    callback_id: str
    now: float


Event = (
    CallArrived | CallHungUp | CallAnswered | DialFinished | OfferFailed
    | CallerKey | WaitLimit
    | DeviceStateChanged | DeviceSnapshot | DeviceStateLost | PhoneRecheck
    | SetAgentStatus | AgentLogin | TransferCall | SetCallPriority
    | EndWrapUp | ExtendWrapUp | SetDisposition | SendToPartner
    | StageDue | PartnerDue | WrapUpDone | PartnerChannels | ChannelGone | HoursDue
    | RequestCallback | CallbackDue | CancelCallback
)
