"""Engine capacity benchmark: one real ``acd serve`` process under simulated Asterisks.

What runs (three kinds of processes, so the engine's one core is what is measured):

* **the engine** — ``acd serve -c <generated config>`` through
  :mod:`benchmarks.engine_proc` (the product's own ``app.cli.main`` in that process, plus
  a raised ``RLIMIT_NOFILE`` and a garbage-collector pause recorder), with the HTTP API
  (a supervisor token from the environment);
* **load generators** — ``python -m benchmarks.loadgen`` workers, each playing whole
  Asterisk servers (AMI server, callers over FastAGI, agents' phones);
* **this coordinator** — writes the config, starts and stops everything, reads the
  engine's ``/proc/<pid>`` (RSS, CPU), scrapes ``/metrics`` and times the API.

Scenarios:

``levels`` (``--levels 1000:100,10000:1000,50000:5000``; ``held:agents``), a fresh
engine per level:

1. *fill*: ``held`` callers arrive (``--fill-rate``/s) while every agent's phone is
   unregistered, so all of them wait in queue: engine RSS per held caller, how the
   arrivals went (setup latency: connect → the engine put the caller on hold);
2. *idle API*: ``--api-requests`` sequential GETs each of ``/api/v1/queues``,
   ``/api/v1/calls`` and ``/metrics``;
3. *churn*: ``agents`` phones register and take calls (ring ``--ring`` s, talk
   ``--talk`` s, wrap-up ``--wrap-up``); each caller taken off the queue is replaced by a
   new arrival, so ``held`` stay waiting; measured for ``--churn`` s: agent free → next
   ``EXEC Dial`` for that agent (at the generator), event-apply times (the engine's
   ``acd_routing_decision_seconds`` histogram), engine CPU;
4. *churn + API*: the same while the API probe runs again (how a polling wallboard
   delays routing).

``rate`` (``--rate-steps``): arrivals/s in steps of ``--step`` s, callers giving up after
``--patience`` s, ``--rate-agents`` agents serving some; a step holds when no session
failed, setup p99 ≤ ``--setup-slo`` and the achieved rate is ≥ 95 % of the offered one.
Then ``--bursts``: that many callers at once.

Examples (benchmarks/RESULTS.md has the exact commands behind its figures)::

    python -m benchmarks.engine_capacity --quick                  # ~15 s smoke
    python -m benchmarks.engine_capacity --scenarios levels --levels 1000:100,10000:1000
    python -m benchmarks.engine_capacity --scenarios rate --rate-steps 250,500,750,1000
    python -m benchmarks.engine_capacity --scenarios rate --rate-steps 500 --py-spy
    python -m benchmarks.engine_capacity --scenarios levels --levels 3000:0 --tracemalloc 4
    python -m benchmarks.engine_capacity --levels 50000:5000 --wait-quiet 600   # big host

One engine process holds one socket per waiting caller: a level needs
``held + agents`` file descriptors in the engine (and in the generator workers between
them). Levels above the hard ``RLIMIT_NOFILE`` of this shell (``ulimit -Hn``; raising it
needs CAP_SYS_RESOURCE) are reported as not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "ACD_BENCH_TOKEN"
QUEUES = [
    # id, skill, min level, share of callers, DID, stage (after s, level delta)
    ("consult", "consult", 2, 0.5, "4008001001", (45.0, 1)),
    ("repair", "repair", 2, 0.3, "4008001002", (45.0, 1)),
    ("complaint", "complaint", 3, 0.2, "4008001003", (60.0, 2)),
]
#: Outcomes of a caller that mean the engine did not serve it properly.
FAILURES = ("connect_timeout", "connect_failed", "refused", "setup_dropped",
            "hangup_not_closed", "double_offers", "bad_dials", "agi_unexpected",
            "ami_kicked", "dropped_during_dial")
API_PATHS = ("/api/v1/queues", "/api/v1/calls", "/metrics")
FD_MARGIN = 300


# ------------------------------------------------------------------------------- options


@dataclass
class Options:
    """Everything a run needs (the command line, or ``--quick``'s small values)."""

    scenarios: list[str] = field(default_factory=lambda: ["levels", "rate"])
    levels: list[tuple[int, int]] = field(
        default_factory=lambda: [(1000, 100), (10000, 1000), (50000, 5000)])
    servers: int = 2
    procs: int = 2
    fill_rate: float = 500.0
    arrival: str = "poisson"
    ring: float = 0.5
    talk: float = 60.0
    wrap_up: float = 0.0
    login_spread: float = 0.0
    churn: float = 60.0
    api_requests: int = 50
    rate_steps: list[float] = field(
        default_factory=lambda: [250, 500, 750, 1000, 1250, 1500, 2000])
    step: float = 15.0
    patience: float = 3.0
    rate_agents: int = 200
    rate_talk: float = 3.0
    bursts: list[int] = field(default_factory=lambda: [500, 1000, 2000])
    setup_slo: float = 1.0
    env_timeout: float = 5.0
    events: str = "filtered"
    engine_log_level: str = "INFO"
    explain_offers: bool = True
    py_spy: bool = False
    tracemalloc: int = 0
    engine_nofile: int = 0
    fill_timeout: float = 0.0
    wait_quiet: float = 0.0
    out: Path | None = None
    json_path: Path | None = None
    seed: int = 1
    quick: bool = False


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """The command line as :class:`Options` (``--quick`` sets small values)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.engine_capacity",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Capacity of one acd serve process: held callers, routing latency, "
                    "arrival rate, API latency, under simulated Asterisk servers "
                    "(FastAGI callers, AMI, agents' phones).",
        epilog="Scenarios:" + (__doc__ or "").split("Scenarios:", 1)[-1])
    p.add_argument("--scenarios", default="levels,rate",
                   help="comma list of: levels, rate (default: both)")
    p.add_argument("--levels", default="1000:100,10000:1000,50000:5000",
                   help="held callers:agents for each level, e.g. 1000:100,50000:5000")
    p.add_argument("--servers", type=int, default=2, help="simulated Asterisk servers")
    p.add_argument("--procs", type=int, default=2,
                   help="load-generator processes (servers are spread over them)")
    p.add_argument("--fill-rate", type=float, default=500.0,
                   help="arrivals/s while filling a level")
    p.add_argument("--arrival", choices=("poisson", "fixed"), default="poisson",
                   help="arrival process (inter-arrival times)")
    p.add_argument("--ring", type=float, default=0.5,
                   help="mean ring time before an agent answers (s, uniform 0..2×)")
    p.add_argument("--talk", type=float, default=60.0,
                   help="mean talk time (s, exponential) in the churn phase")
    p.add_argument("--wrap-up", type=float, default=0.0, help="queues' wrap_up (s)")
    p.add_argument("--login-spread", type=float, default=0.0,
                   help="seconds over which the agents' phones register (default: "
                        "agents/200, at least 5: each first call is replaced by a new "
                        "arrival, so this keeps that wave of arrivals at 200/s)")
    p.add_argument("--churn", type=float, default=60.0,
                   help="seconds of churn measured at each level")
    p.add_argument("--api-requests", type=int, default=50,
                   help="requests per API path in each probe")
    p.add_argument("--rate-steps", default="250,500,750,1000,1250,1500,2000",
                   help="arrivals/s of each step of the rate scenario")
    p.add_argument("--step", type=float, default=15.0, help="seconds per rate step")
    p.add_argument("--patience", type=float, default=3.0,
                   help="rate scenario: seconds a caller waits before hanging up")
    p.add_argument("--rate-agents", type=int, default=200,
                   help="rate scenario: agents serving calls")
    p.add_argument("--rate-talk", type=float, default=3.0,
                   help="rate scenario: mean talk time (s)")
    p.add_argument("--bursts", default="500,1000,2000",
                   help="rate scenario: callers arriving at once, after the steps")
    p.add_argument("--setup-slo", type=float, default=1.0,
                   help="a rate step holds while setup p99 stays below this (s)")
    p.add_argument("--env-timeout", type=float, default=5.0,
                   help="fastagi.env_timeout of the engine (s)")
    p.add_argument("--events", choices=("filtered", "minimal"), default="filtered",
                   help="AMI events pushed: what the shipped manager.conf lets through, "
                        "or only DeviceStateChange and DialEnd")
    p.add_argument("--engine-log-level", default="INFO",
                   help="the engine's --log-level (INFO as shipped)")
    p.add_argument("--no-explain-offers", action="store_true",
                   help="engine.explain_offers: false")
    p.add_argument("--py-spy", action="store_true",
                   help="profile the engine with py-spy during each level's churn")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                   help="debug run: trace the engine's allocations and write the growth "
                        "per held caller (slow; use small levels)")
    p.add_argument("--engine-nofile", type=int, default=0,
                   help="the engine's RLIMIT_NOFILE soft limit (default: what the level "
                        "needs); lower it to see what callers get beyond it")
    p.add_argument("--fill-timeout", type=float, default=0.0,
                   help="give up filling a level after this many seconds "
                        "(default: 3× the planned fill time + 60 s)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="shared machine: before each level or scenario, wait up to this "
                        "long for 10 s in which other processes use < 25%% of a core")
    p.add_argument("--out", type=Path, help="directory for logs, configs and profiles "
                   "(default: a new temporary directory)")
    p.add_argument("--json", type=Path, dest="json_path", help="write results as JSON")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: a few hundred callers, seconds per phase (< 20 s)")
    a = p.parse_args(argv)
    o = Options(
        scenarios=[s for s in a.scenarios.split(",") if s],
        levels=[_level(x) for x in a.levels.split(",") if x],
        servers=a.servers, procs=max(1, min(a.procs, a.servers)),
        fill_rate=a.fill_rate, arrival=a.arrival, ring=a.ring, talk=a.talk,
        wrap_up=a.wrap_up, login_spread=a.login_spread, churn=a.churn,
        api_requests=a.api_requests,
        rate_steps=[float(x) for x in a.rate_steps.split(",") if x], step=a.step,
        patience=a.patience, rate_agents=a.rate_agents, rate_talk=a.rate_talk,
        bursts=[int(x) for x in a.bursts.split(",") if x], setup_slo=a.setup_slo,
        env_timeout=a.env_timeout, events=a.events, engine_log_level=a.engine_log_level,
        explain_offers=not a.no_explain_offers, py_spy=a.py_spy, tracemalloc=a.tracemalloc,
        engine_nofile=a.engine_nofile, fill_timeout=a.fill_timeout,
        wait_quiet=a.wait_quiet, out=a.out,
        json_path=a.json_path, seed=a.seed, quick=a.quick)
    if a.quick:
        o.levels, o.fill_rate, o.ring, o.talk, o.login_spread = [(200, 20)], 200.0, 0.05, \
            0.3, 0.3
        o.churn, o.api_requests, o.rate_steps, o.step = 1.5, 3, [150.0], 1.0
        o.patience, o.rate_agents, o.rate_talk, o.bursts = 0.5, 20, 0.3, [100]
        o.procs = 1
    return o


def _level(text: str) -> tuple[int, int]:
    """``held:agents`` (agents default to a tenth of held)."""
    held, _, agents = text.partition(":")
    return int(held), int(agents or max(1, int(held) // 10))


# ------------------------------------------------------------------------------ figures


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def summary(values: Sequence[float], scale: float = 1e3) -> dict[str, float]:
    """n, p50, p90, p99, max (in ms with the default scale)."""
    return {"n": len(values), "p50": pct(values, 50) * scale, "p90": pct(values, 90) * scale,
            "p99": pct(values, 99) * scale,
            "max": (max(values) * scale) if values else math.nan}


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text exposition → {(name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        with contextlib.suppress(ValueError):
            out[(m.group(1), labels)] = float(m.group(3))
    return out


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def apply_histogram(before: Metrics, after: Metrics,
                    name: str = "acd_routing_decision_seconds") -> dict[str, dict[str, float]]:
    """Per event type (and ``all``): count, mean, p50, p99 (ms) of the apply-time
    histogram between two scrapes, interpolated within buckets as
    ``histogram_quantile`` does (so only as fine as the buckets)."""
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = defaultdict(float)
    for (metric, labels), value in after.items():
        lab = dict(labels)
        event = lab.get("event", "")
        if metric == f"{name}_bucket":
            le = math.inf if lab["le"] == "+Inf" else float(lab["le"])
            prev = before.get((metric, labels), 0.0)
            buckets.setdefault(event, {})[le] = value - prev
        elif metric == f"{name}_sum":
            sums[event] += value - before.get((metric, labels), 0.0)
    total: dict[float, float] = defaultdict(float)
    for per in buckets.values():
        for le, v in per.items():
            total[le] += v
    buckets["all"] = dict(total)
    sums["all"] = sum(v for k, v in sums.items() if k != "all")
    out: dict[str, dict[str, float]] = {}
    for event, per in buckets.items():
        bounds = sorted(per)
        n = per.get(math.inf, 0.0)
        if n <= 0:
            continue
        out[event] = {"n": n, "mean_ms": 1e3 * sums[event] / n,
                      "p50_ms": 1e3 * _hist_q(bounds, per, 0.50),
                      "p99_ms": 1e3 * _hist_q(bounds, per, 0.99)}
    return out


def _hist_q(bounds: list[float], cumulative: dict[float, float], q: float) -> float:
    """The q-quantile of a cumulative histogram, linear within the bucket."""
    n = cumulative[math.inf]
    rank = q * n
    lower, below = 0.0, 0.0
    for b in bounds:
        c = cumulative[b]
        if c >= rank:
            if math.isinf(b):
                return lower  # beyond the last bucket: its bound is all we know
            width = c - below
            return lower + (b - lower) * ((rank - below) / width if width else 1.0)
        lower, below = b, c
    return lower


def metric_sum(m: Metrics, name: str) -> float:
    """The sum of a metric over all its label sets."""
    return sum(v for (metric, _), v in m.items() if metric == name)


# ------------------------------------------------------------------------------ processes


def proc_rss_kb(pid: int) -> int:
    """Resident set size of a process (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_status(pid: int, key: str) -> int:
    """One numeric field of ``/proc/<pid>/status`` (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_pressure_us() -> int:
    """PSI: microseconds some runnable task waited for a CPU (0 if not available)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(line.rsplit("total=", 1)[1])
    return 0


class Contention:
    """How much of the machine others used during a window (the machine is shared):
    CPU busy outside the engine, the generators and this coordinator, and CPU pressure
    (share of the time some task waited for a core)."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.t = time.monotonic()
        self.busy = machine_busy_s()
        self.ours = self._ours()
        self.psi = cpu_pressure_us()

    def _ours(self) -> float:
        """CPU seconds of the engine, the generators and this process."""
        total = self.rig.worker_cpu_s() + proc_cpu_s(os.getpid())
        if self.rig.engine is not None:
            total += self.rig.engine.cpu_s()
        return total

    def result(self) -> dict[str, float]:
        """Others' CPU and CPU pressure since this object was made."""
        dt = max(1e-6, time.monotonic() - self.t)
        others = (machine_busy_s() - self.busy) - (self._ours() - self.ours)
        return {"other_cpu_pct": round(100 * max(0.0, others) / dt, 1),
                "cpu_pressure_pct": round((cpu_pressure_us() - self.psi) / dt / 1e4, 1)}


class Worker:
    """One load-generator process, driven by JSON lines."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, index: int, log: Path) -> Worker:
        """Start one ``python -m benchmarks.loadgen`` process."""
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.loadgen", cwd=REPO_ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, limit=1 << 26, start_new_session=True)
        return cls(index, proc)

    async def call(self, **cmd: Any) -> dict[str, Any]:
        """Send one command; its reply (RuntimeError on an error reply)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"load generator {self.index} exited")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"load generator {self.index}: {reply['error']}")
        return reply

    async def close(self) -> None:
        """Ask the process to close; kill it if it does not."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call(op="close"), 20)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Engine:
    """The ``acd serve`` process under test."""

    def __init__(self, proc: asyncio.subprocess.Process, agi_port: int, api_port: int,
                 out: Path) -> None:
        self.proc = proc
        self.agi_port = agi_port
        self.api_port = api_port
        self.out = out

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(cls, config: Path, out: Path, env: dict[str, str], nofile: int,
                    log_level: str, tracemalloc_frames: int = 0) -> Engine:
        """Start ``acd serve`` and wait for its FastAGI and API ports."""
        cmd = [sys.executable, "-m", "benchmarks.engine_proc", "--nofile", str(nofile),
               "--diag", str(out / "engine")]
        if tracemalloc_frames:
            cmd += ["--tracemalloc", str(tracemalloc_frames)]
        cmd += ["--", "--log-level", log_level, "serve", "-c", str(config)]
        stdout_path = out / "engine.out"
        with stdout_path.open("wb") as so, (out / "engine.log").open("ab") as se:
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=REPO_ROOT, env=env, stdout=so, stderr=se,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        pattern = re.compile(r"serving FastAGI on [^:]+:(\d+), API on http://[^:]+:(\d+)")
        # tracing every allocation makes start-up (phone-number data, rosters) minutes
        deadline = time.monotonic() + (600 if tracemalloc_frames else 60)
        while time.monotonic() < deadline:
            m = pattern.search(stdout_path.read_text(errors="replace"))
            if m:
                return cls(proc, int(m.group(1)), int(m.group(2)), out)
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise RuntimeError("acd serve did not start; see "
                           f"{out / 'engine.log'}:\n"
                           + (out / "engine.log").read_text(errors="replace")[-3000:])

    def rss_mb(self) -> float:
        """The engine's resident set size (MB)."""
        return proc_rss_kb(self.pid) / 1024

    def cpu_s(self) -> float:
        """CPU seconds the engine used so far."""
        return proc_cpu_s(self.pid)

    async def gc_dump(self) -> dict[str, Any]:
        """Ask the process for its GC summary (SIGUSR1) and read it."""
        path = self.out / "engine.gc.json"
        before = path.stat().st_mtime_ns if path.exists() else 0
        os.kill(self.pid, signal.SIGUSR1)
        for _ in range(200):
            await asyncio.sleep(0.05)
            if path.exists() and path.stat().st_mtime_ns != before:
                data: dict[str, Any] = json.loads(path.read_text())
                return data
        return {}

    async def tracemalloc_dump(self, index: int) -> dict[str, Any]:
        """Ask for a tracemalloc snapshot (SIGUSR2) and read its file."""
        path = self.out / f"engine.tm{index}.json"
        os.kill(self.pid, signal.SIGUSR2)
        for _ in range(6000):
            await asyncio.sleep(0.1)
            if path.exists():
                data: dict[str, Any] = json.loads(path.read_text())
                return data
        return {}

    async def stop(self) -> float:
        """SIGTERM (the engine hands waiting callers back and drains), then SIGKILL.
        Returns the seconds it took."""
        started = time.monotonic()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return time.monotonic() - started

    def log_problems(self) -> dict[str, Any]:
        """Errors and warnings in the engine's log."""
        text = (self.out / "engine.log").read_text(errors="replace")
        lines = text.splitlines()
        bad = [ln for ln in lines if " ERROR " in ln or " CRITICAL " in ln
               or "Traceback" in ln]
        warn = Counter(re.sub(r"\d+", "N", ln.split(": ", 1)[-1])[:100]
                       for ln in lines if " WARNING " in ln)
        return {"errors": len(bad), "first_errors": bad[:5],
                "warnings": dict(warn.most_common(8)), "lines": len(lines)}


