"""Expected wait (acd.domain.ewt): a replay of the next minutes in the router's order."""

from __future__ import annotations

import pytest

from acd.domain import (
    AgentStatus,
    CallAnswered,
    CallArrived,
    DialFinished,
    EngineCore,
    SetAgentStatus,
)
from acd.domain.ewt import HandleTimes, naive_estimate, spoken_minutes
from tests.unit.conftest import make_core

TWO_QUEUES = """
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 10, expected_handle_time: 110}
  - {id: repair, skills: {repair: 1}, wrap_up: 0, priority: 5, expected_handle_time: 50}
agents:
  - {id: a1, skills: {consult: 1}, contact: "sip:a1@h"}
  - {id: a2, skills: {consult: 1, repair: 1}, contact: "sip:a2@h"}
"""


def talking(core: EngineCore, call_id: str, agent: str, queue: str, at: float) -> None:
    """A call of ``queue`` that ``agent`` answered at ``at``."""
    for other in core.agents:
        if other != agent:
            core.apply(SetAgentStatus(other, AgentStatus.LOGGED_OUT, at))
    core.apply(CallArrived(call_id, queue, "1", at, at))
    assert core.calls[call_id].agent_id == agent
    core.apply(CallAnswered(call_id, agent, at))
    for other in core.agents:
        if other != agent:
            core.apply(SetAgentStatus(other, AgentStatus.AVAILABLE, at))


def test_callers_wait_for_the_agents_their_stage_admits_in_router_order() -> None:
    core = make_core(TWO_QUEUES)
    talking(core, "t1", "a1", "consult", 150.0)
    talking(core, "t2", "a2", "consult", 180.0)
    for i, t in enumerate((200.0, 201.0, 202.0)):
        core.apply(CallArrived(f"c{i}", "consult", "1", t, t))
    sweep = core.estimator.sweep(210.0)
    # expected talk 110 s (the seed) + wrap-up 10: a1 (60 s in) free at 210+50+10 = 270,
    # a2 (30 s in) at 300; c0 → a1 at 270, c1 → a2 at 300, c2 → a1 again at 270+120
    assert [round(sweep.calls[c].seconds or -1) for c in ("c0", "c1", "c2")] == [60, 90, 180]
    assert all(sweep.calls[c].sure for c in ("c0", "c1", "c2"))
    assert [sweep.calls[c].position for c in ("c0", "c1", "c2")] == [1, 2, 3]
    # a caller arriving now waits for the first agent left after those three: a2 at 420
    assert round(sweep.newcomer["consult"].seconds or -1) == 210


def test_a_shared_agent_serves_the_other_queues_callers_first_when_they_are_ahead() -> None:
    core = make_core(TWO_QUEUES)
    talking(core, "t1", "a1", "consult", 150.0)
    talking(core, "t2", "a2", "consult", 180.0)
    core.apply(CallArrived("c1", "consult", "1", 200.0, 200.0))
    core.apply(CallArrived("r1", "repair", "2", 205.0, 205.0))  # priority 5: ahead
    sweep = core.estimator.sweep(210.0)
    # a2 (consult and repair) frees at 300 and takes r1 first (handle 50 + 0 on repair)
    assert round(sweep.calls["r1"].seconds or -1) == 90
    # c1 gets a1 at 270 all the same; a second consult caller would get a2 only at 350
    assert round(sweep.calls["c1"].seconds or -1) == 60
    core.apply(CallArrived("c2", "consult", "1", 206.0, 206.0))
    assert round(core.estimator.sweep(210.0).calls["c2"].seconds or -1) == 140


def test_a_later_stage_admits_more_agents_from_the_moment_the_call_reaches_it() -> None:
    core = make_core("""
queues:
  - id: repair
    skills: {repair: 3}
    expected_handle_time: 60
    wrap_up: 0
    stages: [{after: 40, min_level_delta: 2}]
agents:
  - {id: senior, skills: {repair: 3}, contact: "sip:s@h", status: logged_out}
  - {id: junior, skills: {repair: 1}, contact: "sip:j@h"}
""")
    core.apply(CallArrived("c1", "repair", "1", 100.0, 100.0))
    sweep = core.estimator.sweep(110.0)
    # nobody at stage 0 (senior logged out); junior (idle) is admitted at 140
    assert round(sweep.calls["c1"].seconds or -1) == 30
    assert sweep.calls["c1"].sure


def test_unsure_without_handle_times_and_without_available_agents() -> None:
    core = make_core("""
queues: [{id: consult, skills: {consult: 1}}]
agents: [{id: a1, skills: {consult: 1}, contact: "sip:a@h", status: logged_out}]
""")
    core.apply(CallArrived("c1", "consult", "1", 100.0, 100.0))
    est = core.estimator.sweep(101.0).calls["c1"]
    assert est.seconds is None and not est.sure  # nobody available: nobody knows
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 102.0))
    core.apply(CallAnswered("c1", "a1", 102.0))
    core.apply(CallArrived("c2", "consult", "1", 103.0, 103.0))
    est = core.estimator.sweep(104.0).calls["c2"]
    assert not est.sure  # no talk time measured or configured yet
    for i in range(10):  # ten calls measured: now it is known
        core.handle_times.observe("consult", "a1", 100.0 + i)
    assert core.estimator.sweep(104.0).calls["c2"].sure


