"""Listen / whisper / barge end to end (issue 13.4): a SIPp caller talks to a SIPp agent
through the real Asterisk 22; a supervisor asks the API to whisper on that call; the
engine originates — through the separate, originate-only AMI account — a call to the
supervisor's own SIPp phone into the closed ``[acd-spy]`` context, which runs ChanSpy on
the agent's channel with the whisper options (``w``: the agent hears the supervisor, the
caller does not). Asserted with Asterisk's CLI: the supervisor's channel runs ChanSpy on
``PJSIP/agent8001-`` with ``qEw`` while the agent's channel is up; the audit log names
who whispered on which call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from api.app import create_app
from api.server import serving
from harness.rig import AgentPlan, Rig
from harness.sipp import start_uas

pytestmark = pytest.mark.e2e

TOKEN = "e2e-supervisor-zhang-0123456789"


async def test_supervisor_whispers_on_a_live_call_from_its_own_phone(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("8001", talk_ms=(12000, 12000))]
    rig = Rig(artifacts, plans)
    phone = await start_uas("agent_answer", rig.ports, artifacts, "sup1",
                            variables={"talk_min": 6000, "talk_max": 6000},
                            trace_messages=False)
    try:
        rig.extra_config = {
            "api": {"tokens": [{"name": "zhang", "role": "supervisor", "env": "SUP_TOKEN",
                                "supervisor": "zhang"}]},
            "supervision": {"supervisors": [
                {"id": "zhang", "endpoint": "sup1",
                 "contact": f"sip:sup1@127.0.0.1:{phone.port}"}]}}
        async with rig:
            assert rig.engine is not None and rig.config is not None
            assert rig.asterisk is not None
            env = {"SUP_TOKEN": TOKEN,
                   "ACD_AMI_SPY_SECRET": rig._sip_env["ACD_AMI_SPY_SECRET"]}
            app = create_app(rig.engine, rig.config, registry=CollectorRegistry(),
                             environ=env)
            async with serving(app) as server, httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{server.port}",
                    headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                caller = asyncio.create_task(rig.call(["13912345001"], time_limit=40))
                await rig.wait_for(lambda: rig.published("call_connected"), within=15)
                call_id = rig.published("call_connected")[0]["call_id"]
                r = await http.post(f"/api/v1/calls/{call_id}/spy", json={"mode": "whisper"})
                assert r.status_code == 200, r.text
                spying = ""
                for _ in range(50):
                    out = await asyncio.to_thread(
                        rig.asterisk.cli, "core show channels concise")
                    spying = next((line for line in out.splitlines()
                                   if line.startswith("PJSIP/sup1-")), "")
                    if "ChanSpy" in spying:
                        break
                    await asyncio.sleep(0.2)
                fields = spying.split("!")
                assert fields[5] == "ChanSpy", spying  # the application
                assert fields[6] == "PJSIP/agent8001-,qEw", spying  # whisper, agent only
                assert fields[1] == "acd-spy" and fields[2] == "whisper"
                assert any(line.startswith("PJSIP/agent8001-") and "!Up!" in line
                           for line in out.splitlines())
                # outside the API's rules: a call not in conversation is refused
                refused = await http.post("/api/v1/calls/nope/spy", json={"mode": "barge"})
                assert refused.status_code == 404
                audit = app.state.audit.entries
                assert [(e["who"], e["detail"]) for e in audit
                        if e["action"].endswith("/spy") and e["status"] == 200] == [
                    ("zhang", f"whisper call {call_id} agent 8001")]
                result = await caller
                assert result.failed == 0, result.errors_text()
    finally:
        await phone.stop()
