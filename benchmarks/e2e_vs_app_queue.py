"""End to end: the ACD engine against Asterisk's own app_queue, on the same hotline.

Two runs, one after the other, on one machine, each with a fresh :class:`harness.rig.Rig`
(sandbox Asterisk 22 + SIPp agent phones + SIPp callers):

* ``engine``    — ``Rig(engine="inline")``: the dialplan hands every caller to the engine
  over FastAGI; the engine answers, queues, picks the agent and dials it.
* ``app_queue`` — ``Rig(engine="none", agi_urls="")``: ``ACD_AGI_URLS`` is empty, so the
  dialplan answers and sends every caller straight to ``Queue(hotline-fallback)``
  (strategy leastrecent, ringinuse=no, autofill=yes — its fastest; the hotline's own
  fallback runs autofill=no for strict seniority —, the same agents as members; its
  ``timeout`` is the engine's ring_timeout and its ``wrapuptime`` the queue's wrap_up,
  both rendered by ``acd.config.asterisk``).

Same agents, same SIPp scenarios, same wrap-up, same ring time, the *same caller arrival
schedule* and the *same talk time per caller* in both runs (common random numbers: only
the way callers are handed to agents differs).

**Wrap-up.** app_queue checks ``time(NULL) - lastcall < wrapuptime`` in whole seconds, so
``wrapuptime = W`` frees an agent W-1 to W s after the hang-up (W - 0.5 s on average); the
engine enforces its ``wrap_up`` exactly. ``--wrap-up W`` gives both the same nominal W;
``--engine-wrap-up E --app-queue-wrap-up W`` sets them apart, e.g. ``E = W - 0.5`` for the
same *mean* wrap-up. The arrival rate is computed with the engine's wrap-up.

**Arrivals.** SIPp's ``-r`` places calls at a uniform rate, which would under-state queueing.
Instead every call of one SIPp UAC is launched at once and first pauses until its own
arrival time (a generated copy of ``harness/sipp/caller.xml`` with a leading
``<pause variable=...>`` fed from injection field1, and an ``invited`` log line on the
INVITE). Arrival times are a Poisson process: exponential inter-arrival times at
``rate = occupancy * agents / (ring + mean talk + wrap-up)``, drawn from ``--seed``.

**Talk times.** Uniform in ``talk_ms``, drawn per call from ``--seed`` and carried in the
caller number's last digits; the agent phones run a generated copy of
``harness/sipp/agent_answer.xml`` that talks that long (see :func:`agent_scenario` for why
not SIPp's own ``<sample>``). Random talk times matter: app_queue wakes waiting callers on a
1 s poll, and a fixed talk time would phase-lock with it.

**Measure.** Per call, from the SIPp logs of both sides (same host clock):
``wait = agent phone "answered" − caller "answered"`` — the caller's "answered" is Asterisk
answering the call on entry (the engine's AGI ANSWER, or ``Answer()`` before ``Queue``); the
agent's is the agent picking up (the ACK of its 200). Calls are matched by caller number
(one unique number per call). Both modes carry the same fixed ~1.0 s floor: Asterisk's
answer waits up to 500 ms for media (the SIPp caller sends none) and the agent phone rings
500 ms. The *hand-off gap* isolates the mechanism: agent hangs up while its next caller is
already waiting → that agent answers it (wrap-up + dispatch + ring).

Run::

    .venv/bin/python -m benchmarks.e2e_vs_app_queue            # full: ~120 calls per mode
    .venv/bin/python -m benchmarks.e2e_vs_app_queue --quick    # ~20 calls per mode
    .venv/bin/python -m benchmarks.e2e_vs_app_queue --engine-wrap-up 0.5 --app-queue-wrap-up 1

Results (JSON, markdown and every SIPp/Asterisk log) land in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from harness.rig import DID, AgentPlan, Rig
from harness.sandbox import REPO_ROOT, AsteriskInstance
from harness.sipp import SCENARIO_DIR, SippEvent, SippProcess, SippResult, run_uac

Mode = Literal["engine", "app_queue"]
MODES: tuple[Mode, ...] = ("engine", "app_queue")

#: agent_answer.xml lets the phone ring this long before it answers.
AGENT_RING_S = 0.5
#: Calls per second at which SIPp creates the (pausing) calls; compensated in the pauses.
LAUNCH_RATE = 100.0
#: Seconds between the start of the caller UAC and the first arrival.
LEAD_S = 2.0
#: The caller number ends with the call's talk time in ms, this many digits.
TALK_DIGITS = 5
#: "answered within" threshold of the service-level column.
SL_SECONDS = 5.0


# -- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """The offered load, identical for both modes."""

    calls: int = 120
    agents: int = 6
    talk_ms: tuple[int, int] = (2000, 6000)
    #: The engine queue's wrap_up (s).
    wrap_up: float = 1
    #: app_queue's ``wrapuptime``, whole seconds; ``None``: the same as ``wrap_up``.
    app_queue_wrap_up: int | None = None
    ring_timeout: int = 4
    occupancy: float = 0.85
    seed: int = 1

    def __post_init__(self) -> None:
        if self.calls < 2 or self.agents < 1:
            raise ValueError("need at least 2 calls and 1 agent")
        if not 0 < self.occupancy < 1:
            raise ValueError("occupancy must be in (0, 1)")
        if self.wrap_up < 0 or self.ring_timeout < 1:
            raise ValueError("wrap_up must be >= 0 and ring_timeout >= 1")
        if self.app_queue_wrap_up is None and self.wrap_up != int(self.wrap_up):
            raise ValueError("app_queue's wrapuptime is whole seconds: with a fractional "
                             "wrap_up, give app_queue_wrap_up")
        if self.app_queue_wrap_up is not None and self.app_queue_wrap_up < 0:
            raise ValueError("app_queue_wrap_up must be >= 0")
        if not 0 < self.talk_ms[0] <= self.talk_ms[1]:
            raise ValueError("talk_ms must be (min, max) with 0 < min <= max")

    @property
    def app_queue_wrapup(self) -> int:
        """app_queue's ``wrapuptime`` as rendered into ``queues_acd.conf``."""
        return (int(self.wrap_up) if self.app_queue_wrap_up is None
                else int(self.app_queue_wrap_up))

    @property
    def wrap_up_text(self) -> str:
        if self.app_queue_wrapup == self.wrap_up:
            return f"wrap-up {self.wrap_up:g} s"
        return (f"wrap-up: engine {self.wrap_up:g} s, app_queue wrapuptime "
                f"{self.app_queue_wrapup} s")

    @property
    def service_s(self) -> float:
        """Mean time an agent is taken by one call: ring + talk + (engine) wrap-up."""
        return AGENT_RING_S + sum(self.talk_ms) / 2000 + self.wrap_up

    @property
    def rate(self) -> float:
        """Poisson arrival rate (calls/s) for the target occupancy."""
        return self.occupancy * self.agents / self.service_s


