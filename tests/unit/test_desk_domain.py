"""The desktop's domain commands (issue 13): wrap-up end/extend, disposition, PIN hashes."""

from __future__ import annotations

import pytest

from acd.config import passwords
from acd.domain import (
    AgentState,
    AgentStatus,
    CallAnswered,
    CallArrived,
    DialFinished,
    EngineCore,
    Offer,
    SetAgentStatus,
    StartTimer,
)
from acd.domain.errors import InvalidCommand, NotInWrapUp, NotYourCall, WrapUpLimit
from acd.domain.events import EndWrapUp, ExtendWrapUp, SetDisposition
from acd.domain.facts import AgentChanged, CallDisposed
from tests.unit.conftest import core_of

CONFIG = """
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 10}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@127.0.0.1:6001"}
desktop:
  wrap_up_extend: 20
  wrap_up_max: 45
  note_max: 10
  dispositions: [{code: solved, name: 已解决}]
"""


@pytest.fixture
def core() -> EngineCore:
    c = core_of(CONFIG)
    c.initial_effects(0.0)
    return c


def _talk_and_hang_up(core: EngineCore) -> None:
    eff = core.apply(CallArrived("c1", "consult", "1", 1.0, 1.0))
    assert [e.agent_id for e in eff if isinstance(e, Offer)] == ["a1"]
    core.apply(CallAnswered("c1", "a1", 2.0))
    core.apply(DialFinished("c1", "a1", "ANSWER", 30.0, 28.0))
    assert core.agents["a1"].state is AgentState.WRAP_UP


def test_status_and_state_carry_since_when(core: EngineCore) -> None:
    eff = core.apply(SetAgentStatus("a1", AgentStatus.PAUSED, 5.0, "lunch"))
    fact = next(e for e in eff if isinstance(e, AgentChanged))
    assert (fact.status_since, fact.reason) == (5.0, "lunch")
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 7.0))
    core.apply(CallArrived("c1", "consult", "1", 8.0, 8.0))
    assert core.agents["a1"].state_since == 8.0


def test_end_wrap_up_early_makes_the_agent_idle_and_the_old_timer_stale(
        core: EngineCore) -> None:
    with pytest.raises(NotInWrapUp):
        core.apply(EndWrapUp("a1", 0.5))
    _talk_and_hang_up(core)
    core.apply(EndWrapUp("a1", 32.0))
    agent = core.agents["a1"]
    assert agent.state is AgentState.IDLE and agent.state_since == 32.0


def test_extend_wrap_up_is_bounded_by_wrap_up_max(core: EngineCore) -> None:
    _talk_and_hang_up(core)  # wrap-up 30 → 40, max until 75
    eff = core.apply(ExtendWrapUp("a1", 0, 31.0))
    assert [e.delay for e in eff if isinstance(e, StartTimer)] == [29.0]  # ends 60
    eff = core.apply(ExtendWrapUp("a1", 0, 32.0))
    assert core.agents["a1"].wrap_ends == 75.0  # capped
    with pytest.raises(WrapUpLimit):
        core.apply(ExtendWrapUp("a1", 0, 33.0))
    fact = next(e for e in eff if isinstance(e, AgentChanged))
    assert fact.wrap_up_ends == 75.0


def test_disposition_only_for_the_agents_last_call_and_a_known_code(
        core: EngineCore) -> None:
    _talk_and_hang_up(core)
    with pytest.raises(NotYourCall):
        core.apply(SetDisposition("a1", "c9", "solved", "", 31.0))
    with pytest.raises(InvalidCommand):
        core.apply(SetDisposition("a1", "c1", "nope", "", 31.0))
    with pytest.raises(InvalidCommand):
        core.apply(SetDisposition("a1", "c1", "solved", "x" * 11, 31.0))
    eff = core.apply(SetDisposition("a1", "c1", "solved", "好的", 31.0))
    assert CallDisposed("c1", "a1", "solved", "好的") in eff


