"""The ``acd`` command as operators run it: check-config, serve's refusals,
asterisk-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "acd.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_check_config_reports_errors_and_warnings_in_one_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "queues:\n  - {id: repair, skills: {repair: 3}, groups: [bejing]}\n"
                           "dids:\n  01065550100: repiar\n"
                           "agents:\n  - {id: 1002, skills: {repair: 7}}\n")
    assert main(["check-config", path]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}: dids.01065550100 (line 4): unknown queue 'repiar' (did you mean "
        "'repair'?)",
        f"{path}: agents[1002].skills.repair (line 6): Input should be less than or "
        "equal to 5",
        f"{path}: 2 error(s)",
    ]
    fixed = write(tmp_path, "queues:\n  - {id: repair, skills: {repair: 3}, groups: [bejing]}\n"
                            "dids:\n  01065550100: repair\n"
                            "agents:\n  - {id: 1002, skills: {repair: 4}, groups: [beijing],\n"
                            "     contact: 'sip:a@192.0.2.1'}\n", "fixed.yaml")
    assert main(["check-config", fixed]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"{fixed}: OK (1 queues, 1 agents, 2 warning(s))"
    assert out.err.splitlines() == [
        f"warning: {fixed}: queues[repair].groups (line 2): group 'bejing': no agent is in "
        "it and no site has that id (did you mean 'beijing'?)",
        f"warning: {fixed}: queues[repair] (line 2): no agent can serve queue 'repair' at "
        "stage 0 (needs repair ≥ 3 in groups bejing): no stage admits an agent either: "
        "its callers are never served",
    ]