#: The smoke size: short calls and a near-full load, so that even 20 calls queue.
QUICK = LoadPlan(calls=20, talk_ms=(1000, 3000), occupancy=0.95)


def arrival_times(plan: LoadPlan) -> list[float]:
    """Seconds after the UAC starts at which each caller dials (Poisson process)."""
    rng = random.Random(plan.seed)
    t, out = LEAD_S, []
    for _ in range(plan.calls):
        out.append(t)
        t += rng.expovariate(plan.rate)
    return out


def talk_times_ms(plan: LoadPlan) -> list[int]:
    """Each call's talk time (ms), uniform in ``talk_ms``: its own random stream, so the
    arrival schedule does not change with the talk range."""
    rng = random.Random(f"talk-{plan.seed}")
    return [round(rng.uniform(*plan.talk_ms)) for _ in range(plan.calls)]


def caller_numbers(mode: Mode, talk_ms: Sequence[int]) -> list[str]:
    """One unique number per call: mode prefix, call index, talk time in ms."""
    prefix = "71" if mode == "engine" else "72"
    if len(talk_ms) > 9999 or max(talk_ms) >= 10**TALK_DIGITS:
        raise ValueError("too many calls or too long a talk time for the caller numbers")
    return [f"{prefix}{i:04d}{t:0{TALK_DIGITS}d}" for i, t in enumerate(talk_ms)]


