"""The demo: a hotline on this machine, and what happened to each call — explained.

Starts the sandbox Asterisk 22 with the shipped dialplan, the engine and its API, four
agent softphones (SIPp; one of them never answers), a partner service site for
Guangdong, and callers (SIPp): a burst on the hotline number, two who give up while
waiting, one who picks "2" (repair) in the IVR menu, and a VIP. Then it tells each
caller's story as the engine recorded it, says why an agent never answered, and writes
everything — the engine's ``acd.events``/``acd.decision`` log, Asterisk's log and
config, the SIPp traces — into one folder per run under the cache directory.

    scripts/demo [--calls 10] [--rate 4] [--once]

Then it prints the URLs — wallboard, agent desktop, supervisor console — with the demo's
sign-ins, and keeps the hotline up with a trickle of SIPp callers (one every few seconds;
some from Guangdong, some through the IVR menu, now and then a rush) until Ctrl-C, which
ends the callers, the phones, Asterisk and the engine. ``--once`` (CI) stops after the
scripted burst and its report. (``--stay``, the old way to stay up, is the default now.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.rig import DID, AgentPlan, Rig, SitePlan
from harness.sandbox import default_cache_dir, provision
from harness.sipp import SippError, SippProcess, SippResult, dtmf_caller_scenario, write_injection

#: The hotline number with no queue of its own: callers hear the IVR menu.
IVR_DID = "4008005678"
VIP = "13800138000"
IVR_CALLER = "13911112222"
IMPATIENT_PATIENCE_MS = 1500
#: Guangdong mobile numbers (the partner covers CN-GD) among the burst.
GUANGDONG = ("13926010001", "13926010002", "15920001234")
PARTNER = "gd-partner"
NO_ANSWER_AGENT = "1004"
TOKEN_ENV = "ACD_DEMO_TOKEN"


def artifacts_dir(base: Path | None = None) -> Path:
    """``<cache>/demo/<timestamp>``: one folder per run, outside the repository."""
    root = base if base is not None else default_cache_dir() / "demo"
    path = root / time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while path.exists():
        n += 1
        path = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    path.mkdir(parents=True)
    return path


def demo_config(api_port: int) -> dict[str, Any]:
    """What the demo adds to the rig's config: two queues, an IVR, a VIP segment, a
    partner policy for Guangdong and the API."""
    return {
        "queues": [
            {"id": "consult", "name": "售前咨询 Pre-sale", "skills": {"consult": 1},
             "wrap_up": 0.5, "sl_target": 20},
            {"id": "repair", "name": "维修 Repair", "skills": {"repair": 1},
             "wrap_up": 0.5, "sl_target": 30},
        ],
        "dids": {DID: "consult"},             # IVR_DID is not mapped: the menu asks
        "default_queue": "consult",
        "ivr": {"prompt": "dir-welcome", "timeout": 5,
                "options": {"1": "consult", "2": "repair"}},
        "segments": [{"id": "vip", "numbers": [VIP], "priority": 10}],
        "regions": {"overflow_after": 4},     # Guangdong callers: the partner after 4 s
        "api": {"host": "127.0.0.1", "port": api_port,
                "tokens": [{"name": "demo", "role": "supervisor", "env": TOKEN_ENV}]},
    }


#: The demo's sign-ins (printed when it stays up): every agent's PIN, the supervisor's password.
DEMO_PIN = "1234"
DEMO_PASSWORD = "demo-console"


def with_demo_sign_ins(config: Any) -> Any:
    """The rig's config with PIN hashes for the agents and one supervisor (admin) who can
    sign in on the console: the desktop and console pages of the demo."""
    from acd.config import passwords
    from acd.config.schema import SupervisionConfig

    pin = passwords.hash_password(DEMO_PIN)
    supervision = SupervisionConfig.model_validate({"supervisors": [
        {"id": "demo", "name": "演示主管", "role": "admin",
         "password_hash": passwords.hash_password(DEMO_PASSWORD)}]})
    return config.model_copy(update={
        "agents": [a.model_copy(update={"pin_hash": pin}) for a in config.agents],
        "supervision": supervision})


# --------------------------------------------------------------------------- the story


@dataclass
class Story:
    caller: str
    call_id: str
    queue: str = ""
    segment: str = ""
    region: str = ""
    priority: int = 0
    entered: int = 0  # order of the call_waiting event
    rings: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    agent: str | None = None
    site: str | None = None
    wait: float | None = None
    connected: int | None = None  # order of the call_connected event
    talk: float | None = None
    abandoned: float | None = None
    overflowed: list[str] = field(default_factory=list)
    overflow_wait: float | None = None  # waited before the first partner offer


def stories(events: Sequence[Any]) -> list[Story]:
    """One story per caller, from the engine's published events (in their order)."""
    calls: dict[str, Story] = {}
    for i, ev in enumerate(events):
        d = dict(ev.data)
        cid = str(d.get("call_id", ""))
        if ev.name == "call_waiting":
            if cid not in calls:
                calls[cid] = Story(str(d["caller"]), cid, entered=i)
            s = calls[cid]
            s.queue, s.segment = str(d.get("queue", "")), str(d.get("segment") or "")
            s.region, s.priority = str(d.get("region") or ""), int(d.get("priority") or 0)
            continue
        story = calls.get(cid)
        if story is None:
            continue
        s = story
        if ev.name == "call_offered":
            s.rings.append(str(d.get("agent")))
        elif ev.name == "agent_no_answer":
            s.missed.append(f"{d['agent']} ({d['dialstatus']})")
        elif ev.name == "call_overflowed":
            s.overflowed.append(str(d["site"]))
            if s.overflow_wait is None:
                s.overflow_wait = float(d["wait"])
        elif ev.name == "call_connected":
            s.agent, s.site, s.wait, s.connected = d.get("agent"), d.get("site"), \
                float(d["wait"]), i
        elif ev.name == "call_completed":
            s.talk = float(d["talk"])
        elif ev.name == "call_abandoned":
            s.abandoned = float(d["wait"])
    return sorted(calls.values(), key=lambda s: s.entered)


