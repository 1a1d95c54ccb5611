"""Skill-based routing: levels, escalation stages, strategies,
explanations, and the indexed router agreeing with the full-scan reference."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import (
    AgentSpec,
    Match,
    QueueSpec,
    ReferenceRouter,
    Router,
    StageSpec,
    Strategy,
    WaitingCall,
    resolve_stages,
)

QUEUES = [
    QueueSpec("consult", {"consult": 3}, groups=frozenset({"sz"}), stages=(
        StageSpec(30, min_level_delta=1, groups=frozenset({"sz", "gz"})),
        StageSpec(60, min_level_delta=2, priority_boost=1),
    )),
    QueueSpec("repair", {"repair": 4, "consult": 2}, strategy=Strategy.MOST_SKILLED, stages=(
        StageSpec(20, skills={"repair": 3}),
        StageSpec(40, skills={"repair": 3}, min_level_delta=2),
    )),
    QueueSpec("vip", {"consult": 4}, priority=5, strategy=Strategy.FEWEST_CALLS, stages=(
        StageSpec(10, min_level_delta=1, priority_boost=2),
    )),
    QueueSpec("sales", {}, groups=frozenset({"gz"}), stages=(StageSpec(15),)),
]


def call(call_id: str, queue: str, t: float, seq: int, *, priority: int = 0,
         stage: int = 0, region: str = "") -> WaitingCall:
    return WaitingCall(call_id, queue, priority, t, seq, stage=stage, region=region)


def agent(agent_id: str, groups: str = "sz", **skills: int) -> AgentSpec:
    return AgentSpec(agent_id, skills, frozenset(groups.split()) if groups else frozenset())


# -- config ----------------------------------------------------------------------------


def test_levels_are_one_to_five() -> None:
    with pytest.raises(ValueError, match="level of repair must be 1–5"):
        AgentSpec("a", {"repair": 6})
    with pytest.raises(ValueError, match="queue 'q'"):
        QueueSpec("q", {"repair": 0})


def test_stages_lower_levels_with_floor_one_and_replace_skills() -> None:
    stages = resolve_stages(QUEUES[1])
    assert [s.requirement for s in stages] == [
        (("consult", 2), ("repair", 4)),
        (("repair", 3),),
        (("repair", 1),),
    ]
    assert resolve_stages(QUEUES[0])[2].requirement == (("consult", 1),)


@pytest.mark.parametrize(("stage", "message"), [
    (StageSpec(10, skills={"repair": 3, "billing": 1}), "requires billing"),
    (StageSpec(10, skills={"repair": 5}), "requires repair at 5, above stage 0's 4"),
    (StageSpec(10, groups=frozenset({"gz"})), "admits fewer agent groups"),
    (StageSpec(10, min_level_delta=-1), "min_level_delta must be ≥ 0"),
])
def test_a_stage_that_narrows_is_refused(stage: StageSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueueSpec("q", {"repair": 4}, groups=frozenset({"sz"}), stages=(stage,))


def test_stages_keep_their_order_in_time() -> None:
    with pytest.raises(ValueError, match="before stage 1"):
        QueueSpec("q", stages=(StageSpec(10), StageSpec(5)))


# -- escalation --------------------------------------------------------------------------


def test_a_call_reaches_lower_levels_and_other_sites_as_it_escalates() -> None:
    r = Router(QUEUES, [agent("junior", "sz", consult=2), agent("gz", "gz", consult=3)])
    r.set_routable("junior", 0.0)
    r.set_routable("gz", 0.0)
    r.add_call(call("c1", "consult", 100.0, 1))
    assert r.dispatch() == []  # stage 0: level 3 at site sz only
    assert r.next_stage_at("c1") == 130.0
    assert r.due_stage("c1", 129.0) == 0 and r.due_stage("c1", 175.0) == 2
    r.set_stage("c1", 1)
    assert r.next_stage_at("c1") == 160.0
    [m] = r.dispatch()
    assert (m.agent_id, m.stage, m.candidates) == ("gz", 1, 2)
    assert r.call("c1") is None and not r.is_routable("gz")


def test_priority_boost_of_a_stage_lets_an_escalated_call_go_first() -> None:
    r = Router(QUEUES, [agent("a", "sz", consult=5)])
    r.add_call(call("old", "consult", 0.0, 1))
    r.add_call(call("escalated", "consult", 10.0, 2, stage=2))
    r.set_routable("a", 0.0)
    assert [m.call_id for m in r.dispatch()] == ["escalated"]


def test_agent_takes_best_call_across_queues_and_stages() -> None:
    r = Router(QUEUES, [agent("a", "sz", consult=4, repair=3)])
    r.add_call(call("consult", "consult", 5.0, 1))
    r.add_call(call("repair-s1", "repair", 1.0, 2, stage=1))  # eligible only from stage 1
    r.add_call(call("repair-s0", "repair", 0.0, 3))  # not eligible: repair 3 < 4
    r.set_routable("a", 0.0)
    m = r.match_agent("a")
    assert m is not None and (m.call_id, m.stage) == ("repair-s1", 1)
    r.add_call(call("vip", "vip", 9.0, 4))
    m = r.match_agent("a")
    assert m is not None and m.call_id == "vip"


def test_move_call_keeps_seniority_and_restarts_escalation() -> None:
    r = Router(QUEUES, [agent("a", "sz", consult=5)])
    r.add_call(call("early", "repair", 10.0, 1, stage=2))
    r.add_call(call("late", "consult", 20.0, 2))
    moved = r.move_call("early", "consult", queued_at=50.0)
    assert (moved.entry_time, moved.seq, moved.stage) == (10.0, 1, 0)
    assert r.next_stage_at("early") == 80.0
    r.set_routable("a", 0.0)
    assert [m.call_id for m in r.dispatch()] == ["early"]


def test_ring_no_answer_keeps_the_place_in_line() -> None:
    r = Router(QUEUES, [agent("a", "sz", consult=5), agent("b", "sz", consult=5)])
    r.add_call(call("first", "consult", 1.0, 1))
    r.add_call(call("second", "consult", 2.0, 2))
    r.set_routable("a", 0.0)
    [m] = r.dispatch()
    assert m.call_id == "first"
    # a does not answer: the engine puts the call back as it was
    r.add_call(dataclasses.replace(call("first", "consult", 1.0, 1)))
    r.set_routable("b", 5.0)
    assert [m.call_id for m in r.dispatch()] == ["first"]


# -- strategies --------------------------------------------------------------------------


def test_longest_idle_most_skilled_and_fewest_calls() -> None:
    agents = [agent("a", "sz", consult=4, repair=4), agent("b", "sz", consult=5, repair=5),
              agent("c", "sz", consult=5, repair=4)]
    r = Router(QUEUES, agents)
    r.set_routable("a", 10.0, calls_today=9)
    r.set_routable("b", 30.0, calls_today=3)
    r.set_routable("c", 20.0, calls_today=3)
    r.add_call(call("consult", "consult", 0.0, 1))
    r.add_call(call("repair", "repair", 0.0, 2))
    r.add_call(call("vip", "vip", 0.0, 3))
    picks = {c: m.agent_id for c in ("consult", "repair", "vip")
             if (m := r.match_call(c)) is not None}
    assert picks == {"consult": "a", "repair": "b", "vip": "c"}
    m = r.match_call("repair")
    assert m is not None and m.strategy is Strategy.MOST_SKILLED and m.candidates == 3


def test_most_skilled_scores_the_stage_requirement() -> None:
    # stage 1 of repair needs only repair: consult levels no longer count
    r = Router(QUEUES, [agent("a", "sz", repair=4, consult=5), agent("b", "sz", repair=5)])
    r.set_routable("a", 0.0)
    r.set_routable("b", 1.0)
    r.add_call(call("c", "repair", 0.0, 1, stage=1))
    m = r.match_call("c")
    assert m is not None and m.agent_id == "b"


# -- explanation -------------------------------------------------------------------------


def test_explain_says_why_each_other_agent_was_passed_over() -> None:
    agents = [agent("chosen", "sz", consult=3), agent("slower", "sz", consult=4),
              agent("low", "sz", consult=2), agent("none", "sz"), agent("far", "bj", consult=5),
              agent("paused", "sz", consult=5)]
    r = Router(QUEUES, agents)
    for i, a in enumerate(["chosen", "slower", "low", "none", "far"]):
        r.set_routable(a, float(i))
    r.add_call(call("c", "consult", 0.0, 1))
    ex = r.explain("c", {"paused": "paused(lunch)"})
    assert isinstance(ex.decision, Match) and ex.decision.agent_id == "chosen"
    assert (ex.stage, ex.strategy, ex.candidates) == (0, Strategy.LONGEST_IDLE, 2)
    why = {p.agent_id: (p.reasons, p.eligible_from_stage) for p in ex.passed_over}
    assert why == {
        "slower": (("ranked below chosen by longest_idle (idle since 1)",), None),
        "low": (("level too low for consult (has 2 < 3)",), 1),
        "none": (("missing skill consult",), None),
        "far": (("not in admitted group (in bj; admitted sz)",), 2),
        "paused": (("not routable: paused(lunch)",), None),
    }
    assert ex.passed_over[0].agent_id == "slower"
    assert "→ agent chosen" in ex.lines()[0]
    assert any("[eligible from stage 1]" in line for line in ex.lines())


# -- agents and indexes ------------------------------------------------------------------


def test_a_skill_change_takes_effect_at_once() -> None:
    r = Router(QUEUES, [agent("a", "sz", consult=1)])
    r.set_routable("a", 0.0)
    r.add_call(call("c", "consult", 0.0, 1))
    assert r.dispatch() == []
    r.update_agent(agent("a", "sz", consult=3))
    assert r.is_routable("a") and r.queues_of("a") == ("consult",)
    assert [m.agent_id for m in r.dispatch()] == ["a"]
    r.update_agent(agent("new", "gz"))
    assert r.queues_of("new") == ("sales",)


def test_counts_stay_exact_and_heaps_stay_small_under_churn() -> None:
    r = Router(QUEUES, [agent(f"a{i}", "sz", consult=5) for i in range(10)])
    for t in range(2000):
        r.set_routable(f"a{t % 10}", float(t))
        if t % 3:
            r.set_unroutable(f"a{(t * 7) % 10}")
    assert r.candidates("consult") == sum(r.is_routable(f"a{i}") for i in range(10))
    for t in range(500):
        r.add_call(call(f"c{t}", "consult", float(t), t))
        r.remove_call(f"c{t - 1}")
    assert r.waiting() == r.waiting("consult") == 1
    slot = r._slots["consult"][0]  # white-box: lazy deletion must not leak
    assert all(len(ring.entries) <= 2 * ring.live + 64 + 1 for ring in slot.rings)
    assert len(slot.calls) <= 2 * slot.live_calls + 64 + 1


def test_a_batch_dispatch_gives_the_loser_of_a_call_its_next_best() -> None:
    queues = [QueueSpec("consult", {"consult": 1}), QueueSpec("repair", {"repair": 1})]
    r = Router(queues, [agent("a", "", consult=1, repair=1), agent("b", "", consult=1)])
    r.add_call(call("c1", "consult", 1.0, 1))
    r.add_call(call("c2", "repair", 2.0, 2))
    assert r.dispatch() == []
    r.set_routable("a", 5.0)
    r.set_routable("b", 1.0)  # b has waited longer: it gets c1, which a wanted too
    assert [(m.call_id, m.agent_id) for m in r.dispatch()] == [("c1", "b"), ("c2", "a")]


def test_bad_requests_are_refused_without_side_effects() -> None:
    r = Router(QUEUES, [agent("a", "sz", consult=5)])
    with pytest.raises(KeyError):
        r.set_routable("ghost", 0.0)
    with pytest.raises(KeyError):
        r.add_call(call("c", "nowhere", 0.0, 1))
    r.add_call(call("c", "consult", 0.0, 1))
    with pytest.raises(ValueError):
        r.add_call(call("c", "consult", 0.0, 1))
    with pytest.raises(ValueError):
        r.set_stage("c", 3)
    with pytest.raises(KeyError):
        r.move_call("c", "nowhere")
    assert r.call("c") == call("c", "consult", 0.0, 1)
    with pytest.raises(ValueError):
        r.add_call(call("d", "vip", 0.0, 2, stage=2))
    assert r.waiting() == 1


# -- properties: the indexed router against the full-scan reference ---------------------

AGENTS = 6
SKILLS = st.dictionaries(st.sampled_from(["consult", "repair"]), st.integers(1, 5), max_size=2)
GROUPS = st.frozensets(st.sampled_from(["sz", "gz", "bj"]), max_size=2)
QIDS = [q.queue_id for q in QUEUES]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from(QIDS), st.integers(0, 100), st.integers(0, 2)),
        st.tuples(st.just("ready"), st.integers(0, AGENTS - 1), st.integers(0, 100),
                  st.integers(0, 3)),
        st.tuples(st.just("ready"), st.integers(0, AGENTS - 1), st.integers(0, 100),
                  st.just(0)),
        st.tuples(st.just("busy"), st.integers(0, AGENTS - 1), st.just(0), st.just(0)),
        st.tuples(st.just("hangup"), st.integers(0, 30), st.just(0), st.just(0)),
        st.tuples(st.just("stage"), st.integers(0, 30), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("move"), st.integers(0, 30), st.integers(0, len(QIDS) - 1),
                  st.just(0)),
        st.tuples(st.just("rona"), st.integers(0, 30), st.just(0), st.just(0)),
        st.tuples(st.just("skills"), st.integers(0, AGENTS - 1), st.integers(1, 5),
                  st.just(0)),
    ),
    min_size=10,
    max_size=60,
)


def apply(fast: Router, ref: ReferenceRouter, op: tuple[str, object, int, int],
          seq: int) -> None:
    """One step of a script, done to both routers (the reference's state decides)."""
    kind, arg, n, m = op
    both: tuple[Router | ReferenceRouter, ...] = (fast, ref)
    if kind == "call":
        for r in both:
            r.add_call(WaitingCall(f"c{seq}", str(arg), m, float(n), seq))
    elif kind == "ready":
        for r in both:
            r.set_routable(f"a{arg}", float(n), calls_today=m)
    elif kind == "busy":
        for r in both:
            r.set_unroutable(f"a{arg}")
    elif kind == "skills":
        new = dataclasses.replace(ref.agents[f"a{arg}"], skills={"consult": n, "repair": 6 - n})
        for r in both:
            r.update_agent(new)
    elif (waiting := ref.calls.get(c := f"c{arg}")) is not None:
        for r in both:
            if kind == "hangup":
                r.remove_call(c)
            elif kind == "stage":
                r.set_stage(c, min(n, len(ref.stages[waiting.queue_id]) - 1))
            elif kind == "move":
                r.move_call(c, QIDS[n])
            elif kind == "rona":
                back = r.remove_call(c)
                assert back is not None
                r.add_call(back)


@settings(max_examples=600, deadline=None)
@given(skills=st.lists(SKILLS, min_size=AGENTS, max_size=AGENTS),
       groups=st.lists(GROUPS, min_size=AGENTS, max_size=AGENTS), script=OPS,
       every=st.sampled_from([1, 1, 3, 8]))
def test_router_agrees_with_reference_and_is_work_conserving(
    skills: list[dict[str, int]], groups: list[frozenset[str]],
    script: list[tuple[str, object, int, int]], every: int,
) -> None:
    """Dispatching after every change (as the engine does) or after a batch of them."""
    agents = [AgentSpec(f"a{i}", s, g) for i, (s, g) in enumerate(zip(skills, groups,
                                                                       strict=True))]
    fast, ref = Router(QUEUES, agents), ReferenceRouter(QUEUES, agents)
    for seq, op in enumerate(script):
        seniority = {c.call_id: (c.entry_time, c.seq) for c in ref.calls.values()}
        apply(fast, ref, op, seq)
        # seniority survives ring-no-answer and transfer
        for waiting in ref.calls.values():
            assert fast.call(waiting.call_id) == waiting
            if waiting.call_id in seniority:
                assert (waiting.entry_time, waiting.seq) == seniority[waiting.call_id]
        assert fast.waiting() == len(ref.calls)
        if seq % every and seq != len(script) - 1:
            # between dispatches: the same question gets the same answer (candidates
            # included); not asked before a dispatch, whose short cuts it would bypass
            for call_id in ref.calls:
                assert fast.match_call(call_id) == ref.match_call(call_id)
            for agent_id in ref.free:
                assert fast.match_agent(agent_id) == ref.match_agent(agent_id)
            continue
        waiting_before = dict(ref.calls)
        free_before = set(ref.free)
        matches = fast.dispatch()
        assert matches == ref.dispatch()
        for match in matches:
            taken = waiting_before.pop(match.call_id)
            # never offered to an agent who may not take it (in the call's stage)
            assert match.agent_id in free_before
            assert ref.stage_of(taken).admits(ref.agents[match.agent_id])
            assert match.stage == taken.stage
            # FIFO within equal priority in the same (queue, stage)
            for other in waiting_before.values():
                if (other.queue_id, other.stage, other.priority) == (
                        taken.queue_id, taken.stage, taken.priority):
                    assert (other.entry_time, other.seq) > (taken.entry_time, taken.seq)
            free_before.discard(match.agent_id)
        # work-conserving: no free agent may take any waiting call
        for agent_id in ref.free:
            assert not any(ref.eligible(agent_id, c) for c in ref.calls.values())


STAGE = st.builds(
    StageSpec,
    after=st.integers(0, 100),
    min_level_delta=st.integers(0, 3),
    skills=st.none() | st.dictionaries(st.sampled_from(["consult", "repair", "billing"]),
                                       st.integers(1, 5), max_size=3),
    groups=st.none() | GROUPS,
)


@settings(max_examples=300, deadline=None)
@given(base=st.dictionaries(st.sampled_from(["consult", "repair"]), st.integers(1, 5)),
       base_groups=st.none() | GROUPS,
       stages=st.lists(STAGE, max_size=3).map(
           lambda ss: [dataclasses.replace(s, after=10 * i + s.after) for i, s in enumerate(ss)]),
       agents=st.lists(st.builds(AgentSpec, st.just("a"), SKILLS, GROUPS), max_size=8))
def test_accepted_stages_only_ever_widen(
    base: dict[str, int], base_groups: frozenset[str] | None, stages: list[StageSpec],
    agents: list[AgentSpec],
) -> None:
    try:
        queue = QueueSpec("q", base, groups=base_groups, stages=tuple(stages))
    except ValueError:
        return
    resolved = resolve_stages(queue)
    for a in agents:
        admitted = [s.admits(a) for s in resolved]
        assert admitted == sorted(admitted)  # once in, never out


@settings(max_examples=100, deadline=None)
@given(deltas=st.lists(st.integers(0, 4), max_size=4), base=st.integers(1, 5))
def test_lowering_levels_step_by_step_is_always_accepted(deltas: list[int], base: int) -> None:
    running = 0
    stages = []
    for i, d in enumerate(deltas):
        running += d
        stages.append(StageSpec(i, min_level_delta=running))
    q = QueueSpec("q", {"consult": base}, stages=tuple(stages))
    levels = [s.requirement[0][1] for s in resolve_stages(q)]
    assert levels == sorted(levels, reverse=True) and min(levels) >= 1