def poisson_caller_scenario(dest: Path) -> Path:
    """``harness/sipp/caller.xml`` plus a leading pause of field1 ms and an ``invited``
    log line when the INVITE goes out."""
    text = (SCENARIO_DIR / "caller.xml").read_text(encoding="iso-8859-1")
    head = '<scenario name="hotline caller">'
    if text.count(head) != 1 or "  </send>" not in text:
        raise RuntimeError("harness/sipp/caller.xml changed shape; update the benchmark")
    pause = (
        "\n  <!-- benchmark: wait for this caller's arrival time (field1, ms) -->\n"
        "  <nop>\n    <action>\n"
        '      <assignstr assign_to="arrive_s" value="[field1]"/>\n'
        '      <todouble assign_to="arrive" variable="arrive_s"/>\n'
        "    </action>\n  </nop>\n"
        '  <pause variable="arrive"/>\n'
    )
    invited = (
        "    <action>\n"
        '      <log message="[timestamp]|invited|[field0]|[call_id]"/>\n'
        "    </action>\n  </send>"
    )
    text = text.replace(head, head + pause, 1)
    text = text.replace("  </send>", invited, 1)  # the first <send> is the INVITE
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="iso-8859-1")
    return dest


def agent_scenario(dest: Path) -> Path:
    """``harness/sipp/agent_answer.xml`` with the talk time read from the caller's number.

    The shipped scenario draws the talk time with SIPp's uniform ``<sample>``, which is
    ``rand()`` seeded with ``time(NULL)``: phones started in the same second draw the *same*
    sequence (the k-th call of every agent lasts exactly as long), and the two modes would
    get different samples. Here the benchmark draws each call's talk time itself (uniform,
    from ``--seed``) and puts it in the caller number's last ``TALK_DIGITS`` digits; the
    agent phone talks that long. Talk times are then random, independent across agents
    and *identical per caller in both modes* (common random numbers).
    """
    text = (SCENARIO_DIR / "agent_answer.xml").read_text(encoding="iso-8859-1")
    draw = re.compile(r'\n\s*<sample assign_to="u".*?<add assign_to="talk" variable="lo"/>',
                      re.S)
    from_talk = (
        f'\n      <ereg regexp="sips?:[0-9]*([0-9]{{{TALK_DIGITS}}})@" search_in="hdr" '
        'header="From:"\n            check_it="true" assign_to="talk_m,talk_ms"/>\n'
        '      <todouble assign_to="talk" variable="talk_ms"/>')
    text, n_draw = draw.subn(lambda _m: from_talk, text)
    edits = [
        ('  <Global variables="talk_min,talk_max"/>\n', ""),
        ('<Reference variables="ruri_m,from_m,contact_m"/>',
         '<Reference variables="ruri_m,from_m,contact_m,talk_m"/>'),
    ]
    if n_draw != 1 or any(text.count(old) != 1 for old, _ in edits):
        raise RuntimeError("harness/sipp/agent_answer.xml changed shape; update the benchmark")
    for old, new in edits:
        text = text.replace(old, new)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="iso-8859-1")
    return dest


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]; NaN if empty."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass
class CallRecord:
    caller: str
    invited: float | None = None
    entered: float | None = None      # caller's "answered": Asterisk answered on entry
    connected: float | None = None    # agent phone's "answered"
    agent: str | None = None
    agent_done: float | None = None   # agent phone hung up (or saw the caller hang up)
    ended: float | None = None        # caller saw the far end hang up

    @property
    def wait(self) -> float | None:
        if self.entered is None or self.connected is None:
            return None
        return self.connected - self.entered


