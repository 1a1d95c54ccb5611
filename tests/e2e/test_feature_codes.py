"""Agents' phone feature codes end to end (issue 13.3): a SIPp phone registered as the
agent's endpoint dials ``*50`` (log in), ``*52`` (pause), ``*53`` (ready) and ``*51``
(log out) into the real Asterisk 22; the rendered ``[acd-features]`` context runs the
engine's FastAGI ``/feature``, which finds the agent by the channel's endpoint and applies
the same domain command as the API; a prompt confirms and Asterisk hangs up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.domain import AgentStatus
from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e


async def test_agent_logs_in_pauses_readies_and_logs_out_from_its_phone(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("8001", status="logged_out")]
    async with Rig(artifacts, plans) as rig:
        assert rig.engine is not None
        agent = rig.engine.core.agents["8001"]
        assert agent.status is AgentStatus.LOGGED_OUT
        steps = [("*50", AgentStatus.AVAILABLE, ""), ("*52", AgentStatus.PAUSED, "break"),
                 ("*53", AgentStatus.AVAILABLE, ""), ("*51", AgentStatus.LOGGED_OUT, "")]
        for code, status, reason in steps:
            result = await rig.call(["agent8001"], service=code, time_limit=20,
                                    name=f"code{code[1:]}")
            assert result.failed == 0, f"{code}: {result.errors_text()}"
            await rig.wait_for(lambda s=status: agent.status is s, within=5)  # type: ignore[misc]
            assert agent.reason == reason
        statuses: list[str] = []
        for e in rig.published("agent"):  # the statuses in order (the phone's state too)
            if e["agent"] == "8001" and (not statuses or statuses[-1] != e["status"]):
                statuses.append(e["status"])
        assert statuses[-4:] == ["available", "paused", "available", "logged_out"]
