"""asyncio AMI client: moves bytes between a socket and :mod:`acd.protocol.ami`.

One background *manager* task owns the connection for the client's whole life::

    connect (connect_timeout) → banner → Login → on_connect() → connected
        → Ping every ping_interval until the connection fails → teardown
        → sleep backoff.compute(failures) → connect again ... until close()

* **Resync before trust.** ``on_connect`` runs after every (re)connect and login, before
  :attr:`AMIClient.connected` turns true; actions already work inside it (the engine
  reads DeviceStateList there). If it raises, the connection is dropped and retried.
* **Never replay.** An action whose reply has not arrived when the connection drops
  fails with :class:`AMIConnectionLostError`. Nothing is queued for resending: an
  Originate sent twice would dial twice. Actions issued while down fail at once with
  :class:`AMINotConnectedError`.
* **Liveness.** The reader has no read timeout (a quiet PBX is legal); a ``Ping``
  action every ``ping_interval`` with ``action_timeout`` detects a dead peer.
* **Down.** ``on_down`` is called once per down period: when the first connection
  attempt fails, or a connection is lost, and not again until the client has been
  connected (``on_disconnect`` only follows a connection that was up).
* **Events.** ``on_event`` is called synchronously from the reader for every event that
  is not part of a tracked action reply. It must not block (the engine enqueues); an
  exception in it is logged and the reader carries on.
* **Shutdown.** While Asterisk shuts down gracefully it still accepts connections and
  answers every action, Login and Ping included, with ``Response: Error`` /
  ``Asterisk is shutting down``: a failed Ping drops the connection, a failed Login
  counts as a failed attempt, and the backoff applies.
* **Secret.** The secret goes into the Login bytes only: never into logs, reprs or
  exception messages.

Errors::

    AMIError
    ├── AMINotConnectedError     no logged-in connection right now
    ├── AMIConnectionLostError   the connection dropped before the reply (not resent)
    ├── AMIActionError           Response: Error (``.response``, message in str())
    └── AMITimeoutError          no reply within the timeout (also a TimeoutError)

    acd.protocol.ami.AMIProtocolError   an action with CR/LF/NUL in a header (header
                                        injection), raised before anything is sent
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from acd.protocol.ami import (
    ActionDone,
    AMIActionTracker,
    AMIBanner,
    AMIConnection,
    AMIEvent,
    AMIMessage,
    AMIProtocolError,
    AMIResponse,
    Closed,
    NeedData,
)
from acd.runtime.backoff import Backoff, ExponentialBackoff

__all__ = [
    "AMIActionError",
    "AMIClient",
    "AMIConnectionLostError",
    "AMIError",
    "AMINotConnectedError",
    "AMITimeoutError",
    "Fields",
]

log = logging.getLogger("acd.ami")

READ_SIZE = 64 * 1024
_LOGOFF_TIMEOUT = 1.0

Fields = Mapping[str, str] | Sequence[tuple[str, str]]


class AMIError(Exception):
    """Base class of the AMI client errors."""


class AMINotConnectedError(AMIError):
    """There is no logged-in AMI connection right now."""


class AMIConnectionLostError(AMIError):
    """The connection dropped before the reply; the action was not and will not be resent."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, response: AMIResponse) -> None:
        super().__init__(response.message or response.response)
        self.response = response


class AMITimeoutError(AMIError, TimeoutError):
    """No reply within the timeout."""


class _Link:
    """One live connection: its parser, its writer, and whether Login succeeded."""

    def __init__(self, conn: AMIConnection, writer: asyncio.StreamWriter) -> None:
        self.conn = conn
        self.writer = writer
        self.logged_in = False
        self.alive = True  # False once the reader saw EOF/an error, or teardown began
        self.banner: asyncio.Future[AMIBanner] = asyncio.get_running_loop().create_future()