def test_paused_agents_are_not_counted() -> None:
    core = make_core(TWO_QUEUES)
    talking(core, "t1", "a1", "consult", 150.0)
    core.apply(SetAgentStatus("a2", AgentStatus.PAUSED, 160.0, "lunch"))
    core.apply(CallArrived("c1", "consult", "1", 200.0, 200.0))
    core.apply(CallArrived("c2", "consult", "1", 201.0, 201.0))
    sweep = core.estimator.sweep(210.0)
    assert round(sweep.calls["c2"].seconds or -1) == 180  # both wait for a1 alone


def test_remaining_talk_is_conditioned_on_how_long_the_call_has_lasted() -> None:
    times = HandleTimes({"q": None}, {"q": 0.0})
    for talk in (30.0, 60.0, 90.0, 120.0, 300.0) * 4:
        times.observe("q", None, talk)
    assert times.remaining_talk("q", "x", 0.0) == pytest.approx(120.0)  # the mean
    # a call 100 s in is one of the 120 or 300 s ones: (120 + 300) / 2 - 100
    assert times.remaining_talk("q", "x", 100.0) == pytest.approx(110.0)
    # an agent twice as slow on this queue (shrunk towards the queue: 8 calls of prior)
    for _ in range(24):
        times.observe("q", "slow", 240.0)
    base = times.queue_talk("q")  # the queue's recent calls, the slow agent's included
    assert base is not None and 120 < base < 240
    assert times.talk("q", "slow") == pytest.approx((24 * 240 + 8 * base) / 32)


def test_what_callers_are_told() -> None:
    assert spoken_minutes(45) == 0  # "less than a minute"
    assert spoken_minutes(89) == 1
    assert spoken_minutes(151) == 3
    assert naive_estimate(3, 120.0, 2) == 180.0
    assert naive_estimate(3, None, 2) is None


def test_completed_calls_feed_the_handle_times() -> None:
    core = make_core(TWO_QUEUES)
    core.apply(CallArrived("c1", "consult", "1", 100.0, 100.0))
    agent = core.calls["c1"].agent_id
    assert agent is not None
    core.apply(DialFinished("c1", agent, "ANSWER", 200.0, talk=80.0))
    assert core.handle_times.talk("consult", agent) == pytest.approx(
        (80 + 8 * 110) / 9)  # one measured call, shrunk towards the seed of 110


# -- replays off the routing path (acd.runtime.estimates) ------------------------------

def test_a_replay_in_steps_tells_what_a_replay_at_once_tells() -> None:
    """Stepped, calls and agents moving on between steps: the result is the replay of
    the state the first step read."""
    core = make_core(TWO_QUEUES)
    talking(core, "t1", "a1", "consult", 150.0)
    talking(core, "t2", "a2", "consult", 180.0)
    for i in range(40):
        core.apply(CallArrived(f"c{i}", "consult", "1", 200.0 + i, 200.0 + i))
    at_once = core.estimator.sweep(250.0)
    steps = core.estimator.steps(250.0, chunk=16)
    next(steps)
    yielded = 1
    core.apply(CallArrived("late", "consult", "1", 250.5, 250.5))  # between two steps
    core.apply(SetAgentStatus("a2", AgentStatus.PAUSED, 251.0))
    while True:
        try:
            next(steps)
            yielded += 1
        except StopIteration as done:
            stepped = done.value
            break
    assert yielded > 40 * 64 // 16 // 2  # it really went in steps
    assert stepped.calls == at_once.calls and stepped.newcomer == at_once.newcomer
    assert "late" not in stepped.calls


def test_a_caller_who_joined_after_the_replay_is_placed_by_its_queues_newcomer() -> None:
    core = make_core(TWO_QUEUES)
    talking(core, "t1", "a1", "consult", 150.0)
    talking(core, "t2", "a2", "consult", 180.0)
    core.apply(CallArrived("c0", "consult", "1", 200.0, 200.0))
    sweep = core.estimator.sweep(210.0)
    newcomer = sweep.newcomer["consult"]
    assert newcomer.position == 2 and newcomer.sure
    core.apply(CallArrived("c1", "consult", "1", 211.0, 211.0))
    # c1 is second in line, where the newcomer of the replay stood, 1 s later
    assert sweep.wait_of("c1", "consult", 2, 211.0) == pytest.approx(
        (newcomer.seconds or 0) - 1.0)
    # a third caller (nobody walked it) stands half again as far
    assert sweep.wait_of("c9", "consult", 3, 210.0) == pytest.approx(
        (newcomer.seconds or 0) * 3 / 2)
    assert sweep.wait_of("c9", "consult", None, 210.0) is None  # no place: unsure
