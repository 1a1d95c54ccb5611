"""The engine state machine without any I/O: events in, effects out."""

from __future__ import annotations

import pytest

from acd.config import parse_config
from acd.domain import (
    AgentState,
    AgentStatus,
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallNotWaiting,
    CallState,
    DeviceSnapshot,
    DeviceStateChanged,
    DeviceStateLost,
    DialFinished,
    EngineCore,
    Fact,
    Offer,
    PhoneRecheck,
    SetAgentStatus,
    SetCallPriority,
    StartTimer,
    TransferCall,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
    WrapUpDone,
)
from tests.unit.conftest import core_of, make_core

CONFIG = """
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 3, sl_target: 20}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:agent1@127.0.0.1:6001"}
  - {id: a2, endpoint: agent2, skills: {consult: 1}, contact: "sip:agent2@127.0.0.1:6002"}
"""


def offers(effects: list[object]) -> list[tuple[str, str]]:
    return [(e.call_id, e.agent_id) for e in effects if isinstance(e, Offer)]


@pytest.fixture
def core() -> EngineCore:
    c = core_of(CONFIG)
    c.initial_effects(0.0)
    return c


def test_longest_idle_agent_gets_the_first_call(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 1.0))
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 2.0))  # a1 idle since 2, a2 since 0
    eff = core.apply(CallArrived("c1", "consult", "13800138000", 5.0, 5.0))
    assert offers(eff) == [("c1", "a2")]
    o = next(e for e in eff if isinstance(e, Offer))
    assert o.dial.startswith("PJSIP/agent") and o.timeout == 15


def test_rona_pauses_agent_and_call_keeps_its_place(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.PAUSED, 0.5, "break"))
    assert offers(core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))) == [("c1", "a1")]
    assert offers(core.apply(CallArrived("c2", "consult", "2", 11.0, 11.0))) == []
    eff = core.apply(DialFinished("c1", "a1", "NOANSWER", 25.0))
    assert core.agents["a1"].status is AgentStatus.PAUSED
    assert core.agents["a1"].reason == "no-answer"
    assert offers(eff) == []
    # a2 comes back: the older call c1 goes first, its place kept
    eff = core.apply(SetAgentStatus("a2", AgentStatus.AVAILABLE, 26.0))
    assert offers(eff) == [("c1", "a2")]
    assert core.calls["c1"].entry_time == 10.0
    assert core.figures.total("consult").rona == 1


def test_answer_complete_wrap_up_then_next_call(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.5))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    core.apply(CallArrived("c2", "consult", "2", 11.0, 11.0))
    core.apply(CallAnswered("c1", "a1", 12.0))
    assert core.agents["a1"].state is AgentState.ON_CALL
    eff = core.apply(DialFinished("c1", "a1", "ANSWER", 40.0, 28.0))
    timers = [e for e in eff if isinstance(e, StartTimer)]
    assert len(timers) == 1 and timers[0].delay == 3
    assert core.agents["a1"].state is AgentState.WRAP_UP
    assert offers(eff) == []
    eff = core.apply(timers[0].event)
    assert offers(eff) == [("c2", "a1")]
    st = core.figures.total("consult")
    assert (st.offered, st.answered, st.answered_within_target) == (2, 1, 1)
    assert st.wait_answered == pytest.approx(2.0)


def test_stale_wrap_up_timer_is_ignored(core: EngineCore) -> None:
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    agent = core.calls["c1"].agent_id
    assert agent is not None
    core.apply(DialFinished("c1", agent, "ANSWER", 20.0, 5.0))
    assert core.apply(WrapUpDone(agent, 999, 21.0)) == []
    assert core.agents[agent].state is AgentState.WRAP_UP