def build_records(callers: Sequence[str], caller_events: Iterable[SippEvent],
                  agent_events: Iterable[SippEvent]) -> dict[str, CallRecord]:
    recs = {c: CallRecord(c) for c in callers}
    for ev in caller_events:
        rec = recs.get(ev.caller)
        if rec is None:
            continue
        if ev.event == "invited":
            rec.invited = ev.time
        elif ev.event == "answered":
            rec.entered = ev.time
        elif ev.event == "ended":
            rec.ended = ev.time
    for ev in agent_events:
        rec = recs.get(ev.caller)
        if rec is None:
            continue
        if ev.event == "answered":
            if rec.connected is not None:
                raise RuntimeError(f"caller {ev.caller} answered by two agents")
            rec.connected, rec.agent = ev.time, ev.agent
        elif ev.event in ("hungup", "far_hungup"):
            rec.agent_done = ev.time
    return recs


def handoff_gaps(recs: Iterable[CallRecord]) -> list[float]:
    """Agent freed while its next caller was already waiting → that agent answers it.

    The mechanism figure: wrap-up + dispatch latency + the phone's 500 ms ring, for every
    pair (call, next call of the same agent) where the next caller had entered before the
    agent's previous call ended — so neither a lack of callers nor a caller going to
    another agent counts as dispatch time.
    """
    by_agent: dict[str, list[CallRecord]] = {}
    for r in recs:
        if r.connected is not None and r.agent is not None:
            by_agent.setdefault(r.agent, []).append(r)
    gaps = []
    for calls in by_agent.values():
        calls.sort(key=lambda r: r.connected or 0.0)
        for prev, nxt in itertools.pairwise(calls):
            freed, entered, connected = prev.agent_done, nxt.entered, nxt.connected
            if freed is not None and entered is not None and connected is not None \
                    and entered < freed:
                gaps.append(connected - freed)
    return gaps


@dataclass
class ModeResult:
    mode: str
    calls: int
    answered: int
    sipp_failed: int
    fallback_calls: int          # dialplan "app_queue fallback" lines in Asterisk's log
    asa: float
    p50: float
    p90: float
    max_wait: float
    within_sl: float             # fraction of calls answered by an agent within SL_SECONDS
    handoff_mean: float
    handoff_p50: float
    handoffs: int
    entry_ms: float              # mean INVITE → Asterisk answered
    talk_mean: float             # mean agent answered → agent hung up
    arrival_rate: float          # measured from the INVITEs
    makespan: float              # first INVITE → last caller hung up
    throughput_per_min: float
    engine_connected: int | None = None
    waits: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def from_records(cls, mode: str, recs: dict[str, CallRecord], *, sipp_failed: int,
                     fallback_calls: int, engine_connected: int | None) -> ModeResult:
        rows = list(recs.values())
        waits = [w for r in rows if (w := r.wait) is not None]
        invited = [r.invited for r in rows if r.invited is not None]
        ended = [r.ended for r in rows if r.ended is not None]
        entry = [(r.entered - r.invited) * 1000 for r in rows
                 if r.entered is not None and r.invited is not None]
        talk = [r.agent_done - r.connected for r in rows
                if r.agent_done is not None and r.connected is not None]
        gaps = handoff_gaps(rows)
        span = (max(ended) - min(invited)) if invited and ended else math.nan
        rate = ((len(invited) - 1) / (max(invited) - min(invited))
                if len(invited) > 1 and max(invited) > min(invited) else math.nan)
        return cls(
            mode=mode, calls=len(rows), answered=len(waits), sipp_failed=sipp_failed,
            fallback_calls=fallback_calls,
            asa=mean(waits), p50=percentile(waits, 50), p90=percentile(waits, 90),
            max_wait=max(waits) if waits else math.nan,
            within_sl=sum(w <= SL_SECONDS for w in waits) / len(rows),
            handoff_mean=mean(gaps), handoff_p50=percentile(gaps, 50), handoffs=len(gaps),
            entry_ms=mean(entry), talk_mean=mean(talk), arrival_rate=rate,
            makespan=span,
            throughput_per_min=len(waits) / span * 60 if span and span > 0 else math.nan,
            engine_connected=engine_connected, waits=waits)

    def numbers(self) -> dict[str, float]:
        """Every computed figure (for the no-NaN check)."""
        return {k: float(v) for k, v in asdict(self).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
                and k != "engine_connected"}


