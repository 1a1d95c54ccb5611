"""A small synchronous AGI loop for process AGI scripts (``AGI(script.py)``).

Asterisk runs a process AGI with the environment block on stdin and reads commands from
stdout. Scripts here reuse the engine's sans-I/O parser (:mod:`acd.protocol.agi`): the
same framing on bytes, the same out-of-band ``HANGUP`` handling, the same response
parsing — only the I/O is a blocking read loop instead of asyncio. No try/except copied
into every method: one :meth:`SyncAGI.command` does the round trip.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from acd.protocol.agi import (
    AGIConnection,
    AGIEnvironment,
    AGIHangup,
    AGIProtocolError,
    AGIResponse,
    Closed,
    NeedData,
    quote,
)


class AGIHungUp(Exception):
    """The channel is gone or Asterisk closed the pipe before answering."""


class SyncAGI:
    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, read_size: int = 4096) -> None:
        self._in, self._out, self._read_size = stdin, stdout, read_size
        self._conn = AGIConnection()
        event = self._next()
        if not isinstance(event, AGIEnvironment):
            raise AGIProtocolError("expected the AGI environment first")
        self.env = event
        self.hung_up = False

    def _next(self) -> AGIEnvironment | AGIResponse | AGIHangup | Closed:
        while True:
            event = self._conn.next_event()
            if not isinstance(event, NeedData):
                return event
            self._conn.receive_data(os.read(self._in.fileno(), self._read_size))

    def command(self, command: str) -> AGIResponse:
        self._out.write(self._conn.send_command(command))
        self._out.flush()
        while True:
            event = self._next()
            if isinstance(event, AGIResponse):
                if event.code == 511:
                    raise AGIHungUp(event.text)
                return event
            if isinstance(event, AGIHangup):
                self.hung_up = True
                continue
            raise AGIHungUp("Asterisk closed the AGI pipe")

    def get_variable(self, name: str) -> str | None:
        r = self.command(f"GET VARIABLE {quote(name)}")
        return r.data if r.result == "1" else None

    def set_variable(self, name: str, value: str) -> None:
        self.command(f"SET VARIABLE {quote(name)} {quote(value)}")

    def verbose(self, message: str, level: int = 1) -> None:
        self.command(f"VERBOSE {quote(message)} {level}")
