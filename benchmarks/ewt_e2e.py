"""End to end through the real Asterisk and SIPp: how right the expected wait is, and
what announcements cost the agent-free → Dial path.

    .venv/bin/python -m benchmarks.ewt_e2e accuracy   # ≈ 7 min: EWT at entry vs actual wait
    .venv/bin/python -m benchmarks.ewt_e2e announce   # ≈ 9 min: free → Dial, prompts off/on
    .venv/bin/python -m benchmarks.ewt_e2e accuracy --quick   # smoke runs (≈ 1 min each)
    .venv/bin/python -m benchmarks.ewt_e2e announce --quick

Both run :class:`harness.rig.Rig` — the sandbox Asterisk 22, the engine in this process
(built by ``app.node.Node`` as ``acd serve`` builds it), one SIPp softphone per agent and
one SIPp UAC for the callers — with the arrival and talk-time machinery of
``benchmarks.e2e_vs_app_queue``: every caller is launched at once and pauses until its
own Poisson arrival time; its talk time, drawn here (lognormal, from ``--seed``), travels
in the caller number's last five digits and the agent's phone talks that long.

**accuracy** — one queue, ``--agents`` agents, lognormal talk times, wrap-up, Poisson
arrivals at ``--occupancy`` (85 %) for ``--minutes``; callers never hang up. Each caller's
expected wait at entry is what the engine computed for it: the first background replay
published after the caller joined (what its first announcement would say, and what the
``acd_ewt_error_seconds`` metric takes), as seconds from its entry (``ACD_ENTRY``, the
dialplan's stamp): replay time − entry + the replay's estimate. The naive estimator
(position × AHT ÷ agents) is taken at the same moment from the same engine: the replay's
position, the queue's AHT so far (talk + wrap-up per completed call, the core's figures),
the available agents who may take the queue. The actual wait is the engine's
(``CallConnected``: entry → the agent's answer, AMI ``DialEnd``), checked against SIPp's
own (caller answered on entry → agent's phone answered). Reported as in
``benchmarks/ewt_accuracy.py``: per caller |error| ÷ wait — its median, its 90th
percentile, the share within ±20 % — over the callers who waited at least the same share
of the handle time as the simulation's 20 s of 188 s; median |error|, the shares within
±30 % and within ±30 s (and within the same share of the handle time as 30 s of 188 s).
The engine's own ``acd_ewt_error_seconds`` histogram (an ``EngineCollector`` attached for
the run) is reported beside it.

**announce** — the same hotline three times, each on a fresh rig, with the same arrival
schedule and talk times (common random numbers): announcements **off**; **on** as
shipped (``first_after`` 1 s, ``every`` 15 s — the least the config allows —, place and
expected wait); and **on, always** — the same, with the call flow's rule that skips an
announcement when the caller's expected wait is under 12 s turned off for the run
(``acd.runtime.call_flow.ANNOUNCE_SKIP_BELOW`` = 0), so the caller an agent frees for is
nearly always in the middle of a prompt. Load: a backlog of callers at the start, then
arrivals at about the agents' pace, wrap-up 0, so nearly every agent who hangs up has a
caller waiting. The delay is measured on Asterisk's side, from its full log (one clock,
milliseconds): the agent's channel leaving the bridge (the agent hung up) → ``AGI Script
Executing Application: (Dial)`` to that agent on a caller's channel, for every hang-up
with a caller already in the engine's hands (its ``AGI(...)`` started before); whether
that caller was in a prompt at the hang-up comes from the same log (a ``Playing`` line
since its hold music last started). On the engine's side the same hand-offs are split
with the engine's clock (the same host clock; Asterisk's log is placed on it with the
``ACD_ENTRY`` stamps it logs): hang-up → the engine frees the agent (Dial's reply, the
``DIALSTATUS`` read, ``DialFinished``), → the offer (dispatch), → Asterisk's Dial (the
session: stopping the prompt with AMI ``PlayDTMF``, hold music, ``EXEC Dial``).

The report gives each announcing mode's free → Dial figures ÷ those with announcements
off, in the same run.

Results (JSON, markdown, every log) land in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from acd.domain import AgentStatus
from acd.domain.ewt import Sweep, naive_estimate
from acd.domain.facts import AgentChanged, CallConnected, CallOffered, CallWaiting, Fact
from acd.runtime import call_flow
from acd.runtime.engine import Engine
from acd.runtime.metrics import EngineCollector
from benchmarks.e2e_vs_app_queue import (
    LAUNCH_RATE,
    LEAD_S,
    TALK_DIGITS,
    agent_scenario,
    build_records,
    machine_info,
    percentile,
    poisson_caller_scenario,
)
from harness.rig import DID, AgentPlan, Rig
from harness.sandbox import REPO_ROOT
from harness.sipp import SippEvent, run_uac

#: The simulation's reference: 20 s and 30 s of a 188 s handle time.
SIM_HANDLE, SIM_MIN_WAIT, SIM_WITHIN = 188.0, 20.0, 30.0
#: The agent phone rings this long before it answers (agent_answer.xml).
PHONE_RING = 0.5


# -- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Agents, talk times and arrivals of one run."""

    agents: int = 10
    talk_mean: float = 20.0
    talk_sd: float = 13.0
    wrap_up: float = 1.0
    occupancy: float = 0.85
    minutes: float = 6.0
    #: Callers already there at the start (the announce runs' backlog).
    backlog: int = 0
    seed: int = 1

    @property
    def handle(self) -> float:
        """Mean time an agent is taken by one call: phone ring + talk + wrap-up."""
        return PHONE_RING + self.talk_mean + self.wrap_up

    @property
    def rate(self) -> float:
        return self.occupancy * self.agents / self.handle

    @property
    def calls(self) -> int:
        return self.backlog + max(1, round(self.rate * self.minutes * 60))