class AMIClient:
    """A self-reconnecting AMI client. See the module docstring for the lifecycle."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        on_event: Callable[[AMIEvent], None],
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_down: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 5.0,
        action_timeout: float = 10.0,
        ping_interval: float = 10.0,
        events: str = "on",
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self._on_event = on_event
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_down = on_down
        self._down_reported = False
        self._backoff: Backoff = backoff if backoff is not None else ExponentialBackoff()
        self._connect_timeout = connect_timeout
        self._action_timeout = action_timeout
        self._ping_interval = ping_interval
        self._events = events
        self._tracker = AMIActionTracker()
        self._futures: dict[str, asyncio.Future[ActionDone]] = {}
        self._id_prefix = f"acd-{secrets.token_hex(4)}-"
        self._ids = itertools.count(1)
        self._link: _Link | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.version: str | None = None  # AMI version from the last banner

    def __repr__(self) -> str:
        state = "connected" if self.connected else "down"
        return f"<AMIClient {self.username}@{self.host}:{self.port} {state}>"

    # -- public API ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True after login *and* on_connect succeeded, until the connection is lost."""
        return self._connected.is_set()

    async def start(self) -> None:
        """Spawn the connection manager and return at once (it connects in background)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"ami {self.host}:{self.port}")

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until :attr:`connected`; AMITimeoutError after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError as exc:
            raise AMITimeoutError(f"AMI not connected within {timeout}s") from exc

    async def action(
        self,
        name: str,
        fields: Fields = (),
        timeout: float | None = None,  # noqa: ASYNC109 (None means action_timeout)
    ) -> AMIResponse:
        """Send one action and return its response.

        Raises AMIActionError (Response: Error), AMINotConnectedError,
        AMIConnectionLostError (never resent), AMITimeoutError (``timeout`` or the
        client's ``action_timeout``).
        """
        done = await self._request(name, fields, list_action=False, limit=timeout)
        assert done.response is not None
        return done.response

    async def list_action(
        self,
        name: str,
        fields: Fields = (),
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> tuple[AMIResponse, list[AMIEvent]]:
        """Send a list action (DeviceStateList, CoreShowChannels...) and collect its events.

        The events are every event carrying the action's ActionID, ending with the
        ``EventList: Complete`` one. An error response raises AMIActionError at once.
        """
        done = await self._request(name, fields, list_action=True, limit=timeout)
        assert done.response is not None
        return done.response, list(done.events)

    async def close(self) -> None:
        """Log off (best effort), stop reconnecting, fail pending actions. Idempotent."""
        self._closing = True
        link = self._link
        if link is not None and link.logged_in:
            with contextlib.suppress(AMIError):
                await self.action("Logoff", timeout=_LOGOFF_TIMEOUT)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- requests --------------------------------------------------------------------

    async def _request(
        self, name: str, fields: Fields, *, list_action: bool, limit: float | None
    ) -> ActionDone:
        link = self._link
        if link is None or not link.logged_in:
            raise AMINotConnectedError(f"AMI is not connected ({name} not sent)")
        return await self._send(link, name, fields, list_action=list_action, limit=limit)

    async def _send(
        self,
        link: _Link,
        name: str,
        fields: Fields,
        *,
        list_action: bool,
        limit: float | None,
    ) -> ActionDone:
        if not link.alive:  # lost already: fail_all() has run, nobody would fail us
            raise AMIConnectionLostError(f"AMI connection lost ({name} not sent)")
        action_id = f"{self._id_prefix}{next(self._ids)}"
        data = link.conn.send_action(name, fields, action_id=action_id)
        self._tracker.register(action_id, list_action=list_action)
        future: asyncio.Future[ActionDone] = asyncio.get_running_loop().create_future()
        self._futures[action_id] = future
        if limit is None:
            limit = self._action_timeout
        try:
            async with asyncio.timeout(limit):
                link.writer.write(data)
                await link.writer.drain()
                done = await future
        except TimeoutError as exc:
            raise AMITimeoutError(f"no reply to {name} within {limit}s") from exc
        except ConnectionError as exc:
            raise AMIConnectionLostError(f"connection lost while sending {name}") from exc
        finally:
            if self._futures.pop(action_id, None) is not None:
                self._tracker.discard(action_id)  # gave up: a late reply is dropped
        if done.error is not None:
            assert done.response is not None
            raise AMIActionError(done.response)
        return done

    # -- connection manager ----------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                if await self._session():
                    failures = 0
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, AMIError, AMIProtocolError) as exc:
                log.warning("AMI %s:%d: %s", self.host, self.port, _describe(exc))
            except Exception:
                log.exception("AMI %s:%d: unexpected error", self.host, self.port)
            if self._closing:
                break
            self._report_down()
            failures += 1
            delay = self._backoff.compute(failures)
            log.info("AMI %s:%d: reconnecting in %.2fs", self.host, self.port, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """Run one connection until it fails; True if it got as far as connected."""
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        link = _Link(AMIConnection(), writer)
        self._link = link
        reader_task = asyncio.create_task(self._read_loop(reader, link), name="ami-reader")
        was_connected = False
        try:
            banner = await self._banner(link, reader_task)
            self.version = banner.version
            await self._login(link)
            if self._on_connect is not None:
                try:
                    await self._on_connect()
                except Exception as exc:
                    log.exception("AMI on_connect failed; dropping the connection")
                    raise AMIError(f"on_connect failed: {exc!r}") from exc
            self._connected.set()
            self._down_reported = False
            was_connected = True
            log.info("AMI %s:%d: connected (AMI %s)", self.host, self.port, banner.version)
            await self._keepalive(link, reader_task)
            return True
        finally:
            await self._teardown(link, reader_task, was_connected)

    async def _banner(self, link: _Link, reader_task: asyncio.Task[None]) -> AMIBanner:
        async with asyncio.timeout(self._connect_timeout):
            waiters: set[asyncio.Future[Any]] = {link.banner, reader_task}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not link.banner.done():
            raise AMIError("connection closed before the AMI banner")
        return link.banner.result()

    async def _login(self, link: _Link) -> None:
        fields = [("Username", self.username), ("Secret", self._secret)]
        fields.append(("Events", self._events))
        try:
            await self._send(link, "Login", fields, list_action=False, limit=None)
        except AMIActionError as exc:
            raise AMIError(f"login as {self.username!r} failed: {exc}") from None
        link.logged_in = True

    async def _keepalive(self, link: _Link, reader_task: asyncio.Task[None]) -> None:
        """Return when the reader ends or a Ping gets no answer."""
        interval = self._ping_interval if self._ping_interval > 0 else None
        while True:
            await asyncio.wait({reader_task}, timeout=interval)
            if reader_task.done():
                log.warning("AMI %s:%d: connection lost", self.host, self.port)
                return
            try:
                await self._send(link, "Ping", (), list_action=False, limit=None)
            except AMIError as exc:
                log.warning("AMI %s:%d: ping failed (%s), reconnecting", self.host, self.port, exc)
                return

    async def _teardown(self, link: _Link, reader_task: asyncio.Task[None], was_up: bool) -> None:
        self._link = None
        link.writer.close()
        reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader_task
        self._lost(link)
        if was_up and self._on_disconnect is not None:
            try:
                self._on_disconnect()
            except Exception:
                log.exception("AMI on_disconnect callback failed")
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_LOGOFF_TIMEOUT):
                await link.writer.wait_closed()

    def _report_down(self) -> None:
        """``on_down`` once per down period: the first failed attempt or lost connection
        since the client was last connected (or since it started)."""
        if self._down_reported or self._on_down is None:
            return
        self._down_reported = True
        try:
            self._on_down()
        except Exception:
            log.exception("AMI on_down callback failed")

    def _lost(self, link: _Link) -> None:
        """The connection is unusable: stop trusting it and fail every pending action now."""
        link.logged_in = False
        link.alive = False
        self._connected.clear()
        reason = "client closed" if self._closing else "AMI connection lost"
        for done in self._tracker.fail_all(reason):
            future = self._futures.pop(done.action_id, None)
            if future is not None and not future.done():
                future.set_exception(AMIConnectionLostError(f"{reason} before the reply"))

    # -- reader ----------------------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while True:
                event = link.conn.next_event()
                if isinstance(event, NeedData):
                    try:
                        data = await reader.read(READ_SIZE)
                    except OSError:
                        data = b""
                    link.conn.receive_data(data)
                elif isinstance(event, Closed):
                    return
                elif isinstance(event, AMIBanner):
                    if not link.banner.done():
                        link.banner.set_result(event)
                else:
                    self._dispatch(event)
        except AMIProtocolError as exc:
            log.warning("AMI %s:%d: protocol error: %s", self.host, self.port, exc)
        except Exception:  # a bug here must cost a reconnect, not a silent dead reader
            log.exception("AMI %s:%d: reader failed", self.host, self.port)
        finally:
            self._lost(link)  # in-flight actions fail now, not at their timeout

    def _dispatch(self, msg: AMIMessage) -> None:
        done, unsolicited = self._tracker.feed(msg)
        for item in done:
            future = self._futures.pop(item.action_id, None)
            if future is not None and not future.done():
                future.set_result(item)
        if not unsolicited:
            return
        if isinstance(msg, AMIEvent):
            try:
                self._on_event(msg)
            except Exception:
                log.exception("AMI on_event callback failed for %s", msg.name)
        else:
            log.debug("AMI: dropping a reply nobody waits for (ActionID %s)", msg.action_id)


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failed connection attempt (never includes the secret)."""
    if isinstance(exc, TimeoutError) and not isinstance(exc, AMIError):
        return "timed out"
    return str(exc) or type(exc).__name__