def test_abandon_while_waiting_records_wait(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    eff = core.apply(CallHungUp("c1", 17.5))
    ab = [e for e in eff if isinstance(e, Fact) and e.name == "call_abandoned"]
    assert ab and ab[0].data["wait"] == pytest.approx(7.5)
    assert core.calls == {} and core.router.waiting() == 0
    assert core.figures.total("consult").abandoned == 1


def test_abandon_while_ringing_frees_agent_without_penalty(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    core.apply(DialFinished("c1", "a1", "CANCEL", 12.0))
    core.apply(CallHungUp("c1", 12.0))
    a1 = core.agents["a1"]
    assert (a1.status, a1.state, a1.missed) == (AgentStatus.AVAILABLE, AgentState.IDLE, 0)
    assert core.router.is_routable("a1")


def test_device_state_gates_routing(core: EngineCore) -> None:
    core.apply(DeviceSnapshot({"PJSIP/agent1": "UNAVAILABLE", "PJSIP/agent2": "INUSE"}, 1.0))
    assert offers(core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))) == []
    eff = core.apply(DeviceStateChanged("PJSIP/agent2", "NOT_INUSE", 6.0))
    assert offers(eff) == [("c1", "a2")]


def test_reentry_keeps_original_entry_time_and_place(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(CallArrived("old", "consult", "1", 10.0, 10.0))
    core.apply(CallArrived("new", "consult", "2", 20.0, 20.0))
    core.apply(CallHungUp("old", 30.0))  # its session dropped...
    core.apply(CallArrived("old2", "consult", "1", 10.0, 31.0))  # ...and it came back
    eff = core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 32.0))
    assert offers(eff) == [("old2", "a1")]


def test_unknown_agent_command_is_a_domain_error(core: EngineCore) -> None:
    with pytest.raises(UnknownAgent):
        core.apply(SetAgentStatus("nobody", AgentStatus.AVAILABLE, 0.0))


def test_transfer_keeps_seniority_in_the_new_queue() -> None:
    core = core_of("""
queues:
  - {id: consult, skills: {consult: 1}}
  - {id: complaint, skills: {complaint: 1}, priority: 0}
agents:
  - {id: c1, skills: {complaint: 1}, contact: "sip:c1@127.0.0.1:6001", status: logged_out}
""")
    core.apply(CallArrived("old", "consult", "1", 10.0, 10.0))
    core.apply(CallArrived("new", "complaint", "2", 20.0, 20.0))
    core.apply(TransferCall("old", "complaint", 30.0))
    assert core.calls["old"].entry_time == 10.0
    eff = core.apply(SetAgentStatus("c1", AgentStatus.AVAILABLE, 31.0))
    assert offers(eff) == [("old", "c1")]  # older than "new", although transferred later
    assert core.figures.total("consult").transferred_out == 1
    with pytest.raises(CallNotWaiting):
        core.apply(TransferCall("old", "consult", 32.0))  # ringing now
    with pytest.raises(UnknownQueue):
        core.apply(TransferCall("new", "nope", 32.0))
    with pytest.raises(UnknownCall):
        core.apply(TransferCall("ghost", "consult", 32.0))


def test_supervisor_priority_change_reorders_waiting_calls(core: EngineCore) -> None:
    for a in ("a1", "a2"):
        core.apply(SetAgentStatus(a, AgentStatus.LOGGED_OUT, 0.0))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    core.apply(CallArrived("c2", "consult", "2", 11.0, 11.0))
    core.apply(SetCallPriority("c2", 50, 12.0))
    eff = core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 13.0))
    assert offers(eff) == [("c2", "a1")]


def test_reentry_of_an_answered_call_completes_the_agent_leg(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    core.apply(CallAnswered("c1", "a1", 11.0))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 20.0))  # agent transferred it back
    assert core.agents["a1"].state is AgentState.WRAP_UP
    assert core.calls["c1"].state.value == "waiting" and core.calls["c1"].entry_time == 10.0
    assert core.apply(DialFinished("c1", "a1", "ANSWER", 20.1, 9.0)) == []


STAGED = """
queues:
  - id: repair
    skills: {repair: 3}
    strategy: most_skilled
    groups: [site-a]
    stages:
      - {after: 5, min_level_delta: 1, groups: [site-a]}
      - {after: 10, min_level_delta: 2, groups: [site-a, partnerless-site-b]}
agents:
  - {id: expert, skills: {repair: 5}, contact: "sip:e@127.0.0.1:6001", status: logged_out,
     groups: [site-a]}
  - {id: junior, skills: {repair: 2}, contact: "sip:j@127.0.0.1:6002", groups: [site-a]}
  - {id: novice, skills: {repair: 1}, contact: "sip:n@127.0.0.1:6003",
     groups: [partnerless-site-b]}
"""


