"""asyncio FastAGI server: moves bytes between sockets and :mod:`acd.protocol.agi`.

Asterisk connects once per ``AGI(agi://host:port/script,args...)`` dialplan call, sends
the ``agi_*`` environment and then waits for commands. The parsing and the protocol
rules live in :class:`~acd.protocol.agi.AGIConnection`; this module only reads, writes,
waits with timeouts, and runs one handler per call.

**AGI is sequential.** Asterisk executes one command at a time and answers in order, so
:meth:`AGISession.command` holds a lock: concurrent callers queue up, and each gets the
reply to its own command. A caller that times out or is cancelled marks its reply as
abandoned (:meth:`~acd.protocol.agi.AGIConnection.abandon_response`): it is read and
discarded, and the next command gets the right reply.

**Never pipeline.** res_agi reads commands with ``fgets()`` on a stdio buffer but waits
for readability on the raw socket: a second command that reaches Asterisk in the same
read as the first sits in the buffer unseen until *more* bytes arrive (recorded in
``tests/unit/transcripts/agi_pipelined.jsonl``: no reply for 3 s). So a command is only
written once every earlier reply, abandoned ones included, has been read; until then
it waits (inside its own timeout). ``HANGUP`` is out of band: a
background reader sees it at any time, even when no command is running, and wakes
:meth:`AGISession.wait_hangup`.

Errors::

    AGIError
    ├── AGIHangupError    the call is gone: EOF or a closed/broken connection before
    │                     the reply, or a helper got 511 (dead channel)
    ├── AGITimeoutError   no reply within the timeout (also a TimeoutError); the late
    │                     reply will be discarded, the session stays usable
    └── AGICommandError   a helper got a non-200 response (see ``.response``)

    acd.protocol.agi.AGIProtocolError   an illegal command string (CR/LF, empty), raised
                                        before anything is sent
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import resource
from collections.abc import Awaitable, Callable
from typing import Protocol

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

__all__ = [
    "AGICommandError",
    "AGIError",
    "AGIHangupError",
    "AGISession",
    "AGITimeoutError",
    "FastAGIServer",
]

log = logging.getLogger("acd.runtime.fastagi")

READ_SIZE = 64 * 1024
_CLOSE_TIMEOUT = 1.0
_APP_NAME = re.compile(r"[A-Za-z0-9_]+")


class AGIError(Exception):
    """Base class of the FastAGI session errors."""


class AGIHangupError(AGIError):
    """The call is gone (connection closed, or the channel is dead)."""


class AGITimeoutError(AGIError, TimeoutError):
    """No reply within the timeout; the connection stays in step."""


class AGICommandError(AGIError):
    """A helper got a response other than ``200``."""

    def __init__(self, response: AGIResponse) -> None:
        super().__init__(response.text)
        self.response = response


class AGISession:
    """One FastAGI call. Created by :class:`FastAGIServer` once the environment is in.

    A background task reads the socket for the whole call and feeds the parser, so a
    ``HANGUP`` (or EOF) is seen even while nobody is waiting for a reply. That read has
    no timeout on purpose: a call may sit in a queue for an hour with Asterisk silent;
    every *command* has one.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: AGIConnection,
        env: AGIEnvironment,
        peer: str = "",
    ) -> None:
        self.env = env
        #: The peer's address (the Asterisk server that connected).
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._conn = conn
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[AGIResponse] | None = None
        self._hangup = asyncio.Event()
        self._quiet = asyncio.Event()  # no reply outstanding (abandoned ones included)
        self._quiet.set()
        self._closed_reason: str | None = None
        self._reader_task = asyncio.create_task(
            self._read_loop(), name=f"agi-reader {env.channel or env.uniqueid}"
        )

    def __repr__(self) -> str:
        return f"<AGISession {self.env.channel!r} script={self.env.script!r}>"

    # -- state -----------------------------------------------------------------------

    @property
    def hung_up(self) -> bool:
        """True once Asterisk sent ``HANGUP`` or the connection is gone."""
        return self._hangup.is_set()

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    async def wait_hangup(self) -> None:
        """Return when ``HANGUP`` arrives or the connection ends. Safe to cancel."""
        await self._hangup.wait()

    # -- commands --------------------------------------------------------------------

    async def command(
        self,
        cmd: str,
        timeout: float | None = 10.0,  # noqa: ASYNC109 (see below)
    ) -> AGIResponse:
        """Send one raw AGI command and return its final response (any code).

        ``timeout`` also covers waiting behind earlier commands. It is a parameter (not
        left to the caller's ``asyncio.timeout``, which is just as safe) so that no
        command waits forever by default. Raises AGITimeoutError, AGIHangupError
        (connection closed before the reply) or AGIProtocolError (illegal command,
        nothing sent). Cancelling the caller is safe: the reply is discarded.
        """
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    return await self._command_locked(cmd)
        except TimeoutError as exc:
            raise AGITimeoutError(f"no reply to {cmd.split(' ', 1)[0]} within {timeout}s") from exc

    async def _command_locked(self, cmd: str) -> AGIResponse:
        await self._quiet.wait()  # an abandoned reply may still be on its way
        if self._closed_reason is not None:
            raise AGIHangupError(self._closed_reason)
        data = self._conn.send_command(cmd)
        self._quiet.clear()
        fut: asyncio.Future[AGIResponse] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            self._writer.write(data)
            await self._writer.drain()
            return await fut
        except ConnectionError as exc:
            self._lost(f"connection lost: {exc!r}")
            raise AGIHangupError(self._closed_reason) from exc
        finally:
            if self._waiter is fut:  # no reply delivered: timed out, cancelled, or lost
                self._waiter = None
                if self._closed_reason is None:
                    self._conn.abandon_response()

    async def _ok(self, cmd: str, timeout: float | None = 10.0) -> AGIResponse:  # noqa: ASYNC109
        response = await self.command(cmd, timeout)
        if response.code == 511:
            raise AGIHangupError(response.text)
        if response.code != 200:
            raise AGICommandError(response)
        return response

    async def answer(self) -> AGIResponse:
        return await self._ok("ANSWER")

    async def set_variable(self, name: str, value: str) -> None:
        await self._ok(f"SET VARIABLE {quote(name)} {quote(value)}")

    async def get_variable(self, name: str) -> str | None:
        """The variable's value (``200 result=1 (value)``), None when unset (result=0).

        Works after HANGUP: GET VARIABLE is allowed on a dead channel (DIALSTATUS...).
        """
        response = await self._ok(f"GET VARIABLE {quote(name)}")
        if response.result != "1":
            return None
        return response.data if response.data is not None else ""

    async def get_full_variable(self, expression: str) -> str | None:
        """``expression`` evaluated by Asterisk (``${A}|${B}``: several variables in one
        round trip), None when it cannot be (result=0). Works after HANGUP too."""
        response = await self._ok(f"GET FULL VARIABLE {quote(expression)}")
        if response.result != "1":
            return None
        return response.data if response.data is not None else ""

    async def exec(
        self,
        app: str,
        args: str = "",
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AGIResponse:
        """Run a dialplan application (``EXEC Dial "PJSIP/100,20,m"``).

        ``timeout`` defaults to None: an application such as Dial runs for the whole
        conversation; HANGUP/EOF still ends the wait. ``result`` is the application's
        return value (``-1`` when the channel hung up, ``-2`` when it does not exist).
        """
        if not _APP_NAME.fullmatch(app):
            raise ValueError(f"invalid application name: {app!r}")
        return await self._ok(f"EXEC {app} {quote(args)}", timeout)

    async def set_music(self, on: bool, moh_class: str | None = None) -> None:
        if not on:
            await self._ok("SET MUSIC OFF")
        elif moh_class:
            await self._ok(f"SET MUSIC ON {quote(moh_class)}")
        else:
            await self._ok("SET MUSIC ON")

    # -- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection (Asterisk continues the dialplan). Idempotent."""
        self._lost("session closed")
        if self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._writer.wait_closed()

    def _lost(self, reason: str) -> None:
        """The connection is over: wake everyone, fail the waiter, close the transport."""
        if self._closed_reason is None:
            self._closed_reason = reason
        self._hangup.set()
        self._quiet.set()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(AGIHangupError(self._closed_reason))
        self._writer.close()

    async def _read_loop(self) -> None:
        reason = "connection closed by Asterisk"
        try:
            while self._dispatch():
                try:
                    data = await self._reader.read(READ_SIZE)
                except OSError:
                    data = b""
                self._conn.receive_data(data)
        except AGIProtocolError as exc:
            log.warning("%r: protocol error, closing: %s", self, exc)
            reason = f"protocol error: {exc}"
        except Exception:  # a bug here must end this call, not linger unseen
            log.exception("%r: reader failed", self)
            reason = "reader failed"
        finally:
            self._lost(reason)

    def _dispatch(self) -> bool:
        """Hand every buffered event out; False once the connection is closed."""
        while True:
            event = self._conn.next_event()
            if self._conn.pending == 0:
                self._quiet.set()
            if isinstance(event, NeedData):
                return True
            if isinstance(event, Closed):
                return False
            if isinstance(event, AGIHangup):
                log.debug("%r: HANGUP", self)
                self._hangup.set()
            elif isinstance(event, AGIResponse):
                waiter, self._waiter = self._waiter, None
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)
                else:  # cannot happen: every unawaited reply was abandoned
                    log.warning("%r: response nobody waits for: %s", self, event.text)