def arrivals(load: Load) -> list[float]:
    """Seconds after the UAC starts at which each caller dials: the backlog within the
    first second, then a Poisson process at ``load.rate``."""
    rng = random.Random(load.seed)
    out = [LEAD_S + 0.05 * i for i in range(load.backlog)]
    t = LEAD_S + (1.0 if load.backlog else 0.0)
    while len(out) < load.calls:
        out.append(t)
        t += rng.expovariate(load.rate)
    return out


def talk_times_ms(load: Load) -> list[int]:
    """Lognormal talk times (ms) with the load's mean and sd, within 1–99.999 s."""
    rng = random.Random(f"talk-{load.seed}")
    sigma = math.sqrt(math.log1p((load.talk_sd / load.talk_mean) ** 2))
    mu = math.log(load.talk_mean) - sigma * sigma / 2
    return [min(10**TALK_DIGITS - 1, max(1000, round(1000 * rng.lognormvariate(mu, sigma))))
            for _ in range(load.calls)]


def numbers(prefix: str, talk_ms: Sequence[int]) -> list[str]:
    return [f"{prefix}{i:04d}{t:0{TALK_DIGITS}d}" for i, t in enumerate(talk_ms)]


# -- what the engine told each caller ------------------------------------------------------


@dataclass
class Told:
    """One caller: when it joined, what the first replay after told it, its wait."""

    call_id: str
    queue: str
    entry: float
    joined: float
    #: Seconds from entry (replay time − entry + the replay's estimate); None: unsure.
    ewt: float | None = None
    naive: float | None = None
    position: int | None = None
    replay_lag: float | None = None
    wait: float | None = None
    caller: str = ""