def test_escalation_stage_widens_to_a_lower_level_after_its_wait() -> None:
    core = core_of(STAGED)
    core.initial_effects(0.0)
    eff = core.apply(CallArrived("c1", "repair", "1", 100.0, 100.0))
    assert offers(eff) == []  # nobody at level 3 is free
    timers = [e for e in eff if isinstance(e, StartTimer)]
    assert [t.delay for t in timers] == [5.0]
    eff = core.apply(timers[0].event)  # stage 1: level 2 will do
    assert offers(eff) == [("c1", "junior")]
    offered = next(e for e in eff if isinstance(e, Fact) and e.name == "call_offered")
    assert offered.data["stage"] == 1 and offered.data["strategy"] == "most_skilled"
    stage2 = [e for e in eff if isinstance(e, StartTimer)]
    assert [t.delay for t in stage2] == [5.0]  # armed once, for t = 110
    # the junior misses it: back in line at stage 1; the stage-2 timer still stands
    eff = core.apply(DialFinished("c1", "junior", "NOANSWER", 108.0))
    assert core.calls["c1"].stage == 1
    assert [e for e in eff if isinstance(e, StartTimer)] == []
    eff = core.apply(stage2[0].event)
    assert offers(eff) == [("c1", "novice")] and core.calls["c1"].stage == 2


def test_most_skilled_agent_first_and_explanation() -> None:
    core = core_of(STAGED)
    core.initial_effects(0.0)
    core.apply(SetAgentStatus("junior", AgentStatus.PAUSED, 1.0, "lunch"))
    core.apply(CallArrived("c1", "repair", "1", 100.0, 100.0))
    lines = "\n".join(core.explain("c1"))
    assert "junior" in lines and "paused (lunch)" in lines
    assert "expert" in lines and "logged out" in lines
    eff = core.apply(SetAgentStatus("expert", AgentStatus.AVAILABLE, 101.0))
    assert offers(eff) == [("c1", "expert")]
    assert "offered to expert at stage 0 by most_skilled" in core.explain("c1")[0]


def test_narrowing_stage_is_a_config_error() -> None:
    from acd.config import ConfigError
    with pytest.raises(ConfigError) as exc:
        parse_config("queues:\n  - id: q\n    skills: {a: 2}\n"
                     "    stages: [{after: 5, skills: {a: 3}}]\n", "n.yaml")
    assert "n.yaml: queues[q].stages" in exc.value.errors[0]


def test_pause_reasons_come_from_config_and_rona_limit() -> None:
    from acd.domain import UnknownPauseReason
    core = core_of(CONFIG + "engine: {rona_limit: 2, "
                                   "pause_reasons: [lunch]}\n")
    core.initial_effects(0.0)
    with pytest.raises(UnknownPauseReason):
        core.apply(SetAgentStatus("a1", AgentStatus.PAUSED, 1.0, "nap"))
    core.apply(SetAgentStatus("a2", AgentStatus.PAUSED, 1.0, "lunch"))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    core.apply(DialFinished("c1", "a1", "NOANSWER", 25.0))  # first miss: still available
    assert core.agents["a1"].status is AgentStatus.AVAILABLE
    assert core.calls["c1"].agent_id == "a1"  # offered again at once
    core.apply(DialFinished("c1", "a1", "BUSY", 26.0))  # second in a row: paused
    assert core.agents["a1"].status is AgentStatus.PAUSED
    assert core.agents["a1"].reason == "no-answer"