def tags(s: Story, impatient: AbstractSet[str]) -> list[str]:
    out = []
    if s.caller in impatient:
        out.append(f"impatient (hangs up after {IMPATIENT_PATIENCE_MS / 1000:g} s)")
    if s.segment == "vip":
        out.append(f"VIP (+{s.priority} priority)")
    if s.caller == IVR_CALLER:
        out.append(f"IVR: dialled {IVR_DID}, pressed 2 → {s.queue}")
    if s.region == "CN-GD":
        out.append("Guangdong: the partner covers it")
    return out


def outcome(s: Story, stories_: Sequence[Story],
            impatient: AbstractSet[str] = frozenset()) -> str:
    missed = f" (first rang {', '.join(s.missed)}: no answer)" if s.missed else ""
    talk = f", talked {s.talk:.1f} s" if s.talk is not None else ""
    if s.abandoned is not None:
        return (f"gave up after waiting {s.abandoned:.1f} s{missed} — recorded abandoned, "
                "the engine freed its place")
    if s.site is not None:
        waited = s.overflow_wait if s.overflow_wait is not None else s.wait or 0.0
        return (f"sent to partner site {s.site} after {waited:.1f} s: the own agents were "
                "busy and the partner covering Guangdong takes its callers after "
                f"regions.overflow_after{missed}")
    if s.agent is not None:
        ahead = [o for o in stories_ if o.entered < s.entered and o.connected is not None
                 and s.connected is not None and o.connected > s.connected]
        jump = f", served ahead of {len(ahead)} earlier caller(s)" \
            if s.segment == "vip" and ahead else ""
        if s.caller in impatient:
            talk = " — in time; it hung up when its patience ran out, during the call"
        return f"answered by agent {s.agent} after {s.wait or 0:.1f} s{missed}{jump}{talk}"
    return "still in progress"


def render(rows: Sequence[Story], impatient: AbstractSet[str]) -> str:
    lines = [f"{'caller':<13} {'queue':<8} what happened", "-" * 100]
    for s in rows:
        marks = tags(s, impatient)
        lines.append(f"{s.caller:<13} {s.queue:<8} {outcome(s, rows, impatient)}")
        if marks:
            lines.append(f"{'':<22}↳ {'; '.join(marks)}")
    return "\n".join(lines)


