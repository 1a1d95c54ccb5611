"""Callbacks (issue 12), the pure parts: the number patterns, the config, the core's life
cycle of a callback (its place, retries, outcome), the rendered Asterisk side and the
store's records. The dialer against a fake AMI client is in test_callback_dialer.py."""

from __future__ import annotations

import pytest

from acd.config import ConfigError, parse_config
from acd.config import asterisk as asterisk_config
from acd.domain import (
    AgentStatus,
    CallAnswered,
    CallArrived,
    CallerKey,
    CallNotWaiting,
    CallState,
    DialFinished,
    EngineCore,
    ExitCall,
    InvalidCommand,
    Offer,
    SetAgentStatus,
    StartTimer,
    UnknownCall,
)
from acd.domain.callbacks import (
    CallbackAttempted,
    CallbackFinished,
    CallbackRequested,
    CallbackState,
    allowed,
    international,
    pattern_regex,
)
from acd.domain.events import CallbackDue, CancelCallback, RequestCallback
from acd.runtime.store import call_record, callback_record, state_of
from tests.unit.conftest import core_of

CONFIG = """
queues:
  - id: consult
    skills: {consult: 1}
    wrap_up: 0
    exits:
      key: "1"
      key_action: {to: callback}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@127.0.0.1:6001"}
callbacks:
  trunk: {contact: "sip:127.0.0.1:7000"}
  attempts: 2
  retry_after: 60
"""


def offers(effects: list[object]) -> list[tuple[str, str]]:
    return [(e.call_id, e.agent_id) for e in effects if isinstance(e, Offer)]


def facts(effects: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in effects if isinstance(e, kind)]


@pytest.fixture
def core() -> EngineCore:
    c = core_of(CONFIG)
    c.initial_effects(0.0)
    return c


# -- patterns ------------------------------------------------------------------------------


def test_extension_patterns_as_asterisk_matches_them() -> None:
    assert pattern_regex("_1[3-9]XXXXXXXXX").match("13800138000")
    assert not pattern_regex("_1[3-9]XXXXXXXXX").match("12800138000")
    assert not pattern_regex("_1[3-9]XXXXXXXXX").match("138001380001")
    assert pattern_regex("_0ZX.").match("0755123")
    assert pattern_regex("_N!").match("2")
    assert allowed("13800138000", ("_1[3-9]XXXXXXXXX",))
    assert not allowed("", ("_X.",)) and not allowed("1380013800a", ("_X.",))
    assert international("_X.") and international("_00X.") and international("_+X.")
    assert not international("_1[3-9]XXXXXXXXX") and not international("_0[1-9]XXXXXXXXX")
    for bad in ("1234", "_12(3)", "_1[", "_]"):
        with pytest.raises(ValueError):
            pattern_regex(bad)


# -- config ----------------------------------------------------------------------------------


def test_an_exit_to_callback_needs_the_callbacks_section() -> None:
    without = CONFIG.split("callbacks:")[0]
    with pytest.raises(ConfigError, match="callbacks section"):
        parse_config(without)
    assert parse_config(CONFIG).callbacks is not None


def test_patterns_that_reach_abroad_need_international() -> None:
    with pytest.raises(ConfigError, match="abroad"):
        parse_config(CONFIG + '  allow: ["_X."]\n')
    cfg = parse_config(CONFIG + '  allow: ["_00X."]\n  international: true\n')
    assert cfg.callbacks is not None and cfg.callbacks.allow == ["_00X."]
    with pytest.raises(ConfigError):
        parse_config(CONFIG + '  allow: ["not a pattern"]\n')


# -- the core: a callback keeps the caller's place --------------------------------------


def _leave_for_callback(core: EngineCore, now: float = 12.0) -> None:
    core.apply(SetAgentStatus("a1", AgentStatus.PAUSED, 1.0, "break"))
    core.apply(CallArrived("c1", "consult", "13800138001", 10.0, 10.0))
    eff = core.apply(CallerKey("c1", "1", now))
    exit_call = facts(eff, ExitCall)
    assert exit_call and exit_call[0].callback
    assert core.calls.get("c1") is None  # the inbound call left the line (an exit)