def test_served_call_coming_back_is_a_transfer_keeping_seniority(core: EngineCore) -> None:
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    agent = core.calls["c1"].agent_id
    assert agent is not None
    core.apply(DialFinished("c1", agent, "ANSWER", 30.0, 15.0))
    core.apply(CallHungUp("c1", 30.0))
    eff = core.apply(CallArrived("c1", "consult", "1", 10.0, 30.5))
    waiting = next(e for e in eff if isinstance(e, Fact) and e.name == "call_waiting")
    assert waiting.data["reentry"] is True and waiting.data["entry_time"] == 10.0
    assert core.figures.total("consult").offered == 1


def test_agent_who_logged_out_while_ringing_stays_logged_out_after_no_answer(
        core: EngineCore) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.0))
    core.apply(CallArrived("c1", "consult", "1", 10.0, 10.0))
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 11.0))
    core.apply(DialFinished("c1", "a1", "NOANSWER", 25.0))
    assert core.agents["a1"].status is AgentStatus.LOGGED_OUT


def test_ringing_is_published_and_one_stage_timer_per_boundary() -> None:
    core = core_of(STAGED)
    core.initial_effects(0.0)
    eff = core.apply(CallArrived("c1", "repair", "1", 100.0, 100.0))
    assert len([e for e in eff if isinstance(e, StartTimer)]) == 1
    eff = core.apply(SetAgentStatus("expert", AgentStatus.AVAILABLE, 101.0))
    ringing = [e for e in eff if isinstance(e, Fact) and e.name == "agent"
               and e.data["state"] == "ringing"]
    assert ringing and ringing[0].data["agent"] == "expert"
    eff = core.apply(DialFinished("c1", "expert", "NOANSWER", 103.0))
    assert [e for e in eff if isinstance(e, StartTimer)] == []  # stage-1 timer already set


def test_a_core_that_is_not_routing_keeps_state_but_offers_nothing(core: EngineCore) -> None:
    core.routing = False  # hot standby, stepped down or stopping
    assert offers(core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))) == []
    assert offers(core.apply(CallArrived("c2", "consult", "2", 6.0, 6.0))) == []
    assert core.calls["c1"].state.value == "waiting"
    core.routing = True  # active again: the next event routes, oldest first
    eff = core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 7.0))
    assert offers(eff) == [("c1", "a1"), ("c2", "a2")]


# -- phones the engine has not heard of, and phones a dial could not reach (issue 15.1) --


def _core_with_ami() -> EngineCore:
    """A core whose device state comes over AMI (server ``main``), not yet synced."""
    c = core_of(CONFIG, device_state_servers=["main"])
    c.initial_effects(0.0)
    return c


def test_with_ami_a_phone_never_heard_of_is_not_offered() -> None:
    core = _core_with_ami()
    assert core.agents["a1"].device_state == "UNKNOWN"
    assert offers(core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))) == []
    # the resync says agent2 is free, agent1 is unregistered
    eff = core.apply(DeviceSnapshot({"PJSIP/agent1": "UNAVAILABLE",
                                     "PJSIP/agent2": "NOT_INUSE"}, 6.0, "main"))
    assert offers(eff) == [("c1", "a2")]
    assert not core.agents["a1"].routable


def test_ami_lost_phones_never_heard_of_count_as_free_again() -> None:
    core = _core_with_ami()
    core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))
    eff = core.apply(DeviceStateLost("main", 6.0))
    assert offers(eff) == [("c1", "a1")]  # routes on without device state
    # a phone Asterisk said was unavailable stays so while AMI is down
    core.apply(DeviceSnapshot({"PJSIP/agent2": "UNAVAILABLE"}, 7.0, "main"))
    core.apply(DeviceStateLost("main", 8.0))
    assert not core.agents["a2"].routable


def test_without_ami_unknown_phones_are_free() -> None:
    core = core_of(CONFIG)
    core.initial_effects(0.0)
    assert offers(core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))) == [("c1", "a1")]