def test_pin_hashes_verify_and_never_hold_the_pin() -> None:
    h = passwords.hash_password("2468", n=1024)
    assert "2468" not in h and passwords.verify("2468", h)
    assert not passwords.verify("2469", h)
    assert not passwords.verify_or_dummy("2468", None)
    with pytest.raises(passwords.BadHash):
        passwords.parse("2468")
    with pytest.raises(passwords.BadHash):
        passwords.parse(h.replace("$1024$", "$1000$"))
    with pytest.raises(ValueError):
        passwords.hash_password("12")


def test_feature_codes_render_and_map_to_the_domain_commands() -> None:
    from acd.config import parse_config
    from acd.config.asterisk import render
    from acd.domain import AgentLogin, SetAgentStatus
    from acd.runtime.features import FeatureCodes

    cfg = parse_config(CONFIG + "  feature_codes: {login: \"70\", ready: null}\n")
    ext = render(cfg, {})["extensions_acd.conf"]
    assert "exten => *70,1,Set(ACD_FEATURE=login)" in ext
    assert "exten => *51,1,Set(ACD_FEATURE=logout)" in ext
    assert "ACD_FEATURE=ready" not in ext  # turned off
    assert "AGI(${CUT(ACD_AGI_URLS,&,${ACD_I})}/feature,${ACD_FEATURE})" in ext
    codes = FeatureCodes(cfg)
    assert codes.agents == {"agent1": "a1"}  # by endpoint, never by what is dialled
    assert isinstance(codes.event("login", "a1", 1.0), AgentLogin)
    pause = codes.event("pause", "a1", 1.0)
    assert isinstance(pause, SetAgentStatus) and pause.reason == "break"
    assert codes.event("bogus", "a1", 1.0) is None
    assert codes.sound("pause", False) == "beeperr"


def test_a_feature_code_may_not_be_a_transfer_code() -> None:
    from acd.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="transfer_code"):
        parse_config("queues: [{id: q, transfer_code: \"50\"}]\n")


def test_spy_renders_its_own_ami_account_and_a_closed_context() -> None:
    from acd.config import parse_config
    from acd.config.asterisk import render, render_full

    cfg = parse_config(CONFIG + """supervision:
  supervisors:
    - {id: zhang, endpoint: sup1, contact: "sip:sup1@127.0.0.1:7000", queues: [consult]}
""")
    env = {"ACD_AMI_SPY_SECRET": "spy-secret", "ACD_AMI_SECRET": "engine-secret"}
    files = render(cfg, env)
    spy = files["manager_spy_acd.conf"]
    assert "[acd-spy]" in spy and "write = originate" in spy and "read =\n" in spy
    ext = files["extensions_acd.conf"]
    assert "exten => whisper,1," in ext and "ChanSpy(${ACD_SPY_TARGET},qEw)" in ext
    assert "ChanSpy(${ACD_SPY_TARGET},qEB)" in ext
    assert "[sup1]" in files["pjsip_acd.conf"] and "context=acd-supervisors" in \
        files["pjsip_acd.conf"]
    # the engine's own account is unchanged: still no originate
    full = render_full(cfg, env)
    engine_user = full["manager.conf"].split("\n[acd]\n", 1)[1].split("\n[", 1)[0]
    grants = [line for line in engine_user.splitlines()
              if line.startswith(("read =", "write ="))]
    assert grants == ["read = system,call,dtmf,cdr", "write = call,reporting"]
    assert "#tryinclude manager_spy_acd.conf" in full["manager.conf"]
    # no phone, no spy account
    assert "manager_spy_acd.conf" not in render(parse_config(CONFIG), env)
    # include mode (an existing PBX): the spy account goes into manager_acd.conf, which
    # the operator includes; its context into extensions_acd.conf
    from acd.config.asterisk import render_include

    included, _ = render_include(cfg, env)
    assert "manager_spy_acd.conf" not in included
    assert "\n[acd-spy]\n" in included["manager_acd.conf"]
    assert "ChanSpy(${ACD_SPY_TARGET},qEw)" in included["extensions_acd.conf"]
