"""The composition root: one engine process, built and torn down in one place.

``acd serve``, the test harness and the benchmarks all run a node::

    async with Node(config, ami_secrets=ami_secrets_from_env(config)) as node:
        ...   # node.engine takes calls; node.app is the API (None without ``api:``)

An :class:`~contextlib.AsyncExitStack` acquires the resources in order and releases them
in reverse, so a failure half way through start-up releases what was taken::

    enter                                       exit (reverse order)
    1. the engine's inbox loop                  timers and the inbox loop cancelled
    1b. the history writer (config history:)    records flushed to the database
    2. the store (Redis client or memory)       store closed
    3. the lease's Redis client (hot standby)   client closed
    4. one AMI link per Asterisk server         AMI logged off
    5. the FastAGI server                       stop accepting; calls ringing or
                                                talking get ``engine.drain_timeout``
    6. active (or the lease loop)               lease released; waiting callers handed
                                                back to the dialplan at once
    7. quiesce                                  no new call; the store writer drained

The API app (``api.create_app``) only reads the engine and sends it commands; its
lifespan attaches the metrics hooks. Uvicorn (``acd serve``) runs it inside the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType

from fastapi import FastAPI
from prometheus_client.registry import CollectorRegistry

from acd.config import Config, ConfigError
from acd.config.settings import settings_from
from acd.runtime.agi_guard import AGICollector, AGIGuard
from acd.runtime.asterisk import AMISettings, AsteriskLink, asterisk_links
from acd.runtime.call_flow import handle_call
from acd.runtime.callbacks import (
    CallbackCollector,
    CallbackDialer,
    closing,
    outbound_client,
)
from acd.runtime.campaigns import CampaignRunner
from acd.runtime.engine import Engine
from acd.runtime.fastagi import FastAGIServer
from acd.runtime.features import agi_handler
from acd.runtime.ha import HotStandby, Lease
from acd.runtime.history.service import History
from acd.runtime.store import RedisStore, make_store, store_client
from api.app import create_app
from routing.regions import preload as preload_regions

log = logging.getLogger("acd.engine")


def ami_secrets_from_env(config: Config, environ: Mapping[str, str] | None = None,
                         ) -> dict[str, str]:
    """Every Asterisk server's AMI secret from the environment variable the config
    names; ``ConfigError`` listing each one missing."""
    env = os.environ if environ is None else environ
    secrets: dict[str, str] = {}
    problems: list[str] = []
    for server in config.asterisk.server_list:
        try:
            secrets[server.name] = server.ami.secret(env).get_secret_value()
        except ConfigError as exc:
            problems += exc.errors
    if problems:
        raise ConfigError(problems)
    return secrets


def agi_guard(config: Config, environ: Mapping[str, str] | None = None) -> AGIGuard:
    """The FastAGI guard of ``config.fastagi``; ``ConfigError`` when ``secret_env`` names
    a variable that is not set."""
    agi = config.fastagi
    secret = agi.secret(environ)
    return AGIGuard(agi.allow, peer_rate=agi.limits.peer_rate,
                    peer_burst=agi.limits.peer_burst,
                    secret=secret.get_secret_value() if secret is not None else None,
                    secret_env=agi.secret_env or "ACD_AGI_SECRET")


class Node:
    """Engine + FastAGI + AMI + store (+ lease) + API app, owned by one exit stack.

    ``ami_secrets``: server name → AMI secret; ``None`` runs without AMI (no device
    state: tests and demos only)."""

    def __init__(self, config: Config, *, ami_secrets: Mapping[str, str] | None,
                 clock: Callable[[], float] = time.time,
                 registry: CollectorRegistry | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.settings = settings_from(config)
        self.ami_secrets = None if ami_secrets is None else dict(ami_secrets)
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.environ = environ
        servers = [s.name for s in config.asterisk.server_list]
        store_cfg = config.store
        self.engine = Engine(
            self.settings, clock=clock, store=make_store(store_cfg, environ),
            device_state_servers=servers if self.ami_secrets is not None else (),
            store_load_timeout=3 * store_cfg.timeout, restore_grace=store_cfg.restore_grace)
        #: Who may open a FastAGI session (fastagi.allow, limits, the shared secret).
        self.agi_guard = agi_guard(config, environ)
        self.agi: FastAGIServer | None = None
        self.registry.register(AGICollector(self.agi_guard, lambda: self.agi,
                                            lambda: self.engine.refused_sessions))
        self.history: History | None = None
        if config.history is not None:
            self.history = History.from_config(config, self.engine, environ=environ,
                                               clock=clock)
            self.engine.fact_hooks.append(self.history.observe)
            self.engine.recording_hook = self.history.recording_for
        self.app: FastAPI | None = None
        if config.api is not None:
            self.app = create_app(self.engine, config, registry=self.registry,
                                  environ=environ)
            self.app.state.history = self.history  # api.reports reads it
        self.links: Mapping[str, AsteriskLink] = {}
        self.standby: HotStandby | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def agi_port(self) -> int:
        return self.agi.port if self.agi is not None else 0

    async def __aenter__(self) -> Node:
        async with contextlib.AsyncExitStack() as stack:
            await self._start(stack)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        config, engine = self.config, self.engine
        # The number geocoder loads its data (~0.3 s) on first use: not on a caller's time.
        await asyncio.to_thread(preload_regions)
        await stack.enter_async_context(engine.running())
        if self.history is not None:
            # Call records and agent history (a database behind a durable spool); left
            # last, so the calls' final facts are in when it flushes.
            await stack.enter_async_context(self.history.running())
        stack.push_async_callback(_quietly, engine.store.close)
        lease: Lease | None = None
        if config.ha is not None:
            lease = Lease(store_client(config.store, self.environ),
                          config.ha.node_id, config.ha.lease_ttl, config.store.key_prefix)
            stack.push_async_callback(_quietly, lease.client.aclose)
        if self.ami_secrets is not None:
            amis = [AMISettings(
                server.name, server.ami.host, server.ami.port, server.ami.username,
                self.ami_secrets[server.name], server.ami.connect_timeout,
                server.ami.action_timeout, server.ami.ping_interval,
                server.ami.reconnect_max) for server in config.asterisk.server_list]
            self.links = await stack.enter_async_context(asterisk_links(engine, amis))
            if self.history is not None:
                for link in self.links.values():
                    link.observers.append(self.history.on_ami)
        else:
            log.warning("running without AMI: no device state (every phone counts as "
                        "free); for tests and demos only")
        if config.callbacks is not None:
            await self._start_callbacks(stack)
        max_age = config.fastagi.max_entry_age
        self.agi = FastAGIServer(
            agi_handler(engine, config,  # /feature: agents' phone codes; else a caller
                        lambda session: handle_call(engine, session, max_entry_age=max_age)),
            config.fastagi.host, config.fastagi.port,
            env_timeout=config.fastagi.env_timeout, guard=self.agi_guard,
            max_sessions=config.fastagi.max_sessions)
        await self.agi.start()
        stack.push_async_callback(self.agi.close, config.engine.drain_timeout)
        if lease is None:
            await engine.activate()
            stack.push_async_callback(self._hand_back)
        else:
            assert config.ha is not None
            self.standby = standby = HotStandby(engine, lease, config.ha.lease_ttl)
            engine.lease_valid = standby.lease_valid
            engine.step_down = standby.step_down_soon
            if isinstance(engine.store, RedisStore):
                # Store writes carry the lease's fencing token: a node that lost the
                # lease without knowing yet is refused, and steps down.
                held = lease
                engine.store.fence = lambda: held.token
                engine.store_writer.on_fenced = lambda exc: standby.step_down_soon(
                    f"store write fenced ({exc})")
            standby.start()
            stack.push_async_callback(self._stand_down)
            log.info("hot standby: node %s waits for the lease", config.ha.node_id)
        stack.push_async_callback(engine.quiesce)
        log.info("engine started: FastAGI on %s:%s", config.fastagi.host, self.agi.port)

    async def _start_callbacks(self, stack: contextlib.AsyncExitStack) -> None:
        """The outbound dialer of callbacks and its own AMI account (write = originate
        only), on the first Asterisk server (docs/operations.md, "Callbacks")."""
        cb, engine = self.config.callbacks, self.engine
        assert cb is not None and engine.settings.callbacks is not None
        client = None
        if self.ami_secrets is not None:
            ami = self.config.asterisk.server_list[0].ami
            secret = cb.ami.secret(self.environ).get_secret_value()
            dialer = CallbackDialer(engine, engine.settings.callbacks, None,
                                    per_minute=cb.trunk.per_minute)
            client = outbound_client(ami.host, ami.port, cb.ami.username, secret,
                                     dialer.on_event, connect_timeout=ami.connect_timeout,
                                     action_timeout=ami.action_timeout,
                                     ping_interval=ami.ping_interval)
            dialer.client = client
            await client.start()
        else:
            dialer = CallbackDialer(engine, engine.settings.callbacks, None,
                                    per_minute=cb.trunk.per_minute)
        engine.callback_dialer = dialer
        engine.fact_hooks.append(dialer.observe)
        self.registry.register(CallbackCollector(engine))
        stack.push_async_callback(closing, dialer)
        if self.config.campaigns:
            runner = CampaignRunner(engine, {c.id: c.settings(self.config.timezone)
                                             for c in self.config.campaigns})
            engine.campaign_runner = runner
            engine.fact_hooks.append(runner.observe)
            engine.store_writer.campaign_record = runner.record
            engine.store_writer.campaign_ids = lambda: list(runner.campaigns)
            task = asyncio.create_task(runner.run(), name="acd-campaigns")
            stack.push_async_callback(_cancel, task)

    def self_running_app(self) -> FastAPI:
        """The API app with this node inside its lifespan: whoever runs the app's
        lifespan (uvicorn, httpx's ASGI transport, schemathesis) runs the node too."""
        app = self.app
        if app is None:
            raise ValueError("the config has no api section")
        api_lifespan = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
            async with self, api_lifespan(app_):
                yield

        app.router.lifespan_context = lifespan
        return app

    async def _hand_back(self) -> None:
        """Stop taking calls; waiting callers go back to the dialplan at once (it retries
        the standby with their ACD_ENTRY); calls ringing or talking use the drain."""
        await self.engine.deactivate()
        released = self.engine.release_waiting()
        if released:
            log.info("shutdown: %d waiting call(s) handed back to the dialplan", released)

    async def _stand_down(self) -> None:
        await self.engine.deactivate()
        if self.standby is not None:
            await self.standby.stop()  # releases the lease: the standby takes over now
        released = self.engine.release_waiting()
        if released:
            log.info("shutdown: %d waiting call(s) handed back to the dialplan", released)


async def _quietly(close: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        result = close()
        if asyncio.iscoroutine(result):
            await result


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