def agent_lines(rig: Rig) -> list[str]:
    assert rig.engine is not None
    out = []
    for agent, a in rig.engine.snapshot()["agents"].items():
        reason = f" ({a['reason']})" if a["reason"] else ""
        line = (f"agent {agent}: {a['status']}{reason}, answered {a['answered']}, "
                f"missed {a['missed']}")
        if agent == NO_ANSWER_AGENT:
            reason = a["reason"] or "no-answer"
            line += (f"\n    why: its softphone is set to ring without ever picking up (SIPp "
                     f"agent_noanswer). After {rig.ring_timeout} s of ringing the engine "
                     "counted a ring-no-answer, gave the caller back its place in line and, "
                     f"as engine.rona_action is 'pause', paused the agent '{reason}'."
                     "\n    It stays paused — no caller rings it again — until the agent says "
                     f"it is ready: POST /api/v1/agents/{agent}/state "
                     '{"action": "ready"}.')
        out.append(line)
    return out


# --------------------------------------------------------------------------- the trickle

#: Seconds between two callers of the trickle: drawn uniformly from this range.
TRICKLE_EVERY = (2.0, 5.0)
#: Every RUSH_EVERY-th arrival is a rush: RUSH callers at once, the last two from
#: Guangdong (they wait, and the partner takes them after regions.overflow_after).
RUSH_EVERY = 10
RUSH = 5
#: The agents' talk times while the demo stays up (ms, drawn per call by the phone):
#: longer than the burst's, so that callers wait now and then on the wallboard.
TRICKLE_TALK_MS = (1500, 6000)
#: SIPp caller processes at once in the trickle, each with its own ports (reused).
TRICKLE_SLOTS = 7
#: Mobile prefixes (7 digits, + 4 random): Beijing and Chongqing; Guangdong.
HOTLINE_PREFIXES = ("1380013", "1351234")
GUANGDONG_PREFIXES = ("1392601", "1592000")


@dataclass(frozen=True)
class Arrival:
    """One caller of the trickle: its number, and what it does."""

    number: str
    kind: str  # "hotline" | "guangdong" | "ivr"
    digit: str = ""  # the IVR key it presses ("1" consult, "2" repair)

    @property
    def service(self) -> str:
        return IVR_DID if self.kind == "ivr" else DID

    def describe(self) -> str:
        if self.kind == "ivr":
            return f"dials {IVR_DID}, presses {self.digit}"
        return f"dials {DID}" + (" (Guangdong)" if self.kind == "guangdong" else "")


def _number(rng: random.Random, prefixes: Sequence[str]) -> str:
    while True:
        number = rng.choice(prefixes) + f"{rng.randrange(10_000):04d}"
        if number not in (VIP, IVR_CALLER):
            return number


def next_arrivals(n: int, rng: random.Random) -> list[Arrival]:
    """The ``n``-th arrival of the trickle (from 0): one caller — on the hotline, from
    Guangdong, or through the IVR menu pressing 1 or 2 — or, every RUSH_EVERY-th, a rush."""
    if n % RUSH_EVERY == RUSH_EVERY - 1:
        return ([Arrival(_number(rng, HOTLINE_PREFIXES), "hotline")
                 for _ in range(RUSH - 2)]
                + [Arrival(_number(rng, GUANGDONG_PREFIXES), "guangdong") for _ in range(2)])
    draw = rng.random()
    if draw < 0.25:
        return [Arrival(_number(rng, GUANGDONG_PREFIXES), "guangdong")]
    if draw < 0.45:
        return [Arrival(_number(rng, HOTLINE_PREFIXES), "ivr", rng.choice("12"))]
    return [Arrival(_number(rng, HOTLINE_PREFIXES), "hotline")]


