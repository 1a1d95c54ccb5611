"""Shared fixtures of the unit tests: a core from YAML, and one API rig.

The API rig is the product's own composition root (``app.node.Node``) with no Asterisk
and no AMI: FastAGI on an ephemeral port, the engine in this event loop, the API app over
httpx's ASGI transport. Tests post what caller sessions would post and wait for the
engine with ``await rig.settle()`` — a mark in the inbox, not a polling loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acd.config import Config, parse_config
from acd.config.settings import settings_from
from acd.domain import CallArrived, EngineCore
from acd.runtime.engine import Engine
from acd.runtime.session import SessionItem, SessionQueue
from api.auth import TokenStore
from app.node import Node


def make_core(config: str | Config, **kwargs: Any) -> EngineCore:
    """An EngineCore from YAML text (or a Config), with its start statuses applied."""
    cfg = parse_config(config) if isinstance(config, str) else config
    core = EngineCore(settings_from(cfg), **kwargs)
    core.initial_effects(0.0)
    return core


class ApiRig:
    """One node (engine + API) with no Asterisk; see the module docstring."""

    def __init__(self, config: Config, *, tokens: TokenStore | None = None,
                 environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        assert config.api is not None, "the API rig needs an api: section"
        #: Sent by ``get()`` when it is given none (e.g. a supervisor's bearer token).
        self.headers = dict(headers or {})
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.config = config
        self.node = Node(config, ami_secrets=None, environ=environ, **kwargs)
        self.engine: Engine = self.node.engine
        assert self.node.app is not None
        self.app = self.node.app
        if tokens is not None:
            self.app.state.acd.tokens = tokens
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                      base_url="http://acd.test")
        self.sessions: dict[str, SessionQueue] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> ApiRig:
        await self._stack.enter_async_context(self.node)
        await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        self._stack.push_async_callback(self.http.aclose)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def settle(self) -> None:
        """Every event posted so far is applied."""
        await asyncio.wait_for(self.engine.flushed(), 5)

    async def replayed(self) -> None:
        """Every event posted so far is applied and the expected waits replayed (the
        background does it within ``EVERY`` s; the tests' clocks stand still)."""
        await self.settle()
        await self.engine.estimates.replay()

    def arrive(self, call_id: str, queue: str = "consult", *, waited: float = 0.0,
               boost: int = 0, caller: str = "13800138000", region: str = "",
               session: bool = False) -> None:
        """What a caller's session posts when the call reaches the engine; with
        ``session`` the call gets a session queue (``offer()`` reads it)."""
        if session:
            self.sessions[call_id] = self.engine.open_session(call_id)
        now = self.engine.clock()
        self.engine.post(CallArrived(call_id, queue, caller, now - waited, now,
                                     priority_boost=boost, region=region,
                                     region_known=bool(region)))

    async def offer(self, call_id: str) -> SessionItem:
        return await asyncio.wait_for(self.sessions[call_id].get(), 1)

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        r = await self.http.get(path, headers=dict(headers if headers is not None
                                                   else self.headers))
        assert r.status_code == 200, r.text
        return r.json()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = (await self.http.get("/metrics")).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture
def api_rig() -> Callable[..., contextlib.AbstractAsyncContextManager[ApiRig]]:
    """``async with api_rig(config, tokens=..., environ=..., clock=...) as rig``."""

    @contextlib.asynccontextmanager
    async def build(config: Config, **kwargs: Any) -> AsyncIterator[ApiRig]:
        if "store" not in config.model_fields_set:
            # the rig's callers "waited" before the engine started (old entry times):
            # not a restart, so no restart hold
            config = config.model_copy(update={
                "store": config.store.model_copy(update={"restore_grace": 0.0})})
        async with ApiRig(config, **kwargs) as rig:
            yield rig

    return build


def core_of(config: str | Config, **kwargs: Any) -> EngineCore:
    """An EngineCore from YAML text (or a Config), nothing applied yet."""
    cfg = parse_config(config) if isinstance(config, str) else config
    return EngineCore(settings_from(cfg), **kwargs)