# ------------------------------------------------------------------------------- the rig


def engine_config(opts: Options, agents: int, ports: dict[str, int],
                  secret_envs: dict[str, str]) -> dict[str, Any]:
    """The ACD config of a run: the simulated servers, three queues with a stage each,
    ``agents`` agents spread over the servers, the API with a supervisor token."""
    rnd = random.Random(opts.seed)
    servers = [f"ast{i + 1}" for i in range(opts.servers)]
    agent_rows = []
    for i in range(agents):
        skills = {skill: rnd.randint(1, 5) for _, skill, *_ in QUEUES
                  if rnd.random() < {"consult": 0.8, "repair": 0.6}.get(skill, 0.35)}
        if not skills:
            skills = {"consult": rnd.randint(2, 5)}
        agent_rows.append({"id": f"a{i + 1:05d}", "endpoint": f"agent{i + 1:05d}",
                           "skills": skills, "server": servers[i % len(servers)]})
    return {
        "asterisk": {"servers": [
            {"name": name, "ami": {"host": "127.0.0.1", "port": ports[name],
                                   "username": "acd", "secret_env": secret_envs[name],
                                   "ping_interval": 10}}
            for name in servers]},
        # No per-peer rate limit: the load generators connect from loopback thousands
        # of times a second; what is measured is the engine.
        "fastagi": {"host": "127.0.0.1", "port": 0, "env_timeout": opts.env_timeout,
                    "limits": {"peer_rate": 0}},
        "engine": {"ring_timeout": 15, "explain_offers": opts.explain_offers},
        "queues": [{"id": qid, "name": qid.title(), "skills": {skill: level},
                    "sl_target": 20, "wrap_up": opts.wrap_up,
                    "stages": [{"after": after, "min_level_delta": delta}]}
                   for qid, skill, level, _, _, (after, delta) in QUEUES],
        "default_queue": QUEUES[0][0],
        "dids": {did: qid for qid, _, _, _, did, _ in QUEUES},
        "agents": agent_rows,
        "api": {"host": "127.0.0.1", "port": 0,
                "tokens": [{"name": "bench", "role": "supervisor", "env": TOKEN_ENV}]},
    }


