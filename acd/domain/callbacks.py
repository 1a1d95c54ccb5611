"""Callbacks (virtual hold): a caller leaves the line to be called back and keeps its place.

A waiting caller presses the queue's callback key (or reaches an exit whose action is
``to: callback``), confirms the number to call and hangs up. The callback is then a
work item of the same router, **with the caller's original entry time and sequence**:
it is routed like the call it replaced and served before everyone who came later. When
the router gives it an agent, the core's ``Offer`` goes to the outbound dialer
(``acd.runtime.callbacks``) instead of a caller's session: it rings the agent first
(AMI ``Originate`` into the dedicated dialplan context), then the dialplan dials the
customer through a pattern-limited destination.

Outcomes come back as the ordinary events: ``CallAnswered`` (the customer answered),
``DialFinished`` with ``ANSWER`` (the conversation ended) or with the agent's statuses
(``NOANSWER``/``BUSY``: the agent did not take it — ring-no-answer, the callback keeps its
place) or with a ``CUSTOMER_*`` status (the agent took it, the customer was not
reached: an attempt; retried after ``retry_after`` until ``attempts``, then failed).

Pure: no I/O, no clock (times come in the events); ``mypy --strict``. What this module
holds: the settings, the records, the facts and the number patterns (the one check of
where the engine may call, also rendered into the dialplan).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from acd.domain.facts import Fact
from routing.hours import Schedule

#: DialFinished statuses the dialer reports for the customer's leg (the agent took the
#: callback; the customer was not reached): ``CUSTOMER_`` + Dial's DIALSTATUS.
CUSTOMER = "CUSTOMER_"
#: The outbound AMI account is down: nothing was sent; not an attempt, retried soon.
OUTBOUND_DOWN = "OUTBOUND_DOWN"
#: The originate may or may not have reached Asterisk (the connection dropped before
#: its reply): never sent again (it would dial twice); the callback ends "in doubt".
IN_DOUBT = "IN_DOUBT"

#: Exits awaiting the caller's confirmation, remembered at most (oldest dropped).
MAX_STASHED = 10_000


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """``callbacks`` of the config (None in :class:`~acd.domain.settings.Settings`: off)."""

    #: Customer legs tried at most (a busy or unanswered customer is tried again).
    attempts: int = 3
    #: Seconds between two attempts.
    retry_after: float = 120.0
    #: Seconds the customer's phone rings (Dial's timeout in the dialplan).
    customer_ring: int = 30
    #: Asterisk extension patterns of the numbers the engine may call (``_1[3-9]XXXXXXXXX``).
    allow: tuple[str, ...] = ()
    #: The dedicated originate-only dialplan context.
    context: str = "acd-outbound"
    #: Seconds before trying again when the outbound AMI account is down.
    down_retry: float = 5.0
    #: What the caller hears: the number said back (``number_is`` + its digits), then
    #: ``confirm_prompt`` (``{confirm}``/``{other}`` said as digits), ``enter_number``
    #: to key another one (``#`` ends it), ``confirmed`` at the end, ``invalid`` for a
    #: number the engine may not call.
    number_is: str = "telephone-number"
    confirm_prompt: tuple[str, ...] = ("if-correct-press", "{confirm}", "vm-press",
                                       "{other}", "vm-calldiffnum")
    enter_number: str = "vm-enter-num-to-call"
    confirmed: str = "auth-thankyou"
    invalid: str = "invalid"
    confirm_key: str = "1"
    other_key: str = "2"
    #: Seconds the caller has to answer each prompt.
    confirm_timeout: float = 6.0
    #: When callbacks are dialled (the config's time zone); None: any time. Outside it
    #: a callback waits, with its place, for the window to open.
    window: Schedule | None = None


class CallbackState(StrEnum):
    #: In line with its place (or scheduled: waiting for ``not_before``).
    PENDING = "pending"
    SCHEDULED = "scheduled"
    #: An attempt failed; the next one at ``retry_at``.
    RETRY = "retry"
    #: An agent is reserved and rung; the customer's leg follows.
    DIALING = "dialing"
    CONNECTED = "connected"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({CallbackState.COMPLETED, CallbackState.FAILED,
                          CallbackState.CANCELLED})


@dataclass(slots=True)
class Callback:
    """One callback, from the request to its outcome."""

    callback_id: str
    #: The inbound call it replaced ("" for a callback scheduled through the API).
    origin_call_id: str
    queue_id: str
    number: str
    #: The caller's original entry time: its place in line.
    entry_time: float
    requested_at: float
    server: str = ""
    #: The caller's sure expected wait when it asked (None: not known).
    ewt: float | None = None
    #: Not dialled before this time (scheduled callbacks).
    not_before: float = 0.0
    attempts: int = 0
    #: Originates so far (an attempt voided by a takeover counts here, not in
    #: ``attempts``): the dialplan's ACD_CB_ATTEMPT, never reused for one callback.
    dials: int = 0
    state: CallbackState = CallbackState.PENDING
    retry_at: float | None = None
    agent_id: str = ""
    outcome: str = ""
    #: Why: "caller_key", "max_ewt", "api" …
    reason: str = ""
    connected_at: float | None = None
    #: Attempts at most (0: the settings'); a campaign attempt is one.
    max_attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"callback_id": self.callback_id, "call_id": self.origin_call_id,
                "queue": self.queue_id, "number": self.number,
                "entry_time": self.entry_time, "requested_at": self.requested_at,
                "server": self.server, "ewt": self.ewt, "not_before": self.not_before,
                "attempts": self.attempts, "dials": self.dials, "state": self.state.value,
                "retry_at": self.retry_at, "agent": self.agent_id,
                "outcome": self.outcome, "reason": self.reason,
                "max_attempts": self.max_attempts}


@dataclass(frozen=True, slots=True)
class Stashed:
    """An inbound call that left the line for a callback, until the caller confirms."""

    queue_id: str
    caller: str
    entry_time: float
    seq: int
    boost: int
    server: str
    region: str
    ewt: float | None
    reason: str


class CallbackBook:
    """The callbacks the core keeps (by id) and the exits awaiting confirmation."""

    def __init__(self, settings: CallbackSettings | None) -> None:
        self.settings = settings
        self.by_id: dict[str, Callback] = {}
        self._stash: OrderedDict[str, Stashed] = OrderedDict()
        #: Totals since start: offered (exits to a callback), requested (confirmed),
        #: completed, failed, cancelled, attempts.
        self.totals: dict[str, int] = {"offered": 0, "requested": 0, "completed": 0,
                                       "failed": 0, "cancelled": 0, "attempts": 0}

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    def stash(self, call_id: str, entry: Stashed) -> None:
        self._stash[call_id] = entry
        self._stash.move_to_end(call_id)
        while len(self._stash) > MAX_STASHED:
            self._stash.popitem(last=False)
        self.totals["offered"] += 1

    def take(self, call_id: str) -> Stashed | None:
        return self._stash.pop(call_id, None)

    def is_callback(self, call_id: str) -> bool:
        return call_id in self.by_id

    def pending(self) -> list[Callback]:
        return [cb for cb in self.by_id.values() if cb.state not in FINAL_STATES]


# -- where the engine may call ----------------------------------------------------------

_PATTERN_CHARS = re.compile(r"^_[0-9XZN\[\]\-.!+*#]+$")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """An Asterisk extension pattern (``_1[3-9]XXXXXXXXX``) as a regular expression:
    X any digit, Z 1-9, N 2-9, ``[..]`` a set, ``.`` one or more, ``!`` zero or more of
    anything; other characters literal. Raises ValueError for anything else."""
    if not _PATTERN_CHARS.match(pattern):
        raise ValueError(f"{pattern!r} is not an extension pattern (_ then digits, X Z N, "
                         "[sets], . or !)")
    out, i, body = ["^"], 0, pattern[1:]
    while i < len(body):
        ch = body[i]
        if ch == "X":
            out.append("[0-9]")
        elif ch == "Z":
            out.append("[1-9]")
        elif ch == "N":
            out.append("[2-9]")
        elif ch == "[":
            end = body.find("]", i)
            if end < 0 or end == i + 1:
                raise ValueError(f"{pattern!r}: an unclosed or empty [set]")
            out.append("[" + body[i + 1:end] + "]")
            i = end
        elif ch == ".":
            out.append(".+")
        elif ch == "!":
            out.append(".*")
        elif ch == "]":
            raise ValueError(f"{pattern!r}: ']' without '['")
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def international(pattern: str) -> bool:
    """Whether a pattern may reach a number abroad (``00…`` or ``+…``)."""
    rx = pattern_regex(pattern)
    return any(rx.match(probe) for probe in ("00" + "1" * 12, "+" + "1" * 12,
                                             "00" + "8" * 10, "0044" + "7" * 10))


def allowed(number: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``number`` (digits, normalised) is one the engine may call."""
    if not number or not all(c.isdigit() for c in number):
        return False
    return any(pattern_regex(p).match(number) for p in patterns)