class Trickle:
    """SIPp callers, one every few seconds (``next_arrivals``), until cancelled; each
    caller's story is printed when its call ended. Cancelling it stops every SIPp caller
    it started (and waits for them)."""

    def __init__(self, rig: Rig, art: Path, rng: random.Random | None = None,
                 every: tuple[float, float] = TRICKLE_EVERY,
                 out: Any = None) -> None:
        self.rig, self.dir = rig, art / "trickle"
        self.rng = rng if rng is not None else random.Random()
        self.every = every
        self.out = out if out is not None else print
        self.slots: list[tuple[int, int, int]] = []
        for _ in range(TRICKLE_SLOTS):
            try:  # the rig's port pool is small: what is left of it, at most 7 slots
                sip, control = rig.ports.alloc(2)
                (media,) = rig.ports.alloc(1, step=4)
            except RuntimeError:
                break
            self.slots.append((sip, media, control))
        if not self.slots:
            raise RuntimeError("no ports left for the trickle's callers")
        self.free = list(range(len(self.slots)))
        self.ivr = {d: dtmf_caller_scenario(d, self.dir, delay_ms=1000) for d in "12"}
        self.placed = self.skipped = 0
        self.procs: set[SippProcess] = set()

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            n = 0
            while True:
                for arrival in next_arrivals(n, self.rng):
                    if not self.free:  # all callers' ports in use: this one does not call
                        self.skipped += 1
                        continue
                    task = asyncio.create_task(self._call(self.free.pop(0), arrival))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                n += 1
                await asyncio.sleep(self.rng.uniform(*self.every))
        finally:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _call(self, slot: int, arrival: Arrival) -> None:
        sip, media, control = self.slots[slot]
        name = f"trickle-{slot}"
        inject = write_injection(self.dir / f"{name}.csv", [[arrival.number]])
        scenario: str | Path = self.ivr[arrival.digit] if arrival.kind == "ivr" else "caller"
        proc = SippProcess(name, scenario, self.dir, port=sip, media_port=media,
                           control_port=control, remote=f"127.0.0.1:{self.rig.ports.sip}",
                           service=arrival.service, inject=inject, calls=1, rate=1,
                           trace_messages=False)
        self.placed += 1
        self.procs.add(proc)
        try:
            await proc.start()
            await proc.wait(180)
            await asyncio.sleep(0.3)  # the engine's last events of the call
            self.out(self.story(arrival))
        except SippError as e:
            self.out(f"{time.strftime('%H:%M:%S')} {arrival.number:<13} SIPp: {e}")
        finally:
            try:
                await proc.stop(grace=0.5)
            finally:
                self.procs.discard(proc)
                self.free.append(slot)

    def story(self, arrival: Arrival) -> str:
        mine = [s for s in stories(self.rig.events) if s.caller == arrival.number]
        what = outcome(mine[-1], mine) if mine else "no call reached the engine"
        queue = mine[-1].queue if mine else ""
        return (f"{time.strftime('%H:%M:%S')} {arrival.number:<13} {queue:<8} {what}"
                f"  [{arrival.describe()}]")


# --------------------------------------------------------------------------- run


def _log_to(path: Path) -> logging.Handler:
    """The engine's log (acd.events: every state change; acd.decision: why each offer
    went where it went) into the artifacts."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("acd", "api"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # INFO to the file only; warnings on the console too
        logger.handlers = [handler, console]
    return handler


def _unlog(handler: logging.Handler) -> None:
    """Give the loggers back as they were (the demo also runs inside the test process)."""
    for name in ("acd", "api"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    handler.close()


def _free_port(preferred: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return 0


async def _later(delay: float, call: Callable[[], Awaitable[SippResult]]) -> SippResult:
    await asyncio.sleep(delay)
    return await call()


async def _hang_up_all(rig: Rig) -> None:
    """Calls whose SIPp caller was stopped mid-call (Ctrl-C): end them in Asterisk, so that
    the engine's FastAGI sessions end with them rather than at its drain timeout."""
    if rig.asterisk is not None and rig.asterisk.running():
        with contextlib.suppress(Exception):
            await asyncio.to_thread(rig.asterisk.cli, "channel request hangup all")
            await asyncio.sleep(0.5)


class _Interrupt:
    """Ctrl-C (SIGINT) or SIGTERM while the demo runs: the first one stops the demo — the
    main task is cancelled, so every ``async with`` ends what it started (SIPp callers,
    phones, Asterisk, the API, the engine) — further ones are only acknowledged. While
    ``deferred`` (Asterisk starting in a thread), the stop waits for the block's end."""

    def __init__(self) -> None:
        self.task = asyncio.current_task()
        self.requested = False
        self._deferred = False
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        if self.requested:
            print("(already stopping: the phones, Asterisk and the engine are being shut "
                  "down …)", flush=True)
            return
        self.requested = True
        print("\nstopping …", flush=True)
        if not self._deferred and self.task is not None:
            self.task.cancel()

    @contextlib.contextmanager
    def deferred(self) -> Any:
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
        if self.requested:
            raise asyncio.CancelledError

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


async def run(calls: int, rate: float, stay: bool, base: Path | None = None) -> int:
    """The scripted burst and its report; then, with ``stay``, the URLs and the trickle
    until Ctrl-C / SIGTERM. 0 when every scripted SIPp caller succeeded (and, staying
    up, it was stopped by a signal); 130 when stopped before the hotline was up."""
    interrupt = _Interrupt()
    try:
        return await _run(calls, rate, stay, base, interrupt)
    except asyncio.CancelledError:
        if not interrupt.requested:
            raise
        if interrupt.task is not None:
            interrupt.task.uncancel()
        print("stopped before the end of the demo.", flush=True)
        return 130
    finally:
        interrupt.close()


