"""Offer → screen pop: how long from the engine's offer to the pop at the agent's page.

The product's own composition root (``app.node.Node``) with no Asterisk (the offer is the
engine's decision; Asterisk only rings the phone after it): the API served by uvicorn on
the engine's loop, as ``acd serve`` runs it. ``--agents`` agents are signed in with their
PIN (``POST /api/v1/session``), each holding the desktop's event stream with its session
cookie — agent 0 in a **real headless Chromium** running ``/desk`` (the pop time is the
page's ``Date.now()`` when its WebSocket handler ran), the others in a client process of
their own (``websockets``; the receive time is ``time.time()`` there). Callers arrive at
``--rate`` per second; each offer is answered 0.3 s later and ends 0.5 s after that (no
wrap-up), so agents keep taking calls.

Measured per offer: the page's (or client's) receive wall time minus the wall time at
which the engine published ``call_offered`` (a fact hook, the same inbox step as the
``Offer`` effect that makes Asterisk dial). Same machine, same clock.

Run::

    .venv/bin/python -m benchmarks.desk_pop_bench            # 50 agents, 20 calls/s, 30 s
    .venv/bin/python -m benchmarks.desk_pop_bench --quick    # 10 agents, 10 s
    .venv/bin/python -m benchmarks.desk_pop_bench --record   # ... and append to RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
PIN = "2468"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# -- the client process: agents 1..n-1 on the event stream ------------------------------


async def _client(url: str, cookies: list[str], origin: str, seconds: float) -> None:
    from websockets.asyncio.client import connect

    received: list[tuple[str, float]] = []

    async def one(cookie: str) -> None:
        async with connect(url, additional_headers={"Cookie": f"acd_session={cookie}",
                                                    "Origin": origin}) as ws:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                except TimeoutError:
                    break
                at = time.time()
                msg = json.loads(raw)
                if msg["type"] == "pop":
                    received.append((msg["call"]["id"], at))

    await asyncio.gather(*(one(c) for c in cookies))
    print(json.dumps(received))


# -- the engine and the page ---------------------------------------------------------------


def _config(agents: int, pin_hash: str) -> Any:
    from acd.config import Config

    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        "store": {"restore_grace": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0}],
        "agents": [{"id": f"a{i:03d}", "skills": {"consult": 1}, "pin_hash": pin_hash,
                    "contact": f"sip:a{i}@127.0.0.1:5999"} for i in range(agents)],
        "api": {"host": "127.0.0.1", "port": 0, "limits": {"auth_failures": 1000}},
    })


async def run(agents: int, rate: float, seconds: float) -> dict[str, Any]:
    import httpx

    from acd.config import passwords
    from acd.domain import CallAnswered, CallArrived, DialFinished, Fact
    from api.server import serving
    from app.node import Node
    from tests.e2e.test_wallboard import chromium, dom_until

    pin_hash = passwords.hash_password(PIN, n=1024)
    node = Node(_config(agents, pin_hash), ami_secrets=None)
    engine = node.engine
    assert node.app is not None
    offered: dict[str, float] = {}
    to_answer: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def stamp(ev: Fact, now: float) -> None:
        if ev.name == "call_offered":
            data = ev.data
            offered[str(data["call_id"])] = time.time()
            to_answer.put_nowait((str(data["call_id"]), str(data["agent"])))

    async def answer_calls() -> None:
        async def one(call_id: str, agent: str) -> None:
            await asyncio.sleep(0.3)
            engine.post(CallAnswered(call_id, agent, engine.clock()))
            await asyncio.sleep(0.5)
            engine.post(DialFinished(call_id, agent, "ANSWER", engine.clock(), 0.5))
        tasks: set[asyncio.Task[None]] = set()
        while True:
            call_id, agent = await to_answer.get()
            task = asyncio.create_task(one(call_id, agent))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    artifacts = Path(tempfile.mkdtemp(prefix="acd-desk-bench-"))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(node)
        await stack.enter_async_context(node.app.router.lifespan_context(node.app))
        server = await stack.enter_async_context(serving(node.app))
        base = f"http://127.0.0.1:{server.port}"
        engine.fact_hooks.append(stamp)
        cookies: list[str] = []
        async with httpx.AsyncClient(base_url=base) as http:
            for i in range(1, agents):
                http.cookies.clear()
                r = await http.post("/api/v1/session", json={
                    "kind": "agent", "id": f"a{i:03d}", "secret": PIN})
                r.raise_for_status()
                cookies.append(r.cookies["acd_session"])
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.desk_pop_bench", "--client",
            f"ws://127.0.0.1:{server.port}/api/v1/events", base, str(seconds + 8),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO_ROOT)
        assert client.stdin is not None
        client.stdin.write(("\n".join(cookies) + "\n").encode())
        await client.stdin.drain()
        client.stdin.close()
        cdp = await stack.enter_async_context(chromium(f"{base}/desk", artifacts))
        await dom_until(cdp, "document.readyState", "complete", 10)
        await cdp.eval(f"ACD.signIn('agent', 'a000', '{PIN}').then(() => location.reload())")
        await asyncio.sleep(1.0)
        await dom_until(cdp, "document.querySelector('#conn').dataset.state", "live", 10)
        await asyncio.sleep(2.0)  # the client process's streams are open
        answering = asyncio.create_task(answer_calls())
        n = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            engine.open_session(f"c{i}")
            now = engine.clock()
            engine.post(CallArrived(f"c{i}", "consult", f"1391234{i:04d}", now, now))
        await asyncio.sleep(2.0)
        page = await cdp.eval("JSON.stringify(window.acdPops.map("
                              "p => [p.call.id, p.wall]))")
        out, _ = await client.communicate()
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
    page_ms = [(wall / 1000 - offered[cid]) * 1000 for cid, wall in json.loads(page)
               if cid in offered]
    client_ms = [(at - offered[cid]) * 1000 for cid, at in json.loads(out.decode())
                 if cid in offered]
    return {"agents": agents, "rate": rate, "seconds": seconds, "calls": n,
            "offers": len(offered), "page": page_ms, "streams": client_ms}


def _row(name: str, values: list[float]) -> str:
    return (f"| {name} | {len(values)} | {pct(values, 50):.1f} | {pct(values, 90):.1f} | "
            f"{pct(values, 99):.1f} | {max(values) if values else float('nan'):.1f} |")


def report(r: dict[str, Any], command: str) -> str:
    cpus = os.cpu_count()
    lines = [
        "## Agent desktop: offer → screen pop", "",
        f"`{command}` ({cpus} CPU, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, while other engineers' tests ran on the machine)", "",
        f"{r['agents']} agents signed in with their PIN, {r['rate']:g} callers/s for "
        f"{r['seconds']:g} s ({r['calls']} calls, {r['offers']} offers). From the "
        "engine publishing `call_offered` (the inbox step whose `Offer` makes Asterisk "
        "dial) to the pop at the page:", "",
        "| where | pops | p50 ms | p90 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|",
        _row("`/desk` in headless Chromium (agent 0; page's `Date.now()`)", r["page"]),
        _row(f"event streams of the other {r['agents'] - 1} agents (client process)",
             r["streams"]),
        _row("all", r["page"] + r["streams"]), "",
        "Goal: the pop within 100 ms of the offer (before the phone rings: Asterisk "
        "starts the Dial after the same offer). No Asterisk here: the offer is the "
        "engine's decision; `tests/e2e/test_desk.py` measures the same on the real "
        "hotline (Asterisk 22 + SIPp + Chromium) and asserts ≤ 100 ms.", ""]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, origin, seconds = sys.argv[2], sys.argv[3], float(sys.argv[4])
        cookies = [line.strip() for line in sys.stdin if line.strip()]
        asyncio.run(_client(url, cookies, origin, seconds))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.seconds, args.rate = 10, 10.0, 10.0
    result = asyncio.run(run(args.agents, args.rate, args.seconds))
    command = ".venv/bin/python -m benchmarks.desk_pop_bench" + (
        " --quick" if args.quick else "") + (" --record" if args.record else "")
    text = report(result, command)
    print(text)
    if args.record:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
