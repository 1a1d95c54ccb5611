"""The supervisor console in a real browser on a real hotline (issue 13).

Headless Chromium (real clicks and typing over DevTools) on an engine + Asterisk 22 rig
with a SIPp agent phone and a SIPp caller. Every agent is logged out, so the caller
waits; the supervisor signs in with its password, sees the waiting caller, moves it to
another queue and back (it keeps its place), forces the agent's state (pause, then
ready: the caller is answered), and finds each action in the audit log.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from acd.config import passwords
from api.app import create_app
from api.server import serving
from harness.rig import AgentPlan, Rig
from harness.sandbox import REPO_ROOT
from tests.e2e.test_desk import click, press, text_of, type_into
from tests.e2e.test_wallboard import chromium, dom_until

pytestmark = pytest.mark.e2e

PASSWORD = "console-pass-1"


async def test_supervisor_moves_a_waiting_caller_forces_agent_state_and_is_audited(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("8001", status="logged_out", talk_ms=(800, 1200))]
    supervision = {"supervisors": [{"id": "boss", "name": "王主管", "role": "admin",
                                    "password_hash": passwords.hash_password(PASSWORD)}]}
    queues = [{"id": "consult", "name": "Consultation", "skills": {"consult": 1},
               "wrap_up": 0.5, "sl_target": 20},
              {"id": "repair", "skills": {"repair": 1}, "sl_target": 30}]
    async with Rig(artifacts, plans, extra_config={
            "api": {}, "supervision": supervision, "queues": queues}) as rig:
        assert rig.engine is not None and rig.config is not None
        app = create_app(rig.engine, rig.config, registry=CollectorRegistry())
        async with serving(app) as server, \
                chromium(f"http://127.0.0.1:{server.port}/console", artifacts) as cdp:
            await dom_until(cdp, "document.readyState", "complete", 10)
            await type_into(cdp, "#signin-id", "boss")
            await type_into(cdp, "#signin-pw", PASSWORD)
            await press(cdp, "Enter", "Enter", 13)
            await dom_until(cdp, "document.querySelector('#console').hidden", False, 5)
            await dom_until(cdp, "document.querySelector('#conn').dataset.state", "live", 5)
            await dom_until(cdp, text_of('[data-agent="8001"] [data-field="presence"]'),
                            "已签出 Logged out", 5)

            caller = asyncio.create_task(rig.call(["13912345001"], time_limit=40))
            await dom_until(cdp, "document.querySelectorAll('#waiting tr').length", 1, 15)
            call_id = await cdp.eval("document.querySelector('#waiting tr').dataset.call")
            # move to repair (the only other queue in the list), then back
            await click(cdp, '#waiting tr [data-action="move"]')
            await dom_until(cdp, text_of('#waiting tr td:nth-child(2)'), "repair", 5)
            assert rig.engine.core.calls[call_id].queue_id == "repair"
            await click(cdp, '#waiting tr [data-action="move"]')
            await dom_until(cdp, text_of('#waiting tr td:nth-child(2)'), "consult", 5)
            # force the agent's state: pause (lunch), then ready: the caller is answered
            await click(cdp, "#reason")
            await press(cdp, "ArrowDown", "ArrowDown", 40)
            await press(cdp, "Enter", "Enter", 13)
            await dom_until(cdp, "document.querySelector('#reason').value", "lunch", 3)
            await click(cdp, '[data-agent="8001"] [data-action="pause"]')
            await dom_until(cdp, text_of('[data-agent="8001"] [data-field="presence"]'),
                            "暂停 Paused (lunch)", 5)
            shot = await cdp.send("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
            (artifacts / "supervisor-console.png").write_bytes(png)
            if os.environ.get("ACD_DOCS_SCREENSHOTS"):  # refresh the guides' picture
                (REPO_ROOT / "docs" / "images" / "supervisor-console.png").write_bytes(png)
            await click(cdp, '[data-agent="8001"] [data-action="ready"]')
            await dom_until(cdp, "document.querySelectorAll('#waiting tr').length", 0, 10)
            result = await caller
            assert result.failed == 0, result.errors_text()
            assert rig.published("call_completed")[0]["agent"] == "8001"
            # the audit log (this supervisor is an admin): newest first
            await dom_until(cdp, "document.querySelectorAll('#audit tr').length", 5, 5)
            actions = await cdp.eval(
                "[...document.querySelectorAll('#audit tr')].map(r => "
                "r.children[1].textContent + ' ' + r.children[2].textContent + ' ' + "
                "r.children[3].textContent)")
            assert actions == [
                "supervisor:boss POST /api/v1/agents/8001/state 200",
                "supervisor:boss POST /api/v1/agents/8001/state 200",
                f"supervisor:boss POST /api/v1/calls/{call_id}/move 200",
                f"supervisor:boss POST /api/v1/calls/{call_id}/move 200",
                "supervisor:boss POST /api/v1/session 200"]