async def _run(calls: int, rate: float, stay: bool, base: Path | None,
               interrupt: _Interrupt) -> int:
    from prometheus_client import CollectorRegistry

    from api.app import create_app
    from api.server import serving

    provision()
    art = artifacts_dir(base)
    handler = _log_to(art / "engine.log")
    ok = False
    previous_token = os.environ.get(TOKEN_ENV)
    try:
        token = secrets.token_urlsafe(24)
        environ = {TOKEN_ENV: token}
        # the rig's node builds an API app of its own from the same config: give it the
        # token too (no "ACD_DEMO_TOKEN is not set" warning for a newcomer to puzzle over)
        os.environ[TOKEN_ENV] = token
        talk = TRICKLE_TALK_MS if stay else (1500, 3000)
        plans = [AgentPlan(a, skills={"consult": 1, "repair": 1}, talk_ms=talk)
                 for a in ("1001", "1002", "1003")]
        plans.append(AgentPlan(NO_ANSWER_AGENT, "agent_noanswer"))  # never picks up
        sites = [SitePlan(PARTNER, ["CN-GD"], capacity=2,
                          talk_ms=TRICKLE_TALK_MS if stay else (1500, 2500))]
        print("Starting Asterisk 22 (sandbox), the ACD engine with its API, 4 agent phones and "
              f"a partner site for Guangdong …\n(everything this run writes: {art})",
              flush=True)
        rig = Rig(art, plans, sites=sites, name="demo", ring_timeout=4, wrap_up=0.5,
                  extra_config=demo_config(_free_port(8080)))
        async with contextlib.AsyncExitStack() as stack:
            with interrupt.deferred():  # never stop Asterisk while its thread starts it
                await stack.enter_async_context(rig)
            stack.push_async_callback(_hang_up_all, rig)  # before the rig stops
            assert rig.asterisk is not None and rig.engine is not None and rig.config is not None
            print(rig.asterisk.cli("core show version").strip())
            app = create_app(rig.engine, with_demo_sign_ins(rig.config),
                             registry=CollectorRegistry(),
                             environ=environ)
            async with serving(app, "127.0.0.1", rig.config.api.port if rig.config.api
                               else 0) as server:
                base_url = f"http://127.0.0.1:{server.port}"
                numbers = [f"13{800138001 + i * 7919:09d}" for i in range(calls)]
                # Guangdong callers last: they wait longest, so they reach the partner
                numbers[-len(GUANGDONG):] = GUANGDONG
                impatient = [f"1370000111{i}" for i in range(2)]
                ivr = dtmf_caller_scenario("2", art, delay_ms=1000)
                print(f"\nCalling {DID}: {len(numbers)} callers at {rate:g}/s (three from "
                      f"Guangdong), 2 impatient callers who hang up after "
                      f"{IMPATIENT_PATIENCE_MS / 1000:g} s, then a VIP ({VIP}); and "
                      f"{IVR_CALLER} dials {IVR_DID} and presses 2 in the menu …", flush=True)
                done = await asyncio.gather(
                    rig.call(numbers, rate=rate, time_limit=120),
                    rig.call(impatient, scenario="caller_abandon",
                             patience_ms=[IMPATIENT_PATIENCE_MS] * 2, name="impatient",
                             rate=rate, time_limit=60),
                    _later(1.5, lambda: rig.call([VIP], name="vip", time_limit=90)),
                    _later(0.5, lambda: rig.call([IVR_CALLER], scenario=ivr,
                                                 service=IVR_DID, name="ivr",
                                                 time_limit=90)),
                )
                await asyncio.sleep(1.0)
                rows = stories(rig.events)
                print()
                print(render(rows, set(impatient)))
                print()
                for q in rig.config.queues:
                    st = rig.engine.core.figures.total(q.id)
                    asa = st.wait_answered / st.answered if st.answered else 0.0
                    print(f"queue {q.id}: offered {st.offered}, answered {st.answered}, "
                          f"abandoned {st.abandoned}, ring-no-answer {st.rona}, ASA {asa:.2f} s")
                for line in agent_lines(rig):
                    print(line)
                partner = rig.partners[PARTNER].result().by_event("answered")
                print(f"partner {PARTNER}: took {len(partner)} call(s) from Guangdong")
                for r in done:
                    print(r.summary())
                handler.flush()
                print(f"\nEverything from this run: {art}")
                print("  engine.log          the engine's log: acd.events (every state change) "
                      "and acd.decision (why each call went where it went)")
                print(f"  {rig.asterisk.name}/log/        Asterisk's messages.log, CDRs, "
                      f"queue_log; {rig.asterisk.name}/etc/: its config")
                print("  *.log.txt, *.csv    the SIPp phones' and callers' traces"
                      + ("; trickle/: the trickle's callers" if stay else ""))
                ok = all(r.failed == 0 for r in done)
                if stay:
                    print(urls(base_url, token, rig.asterisk.name), flush=True)
                    await _trickle_until_stopped(rig, art, interrupt,
                                                 f"{base_url}/#token={token}")
                else:
                    print("\nNext: `scripts/demo` (without --once) keeps this hotline up "
                          "with a trickle of callers and prints its wallboard, agent desktop "
                          "and console URLs; `scripts/sandbox call` places your own calls; "
                          "docs/asterisk.md puts it on a real Asterisk.", flush=True)
            if stay:
                print("stopping the phones, Asterisk and the engine …", flush=True)
    finally:
        _unlog(handler)
        if previous_token is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = previous_token
    if stay:
        print("stopped.", flush=True)
    return 0 if ok else 1