class Rig:
    """One engine and its load generators for one scenario (or one level)."""

    def __init__(self, opts: Options, out: Path, name: str) -> None:
        self.opts = opts
        self.out = out / name
        self.out.mkdir(parents=True, exist_ok=True)
        self.workers: list[Worker] = []
        self.engine: Engine | None = None
        self.servers = [f"ast{i + 1}" for i in range(opts.servers)]
        self.token = secrets.token_urlsafe(32)
        self.http: Any = None
        self.agents = 0

    def worker_of(self, server_index: int) -> int:
        """The worker that plays server number ``server_index``."""
        return server_index % len(self.workers)

    async def start(self, agents: int, nofile: int) -> None:
        """Start the generators (their AMI servers), write the config, start the engine,
        and wait until it is ready."""
        import httpx

        opts = self.opts
        self.agents = agents
        secrets_by_server = {s: secrets.token_urlsafe(16) for s in self.servers}
        # The first server's secret is read from ACD_AMI_SECRET by ``acd serve`` (see
        # app/cli.py); the others from their own secret_env.
        secret_envs = {s: "ACD_AMI_SECRET" if i == 0 else f"ACD_BENCH_AMI_SECRET_{i + 1}"
                       for i, s in enumerate(self.servers)}
        # agents and servers first, as the config will name them
        ports: dict[str, int] = {}
        config = engine_config(opts, agents, {s: 0 for s in self.servers}, secret_envs)
        for w in range(opts.procs):
            self.workers.append(await Worker.start(w, self.out / f"loadgen{w}.log"))
        for w, worker in enumerate(self.workers):
            mine = [s for i, s in enumerate(self.servers) if self.worker_of(i) == w]
            reply = await worker.call(
                op="setup", seed=opts.seed * 100 + w,
                servers=[{"name": s, "secret": secrets_by_server[s]} for s in mine],
                agents=[{"id": a["id"], "endpoint": a["endpoint"], "server": a["server"]}
                        for a in config["agents"] if a["server"] in mine],
                dids=[(did, share) for _, _, _, share, did, _ in QUEUES],
                ring=opts.ring, talk=opts.talk, events=opts.events,
                local_addrs=[f"127.0.{w + 1}.{j}" for j in range(2, 10)])
            ports.update(reply["ami"])
        config = engine_config(opts, agents, ports, secret_envs)
        cfg_path = self.out / "acd.yaml"
        cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{TOKEN_ENV: self.token})
        for s in self.servers:
            env[secret_envs[s]] = secrets_by_server[s]
        self.engine = await Engine.start(cfg_path, self.out, env, nofile,
                                         opts.engine_log_level, opts.tracemalloc)
        for worker in self.workers:
            await worker.call(op="target", host="127.0.0.1", port=self.engine.agi_port)
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.engine.api_port}",
            headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        """AMI of every server logged in and resynced, and /readyz green."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = await self.stats()
            logged = all(n >= 1 for n in st["ami_sessions"].values())
            listed = all(n >= 1 for n in st["device_state_lists"].values())
            ready = False
            with contextlib.suppress(Exception):
                ready = (await self.http.get("/readyz")).status_code == 200
            if logged and listed and ready:
                await asyncio.sleep(0.5)  # the snapshot goes through the inbox
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("engine not ready (AMI not resynced or /readyz not 200)")

    async def close(self) -> dict[str, Any]:
        """Stop the engine (its stop time, its log's problems), then the generators."""
        info: dict[str, Any] = {}
        if self.http is not None:
            await self.http.aclose()
        if self.engine is not None:
            info["stop_s"] = round(await self.engine.stop(), 2)
            info["log"] = self.engine.log_problems()
        for worker in self.workers:
            await worker.close()
        return info

    # -- generators ----------------------------------------------------------------

    def _shares(self, total: float) -> list[float]:
        """Split a count or rate over the workers by how many servers each plays."""
        n = len(self.servers)
        per = Counter(self.worker_of(i) for i in range(n))
        return [total * per[w] / n for w in range(len(self.workers))]

    async def arrive(self, count: int | None, rate: float, *, duration: float | None = None,
                     patience: float | None = None) -> None:
        """Start arrivals in every worker (count and rate split by their servers)."""
        counts: list[int | None] = ([round(c) for c in self._shares(count)]
                                    if count is not None else [None] * len(self.workers))
        if count is not None:
            counts[0] = (counts[0] or 0) + count - sum(c or 0 for c in counts)
        rates = self._shares(rate) if math.isfinite(rate) else [math.inf] * len(self.workers)
        await asyncio.gather(*(
            w.call(op="arrive", count=c, rate=r if math.isfinite(r) else 1e12,
                   duration=duration, process=self.opts.arrival, patience=patience)
            for w, c, r in zip(self.workers, counts, rates, strict=True)))

    async def each(self, **cmd: Any) -> list[dict[str, Any]]:
        """The same command to every worker; their replies."""
        return list(await asyncio.gather(*(w.call(**cmd) for w in self.workers)))

    async def stats(self, reset: bool = False, samples: bool = False) -> dict[str, Any]:
        """The workers' reports, summed (samples concatenated)."""
        reports = await self.each(op="stats", reset=reset, samples=samples)
        out: dict[str, Any] = {"counts": Counter(), "phases": Counter(),
                               "arrivals_running": 0, "ami_sessions": {},
                               "device_state_lists": {}, "registered": 0, "samples": {}}
        for r in reports:
            out["counts"].update(r["counts"])
            out["phases"].update(r["phases"])
            out["arrivals_running"] += r["arrivals_running"]
            out["ami_sessions"].update(r["ami_sessions"])
            out["device_state_lists"].update(r["device_state_lists"])
            out["registered"] += r["registered"]
            for k, v in r.get("samples", {}).items():
                out["samples"].setdefault(k, []).extend(v)
        return out

    def worker_cpu_s(self) -> float:
        """CPU seconds the load generators used so far."""
        total = 0.0
        for w in self.workers:
            with contextlib.suppress(OSError):
                total += proc_cpu_s(w.proc.pid)
        return total

    # -- engine probes -----------------------------------------------------------------

    async def scrape(self) -> Metrics:
        """The engine's ``/metrics``, parsed."""
        r = await self.http.get("/metrics")
        r.raise_for_status()
        return parse_metrics(r.text)

    async def probe_api(self, n: int) -> dict[str, dict[str, float]]:
        """``n`` sequential GETs of each API path, interleaved; latency in ms."""
        lat: dict[str, list[float]] = {p: [] for p in API_PATHS}
        size: dict[str, int] = {}
        errors: Counter[str] = Counter()
        for _ in range(n):
            for path in API_PATHS:
                t = time.perf_counter()
                r = await self.http.get(path)
                lat[path].append(time.perf_counter() - t)
                size[path] = len(r.content)
                if r.status_code != 200:
                    errors[f"{path} {r.status_code}"] += 1
        out = {p: {**summary(v), "bytes": size.get(p, 0)} for p, v in lat.items()}
        if errors:
            out["errors"] = dict(errors)
        return out

    async def wait_for(self, predicate: Any, limit: float, every: float = 0.2,
                       ) -> dict[str, Any]:
        """Poll the workers' stats until ``predicate(stats)`` or ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while True:
            st = await self.stats()
            if predicate(st) or time.monotonic() > deadline:
                return st
            await asyncio.sleep(every)


def _failures(counts: Counter[str] | dict[str, int]) -> dict[str, int]:
    """The non-zero counters that mean a caller was not served properly."""
    return {k: int(v) for k, v in counts.items()
            if (k in FAILURES or k.startswith("connect_error")) and v}


def _py_spy_exe() -> str | None:
    """py-spy beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def _py_spy(pid: int, seconds: float, out: Path, name: str = "churn",
                  ) -> dict[str, Any]:
    """Sample the engine with py-spy (raw collapsed stacks) and rank functions."""
    exe = _py_spy_exe()
    if exe is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    raw = out / f"py-spy-{name}.txt"
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
        "--nonblocking", "--format", "raw", "--output", str(raw),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if not raw.exists():
        return {"error": err.decode(errors="replace")[-500:]}
    return rank_stacks(raw.read_text(errors="replace").splitlines())


#: Where a sample's time goes: the first of these found walking from the leaf to the
#: root names its category (order matters: logging inside apply is "logging").
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("garbage collector (gc.collect)", ("gc.collect", "(gc)")),
    ("event logging (json.dumps, logging)", ("logging/__init__", "json/encoder",
                                             "_log_decision", "json/__init__")),
    ("caller region lookup (phonenumbers)", ("routing/regions.py", "phonenumbers/")),
    ("routing core: EngineCore.apply", ("EngineCore.apply",)),
    ("API and /metrics (FastAPI, pydantic, collector)", ("api/", "starlette/", "fastapi/",
                                                          "pydantic", "prometheus_client/",
                                                          "uvicorn/", "h11/")),
    ("store writer, live figures, publish hooks", ("acd/runtime/store.py",
                                                    "acd/domain/figures.py",
                                                    "Engine._notify")),
    ("AMI client (parse events)", ("ami_client.py", "acd/protocol/ami.py")),
    ("socket send (transport.write)", ("_SelectorSocketTransport.write",)),
    ("accept, new transports, close", ("_accept_connection", "_make_socket_transport",
                                       "socket._real_close", "_call_connection_lost",
                                       "socket.accept")),
    ("FastAGI sessions (parse, commands, call flow)", ("acd/runtime/fastagi.py",
                                                       "acd/protocol/agi.py",
                                                       "acd/runtime/call_flow.py",
                                                       "acd/protocol/_common.py")),
    ("epoll wait", ("EpollSelector.select",)),
]


