"""What stands in front of the API's routes: a body limit, security headers, and the
count (and per-client throttle) of failed authentications.

Both middlewares are plain ASGI, installed by :func:`api.app.create_app` outside the
router, so they run **before routing and before the token is checked**:

* :class:`BodyLimit` refuses a body larger than ``api.limits.max_body_bytes`` with 413:
  at once when ``Content-Length`` says so (nothing is read), else while the body streams
  in (chunked, no length) — at most the limit is ever held. The app then sees the body
  it would have read, replayed from that buffer.
* :class:`SecurityHeaders` adds ``X-Content-Type-Options``, ``X-Frame-Options``,
  ``Referrer-Policy``, ``Cross-Origin-*``, ``Cache-Control: no-store`` and a
  ``Content-Security-Policy`` of ``default-src 'none'`` to every response that does not
  set its own (the wallboard page does; the OpenAPI pages get none: they load Swagger UI
  from a CDN), and ``Strict-Transport-Security`` over HTTPS.

:class:`FailedAuth` counts failed authentications by reason (``missing`` token,
``invalid`` token, ``throttled``), writes at most one log line per client a minute (with
how many were left out), and throttles a client that presented too many unknown tokens:
it then gets 429 without its token being looked at, so guessing is limited to one try
per ``auth_failure_refill`` seconds. A missing token is counted but not throttled (it
guesses nothing). :class:`ApiCollector` exposes the counters to Prometheus.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acd.runtime.ratelimit import KeyedBuckets, LogLimiter

log = logging.getLogger("acd.api")

AUTH_FAILURE_REASONS = ("missing", "invalid", "throttled")
REFUSAL_REASONS = ("body_too_large",)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413) before the app sees the request."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 on_refused: Callable[[], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send)
            return
        # Read the body here, up to the limit (a command is a few hundred bytes).
        chunks: list[bytes] = []
        size = 0
        more = True
        gone: Message | None = None
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                gone = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replay: list[Message] = [gone] if gone is not None else [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send) -> None:
        if self.on_refused is not None:
            self.on_refused()
        body = json.dumps({"error": "payload_too_large",
                           "detail": f"request body larger than {self.max_bytes} bytes"}
                          ).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


#: Added to every HTTP response that does not set the header itself.
BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
)
CSP = b"default-src 'none'; frame-ancestors 'none'"
HSTS = b"max-age=31536000"
#: Pages that load Swagger UI / ReDoc from their CDN: no CSP of ours there.
_DOC_PAGES = ("/docs", "/redoc")


class SecurityHeaders:
    """Add the security headers of :data:`BASE_HEADERS` (and a CSP, HSTS) to every
    HTTP response; a header the route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        extra = list(BASE_HEADERS)
        if not path.startswith(_DOC_PAGES):
            extra.append((b"content-security-policy", CSP))
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", HSTS))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class FailedAuth:
    """Failed authentications: counted, logged at a bounded rate, throttled per client."""

    def __init__(self, burst: int = 10, refill: float = 6.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 log_interval: float = 60.0) -> None:
        self.buckets = KeyedBuckets(1.0 / refill, burst, clock=clock)
        self.lines = LogLimiter(log_interval, clock=clock)
        self.counts = dict.fromkeys(AUTH_FAILURE_REASONS, 0)
        self.refused = dict.fromkeys(REFUSAL_REASONS, 0)

    def retry_after(self, client: str) -> float:
        """Seconds this client must wait before its next token is looked at (0: now)."""
        return self.buckets.wait(client)

    def throttled(self, client: str, where: str) -> int:
        """Record a request refused (429) for a throttled client; Retry-After seconds."""
        self._record(client, "throttled", where)
        return max(1, math.ceil(self.retry_after(client)))

    def failed(self, client: str, reason: str, where: str) -> None:
        """Record a failed authentication (``missing`` or ``invalid`` token)."""
        if reason == "invalid":
            self.buckets.take(client)
        self._record(client, reason, where)

    def _record(self, client: str, reason: str, where: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        left_out = self.lines.allow(client)
        if left_out is not None:
            more = f" ({left_out} more from this client left out of the log)" if left_out \
                else ""
            log.warning("API: failed authentication from %s: %s token on %s%s",
                        client or "?", reason, where, more)


class ApiCollector:
    """Prometheus counters of the API's doors (failed auth, refused requests)."""

    def __init__(self, failed_auth: FailedAuth) -> None:
        self.failed_auth = failed_auth

    def describe(self) -> Iterator[Metric]:
        yield from self.collect()

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(
            "acd_api_auth_failures", "API requests refused for their token: missing, "
            "invalid, or throttled (too many invalid ones from that client).",
            labels=["reason"])
        for reason in AUTH_FAILURE_REASONS:
            fam.add_metric([reason], float(self.failed_auth.counts.get(reason, 0)))
        yield fam
        refused = CounterMetricFamily(
            "acd_api_requests_refused", "API requests refused before routing: a body "
            "over api.limits.max_body_bytes.", labels=["reason"])
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], float(self.failed_auth.refused.get(reason, 0)))
        yield refused


def client_of(scope_client: Any) -> str:
    """The client address of a request or WebSocket (``""`` when unknown)."""
    if scope_client is None:
        return ""
    host = getattr(scope_client, "host", None)
    return str(host) if host else ""
