"""The pure routing policy: ordering, eligibility, work conservation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.router import AgentSpec, QueueSpec, Router, WaitingCall, is_eligible

QUEUES = [
    QueueSpec("consult", {"consult": 1}),
    QueueSpec("repair", {"repair": 3}, priority=0),
    QueueSpec("vip", {"consult": 4}, priority=5),
]


def make_router(agents: list[AgentSpec]) -> Router:
    return Router(QUEUES, agents)


def test_eligibility_needs_every_skill_at_level() -> None:
    assert is_eligible(AgentSpec("a", {"repair": 3}), QUEUES[1])
    assert not is_eligible(AgentSpec("a", {"repair": 2}), QUEUES[1])
    assert not is_eligible(AgentSpec("a", {"consult": 5}), QUEUES[1])


def test_longest_idle_agent_takes_the_call() -> None:
    r = make_router([AgentSpec(f"a{i}", {"consult": 1}) for i in range(3)])
    r.set_routable("a0", 30.0)
    r.set_routable("a1", 10.0)
    r.set_routable("a2", 20.0)
    r.add_call(WaitingCall("c1", "consult", 0, 100.0, 1))
    m = r.match_call("c1")
    assert m is not None and m.agent_id == "a1" and m.candidates == 3


def test_fifo_within_priority_and_priority_first() -> None:
    r = make_router([AgentSpec("a", {"consult": 5})])
    r.add_call(WaitingCall("late", "consult", 0, 50.0, 2))
    r.add_call(WaitingCall("early", "consult", 0, 40.0, 3))
    r.add_call(WaitingCall("vip", "vip", 5, 60.0, 4))
    r.set_routable("a", 0.0)
    assert [m.call_id for m in r.dispatch()] == ["vip"]
    r.set_routable("a", 1.0)
    assert [m.call_id for m in r.dispatch()] == ["early"]
    r.set_routable("a", 2.0)
    assert [m.call_id for m in r.dispatch()] == ["late"]


def test_agent_takes_best_call_across_its_queues() -> None:
    r = make_router([AgentSpec("a", {"consult": 1, "repair": 3})])
    r.add_call(WaitingCall("consult-new", "consult", 0, 20.0, 1))
    r.add_call(WaitingCall("repair-old", "repair", 0, 10.0, 2))
    r.set_routable("a", 0.0)
    m = r.match_agent("a")
    assert m is not None and m.call_id == "repair-old"


def test_unroutable_and_removed_are_skipped() -> None:
    r = make_router([AgentSpec("a", {"consult": 1}), AgentSpec("b", {"consult": 1})])
    r.set_routable("a", 1.0)
    r.set_routable("b", 2.0)
    r.set_unroutable("a")
    r.add_call(WaitingCall("c1", "consult", 0, 1.0, 1))
    r.add_call(WaitingCall("c2", "consult", 0, 2.0, 2))
    r.remove_call("c1")
    assert [(m.call_id, m.agent_id) for m in r.dispatch()] == [("c2", "b")]
    assert r.dispatch() == []


skills = st.dictionaries(st.sampled_from(["consult", "repair"]), st.integers(1, 5), max_size=2)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from([q.queue_id for q in QUEUES]),
                  st.integers(0, 1000)),
        st.tuples(st.just("ready"), st.integers(0, 5), st.integers(0, 1000)),
        st.tuples(st.just("busy"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("hangup"), st.integers(0, 40), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(agent_skills=st.lists(skills, min_size=6, max_size=6), script=ops)
def test_dispatch_is_work_conserving_and_never_offers_ineligible(
    agent_skills: list[dict[str, int]], script: list[tuple[str, object, int]]
) -> None:
    agents = [AgentSpec(f"a{i}", s) for i, s in enumerate(agent_skills)]
    by_id = {a.agent_id: a for a in agents}
    queues = {q.queue_id: q for q in QUEUES}
    r = make_router(agents)
    waiting: dict[str, WaitingCall] = {}
    routable: set[str] = set()
    seq = 0
    for op, arg, t in script:
        if op == "call":
            seq += 1
            call = WaitingCall(f"c{seq}", str(arg), queues[str(arg)].priority, float(t), seq)
            r.add_call(call)
            waiting[call.call_id] = call
        elif op == "ready":
            r.set_routable(f"a{arg}", float(t))
            routable.add(f"a{arg}")
        elif op == "busy":
            r.set_unroutable(f"a{arg}")
            routable.discard(f"a{arg}")
        elif op == "hangup":
            r.remove_call(f"c{arg}")
            waiting.pop(f"c{arg}", None)
        for m in r.dispatch():
            call = waiting.pop(m.call_id)
            assert m.agent_id in routable
            assert is_eligible(by_id[m.agent_id], queues[call.queue_id])
            # FIFO within a queue: nobody older waits in the same queue
            for other in waiting.values():
                if other.queue_id == call.queue_id:
                    assert other.key > call.key
            routable.discard(m.agent_id)
        # work conserving: no routable agent eligible for a waiting call
        for aid in routable:
            for call in waiting.values():
                assert not is_eligible(by_id[aid], queues[call.queue_id])
