"""The wallboard in a real browser on a real hotline.

Headless Debian Chromium opens ``/#token=…`` on an engine + Asterisk 22 rig, driven over
the DevTools protocol by a small pure-Python client (``websockets``). Callers are placed
with every agent logged out, so they wait; the page must show the new waiting count
within 2 s of the engine queueing them. A screenshot goes to ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry
from websockets.asyncio.client import ClientConnection, connect

from acd.domain import Fact
from acd.domain.callbacks import CallbackFinished
from api.app import create_app
from api.server import serving
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SUP = "e2e-wallboard-token-0123456789"
ENV = {"ACD_TEST_WALLBOARD": SUP}
API = {"tokens": [{"name": "wall", "role": "supervisor", "env": "ACD_TEST_WALLBOARD"}]}
#: Callbacks (a trunk nobody answers: no agent is signed in, nothing is dialled) and a
#: campaign of its own queue: the wallboard's outbound panel.
OUTBOUND = {
    "queues": [{"id": "consult", "name": "Consultation", "skills": {"consult": 1},
                "wrap_up": 0.5, "sl_target": 20, "priority": 10},
               {"id": "outbound", "name": "Outbound", "skills": {"consult": 1},
                "priority": 0, "wrap_up": 0}],
    "callbacks": {"trunk": {"contact": "sip:127.0.0.1:9"}},
    "campaigns": [{"id": "spring", "queue": "outbound", "do_not_call": ["13800138903"]}],
}


class CDP:
    """Just enough of the Chrome DevTools protocol: commands on one page target."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    async def eval(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return res.get("result", {}).get("value")


@contextlib.asynccontextmanager
async def chromium(url: str, artifacts: Path) -> AsyncIterator[CDP]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("chromium is not installed (scripts/bootstrap installs it)")
    profile = Path(tempfile.mkdtemp(prefix="acd-chromium-"))
    log = (artifacts / "chromium.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
        "--force-device-scale-factor=1", "--window-size=1600,900",
        f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0", "about:blank",
        stdout=log, stderr=log, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start; see chromium.log")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            targets = (await http.get("/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=2**26) as ws:
            cdp = CDP(ws)
            await cdp.send("Page.enable")
            await cdp.send("Page.navigate", url=url)
            yield cdp
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


WAITING = "document.querySelector('[data-queue=\"consult\"] [data-field=\"waiting\"]')" \
          "?.textContent ?? null"


async def dom_until(cdp: CDP, expression: str, expected: Any, within: float) -> float:
    """Poll the page until ``expression`` equals ``expected``; return when (monotonic)."""
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = await cdp.eval(expression)
        if value == expected:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{expression} = {value!r}, expected {expected!r} within {within}s")


async def test_wallboard_shows_waiting_callers_within_two_seconds(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("8001", status="logged_out"), AgentPlan("8002", status="logged_out")]
    async with Rig(artifacts, plans, extra_config={"api": API, **OUTBOUND}) as rig:
        assert rig.engine is not None and rig.config is not None
        queued: list[float] = []

        def stamp(ev: Fact, now: float) -> None:
            if ev.name == "call_waiting":
                queued.append(time.monotonic())

        rig.engine.fact_hooks.append(stamp)
        app = create_app(rig.engine, rig.config, registry=CollectorRegistry(), environ=ENV)
        async with serving(app) as server, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}",
                headers={"Authorization": f"Bearer {SUP}"}) as api:
            url = f"http://127.0.0.1:{server.port}/#token={SUP}"
            async with chromium(url, artifacts) as cdp:
                await dom_until(cdp, WAITING, "0", 10)
                assert await cdp.eval("location.hash") == ""  # token taken off the URL
                # Chinese first, English second; Chinese dates and a 24-hour clock
                assert await cdp.eval("document.documentElement.lang") == "zh-CN"
                label = await cdp.eval(
                    "document.querySelector('[data-queue=\"consult\"] .big .label')"
                    ".textContent")
                assert label == "排队Waiting"
                assert re.fullmatch(r"\d{2}:\d{2}:\d{2}",
                                    await cdp.eval("document.querySelector('#clock')"
                                                   ".textContent"))
                assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日星期[一二三四五六日]",
                                    await cdp.eval("document.querySelector('#date')"
                                                   ".textContent"))
                assert await cdp.eval("document.querySelector('#conn').dataset.state") == \
                    "live"
                calls = asyncio.create_task(rig.call(
                    ["13912345001", "13912345002", "13912345003"], scenario="caller_abandon",
                    patience_ms=[9000, 9000, 9000], rate=10, time_limit=40))
                await rig.wait_for(lambda: len(queued) == 3, within=15)
                shown = await dom_until(cdp, WAITING, "3", 2.0)
                assert shown - queued[-1] <= 2.0
                await asyncio.sleep(1.2)  # let the longest-wait clock tick once
                calls_waiting = await cdp.eval(
                    "document.querySelector('[data-calls=\"waiting\"]').textContent")
                assert calls_waiting == "3"
                logged_out = await cdp.eval(
                    "document.querySelector('[data-queue=\"consult\"] "
                    "[data-field=\"paused\"]').textContent")
                assert logged_out == "0"
                shot = await cdp.send("Page.captureScreenshot", format="png")
                (artifacts / "wallboard.png").write_bytes(base64.b64decode(shot["data"]))
                result = await calls
                assert result.failed == 0, result.errors_text()
                await dom_until(cdp, WAITING, "0", 3)
                abandoned = await cdp.eval(
                    "document.querySelector('[data-queue=\"consult\"] "
                    "[data-field=\"ab15\"]').textContent")
                assert abandoned == "3"
                await outbound_panel(cdp, rig, api, artifacts)


