"""Chinese defaults on the real Asterisk (issue 15.10): callers' prompts in the hotline's
language (``zh`` unless the config says otherwise), per DID in every form a carrier
writes it; endpoints offer A-law first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.rig import DID, AgentPlan, Rig

pytestmark = pytest.mark.e2e


async def test_language_per_did_and_a_law_first(chroot: Path, artifacts: Path) -> None:
    extra = {"dids": {DID: "consult", "4008005678": {"queue": "consult", "language": "en"}}}
    async with Rig(artifacts, [AgentPlan("1001", talk_ms=(300, 500))],
                   extra_config=extra) as rig:
        assert rig.asterisk is not None
        for did, caller in ((DID, "13800000001"), ("+864008005678", "13800000002"),
                            ("00864008005678", "13800000003")):
            result = await rig.call([caller], service=did, name=f"to-{caller}",
                                    time_limit=30)
            assert result.failed == 0, result.errors_text()
        log = rig.asterisk.log_path.read_text(errors="replace")
        set_language = re.findall(
            r'Executing \[[^@\]]+@acd-language:1\] Set\("PJSIP/carrier-sandbox-\w+", '
            r'"CHANNEL\(language\)=(\w+)"\)', log)
        assert set_language == ["zh", "en", "en"]
        waiting = [e["queue"] for e in rig.published("call_waiting")]
        assert waiting == ["consult"] * 3
        endpoint = rig.asterisk.cli("pjsip show endpoint agent1001")
        assert re.search(r"^\s*allow\s*:\s*\(alaw\|ulaw\)", endpoint, re.M), endpoint
        assert re.search(r"^\s*language\s*:\s*zh\s*$", endpoint, re.M), endpoint
