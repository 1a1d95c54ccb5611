"""Config validation: every error names the file, the key path and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acd.config import (
    ConfigError,
    ConfigReport,
    check_file,
    check_text,
    load_config,
    parse_config,
)
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
    assert errs == ["acd.yaml: queues[a].skills.x (line 3): "
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
    ext = ext[:ext.index("[acd-language]")]
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
    empty = empty[:empty.index("[acd-language]")]
    assert [line for line in empty.splitlines() if line and not line.startswith(";")] == [
        "[acd-transfer]"]


def test_transfer_codes_are_digits_and_unique() -> None:
    errs = errors('queues:\n  - {id: a, transfer_code: "8*2"}\n')
    assert len(errs) == 1 and errs[0].startswith("acd.yaml: queues[a].transfer_code (line 2)")
    assert any("queues[a].transfer_code" in e for e in errors(
        'queues:\n  - {id: a, transfer_code: "1234567"}\n'))
    errs = errors('queues:\n  - {id: a, transfer_code: "82"}\n'
                  '  - {id: b, transfer_code: "82"}\n')
    assert errs == ["acd.yaml: queues[b].transfer_code (line 3): transfer code '82' used twice"]


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


# --------------------------------------------------------------------------- numbers


def test_numbers_stay_as_written() -> None:
    """Unquoted DIDs, codes and phone numbers are text: an octal-looking landline DID is
    not read as 148295744, a 400 number not as an integer (issue 15.4)."""
    cfg = parse_config(
        "queues:\n  - {id: repair, transfer_code: 81, wrap_up: 2.5}\n"
        "agents: [{id: 1002, skills: {repair: 3}}]\n"
        "dids:\n  01065550100: repair\n  4008001234: repair\n"
        "ivr: {options: {1: repair}}\n"
        "segments: [{id: vip, numbers: [13800138000, +8613900139000]}]\n"
        "sites: [{id: p, kind: partner, number: 4001, trunk: {contact: 'sip:192.0.2.1'}}]\n"
        "regions: {overrides: {13800138000: CN-GD}}\n"
        "engine: {ring_timeout: 020, unreachable_retry: 7.5}\n")
    assert set(cfg.dids) == {"01065550100", "4008001234"}
    assert cfg.queue("repair").transfer_code == "81"
    assert cfg.agents[0].id == "1002"
    assert cfg.ivr is not None and cfg.ivr.options == {"1": "repair"}
    assert cfg.segments[0].numbers == ["13800138000", "+8613900139000"]
    assert cfg.sites[0].number == "4001"
    assert cfg.regions.overrides == {"13800138000": "CN-GD"}
    # where the schema wants a number, the text is read as one (no octal surprise)
    assert cfg.engine.ring_timeout == 20 and cfg.engine.unreachable_retry == 7.5
    assert cfg.queue("repair").wrap_up == 2.5


def test_errors_name_list_items_by_id() -> None:
    errs = errors("queues:\n  - {id: consult}\n  - {id: repair, skills: {repair: 9}}\n"
                  "agents:\n  - {id: '1001', skills: {consult: 1}}\n"
                  "  - {id: '1002', skills: {repair: 0}}\n"
                  "sites: [{id: gd, kind: partner, number: '1', trunk: {contact: nope}}]\n")
    assert errs == [
        "acd.yaml: queues[repair].skills.repair (line 3): "
        "Input should be less than or equal to 5",
        "acd.yaml: agents[1002].skills.repair (line 6): "
        "Input should be greater than or equal to 1",
        "acd.yaml: sites[gd].trunk.contact (line 7): "
        "must be a SIP URI such as sip:192.0.2.50:5060",
    ]
    # an item without a usable id keeps its position
    assert errors("queues: [{skills: {}}]\n")[0].startswith("acd.yaml: queues[0].id (line 1)")


def test_a_value_that_is_no_number_where_a_number_is_wanted() -> None:
    errs = errors("queues: [{id: a}]\nengine: {ring_timeout: 0x10}\n")
    assert errs == ["acd.yaml: engine.ring_timeout (line 2): Input should be a valid "
                    "integer, unable to parse string as an integer"]
    # YAML 1.1 base 60 (1:30 = 90) is not silently taken either
    assert "stages[0].after" in errors(
        "queues: [{id: a, stages: [{after: 1:30}]}]\n")[0]


# --------------------------------------------------------------------------- one run


def test_every_problem_in_one_run() -> None:
    """A wrong field does not hold back the errors between sections (issue 15.5)."""
    errs = errors("queues:\n  - {id: repair, skills: {repair: 9}}\n"
                  "dids: {'4008001234': repiar}\n"
                  "agents: [{id: a, skills: {x: 1}, server: mian}, {id: a}]\n"
                  "default_queue: consult\n")
    assert errs == [
        "acd.yaml: queues[repair].skills.repair (line 2): "
        "Input should be less than or equal to 5",
        "acd.yaml: dids.4008001234 (line 3): unknown queue 'repiar' "
        "(did you mean 'repair'?)",
        "acd.yaml: agents[a].id (line 4): duplicate agent id 'a'",
        "acd.yaml: agents[a].endpoint (line 4): endpoint 'a' used twice",
        "acd.yaml: agents[a].server (line 4): unknown Asterisk server 'mian' "
        "(one of: main) (did you mean 'main'?)",
        "acd.yaml: default_queue (line 5): unknown queue 'consult'",
    ]


def test_did_you_mean_only_for_near_misses() -> None:
    errs = errors("queues: [{id: repair}, {id: consult}]\n"
                  "ivr: {options: {'1': consutl, '2': zzz}}\n")
    assert "unknown queue 'consutl' (did you mean 'consult'?)" in errs[0]
    assert errs[1].endswith("unknown queue 'zzz'")


def test_dids_written_twice_in_two_forms() -> None:
    errs = errors("queues: [{id: a}]\n"
                  "dids: {'01065550100': a, '+86 10 6555 0100': a}\n")
    assert errs == ["acd.yaml: dids.+86 10 6555 0100 (line 2): the same number as DID "
                    "'01065550100' (both are 01065550100)"]


def report_for(text: str, environ: dict[str, str] | None = None) -> ConfigReport:
    return check_text(text, "acd.yaml", environ)


def test_warnings_for_what_can_never_work() -> None:
    report = report_for(
        "queues:\n"
        "  - {id: consult, skills: {consult: 1}, groups: [bejing]}\n"
        "  - {id: repair, skills: {repair: 4},\n"
        "     stages: [{after: 30, min_level_delta: 2}]}\n"
        "  - {id: vip, skills: {vip: 1}}\n"
        "agents:\n"
        "  - {id: '1001', skills: {consult: 2, repair: 2}, groups: [beijing],\n"
        "     contact: 'sip:a@192.0.2.1'}\n"
        "  - {id: '1002', skills: {consult: 1}, groups: [beijing]}\n"
        "segments:\n"
        "  - {id: dealer, numbers: ['13800138000', '12345', 'abc'], prefixes: ['+86 755']}\n"
        "regions: {overrides: {'+86 138 0013 8000': CN-GD}}\n")
    assert report.errors == [] and report.config is not None
    assert report.warnings == [
        "acd.yaml: queues[consult].groups (line 2): group 'bejing': no agent is in it "
        "and no site has that id (did you mean 'beijing'?)",
        "acd.yaml: queues[consult] (line 2): no agent can serve queue 'consult' at "
        "stage 0 (needs consult ≥ 1 in groups bejing): no stage admits an agent either: "
        "its callers are never served",
        "acd.yaml: queues[repair] (line 3): no agent can serve queue 'repair' at stage 0 "
        "(needs repair ≥ 4): its callers wait 30 s for stage 1",
        "acd.yaml: queues[vip] (line 5): no agent can serve queue 'vip' at stage 0 "
        "(needs vip ≥ 1): no stage admits an agent either: its callers are never served",
        "acd.yaml: agents[1002] (line 9): agent 1002 has neither contact nor "
        "password_env: its phone can neither be reached at a static address nor "
        "register (`acd asterisk-config` refuses it)",
        "acd.yaml: segments[dealer].numbers[1] (line 11): '12345' is not a valid phone "
        "number (it never matches a caller)",
        "acd.yaml: segments[dealer].numbers[2] (line 11): 'abc' is not a valid phone "
        "number (it never matches a caller)",
        "acd.yaml: segments[dealer].prefixes[0] (line 11): prefix '+86 755' is matched "
        "against the national number (digits only, e.g. '0755'): it never matches",
        "acd.yaml: regions.overrides.+86 138 0013 8000 (line 12): caller numbers are "
        "matched in national form: write '13800138000'",
    ]


def test_a_partner_only_queue_is_said_so() -> None:
    report = report_for(
        "queues: [{id: night, skills: {night: 1}}]\n"
        "sites: [{id: p, kind: partner, number: '1', trunk: {contact: 'sip:192.0.2.1'}}]\n")
    assert report.warnings == [
        "acd.yaml: queues[night] (line 1): no agent can serve queue 'night' at stage 0 "
        "(needs night ≥ 1): only partner sites can take its calls (p)"]


def test_sample_and_example_configs_have_no_warnings() -> None:
    for path in (ROOT / "config" / "acd.sample.yaml", ROOT / "deploy" / "acd.example.yaml"):
        report = check_file(path)
        assert report.errors == [] and report.warnings == [], path


# --------------------------------------------------------------------------- DIDs


@pytest.mark.parametrize("dialled", [
    "01065550100", "+861065550100", "+86 10 6555 0100", "00861065550100", "861065550100"])
def test_a_landline_did_matches_however_the_carrier_writes_it(dialled: str) -> None:
    cfg = parse_config("queues: [{id: a}, {id: repair}]\ndids: {01065550100: repair}\n")
    assert cfg.queue_for_did(dialled).id == "repair"


@pytest.mark.parametrize("dialled", ["4008001234", "+864008001234", "00864008001234",
                                     "864008001234", "04008001234"])
def test_a_400_did_matches_however_the_carrier_writes_it(dialled: str) -> None:
    cfg = parse_config("queues: [{id: a}, {id: b}]\ndids: {'+86 400 800 1234': b}\n")
    assert cfg.queue_for_did(dialled).id == "b"
    assert cfg.did_queue("4008001235") is None


# --------------------------------------------------------------------------- Asterisk


CARRIER_CONFIG = """
queues: [{id: consult, skills: {consult: 1}}]
agents:
  - {id: "1001", endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@192.0.2.21"}
dids: {4008001234: consult, 01065550100: consult}
carriers:
  - {id: unicom, name: China Unicom SBC, match: [203.0.113.5, 198.51.100.0/28]}
"""


def test_carriers_are_identified_by_address_and_land_in_the_hotline_context() -> None:
    cfg = parse_config(CARRIER_CONFIG)
    pj = render(cfg, {})["pjsip_acd.conf"]
    block = pj[pj.index("; carrier unicom"):]
    assert "[carrier-unicom]\ntype=endpoint\ncontext=hotline\n" in block
    assert "allow_transfer=no" in block and "allow_subscribe=no" in block
    assert block.split("\n\n")[1].splitlines() == [
        "[carrier-unicom]", "type=identify", "endpoint=carrier-unicom",
        "match=203.0.113.5", "match=198.51.100.0/28"]
    assert any("'not an address!' is no IP address" in e for e in errors(
        "queues: [{id: a}]\ncarriers: [{id: c, match: ['not an address!']}]\n"))
    assert any("carriers[c].match" in e for e in errors(
        "queues: [{id: a}]\ncarriers: [{id: c, match: []}]\n"))


def test_endpoint_names_are_unique_across_agents_trunks_and_carriers() -> None:
    errs = errors("queues: [{id: a}]\n"
                  "agents: [{id: '1', endpoint: carrier-x}, {id: '2', endpoint: trunk-p}]\n"
                  "carriers: [{id: x, match: [192.0.2.1]}, {id: x, match: [192.0.2.2]}]\n"
                  "sites: [{id: p, kind: partner, number: '1', trunk: {contact: 'sip:h'}}]\n")
    assert errs == [
        "acd.yaml: carriers[x].id (line 3): its endpoint carrier-x is an agent's endpoint too",
        "acd.yaml: carriers[x].id (line 3): duplicate carrier id 'x'",
        "acd.yaml: sites[p].trunk (line 4): trunk endpoint 'trunk-p' is an agent's "
        "endpoint too",
    ]


def test_the_shipped_pjsip_conf_has_no_anonymous_endpoint() -> None:
    """Nobody who can merely reach the SIP port may call in (issue 15.3)."""
    text = (ROOT / "asterisk_conf" / "pjsip.conf").read_text()
    sections = re.findall(r"^\[([^\]]+)\]", text, re.M)
    assert "anonymous" not in sections
    assert re.search(r"^endpoint_identifier_order = ip,username$", text, re.M)


def test_static_contacts_are_qualified_when_asked() -> None:
    cfg = parse_config(CARRIER_CONFIG)
    assert "qualify_frequency" not in render(cfg, {})["pjsip_acd.conf"]
    asked = parse_config(CARRIER_CONFIG + "asterisk: {qualify_frequency: 10}\n")
    pj = render(asked, {})["pjsip_acd.conf"]
    assert "[agent1]\ntype=aor\ncontact=sip:agent1@192.0.2.21\nqualify_frequency=10\n" in pj


def _full(cfg_text: str, environ: dict[str, str], **options: object) -> dict[str, str]:
    from acd.config.asterisk import InstallOptions, render_full

    return render_full(parse_config(cfg_text), environ,
                       options=InstallOptions(**options))  # type: ignore[arg-type]


def test_full_renders_every_template_for_a_dedicated_box() -> None:
    files = _full(CARRIER_CONFIG, {"ACD_AMI_SECRET": "s3cret"})
    templates = {p.name for p in (ROOT / "asterisk_conf").glob("*.conf")}
    assert set(files) == templates | {"pjsip_acd.conf", "queues_acd.conf",
                                      "extensions_acd.conf", "voicemail_acd.conf"}
    assert not any(re.search(r"@@[A-Za-z0-9_]+@@", text) for text in files.values())
    manager = files["manager.conf"]
    assert "bindaddr = 0.0.0.0" in manager and "secret = s3cret" in manager
    # the engine is on this box (AMI at 127.0.0.1): only it may log in
    assert "permit = 127.0.0.1/255.255.255.255" in manager
    assert "ACD_AGI_URLS = agi://127.0.0.1:4573" in files["extensions.conf"]
    assert "bind = 0.0.0.0:5060" in files["pjsip.conf"]
    assert "rtpstart = 10000" in files["rtp.conf"] and "rtpend = 20000" in files["rtp.conf"]
    assert "astetcdir => /etc/asterisk" in files["asterisk.conf"]
    assert "[carrier-unicom]" in files["pjsip_acd.conf"]


def test_full_says_what_it_cannot_work_out() -> None:
    remote = CARRIER_CONFIG + ("asterisk: {ami: {host: 10.0.0.2}}\n"
                               "fastagi: {host: 0.0.0.0}\n")
    with pytest.raises(ConfigError) as exc:
        _full(remote, {})
    assert [e.split(" ", 1)[0] for e in exc.value.errors] == [
        "environment:", "--agi-urls", "--ami-permit"]
    files = _full(remote, {"ACD_AMI_SECRET": "x"}, agi_urls="agi://10.0.0.5:4573",
                  ami_permit="10.0.0.5/255.255.255.255")
    assert "permit = 10.0.0.5/255.255.255.255" in files["manager.conf"]
    # one address serves SIP and AMI: a bind the engine cannot reach AMI at is refused
    with pytest.raises(ConfigError, match="binds SIP and AMI to that one address"):
        _full(CARRIER_CONFIG, {"ACD_AMI_SECRET": "x"}, bind="192.0.2.1")
    # the engine's own address, when the config gives it, is who may use AMI
    engine = CARRIER_CONFIG + ("asterisk: {ami: {host: 10.0.0.2}}\n"
                               "fastagi: {host: 10.0.0.5}\n")
    files = _full(engine, {"ACD_AMI_SECRET": "x"}, bind="10.0.0.2")
    assert "permit = 10.0.0.5/255.255.255.255" in files["manager.conf"]
    assert "ACD_AGI_URLS = agi://10.0.0.5:4573" in files["extensions.conf"]


def test_include_mode_writes_only_acd_files_and_the_lines_to_add() -> None:
    from acd.config.asterisk import render_include

    files, instructions = render_include(parse_config(CARRIER_CONFIG),
                                         {"ACD_AMI_SECRET": "s3cret"})
    assert sorted(files) == ["extensions_acd.conf", "manager_acd.conf", "pjsip_acd.conf",
                             "queues_acd.conf", "voicemail_acd.conf"]
    ext = files["extensions_acd.conf"]
    contexts = re.findall(r"^\[([^\]]+)\]", ext, re.M)
    assert contexts == ["globals", "hotline", "hotline-acd", "hotline-fallback", "acd-answered",
                        "acd-agents", "acd-partners", "acd-transfer", "acd-language"]
    assert "\n[globals](+)\n" in ext and "#include" not in ext.replace(
        ";   #include extensions_acd.conf", "")
    queues = files["queues_acd.conf"]
    assert re.findall(r"^\[([^\]]+)\]", queues, re.M) == ["hotline-fallback"]
    assert "member => PJSIP/agent1,0,1001" in queues and "#include" not in queues.replace(
        ":  #include queues_acd.conf", "")
    assert re.findall(r"^\[([^\]]+)\]", files["manager_acd.conf"], re.M) == ["acd"]
    assert "secret = s3cret" in files["manager_acd.conf"]
    for line in ("pjsip.conf:       #include pjsip_acd.conf",
                 "queues.conf:      #include queues_acd.conf",
                 "extensions.conf:  #include extensions_acd.conf",
                 "manager.conf:     #include manager_acd.conf",
                 "exten => 4008001234,1,Goto(hotline,${EXTEN},1)",
                 "exten => +864008001234,1,Goto(hotline,${EXTEN},1)",
                 "exten => 00864008001234,1,Goto(hotline,${EXTEN},1)",
                 "exten => 01065550100,1,Goto(hotline,${EXTEN},1)",
                 "exten => +861065550100,1,Goto(hotline,${EXTEN},1)",
                 "exten => 00861065550100,1,Goto(hotline,${EXTEN},1)",
                 'asterisk -rx "core reload"'):
        assert line in instructions, line


# --------------------------------------------------------------------------- Chinese defaults


def test_language_per_hotline_did_and_queue() -> None:
    """Chinese by default; a DID or a queue may say otherwise (issue 15.10)."""
    cfg = parse_config("queues: [{id: consult}, {id: english, language: en}]\n"
                       "dids:\n  4008001234: consult\n"
                       "  4008005678: {queue: consult, language: yue}\n"
                       "  4008009999: {language: en}\n")
    assert cfg.language == "zh"
    assert cfg.language_for("consult", "4008001234") == "zh"
    assert cfg.language_for("consult", "+864008005678") == "yue"
    assert cfg.language_for("english", "4008005678") == "en"  # the queue's wins
    assert cfg.language_for(None, "00864008009999") == "en"
    assert cfg.did_queue("4008009999") is None and cfg.did_queue("4008005678") is not None
    ext = render(cfg, {})["extensions_acd.conf"]
    lang = ext[ext.index("[acd-language]"):].splitlines()
    assert lang[:3] == ["[acd-language]", "exten => s,1,Set(CHANNEL(language)=zh)",
                        " same => n,Return()"]
    for form in ("4008005678", "+864008005678", "00864008005678"):
        assert f"exten => {form},1,Set(CHANNEL(language)=yue)" in lang
    assert "exten => 4008001234,1,Set(CHANNEL(language)=zh)" not in lang
    assert any("unknown queue 'nope'" in e for e in errors(
        "queues: [{id: a}]\ndids: {'1': {queue: nope}}\n"))
    assert any("dids.1.language" in e for e in errors(
        "queues: [{id: a}]\ndids: {'1': {language: 'Chinese!'}}\n"))
    assert "language=zh" in render(parse_config(CARRIER_CONFIG), {})["pjsip_acd.conf"]


def test_endpoints_offer_a_law_first() -> None:
    """China's PSTN is A-law: every rendered endpoint lists alaw before ulaw."""
    cfg = parse_config(CARRIER_CONFIG + "sites: [{id: p, kind: partner, number: '1', "
                       "trunk: {contact: 'sip:192.0.2.9'}}]\n")
    pj = render(cfg, {})["pjsip_acd.conf"]
    allows = re.findall(r"^allow=(.*?)(?:\s+;.*)?$", pj, re.M)
    assert allows and all(a == "alaw,ulaw" for a in allows), allows
    assert len(allows) == 3  # agent, partner trunk, carrier


# -- issue 10.5 and 10.10: what check-config and asterisk-config refuse ---------------------

HARDENED = """
queues: [{id: consult, skills: {consult: 1}}]
agents:
  - {id: a1, name: "李伟", skills: {consult: 1}, password_env: ACD_SIP_A1}
"""


def test_a_duplicate_key_is_refused_with_both_lines() -> None:
    report = check_text(HARDENED + "agents:\n  - {id: a2, skills: {consult: 1}}\n")
    assert report.config is None
    assert any("duplicate key 'agents' (first on line 3" in e and "line 5" in e
               for e in report.errors), report.errors


def test_names_written_into_asterisk_files_refuse_newlines_quotes_and_separators() -> None:
    for name, bad in (('"x\\n[evil]\\ntype=endpoint"', "'\\n'"), ('"a, b"', "','"),
                      ('"a;b"', "';'"), ("'a\"b'", "'\"'")):
        report = check_text(HARDENED.replace('"李伟"', name))
        assert any(f"agents[a1].name (line 4): {bad} is not allowed" in e
                   for e in report.errors), (name, report.errors)


def test_a_sip_password_that_would_break_the_file_is_refused(tmp_path: Path) -> None:
    cfg = parse_config(HARDENED)
    for password in ("ok\n[evil]", "a;b", " padded"):
        with pytest.raises(ConfigError, match=r"ACD_SIP_A1 .* would break pjsip_acd\.conf"):
            render(cfg, {"ACD_SIP_A1": password})
    from acd.config.asterisk import write_files

    (tmp_path / "pjsip_acd.conf").write_text("old")
    (tmp_path / "pjsip_acd.conf").chmod(0o644)
    for path in write_files(render(cfg, {"ACD_SIP_A1": "s3cret-Pa55"}), tmp_path):
        assert path.stat().st_mode & 0o777 == 0o640, path  # they hold passwords


def test_placeholder_secrets_are_errors_with_the_environment() -> None:
    report = check_text(HARDENED, environ={"ACD_SIP_A1": "change-me-agent1",
                                           "ACD_AMI_SECRET": "8c1f2e0a9b7d"})
    assert report.errors == ["environment: ACD_SIP_A1 is a placeholder (SIP password of "
                             "agent a1): set a real secret"]


def test_a_primary_region_no_partner_covers_is_a_warning() -> None:
    report = check_text(HARDENED + "regions: {policies: {CN-ZJ: {mode: primary}}}\n")
    assert any("regions.policies.CN-ZJ.mode" in w and "no partner site covers it" in w
               for w in report.warnings), report.warnings