class EntryWatch:
    """Hooks of the in-process engine: callers joining, the replays it publishes, the
    facts with the engine's clock (for the hand-off breakdown)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.told: dict[str, Told] = {}
        self._pending: dict[str, Told] = {}
        #: (engine time, agent, state) of every agent change; (time, call, agent) offers.
        self.agent_states: list[tuple[float, str, str]] = []
        self.offers: list[tuple[float, str, str]] = []

    def attach(self) -> None:
        self.engine.fact_hooks.append(self.on_fact)
        self.engine.estimates.hooks.append(self.on_sweep)

    def on_fact(self, fact: Fact, now: float) -> None:
        if isinstance(fact, CallWaiting) and not fact.reentry:
            told = Told(fact.call_id, fact.queue, fact.entry_time, now)
            self.told[fact.call_id] = told
            self._pending[fact.call_id] = told
        elif isinstance(fact, CallConnected):
            self._pending.pop(fact.call_id, None)
            known = self.told.get(fact.call_id)
            if known is not None:
                known.wait = fact.wait
                call = self.engine.core.calls.get(fact.call_id)
                known.caller = call.caller if call is not None else ""
        elif isinstance(fact, AgentChanged):
            self.agent_states.append((now, fact.agent, fact.state))
        elif isinstance(fact, CallOffered):
            self.offers.append((now, fact.call_id, fact.agent))

    def on_sweep(self, sweep: Sweep) -> None:
        core = self.engine.core
        for call_id, told in list(self._pending.items()):
            if told.joined > sweep.now:
                continue  # joined while this replay ran: the next one tells
            del self._pending[call_id]
            est = sweep.calls.get(call_id)
            if est is None:
                continue  # no longer waiting (offered before any replay walked it)
            told.position = est.position
            told.replay_lag = sweep.now - told.joined
            if est.sure and est.seconds is not None:
                told.ewt = sweep.now - told.entry + est.seconds
            totals = core.figures.total(told.queue)
            aht = (totals.talk + totals.wrap_up) / totals.handled if totals.handled else None
            agents = sum(1 for a in core.agents.values()
                         if a.status is AgentStatus.AVAILABLE
                         and a.agent_id in core.estimator.admitted(told.queue, 0))
            naive = naive_estimate(est.position, aht, agents)
            if naive is not None:
                told.naive = sweep.now - told.entry + naive


def errors(pairs: Sequence[tuple[float, float]], min_wait: float,
           within_s: float) -> dict[str, float]:
    """The columns of ``benchmarks/ewt_accuracy.py`` (and ±``within_s``)."""
    if not pairs:
        return {"n": 0}
    abs_err = [abs(e - w) for e, w in pairs]
    rel = [abs(e - w) / w for e, w in pairs if w >= min_wait]
    return {
        "n": len(pairs), "n_rel": len(rel),
        "median_abs_s": statistics.median(abs_err),
        "per_caller_rel": statistics.median(rel) if rel else math.nan,
        "p90_rel": percentile(rel, 90) if rel else math.nan,
        "within_20pct_rel": sum(1 for r in rel if r <= 0.2) / len(rel) if rel else math.nan,
        "within_20pct": sum(1 for e, w in pairs if abs(e - w) <= 0.2 * w) / len(pairs),
        "abs_over_median_wait": statistics.median(abs_err)
        / statistics.median(w for _, w in pairs),
        "within_30pct": sum(1 for e, w in pairs if abs(e - w) <= 0.3 * w) / len(pairs),
        "within_30s": sum(1 for e, w in pairs if abs(e - w) <= 30) / len(pairs),
        "within_scaled": sum(1 for e, w in pairs if abs(e - w) <= within_s) / len(pairs),
        "mean_signed_s": statistics.fmean(e - w for e, w in pairs),
    }


# -- Asterisk's log ------------------------------------------------------------------------

_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]")
_CID = r"\[(C-[0-9a-f]+)\]"
_LEFT = re.compile(r"Channel PJSIP/(agent\w+)-[0-9a-f]+ left '")
_DIAL = re.compile(_CID + r" res_agi\.c: AGI Script Executing Application: \(Dial\) "
                   r"Options: \(PJSIP/(agent\w+),")
_AGI = re.compile(_CID + r" pbx\.c: Executing \[s@hotline-acd:\d+\] AGI\(\"(PJSIP/[^\"]+)\"")
_ENTRY = re.compile(_CID + r" pbx\.c: Executing \[s@hotline-acd:\d+\] Set\(\"[^\"]+\", "
                    r"\"__ACD_ENTRY=([0-9.]+)\"")
_PLAYING = re.compile(_CID + r" res_agi\.c: <[^>]+> Playing '([^']+)'")
_MOH = re.compile(_CID + r" res_musiconhold\.c: Started music on hold")


def _local(stamp: str) -> float:
    """A log stamp as if UTC (the offset to the engine's clock is found from the log)."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


@dataclass
class AsteriskLog:
    """What the benchmark reads of Asterisk's full log."""

    #: (log time, agent endpoint) of every agent hang-up (its channel left the bridge).
    hangups: list[tuple[float, str]] = field(default_factory=list)
    #: (log time, channel id, agent endpoint) of every Dial.
    dials: list[tuple[float, str, str]] = field(default_factory=list)
    #: channel id → when its AGI (the engine's session) started.
    agi: dict[str, float] = field(default_factory=dict)
    #: channel id → [(log time, "play" | "moh")].
    audio: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    #: Engine clock − log clock (seconds), from the ACD_ENTRY stamps.
    offset: float = 0.0

    @classmethod
    def parse(cls, text: str) -> AsteriskLog:
        out = cls()
        offsets: list[float] = []
        for line in text.splitlines():
            m = _STAMP.match(line)
            if m is None:
                continue
            t = _local(m[1])
            if (h := _LEFT.search(line)) is not None:
                out.hangups.append((t, h[1]))
            elif (d := _DIAL.search(line)) is not None:
                out.dials.append((t, d[1], d[2]))
            elif (a := _AGI.search(line)) is not None:
                out.agi.setdefault(a[1], t)
            elif (p := _PLAYING.search(line)) is not None:
                out.audio.setdefault(p[1], []).append((t, "play"))
            elif (o := _MOH.search(line)) is not None:
                out.audio.setdefault(o[1], []).append((t, "moh"))
            elif (e := _ENTRY.search(line)) is not None:
                offsets.append(float(e[2]) - t)
        if offsets:
            # the stamp and the line are the same instant to a millisecond; the rest is
            # the log's time zone
            out.offset = round(statistics.median(offsets) / 900) * 900
        return out

    def in_prompt(self, cid: str, t: float) -> bool:
        """Whether the channel was in an announcement at ``t`` (a prompt started since
        its hold music last started)."""
        last = None
        for at, kind in self.audio.get(cid, ()):
            if at > t:
                break
            last = kind
        return last == "play"

    def prompt_started(self, cid: str, t0: float, t1: float) -> bool:
        return any(t0 < at < t1 and kind == "play" for at, kind in self.audio.get(cid, ()))


@dataclass
class Handoff:
    """An agent hung up with a caller waiting; that agent was dialled for it."""

    agent: str
    hangup: float
    dial: float
    channel: str
    in_prompt: bool
    #: A prompt started after the hang-up, before the Dial.
    prompt_after: bool
    #: Engine's side (engine clock − hang-up): agent freed, offer made.
    freed: float | None = None
    offered: float | None = None

    @property
    def delay_ms(self) -> float:
        return (self.dial - self.hangup) * 1000


def handoffs(log: AsteriskLog, agent_states: Sequence[tuple[float, str, str]] = (),
             offers: Sequence[tuple[float, str, str]] = ()) -> list[Handoff]:
    """Every agent hang-up with a caller waiting, and that agent's next Dial; with the
    engine's agent changes and offers (engine clock), the engine's side of each."""
    by_agent: dict[str, list[tuple[float, str]]] = {}
    for t, cid, agent in log.dials:
        by_agent.setdefault(agent, []).append((t, cid))
    out = []
    for t0, agent in log.hangups:
        nxt = next(((t, cid) for t, cid in by_agent.get(agent, []) if t >= t0), None)
        if nxt is None:
            continue
        t1, cid = nxt
        if log.agi.get(cid, math.inf) >= t0:
            continue  # nobody was waiting when the agent hung up
        if any(t0 < t < t1 for t, a in log.hangups if a == agent):
            continue
        h = Handoff(agent, t0, t1, cid, log.in_prompt(cid, t0),
                    log.prompt_started(cid, t0, t1))
        agent_id = agent.removeprefix("agent")
        e0, e1 = t0 + log.offset, t1 + log.offset
        freed = next((t for t, a, s in agent_states
                      if a == agent_id and s == "idle" and e0 - 0.05 <= t <= e1 + 0.05), None)
        if freed is not None:
            h.freed = freed - e0
            offer = next((t for t, _, a in offers
                          if a == agent_id and freed <= t <= e1 + 0.05), None)
            h.offered = None if offer is None else offer - e0
        out.append(h)
    return out


def latency(values_ms: Sequence[float]) -> dict[str, float]:
    if not values_ms:
        return {"n": 0}
    return {"n": len(values_ms), "p50": percentile(values_ms, 50),
            "p95": percentile(values_ms, 95), "p99": percentile(values_ms, 99),
            "max": max(values_ms), "mean": statistics.fmean(values_ms)}


# -- one run -------------------------------------------------------------------------------


@dataclass
class Mode:
    name: str
    prefix: str
    announce: dict[str, Any] | None = None
    #: Turn off the call flow's skip of announcements below this expected wait.
    always_announce: bool = False


@dataclass
class Setup:
    """A run's files and schedule, prepared before its rig starts."""

    out: Path
    phone: str
    caller_scenario: Path
    callers: list[str]
    times: list[float]
    pauses: list[int]


def prepare(mode: Mode, load: Load, out: Path) -> Setup:
    out = out.resolve()  # SIPp runs in the artifacts directory: absolute paths
    out.mkdir(parents=True, exist_ok=True)
    times = arrivals(load)
    return Setup(out, str(agent_scenario(out / "agent_talk_from_caller.xml")),
                 poisson_caller_scenario(out / "caller_poisson.xml"),
                 numbers(mode.prefix, talk_times_ms(load)), times,
                 [max(0, round((t - i / LAUNCH_RATE) * 1000)) for i, t in enumerate(times)])


async def run_mode(mode: Mode, load: Load, out: Path) -> dict[str, Any]:
    """One fresh rig, the load's callers through it; every figure of the run."""
    setup = await asyncio.to_thread(prepare, mode, load, out)
    agents = [AgentPlan(f"{8001 + i}", scenario=setup.phone) for i in range(load.agents)]
    queue: dict[str, Any] = {"id": "consult", "name": "Consultation",
                             "skills": {"consult": 1}, "wrap_up": load.wrap_up,
                             "sl_target": 20, "expected_handle_time": load.talk_mean}
    if mode.announce is not None:
        queue["announce"] = mode.announce
    skip = (mock.patch.object(call_flow, "ANNOUNCE_SKIP_BELOW", 0.0)
            if mode.always_announce else contextlib.nullcontext())
    started = time.monotonic()
    with skip:
        async with Rig(setup.out, agents, wrap_up=load.wrap_up, name=f"ewt-{mode.name}",
                       ports_size=600, fallback_timeout=900,
                       extra_config={"queues": [queue]}) as rig:
            engine = rig.engine
            assert engine is not None and rig.asterisk is not None
            watch = EntryWatch(engine)
            watch.attach()
            collector = EngineCollector(engine)
            collector.attach()
            result = await run_uac(
                setup.caller_scenario, "127.0.0.1", rig.ports.sip, DID, setup.callers,
                setup.out, rig.ports, name="callers", rate=LAUNCH_RATE,
                patience_ms=setup.pauses, max_concurrent=len(setup.callers),
                time_limit=setup.times[-1] + 600, recv_timeout_ms=900_000,
                trace_messages=False, trace_errors=False)
            await rig.wait_for(lambda: not engine.core.calls, within=30)
            log_text = await asyncio.to_thread(rig.asterisk.log_path.read_text,
                                               errors="replace")
            metric = _metric(collector)
            replays = engine.estimates.replays
    phones = list(rig.phones.values())
    agent_events = await asyncio.to_thread(
        lambda: [ev for p in phones for ev in p.result().events])
    run = figures(mode, load, setup.callers, list(watch.told.values()), log_text, metric,
                  agent_events, result.events, result.failed, watch.agent_states,
                  watch.offers)
    run["seconds"], run["replays"] = time.monotonic() - started, replays
    await asyncio.to_thread((setup.out / "run.json").write_text,
                            json.dumps(run, indent=1, default=str))
    return run


def figures(mode: Mode, load: Load, callers: Sequence[str], told: Sequence[Told],
            log_text: str, metric: dict[str, float], agent_events: Sequence[SippEvent],
            caller_events: Sequence[SippEvent], sipp_failed: int,
            agent_states: Sequence[tuple[float, str, str]] = (),
            offers: Sequence[tuple[float, str, str]] = ()) -> dict[str, Any]:
    """Every figure of one run, from what the engine told and Asterisk's log."""
    records = build_records(callers, caller_events, agent_events)
    log = AsteriskLog.parse(log_text)
    sipp_wait = {c: r.wait for c, r in records.items()}
    waited = [t for t in told if t.wait is not None and t.position is not None]
    sure = [t for t in waited if t.ewt is not None]
    min_wait = SIM_MIN_WAIT * load.handle / SIM_HANDLE
    within = SIM_WITHIN * load.handle / SIM_HANDLE
    hand = handoffs(log, agent_states, offers)
    return {
        "mode": mode.name, "calls": len(callers),
        "answered": sum(1 for t in told if t.wait is not None),
        "sipp_failed": sipp_failed,
        "fallback": sum("app_queue fallback" in ln for ln in log_text.splitlines()),
        "waited": len(waited), "unsure": len(waited) - len(sure),
        "min_wait_s": min_wait, "within_s": within,
        "ewt": errors([(t.ewt, t.wait) for t in sure
                       if t.ewt is not None and t.wait is not None], min_wait, within),
        "naive": errors([(t.naive, t.wait) for t in sure
                         if t.naive is not None and t.wait is not None], min_wait, within),
        "replay_lag_ms": latency([1000 * t.replay_lag for t in waited
                                  if t.replay_lag is not None]),
        "wait_engine_vs_sipp_ms": latency([
            1000 * abs(t.wait - w) for t in told
            if t.wait is not None and (w := sipp_wait.get(t.caller)) is not None]),
        "median_wait_s": statistics.median(t.wait for t in waited if t.wait is not None)
        if waited else math.nan,
        "metric": metric,
        "handoffs": [asdict(h) for h in hand],
        "free_to_dial_ms": latency([h.delay_ms for h in hand]),
        "free_to_dial_in_prompt_ms": latency([h.delay_ms for h in hand if h.in_prompt]),
        "free_to_dial_no_prompt_ms": latency([h.delay_ms for h in hand if not h.in_prompt]),
        "in_prompt": sum(1 for h in hand if h.in_prompt),
        "prompt_after_hangup": sum(1 for h in hand if h.prompt_after),
        "engine_hangup_to_free_ms": latency([1000 * h.freed for h in hand
                                             if h.freed is not None]),
        "engine_free_to_offer_ms": latency([1000 * (h.offered - h.freed) for h in hand
                                            if h.offered is not None and h.freed is not None]),
        "engine_offer_to_dial_ms": latency([h.delay_ms - 1000 * h.offered for h in hand
                                            if h.offered is not None]),
        "engine_offer_to_dial_in_prompt_ms": latency([
            h.delay_ms - 1000 * h.offered for h in hand
            if h.offered is not None and h.in_prompt]),
        "told": [asdict(t) for t in told],
    }


def _metric(collector: EngineCollector) -> dict[str, float]:
    """The engine's own ``acd_ewt_error_seconds``: count and mean |error|, by direction."""
    out: dict[str, float] = {}
    for fam in collector.collect():
        if fam.name != "acd_ewt_error_seconds":
            continue
        for s in fam.samples:
            if s.name.endswith("_count") or s.name.endswith("_sum"):
                key = f"{s.labels.get('direction', '')}_{s.name.rsplit('_', 1)[1]}"
                out[key] = out.get(key, 0.0) + s.value
    n = out.get("over_count", 0.0) + out.get("under_count", 0.0)
    total = out.get("over_sum", 0.0) + out.get("under_sum", 0.0)
    out["n"] = n
    out["mean_abs_s"] = total / n if n else math.nan
    return out


# -- the two benchmarks --------------------------------------------------------------------

ACCURACY = Load()
ACCURACY_QUICK = Load(agents=4, talk_mean=6.0, talk_sd=4.0, minutes=1.0)
ANNOUNCE = Load(agents=6, talk_mean=8.0, talk_sd=5.0, wrap_up=0.0, occupancy=1.0,
                minutes=2.5, backlog=14)
ANNOUNCE_QUICK = Load(agents=3, talk_mean=5.0, talk_sd=3.0, wrap_up=0.0, occupancy=1.0,
                      minutes=0.6, backlog=6)
ANNOUNCE_ON = {"first_after": 1, "every": 15}


def announce_modes() -> list[Mode]:
    return [Mode("off", "73"), Mode("on", "74", dict(ANNOUNCE_ON)),
            Mode("on-always", "75", dict(ANNOUNCE_ON), always_announce=True)]


async def run(kind: str, load: Load, out: Path) -> dict[str, Any]:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    machine = await asyncio.to_thread(machine_info)
    modes = [Mode("accuracy", "76")] if kind == "accuracy" else announce_modes()
    runs = []
    for mode in modes:
        runs.append(await run_mode(mode, load, out / mode.name))
        print(_line(runs[-1]), file=sys.stderr, flush=True)
    results = {"kind": kind, "load": asdict(load), "rate": load.rate, "calls": load.calls,
               "machine": machine, "started": started, "seconds": time.monotonic() - t0,
               "runs": runs}
    await asyncio.to_thread(write_results, results, out)
    return results


def write_results(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(markdown(results) + "\n")


def _line(r: dict[str, Any]) -> str:
    e, n, f = r["ewt"], r["naive"], r["free_to_dial_ms"]
    return (f"{r['mode']}: {r['answered']}/{r['calls']} answered, {r['waited']} waited; "
            f"EWT per caller {_pct(e.get('per_caller_rel'))} naive "
            f"{_pct(n.get('per_caller_rel'))}; free→Dial p50 {_ms(f.get('p50'))} p99 "
            f"{_ms(f.get('p99'))} max {_ms(f.get('max'))} ({f.get('n', 0)} hand-offs, "
            f"{r['in_prompt']} in a prompt); {r['seconds']:.0f} s")


def _pct(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f} %"


def _ms(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.0f}"


def _s(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.1f} s"


#: Agent free → offer beyond this: nobody was in the engine's line when the agent was
#: free (a waiting caller is offered in the same inbox step, within a few ms); the
#: caller dialled was still entering (answered, its session not yet in line).
IN_LINE_S = 0.05


def in_line_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    """free → Dial over the hand-offs whose caller was already in the engine's line when
    the agent was free (engine's free → offer ≤ ``IN_LINE_S``), and ÷ announcements off."""
    rows: list[tuple[str, dict[str, float], int, int]] = []
    for r in runs:
        hs = r["handoffs"]
        ok = [h for h in hs if h["freed"] is None or h["offered"] is None
              or h["offered"] - h["freed"] <= IN_LINE_S]  # unknown: kept
        delays = [1000 * (h["dial"] - h["hangup"]) for h in ok]
        rows.append((r["mode"], latency(delays), len(hs) - len(ok),
                     sum(1 for h in ok if h["in_prompt"])))
    if not any(skipped for _, _, skipped, _ in rows):
        return []
    off = next((f for mode, f, _, _ in rows if mode == "off" and f.get("n")), None)
    out = ["", f"Only the hand-offs whose caller was already in the engine's line when the "
           f"agent was free (the engine's free → offer ≤ {1000 * IN_LINE_S:.0f} ms; the "
           "others dialled a caller still entering):", "",
           "| agent hung up → Dial (ms) | hand-offs | left out | in a prompt | p50 | p95 | "
           "p99 | max | p99 ÷ off | max ÷ off |", "|---|---:|---:|---:|---:|---:|---:|---:|"
           "---:|---:|"]
    for mode, f, skipped, prompt in rows:
        ratios = [_ratio(f.get(k, math.nan), off[k]) if off else "–" for k in ("p99", "max")]
        out.append(f"| announcements {mode} | {f.get('n', 0)} | {skipped} | {prompt} | "
                   f"{_ms(f.get('p50'))} | {_ms(f.get('p95'))} | {_ms(f.get('p99'))} | "
                   f"{_ms(f.get('max'))} | {ratios[0]} | {ratios[1]} |")
    return out


def _ratio(a: float, b: float) -> str:
    return "–" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}×"


def markdown(results: dict[str, Any]) -> str:
    load = Load(**results["load"])
    m = results["machine"]
    head = (f"{load.agents} agents, talk lognormal mean {load.talk_mean:g} s sd "
            f"{load.talk_sd:g} s, wrap-up {load.wrap_up:g} s, phone rings "
            f"{PHONE_RING:g} s; {results['calls']} callers"
            + (f" ({load.backlog} at the start)" if load.backlog else "")
            + f", Poisson at {results['rate']:.3f}/s (target occupancy "
            f"{load.occupancy:.0%}) for {load.minutes:g} min, seed {load.seed}. "
            f"{m['nproc']} CPU ({m['cpu']}), Python {m['python']}, {m['sipp']}; "
            f"{results['started']}; {results['seconds']:.0f} s.")
    lines = [head, ""]
    if results["kind"] == "accuracy":
        (r,) = results["runs"]
        e, n = r["ewt"], r["naive"]
        lines += [
            f"{r['answered']} of {r['calls']} callers answered ({r['sipp_failed']} SIPp "
            f"failures, {r['fallback']} through the app_queue fallback); {r['waited']} "
            f"were still waiting at the first replay after they joined (replay "
            f"{_ms(r['replay_lag_ms'].get('p50'))} ms after joining at the median, "
            f"{_ms(r['replay_lag_ms'].get('max'))} ms at most), {r['unsure']} of them "
            f"unsure; median wait {_s(r['median_wait_s'])}. The engine's waits agree with "
            f"SIPp's to {_ms(r['wait_engine_vs_sipp_ms'].get('p50'))} ms at the median.",
            "",
            "| | EWT (engine) | naive |", "|---|---:|---:|",
            f"| callers | {e.get('n', 0)} | {n.get('n', 0)} |",
            f"| median \\|error\\| | {_s(e.get('median_abs_s'))} | "
            f"{_s(n.get('median_abs_s'))} |",
            f"| **per caller \\|error\\| ÷ wait** (waits ≥ {r['min_wait_s']:.1f} s: "
            f"{e.get('n_rel', 0)}) | **{_pct(e.get('per_caller_rel'))}** | "
            f"**{_pct(n.get('per_caller_rel'))}** |",
            f"| **p90 per caller \\|error\\| ÷ wait** (the same callers) | "
            f"**{_pct(e.get('p90_rel'))}** | **{_pct(n.get('p90_rel'))}** |",
            f"| **within ±20 %** (the same callers) | **{_pct(e.get('within_20pct_rel'))}** | "
            f"**{_pct(n.get('within_20pct_rel'))}** |",
            f"| within ±20 % (every caller who waited) | {_pct(e.get('within_20pct'))} | "
            f"{_pct(n.get('within_20pct'))} |",
            f"| median \\|error\\| ÷ median wait | {_pct(e.get('abs_over_median_wait'))} | "
            f"{_pct(n.get('abs_over_median_wait'))} |",
            f"| within ±30 % | {_pct(e.get('within_30pct'))} | "
            f"{_pct(n.get('within_30pct'))} |",
            f"| within ±30 s | {_pct(e.get('within_30s'))} | {_pct(n.get('within_30s'))} |",
            f"| within ±{r['within_s']:.1f} s (30 s of 188) | "
            f"{_pct(e.get('within_scaled'))} | {_pct(n.get('within_scaled'))} |",
            f"| mean signed error (told − actual) | {_s(e.get('mean_signed_s'))} | "
            f"{_s(n.get('mean_signed_s'))} |",
            "",
            f"The engine's `acd_ewt_error_seconds` over the run: {r['metric'].get('n', 0):.0f} "
            f"callers, mean \\|error\\| {_s(r['metric'].get('mean_abs_s'))}.",
        ]
        return "\n".join(lines)
    lines += ["| agent hung up → Dial (ms) | hand-offs | in a prompt | p50 | p95 | p99 | "
              "max | prompt started after the hang-up |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        f = r["free_to_dial_ms"]
        lines.append(f"| announcements {r['mode']} | {f.get('n', 0)} | {r['in_prompt']} | "
                     f"{_ms(f.get('p50'))} | {_ms(f.get('p95'))} | {_ms(f.get('p99'))} | "
                     f"{_ms(f.get('max'))} | {r['prompt_after_hangup']} |")
    for r in results["runs"]:
        f = r["free_to_dial_in_prompt_ms"]
        if f.get("n"):
            lines.append(f"| {r['mode']}: callers in a prompt | {f['n']} | {f['n']} | "
                         f"{_ms(f['p50'])} | {_ms(f['p95'])} | {_ms(f['p99'])} | "
                         f"{_ms(f['max'])} | |")
    off = next((r for r in results["runs"] if r["mode"] == "off"), None)
    if off is not None and off["free_to_dial_ms"].get("n"):
        lines += [""]
        for r in results["runs"]:
            if r is off or not r["free_to_dial_ms"].get("n"):
                continue
            f, o = r["free_to_dial_ms"], off["free_to_dial_ms"]
            lines.append(f"Announcements {r['mode']} ÷ off, same run: p50 "
                         f"{_ratio(f['p50'], o['p50'])}, p95 {_ratio(f['p95'], o['p95'])}, "
                         f"p99 {_ratio(f['p99'], o['p99'])}, max "
                         f"{_ratio(f['max'], o['max'])}, mean "
                         f"{_ratio(f['mean'], o['mean'])}.")
    lines += in_line_table(results["runs"])
    lines += ["", "| engine's side (ms, p50 / p99 / max) | hang-up → agent free | "
              "free → offer | offer → Dial | offer → Dial, caller in a prompt |",
              "|---|---:|---:|---:|---:|"]
    for r in results["runs"]:
        cells = []
        for key in ("engine_hangup_to_free_ms", "engine_free_to_offer_ms",
                    "engine_offer_to_dial_ms", "engine_offer_to_dial_in_prompt_ms"):
            f = r[key]
            cells.append(f"{_ms(f.get('p50'))} / {_ms(f.get('p99'))} / {_ms(f.get('max'))}"
                         if f.get("n") else "–")
        lines.append(f"| announcements {r['mode']} | " + " | ".join(cells) + " |")
    lines += ["", "Calls answered: " + ", ".join(
        f"{r['mode']} {r['answered']}/{r['calls']} ({r['sipp_failed']} SIPp failures, "
        f"{r['fallback']} fallback)" for r in results["runs"])]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[str, Load, Path]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ewt_e2e",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("accuracy", "announce", "report"),
                    help="report: the report again from --out's results.json")
    ap.add_argument("--quick", action="store_true", help="a smoke run (≈ 1 min per rig)")
    ap.add_argument("--agents", type=int)
    ap.add_argument("--minutes", type=float, help="minutes of arrivals")
    ap.add_argument("--talk-mean", type=float)
    ap.add_argument("--talk-sd", type=float)
    ap.add_argument("--wrap-up", type=float)
    ap.add_argument("--occupancy", type=float)
    ap.add_argument("--backlog", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.kind == "accuracy":
        base = ACCURACY_QUICK if args.quick else ACCURACY
    else:
        base = ANNOUNCE_QUICK if args.quick else ANNOUNCE
    changes = {k: v for k, v in (
        ("agents", args.agents), ("minutes", args.minutes), ("talk_mean", args.talk_mean),
        ("talk_sd", args.talk_sd), ("wrap_up", args.wrap_up),
        ("occupancy", args.occupancy), ("backlog", args.backlog), ("seed", args.seed))
        if v is not None}
    load = Load(**{**asdict(base), **changes})
    out = args.out or REPO_ROOT / "artifacts" / f"ewt-e2e-{args.kind}"
    return args.kind, load, out


def main(argv: Sequence[str] | None = None) -> int:
    kind, load, out = parse_args(argv)
    if kind == "report":
        results = json.loads((out / "results.json").read_text())
        (out / "results.md").write_text(markdown(results) + "\n")
        print(markdown(results))
        return 0
    print(f"ewt e2e {kind}: {load.calls} callers per rig at {load.rate:.3f}/s -> {out}",
          file=sys.stderr)
    results = asyncio.run(run(kind, load, out))
    print(markdown(results))
    bad = [r["mode"] for r in results["runs"] if r["answered"] != r["calls"]]
    if bad:
        print(f"NOT every call was answered in: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