AGIHandler = Callable[[AGISession], Awaitable[None]]


#: Listen backlog: connections the kernel queues while the loop is busy.
BACKLOG = 4096
#: File descriptors kept for everything but caller sessions.
FD_RESERVE = 256


def raise_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (each waiting
    caller is one socket); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays at %d: %s", soft, exc)
    return soft


def session_room() -> int:
    """How many FastAGI sessions the open-file limit leaves room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - FD_RESERVE)


class SessionGuard(Protocol):
    """Who may open a session (:class:`acd.runtime.agi_guard.AGIGuard`)."""

    def admit(self, host: str) -> str | None:
        """At accept: None to go on, else why the connection is refused."""
        ...

    async def authenticate(self, session: AGISession) -> bool:
        """After the environment: whether the peer proved it is Asterisk."""
        ...


class FastAGIServer:
    """Accept FastAGI connections and run ``handler(session)`` for each call.

    A client that sends nothing, half an environment or garbage is closed after
    ``env_timeout`` or at the first protocol error; an exception in a handler is logged.
    Neither affects other calls or the server.

    At most ``max_sessions`` connections are served at once (by default what the
    process's file limit leaves room for, keeping ``FD_RESERVE`` descriptors for AMI,
    the API, the store and logs): one more is closed at once, so its Asterisk falls back
    (the dialplan's next engine, then app_queue) instead of a caller waiting on a
    connection nobody reads. The listen backlog (``BACKLOG``) absorbs arrival bursts.

    With a ``guard`` (:class:`SessionGuard`) a connection is also refused at accept when
    its peer is not allowed or connects too fast, and after its environment when it does
    not know the shared secret: closed at once, as an engine that cannot be reached.
    """

    def __init__(
        self, handler: AGIHandler, host: str, port: int, *, env_timeout: float = 5.0,
        max_sessions: int | None = None, guard: SessionGuard | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._env_timeout = env_timeout
        self.max_sessions = max_sessions if max_sessions is not None else session_room()
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.guard = guard

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active(self) -> int:
        """Connections being served right now."""
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port,
                                                  backlog=BACKLOG)
        log.info("FastAGI listening on %s:%d (at most %d sessions)", self._host, self.port,
                 self.max_sessions)

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting; let running calls finish up to ``drain_timeout``; cancel the rest."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            if pending:
                log.warning("cancelling %d FastAGI session(s) after drain timeout", len(pending))
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=_CLOSE_TIMEOUT * 5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.guard is not None:
            peer = writer.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if self.guard.admit(host) is not None:
                writer.transport.abort()  # nothing read, nothing said: "unreachable"
                return
        if len(self._tasks) >= self.max_sessions:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.error("FastAGI full (%d sessions): connection refused, its Asterisk "
                          "falls back (%d refused so far)", self.max_sessions, self.refused)
            writer.transport.abort()
            return
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = None
        try:
            env = await self._environment(reader, writer)
        finally:
            if env is None:
                writer.close()
        if env is None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await writer.wait_closed()
            return
        peer = writer.get_extra_info("peername")
        session = AGISession(reader, writer, conn=env[0], env=env[1],
                             peer=str(peer[0]) if isinstance(peer, tuple) and peer else "")
        try:
            if self.guard is not None and not await self.guard.authenticate(session):
                return  # closed below without ACD_RESULT: the dialplan retries elsewhere
            await self._handler(session)
        except Exception:
            log.exception("FastAGI handler failed for %r", session)
        finally:
            await session.close()

    async def _environment(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[AGIConnection, AGIEnvironment] | None:
        """Read the environment within ``env_timeout``; None (logged) when there is none."""
        peer = writer.get_extra_info("peername")
        conn = AGIConnection()
        try:
            async with asyncio.timeout(self._env_timeout):
                env = await _read_environment(reader, conn)
        except TimeoutError:
            log.info("FastAGI %s: no environment within %ss, closing", peer, self._env_timeout)
            return None
        except AGIProtocolError as exc:
            log.warning("FastAGI %s: protocol error, closing: %s", peer, exc)
            return None
        except ConnectionError:
            return None
        return None if env is None else (conn, env)


async def _read_environment(
    reader: asyncio.StreamReader, conn: AGIConnection
) -> AGIEnvironment | None:
    """Read until the environment block is complete; None on EOF before it."""
    while True:
        event = conn.next_event()
        if isinstance(event, AGIEnvironment):
            return event
        if isinstance(event, Closed):
            return None
        if not isinstance(event, NeedData):  # cannot happen before the environment
            raise AGIProtocolError(f"unexpected event before the environment: {event!r}")
        conn.receive_data(await reader.read(READ_SIZE))