@pytest.mark.parametrize("status", ["CHANUNAVAIL", "CONGESTION"])
def test_unreachable_phone_is_unavailable_not_a_ring_no_answer(
        core: EngineCore, status: str) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.5))
    core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))
    eff = core.apply(DialFinished("c1", "a1", status, 5.01))
    a1 = core.agents["a1"]
    # the person is not paused and nothing counts against it
    assert (a1.status, a1.reason, a1.state) == (AgentStatus.AVAILABLE, "", AgentState.IDLE)
    assert (a1.missed, a1.consecutive_missed) == (0, 0)
    assert core.figures.total("consult").rona == 0
    assert not [e for e in eff if isinstance(e, Fact) and e.name == "agent_no_answer"]
    unreachable = [e for e in eff if isinstance(e, Fact) and e.name == "agent_unreachable"]
    assert unreachable and unreachable[0].data["dialstatus"] == status
    # the device shows unavailable; the call waits with its place, not offered to a1 again
    assert core.agents["a1"].device_shown == "UNAVAILABLE"
    assert not a1.routable and offers(eff) == []
    assert core.calls["c1"].state is CallState.WAITING
    # Asterisk repeating "free" after the failed dial is no news: still not rung
    assert offers(core.apply(DeviceStateChanged("PJSIP/agent1", "NOT_INUSE", 5.1))) == []
    # another agent logs in and takes the call at once
    eff = core.apply(SetAgentStatus("a2", AgentStatus.AVAILABLE, 6.0))
    assert offers(eff) == [("c1", "a2")]


def test_unreachable_phone_is_tried_again_when_it_registers_or_after_the_retry(
        core: EngineCore) -> None:
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.5))
    core.apply(CallArrived("c1", "consult", "1", 5.0, 5.0))
    eff = core.apply(DialFinished("c1", "a1", "CHANUNAVAIL", 5.01))
    recheck = [e for e in eff if isinstance(e, StartTimer) and isinstance(e.event, PhoneRecheck)]
    assert len(recheck) == 1 and recheck[0].delay == 30.0
    # Asterisk: unregistered, then the phone registers -> rung at once
    core.apply(DeviceStateChanged("PJSIP/agent1", "UNAVAILABLE", 6.0))
    eff = core.apply(DeviceStateChanged("PJSIP/agent1", "NOT_INUSE", 7.0))
    assert offers(eff) == [("c1", "a1")]
    # the stale timer of the first failure does nothing
    core.apply(DialFinished("c1", "a1", "CONGESTION", 7.5))
    assert offers(core.apply(recheck[0].event)) == []
    # the timer of the latest failure lets it be tried again
    assert core.agents["a1"].recheck_token == 2
    eff = core.apply(PhoneRecheck("a1", 2, 40.0))
    assert offers(eff) == [("c1", "a1")]


# -- the transition tables --------------------------------------------------------------


def test_illegal_transitions_raise_and_leave_the_record_untouched() -> None:
    from acd.domain import Agent, Call, IllegalTransition
    from acd.domain.records import AGENT_TRANSITIONS, CALL_TRANSITIONS

    call = Call("c1", "consult", "1", 1.0, 1.0)
    with pytest.raises(IllegalTransition, match="call c1: waiting -> completed"):
        call.move(CallState.COMPLETED)  # never answered: it cannot complete
    assert call.state is CallState.WAITING
    call.move(CallState.OFFERED)
    call.move(CallState.CONNECTED)
    with pytest.raises(IllegalTransition):
        call.move(CallState.WAITING)  # a connected call never goes back in line
    call.move(CallState.COMPLETED)
    for final in (CallState.COMPLETED, CallState.ABANDONED, CallState.RELEASED):
        assert CALL_TRANSITIONS[final] == frozenset()
    agent = Agent("a1", "PJSIP/agent1")
    with pytest.raises(IllegalTransition, match="agent a1: idle -> on_call"):
        agent.move(AgentState.ON_CALL)  # it must ring first
    assert agent.state is AgentState.IDLE
    assert AGENT_TRANSITIONS[AgentState.WRAP_UP] == frozenset({AgentState.IDLE})


def test_a_bug_in_a_transition_never_corrupts_the_live_counts(core: EngineCore) -> None:
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, 0.5))
    core.apply(SetAgentStatus("a2", AgentStatus.LOGGED_OUT, 0.5))
    core.apply(CallArrived("c1", "consult", "1", 1.0, 1.0))
    assert core.live_count("consult", CallState.WAITING) == 1
    core.apply(CallHungUp("c1", 2.0))
    assert core.live_count("consult", CallState.WAITING) == 0
    assert core.live_count("consult", CallState.OFFERED) == 0


