"""Why the other agents did not get an offered call: ``Router.exclusions`` (counts by
reason, named runners-up, from the indexes) and what the engine records, publishes and
logs at each offer."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import routing.router
from acd.domain import (
    AgentStatus,
    CallArrived,
    DeviceStateChanged,
    DialFinished,
    EngineCore,
    Fact,
    Offer,
    SetAgentStatus,
)
from acd.runtime.engine import _log_decision
from routing import (
    AgentSpec,
    Match,
    QueueSpec,
    Reason,
    ReferenceRouter,
    Router,
    StageSpec,
    Strategy,
    WaitingCall,
    Why,
)
from tests.unit.conftest import core_of
from tests.unit.test_routing_core import AGENTS, GROUPS, OPS, QUEUES, SKILLS, apply

CONSULT = QueueSpec("consult", {"consult": 3}, groups=frozenset({"sz"}), stages=(
    StageSpec(30, min_level_delta=1, groups=frozenset({"sz", "gz"})),
))
PAUSED = Reason(Why.PAUSED, detail="lunch")
BUSY_PHONE = Reason(Why.PHONE, detail="INUSE")
ON_CALL = Reason(Why.ON_CALL)


def agent(agent_id: str, groups: str = "sz", **skills: int) -> AgentSpec:
    return AgentSpec(agent_id, skills, frozenset(groups.split()))


def by_text(counts: tuple[tuple[Reason, int], ...]) -> dict[str, int]:
    return {str(reason): n for reason, n in counts}


def offer_one(r: Router, call_id: str, queue: str = "consult", stage: int = 0) -> Match:
    r.add_call(WaitingCall(call_id, queue, 0, 0.0, 1, stage=stage))
    [m] = r.dispatch()
    return m


# -- the router ----------------------------------------------------------------------------


def test_an_offer_names_why_each_other_agent_was_left_out() -> None:
    agents = [agent("chosen", consult=3), agent("slower", consult=4),
              agent("low", consult=2), agent("none", repair=2), agent("far", "bj", consult=5),
              agent("paused", consult=5), agent("phone", consult=5), agent("talking", consult=4)]
    r = Router([CONSULT], agents)
    for i, a in enumerate(["chosen", "slower", "low", "none", "far"]):
        r.set_routable(a, float(i))
    why = {"paused": PAUSED, "phone": BUSY_PHONE, "talking": ON_CALL}.__getitem__
    m = offer_one(r, "c")
    assert m.agent_id == "chosen"
    ex = r.exclusions(m, why)
    assert by_text(ex.counts) == {
        "missing skill consult": 1,  # none: from the size of the skill index
        "level below 3 in consult": 1,
        "not in an admitted group": 1,
        "paused (lunch)": 1,
        "on call": 1,
        "phone INUSE": 1,
        "ranked below by longest_idle": 1,
    }
    assert (ex.agents, ex.excluded, ex.pivot, ex.holders, ex.admitted) == (8, 7, "consult", 7, 5)
    assert [str(u) for u in ex.runners_up] == [
        "slower: ranked below by longest_idle (idle since 1.0)",  # the next best first
        "paused: paused (lunch)",  # then admitted but not routable, by id
        "phone: phone INUSE",
        "talking: on call",
        "low: level below 3 in consult (has 2), eligible from stage 1",  # then the nearest
    ]
    assert ex.runners_up[0].reason == Reason(Why.RANKED_BELOW, detail="longest_idle")
    assert ex.summary().startswith("7 of 8 agent(s) excluded: 1 missing skill consult, ")


def test_the_rarest_required_skill_is_the_pivot_and_the_rest_miss_it() -> None:
    queue = QueueSpec("repair", {"repair": 2, "consult": 1})
    agents = [agent("a", repair=2, consult=1), agent("b", repair=1, consult=5),
              agent("c", consult=1), agent("d", consult=2), agent("e", billing=1)]
    r = Router([queue], agents)
    r.set_routable("a", 0.0)
    ex = r.exclusions(offer_one(r, "c1", "repair"), lambda _: ON_CALL)
    # repair is held by 2 agents, consult by 4: only a and b are looked at one by one
    assert (ex.pivot, ex.holders, ex.admitted) == ("repair", 2, 1)
    assert by_text(ex.counts) == {"missing skill repair": 3, "level below 2 in repair": 1}
    assert ex.excluded == ex.agents - 1 == 4


def test_ranked_below_says_what_the_strategy_ranked_on() -> None:
    queues = [QueueSpec("best", {"consult": 1}, strategy=Strategy.MOST_SKILLED),
              QueueSpec("even", {"consult": 1}, strategy=Strategy.FEWEST_CALLS)]
    r = Router(queues, [agent("x", consult=5), agent("y", consult=2), agent("z", consult=3)])
    r.set_routable("x", 0.0, calls_today=9)
    r.set_routable("y", 0.0, calls_today=1)
    r.set_routable("z", 0.0, calls_today=4)
    ex = r.exclusions(offer_one(r, "c1", "best"), lambda _: ON_CALL)
    assert [str(u) for u in ex.runners_up] == [
        "z: ranked below by most_skilled (skill sum 3)",
        "y: ranked below by most_skilled (skill sum 2)"]
    r.set_routable("x", 5.0, calls_today=9)
    ex = r.exclusions(offer_one(r, "c2", "even"), lambda _: ON_CALL)
    assert [str(u) for u in ex.runners_up] == [
        "z: ranked below by fewest_calls (4 calls today)",
        "x: ranked below by fewest_calls (9 calls today)"]


def test_the_next_best_come_off_large_ring_heaps_in_order() -> None:
    r = Router([QueueSpec("consult", {"consult": 1})],
               [agent(f"a{i:02}", consult=1) for i in range(60)])
    idle: dict[str, float] = {}
    for t in range(400):  # churn leaves stale entries in the heaps
        a = f"a{(t * 7) % 60:02}"
        r.set_routable(a, float(t % 50))
        idle[a] = float(t % 50)
        if t % 3:
            b = f"a{(t * 11) % 60:02}"
            r.set_unroutable(b)
            idle.pop(b, None)
        assert r.dispatch() == []  # as the engine does after each event
    slot = r._slots["consult"][0]  # white-box: the walk, not the sort, is taken
    assert sum(len(ring.entries) for ring in slot.rings) > 4 * routing.router.RUNNERS_UP + 16
    m = offer_one(r, "c1")
    order = sorted(idle, key=lambda a: (idle[a], a))
    assert m.agent_id == order[0]
    ex = r.exclusions(m, lambda _: ON_CALL)
    assert [u.agent_id for u in ex.runners_up] == order[1:6]
    assert by_text(ex.counts) == {"on call": 60 - len(idle),
                                  "ranked below by longest_idle": len(idle) - 1}


def test_an_agent_taken_by_another_match_of_the_same_dispatch_is_not_free() -> None:
    r = Router([QueueSpec("consult", {"consult": 1})],
               [agent("a", consult=1), agent("b", consult=1), agent("c", consult=1)])
    for i, a in enumerate("abc"):
        r.set_routable(a, float(i))
    r.add_call(WaitingCall("c1", "consult", 0, 0.0, 1))
    r.add_call(WaitingCall("c2", "consult", 0, 1.0, 2))
    first, second = r.dispatch()
    assert (first.agent_id, first.candidates, second.agent_id) == ("a", 3, "b")
    ringing = Reason(Why.RINGING)
    ex = r.exclusions(first, lambda _: ringing)  # b rings for c2 by the time c1 rings a
    assert by_text(ex.counts) == {"ringing": 1, "ranked below by longest_idle": 1}


def test_a_match_not_yet_taken_out_is_explained_alike() -> None:
    r = Router([CONSULT], [agent("a", consult=3), agent("b", consult=3), agent("c", consult=4)])
    r.set_routable("a", 0.0)
    r.set_routable("b", 1.0)
    r.add_call(WaitingCall("c1", "consult", 0, 0.0, 1))
    query = r.match_call("c1")  # a question: nothing is taken out
    assert query is not None
    before = r.exclusions(query, lambda _: ON_CALL)
    assert by_text(before.counts) == {"on call": 1, "ranked below by longest_idle": 1}
    [taken] = r.dispatch()
    assert taken == query and r.exclusions(taken, lambda _: ON_CALL) == before


def test_a_skill_change_renews_the_exclusions() -> None:
    r = Router([CONSULT], [agent("a", consult=5), agent("b", consult=1)])
    r.set_routable("a", 0.0)
    assert by_text(r.exclusions(offer_one(r, "c1"), lambda _: ON_CALL).counts) == {
        "level below 3 in consult": 1}
    r.update_agent(agent("b", repair=4))
    r.set_routable("a", 1.0)
    ex = r.exclusions(offer_one(r, "c2"), lambda _: ON_CALL)
    assert by_text(ex.counts) == {"missing skill consult": 1}
    assert (ex.holders, ex.admitted) == (1, 1)


def test_a_stage_admitting_very_many_agents_asks_for_a_bounded_number_of_reasons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routing.router, "WALK_LIMIT", 3)
    r = Router([QueueSpec("open", {})], [agent(f"a{i}") for i in range(10)])
    r.set_routable("a9", 0.0)
    r.set_routable("a8", 1.0)
    asked: list[str] = []

    def why(agent_id: str) -> Reason:
        asked.append(agent_id)
        return ON_CALL

    ex = r.exclusions(offer_one(r, "c1", "open"), why)
    assert asked == ["a0", "a1", "a2"]
    assert (ex.pivot, ex.holders, ex.admitted) == (None, 10, 10)
    assert by_text(ex.counts) == {"on call": 3, "not routable (not looked up)": 5,
                                  "ranked below by longest_idle": 1}


# -- property: the counts are those of a full scan, and add up ------------------------------


def oracle(ref: ReferenceRouter, m: Match, pivot: str | None,
           why: dict[str, Reason]) -> Counter[Reason]:
    """Every agent but the chosen one, classified by scanning them all."""
    stage = ref.stages[m.queue_id][m.stage]
    out: Counter[Reason] = Counter()
    for agent_id, spec in ref.agents.items():
        if agent_id == m.agent_id:
            continue
        if pivot is not None and pivot not in spec.skills:
            out[Reason(Why.MISSING_SKILL, pivot)] += 1
            continue
        for skill, level in stage.requirement:
            has = spec.skills.get(skill, 0)
            if has < level:
                out[Reason(Why.LEVEL_TOO_LOW, skill, level) if has
                    else Reason(Why.MISSING_SKILL, skill)] += 1
                break
        else:
            if stage.groups is not None and stage.groups.isdisjoint(spec.groups):
                out[Reason(Why.NOT_IN_GROUP)] += 1
            elif agent_id in ref.free:
                out[Reason(Why.RANKED_BELOW, detail=m.strategy.value)] += 1
            else:
                out[why[agent_id]] += 1
    return out


@settings(max_examples=300, deadline=None)
@given(skills=st.lists(SKILLS, min_size=AGENTS, max_size=AGENTS),
       groups=st.lists(GROUPS, min_size=AGENTS, max_size=AGENTS), script=OPS,
       paused=st.frozensets(st.integers(0, AGENTS - 1)))
def test_exclusions_count_every_other_agent_once_as_a_full_scan_would(
    skills: list[dict[str, int]], groups: list[frozenset[str]],
    script: list[tuple[str, object, int, int]], paused: frozenset[int],
) -> None:
    agents = [AgentSpec(f"a{i}", s, g) for i, (s, g) in enumerate(zip(skills, groups,
                                                                       strict=True))]
    fast, ref = Router(QUEUES, agents), ReferenceRouter(QUEUES, agents)
    why = {f"a{i}": PAUSED if i in paused else ON_CALL for i in range(AGENTS)}
    for seq, op in enumerate(script):
        apply(fast, ref, op, seq)
        matches = fast.dispatch()
        assert matches == ref.dispatch()
        for m in matches:
            ex = fast.exclusions(m, why.__getitem__)
            event("offer explained")
            assert ex.excluded == ex.agents - 1 == AGENTS - 1
            stage = ref.stages[m.queue_id][m.stage]
            required = [s for s, _ in stage.requirement]
            if required:
                size = {s: sum(s in a.skills for a in ref.agents.values()) for s in required}
                assert ex.pivot == min(required, key=lambda s: (size[s], s))
                assert ex.holders == size[ex.pivot]
            assert Counter(dict(ex.counts)) == oracle(ref, m, ex.pivot, why)
            # each named agent for a reason the scan gives it too
            for named in ex.runners_up:
                assert named.agent_id != m.agent_id
                alone = oracle(ref, m, ex.pivot, why)
                assert alone[named.reason] > 0
            # the next best free agents, in the strategy's order
            ranked = [u.agent_id for u in ex.runners_up if u.reason.code is Why.RANKED_BELOW]
            call = WaitingCall(m.call_id, m.queue_id, 0, 0.0, 0, stage=m.stage)
            eligible = sorted((a for a in ref.free if stage.admits(ref.agents[a])),
                              key=lambda a: ref.agent_order(a, call))
            assert ranked == eligible[:len(ranked)]
            assert len(ranked) == min(len(eligible), routing.router.RUNNERS_UP)


# -- the engine: recorded, published, logged, explained -------------------------------------

STAFFED = """
queues:
  - id: repair
    skills: {repair: 3}
    stages:
      - {after: 30, min_level_delta: 1}