# -- running -------------------------------------------------------------------------------


@dataclass
class Benchmark:
    plan: LoadPlan
    results: dict[str, ModeResult]
    machine: dict[str, str]
    started: str
    seconds: float

    def ratio(self, attr: str) -> float:
        eng = getattr(self.results["engine"], attr)
        aq = getattr(self.results["app_queue"], attr)
        return float(eng / aq) if aq else math.nan


@dataclass
class ModeSetup:
    """Everything a mode's run needs, prepared (files written) before the rig starts."""

    callers: list[str]
    pauses_ms: list[int]
    caller_scenario: Path
    agents: list[AgentPlan]
    time_limit: float


def prepare_mode(mode: Mode, plan: LoadPlan, out: Path) -> ModeSetup:
    out = out.resolve()  # SIPp runs in the artifacts directory: absolute scenario paths
    out.mkdir(parents=True, exist_ok=True)
    # Talk times come with the caller numbers (see agent_scenario); talk_ms is informative.
    phone = str(agent_scenario(out / "agent_talk_from_caller.xml"))
    agents = [AgentPlan(f"{8001 + i}", scenario=phone, talk_ms=plan.talk_ms)
              for i in range(plan.agents)]
    arrivals = arrival_times(plan)
    # SIPp creates call i about i/LAUNCH_RATE s after it starts; the pause makes up the rest.
    pauses = [max(0, round((t - i / LAUNCH_RATE) * 1000)) for i, t in enumerate(arrivals)]
    return ModeSetup(callers=caller_numbers(mode, talk_times_ms(plan)), pauses_ms=pauses,
                     caller_scenario=poisson_caller_scenario(out / "caller_poisson.xml"),
                     agents=agents, time_limit=arrivals[-1] + 300)


def asterisk_facts(ast: AsteriskInstance, out: Path, queue_show: str | None) -> int:
    """Keep the app_queue config as run; return how many calls took the app_queue path."""
    if queue_show is not None:
        (out / "queue_show.txt").write_text(queue_show)
    with contextlib.suppress(OSError):
        shutil.copy(ast.etc_dir / "queues_acd.conf", out / "queues_acd.conf")
    log = ast.log_path.read_text(errors="replace").splitlines()
    return sum(" WARNING[" in ln and "engine unreachable, app_queue fallback" in ln
               for ln in log)


def finish_mode(mode: Mode, setup: ModeSetup, callers: SippResult, phones: Iterable[SippProcess],
                out: Path, fallback_calls: int, engine_connected: int | None) -> ModeResult:
    agent_events = [ev for phone in phones for ev in phone.result().events]
    recs = build_records(setup.callers, callers.events, agent_events)
    (out / "calls.json").write_text(json.dumps([asdict(r) for r in recs.values()], indent=1))
    return ModeResult.from_records(mode, recs, sipp_failed=callers.failed,
                                   fallback_calls=fallback_calls,
                                   engine_connected=engine_connected)


