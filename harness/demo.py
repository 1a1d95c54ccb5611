"""The demo: a hotline on this machine, and what happened to each call — explained.

Starts the sandbox Asterisk 22 with the shipped dialplan, the engine and its API, four
agent softphones (SIPp; one of them never answers), a partner service site for
Guangdong, and callers (SIPp): a burst on the hotline number, two who give up while
waiting, one who picks "2" (repair) in the IVR menu, and a VIP. Then it tells each
caller's story as the engine recorded it, says why an agent never answered, and writes
everything — the engine's ``acd.events``/``acd.decision`` log, Asterisk's log and
config, the SIPp traces — into one folder per run under the cache directory.

    scripts/demo [--calls 10] [--rate 4] [--stay]

``--stay`` keeps the hotline up afterwards (wallboard, API, Asterisk, agents) until
Ctrl-C, for ``scripts/sandbox call`` and a look at the wallboard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.rig import DID, AgentPlan, Rig, SitePlan
from harness.sandbox import default_cache_dir, provision
from harness.sipp import SippResult, dtmf_caller_scenario

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


#: The demo's sign-ins (printed with --stay): every agent's PIN, the supervisor's password.
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


async def _later(delay: float, call: Awaitable[SippResult]) -> SippResult:
    await asyncio.sleep(delay)
    return await call


async def run(calls: int, rate: float, stay: bool, base: Path | None = None) -> int:
    from prometheus_client import CollectorRegistry

    from api.app import create_app
    from api.server import serving

    provision()
    art = artifacts_dir(base)
    handler = _log_to(art / "engine.log")
    ok = False
    try:
        token = secrets.token_urlsafe(24)
        environ = {TOKEN_ENV: token}
        plans = [AgentPlan(a, skills={"consult": 1, "repair": 1}, talk_ms=(1500, 3000))
                 for a in ("1001", "1002", "1003")]
        plans.append(AgentPlan(NO_ANSWER_AGENT, "agent_noanswer"))  # never picks up
        sites = [SitePlan(PARTNER, ["CN-GD"], capacity=2, talk_ms=(1500, 2500))]
        print("Starting Asterisk 22 (sandbox), the ACD engine with its API, 4 agent phones and "
              f"a partner site for Guangdong …\n(everything this run writes: {art})")
        rig = Rig(art, plans, sites=sites, name="demo", ring_timeout=4, wrap_up=0.5,
                  extra_config=demo_config(_free_port(8080)))
        async with rig:
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
                      f"{IVR_CALLER} dials {IVR_DID} and presses 2 in the menu …")
                done = await asyncio.gather(
                    rig.call(numbers, rate=rate, time_limit=120),
                    rig.call(impatient, scenario="caller_abandon",
                             patience_ms=[IMPATIENT_PATIENCE_MS] * 2, name="impatient",
                             rate=rate, time_limit=60),
                    _later(1.5, rig.call([VIP], name="vip", time_limit=90)),
                    _later(0.5, rig.call([IVR_CALLER], scenario=ivr, service=IVR_DID,
                                         name="ivr", time_limit=90)),
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
                print("  *.log.txt, *.csv    the SIPp phones' and callers' traces")
                wall = f"{base_url}/#token={token}"
                if stay:
                    print(f"\nThe hotline stays up (Ctrl-C ends it):\n"
                          f"  wallboard   {wall}\n"
                          f"  agent desk  {base_url}/desk      (agent 1004, PIN {DEMO_PIN})\n"
                          f"  console     {base_url}/console   (supervisor demo, "
                          f"password {DEMO_PASSWORD})\n"
                          f"  API         curl -H 'Authorization: Bearer {token}' "
                          f"{base_url}/api/v1/queues\n"
                          f"  agent 1004  curl -X POST -H 'Authorization: Bearer {token}' -H "
                          f"'Content-Type: application/json' -d '{{\"action\": \"ready\"}}' "
                          f"{base_url}/api/v1/agents/1004/state\n"
                          f"  a call      scripts/sandbox call --name {rig.asterisk.name} "
                          f"--from 13926012345 --to {IVR_DID} --digits 1")
                    await _wait_for_stop()
                else:
                    print("\nNext: `scripts/demo --stay` keeps this hotline up with its "
                          "wallboard and API (URLs printed) for your own calls "
                          "(`scripts/sandbox call`); docs/asterisk.md puts it on a real "
                          "Asterisk.")
                ok = all(r.failed == 0 for r in done)
    finally:
        _unlog(handler)
    return 0 if ok else 1


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
    print("stopping …")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--calls", type=int, default=10,
                        help="callers in the burst on the hotline number (default 10)")
    parser.add_argument("--rate", type=float, default=4.0, help="calls per second")
    parser.add_argument("--stay", action="store_true",
                        help="keep the hotline up afterwards (wallboard, API) until Ctrl-C")
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="where the run folders go (default <cache>/demo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(run(max(args.calls, 4), args.rate, args.stay, args.artifacts))


if __name__ == "__main__":
    raise SystemExit(main())
