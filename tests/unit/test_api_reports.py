"""/api/v1/reports over a node with history (SQLite): today's report = the live "today";
roles; masked numbers; CSV; the chart; the page's CSP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from acd.config import ApiRole, Config
from acd.domain import CallHungUp, DialFinished, Offer
from api.auth import Principal, TokenStore
from tests.unit.conftest import ApiRig

SUP, ADMIN, AGENT = "s" * 24, "a" * 24, "g" * 24
TOKENS = TokenStore([(SUP, Principal("wallboard", ApiRole.SUPERVISOR)),
                     (ADMIN, Principal("ops", ApiRole.ADMIN)),
                     (AGENT, Principal("agent-1001", ApiRole.AGENT, "1001"))])


def config(tmp_path: Path) -> Config:
    return Config.model_validate({
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0,
                    "sl_target": 20}],
        "agents": [{"id": "1001", "skills": {"consult": 1}},
                   {"id": "1002", "skills": {"consult": 1}}],
        "api": {},
        "history": {"url": f"sqlite:///{tmp_path / 'h.db'}",
                    "spool_dir": str(tmp_path / "spool"), "flush_interval": 0.05,
                    "recordings_dir": str(tmp_path / "rec")},
    })


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def burst(rig: ApiRig) -> None:
    """Six calls: four answered (some after a wait over the target), two abandoned."""
    for i in range(6):
        rig.arrive(f"c{i}", session=True, caller=f"1380013800{i}", waited=25.0 * (i % 2))
    await rig.settle()
    answered: set[str] = set()
    while len(answered) < 4:
        for call_id, q in rig.sessions.items():
            if call_id in answered or q.empty():
                continue
            offer = q.get_nowait()
            assert isinstance(offer, Offer)
            rig.engine.post(DialFinished(call_id, offer.agent_id, "ANSWER",
                                         rig.engine.clock(), 2.0))
            answered.add(call_id)
            if len(answered) == 4:
                break
        await rig.settle()
        await asyncio.sleep(0.01)  # wrap-up (0 s) timers
    for call_id in set(rig.sessions) - answered:
        rig.engine.post(CallHungUp(call_id, rig.engine.clock()))
    await rig.settle()
    history = rig.node.history
    assert history is not None
    await asyncio.wait_for(history.writer.drained(), 10)


async def test_todays_report_equals_the_live_today(tmp_path: Path) -> None:
    async with ApiRig(config(tmp_path), tokens=TOKENS, headers=h(SUP)) as rig:
        await burst(rig)
        live = (await rig.get("/api/v1/queues/consult"))["today"]
        report = await rig.get("/api/v1/reports/calls?by=queue")
        (row,) = report["rows"]
        for live_key, report_key in (("offered", "offered"), ("answered", "answered"),
                                     ("abandoned", "abandoned"),
                                     ("answered_within_target", "answered_within"),
                                     ("abandoned_after_target", "abandoned_after"),
                                     ("completed", "handled")):
            assert row[report_key] == live[live_key], live_key
        assert (row["offered"], row["answered"], row["abandoned"]) == (6, 4, 2)
        for live_key, report_key in (("service_level", "service_level"),
                                     ("asa_seconds", "asa"), ("aht_seconds", "aht"),
                                     ("abandon_rate", "abandon_rate")):
            assert row[report_key] == pytest.approx(live[live_key], abs=1e-3), live_key  # API: ms
        intervals = await rig.get("/api/v1/reports/calls?by=all&granularity=15m")
        assert sum(r["offered"] for r in intervals["rows"]) == 6


async def test_roles_and_masked_numbers(tmp_path: Path) -> None:
    async with ApiRig(config(tmp_path), tokens=TOKENS, headers=h(SUP)) as rig:
        await burst(rig)
        assert (await rig.http.get("/api/v1/reports/calls")).status_code == 401
        r = await rig.http.get("/api/v1/reports/calls", headers=h(AGENT))
        assert r.status_code == 403
        sup = (await rig.get("/api/v1/reports/records"))["records"]
        assert len(sup) == 6
        assert all("****" in r["caller"] for r in sup)          # supervisor: masked
        admin = (await rig.get("/api/v1/reports/records", h(ADMIN)))["records"]
        assert {r["caller"] for r in admin} == {f"1380013800{i}" for i in range(6)}
        mine = (await rig.get("/api/v1/reports/records", h(AGENT)))["records"]
        assert mine and all(r["agent"] == "1001" for r in mine)
        assert all("****" not in r["caller"] for r in mine)     # its own callers
        one = await rig.get(f"/api/v1/reports/records/{admin[0]['call_id']}", h(ADMIN))
        assert one["legs"][0]["offers"]


async def test_csv_chart_agents_and_page(tmp_path: Path) -> None:
    async with ApiRig(config(tmp_path), tokens=TOKENS, headers=h(SUP)) as rig:
        await burst(rig)
        csv = await rig.http.get("/api/v1/reports/calls?format=csv", headers=h(SUP))
        assert csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.strip().splitlines()
        assert lines[0].startswith("label,key,offered,answered") and len(lines) == 2
        svg = await rig.http.get("/api/v1/reports/chart.svg?metric=volume", headers=h(SUP))
        assert svg.text.startswith("<svg") and "<rect" in svg.text
        agents: dict[str, Any] = await rig.get("/api/v1/reports/agents")
        by_agent = {r["agent"]: r for r in agents["rows"]}
        assert sum(r["answered"] for r in by_agent.values()) == 4
        assert all(r["staffed"] > 0 for r in by_agent.values())
        page = await rig.http.get("/reports")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert '<html lang="zh-CN">' in page.text and "<script src=" in page.text
        assert "<script>" not in page.text
        assert (await rig.http.get("/reports.js")).status_code == 200


async def test_no_history_section_is_404(tmp_path: Path) -> None:
    cfg = config(tmp_path).model_copy(update={"history": None})
    async with ApiRig(cfg, tokens=TOKENS, headers=h(SUP)) as rig:
        r = await rig.http.get("/api/v1/reports/calls", headers=h(SUP))
        assert r.status_code == 404


async def test_replay_of_today_next_to_what_happened(tmp_path: Path) -> None:
    async with ApiRig(config(tmp_path), tokens=TOKENS, headers=h(SUP)) as rig:
        await burst(rig)
        r = await rig.get("/api/v1/reports/replay")
        both = r["queues"]["consult"]
        assert both["actual"]["offered"] == both["replay"]["offered"] == 6
        assert (await rig.http.get("/api/v1/reports/replay", headers=h(AGENT))
                ).status_code == 403


async def test_callback_outcomes_report_api_csv_and_page(tmp_path: Path) -> None:
    async with ApiRig(config(tmp_path), tokens=TOKENS, headers=h(SUP)) as rig:
        await burst(rig)  # no callbacks: no rows, a total of zeros
        report = await rig.get("/api/v1/reports/callbacks?by=queue&granularity=day")
        assert report["rows"] == [] and report["total"]["callbacks_requested"] == 0
        assert report["total"]["callback_delay_mean"] is None
        r = await rig.http.get("/api/v1/reports/callbacks", headers=h(AGENT))
        assert r.status_code == 403
        calls = await rig.get("/api/v1/reports/calls?by=queue")
        assert calls["rows"][0]["callbacks_requested"] == 0
        csv = await rig.http.get("/api/v1/reports/calls?format=csv", headers=h(SUP))
        assert "callbacks_requested" in csv.text.splitlines()[0]
        page = await rig.http.get("/reports")
        assert 'id="callbacks"' in page.text and 'id="callbacks-csv"' in page.text
        js = (await rig.http.get("/reports.js")).text
        assert "/api/v1/reports/callbacks?" in js
