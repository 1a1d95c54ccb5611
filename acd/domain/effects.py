"""Effects: what the core asks the adapters to do after an event. No I/O happens here.

* :class:`Offer` — dial an agent (or a partner site) from the call's own session;
* :class:`CloseCall` — the call's queue is closed: its closed action, then hang up;
* :class:`ExitCall` — the caller leaves the line by an exit (voicemail, a message);
* :class:`StartTimer` — post ``event`` back to the inbox after ``delay`` seconds;
* a :class:`~acd.domain.facts.Fact` — tell the world what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from acd.domain.events import Event
from acd.domain.facts import Fact


@dataclass(frozen=True, slots=True)
class Offer:
    """Dial ``dial`` from the call's session, ringing at most ``timeout`` seconds."""

    call_id: str
    agent_id: str
    dial: str
    timeout: int
    #: Set when the target is a partner site (``agent_id`` is then empty).
    site_id: str = ""
    #: The caller's hold music while the phone rings (its queue's ``moh_class``).
    moh_class: str = ""


@dataclass(frozen=True, slots=True)
class CloseCall:
    """The queue is closed for this caller: play ``sound``, then leave a voicemail in
    ``mailbox`` (``box@context``) if set, then the call ends."""

    call_id: str
    queue_id: str
    sound: str
    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class ExitCall:
    """The caller leaves the line by its queue's exit: play ``sound``, then leave a
    voicemail in ``mailbox`` (``box@context``) if set, then the call ends."""

    call_id: str
    queue_id: str
    sound: str
    mailbox: str | None = None
    #: The caller leaves to be called back: the session confirms the number to call
    #: and reports it (``RequestCallback``) before the call ends.
    callback: bool = False


@dataclass(frozen=True, slots=True)
class StartTimer:
    delay: float
    event: Event


#: Effects a call's session carries out (delivered to that session).
SessionEffect = Offer | CloseCall | ExitCall
Effect = Offer | CloseCall | ExitCall | StartTimer | Fact