# -- exits: the line's limits and the caller's own way out (issue 11.3) -------------------

EXITS = """
queues:
  - id: consult
    skills: {consult: 1}
    exits:
      max_wait: 60
      max_waiting: 2
      action: {to: voicemail, mailbox: "100@default", sound: custom/sorry}
      key: "1"
      key_action: {to: queue, queue: repair}
  - {id: repair, skills: {repair: 1}}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:a@h", status: logged_out}
  - {id: r1, endpoint: r1, skills: {repair: 1}, contact: "sip:r@h", status: logged_out}
"""


def test_a_caller_past_max_wait_leaves_to_voicemail_and_is_not_abandoned() -> None:
    from acd.domain import ExitCall, WaitLimit

    core = make_core(EXITS)
    eff = core.apply(CallArrived("c1", "consult", "1", 100.0, 100.0))
    timers = [e for e in eff if isinstance(e, StartTimer) and isinstance(e.event, WaitLimit)]
    assert len(timers) == 1 and timers[0].delay == 60
    eff = core.apply(timers[0].event)
    exits = [e for e in eff if isinstance(e, ExitCall)]
    assert exits == [ExitCall("c1", "consult", "custom/sorry", "100@default")]
    fact = next(e for e in eff if isinstance(e, Fact) and e.name == "call_exited")
    assert fact.data == {"call_id": "c1", "queue": "consult", "wait": 60.0,
                         "reason": "max_wait", "action": "voicemail", "target": None}
    totals = core.figures.total("consult")
    assert (totals.exits, totals.abandoned) == (1, 0)
    assert "c1" not in core.calls and core.router.waiting() == 0
    assert core.apply(CallHungUp("c1", 161.0)) == []  # its session ends: nothing more


def test_unset_sounds_a_goodbye_before_hang_up_and_none_before_a_voicemail() -> None:
    """A voicemail with no sound of its own lets the mailbox greet (VoiceMail ``u``); a
    closing message with none says goodbye."""
    from acd.domain import CallerKey, ExitCall

    core = make_core(EXITS.replace(", sound: custom/sorry", "").replace(
        "key_action: {to: queue, queue: repair}", "key_action: {to: message}"))
    core.apply(CallArrived("c1", "consult", "1", 100.0, 100.0))
    core.apply(CallArrived("c2", "consult", "2", 101.0, 101.0))
    eff = core.apply(CallArrived("c3", "consult", "3", 102.0, 102.0))  # max_waiting: 2
    assert [e for e in eff if isinstance(e, ExitCall)] == [
        ExitCall("c3", "consult", "", "100@default")]
    eff = core.apply(CallerKey("c1", "1", 103.0))
    assert [e for e in eff if isinstance(e, ExitCall)] == [
        ExitCall("c1", "consult", "vm-goodbye", None)]


def test_too_many_waiting_the_next_caller_exits_at_once() -> None:
    from acd.domain import ExitCall

    core = make_core(EXITS)
    core.apply(CallArrived("c1", "consult", "1", 100.0, 100.0))
    core.apply(CallArrived("c2", "consult", "2", 101.0, 101.0))
    eff = core.apply(CallArrived("c3", "consult", "3", 102.0, 102.0))
    assert [e.call_id for e in eff if isinstance(e, ExitCall)] == ["c3"]
    assert core.figures.total("consult").offered == 3  # it was offered, then it exited
    assert set(core.calls) == {"c1", "c2"}