agents:
  - {id: chosen, skills: {repair: 3}, contact: "sip:c@127.0.0.1:6001"}
  - {id: slower, skills: {repair: 4}, contact: "sip:s@127.0.0.1:6002"}
  - {id: low, skills: {repair: 2}, contact: "sip:l@127.0.0.1:6003"}
  - {id: other, skills: {consult: 5}, contact: "sip:o@127.0.0.1:6004"}
  - {id: resting, skills: {repair: 5}, contact: "sip:r@127.0.0.1:6005"}
  - {id: busyphone, skills: {repair: 5}, contact: "sip:b@127.0.0.1:6006"}
  - {id: away, skills: {repair: 5}, contact: "sip:a@127.0.0.1:6007", status: logged_out}
"""


@pytest.fixture
def staffed() -> EngineCore:
    core = core_of(STAFFED)
    core.initial_effects(0.0)
    core.apply(SetAgentStatus("slower", AgentStatus.LOGGED_OUT, 1.0))
    core.apply(SetAgentStatus("slower", AgentStatus.AVAILABLE, 2.0))  # idle since 2
    core.apply(SetAgentStatus("resting", AgentStatus.PAUSED, 3.0, "lunch"))
    core.apply(DeviceStateChanged("PJSIP/busyphone", "INUSE", 4.0))
    return core


def test_each_offer_records_and_publishes_why_others_were_excluded(
    staffed: EngineCore, caplog: pytest.LogCaptureFixture,
) -> None:
    eff = staffed.apply(CallArrived("c1", "repair", "13800138000", 10.0, 10.0))
    assert [(e.call_id, e.agent_id) for e in eff if isinstance(e, Offer)] == [("c1", "chosen")]
    offered = next(e for e in eff if isinstance(e, Fact) and e.name == "call_offered")
    with caplog.at_level(logging.INFO, logger="acd.decision"):
        _log_decision(offered.data)  # what the engine does with each call_offered
    excluded = offered.data["excluded"]
    assert excluded == staffed.calls["c1"].decision["excluded"]
    assert {c["text"]: c["count"] for c in excluded["counts"]} == {
        "missing skill repair": 1, "level below 3 in repair": 1, "logged out": 1,
        "paused (lunch)": 1, "phone INUSE": 1, "ranked below by longest_idle": 1}
    assert {c["reason"]: c["count"] for c in excluded["counts"]} == {
        "missing_skill": 1, "level_too_low": 1, "logged_out": 1, "paused": 1, "phone": 1,
        "ranked_below": 1}
    level = next(c for c in excluded["counts"] if c["reason"] == "level_too_low")
    assert (level["skill"], level["level"]) == ("repair", 3)
    assert [u["agent"] for u in excluded["runners_up"]] == [
        "slower", "away", "busyphone", "resting", "low"]
    assert excluded["runners_up"][-1]["eligible_from_stage"] == 1
    assert (excluded["agents"], excluded["excluded"]) == (7, 6)
    # one INFO line per offer on acd.decision, without the caller's number
    [record] = [r for r in caplog.records if r.name == "acd.decision"]
    line = record.getMessage()
    assert record.levelno == logging.INFO and "\n" not in line
    assert "call c1 queue repair stage 0 attempt 1 -> agent chosen" in line
    assert "1 paused (lunch)" in line and "1 phone INUSE" in line
    assert "runners-up: slower: ranked below" in line
    assert "13800138000" not in line


def test_the_explanation_of_an_offered_call_keeps_its_exclusions(staffed: EngineCore) -> None:
    staffed.apply(CallArrived("c1", "repair", "1", 10.0, 10.0))
    lines = staffed.explain("c1")
    assert lines[0].startswith("offered to chosen at stage 0 by longest_idle among 2 ")
    assert lines[1] == ("  6 of 7 agent(s) excluded: 1 missing skill repair, 1 level below 3 "
                        "in repair, 1 logged out, 1 paused (lunch), 1 phone INUSE, 1 ranked "
                        "below by longest_idle")
    assert "  runner-up resting: paused (lunch)" in lines
    # chosen does not answer: paused (rona_action), and the next offer, to slower, says so
    staffed.apply(DialFinished("c1", "chosen", "NOANSWER", 20.0))
    assert staffed.calls["c1"].agent_id == "slower"
    counts = {c["text"]: c["count"] for c in staffed.calls["c1"].decision["excluded"]["counts"]}
    assert counts["paused (no-answer)"] == 1 and "ranked below by longest_idle" not in counts
    assert staffed.explain("c1")[0].startswith("offered to slower at stage 0 ")


def test_recording_exclusions_can_be_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    core = core_of(STAFFED + "engine: {explain_offers: false}\n")
    core.initial_effects(0.0)
    eff = core.apply(CallArrived("c1", "repair", "1", 10.0, 10.0))
    offered = next(e for e in eff if isinstance(e, Fact) and e.name == "call_offered")
    assert "excluded" not in offered.data and offered.data["agent"] == "busyphone"
    assert offered.data["candidates"] == 4
    with caplog.at_level(logging.INFO, logger="acd.decision"):
        _log_decision(offered.data)
    [record] = [r for r in caplog.records if r.name == "acd.decision"]
    assert record.getMessage().endswith("among 4 candidate(s)")  # the decision alone
    assert len(core.explain("c1")) == 1


def test_the_api_carries_the_exclusions_and_an_agent_sees_no_colleague(
    staffed: EngineCore,
) -> None:
    from api.models import CallExplanation, Decision
    from api.models import Exclusions as ExclusionsView
    from api.routes import _without_colleagues

    staffed.apply(CallArrived("c1", "repair", "1", 10.0, 10.0))
    d = staffed.calls["c1"].decision
    view = CallExplanation(
        call_id="c1", queue="repair", state="offered", region="", site=None,
        lines=staffed.explain("c1"),
        decision=Decision(stage=d["stage"], strategy=d["strategy"], agent=d["agent"],
                          candidates=d["candidates"],
                          excluded=ExclusionsView.model_validate(d["excluded"])))
    assert view.decision is not None and view.decision.excluded is not None
    assert view.decision.excluded.counts[0].reason is Why.MISSING_SKILL
    assert [u.agent for u in view.decision.excluded.runners_up][:2] == ["slower", "away"]
    mine = _without_colleagues(view)
    assert mine.decision is not None and mine.decision.excluded is not None
    assert mine.decision.excluded.runners_up == []
    assert mine.decision.excluded.counts == view.decision.excluded.counts
    assert not any("resting" in line or "slower" in line for line in mine.lines)


def test_a_failure_to_explain_never_holds_up_the_offer(
    staffed: EngineCore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("bug in the explanation")

    monkeypatch.setattr(staffed.router, "exclusions", broken)
    with caplog.at_level(logging.ERROR, logger="acd.domain.core"):
        eff = staffed.apply(CallArrived("c1", "repair", "1", 10.0, 10.0))
    assert [(e.call_id, e.agent_id) for e in eff if isinstance(e, Offer)] == [("c1", "chosen")]
    assert "excluded" not in staffed.calls["c1"].decision
    assert any("exclusions of the offer not recorded" in r.message for r in caplog.records)
