"""The FastAPI app served in the engine's process: REST, WebSocket, metrics, wallboard.

Build it with :func:`create_app` — a factory, so tests can build it twice; each app gets
its own Prometheus registry (injected, never the global one). The engine belongs to its
node (``app.node``): the app only reads it and sends it commands; its lifespan attaches
the metrics hooks and detaches them on the way out.

Routes: ``/healthz`` and ``/readyz`` (no auth), ``/metrics`` (no auth unless
``api.metrics_auth``), ``/`` the wallboard page, ``/api/v1/...`` (bearer tokens,
``api.routes``), the WebSocket ``/api/v1/events`` (``api.ws``), ``/docs``, ``/redoc``
and ``/openapi.json`` (``api.docs``; by default only on a loopback bind).

In front of the router (``api.guards``): the body limit (413 before routing and auth)
and the security headers on every response.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from acd.config import ApiConfig, ApiRole, Config
from acd.domain import DomainError
from acd.runtime.engine import Engine
from acd.runtime.metrics import EngineCollector
from api import callbacks, campaigns, desk, reports
from api.auth import Principal, TokenStore
from api.errors import EngineUnavailable, status_for
from api.guards import ApiCollector, BodyLimit, FailedAuth, SecurityHeaders
from api.models import ErrorBody, Health, Readiness
from api.routes import allow, api_state, router
from api.sessions import scope_map
from api.state import ApiState
from api.views import LiveViews
from api.ws import events_endpoint

log = logging.getLogger("acd.api")

STATIC = Path(__file__).with_name("static")

_ERROR_NAMES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                429: "too_many_requests", 503: "unavailable"}

#: The wallboard's page: only its own script, its own WebSocket, no referrer (a token in
#: the URL stays on this page).
_CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
        "connect-src 'self'")
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")
_PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def create_app(engine: Engine, config: Config, *,
               registry: CollectorRegistry | None = None, tokens: TokenStore | None = None,
               environ: Mapping[str, str] | None = None) -> FastAPI:
    """An API app over ``engine``. ``tokens`` defaults to the config's ``api.tokens`` read
    from ``environ`` (default: the process environment); ``registry`` defaults to a fresh
    one."""
    api_cfg = config.api if config.api is not None else ApiConfig()
    registry = registry if registry is not None else CollectorRegistry()
    collector = EngineCollector(engine)
    registry.register(collector)
    limits = api_cfg.limits
    failed_auth = FailedAuth(limits.auth_failures, limits.auth_failure_refill)
    registry.register(ApiCollector(failed_auth))
    state = ApiState(
        engine=engine, config=config,
        tokens=tokens if tokens is not None else TokenStore.from_config(
            api_cfg, environ, scopes=scope_map(config)),
        registry=registry, collector=collector,
        views=LiveViews(engine), command_timeout=api_cfg.command_timeout,
        metrics_auth=api_cfg.metrics_auth, failed_auth=failed_auth,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.attach()
        engine.fact_hooks.append(app.state.desk_memory.observe)
        try:
            log.info("API ready (%d tokens)", len(state.tokens))
            yield
        finally:
            with contextlib.suppress(ValueError):
                engine.fact_hooks.remove(app.state.desk_memory.observe)
            state.detach()

    docs = api_cfg.docs_enabled
    app = FastAPI(
        title="Hotline ACD", version=_version(), lifespan=lifespan,
        summary="Live queue state, agent state changes and supervisor commands.",
        description="Bearer tokens with roles agent, supervisor and admin (see docs/api.md)."
                    " WebSocket event stream at /api/v1/events.",
        docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.acd = state

    def body_refused() -> None:
        failed_auth.refused["body_too_large"] += 1

    # Before routing and before any token is checked.
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, on_refused=body_refused)
    # Outside even Starlette's ServerErrorMiddleware, so a 500 gets the headers too.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build_stack())  # type: ignore[method-assign]

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": str(exc)},
                            status_code=status_for(exc))

    @app.exception_handler(EngineUnavailable)
    async def unavailable(request: Request, exc: EngineUnavailable) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": _ERROR_NAMES.get(exc.status_code, f"http_{exc.status_code}"),
             "detail": str(exc.detail)},
            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    async def healthz() -> Health:
        return Health()

    @app.get("/readyz", tags=["ops"], summary="The engine takes calls and AMI is up",
             responses={503: {"model": Readiness, "description": "Not ready."}})
    async def readyz() -> JSONResponse:
        ami = engine.ami
        ami_state = "disabled" if ami is None else ("up" if ami.connected else "down")
        body = Readiness(ready=engine.accepting and ami_state != "down",
                         accepting=engine.accepting, ami=ami_state)
        return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

    metrics_deps = [Depends(allow(ApiRole.SUPERVISOR, ApiRole.ADMIN))] \
        if state.metrics_auth else []

    @app.get("/metrics", tags=["ops"], dependencies=metrics_deps,
             summary="Prometheus metrics (text exposition format)",
             response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics(st: Annotated[ApiState, Depends(api_state)]) -> Response:
        return Response(generate_latest(st.registry), media_type=CONTENT_TYPE_LATEST)

    page = (STATIC / "wallboard.html").read_text(encoding="utf-8")
    script = (STATIC / "wallboard.js").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def wallboard(request: Request) -> HTMLResponse:
        host = request.headers.get("host", "")
        csp = _CSP + (f" ws://{host} wss://{host}" if _HOST.match(host) else "")
        return HTMLResponse(page, headers={**_PAGE_HEADERS, "Content-Security-Policy": csp})

    @app.get("/wallboard.js", include_in_schema=False)
    async def wallboard_js() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    app.include_router(router)
    desk.install(app, state, environ)  # sign-in, agent desktop, supervisor console, audit
    app.include_router(reports.routes)  # history: reports, records, recordings, page
    app.include_router(callbacks.router)  # outbound callbacks (issue 12)
    app.include_router(campaigns.router)  # proactive campaigns (issue 12)
    app.add_api_websocket_route("/api/v1/events", events_endpoint)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hotline-acd")
    except PackageNotFoundError:
        return "0"


__all__ = ["ApiState", "ErrorBody", "Principal", "create_app"]
