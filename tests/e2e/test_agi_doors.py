"""FastAGI's door against the real Asterisk 22 (issue 10.1).

* With ``fastagi.secret_env`` the engine asks each new session for
  ``${ENV(ACD_AGI_SECRET)}``: the real Asterisk answers from its own environment, the
  call is served, and the secret shows up in no log (Asterisk's verbose log included:
  the dialplan never carries it).
* An Asterisk with the wrong secret, or one whose address is not in ``fastagi.allow``,
  is refused like an engine that cannot be reached: the dialplan retries, then app_queue
  serves the callers. Nobody is dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness.rig import AgentPlan, Rig

pytestmark = pytest.mark.e2e

SECRET = "agi-shared-secret-0123456789abcdef"
CALLERS = ["13800000101", "13900000102"]


def served_by_engine(rig: Rig) -> set[str]:
    return {e["caller"] for e in rig.published("call_waiting")}


async def test_the_real_asterisk_proves_the_shared_secret_and_is_served(
        chroot: Path, artifacts: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with Rig(artifacts, [AgentPlan("7101", talk_ms=(300, 600))],
                   agi_secret=SECRET) as rig:
        assert rig.engine is not None and rig.node is not None and rig.asterisk is not None
        result = await rig.call(CALLERS, rate=4, time_limit=60)
        assert result.failed == 0 and result.successful == 2, result.errors_text()
        await rig.wait_for(lambda: len(rig.published("call_completed")) == 2)
        assert served_by_engine(rig) == set(CALLERS)
        assert not any(rig.node.agi_guard.refused.values())
        asterisk_log = rig.asterisk.log_path.read_text(errors="replace")
        assert "Executing [" in asterisk_log  # verbose 3: the dialplan is logged ...
        assert "app_queue fallback" not in asterisk_log
    assert SECRET not in asterisk_log  # ... but never the secret
    assert SECRET not in caplog.text
    assert not files_holding(artifacts, SECRET.encode())  # logs, configs, SIPp traces


def files_holding(directory: Path, data: bytes) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and data in p.read_bytes()]


@pytest.mark.parametrize("door", ["wrong secret", "not allowed"])
async def test_a_refused_asterisk_falls_back_to_app_queue_and_nobody_is_dropped(
        chroot: Path, artifacts: Path, door: str) -> None:
    kwargs: dict = {"agi_secret": SECRET, "asterisk_env": {"ACD_AGI_SECRET": "guessed"}} \
        if door == "wrong secret" else {
            "extra_config": {"fastagi": {"allow": ["192.0.2.0/24"]}}}
    async with Rig(artifacts, [AgentPlan("7201", talk_ms=(300, 600))], agi_retries=2,
                   agi_retry_pause=1, **kwargs) as rig:
        assert rig.node is not None and rig.asterisk is not None
        if door == "not allowed":
            assert rig.node.config.fastagi.allow == ["192.0.2.0/24"]
        result = await rig.call(CALLERS, rate=4, time_limit=60)
        assert result.failed == 0 and result.successful == 2, result.errors_text()
        assert served_by_engine(rig) == set()  # the engine took none of them ...
        log = rig.asterisk.log_path.read_text(errors="replace")
        fallbacks = [line for line in log.splitlines() if " WARNING[" in line
                     and "engine unreachable, app_queue fallback" in line]
        assert len(fallbacks) == 2  # ... app_queue did
        reason = "secret" if door == "wrong secret" else "not_allowed"
        refused = rig.node.agi_guard.refused
        assert refused[reason] == 2 * 2  # two callers, two attempts each
        assert sum(refused.values()) == refused[reason]


async def test_a_request_uri_user_with_a_comma_cannot_add_agi_arguments(
        chroot: Path, artifacts: Path) -> None:
    """Issue 10.9: "4008001234,evil" as the dialled number. The dialplan keeps only
    digits, + * # of it (FILTER) and quotes the AGI arguments: the engine gets the DID
    4008001234 and the real server name, and the caller is served in that DID's queue."""
    async with Rig(artifacts, [AgentPlan("7301", talk_ms=(300, 600))]) as rig:
        result = await rig.call(["13800000301"], time_limit=60,
                                service="4008001234,evil")
        assert result.failed == 0 and result.successful == 1, result.errors_text()
        waiting = rig.published("call_waiting")
        assert [(w["queue"], w["did"], w["server"]) for w in waiting] == [
            ("consult", "4008001234", "main")]
