"""Serve the API with uvicorn's ``Server`` on the running event loop (the engine's).

``acd serve`` and the test harness both use :func:`make_server`; signals stay with the
caller (``acd serve`` sets ``server.should_exit`` on SIGTERM/SIGINT), so uvicorn never
replaces the process's handlers. Shutdown order is uvicorn's: stop accepting, close
WebSockets (1012), wait for requests up to ``timeout_graceful_shutdown``, then the app's
lifespan ends; then the node (``app.node``) stops and drains the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn

#: ``token=...`` in a logged URL (a wallboard opened with ``/?token=``) is blanked.
_TOKEN_IN_URL = re.compile(r"(?i)((?:^|[?&#])(?:access_)?token=)[^&\s\"]*")


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1REDACTED", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


_REDACT = _RedactTokens()


def install_log_redaction() -> None:
    """Idempotent: uvicorn's access and connection logs never show a token."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


class ApiServer(uvicorn.Server):
    """uvicorn's server without its own signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the API server is not listening")


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8080, *,
                access_log: bool = True, tls_cert: str | None = None,
                tls_key: str | None = None) -> ApiServer:
    """uvicorn on ``host:port``; HTTPS (uvicorn's own TLS) with ``tls_cert`` and
    ``tls_key`` (PEM files: ``api.tls_cert``, ``api.tls_key``)."""
    install_log_redaction()
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", ws="websockets-sansio",
        log_config=None, access_log=access_log, server_header=False,
        timeout_graceful_shutdown=5, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
    )
    return ApiServer(config)


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                  access_log: bool = False, tls_cert: str | None = None,
                  tls_key: str | None = None,
                  start_within: float = 10.0) -> AsyncIterator[ApiServer]:
    """Run the app in this loop for the duration of the block (tests, benchmarks)."""
    server = make_server(app, host, port, access_log=access_log, tls_cert=tls_cert,
                         tls_key=tls_key)
    task = asyncio.create_task(server.serve(), name="acd-api")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_within
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the API server stopped during start-up")
        if loop.time() > deadline:
            server.should_exit = True
            await task
            raise TimeoutError("the API server did not start")
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task
