"""The HTTP API under load while the engine routes real calls.

One :class:`harness.rig.Rig` (sandbox Asterisk 22 + SIPp agent phones + SIPp callers), the
engine inline and the API served by uvicorn on the engine's own loop — exactly as ``acd
serve`` runs them. Two phases of equal length, each with SIPp callers arriving at a
steady rate (agents ~75 % busy, so calls queue):

* ``calls only``       — no API traffic: the engine's routing-decision time as a baseline;
* ``calls + API``      — a client **in another process** sends ``--rate`` requests/s
  (open loop: request *i* leaves at ``t0 + i/rate`` whatever happened to the previous
  ones, and its latency is counted from that planned time, so a stall is not hidden) over
  a mix of GET /api/v1/queues (40 %), /api/v1/calls (25 %), /api/v1/agents (25 %) and
  /api/v1/queues/consult (10 %), plus one GET /metrics per second.

Measured: API latency per request (p50/p90/p99/max, errors), /metrics scrape latency over
HTTP and the collector's own time in-process (``generate_latest`` on the loaded engine),
and the time the engine spends in ``EngineCore.apply`` per event in each phase (the
routing decision; from the engine's apply hook, every event).

Run::

    .venv/bin/python -m benchmarks.api_bench              # 2 × 20 s, 200 requests/s
    .venv/bin/python -m benchmarks.api_bench --quick      # 2 × 6 s
    .venv/bin/python -m benchmarks.api_bench --record     # ... and append to RESULTS.md

The token travels to the client process in its environment, never on its command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
TOKEN_ENV = "ACD_BENCH_API_TOKEN"
MIX = [("/api/v1/queues", 40), ("/api/v1/calls", 25), ("/api/v1/agents", 25),
       ("/api/v1/queues/consult", 10)]


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90),
            "p99": pct(values, 99), "max": max(values) if values else float("nan"),
            "mean": statistics.fmean(values) if values else float("nan")}


# -- the load client (runs in its own process) ----------------------------------------


async def client_main(url: str, rate: float, duration: float) -> dict[str, Any]:
    import httpx

    token = os.environ[TOKEN_ENV]
    rnd = random.Random(7)
    paths = [p for p, w in MIX for _ in range(w)]
    lat: dict[str, list[float]] = {p: [] for p, _ in MIX}
    lat["/metrics"] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        # warm the connection pool
        await asyncio.gather(*(http.get("/healthz") for _ in range(16)))

        async def one(path: str, planned: float) -> None:
            try:
                r = await http.get(path)
                if r.status_code != 200:
                    errors[f"{path} {r.status_code}"] += 1
            except httpx.HTTPError as exc:
                errors[f"{path} {type(exc).__name__}"] += 1
                return
            lat[path].append(time.perf_counter() - planned)

        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter() + 0.05
        n = int(rate * duration)
        next_scrape = 0.0
        for i in range(n):
            planned = t0 + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            path = paths[rnd.randrange(len(paths))]
            if planned - t0 >= next_scrape:
                path, next_scrape = "/metrics", next_scrape + 1.0
            task = asyncio.create_task(one(path, planned))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return {"latency": lat, "errors": dict(errors), "sent": n, "elapsed": elapsed}


# -- the bench --------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    apply_seconds: list[float] = field(default_factory=list)
    calls: int = 0
    answered: int = 0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from acd.domain import Event
    from api.app import create_app
    from api.server import serving
    from harness.rig import AgentPlan, Rig

    out: Path = args.out
    token = "bench-" + os.urandom(16).hex()
    env = {TOKEN_ENV: token}
    api_cfg = {"tokens": [{"name": "bench", "role": "supervisor", "env": TOKEN_ENV}]}
    plans = [AgentPlan(f"90{i:02d}", talk_ms=(1000, 2000)) for i in range(1, args.agents + 1)]
    phases = [Phase("calls only"), Phase("calls + API")]
    result: dict[str, Any] = {}
    async with Rig(out / "rig", plans, extra_config={"api": api_cfg}, name="apibench") as rig:
        assert rig.engine is not None and rig.config is not None
        current: list[Phase] = []

        def on_apply(event: Event, seconds: float) -> None:
            if current:
                current[0].apply_seconds.append(seconds)

        rig.engine.apply_hooks.append(on_apply)
        registry = CollectorRegistry()
        app = create_app(rig.engine, rig.config, registry=registry, environ=env)
        async with serving(app) as server:
            url = f"http://127.0.0.1:{server.port}"
            n_calls = max(1, int(args.call_rate * args.duration))
            for idx, phase in enumerate(phases):
                current[:] = [phase]
                callers = [f"1399{idx}{i:06d}" for i in range(n_calls)]
                calls = asyncio.create_task(rig.call(
                    callers, rate=args.call_rate, time_limit=args.duration + 120,
                    name=f"callers{idx}"))
                if phase.name == "calls + API":
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "benchmarks.api_bench", "--client", url,
                        "--rate", str(args.rate), "--duration", str(args.duration),
                        env={**os.environ, **env}, stdout=subprocess.PIPE, cwd=REPO_ROOT)
                    stdout, _ = await proc.communicate()
                    if proc.returncode != 0:
                        raise RuntimeError("the load client failed")
                    result["client"] = json.loads(stdout)
                sipp = await calls
                phase.calls, phase.answered = len(callers), sipp.successful
                current.clear()
            # the collector's own cost, on the engine as the load left it
            scrape = []
            for _ in range(200):
                t = time.perf_counter()
                generate_latest(registry)
                scrape.append(time.perf_counter() - t)
            result["collect"] = summary(scrape)
            result["metrics_bytes"] = len(generate_latest(registry))
    result["phases"] = {p.name: {"calls": p.calls, "answered": p.answered,
                                 "apply": summary(p.apply_seconds)} for p in phases}
    return result


def table(res: dict[str, Any], args: argparse.Namespace) -> str:
    ms = 1000.0
    lines = [f"API at {args.rate:g} requests/s for {args.duration:g} s while the engine "
             f"routes SIPp calls ({args.call_rate:g} calls/s, {args.agents} agents):", "",
             "| requests | n | p50 ms | p90 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|"]
    client = res["client"]
    every: list[float] = []
    for path, values in client["latency"].items():
        s = summary(values)
        if path != "/metrics":
            every += values
        lines.append(f"| GET {path} | {s['n']} | {s['p50'] * ms:.1f} | {s['p90'] * ms:.1f} | "
                     f"{s['p99'] * ms:.1f} | {s['max'] * ms:.1f} |")
    s = summary(every)
    lines.append(f"| **all /api/v1** | {s['n']} | {s['p50'] * ms:.1f} | {s['p90'] * ms:.1f} | "
                 f"**{s['p99'] * ms:.1f}** | {s['max'] * ms:.1f} |")
    achieved = client["sent"] / client["elapsed"] if client["elapsed"] else 0
    errors = sum(client["errors"].values())
    detail = f" ({client['errors']})" if errors else ""
    lines += ["", f"Sent {client['sent']} requests in {client['elapsed']:.1f} s "
                  f"({achieved:.0f}/s), {errors} errors{detail}.", "",
              "| /metrics | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|"]
    c = res["collect"]
    lines.append(f"| collector in-process (`generate_latest`, {c['n']}×, "
                 f"{res['metrics_bytes']} bytes) | {c['p50'] * ms:.2f} | {c['p99'] * ms:.2f} | "
                 f"{c['max'] * ms:.2f} |")
    h = summary(client["latency"]["/metrics"])
    lines.append(f"| scrape over HTTP under load ({h['n']}×) | {h['p50'] * ms:.1f} | "
                 f"{h['p99'] * ms:.1f} | {h['max'] * ms:.1f} |")
    lines += ["", "| engine: time in `EngineCore.apply` per event | calls answered | events | "
                  "p50 µs | p99 µs | max µs |", "|---|---:|---:|---:|---:|---:|"]
    for name, p in res["phases"].items():
        a = p["apply"]
        lines.append(f"| {name} | {p['answered']}/{p['calls']} | {a['n']} | "
                     f"{a['p50'] * 1e6:.0f} | {a['p99'] * 1e6:.0f} | {a['max'] * 1e6:.0f} |")
    return "\n".join(lines)


def record(text: str, command: str) -> None:
    """Append (never rewrite): other benchmarks own the other sections."""
    machine = (f"{os.cpu_count()} CPU, Python {platform.python_version()}, "
               f"{time.strftime('%Y-%m-%d')}")
    section = (f"\n## API\n\n`{command}` ({machine})\n\n{text}\n\n"
               "Latency is counted from each request's planned send time (open loop), "
               "client in a separate process on the same 2-core machine as Asterisk, SIPp "
               "and the engine.\n")
    with RESULTS.open("a", encoding="utf-8") as f:
        if RESULTS.stat().st_size == 0:
            f.write("# Benchmark results\n")
        f.write(section)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.api_bench",
                                 description="API latency under load while routing calls.")
    ap.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=200.0, help="API requests/s (200)")
    ap.add_argument("--duration", type=float, help="seconds per phase (20; quick 6)")
    ap.add_argument("--call-rate", type=float, default=1.5, help="SIPp calls/s (1.5)")
    ap.add_argument("--agents", type=int, default=6, help="agents (6)")
    ap.add_argument("--quick", action="store_true", help="6 s phases")
    ap.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "api")
    args = ap.parse_args(argv)
    if args.duration is None:
        args.duration = 6.0 if args.quick else 20.0
    if args.client:
        print(json.dumps(asyncio.run(client_main(args.client, args.rate, args.duration))))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    res = asyncio.run(run(args))
    (args.out / "api_bench.json").write_text(json.dumps(res, indent=1))
    text = table(res, args)
    print(text)
    if args.record:
        command = ".venv/bin/python -m benchmarks.api_bench" + \
            (" --quick" if args.quick else "") + " --record"
        record(text, command)
    failed = [n for n, p in res["phases"].items() if p["answered"] != p["calls"]]
    return 1 if failed or sum(res["client"]["errors"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