def categorize(frames: Sequence[str]) -> str:
    """The category (:data:`CATEGORIES`) of one sampled stack, leaf first."""
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "asyncio scheduling and the rest"


def rank_stacks(lines: Iterable[str], top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from collapsed stacks, and the
    share of each category (:data:`CATEGORIES`)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \(.*?/site-packages/", " (", f) for f in stack.split(";")]
        own[frames[-1]] += n
        cats[categorize(frames)] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {"samples": 0}
    return {"samples": total,
            "categories": [(c, round(100 * n / total, 1)) for c, n in cats.most_common()],
            "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)],
            "inclusive": [(f, round(100 * n / total, 1)) for f, n in incl.most_common(top)]}


# ------------------------------------------------------------------------------ scenarios


async def run_level(opts: Options, out: Path, held: int, agents: int) -> dict[str, Any]:
    """One level: fill, idle API, churn, churn + API (see the module docstring)."""
    result: dict[str, Any] = {"held": held, "agents": agents}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = held + agents + FD_MARGIN
    if hard != resource.RLIM_INFINITY and need > hard:
        result["skipped"] = (f"needs {need} file descriptors in the engine; the hard "
                             f"RLIMIT_NOFILE here is {hard} (raising it needs "
                             "CAP_SYS_RESOURCE: ulimit -Hn)")
        print(f"level {held}:{agents}: not run: {result['skipped']}", flush=True)
        return result
    rig = Rig(opts, out, f"level-{held}")
    try:
        await rig.start(agents, opts.engine_nofile or need)
        assert rig.engine is not None
        eng = rig.engine
        if opts.tracemalloc:
            await eng.tracemalloc_dump(0)
        result["rss_base_mb"] = round(eng.rss_mb(), 1)
        result["gc_base_objects"] = (await eng.gc_dump()).get("tracked_objects")
        m0 = await rig.scrape()
        # -- 1. fill ---------------------------------------------------------------------
        t0 = time.monotonic()
        cpu0 = eng.cpu_s()
        fill_load = Contention(rig)
        await rig.arrive(held, opts.fill_rate)
        st = await rig.wait_for(
            lambda s: s["phases"].get("waiting", 0) >= held or (
                s["arrivals_running"] == 0 and s["phases"].get("connecting", 0) == 0
                and s["phases"].get("setup", 0) == 0),
            opts.fill_timeout or held / opts.fill_rate * 3 + 60)
        fill_s = time.monotonic() - t0
        fill_machine = fill_load.result()
        await asyncio.sleep(1.0 if not opts.quick else 0.3)
        st = await rig.stats(reset=True, samples=True)
        m1 = await rig.scrape()
        rss = eng.rss_mb()
        waiting = st["phases"].get("waiting", 0)
        result["fill"] = {
            "seconds": round(fill_s, 2), "rate": round(held / fill_s, 1),
            "engine_cpu_pct": round(100 * (eng.cpu_s() - cpu0) / fill_s, 1),
            "generator_waiting": waiting,
            "engine_waiting": int(metric_sum(m1, "acd_calls_waiting")),
            "setup_ms": summary(st["samples"].get("setup", [])),
            "pickup_ms": summary(st["samples"].get("pickup", [])),
            "connect_ms": summary(st["samples"].get("connect", [])),
            "failures": _failures(st["counts"]),
            "apply": apply_histogram(m0, m1),
            "machine": fill_machine,
        }
        result["rss_mb"] = round(rss, 1)
        result["vmhwm_mb"] = round(proc_status(eng.pid, "VmHWM") / 1024, 1)
        result["rss_per_held_kb"] = round((rss - result["rss_base_mb"]) * 1024
                                          / max(1, waiting), 2)
        result["fds"] = len(os.listdir(f"/proc/{eng.pid}/fd"))
        result["fill"]["stuck_in_setup"] = st["phases"].get("setup", 0)
        gcs = await eng.gc_dump()
        result["fill"]["full_gc_ms"] = [ms for _, ms, _ in gcs.get("full", [])]
        result["gc_held_objects"] = gcs.get("tracked_objects")
        result["fill"]["generator_lag_ms"] = summary(st["samples"].get("generator_lag", []))
        if opts.tracemalloc:
            # a debug run: the traced engine is several times slower, so stop here
            tm = await eng.tracemalloc_dump(1)
            result["tracemalloc"] = _per_call(tm, waiting)
            return result
        print(f"level {held}: filled {waiting} waiting in {fill_s:.1f}s, RSS "
              f"{result['rss_base_mb']} → {result['rss_mb']} MB "
              f"({result['rss_per_held_kb']} KB/held)", flush=True)
        # -- 2. API at rest --------------------------------------------------------------
        result["api_idle"] = await rig.probe_api(opts.api_requests)
        # -- 3. churn --------------------------------------------------------------------
        if agents:
            await rig.each(op="replace", on=True)
            spread = opts.login_spread or max(5.0, agents / 200)
            await rig.each(op="register", count=agents, spread=spread)
            await asyncio.sleep(spread + 2 * opts.ring + (1.0 if not opts.quick else 0.2))
            result["churn"] = await _window(rig, opts.churn, opts.py_spy)
            print(f"level {held}: churn free→Dial "
                  f"p50 {result['churn']['free_to_dial_ms']['p50']:.2f} ms "
                  f"p99 {result['churn']['free_to_dial_ms']['p99']:.2f} ms "
                  f"(n={result['churn']['free_to_dial_ms']['n']})", flush=True)
            # -- 4. churn + API ----------------------------------------------------------
            result["churn_api"] = await _window(rig, 0, False, api=opts.api_requests)
            await rig.each(op="replace", on=False)
        else:
            result["api_busy"] = None
        result["gc"] = await eng.gc_dump()
        final = await rig.stats()
        result["counts"] = dict(final["counts"])
        result["failures"] = _failures(final["counts"])
    except Exception as exc:  # keep what was measured; say what broke
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"level {held}:{agents}: {result['error']}", flush=True)
        with contextlib.suppress(Exception):
            st = await rig.stats()
            result["phases"] = dict(st["phases"])
            result["counts"] = dict(st["counts"])
            result["failures"] = _failures(st["counts"])
    finally:
        result["shutdown"] = await rig.close()
    return result


async def _window(rig: Rig, seconds: float, profile: bool, api: int = 0,
                  ) -> dict[str, Any]:
    """Measure a churn window: ``seconds`` of routing (optionally profiled), or the time
    an API probe of ``api`` requests per path takes."""
    assert rig.engine is not None
    eng = rig.engine
    await rig.stats(reset=True, samples=True)
    m0 = await rig.scrape()
    c0, w0, t0 = eng.cpu_s(), rig.worker_cpu_s(), time.monotonic()
    wall0 = time.time()
    contention = Contention(rig)
    before = (await rig.stats())["counts"]
    out: dict[str, Any] = {}
    if api:
        out["api"] = await rig.probe_api(api)
    elif profile:
        out["profile"] = await _py_spy(eng.pid, seconds, rig.out)
    else:
        await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    out["machine"] = contention.result()
    m1 = await rig.scrape()
    st = await rig.stats(reset=True, samples=True)
    dials = st["counts"].get("dials", 0) - before.get("dials", 0)
    out.update({
        "seconds": round(dt, 1),
        "free_to_dial_ms": summary(st["samples"].get("free_to_dial", [])),
        "dials_per_s": round(dials / dt, 1),
        "engine_cpu_pct": round(100 * (eng.cpu_s() - c0) / dt, 1),
        "generator_cpu_pct": round(100 * (rig.worker_cpu_s() - w0) / dt, 1),
        "apply": apply_histogram(m0, m1),
        "waiting": st["phases"].get("waiting", 0),
        "talking": st["phases"].get("talking", 0) + st["phases"].get("ringing", 0),
        "engine_waiting": int(metric_sum(m1, "acd_calls_waiting")),
        "inbox": metric_sum(m1, "acd_inbox_events"),
        "generator_lag_ms": summary(st["samples"].get("generator_lag", [])),
    })
    gcs = await eng.gc_dump()
    out["full_gc_ms"] = [ms for t, ms, _ in gcs.get("full", []) if t >= wall0]
    out["tracked_objects"] = gcs.get("tracked_objects")
    return out


def _per_call(tm: dict[str, Any], n: int) -> dict[str, Any]:
    """tracemalloc growth since the baseline, per held caller."""
    if not tm or not n:
        return {}
    return {"total_bytes_per_call": round(tm.get("total_diff", 0) / n, 1),
            "by_file": [(e["where"], round(e["size_diff"] / n, 1),
                         round(e["count_diff"] / n, 2)) for e in tm.get("filename", [])[:20]],
            "by_line": [(e["where"], round(e["size_diff"] / n, 1),
                         round(e["count_diff"] / n, 2)) for e in tm.get("lineno", [])[:40]]}


async def run_rate(opts: Options, out: Path) -> dict[str, Any]:
    """Arrivals/s in steps, then bursts (see the module docstring)."""
    result: dict[str, Any] = {"steps": [], "bursts": []}
    rig = Rig(opts, out, "rate")
    peak_held = int(max(opts.rate_steps, default=0) * opts.patience * 1.5
                    + max(opts.bursts, default=0) + opts.rate_agents)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = min(hard, peak_held + FD_MARGIN) if hard != resource.RLIM_INFINITY \
        else peak_held + FD_MARGIN
    old_talk = opts.talk
    opts.talk = opts.rate_talk
    try:
        await rig.start(opts.rate_agents, nofile)
        assert rig.engine is not None
        eng = rig.engine
        await rig.each(op="register", count=opts.rate_agents, spread=0.5)
        await asyncio.sleep(1.0)
        failing = 0
        for rate in opts.rate_steps:
            step = await _rate_step(rig, rate, opts.step, opts.patience, opts.py_spy)
            step["holds"] = (not step["failures"] and step["setup_ms"]["p99"]
                             <= opts.setup_slo * 1e3 and step["achieved"] >= 0.95 * rate)
            result["steps"].append(step)
            print(f"rate {rate:.0f}/s: achieved {step['achieved']:.0f}/s, setup p99 "
                  f"{step['setup_ms']['p99']:.1f} ms, engine CPU {step['engine_cpu_pct']} %"
                  f", failures {step['failures']} -> "
                  f"{'holds' if step['holds'] else 'does not hold'}", flush=True)
            failing = 0 if step["holds"] else failing + 1
            if failing >= 2:
                break
        held_steps = [s["rate"] for s in result["steps"] if s["holds"]]
        result["sustained"] = max(held_steps) if held_steps else 0.0
        for n in opts.bursts:
            burst = await _burst(rig, n, opts.patience)
            result["bursts"].append(burst)
            print(f"burst {n}: pickup p99 {burst['pickup_ms']['p99']:.0f} ms, max "
                  f"{burst['pickup_ms']['max']:.0f} ms, failures {burst['failures']}",
                  flush=True)
        result["gc"] = await eng.gc_dump()
    finally:
        opts.talk = old_talk
        result["shutdown"] = await rig.close()
    return result


async def _settle(rig: Rig, limit: float) -> dict[str, Any]:
    """Wait until no caller is arriving, connecting, being set up or waiting."""
    return await rig.wait_for(
        lambda s: s["arrivals_running"] == 0 and s["phases"].get("connecting", 0) == 0
        and s["phases"].get("setup", 0) == 0 and s["phases"].get("waiting", 0) == 0
        and s["phases"].get("hanging_up", 0) == 0, limit)


async def _rate_step(rig: Rig, rate: float, seconds: float, patience: float,
                     profile: bool = False) -> dict[str, Any]:
    """One step of the rate scenario: arrivals at ``rate`` for ``seconds``."""
    assert rig.engine is not None
    eng = rig.engine
    await rig.stats(reset=True, samples=True)
    before = Counter((await rig.stats())["counts"])
    m0 = await rig.scrape()
    c0, w0, t0 = eng.cpu_s(), rig.worker_cpu_s(), time.monotonic()
    contention = Contention(rig)
    await rig.arrive(None, rate, duration=seconds, patience=patience)
    ranking: dict[str, Any] | None = None
    if profile:
        ranking = await _py_spy(eng.pid, seconds, rig.out, f"rate-{rate:.0f}")
        await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
    else:
        await asyncio.sleep(seconds)
    busy = time.monotonic() - t0
    c1, w1 = eng.cpu_s(), rig.worker_cpu_s()
    machine_load = contention.result()
    st = await _settle(rig, patience + 30)
    m1 = await rig.scrape()
    st = await rig.stats(reset=True, samples=True)
    counts = Counter(st["counts"])
    counts.subtract(before)
    setups = st["samples"].get("setup", [])
    return {
        "rate": rate, "achieved": round(counts["arrivals"] / seconds, 1),
        "queued_per_s": round(len(setups) / seconds, 1),
        "setup_ms": summary(setups), "pickup_ms": summary(st["samples"].get("pickup", [])),
        "connect_ms": summary(st["samples"].get("connect", [])),
        "hangup_close_ms": summary(st["samples"].get("hangup_close", [])),
        "engine_cpu_pct": round(100 * (c1 - c0) / busy, 1),
        "generator_cpu_pct": round(100 * (w1 - w0) / busy, 1),
        "abandoned": counts["abandoned"], "answered": counts["answered_by_agent"],
        "failures": _failures(counts), "apply": apply_histogram(m0, m1),
        "generator_lag_ms": summary(st["samples"].get("generator_lag", [])),
        "machine": machine_load,
        **({"profile": ranking} if ranking is not None else {}),
    }


async def _burst(rig: Rig, n: int, patience: float) -> dict[str, Any]:
    """``n`` callers at once; how they were picked up."""
    await rig.stats(reset=True, samples=True)
    before = Counter((await rig.stats())["counts"])
    t0 = time.monotonic()
    await rig.arrive(n, math.inf, patience=patience)
    st = await _settle(rig, patience + 60)
    took = time.monotonic() - t0
    st = await rig.stats(reset=True, samples=True)
    counts = Counter(st["counts"])
    counts.subtract(before)
    return {"callers": n, "seconds": round(took, 2),
            "connect_ms": summary(st["samples"].get("connect", [])),
            "pickup_ms": summary(st["samples"].get("pickup", [])),
            "setup_ms": summary(st["samples"].get("setup", [])),
            "queued": len(st["samples"].get("setup", [])),
            "failures": _failures(counts)}


# ------------------------------------------------------------------------------- report


def _f(x: Any, digits: int = 1) -> str:
    if isinstance(x, int | float) and math.isfinite(x):
        return f"{x:,.{digits}f}"
    return "–"


def render(results: dict[str, Any]) -> str:
    """Markdown tables of a run (what goes into RESULTS.md)."""
    lines: list[str] = []
    levels = results.get("levels") or []
    if levels:
        lines += ["| held | agents | RSS base → held (MB) | KB / held caller | fill rate /s "
                  "| apply p50/p99 ms (fill) | apply p50/p99 ms (churn) "
                  "| agent free→Dial p50/p99 ms (n) | free→Dial p99 ms during API "
                  "| GET /queues p50/p99 ms | GET /calls p50/p99 ms | GET /metrics p50/p99 ms "
                  "| full GC max ms (fill / churn) | others' CPU % (fill / churn) | failures |",
                  "|" + "---:|" * 15]
        for lv in levels:
            if "skipped" in lv:
                lines.append(f"| {lv['held']:,} | {lv['agents']:,} | not run: "
                             f"{lv['skipped']} |" + " |" * 12)
                continue
            fill, churn, busy = lv.get("fill", {}), lv.get("churn", {}), lv.get("churn_api", {})
            api = lv.get("api_idle", {})
            fa = fill.get("apply", {}).get("all", {})
            ca = churn.get("apply", {}).get("all", {})
            fd = churn.get("free_to_dial_ms", {})
            bd = busy.get("free_to_dial_ms", {})
            fill_gc = fill.get("full_gc_ms") or []
            churn_gc = (churn.get("full_gc_ms") or []) + (busy.get("full_gc_ms") or [])

            def ap(path: str, api: dict[str, Any] = api) -> str:
                """p50 / p99 of one API path."""
                x = api.get(path, {})
                return f"{_f(x.get('p50'))} / {_f(x.get('p99'))}"

            lines.append(
                f"| {fill.get('generator_waiting', lv['held']):,} | {lv['agents']:,} "
                f"| {_f(lv.get('rss_base_mb'))} → {_f(lv.get('rss_mb'))} "
                f"| {_f(lv.get('rss_per_held_kb'))} | {_f(fill.get('rate'), 0)} "
                f"| {_f(fa.get('p50_ms'), 3)} / {_f(fa.get('p99_ms'), 3)} "
                f"| {_f(ca.get('p50_ms'), 3)} / {_f(ca.get('p99_ms'), 3)} "
                f"| {_f(fd.get('p50'), 2)} / {_f(fd.get('p99'), 2)} ({fd.get('n', 0):,}) "
                f"| {_f(bd.get('p99'), 1)} "
                f"| {ap('/api/v1/queues')} | {ap('/api/v1/calls')} | {ap('/metrics')} "
                f"| {_f(max(fill_gc or [math.nan]), 0)} / "
                f"{_f(max(churn_gc or [math.nan]), 0)} "
                f"| {_f(fill.get('machine', {}).get('other_cpu_pct'), 0)} / "
                f"{_f(churn.get('machine', {}).get('other_cpu_pct'), 0)} "
                f"| {lv.get('failures') or lv.get('error') or 0} |")
    rate = results.get("rate")
    if rate:
        lines += ["", "| offered /s | achieved /s | queued /s | setup p50/p99 ms "
                      "| pickup p99 ms | engine CPU % | generator CPU % | others' CPU % "
                      "| CallArrived apply p99 ms | abandoned | answered | failures | holds |",
                  "|" + "---:|" * 13]
        for s in rate["steps"]:
            arr = s["apply"].get("CallArrived", {})
            lines.append(
                f"| {_f(s['rate'], 0)} | {_f(s['achieved'], 0)} | {_f(s['queued_per_s'], 0)} "
                f"| {_f(s['setup_ms']['p50'])} / {_f(s['setup_ms']['p99'])} "
                f"| {_f(s['pickup_ms']['p99'])} | {_f(s['engine_cpu_pct'])} "
                f"| {_f(s['generator_cpu_pct'])} "
                f"| {_f(s.get('machine', {}).get('other_cpu_pct'))} "
                f"| {_f(arr.get('p99_ms'), 3)} "
                f"| {s['abandoned']} | {s['answered']} | {s['failures'] or 0} "
                f"| {'yes' if s['holds'] else 'no'} |")
        lines += ["", f"Sustained: **{_f(rate.get('sustained'), 0)} arrivals/s**.", "",
                  "| burst (callers at once) | took s | connect p99 ms | pickup p50/p99/max ms "
                  "| setup p99 ms | queued | failures |", "|" + "---:|" * 7]
        for b in rate["bursts"]:
            lines.append(
                f"| {b['callers']:,} | {_f(b['seconds'], 2)} | {_f(b['connect_ms']['p99'])} "
                f"| {_f(b['pickup_ms']['p50'])} / {_f(b['pickup_ms']['p99'])} / "
                f"{_f(b['pickup_ms']['max'])} | {_f(b['setup_ms']['p99'])} | {b['queued']:,} "
                f"| {b['failures'] or 0} |")
    return "\n".join(lines)


def machine() -> str:
    """One line describing this machine."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, "
            f"RLIMIT_NOFILE hard {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}")


async def wait_quiet(limit: float, window: float = 10.0, share: float = 0.25,
                     ) -> dict[str, float]:
    """Wait (up to ``limit`` s) for ``window`` seconds in which processes other than
    this one used less than ``share`` of a core; return what the last window saw."""
    deadline = time.monotonic() + limit
    waited = time.monotonic()
    while True:
        b0, c0, t0 = machine_busy_s(), proc_cpu_s(os.getpid()), time.monotonic()
        await asyncio.sleep(window)
        dt = time.monotonic() - t0
        others = (machine_busy_s() - b0 - (proc_cpu_s(os.getpid()) - c0)) / dt
        if others < share or time.monotonic() > deadline:
            return {"others_before_start_pct": round(100 * others, 1),
                    "waited_s": round(time.monotonic() - waited, 1)}


async def run(opts: Options) -> dict[str, Any]:
    """Run the chosen scenarios; the results as a dict (also JSON with ``--json``)."""
    from benchmarks.loadgen import raise_nofile

    raise_nofile()
    out = opts.out or Path(tempfile.mkdtemp(prefix="acd-capacity-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "argv": sys.argv[1:], "out": str(out),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if "levels" in opts.scenarios:
        results["levels"] = []
        for held, agents in opts.levels:
            quiet = await wait_quiet(opts.wait_quiet) if opts.wait_quiet else None
            level = await run_level(opts, out, held, agents)
            if quiet is not None:
                level["quiet"] = quiet
            results["levels"].append(level)
    if "rate" in opts.scenarios:
        quiet = await wait_quiet(opts.wait_quiet) if opts.wait_quiet else None
        results["rate"] = await run_rate(opts, out)
        if quiet is not None:
            results["rate"]["quiet"] = quiet
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps(results, indent=1, default=str))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; print the tables."""
    opts = parse_options(argv)
    results = asyncio.run(run(opts))
    print()
    print(f"# {results['machine']}")
    print(render(results))
    print(f"\nlogs, configs and profiles: {results['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
