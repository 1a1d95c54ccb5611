"""A whole hotline on one machine: sandbox Asterisk + ACD engine + SIPp phones.

Used by the end-to-end tests, the demo and the benchmarks, so all three exercise the
same real path::

    async with Rig(artifacts, [AgentPlan("1001"), AgentPlan("1002", "agent_noanswer")]) as rig:
        result = await rig.call(["13800138000", "13900139000"], rate=5)

Each agent plan starts a SIPp UAS (its softphone) on fresh ports; the ACD config is
built from the plans (contacts point at those ports), the agent part of the Asterisk
config is rendered from it by ``acd.config.asterisk`` (declared once, as in production),
then Asterisk starts and the engine runs in this event loop — or, with
``engine="process"``, as a separate ``acd serve`` process a test may SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml

from acd.config import Config
from acd.config import asterisk as asterisk_config
from acd.domain import Fact
from acd.runtime.engine import Engine
from app.node import Node
from harness.ports import SandboxPorts
from harness.sandbox import AsteriskInstance
from harness.sipp import SippProcess, SippResult, run_uac, scenario_path, start_uas

DID = "4008001234"


@dataclass
class AgentPlan:
    """One agent and how its phone behaves.

    ``scenario``: a UAS scenario of ``harness/sipp`` (``agent_answer``,
    ``agent_noanswer``, ``agent_busy``, ``agent_transfer``), or ``None`` for a phone that
    registers only when the test says so (``Rig.register_phone``; until then its device is
    UNAVAILABLE in Asterisk). ``in_asterisk=False``: the agent's endpoint is left out of
    Asterisk's config at start and added later by ``Rig.reload_agents()`` (as an operator
    does with ``acd asterisk-config`` + ``core reload``).
    """

    agent_id: str
    scenario: str | None = "agent_answer"
    skills: Mapping[str, int] = field(default_factory=lambda: {"consult": 1})
    talk_ms: tuple[int, int] = (800, 1500)
    status: str = "available"
    #: Extra ``-set`` variables of the scenario, e.g. ``{"transfer_to": 82, "talk_ms":
    #: 1000}`` for ``agent_transfer``.
    variables: Mapping[str, str | int | float] = field(default_factory=dict)
    in_asterisk: bool = True
    #: The agent's groups (its own site's id among them, for the site's hours).
    groups: Sequence[str] = ()

    @property
    def endpoint(self) -> str:
        return f"agent{self.agent_id}"


@dataclass
class SitePlan:
    """A partner site: its SIP server is a SIPp UAS behind its own PJSIP trunk."""

    site_id: str
    regions: Sequence[str]
    scenario: str = "agent_answer"  # agent_busy: the partner rejects with 486
    capacity: int = 2
    preference: int = 0
    talk_ms: tuple[int, int] = (800, 1500)
    services: Sequence[str] = ()
    hours: Mapping[str, str] = field(default_factory=dict)


class Rig:
    def __init__(self, artifacts: Path, agents: Sequence[AgentPlan], *,
                 sites: Sequence[SitePlan] = (),
                 engine: Literal["inline", "process", "none"] = "inline",
                 ring_timeout: int = 4, wrap_up: float = 0.5,
                 agi_retries: int = 3, agi_retry_pause: int = 1,
                 fallback_timeout: int = 120, name: str = "rig",
                 ports_size: int | None = None, agi_urls: str | None = None,
                 app_queue_wrapup: int | None = None, app_queue_autofill: bool = False,
                 extra_config: Mapping[str, Any] | None = None,
                 agi_secret: str | None = None,
                 asterisk_env: Mapping[str, str] | None = None,
                 asterisk_files: Mapping[str, str] | None = None) -> None:
        self.artifacts = artifacts
        self.plans = list(agents)
        self.site_plans = list(sites)
        #: Partner sites' SIPp servers, by site id.
        self.partners: dict[str, SippProcess] = {}
        self.engine_mode = engine
        self.ring_timeout = ring_timeout
        self.wrap_up = wrap_up
        self.agi_retries = agi_retries
        self.agi_retry_pause = agi_retry_pause
        self.fallback_timeout = fallback_timeout
        self.name = f"{name}-{os.getpid()}"
        self.ports = SandboxPorts.free(ports_size) if ports_size else SandboxPorts.free()
        self.extra_config = dict(extra_config or {})
        #: The FastAGI shared secret (``fastagi.secret_env: ACD_AGI_SECRET``): given to
        #: the engine and, unless ``asterisk_env`` says otherwise, to Asterisk.
        self.agi_secret = agi_secret
        #: More files for Asterisk's etc directory (e.g. musiconhold_local.conf).
        self.asterisk_files = dict(asterisk_files or {})
        self.asterisk_env = dict(asterisk_env) if asterisk_env is not None else (
            {"ACD_AGI_SECRET": agi_secret} if agi_secret else {})
        #: ``""`` sends every caller straight to the app_queue fallback (baseline runs).
        self.agi_urls = agi_urls
        #: The fallback queue's ``wrapuptime`` (whole seconds) in ``queues_acd.conf``;
        #: ``None``: the queue's ``wrap_up``, rounded (as ``acd asterisk-config``).
        self.app_queue_wrapup = app_queue_wrapup
        #: The fallback queue rings as many agents as callers wait (app_queue's fastest
        #: setting, for benchmarks against it); off, it serves strictly oldest first.
        self.app_queue_autofill = app_queue_autofill
        self.phones: dict[str, SippProcess] = {}
        self.asterisk: AsteriskInstance | None = None
        self.engine: Engine | None = None
        #: The inline engine's node (engine, FastAGI, AMI, store), when engine="inline".
        self.node: Node | None = None
        self.process: asyncio.subprocess.Process | None = None
        #: Further ``acd serve`` processes (a hot standby), by name.
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.config: Config | None = None
        self.config_path = artifacts / "acd.yaml"
        self.events: list[Fact] = []
        self._collector: asyncio.Task[None] | None = None
        self._sub_cm: contextlib.AbstractAsyncContextManager[asyncio.Queue[Fact]] | None = None

    # -- set-up ------------------------------------------------------------------------

    def _config_dict(self, contacts: Mapping[str, str],
                     site_contacts: Mapping[str, str] | None = None) -> dict[str, Any]:
        agents = []
        for p in self.plans:
            a: dict[str, Any] = {"id": p.agent_id, "endpoint": p.endpoint,
                                 "skills": dict(p.skills), "status": p.status}
            if p.groups:
                a["groups"] = list(p.groups)
            if p.agent_id in contacts:
                a["contact"] = contacts[p.agent_id]
            else:
                a["password_env"] = "ACD_TEST_AGENT_PASSWORD"
            agents.append(a)
        cfg: dict[str, Any] = {
            "asterisk": {
                "ami": {"host": "127.0.0.1", "port": self.ports.ami, "username": "acd",
                        "secret_env": "ACD_AMI_SECRET", "ping_interval": 5,
                        "reconnect_max": 1.0},
                "agi_retries": self.agi_retries, "agi_retry_pause": self.agi_retry_pause,
                "fallback_timeout": self.fallback_timeout,
            },
            "fastagi": {"host": "127.0.0.1", "port": self.ports.agi,
                        **({"secret_env": "ACD_AGI_SECRET"} if self.agi_secret else {})},
            "engine": {"ring_timeout": self.ring_timeout, "drain_timeout": 2},
            "queues": [{"id": "consult", "name": "Consultation", "skills": {"consult": 1},
                        "wrap_up": self.wrap_up, "sl_target": 20}],
            "dids": {DID: "consult"},
            "default_queue": "consult",
            "agents": agents,
            "sites": [
                {"id": sp.site_id, "kind": "partner", "regions": list(sp.regions),
                 "capacity": sp.capacity, "preference": sp.preference,
                 "services": list(sp.services), "hours": dict(sp.hours), "number": "8000",
                 "trunk": {"contact": (site_contacts or {})[sp.site_id]}}
                for sp in self.site_plans
            ],
        }
        for key, value in self.extra_config.items():
            if key == "fastagi" and isinstance(value, Mapping):  # keep the rig's port
                value = {**cfg["fastagi"], **value}
            cfg[key] = value
        return cfg

    async def start(self) -> Rig:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        contacts: dict[str, str] = {}
        for p in self.plans:
            if p.scenario is None:
                continue
            phone = await start_uas(
                p.scenario, self.ports, self.artifacts, p.endpoint,
                variables={**({"talk_min": p.talk_ms[0], "talk_max": p.talk_ms[1]}
                              if p.scenario == "agent_answer" else {}), **p.variables},
                trace_messages=False)
            self.phones[p.agent_id] = phone
            contacts[p.agent_id] = f"sip:{p.endpoint}@127.0.0.1:{phone.port}"
        site_contacts: dict[str, str] = {}
        for sp in self.site_plans:
            server = await start_uas(
                sp.scenario, self.ports, self.artifacts, f"site-{sp.site_id}",
                variables=({"talk_min": sp.talk_ms[0], "talk_max": sp.talk_ms[1]}
                           if sp.scenario == "agent_answer" else {}),
                trace_messages=False)
            self.partners[sp.site_id] = server
            site_contacts[sp.site_id] = f"sip:127.0.0.1:{server.port}"
        raw = self._config_dict(contacts, site_contacts)
        self.config = Config.model_validate(raw)
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        late = {p.agent_id for p in self.plans if not p.in_asterisk}
        at_start = self.config.model_copy(update={
            "agents": [a for a in self.config.agents if a.id not in late]})
        files = asterisk_config.render(at_start, self._sip_env,
                                       fallback_wrapup=self.app_queue_wrapup,
                                       fallback_autofill=self.app_queue_autofill)
        self.asterisk = AsteriskInstance(
            self.name, self.ports,
            {"ACD_RETRIES": str(self.agi_retries),
             "ACD_RETRY_PAUSE": str(self.agi_retry_pause),
             "FALLBACK_TIMEOUT": str(self.fallback_timeout),
             **({"ACD_AGI_URLS": self.agi_urls} if self.agi_urls is not None else {})},
            extra_files={**files, **self.asterisk_files}, **self._asterisk_kwargs())
        await asyncio.to_thread(self.asterisk.start)
        if self.engine_mode == "inline":
            await self.start_engine()
        elif self.engine_mode == "process":
            await self.start_engine_process()
        return self

    def _asterisk_kwargs(self) -> dict[str, Any]:
        """Asterisk's own environment, when the rig gives it one (ACD_AGI_SECRET)."""
        return {"environ": self.asterisk_env} if self.asterisk_env else {}

    @property
    def _engine_env(self) -> dict[str, str]:
        return {**({"ACD_AGI_SECRET": self.agi_secret} if self.agi_secret else {}),
                "ACD_AMI_OUTBOUND_SECRET": self.outbound_secret}

    @property
    def outbound_secret(self) -> str:
        """The outbound AMI account's secret (callbacks), per rig."""
        return "outbound-" + self.name

    @property
    def _sip_env(self) -> dict[str, str]:
        """The SIP password of the phones that register (one for all, per rig), and the
        listen/whisper/barge AMI account's secret (per rig), the outbound AMI account's
        secret (rendered when the config has callbacks)."""
        return {"ACD_TEST_AGENT_PASSWORD": "not-registered-" + self.name,
                "ACD_AMI_SPY_SECRET": "spy-" + self.name,
                "ACD_AMI_OUTBOUND_SECRET": self.outbound_secret}

    async def reload_agents(self) -> None:
        """Render the Asterisk side of every agent (``acd asterisk-config``) and ``core
        reload``: agents planned with ``in_asterisk=False`` appear in Asterisk."""
        assert self.config is not None and self.asterisk is not None
        files = asterisk_config.render(self.config, self._sip_env,
                                       fallback_wrapup=self.app_queue_wrapup,
                                       fallback_autofill=self.app_queue_autofill)
        self.asterisk.update_files(files)
        await asyncio.to_thread(self.asterisk.reload)

    async def register_phone(self, agent_id: str, talk_ms: tuple[int, int] = (800, 1500),
                             within: float = 10.0) -> float:
        """The agent's softphone registers (REGISTER with digest auth) and from then on
        answers its calls from the address it registered from. Returns the
        ``time.monotonic()`` at which the registration was accepted (200 OK)."""
        assert self.config is not None
        plan = next(p for p in self.plans if p.agent_id == agent_id)
        sip, media, control = self.ports.alloc(2) + self.ports.alloc(1, step=4)
        phone = SippProcess(
            plan.endpoint, "phone_register", self.artifacts, port=sip, media_port=media,
            control_port=control, remote=f"127.0.0.1:{self.ports.sip}",
            service=plan.endpoint, calls=1, trace_messages=False,
            variables={"expires": 3600, "talk_min": talk_ms[0], "talk_max": talk_ms[1]},
            extra_args=["-au", plan.endpoint,
                        "-ap", self._sip_env["ACD_TEST_AGENT_PASSWORD"],
                        "-oocsf", str(scenario_path("agent_answer"))])
        await phone.start()
        self.phones[agent_id] = phone
        deadline = time.monotonic() + within
        while not phone.result().by_event("registered"):
            if time.monotonic() > deadline or not phone.running:
                raise TimeoutError(f"phone of agent {agent_id} did not register:\n"
                                   + phone.result().errors_text())
            await asyncio.sleep(0.01)
        return time.monotonic()

    async def start_engine(self) -> Engine:
        """The engine in this event loop, built by the product's composition root
        (``app.node.Node``) as ``acd serve`` builds it."""
        assert self.config is not None and self.asterisk is not None
        secret = self.asterisk.ami_secret
        self.node = Node(self.config, ami_secrets={
            s.name: secret for s in self.config.asterisk.server_list},
            environ={**os.environ, **self._engine_env})
        self.engine = self.node.engine
        self._sub_cm = self.engine.subscribe()
        queue = await self._sub_cm.__aenter__()
        self._collector = asyncio.create_task(self._collect(queue))
        await self.node.__aenter__()
        assert self.engine.ami is not None
        await self.engine.ami.wait_connected(10)
        await self.engine_settled()
        return self.engine

    async def _collect(self, queue: asyncio.Queue[Fact]) -> None:
        while True:
            self.events.append(await queue.get())

    async def engine_settled(self) -> None:
        """Wait until every event posted so far is applied (the AMI resync, say)."""
        assert self.engine is not None
        await asyncio.wait_for(self.engine.flushed(), 10)

    async def start_engine_process(self, name: str = "engine",
                                   overrides: Mapping[str, Any] | None = None,
                                   port: int | None = None) -> asyncio.subprocess.Process:
        """``acd serve`` as a process (log: ``<name>.log``). ``name`` other than
        "engine" starts a further one (a hot standby) from the same config with
        ``overrides`` (top-level sections) and its own FastAGI ``port``."""
        assert self.asterisk is not None
        env = dict(os.environ, ACD_AMI_SECRET=self.asterisk.ami_secret,
                   PYTHONUNBUFFERED="1", **self._engine_env)
        config_path, port = self.config_path, port or self.ports.agi
        if name != "engine" or overrides:
            raw = yaml.safe_load(self.config_path.read_text())
            raw.update(overrides or {})
            raw["fastagi"] = {**raw["fastagi"], "port": port}
            config_path = self.artifacts / f"acd-{name}.yaml"
            config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        log_path = self.artifacts / f"{name}.log"
        log = log_path.open("ab")
        process = await asyncio.create_subprocess_exec(
            # DEBUG: the event lines carry the callers' numbers (INFO keeps them out), and
            # the tests match callers across engines by number.
            sys.executable, "-m", "app.cli", "--log-level", "DEBUG", "serve",
            "--config", str(config_path),
            stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        if name == "engine":
            self.process = process
        else:
            self.processes[name] = process
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return process
            if process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"acd serve did not start listening; see {log_path}:\n"
                           + log_path.read_text()[-3000:])

    def use_standby_port(self) -> int:
        """Reserve a FastAGI port for a standby engine and list it second in the dialplan's
        ACD_AGI_URLS (call before ``start()``)."""
        port = self.ports.alloc(1)[0]
        self.agi_urls = f"agi://127.0.0.1:{self.ports.agi}&agi://127.0.0.1:{port}"
        return port

    async def start_active_standby(self, standby_port: int, lease_ttl: float = 2) -> None:
        """Two ``acd serve`` processes under one Redis lease (the rig's config needs
        ``store`` and ``ha`` with node ``one``): the first active, the second waiting."""
        await self.start_engine_process()
        await wait_for_log(self.artifacts / "engine.log", "lease acquired")
        await self.start_engine_process(
            "standby", {"ha": {"node_id": "two", "lease_ttl": lease_ttl}}, port=standby_port)
        await wait_for_log(self.artifacts / "standby.log", "waits for the lease")

    async def kill_engine_process(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    # -- use ---------------------------------------------------------------------------

    async def call(self, callers: Sequence[str], *, rate: float = 5.0,
                   scenario: str | Path = "caller", patience_ms: Sequence[int] = (),
                   time_limit: float = 120.0, name: str = "callers",
                   service: str = DID) -> SippResult:
        return await run_uac(scenario, "127.0.0.1", self.ports.sip, service, callers,
                             self.artifacts, self.ports, name=name, rate=rate,
                             patience_ms=patience_ms, time_limit=time_limit,
                             trace_messages=False)

    def published(self, name: str) -> list[dict[str, Any]]:
        """The data of every fact of that name the engine published, in order."""
        return [e.data for e in self.events if e.name == name]

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            await asyncio.sleep(0.05)

    def phone_events(self, agent_id: str, event: str) -> list[Any]:
        return self.phones[agent_id].result().by_event(event)

    # -- tear-down ---------------------------------------------------------------------

    async def stop(self) -> None:
        if self.node is not None:
            node, self.node = self.node, None
            await node.__aexit__(None, None, None)
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        if self._sub_cm is not None:
            await self._sub_cm.__aexit__(None, None, None)
        for proc in [self.process, *self.processes.values()]:
            if proc is not None and proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        for phone in [*self.phones.values(), *self.partners.values()]:
            await phone.stop()
        if self.asterisk is not None:
            ast = self.asterisk
            await asyncio.to_thread(ast.stop)
            with contextlib.suppress(Exception):
                ast.save_logs(self.artifacts)
            with contextlib.suppress(Exception):
                ast.remove()

    async def __aenter__(self) -> Rig:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()


def _log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


async def wait_for_log(path: Path, text: str, within: float = 15.0) -> None:
    """Wait until ``text`` appears in a log file."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _log_has(path, text):
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{text!r} not in {path}")
