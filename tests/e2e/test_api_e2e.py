"""The HTTP API and WebSocket on a real hotline: Asterisk 22 + SIPp + the engine.

The API is served by uvicorn on the engine's own loop (as ``acd serve`` does) and read
over real HTTP and WebSocket connections; what it reports is compared with what SIPp's
callers and agent phones saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from websockets.asyncio.client import ClientConnection, connect

from acd.domain import Fact
from api.app import create_app
from api.server import serving
from harness.rig import AgentPlan, Rig, SitePlan

pytestmark = pytest.mark.e2e

SUP = "e2e-supervisor-token-0123456789"
ENV = {"ACD_TEST_API_SUPERVISOR": SUP}
API = {"tokens": [{"name": "e2e", "role": "supervisor", "env": "ACD_TEST_API_SUPERVISOR"}]}
H = {"Authorization": f"Bearer {SUP}"}


def numbers(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def metric(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError(name)


async def test_api_figures_match_sipp_and_a_paused_agent_gets_no_call(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan(a, talk_ms=(400, 900)) for a in ("7001", "7002", "7003")]
    async with Rig(artifacts, plans, extra_config={"api": API}) as rig:
        assert rig.engine is not None and rig.config is not None
        app = create_app(rig.engine, rig.config, registry=CollectorRegistry(), environ=ENV)
        async with serving(app) as server, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}", headers=H, timeout=5) as http:
            r = await http.post("/api/v1/agents/7002/state",
                                json={"action": "pause", "reason": "training"})
            assert r.status_code == 200 and r.json()["presence"] == "paused"

            callers = numbers(10, "1371000")
            result = await rig.call(callers, rate=5, time_limit=90)
            assert result.failed == 0, result.errors_text()
            await rig.wait_for(lambda: rig.engine is not None and not rig.engine.core.calls)
            await rig.wait_for(lambda: all(a.state.value == "idle"
                                           for a in rig.engine.core.agents.values()))

            answered = {a: len(rig.phone_events(a, "answered")) for a in ("7001", "7003")}
            assert sum(answered.values()) == result.successful == 10
            assert rig.phone_events("7002", "offered") == []  # paused via the API

            queue = (await http.get("/api/v1/queues/consult")).json()
            for window in ("today", "rolling_15m"):
                w = queue[window]
                assert (w["offered"], w["answered"], w["abandoned"]) == (10, 10, 0), w
                assert w["completed"] == 10
                assert w["service_level"] == 1.0 and w["abandon_rate"] == 0.0
                assert w["aht_seconds"] is not None and 0.4 <= w["aht_seconds"] < 3.0
            assert queue["waiting"] == 0 and queue["agents"]["paused"] == 1
            agents = {a["id"]: a for a in (await http.get("/api/v1/agents")).json()}
            assert {a: agents[a]["answered"] for a in answered} == answered
            assert agents["7002"]["answered"] == 0 and agents["7002"]["reason"] == "training"
            assert agents["7001"]["device"] == "NOT_INUSE"

            text = (await http.get("/metrics")).text
            assert metric(text, "acd_calls_offered_total", queue="consult") == 10
            assert metric(text, "acd_calls_answered_total", queue="consult") == 10
            assert metric(text, "acd_call_wait_seconds_count", queue="consult",
                          outcome="answered") == 10
            assert metric(text, "acd_ami_up") == 1
            assert metric(text, "acd_queue_agents", queue="consult", presence="paused") == 1
            ready = await http.get("/readyz")
            assert ready.json() == {"ready": True, "accepting": True, "ami": "up"}


async def _recv(ws: ClientConnection, within: float) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return msg


async def _next_event(ws: ClientConnection, name: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        msg = await _recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == "event" and msg["name"] == name:
            return msg


async def test_websocket_delivers_call_waiting_within_a_second(
        chroot: Path, artifacts: Path) -> None:
    async with Rig(artifacts, [AgentPlan("7101", status="logged_out")],
                   extra_config={"api": API}) as rig:
        assert rig.engine is not None and rig.config is not None
        published: dict[tuple[str, str], float] = {}

        def stamp(ev: Fact, now: float) -> None:
            published.setdefault((ev.name, str(ev.data.get("call_id"))), time.monotonic())

        rig.engine.fact_hooks.append(stamp)
        app = create_app(rig.engine, rig.config, registry=CollectorRegistry(), environ=ENV)
        async with serving(app) as server, connect(
                f"ws://127.0.0.1:{server.port}/api/v1/events",
                subprotocols=["acd.v1", f"bearer.{SUP}"]) as ws:
            snap = await _recv(ws, 2)
            assert snap["type"] == "snapshot" and snap["calls"]["waiting"] == []
            calls = asyncio.create_task(rig.call(["075512345678"], scenario="caller_abandon",
                                                 patience_ms=[3000], time_limit=30))
            waiting = await _next_event(ws, "call_waiting", 15)
            received = time.monotonic()
            call_id = waiting["data"]["call_id"]
            assert waiting["data"]["caller"] == "075512345678"
            assert received - published[("call_waiting", call_id)] <= 1.0

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}",
                                         headers=H, timeout=5) as http:
                listed = (await http.get("/api/v1/calls")).json()["waiting"]
                assert [(c["id"], c["position"], c["caller"]) for c in listed] == \
                    [(call_id, 1, "075512345678")]
                abandoned = await _next_event(ws, "call_abandoned", 10)
                assert abandoned["data"]["call_id"] == call_id
                assert received - published[("call_waiting", call_id)] <= 1.0
                result = await calls
                assert result.failed == 0, result.errors_text()
                today = (await http.get("/api/v1/queues/consult")).json()["today"]
                assert (today["offered"], today["answered"], today["abandoned"]) == (1, 0, 1)
                assert today["abandoned_after_target"] == 0  # 3 s < 20 s target


async def test_partner_answered_call_shows_in_sites_regions_and_metrics(
        chroot: Path, artifacts: Path) -> None:
    extra = {"api": API, "regions": {"overflow_after": 0}}
    async with Rig(artifacts, [AgentPlan("7201", status="logged_out")],
                   sites=[SitePlan("gd", ["CN-GD"])], extra_config=extra) as rig:
        assert rig.engine is not None and rig.config is not None
        app = create_app(rig.engine, rig.config, registry=CollectorRegistry(), environ=ENV)
        async with serving(app) as server, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}", headers=H, timeout=5) as http:
            result = await rig.call(["02088886601"], time_limit=30)
            assert result.failed == 0, result.errors_text()
            await rig.wait_for(lambda: rig.engine is not None and not rig.engine.core.calls)

            sites = {s["id"]: s for s in (await http.get("/api/v1/sites")).json()}
            gd = sites["gd"]
            assert (gd["kind"], gd["offered"], gd["answered"], gd["rejected"],
                    gd["active"]) == ("partner", 1, 1, 0, 0), gd
            assert gd["open"] is True and gd["regions"] == ["CN-GD"]
            regions = {r["region"]: r for r in (await http.get("/api/v1/regions")).json()}
            assert (regions["CN-GD"]["calls"], regions["CN-GD"]["answered"],
                    regions["CN-GD"]["overflowed"]) == (1, 1, 1)
            today = (await http.get("/api/v1/queues/consult")).json()["today"]
            assert (today["offered"], today["answered"], today["overflowed"]) == (1, 1, 1)

            text = (await http.get("/metrics")).text
            assert metric(text, "acd_site_calls_total", site="gd", outcome="answered") == 1
            assert metric(text, "acd_site_active_calls", site="gd") == 0
            assert metric(text, "acd_region_calls_total", region="CN-GD",
                          outcome="overflowed") == 1
            assert metric(text, "acd_calls_overflowed_total", queue="consult") == 1