# -- facts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackRequested(Fact):
    """A callback is in line (confirmed by the caller, scheduled, or restored)."""

    name: ClassVar[str] = "callback_requested"
    callback_id: str
    call_id: str
    queue: str
    number: str
    entry_time: float
    requested_at: float
    ewt: float | None
    not_before: float
    attempts: int
    server: str
    reason: str
    restored: bool = False


@dataclass(frozen=True, slots=True)
class CallbackDialing(Fact):
    """An agent is reserved for the callback; the engine rings it first."""

    name: ClassVar[str] = "callback_dialing"
    callback_id: str
    agent: str
    attempt: int


@dataclass(frozen=True, slots=True)
class CallbackAttempted(Fact):
    """The customer was not reached (busy, no answer …); ``retry_at``: the next try."""

    name: ClassVar[str] = "callback_attempt"
    callback_id: str
    queue: str
    attempt: int
    status: str
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class CallbackFinished(Fact):
    """The callback's outcome: completed, failed (attempts used up, or in doubt) or
    cancelled. ``delay``: seconds from the request to the customer's answer (None if
    never), against ``ewt``, the caller's expected wait when it asked."""

    name: ClassVar[str] = "callback_finished"
    callback_id: str
    queue: str
    outcome: str
    attempts: int
    status: str
    delay: float | None
    ewt: float | None
    agent: str | None = None
