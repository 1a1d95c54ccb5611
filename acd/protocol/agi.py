"""Sans-I/O FastAGI: bytes from Asterisk in, frozen events out; commands out as bytes.

No sockets, no asyncio, no clocks: :class:`AGIConnection` is a state machine that the
adapter (:mod:`acd.fastagi`) feeds with whatever it reads and asks for events.

The protocol, as Asterisk 22 speaks it (see ``tests/unit/transcripts/agi_*.jsonl``)::

    Asterisk -> us   agi_network: yes\\n            environment block: "agi_key: value"
                     agi_network_script: inbound\\n  lines, ended by an empty line
                     ...
                     agi_arg_1: arg1\\n
                     \\n
    us -> Asterisk   ANSWER\\n                       one command per line
    Asterisk -> us   200 result=0\\n                 one final response per command
    us -> Asterisk   GET VARIABLE\\n
    Asterisk -> us   520-Invalid command syntax.  Proper usage follows:\\n
                     <usage text, any lines>\\n     ONE multi-line response, ended by
                     520 End of proper usage.\\n     the same code followed by a space
    Asterisk -> us   HANGUP\\n                       out of band, see below

Quirks this module handles:

* ``HANGUP`` is **not a response**. Asterisk writes it when it notices the channel hung
  up: while no command is pending, right after a result line (``EXEC Wait 30`` →
  ``200 result=-1`` then ``HANGUP``), and in principle while a command is pending. It is
  reported as :class:`AGIHangup`; :attr:`AGIConnection.hung_up` stays true.
* After ``HANGUP`` Asterisk still answers every command: dead-channel-capable commands
  (``GET VARIABLE``) normally, the others with
  ``511 Command Not Permitted on a dead channel or intercept routine``. The socket stays
  open until *we* close it.
* ``1xx`` lines (``100 result=0 Trying...`` while ``EXEC Gosub`` runs) are provisional:
  they are swallowed and do not complete the pending command.
* Response shape ``200 result=1 (timeout) endpos=1234``: ``result`` is the token after
  ``result=`` (may be empty: ``200 result= (timeout)``), ``data`` is the text between
  the first ``(`` and the **last** ``)`` (so a variable value containing parentheses
  survives), ``fields`` are the ``key=value`` tokens after it.
* Lines are framed on bytes at ``\\n`` (a ``\\r`` before it is dropped) and decoded as
  UTF-8 with ``errors="replace"`` only when complete: a multi-byte character split
  across reads stays intact.

Errors follow h11: illegal input raises :class:`AGIProtocolError` from
:meth:`AGIConnection.next_event` and leaves the connection untouched (the offending
bytes stay buffered, so calling again raises again); the adapter is expected to close.
Illegal *local* use (a command before the environment, CR/LF in a command) raises the
same exception without changing anything.

Limits: a line may be at most :data:`MAX_LINE` bytes (the same verdict however the
reads cut it and its ``\r\n``); an environment block or a multi-line response at most
:data:`MAX_BLOCK` bytes. A truncated final line at EOF is dropped.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from acd.protocol._common import CLOSED, NEED_DATA, Closed, LineBuffer, NeedData, decode_line

__all__ = [
    "CLOSED",
    "MAX_BLOCK",
    "MAX_LINE",
    "NEED_DATA",
    "AGIConnection",
    "AGIEnvironment",
    "AGIEvent",
    "AGIHangup",
    "AGIProtocolError",
    "AGIResponse",
    "AGIState",
    "Closed",
    "NeedData",
    "parse_response",
    "quote",
]

MAX_LINE: Final = 64 * 1024
MAX_BLOCK: Final = 256 * 1024

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_CODE_LINE: Final = re.compile(r"(\d{3})(?:([ -])(.*))?", re.S)
_FIELD_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT: Final = re.compile(r"-?\d+")


class AGIProtocolError(Exception):
    """The peer sent something illegal, or the caller used the connection illegally."""


class AGIState(enum.Enum):
    """Where the connection is. ``ENVIRONMENT`` → ``READY`` → ``CLOSED``."""

    ENVIRONMENT = "environment"  # reading the agi_* block; commands are refused
    READY = "ready"  # environment received; commands and responses flow
    CLOSED = "closed"  # EOF seen and every buffered event delivered


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class AGIEnvironment:
    """The ``agi_*`` variables Asterisk sends first, keyed as sent (``agi_channel``)."""

    variables: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.variables.get(key, default)

    @property
    def script(self) -> str:
        """``agi_network_script``: the path of ``agi://host:port/<script>``."""
        return self.get("agi_network_script")

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` .. ``agi_arg_N`` in order (the AGI() application arguments)."""
        out: list[str] = []
        while (value := self.variables.get(f"agi_arg_{len(out) + 1}")) is not None:
            out.append(value)
        return tuple(out)

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def callerid(self) -> str:
        """Caller number as Asterisk reports it (``"unknown"`` when there is none)."""
        return self.get("agi_callerid")

    @property
    def calleridname(self) -> str:
        return self.get("agi_calleridname")

    @property
    def extension(self) -> str:
        return self.get("agi_extension")

    @property
    def context(self) -> str:
        return self.get("agi_context")


@dataclass(frozen=True)
class AGIResponse:
    """The final response to one command.

    ``text`` is the response exactly as received (lines joined with ``\\n``);
    ``result``/``data``/``fields`` are None/None/{} when the line has no ``result=``
    (``510 Invalid or unknown command``, the ``520`` usage block, ``511 ...``).
    """

    code: int
    result: str | None
    data: str | None
    fields: Mapping[str, str]
    text: str

    @property
    def result_int(self) -> int | None:
        """``result`` as an int, or None when absent or not an integer."""
        if self.result is None or not _INT.fullmatch(self.result):
            return None
        return int(self.result)


@dataclass(frozen=True)
class AGIHangup:
    """Asterisk wrote ``HANGUP``: the channel is gone. Not a response to any command."""


AGIEvent = AGIEnvironment | AGIResponse | AGIHangup


# ------------------------------------------------------------------------- helpers


def quote(arg: str) -> str:
    """Quote one command argument the way res_agi's ``parse_args`` unquotes it.

    Double quotes group words, a backslash escapes the next character. Use it for any
    argument that may contain spaces, quotes or be empty: ``EXEC Dial <quote(args)>``.
    """
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_response(lines: list[str]) -> AGIResponse:
    """Build an :class:`AGIResponse` from its line(s); the first starts with the code."""
    first = lines[0]
    code = int(first[:3])
    text = "\n".join(lines)
    rest = first[4:]
    if len(lines) > 1 or not rest.startswith("result="):
        return AGIResponse(code, None, None, _EMPTY, text)
    result, _, remainder = rest[len("result=") :].partition(" ")
    remainder = remainder.strip()
    data: str | None = None
    if remainder.startswith("("):
        close = remainder.rfind(")")
        if close > 0:
            data, remainder = remainder[1:close], remainder[close + 1 :]
    fields: dict[str, str] = {}
    for token in remainder.split():
        key, eq, value = token.partition("=")
        if eq and _FIELD_KEY.fullmatch(key):
            fields[key] = value
    return AGIResponse(code, result, data, MappingProxyType(fields) if fields else _EMPTY, text)


# ---------------------------------------------------------------------- connection


class AGIConnection:
    """One FastAGI connection, seen from the AGI server (our) side.

    Feed :meth:`receive_data`, then call :meth:`next_event` until it returns
    :data:`NEED_DATA` or :data:`CLOSED`. :meth:`send_command` returns the bytes to write
    and counts the command as pending; each final response completes the oldest pending
    command. :meth:`abandon_response` lets a caller that stopped waiting (timeout,
    cancellation) keep the connection in step: that reply is read and discarded.
    """

    def __init__(self) -> None:
        self._buf = LineBuffer()
        self._state = AGIState.ENVIRONMENT
        self._env: dict[str, str] = {}
        self._env_size = 0
        self._block: list[str] | None = None  # lines of a multi-line response so far
        self._block_size = 0
        self._pending: deque[bool] = deque()  # one entry per command; True = abandoned
        self._hung_up = False

    # -- inspection ------------------------------------------------------------------

    @property
    def state(self) -> AGIState:
        return self._state

    @property
    def pending(self) -> int:
        """Commands sent whose final response has not been read (abandoned included)."""
        return len(self._pending)

    @property
    def hung_up(self) -> bool:
        """True once ``HANGUP`` was received."""
        return self._hung_up

    # -- input -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ``b""`` means EOF."""
        if self._buf.eof:
            if data:
                raise AGIProtocolError("data received after EOF")
            return
        if data:
            self._buf.append(data)
        else:
            self._buf.eof = True

    def next_event(self) -> AGIEvent | NeedData | Closed:
        """Return the next event, :data:`NEED_DATA`, or :data:`CLOSED` (then forever)."""
        while self._state is not AGIState.CLOSED:
            peeked = self._buf.peek_line()
            if peeked is None:
                if self._buf.eof:
                    self._close()
                    break
                if self._buf.partial_size() > MAX_LINE:
                    raise AGIProtocolError(f"line longer than {MAX_LINE} bytes")
                return NEED_DATA
            raw, size = peeked
            if len(raw) > MAX_LINE:
                raise AGIProtocolError(f"line longer than {MAX_LINE} bytes")
            line = decode_line(raw)
            if self._state is AGIState.ENVIRONMENT:
                event: AGIEvent | None = self._environment_line(line, size)
            else:
                event = self._ready_line(line, size)
            self._buf.consume(size)
            if event is not None:
                return event
        return CLOSED

    # Each *_line method validates first and raises before changing anything; once it
    # has changed state it must not raise (the caller consumes the line afterwards).

    def _environment_line(self, line: str, size: int) -> AGIEnvironment | None:
        if not line:
            if not self._env:
                raise AGIProtocolError("empty AGI environment")
            env = AGIEnvironment(MappingProxyType(self._env))
            self._env = {}
            self._state = AGIState.READY
            return env
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or not _FIELD_KEY.fullmatch(key):
            raise AGIProtocolError(f"malformed environment line: {line[:80]!r}")
        if self._env_size + size > MAX_BLOCK:
            raise AGIProtocolError(f"environment larger than {MAX_BLOCK} bytes")
        self._env[key] = value[1:] if value.startswith(" ") else value
        self._env_size += size
        return None

    def _ready_line(self, line: str, size: int) -> AGIResponse | AGIHangup | None:
        if self._block is not None:
            return self._block_line(line, size)
        if line.rstrip() == "HANGUP":
            self._hung_up = True
            return AGIHangup()
        match = _CODE_LINE.fullmatch(line)
        if match is None:
            raise AGIProtocolError(f"unexpected line: {line[:80]!r}")
        if not self._pending:
            raise AGIProtocolError(f"response without a pending command: {line[:80]!r}")
        if match.group(2) == "-":
            self._block = [line]
            self._block_size = size
            return None
        if line.startswith("1"):
            return None  # provisional ("100 result=0 Trying..."): not the final response
        return self._complete([line])

    def _block_line(self, line: str, size: int) -> AGIResponse | None:
        assert self._block is not None
        code = self._block[0][:3]
        if line == code or line.startswith(code + " "):
            lines = [*self._block, line]
            self._block = None
            return self._complete(lines)
        if self._block_size + size > MAX_BLOCK:
            raise AGIProtocolError(f"multi-line response larger than {MAX_BLOCK} bytes")
        self._block.append(line)
        self._block_size += size
        return None

    def _complete(self, lines: list[str]) -> AGIResponse | None:
        response = parse_response(lines)
        abandoned = self._pending.popleft()
        return None if abandoned else response

    def _close(self) -> None:
        self._state = AGIState.CLOSED
        self._block = None
        self._buf.clear()

    # -- output ----------------------------------------------------------------------

    def send_command(self, command: str) -> bytes:
        """Return the bytes for ``command`` and count it as pending.

        Refused (AGIProtocolError, nothing changes) before the environment was received,
        after EOF, for an empty command (Asterisk would not answer it, and the
        connection would be one reply off) and for CR/LF/NUL (command injection).
        """
        if self._state is AGIState.ENVIRONMENT:
            raise AGIProtocolError("cannot send a command before the AGI environment")
        if self._state is AGIState.CLOSED or self._buf.eof:
            raise AGIProtocolError("cannot send a command on a closed connection")
        if any(c in command for c in "\r\n\0"):
            raise AGIProtocolError("CR, LF and NUL are not allowed in an AGI command")
        if not command.strip():
            raise AGIProtocolError("empty AGI command")
        data = (command + "\n").encode("utf-8")
        self._pending.append(False)
        return data

    def abandon_response(self) -> None:
        """Stop waiting for the oldest pending command's response; it will be discarded.

        Use it when the coroutine awaiting that response timed out or was cancelled, so
        the next command does not receive the previous command's reply.
        """
        for i, abandoned in enumerate(self._pending):
            if not abandoned:
                self._pending[i] = True
                return
        raise AGIProtocolError("no pending command to abandon")