def _cb(key: str) -> str:
    return f"document.querySelector('[data-cb=\"{key}\"]')?.textContent ?? null"


async def outbound_panel(cdp: CDP, rig: Rig, api: httpx.AsyncClient,
                         artifacts: Path) -> None:
    """Callbacks and campaign progress on the wallboard, from the WebSocket's snapshot
    and summaries: what the API did (a callback in line, one scheduled then cancelled,
    a campaign's contacts and an outcome) and a completed callback's figures."""
    assert rig.engine is not None
    # A completed callback as the core accounts it (the whole path through Asterisk is
    # tests/e2e/test_callbacks.py): 95 s from the request to the answer, 60 s told.
    rig.engine.core.figures.observe(
        CallbackFinished("wb-1-cb", "consult", "completed", 1, "ANSWER", 95.0, 60.0,
                         "8001"), rig.engine.clock())
    now = rig.engine.clock()
    r = await api.post("/api/v1/callbacks", json={"number": "13800138901",
                                                   "queue": "consult"})
    assert r.status_code == 201, r.text
    r = await api.post("/api/v1/callbacks", json={"number": "13800138902",
                                                   "queue": "consult", "at": now + 3600})
    assert r.status_code == 201, r.text
    r = await api.delete(f"/api/v1/callbacks/{r.json()['callback_id']}")
    assert r.status_code == 204, r.text
    r = await api.post("/api/v1/campaigns/spring/contacts",
                       content="number,name\n13800138904,张三\n13800138905,李四\n"
                               "13800138903,王五\n",
                       headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["added"] == 2, r.text
    r = await api.post("/api/v1/campaigns/spring/contacts/0/outcome", json={"code": "sold"})
    assert r.status_code == 200, r.text
    await dom_until(cdp, "document.querySelector('#outbound').classList.contains('show')",
                    True, 6)
    await dom_until(cdp, _cb("requested"), "2", 6)  # 1 in line + 1 cancelled
    assert await cdp.eval(_cb("waiting")) == "1"
    assert await cdp.eval(_cb("dialing")) == "0"
    assert await cdp.eval(_cb("cancelled")) == "1"
    assert await cdp.eval(_cb("completed")) == "1"
    assert await cdp.eval(_cb("failed")) == "0"
    assert await cdp.eval(_cb("delay")) == "1:35"
    assert (await cdp.eval(_cb("told")), await cdp.eval(_cb("told-delay"))) == \
        ("1:00", "1:35")
    assert await cdp.eval("document.querySelector('[data-cb=\"told-delay\"]')"
                          ".className") == "late"
    row = "document.querySelector('[data-campaign=\"spring\"] [data-field=\"{}\"]')" \
          ".textContent"
    await dom_until(cdp, row.format("contacts"), "3", 6)
    assert await cdp.eval(row.format("outcomes")) == "sold 1"
    assert await cdp.eval(row.format("reached")) == "0"
    label = await cdp.eval("document.querySelector('#callbacks h3').textContent")
    assert label == "回拨Callbacks"
    shot = await cdp.send("Page.captureScreenshot", format="png",
                          captureBeyondViewport=True)
    (artifacts / "wallboard-outbound.png").write_bytes(base64.b64decode(shot["data"]))
