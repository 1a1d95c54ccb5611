"""Sans-I/O Asterisk Manager Interface: bytes in, frozen messages out; actions as bytes.

Two pure pieces, no sockets, no asyncio, no clocks:

* :class:`AMIConnection` frames the byte stream into an :class:`AMIBanner` and then
  :class:`AMIResponse` / :class:`AMIEvent` messages, and turns actions into bytes.
* :class:`AMIActionTracker` pairs responses and list events with the actions that caused
  them, by ActionID, and fails every pending action when the connection is lost.

The wire format, as Asterisk 22 speaks it (``tests/unit/transcripts/ami_*.jsonl``)::

    Asterisk Call Manager/11.0.0\\r\\n          banner: one line, the AMI version
    Response: Success\\r\\n                      a message: "Key: Value" lines ...
    ActionID: rec-5\\r\\n
    EventList: start\\r\\n
    Message: Device State Changes will follow\\r\\n
    \\r\\n                                        ... ended by an empty line
    Event: DeviceStateChange\\r\\n               list items carry the action's ActionID
    ActionID: rec-5\\r\\n
    Device: Custom:agent1\\r\\n
    State: INUSE\\r\\n
    \\r\\n
    Event: DeviceStateListComplete\\r\\n         the list ends with "EventList: Complete"
    ActionID: rec-5\\r\\n
    EventList: Complete\\r\\n
    ListItems: 2\\r\\n
    \\r\\n

Quirks handled here:

* Header order matters and keys repeat (``Output:`` lines of ``Command``,
  ``ChanVariable:``, and Asterisk 22's own ``TestEvent`` carries ``State:`` twice), so a
  message is an ordered tuple of pairs, not a dict. Lookups are case-insensitive.
* Lines without ``": "`` (legacy ``Response: Follows`` command output,
  ``--END COMMAND--``) are kept as ``("", line)``; ``"Key:value"`` is split at the colon.
* Events interleave with responses at any point; ``OriginateResponse`` is an *event*
  that also has a ``Response:`` header (the first header decides the type).
* Framing is on bytes at ``\\n`` (``\\r\\n`` or a bare ``\\n`` both end a line); UTF-8 is
  decoded per complete line with ``errors="replace"``.
* A failed Login gets ``Response: Error`` / ``Message: Authentication failed`` about a
  second later, then Asterisk closes the socket.

Errors follow h11: a line over :data:`MAX_LINE` bytes (whatever the reads that carried
it and its ``\r\n``), a message over :data:`MAX_MESSAGE` bytes or :data:`MAX_HEADERS`
headers, a first line that is not an AMI banner, or data after EOF raise
:class:`AMIProtocolError` and leave the connection untouched. Header injection
(CR/LF/NUL in anything we send) is refused the same way. A truncated message at EOF is
dropped.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from acd.protocol._common import CLOSED, NEED_DATA, Closed, LineBuffer, NeedData, decode_line

__all__ = [
    "CLOSED",
    "MAX_HEADERS",
    "MAX_LINE",
    "MAX_LIST_EVENTS",
    "MAX_MESSAGE",
    "NEED_DATA",
    "AMIActionTracker",
    "AMIBanner",
    "AMIConnection",
    "AMIEvent",
    "AMIMessage",
    "AMIProtocolError",
    "AMIResponse",
    "AMIState",
    "ActionDone",
    "Closed",
    "FeedResult",
    "NeedData",
]

MAX_LINE: Final = 64 * 1024
MAX_MESSAGE: Final = 1024 * 1024
#: Headers in one message at most (Asterisk 22's largest events carry ~60; a flood of
#: tiny headers must not cost more memory than the bytes they came in).
MAX_HEADERS: Final = 512
#: List events one action may hold (``CoreShowChannels`` lists every channel: one per
#: waiting caller); past it the action fails and the rest of its list is dropped.
MAX_LIST_EVENTS: Final = 200_000

_TOKEN_KEY: Final = re.compile(r"[^\s:]+")
_FORBIDDEN: Final = ("\r", "\n", "\0")


class AMIProtocolError(Exception):
    """The peer sent something illegal, or an action would inject headers."""


class AMIState(enum.Enum):
    """Where the connection is. ``BANNER`` → ``READY`` → ``CLOSED``."""

    BANNER = "banner"  # waiting for "Asterisk Call Manager/x.y.z"
    READY = "ready"  # messages flow
    CLOSED = "closed"  # EOF seen and every buffered message delivered


# ------------------------------------------------------------------------ messages


@dataclass(frozen=True)
class AMIBanner:
    """The first line: ``Asterisk Call Manager/11.0.0`` gives ``version="11.0.0"``."""

    version: str


@dataclass(frozen=True)
class AMIMessage:
    """One AMI message: ordered ``(key, value)`` headers, keys may repeat."""

    headers: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value for ``key`` (case-insensitive), or ``default``."""
        wanted = key.lower()
        for k, v in self.headers:
            if k.lower() == wanted:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value for ``key`` (case-insensitive), in order."""
        wanted = key.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


@dataclass(frozen=True)
class AMIResponse(AMIMessage):
    """A message whose first header is ``Response:``: the reply to one action."""

    @property
    def response(self) -> str:
        """``Success``, ``Error``, ``Goodbye``, ``Follows``..."""
        return self.get("Response") or ""

    @property
    def message(self) -> str | None:
        return self.get("Message")

    @property
    def is_error(self) -> bool:
        return self.response.lower() in ("error", "fail", "failure")

    @property
    def announces_list(self) -> bool:
        """True when list events follow (``EventList: start`` or ``... will follow``)."""
        if (self.get("EventList") or "").lower() == "start":
            return True
        return "will follow" in (self.message or "").lower()


@dataclass(frozen=True)
class AMIEvent(AMIMessage):
    """A message whose first header is ``Event:``."""

    @property
    def name(self) -> str:
        return self.get("Event") or ""

    @property
    def completes_list(self) -> bool:
        return (self.get("EventList") or "").lower() == "complete"


def parse_header(line: str) -> tuple[str, str]:
    """Split one header line; never fails (lenient by design)."""
    key, sep, value = line.partition(": ")
    if sep:
        return key, value
    key, sep, value = line.partition(":")
    if sep and _TOKEN_KEY.fullmatch(key):
        return key, value
    return "", line


def make_message(headers: tuple[tuple[str, str], ...]) -> AMIMessage:
    """Type a message by its first header (``Event`` or ``Response``), else by presence."""
    first = headers[0][0].lower()
    if first == "event":
        return AMIEvent(headers)
    if first == "response":
        return AMIResponse(headers)
    keys = {k.lower() for k, _ in headers}
    if "event" in keys:
        return AMIEvent(headers)
    if "response" in keys:
        return AMIResponse(headers)
    return AMIMessage(headers)


# ---------------------------------------------------------------------- connection


class AMIConnection:
    """One AMI connection, client side.

    Feed :meth:`receive_data`, then call :meth:`next_event` until it returns
    :data:`NEED_DATA` or :data:`CLOSED`. :meth:`send_action` only builds bytes; pairing
    replies with actions is :class:`AMIActionTracker`'s job.
    """

    def __init__(self) -> None:
        self._buf = LineBuffer()
        self._state = AMIState.BANNER
        self._headers: list[tuple[str, str]] = []
        self._size = 0

    @property
    def state(self) -> AMIState:
        return self._state

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means EOF."""
        if self._buf.eof:
            if data:
                raise AMIProtocolError("data received after EOF")
            return
        if data:
            self._buf.append(data)
        else:
            self._buf.eof = True

    def next_event(self) -> AMIBanner | AMIMessage | NeedData | Closed:
        """Return the next banner/message, :data:`NEED_DATA`, or :data:`CLOSED`."""
        while self._state is not AMIState.CLOSED:
            peeked = self._buf.peek_line()
            if peeked is None:
                if self._buf.eof:
                    self._state = AMIState.CLOSED
                    self._headers = []
                    self._buf.clear()
                    break
                if self._buf.partial_size() > MAX_LINE:
                    raise AMIProtocolError(f"line longer than {MAX_LINE} bytes")
                return NEED_DATA
            raw, size = peeked
            if len(raw) > MAX_LINE:
                raise AMIProtocolError(f"line longer than {MAX_LINE} bytes")
            line = decode_line(raw)
            if self._state is AMIState.BANNER:
                banner = self._banner(line)
                self._buf.consume(size)
                self._state = AMIState.READY
                return banner
            if line:
                if self._size + size > MAX_MESSAGE:
                    raise AMIProtocolError(f"message larger than {MAX_MESSAGE} bytes")
                if len(self._headers) >= MAX_HEADERS:
                    raise AMIProtocolError(f"message with more than {MAX_HEADERS} headers")
                self._buf.consume(size)
                self._headers.append(parse_header(line))
                self._size += size
                continue
            self._buf.consume(size)
            if self._headers:  # blank lines between messages are ignored
                message = make_message(tuple(self._headers))
                self._headers = []
                self._size = 0
                return message
        return CLOSED

    @staticmethod
    def _banner(line: str) -> AMIBanner:
        if "Call Manager" not in line or "/" not in line:
            raise AMIProtocolError(f"not an AMI banner: {line[:80]!r}")
        return AMIBanner(line.rpartition("/")[2].strip())

    def send_action(
        self,
        action: str,
        fields: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        *,
        action_id: str,
    ) -> bytes:
        """Return the CRLF-framed bytes of one action.

        ``fields`` may repeat keys when given as pairs (``Variable`` on Originate).
        Refused with AMIProtocolError, before anything is built: CR/LF/NUL anywhere (a
        value with ``\\r\\n`` would inject headers or a whole second action), an empty or
        colon-bearing key, ``Action``/``ActionID`` among the fields, or a closed
        connection.
        """
        if self._state is AMIState.CLOSED or self._buf.eof:
            raise AMIProtocolError("cannot send an action on a closed connection")
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        for name, value in (("Action", action), ("ActionID", action_id)):
            if not value.strip():
                raise AMIProtocolError(f"empty {name}")
            _check_value(name, value)
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in pairs:
            if not _TOKEN_KEY.fullmatch(key):
                raise AMIProtocolError(f"invalid header name: {key!r}")
            if key.lower() in ("action", "actionid"):
                raise AMIProtocolError(f"{key} is set by send_action, not by fields")
            _check_value(key, value)
            lines.append(f"{key}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _check_value(key: str, value: str) -> None:
    if any(c in value for c in _FORBIDDEN):
        raise AMIProtocolError(f"CR, LF and NUL are not allowed in header {key!r}")


# ------------------------------------------------------------------------- tracker


@dataclass(frozen=True)
class ActionDone:
    """An action finished: its response, its list events, or why it failed.

    ``error`` is the ``Message`` of a ``Response: Error`` or the reason given to
    :meth:`AMIActionTracker.fail_all` (then ``response`` may be None). For a list action
    ``events`` holds every event with its ActionID, ending with the ``EventList:
    Complete`` one (``DeviceStateListComplete``, ``CoreShowChannelsComplete``...).
    """

    action_id: str
    response: AMIResponse | None
    events: tuple[AMIEvent, ...]
    error: str | None


class FeedResult(NamedTuple):
    """What :meth:`AMIActionTracker.feed` made of one message.

    ``unsolicited`` is True when the message belongs to no pending action: the caller
    should treat it as an unsolicited event (or log and drop a stray response).
    """

    done: list[ActionDone]
    unsolicited: bool


@dataclass
class _Pending:
    list_action: bool
    response: AMIResponse | None = None
    events: list[AMIEvent] = field(default_factory=list)
    list_complete: bool = False
    #: List events dropped past the tracker's ``max_list_events``.
    dropped: int = 0


class AMIActionTracker:
    """Pairs messages with pending actions by ActionID. Pure; no I/O, no clock.

    * A plain action completes on its ``Response``.
    * A list action completes on ``Response: Error`` at once; on a response that
      announces no list, at once; otherwise when both its response and the event with
      ``EventList: Complete`` have arrived, collecting every event with its ActionID.
    * Events of a *plain* action (``OriginateResponse`` after an async Originate) are
      unsolicited: they are the engine's business, not the caller's.
    * :meth:`fail_all` on disconnect fails every pending action. Nothing is ever
      replayed: an Originate sent twice dials twice.
    * A list action holds at most ``max_list_events`` events: past that they are
      dropped (still its own: never unsolicited) and the action fails when its list
      completes.
    """

    def __init__(self, *, max_list_events: int = MAX_LIST_EVENTS) -> None:
        if max_list_events < 1:
            raise ValueError("max_list_events must be >= 1")
        self.max_list_events = max_list_events
        self._pending: dict[str, _Pending] = {}

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def held_events(self) -> int:
        """List events held for pending actions."""
        return sum(len(p.events) for p in self._pending.values())

    def register(self, action_id: str, *, list_action: bool = False) -> None:
        """Start tracking an action (before its bytes are written). ValueError if taken."""
        if action_id in self._pending:
            raise ValueError(f"ActionID {action_id!r} is already pending")
        self._pending[action_id] = _Pending(list_action)

    def discard(self, action_id: str) -> None:
        """Stop tracking an action (its caller gave up); late replies become unsolicited."""
        self._pending.pop(action_id, None)

    def feed(self, msg: AMIMessage) -> FeedResult:
        action_id = msg.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if action_id is None or pending is None:
            return FeedResult([], True)
        if isinstance(msg, AMIResponse):
            if pending.response is not None:
                return FeedResult([], True)  # a second response: not ours to judge
            if msg.is_error:
                return self._done(action_id, msg, msg.message or msg.response)
            pending.response = msg
            if not pending.list_action or not msg.announces_list or pending.list_complete:
                return self._done(action_id, msg, None)
            return FeedResult([], False)
        if isinstance(msg, AMIEvent) and pending.list_action and not pending.list_complete:
            if len(pending.events) < self.max_list_events:
                pending.events.append(msg)
            else:
                pending.dropped += 1
            if msg.completes_list:
                pending.list_complete = True
                if pending.response is not None:
                    return self._done(action_id, pending.response, None)
            return FeedResult([], False)
        return FeedResult([], True)

    def _done(self, action_id: str, response: AMIResponse, error: str | None) -> FeedResult:
        pending = self._pending.pop(action_id)
        if pending.dropped and error is None:
            error = (f"list of more than {self.max_list_events} events "
                     f"({pending.dropped} dropped)")
            return FeedResult([ActionDone(action_id, response, (), error)], False)
        return FeedResult([ActionDone(action_id, response, tuple(pending.events), error)], False)

    def fail_all(self, reason: str) -> list[ActionDone]:
        """Fail every pending action (connection lost). They are forgotten, not retried."""
        done = [
            ActionDone(aid, p.response, tuple(p.events), reason) for aid, p in self._pending.items()
        ]
        self._pending.clear()
        return done