def urls(base_url: str, token: str, instance: str) -> str:
    """What the demo prints when it stays up: its pages with their demo sign-ins, the API
    with its token, and how to place a call of your own."""
    return (f"\nThe hotline stays up, callers keep coming (Ctrl-C ends it):\n"
            f"  wallboard   {base_url}/#token={token}\n"
            f"  agent desk  {base_url}/desk      (agent 1004, PIN {DEMO_PIN}; "
            f"every agent 1001-1004 has PIN {DEMO_PIN})\n"
            f"  console     {base_url}/console   (supervisor demo, "
            f"password {DEMO_PASSWORD})\n"
            f"  API         curl -H 'Authorization: Bearer {token}' "
            f"{base_url}/api/v1/queues\n"
            f"  agent 1004  curl -X POST -H 'Authorization: Bearer {token}' -H "
            f"'Content-Type: application/json' -d '{{\"action\": \"ready\"}}' "
            f"{base_url}/api/v1/agents/1004/state\n"
            f"  a call      scripts/sandbox call --name {instance} "
            f"--from 13926012345 --to {IVR_DID} --digits 1\n")


async def _trickle_until_stopped(rig: Rig, art: Path, interrupt: _Interrupt,
                                 wallboard: str) -> None:
    """The trickle of callers until a signal cancels this task; then the callers stop."""
    trickle = Trickle(rig, art)
    print(f"The trickle: a caller every {TRICKLE_EVERY[0]:g}-{TRICKLE_EVERY[1]:g} s "
          f"(some from Guangdong, some through the IVR menu), a rush of {RUSH} every "
          f"{RUSH_EVERY} arrivals; agents talk {TRICKLE_TALK_MS[0] / 1000:g}-"
          f"{TRICKLE_TALK_MS[1] / 1000:g} s. Each call's story when it ends:", flush=True)
    task = asyncio.create_task(trickle.run())
    try:
        while True:
            await asyncio.sleep(120)
            print(f"(wallboard {wallboard} — {trickle.placed} trickle callers so far; "
                  "Ctrl-C ends the demo)", flush=True)
    except asyncio.CancelledError:
        if not interrupt.requested:
            raise
        if interrupt.task is not None:
            interrupt.task.uncancel()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    print(f"{trickle.placed} trickle callers placed"
          + (f", {trickle.skipped} skipped (all their ports busy)" if trickle.skipped else "")
          + ".", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--calls", type=int, default=10,
                        help="callers in the burst on the hotline number (default 10)")
    parser.add_argument("--rate", type=float, default=4.0, help="calls per second")
    parser.add_argument("--once", action="store_true",
                        help="the scripted burst and its report only, then exit (CI); "
                             "default: stay up with a trickle of callers until Ctrl-C")
    parser.add_argument("--stay", action="store_true",
                        help="staying up is the default now (kept for old scripts)")
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="where the run folders go (default <cache>/demo)")
    args = parser.parse_args(argv)
    if args.once and args.stay:
        parser.error("--once and --stay contradict each other")
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(run(max(args.calls, 4), args.rate, not args.once, args.artifacts))


if __name__ == "__main__":
    raise SystemExit(main())