def test_the_callback_takes_the_callers_place_before_later_callers(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(CallArrived("c2", "consult", "13800138002", 11.0, 11.0))  # came later
    eff = core.apply(RequestCallback("c1", "13800138001", 15.0))
    (req,) = facts(eff, CallbackRequested)
    assert (req.callback_id, req.entry_time, req.reason) == ("c1-cb", 10.0, "caller_key")
    cb_call = core.calls["c1-cb"]
    assert cb_call.entry_time == 10.0 and cb_call.seq < core.calls["c2"].seq
    assert core.router.position("c1-cb") == 1 and core.router.position("c2") == 2
    eff = core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    assert offers(eff) == [("c1-cb", "a1")]
    assert core.callbacks.by_id["c1-cb"].state is CallbackState.DIALING
    assert core.figures.total("consult").exits == 1
    assert core.figures.total("consult").abandoned == 0


def test_answered_callback_completes_with_its_delay(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    core.apply(CallAnswered("c1-cb", "a1", 25.0))
    assert core.calls["c1-cb"].state is CallState.CONNECTED
    eff = core.apply(DialFinished("c1-cb", "a1", "ANSWER", 85.0, 60.0))
    (done,) = facts(eff, CallbackFinished)
    assert (done.outcome, done.attempts, done.delay, done.agent) == \
        ("completed", 1, 10.0, "a1")
    assert "c1-cb" not in core.callbacks.by_id and "c1-cb" not in core.calls
    assert core.callbacks.totals["completed"] == 1
    assert core.figures.total("consult").answered == 1


def test_a_busy_customer_is_tried_again_then_the_callback_fails(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    eff = core.apply(DialFinished("c1-cb", "a1", "CUSTOMER_BUSY", 30.0))
    (attempt,) = facts(eff, CallbackAttempted)
    assert (attempt.attempt, attempt.status, attempt.retry_at) == (1, "BUSY", 90.0)
    assert any(isinstance(e, StartTimer) and isinstance(e.event, CallbackDue) for e in eff)
    agent = core.agents["a1"]
    assert agent.status is AgentStatus.AVAILABLE and agent.call_id is None  # not at fault
    assert offers(eff) == []  # not in line until its retry time
    assert core.router.position("c1-cb") is None
    eff = core.apply(CallbackDue("c1-cb", 90.0))
    assert offers(eff) == [("c1-cb", "a1")]
    eff = core.apply(DialFinished("c1-cb", "a1", "CUSTOMER_NOANSWER", 120.0))
    (done,) = facts(eff, CallbackFinished)
    assert (done.outcome, done.attempts, done.status) == ("failed", 2, "NOANSWER")
    assert "c1-cb" not in core.calls and core.callbacks.totals["failed"] == 1


def test_the_agent_not_answering_keeps_the_callbacks_place(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    core.apply(DialFinished("c1-cb", "a1", "NOANSWER", 35.0))
    assert core.agents["a1"].status is AgentStatus.PAUSED  # ring-no-answer
    cb = core.callbacks.by_id["c1-cb"]
    assert (cb.state, cb.attempts) == (CallbackState.PENDING, 0)
    assert core.router.position("c1-cb") == 1


def test_the_outbound_link_down_is_not_an_attempt(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    eff = core.apply(DialFinished("c1-cb", "a1", "OUTBOUND_DOWN", 21.0))
    (attempt,) = facts(eff, CallbackAttempted)
    assert attempt.attempt == 0 and attempt.retry_at == 26.0


def test_in_doubt_ends_the_callback_without_a_second_dial(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    eff = core.apply(DialFinished("c1-cb", "a1", "IN_DOUBT", 60.0))
    (done,) = facts(eff, CallbackFinished)
    assert (done.outcome, done.status) == ("failed", "IN_DOUBT")
    assert offers(eff) == []


def test_a_number_outside_the_patterns_is_refused(core: EngineCore) -> None:
    _leave_for_callback(core)
    with pytest.raises(InvalidCommand):
        core.apply(RequestCallback("c1", "0044123456789", 15.0))
    with pytest.raises(UnknownCall):
        core.apply(RequestCallback("nobody", "13800138001", 15.0))


def test_scheduled_callback_waits_for_its_time_and_can_be_cancelled(
        core: EngineCore) -> None:
    eff = core.apply(RequestCallback("", "13800138009", 5.0, callback_id="api-1",
                                     queue_id="consult", entry_time=100.0,
                                     not_before=100.0, reason="api"))
    assert [e.delay for e in eff if isinstance(e, StartTimer)] == [95.0]
    assert offers(eff) == []
    assert core.callbacks.by_id["api-1"].state is CallbackState.SCHEDULED
    eff = core.apply(CallbackDue("api-1", 100.0))
    assert offers(eff) == [("api-1", "a1")]  # its time has come: in line, and a1 is free
    core2 = core_of(CONFIG)
    core2.initial_effects(0.0)
    core2.apply(SetAgentStatus("a1", AgentStatus.PAUSED, 1.0, "break"))
    core2.apply(RequestCallback("", "13800138009", 5.0, callback_id="api-2",
                                queue_id="consult"))
    eff = core2.apply(CancelCallback("api-2", 6.0))
    (done,) = facts(eff, CallbackFinished)
    assert done.outcome == "cancelled" and "api-2" not in core2.calls
    with pytest.raises(UnknownCall):
        core2.apply(CancelCallback("api-2", 7.0))


def test_a_callback_being_dialled_cannot_be_cancelled(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 20.0))
    with pytest.raises(CallNotWaiting):
        core.apply(CancelCallback("c1-cb", 21.0))


# -- the store: a callback is a callback, not a caller who will re-enter --------------------


def test_store_records_of_a_callback(core: EngineCore) -> None:
    _leave_for_callback(core)
    core.apply(RequestCallback("c1", "13800138001", 15.0))
    assert call_record(core, "c1-cb") is None
    rec = callback_record(core, "c1-cb")
    assert rec is not None
    assert (rec["number"], rec["entry_time"], rec["state"], rec["dials"]) == \
        ("13800138001", 10.0, "pending", 0)
    assert list(state_of(core).callbacks) == ["c1-cb"] and not state_of(core).calls


def test_a_restored_callback_keeps_its_place_and_dial_count(core: EngineCore) -> None:
    eff = core.apply(RequestCallback("c9", "13800138009", 50.0, callback_id="c9-cb",
                                     queue_id="consult", entry_time=3.0, attempts=1,
                                     dials=2, restored=True))
    assert offers(eff) == [("c9-cb", "a1")]
    cb = core.callbacks.by_id["c9-cb"]
    assert (cb.entry_time, cb.attempts, cb.dials) == (3.0, 1, 3)  # the next dial is new
    assert core.callbacks.totals["requested"] == 0  # counted by the engine that took it


# -- the Asterisk side -----------------------------------------------------------------------


ENV = {"ACD_AMI_OUTBOUND_SECRET": "out-s3cret"}


def test_the_outbound_account_may_originate_and_nothing_else() -> None:
    files = asterisk_config.render(parse_config(CONFIG), ENV)
    manager = files["manager_outbound_acd.conf"]
    assert "[acd-outbound]" in manager and "secret = out-s3cret" in manager
    assert "\nwrite = originate\n" in manager and "\nread = call,user\n" in manager
    assert manager.count("write =") == 1
    dialplan = files["extensions_acd.conf"]
    assert "[acd-outbound]\nexten => _1[3-9]XXXXXXXXX,1,Gosub(acd-outbound-dial,s,1(${EXTEN}))" \
        in dialplan
    assert "PJSIP/${ARG1}@acd-outbound-trunk,30," in dialplan
    assert 'GotoIf($["${ACD_CB_ID}" = ""]?refuse)' in dialplan
    assert "GLOBAL(ACD_CBS_${ACD_CB_KEY})=1" in dialplan
    assert "contact=sip:127.0.0.1:7000" in files["pjsip_acd.conf"]
    # without callbacks nothing of it is rendered
    plain = asterisk_config.render(parse_config(CONFIG.split("callbacks:")[0].replace(
        "key_action: {to: callback}", "key_action: {to: message}")), ENV)
    assert "manager_outbound_acd.conf" not in plain
    assert "acd-outbound" not in plain["extensions_acd.conf"]


def test_the_main_account_keeps_its_grants() -> None:
    files = asterisk_config.render_full(parse_config(CONFIG), {
        **ENV, "ACD_AMI_SECRET": "main-s3cret"})
    main = files["manager.conf"]
    grants = [line for line in main.split("[acd]", 1)[1].splitlines()
              if line.startswith(("read ", "write "))]
    assert grants == ["read = system,call,dtmf,cdr", "write = call,reporting"]
    assert "#tryinclude manager_outbound_acd.conf" in main
    assert "write = originate" in files["manager_outbound_acd.conf"]


def test_a_missing_outbound_secret_is_named() -> None:
    with pytest.raises(ConfigError, match="ACD_AMI_OUTBOUND_SECRET"):
        asterisk_config.render(parse_config(CONFIG), {})


# -- acd simulate ------------------------------------------------------------------------


def test_the_simulator_offers_callbacks_above_an_expected_wait() -> None:
    from benchmarks.callbacks_sim import config, scenario
    from sim import simulate
    from sim.scenario import ArrivalWindow

    day = scenario(3)
    peak = ArrivalWindow.model_validate({"from": "09:00", "to": "09:40",
                                         "calls_per_hour": 420})
    hour = day.model_copy(update={"queues": {"consult": day.queues["consult"].model_copy(
        update={"arrivals": [peak]})}})  # 40 minutes above capacity
    base = simulate(config(None), hour).queues["consult"].figures
    with_cb = simulate(config(60), hour).queues["consult"].figures
    assert base.callbacks_offered == 0 and with_cb.callbacks_offered > 50
    assert with_cb.callbacks_completed > 0.8 * with_cb.callbacks_requested
    assert with_cb.abandoned < base.abandoned  # callers called back instead of giving up
    assert with_cb.callback_delay_total > 0


def test_the_history_record_of_a_cancelled_callback_ends(core: EngineCore) -> None:
    from acd.domain import Fact
    from acd.history.records import RecordBuilder

    builder = RecordBuilder({"consult": 20.0})
    _leave_for_callback(core)  # a1 stays paused

    def feed(effects: list[object], now: float) -> None:
        for eff in effects:
            if isinstance(eff, Fact):
                builder.observe(eff, now)

    feed(core.apply(RequestCallback("c1", "13800138001", 15.0)), 15.0)
    assert builder.calls["c1-cb"].outcome == "waiting"
    feed(core.apply(CancelCallback("c1-cb", 21.0)), 21.0)
    rec = builder.calls.get("c1-cb")
    taken, _ = builder.take()
    ended = [r for r in taken if r.call_id == "c1-cb"]
    assert rec is None or rec.outcome == "exited"
    assert ended and ended[0].outcome == "exited" and ended[0].exit == "callback/cancelled"


def test_callbacks_wait_for_their_calling_window_with_their_place() -> None:
    from datetime import UTC, datetime

    cfg = CONFIG.replace("queues:", "timezone: UTC\nqueues:", 1) + \
        '  hours: {daily: "09:00-20:00"}\n'
    c = core_of(cfg)
    c.initial_effects(0.0)
    day = datetime(2026, 12, 3, tzinfo=UTC).timestamp()
    eight, nine, eight_pm = day + 8 * 3600, day + 9 * 3600, day + 20 * 3600
    c.apply(SetAgentStatus("a1", AgentStatus.PAUSED, eight - 10, "break"))
    eff = c.apply(RequestCallback("", "13800138009", eight, callback_id="api-1",
                                  queue_id="consult"))
    assert [e.delay for e in eff if isinstance(e, StartTimer)] == [3600.0]
    assert c.callbacks.by_id["api-1"].state is CallbackState.SCHEDULED
    assert c.router.position("api-1") is None
    c.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, eight + 60))
    assert c.calls["api-1"].state is CallState.WAITING  # not dialled before nine
    eff = c.apply(CallbackDue("api-1", nine))
    assert offers(eff) == [("api-1", "a1")]
    # at 20:00 one still in line is put aside until the window opens again
    c.apply(SetAgentStatus("a1", AgentStatus.PAUSED, nine + 1, "break"))
    c.apply(DialFinished("api-1", "a1", "NOANSWER", nine + 20))  # back in line
    assert c.router.position("api-1") == 1
    eff = c.apply(CallbackDue("api-1", eight_pm))
    assert c.router.position("api-1") is None
    assert c.callbacks.by_id["api-1"].state is CallbackState.SCHEDULED
    assert [e.delay for e in eff if isinstance(e, StartTimer)] == [13 * 3600.0]