async def run_mode(mode: Mode, plan: LoadPlan, out: Path,
                   machine: dict[str, str]) -> ModeResult:
    """One full run (fresh rig) of ``plan`` in ``mode``; logs land in ``out``."""
    setup = await asyncio.to_thread(prepare_mode, mode, plan, out)
    mode_kw: dict[str, Any] = ({"engine": "inline"} if mode == "engine"
                               else {"engine": "none", "agi_urls": ""})
    engine_connected: int | None = None
    async with Rig(out, setup.agents, ring_timeout=plan.ring_timeout, wrap_up=plan.wrap_up,
                   app_queue_wrapup=plan.app_queue_wrapup, app_queue_autofill=True,
                   fallback_timeout=600, name=f"bench-{mode}", ports_size=600,
                   **mode_kw) as rig:
        ast = rig.asterisk
        assert ast is not None
        if "asterisk" not in machine:
            machine["asterisk"] = (await ast.acli("core show version")).strip()
        queue_show = (await ast.acli("queue show hotline-fallback")
                      if mode == "app_queue" else None)
        result = await run_uac(
            setup.caller_scenario, "127.0.0.1", rig.ports.sip, DID, setup.callers, out,
            rig.ports, name="callers", rate=LAUNCH_RATE,
            patience_ms=setup.pauses_ms,  # injection field1: the arrival pause here
            max_concurrent=plan.calls, time_limit=setup.time_limit,
            trace_messages=False, trace_errors=False)
        if rig.engine is not None:
            await rig.wait_for(lambda: rig.engine is not None and not rig.engine.core.calls,
                               within=15)
            engine_connected = len(rig.published("call_connected"))
        fallback_calls = await asyncio.to_thread(asterisk_facts, ast, out, queue_show)
    return await asyncio.to_thread(finish_mode, mode, setup, result, rig.phones.values(),
                                   out, fallback_calls, engine_connected)


def machine_info() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sipp = ""
    if shutil.which("sipp"):
        proc = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False)
        sipp = next((ln.strip() for ln in (proc.stdout + proc.stderr).splitlines()
                     if "SIPp" in ln), "")
    return {"nproc": str(os.cpu_count()), "cpu": cpu,
            "python": platform.python_version(), "os": platform.platform(), "sipp": sipp}


def write_results(bench: Benchmark, out: Path) -> None:
    (out / "results.json").write_text(json.dumps({
        "plan": asdict(bench.plan), "rate": bench.plan.rate, "machine": bench.machine,
        "started": bench.started, "seconds": bench.seconds,
        "results": {m: asdict(r) for m, r in bench.results.items()},
    }, indent=1, default=str))
    (out / "results.md").write_text(markdown(bench) + "\n")


async def run_benchmark(plan: LoadPlan, out: Path,
                        modes: Sequence[Mode] = MODES) -> Benchmark:
    """Run every mode in turn (same plan, same arrival schedule, same talk time per call)
    and write ``results.json`` / ``results.md`` into ``out``."""
    machine = await asyncio.to_thread(machine_info)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    results: dict[str, ModeResult] = {}
    for mode in modes:
        results[mode] = await run_mode(mode, plan, out / mode, machine)
    bench = Benchmark(plan, results, machine, started, time.monotonic() - t0)
    await asyncio.to_thread(write_results, bench, out)
    return bench


# -- report --------------------------------------------------------------------------------


