"""Config validation: every error names the file, the key path and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.config import ConfigError, load_config, parse_config
from acd.config.asterisk import render

ROOT = Path(__file__).resolve().parents[2]


def test_sample_config_is_valid() -> None:
    cfg = load_config(ROOT / "config" / "acd.sample.yaml")
    assert cfg.queue_for_did("4008001234").id == "consult"
    assert cfg.queue_for_did("999").id == cfg.default_queue


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "acd.yaml")
    return exc.value.errors


def test_field_errors_name_file_path_and_line() -> None:
    errs = errors("queues:\n  - id: a\n    skills: {x: 9}\n")
    assert errs == ["acd.yaml: queues[0].skills.x (line 3): "
                    "Input should be less than or equal to 5"]


def test_cross_reference_errors_are_all_reported() -> None:
    errs = errors('queues: [{id: a}]\nagents: [{id: "1"}, {id: "1"}]\n'
                  'dids: {"400": nope}\ndefault_queue: zz\n')
    assert any("agents[1].id" in e and "duplicate agent id" in e for e in errs)
    assert any(e.startswith("acd.yaml: dids.400") and "unknown queue 'nope'" in e
               for e in errs)
    assert any("default_queue (line 4)" in e for e in errs)


def test_unknown_keys_and_bad_yaml() -> None:
    assert any("quues" in e and "Extra inputs" in e for e in errors("quues: []\nqueues: [{id: a}]"))
    assert errors("queues: [\n")[0].startswith("acd.yaml (line 2, column 1): invalid YAML")
    assert errors("") == ["acd.yaml: the file is empty"]
    assert errors("- a\n") == ["acd.yaml: the top level must be a mapping of sections"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read" in exc.value.errors[0]


def test_secret_comes_from_env_and_is_not_shown() -> None:
    cfg = parse_config("queues: [{id: a}]\n")
    secret = cfg.asterisk.ami.secret({"ACD_AMI_SECRET": "s3cret"})
    assert secret.get_secret_value() == "s3cret" and "s3cret" not in repr(secret)
    with pytest.raises(ConfigError, match="ACD_AMI_SECRET is not set"):
        cfg.asterisk.ami.secret({})


def test_asterisk_config_declares_each_agent_once() -> None:
    cfg = parse_config(
        "queues: [{id: a}]\nagents:\n"
        '  - {id: "1", endpoint: agent1, contact: "sip:agent1@127.0.0.1:6001"}\n'
        '  - {id: "2", endpoint: agent2, password_env: AGENT2_PW}\n'
    )
    files = render(cfg, {"AGENT2_PW": "pw"})
    pj = files["pjsip_acd.conf"]
    assert "[agent1]\ntype=endpoint" in pj and "contact=sip:agent1@127.0.0.1:6001" in pj
    assert "[agent2-auth]" in pj and "password=pw" in pj and "max_contacts=1" in pj
    assert files["queues_acd.conf"].count("member => PJSIP/") == 2
    with pytest.raises(ConfigError, match="AGENT2_PW is not set"):
        render(cfg, {})


def test_asterisk_config_renders_a_transfer_code_per_queue() -> None:
    cfg = parse_config(
        "queues:\n"
        '  - {id: consult, transfer_code: "81"}\n'
        "  - {id: repair}\n"
        '  - {id: complaint, transfer_code: "82"}\n'
    )
    ext = render(cfg, {})["extensions_acd.conf"]
    assert ext.startswith("; GENERATED")
    body = [line for line in ext.splitlines() if line and not line.startswith(";")]
    assert body == [
        "[acd-transfer]",
        "exten => *81,1,Set(ACD_QUEUE=consult)",
        ' same => n,ExecIf($["${ACD_CALL_ID}" = ""]?Hangup(21))',
        " same => n,Goto(hotline-acd,s,1)",
        "exten => *82,1,Set(ACD_QUEUE=complaint)",
        ' same => n,ExecIf($["${ACD_CALL_ID}" = ""]?Hangup(21))',
        " same => n,Goto(hotline-acd,s,1)",
    ]
    # No transfer code anywhere: the context still exists ([acd-agents] includes it).
    empty = render(parse_config("queues: [{id: a}]\n"), {})["extensions_acd.conf"]
    assert [line for line in empty.splitlines() if line and not line.startswith(";")] == [
        "[acd-transfer]"]


def test_transfer_codes_are_digits_and_unique() -> None:
    errs = errors('queues:\n  - {id: a, transfer_code: "8*2"}\n')
    assert len(errs) == 1 and errs[0].startswith("acd.yaml: queues[0].transfer_code (line 2)")
    assert any("queues[0].transfer_code" in e for e in errors(
        'queues:\n  - {id: a, transfer_code: "1234567"}\n'))
    errs = errors('queues:\n  - {id: a, transfer_code: "82"}\n'
                  '  - {id: b, transfer_code: "82"}\n')
    assert errs == ["acd.yaml: queues[1].transfer_code (line 3): transfer code '82' used twice"]


def _wrapuptime(queues_acd: str) -> list[str]:
    return [line for line in queues_acd.splitlines() if line.startswith("wrapuptime")]


def test_asterisk_config_fallback_wrapuptime_defaults_to_the_queue_and_can_be_overridden(
) -> None:
    cfg = parse_config("queues: [{id: a, wrap_up: 3}]\n")
    assert _wrapuptime(render(cfg, {})["queues_acd.conf"]) == ["wrapuptime = 3"]
    # app_queue's wrapuptime is whole seconds: a fractional wrap_up is rounded.
    frac = parse_config("queues: [{id: a, wrap_up: 1.5}]\n")
    assert _wrapuptime(render(frac, {})["queues_acd.conf"]) == ["wrapuptime = 2"]
    # Overridden (benchmarks): only the fallback queue changes, not the engine's wrap_up.
    files = render(frac, {}, fallback_wrapup=1)
    assert _wrapuptime(files["queues_acd.conf"]) == ["wrapuptime = 1"]
    assert frac.queue("a").wrap_up == 1.5
    assert _wrapuptime(render(cfg, {}, fallback_wrapup=0)["queues_acd.conf"]) == [
        "wrapuptime = 0"]
    with pytest.raises(ValueError, match="fallback_wrapup"):
        render(cfg, {}, fallback_wrapup=-1)


@pytest.mark.parametrize(("app_queue_wrapup", "expected"), [(None, "0"), (2, "2")])
async def test_rig_applies_app_queue_wrapup_to_queues_acd_conf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_queue_wrapup: int | None,
        expected: str) -> None:
    """``Rig(app_queue_wrapup=...)`` reaches the Asterisk files (no Asterisk started)."""
    import harness.rig
    from harness.rig import AgentPlan, Rig

    written: dict[str, str] = {}

    class FakeAsterisk:
        def __init__(self, name: str, ports: object, conf_vars: object,
                     extra_files: dict[str, str]) -> None:
            written.update(extra_files)

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def save_logs(self, dest: Path) -> None:
            pass

        def remove(self) -> None:
            pass

    monkeypatch.setattr(harness.rig, "AsteriskInstance", FakeAsterisk)
    async with Rig(tmp_path, [AgentPlan("1001", scenario=None)], engine="none",
                   wrap_up=0.5, app_queue_wrapup=app_queue_wrapup) as rig:
        assert rig.config is not None and rig.config.queue("consult").wrap_up == 0.5
    # Default: the engine queue's 0.5 s rounded (half to even, as before) → 0.
    assert _wrapuptime(written["queues_acd.conf"]) == [f"wrapuptime = {expected}"]
