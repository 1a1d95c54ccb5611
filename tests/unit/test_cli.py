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
    assert main(["check-config", "--no-env", fixed]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"{fixed}: OK (1 queues, 1 agents, 2 warning(s))"
    assert out.err.splitlines() == [
        f"warning: {fixed}: queues[repair].groups (line 2): group 'bejing': no agent is in "
        "it and no site has that id (did you mean 'beijing'?)",
        f"warning: {fixed}: queues[repair] (line 2): no agent can serve queue 'repair' at "
        "stage 0 (needs repair ≥ 3 in groups bejing): no stage admits an agent either: "
        "its callers are never served",
    ]


SECRETS_CONFIG = """
asterisk:
  servers:
    - {name: east, ami: {secret_env: ACD_TEST_AMI_EAST}}
    - {name: west, ami: {secret_env: ACD_TEST_AMI_WEST}}
queues: [{id: consult, skills: {consult: 1}}]
agents:
  - {id: "1001", skills: {consult: 1}, password_env: ACD_TEST_SIP_1001}
  - {id: "1002", skills: {consult: 1}, contact: "sip:agent2@192.0.2.2"}
api:
  tokens:
    - {name: wallboard, role: supervisor, env: ACD_TEST_TOKEN_WALLBOARD}
    - {name: ops, role: admin, env: ACD_TEST_TOKEN_WALLBOARD}
"""
SECRET_VARS = ("ACD_TEST_AMI_EAST", "ACD_TEST_AMI_WEST", "ACD_TEST_SIP_1001",
               "ACD_TEST_TOKEN_WALLBOARD")


def test_check_config_reports_every_missing_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets named in the config must be present (issue 15.2)."""
    path = write(tmp_path, SECRETS_CONFIG)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACD_TEST_AMI_WEST", "x")
    assert main(["check-config", path]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "environment: ACD_TEST_AMI_EAST is not set (AMI secret of Asterisk server 'east', "
        "user 'acd')",
        "environment: ACD_TEST_TOKEN_WALLBOARD is not set (API token 'wallboard', role "
        "supervisor)",
        "environment: ACD_TEST_SIP_1001 is not set (SIP password of agent 1001)",
        f"{path}: 3 error(s)",
    ]
    assert main(["check-config", "--no-env", path]) == 0
    capsys.readouterr()
    for name in SECRET_VARS:
        monkeypatch.setenv(name, "k8Zq2mVt0pLw-" + name)
    assert main(["check-config", path]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK (1 queues, 2 agents)"


def test_serve_refuses_to_start_without_the_ami_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, SECRETS_CONFIG)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACD_TEST_AMI_EAST", "x")

    def must_not_run(*args: object) -> None:
        raise AssertionError("the engine started")

    monkeypatch.setattr("app.cli._serve", must_not_run)
    with pytest.raises(SystemExit) as exc:
        main(["serve", "-c", path])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "acd serve: environment: ACD_TEST_AMI_WEST is not set" in err
    assert "for Asterisk server 'west'" in err and "--no-ami" in err


def test_serve_without_ami_only_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, SECRETS_CONFIG)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    started: list[object] = []

    async def fake_serve(config: object, secrets: object) -> None:
        started.append(secrets)

    monkeypatch.setattr("app.cli._serve", fake_serve)
    assert main(["serve", "-c", path, "--no-ami"]) == 0
    assert started == [None]
    assert "WITHOUT AMI (--no-ami)" in caplog.text
    monkeypatch.setenv("ACD_TEST_AMI_EAST", "e")
    monkeypatch.setenv("ACD_TEST_AMI_WEST", "w")
    assert main(["serve", "-c", path]) == 0
    assert started[-1] == {"east": "e", "west": "w"}


def test_serve_refuses_placeholder_secrets_unless_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, SECRETS_CONFIG)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACD_TEST_AMI_EAST", "change-me-east")
    monkeypatch.setenv("ACD_TEST_AMI_WEST", "9d2c71e04b")
    monkeypatch.delenv("ACD_ALLOW_PLACEHOLDER_SECRETS", raising=False)
    started: list[object] = []

    async def fake_serve(config: object, secrets: object) -> None:
        started.append(secrets)

    monkeypatch.setattr("app.cli._serve", fake_serve)
    with pytest.raises(SystemExit) as exc:
        main(["serve", "-c", path])
    assert exc.value.code == 2 and started == []
    assert "ACD_TEST_AMI_EAST is a placeholder" in capsys.readouterr().err
    monkeypatch.setenv("ACD_ALLOW_PLACEHOLDER_SECRETS", "1")  # smoke tests of examples
    assert main(["serve", "-c", path]) == 0 and started