def _f(value: float | int | None, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def markdown(bench: Benchmark) -> str:
    p = bench.plan
    modes = list(bench.results)
    both = modes == list(MODES)
    head = "| | " + " | ".join(modes) + (" | engine / app_queue |" if both else " |")
    sep = "|---|" + "---:|" * (len(modes) + (1 if both else 0))
    lines = [
        f"{p.calls} calls per mode, {p.agents} agents, talk uniform "
        f"{p.talk_ms[0] / 1000:g}–{p.talk_ms[1] / 1000:g} s, {p.wrap_up_text}, "
        f"ring {AGENT_RING_S:g} s, Poisson arrivals at {p.rate:.3f} calls/s "
        f"(target occupancy {p.occupancy:.0%}), seed {p.seed}.",
        "",
        head,
        sep,
    ]

    def row(label: str, attr: str, spec: str = ".2f", ratio: bool = False,
            pct: bool = False) -> None:
        cells = []
        for m in modes:
            v = getattr(bench.results[m], attr)
            cells.append(_f(v * 100, ".1f") + " %" if pct else _f(v, spec))
        extra = [_f(bench.ratio(attr), ".2f")] if both and ratio else ([""] if both else [])
        lines.append(f"| {label} | " + " | ".join(cells + extra) + " |")

    row("calls", "calls", "d")
    row("answered by an agent", "answered", "d")
    row("SIPp failed calls", "sipp_failed", "d")
    row("calls through app_queue fallback", "fallback_calls", "d")
    row("**ASA** (mean wait, s)", "asa", ratio=True)
    row("p50 wait (s)", "p50", ratio=True)
    row("**p90 wait** (s)", "p90", ratio=True)
    row("max wait (s)", "max_wait", ratio=True)
    row(f"answered within {SL_SECONDS:g} s", "within_sl", pct=True)
    row("hand-off gap, mean (s)", "handoff_mean", ratio=True)
    row("hand-off gap, p50 (s)", "handoff_p50", ratio=True)
    row("hand-offs measured", "handoffs", "d")
    row("INVITE → answered on entry (ms)", "entry_ms", ".1f")
    row("mean talk (s)", "talk_mean")
    row("arrival rate measured (calls/s)", "arrival_rate", ".3f")
    row("makespan (s)", "makespan", ".1f")
    row("throughput (calls/min)", "throughput_per_min", ".1f")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[LoadPlan, Path]:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.e2e_vs_app_queue",
        description="End-to-end ASA: ACD engine vs Asterisk app_queue (same hotline, "
                    "same load).")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK.calls} calls per mode, talk 1–3 s, occupancy 95%% "
                         "(smoke run, under a minute)")
    ap.add_argument("--calls", type=int, help="calls per mode (default 120; quick 20)")
    ap.add_argument("--agents", type=int, help="agents (default 6)")
    ap.add_argument("--seed", type=int, help="arrival schedule seed (default 1)")
    ap.add_argument("--occupancy", type=float, help="target occupancy (default 0.85)")
    ap.add_argument("--wrap-up", type=int,
                    help="wrap-up of both the engine and app_queue, whole seconds (default 1)")
    ap.add_argument("--engine-wrap-up", type=float, metavar="S",
                    help="the engine queue's wrap_up only, seconds (default: --wrap-up)")
    ap.add_argument("--app-queue-wrap-up", type=int, metavar="W",
                    help="app_queue's wrapuptime only, whole seconds (default: --wrap-up); "
                         "app_queue frees an agent W-1 to W s after the call")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench",
                    help="output directory (default artifacts/bench)")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else LoadPlan()
    both = args.wrap_up if args.wrap_up is not None else base.wrap_up
    engine_wrap_up = args.engine_wrap_up if args.engine_wrap_up is not None else both
    app_queue_wrap_up = (args.app_queue_wrap_up if args.app_queue_wrap_up is not None
                         else int(both))
    if engine_wrap_up < 0 or app_queue_wrap_up < 0:
        ap.error("wrap-ups must be >= 0")
    changes = {k: v for k, v in (("calls", args.calls), ("agents", args.agents),
                                 ("seed", args.seed), ("occupancy", args.occupancy))
               if v is not None}
    plan = LoadPlan(**{**asdict(base), **changes, "wrap_up": engine_wrap_up,
                       "app_queue_wrap_up": (None if app_queue_wrap_up == engine_wrap_up
                                             else app_queue_wrap_up)})
    return plan, args.out


def main(argv: Sequence[str] | None = None) -> int:
    plan, out = parse_args(argv)
    print(f"e2e benchmark: {plan.calls} calls per mode at {plan.rate:.3f} calls/s "
          f"({plan.agents} agents, {plan.wrap_up_text}) -> {out}", file=sys.stderr)
    bench = asyncio.run(run_benchmark(plan, out))
    print(markdown(bench))
    m = bench.machine
    print(f"\nmachine: {m['nproc']} CPU ({m['cpu']}), Python {m['python']}, {m['sipp']}, "
          f"{m.get('asterisk', '?')}; {bench.started}; {bench.seconds:.0f} s")
    bad = [r.mode for r in bench.results.values() if r.answered != r.calls]
    if bad:
        print(f"NOT every call was answered in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