def test_the_callers_key_moves_it_to_another_queue_keeping_its_place() -> None:
    from acd.domain import CallerKey

    core = make_core(EXITS)
    core.apply(CallArrived("old", "repair", "1", 50.0, 50.0))  # waiting in repair already
    core.apply(CallArrived("c1", "consult", "2", 45.0, 100.0))  # entered earlier, elsewhere
    assert core.apply(CallerKey("c1", "2", 101.0)) == []  # not its key: nothing happens
    assert core.calls["c1"].queue_id == "consult"
    eff = core.apply(CallerKey("c1", "1", 102.0))
    exited = next(e for e in eff if isinstance(e, Fact) and e.name == "call_exited")
    assert (exited.data["action"], exited.data["target"]) == ("queue", "repair")
    assert core.calls["c1"].queue_id == "repair"
    assert core.figures.total("repair").transferred_in == 1
    # it entered at 45, before "old" (50): it is served first in repair
    eff = core.apply(SetAgentStatus("r1", AgentStatus.AVAILABLE, 103.0))
    assert offers(eff) == [("c1", "r1")]


# -- hours gate own sites and waiting callers (issue 11.5) -------------------------------

HOURS = """
timezone: Asia/Shanghai
queues:
  - id: consult
    skills: {consult: 1}
    hours: {daily: "08:00-20:00"}
    on_close: closed
    closed: {action: message, sound: custom/closed}
  - {id: repair, skills: {repair: 1}, hours: {daily: "08:00-20:00"}}
sites:
  - {id: bj, kind: own, hours: {daily: "09:00-18:00"}}
  - {id: cd, kind: own}
agents:
  - {id: a1, skills: {consult: 1, repair: 1}, groups: [bj], contact: "sip:a1@h"}
  - {id: a2, skills: {consult: 1, repair: 1}, groups: [bj, cd], contact: "sip:a2@h",
     status: logged_out}
"""


def test_an_own_site_that_closes_offers_its_agents_no_call_and_opens_them_again() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from acd.domain import HoursDue, Offer
    from acd.domain.facts import AgentChanged

    tz = ZoneInfo("Asia/Shanghai")
    core = make_core(HOURS)
    at = datetime(2026, 12, 7, 8, 30, tzinfo=tz).timestamp()  # bj opens at 09:00
    eff = core.hours_effects(at)
    timers = [e for e in eff if isinstance(e, StartTimer) and isinstance(e.event, HoursDue)]
    assert {(t.event.kind, t.event.target_id) for t in timers} == {
        ("site", "bj"), ("queue", "consult")}
    site_timer = next(t for t in timers if t.event.target_id == "bj")
    assert site_timer.delay == 30 * 60
    assert not core.agents["a1"].site_open and core.agents["a2"].site_open  # a2: cd too
    core.apply(CallArrived("c1", "consult", "1", at, at))
    assert core.calls["c1"].state is CallState.WAITING  # a1 is at a closed site
    eff = core.apply(site_timer.event)  # 09:00
    assert [e.agent_id for e in eff if isinstance(e, Offer)] == ["a1"]
    changed = [e for e in eff if isinstance(e, AgentChanged)]
    assert changed and changed[0].site_open
    nxt = next(e for e in eff if isinstance(e, StartTimer) and isinstance(e.event, HoursDue))
    assert nxt.event.now == datetime(2026, 12, 7, 18, 0, tzinfo=tz).timestamp()


def test_waiting_callers_of_a_closing_queue_get_its_closed_action_or_stay() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from acd.domain import ExitCall, HoursDue, SetAgentStatus

    tz = ZoneInfo("Asia/Shanghai")
    core = make_core(HOURS)
    at = datetime(2026, 12, 7, 19, 59, tzinfo=tz).timestamp()
    core.hours_effects(at)
    core.apply(SetAgentStatus("a1", AgentStatus.LOGGED_OUT, at))
    for cid, q in (("c1", "consult"), ("c2", "consult"), ("r1", "repair")):
        core.apply(CallArrived(cid, q, "1", at, at))
    eight = datetime(2026, 12, 7, 20, 0, tzinfo=tz).timestamp()
    eff = core.apply(HoursDue("queue", "consult", eight))
    assert [e for e in eff if isinstance(e, ExitCall)] == [
        ExitCall("c1", "consult", "custom/closed", None),
        ExitCall("c2", "consult", "custom/closed", None)]
    assert core.calls["r1"].state is CallState.WAITING  # repair: on_close stay
    totals = core.figures.total("consult")
    assert (totals.exits, totals.abandoned) == (2, 0)
