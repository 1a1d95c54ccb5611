"""Call records built from the core's facts (acd.history): the live figures' own counts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from acd.config import load_config
from acd.domain import EngineCore, Event, Fact, figures
from acd.domain.effects import Effect
from acd.domain.facts import (
    AgentChanged,
    AgentNoAnswer,
    CallCompleted,
    CallConnected,
    CallOffered,
    CallTransferred,
    CallWaiting,
)
from acd.history import RecordBuilder
from acd.history.periods import Granularity, bucket_of, local_periods, period_label
from acd.history.rollup import Totals, agent_rollup, call_totals, occupancy, rollup
from sim import parse_scenario, simulate

ROOT = Path(__file__).resolve().parents[2]


def _feed(builder: RecordBuilder, log: list[tuple[Fact, float]]):
    def hook(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Fact):
                builder.observe(eff, event.now)
                log.append((eff, event.now))
    return hook


def _records(builder: RecordBuilder) -> list[dict]:
    """Every record, as the last snapshot taken of it."""
    latest: dict[tuple[str, int], dict] = {}
    calls, _ = builder.take()
    for rec in calls:
        latest[(rec.call_id, rec.leg)] = rec.to_row()
    return list(latest.values())


def test_records_of_a_simulated_day_sum_to_the_live_figures() -> None:
    """Every queue's counters summed over the records = the core's own live counters
    (offered, answered within target, abandoned after target, handled, talk, wrap-up,
    ring-no-answer), on a day with RONAs and callers still waiting when the clock stops."""
    config = load_config(ROOT / "config" / "acd.sample.yaml")
    scenario = parse_scenario((ROOT / "config" / "simulate.sample.yaml").read_text(),
                              "simulate.sample.yaml", config)
    for seed, until in ((1, 14.5 * 3600), (2, None)):
        sc = scenario.model_copy(update={"until": until, "no_answer_probability": 0.1})
        builder = RecordBuilder({q.id: float(q.sl_target) for q in config.queues})
        log: list[tuple[Fact, float]] = []
        result = simulate(config, sc, seed=seed, on_apply=_feed(builder, log))
        sums = rollup(_records(builder))
        for qid in [q.id for q in config.queues]:
            live = result.core_stats[qid]
            t = sums.get(("queue", qid), Totals())
            assert (t.offered, t.answered, t.answered_within, t.abandoned,
                    t.abandoned_after, t.handled, t.rona) == (
                live["offered"], live["answered"], live["answered_within_target"],
                live["abandoned"], live["abandoned_after_target"], live["handled"],
                live["rona"]), qid
            assert t.offered > 100
        # one record per call: as many first legs as calls that waited
        waited = {f.call_id for f, _ in log if isinstance(f, CallWaiting)}
        assert sums[("all", "")].offered == len(waited)


def test_core_today_counts_equal_record_sums() -> None:
    config = load_config(ROOT / "config" / "acd.sample.yaml")
    scenario = parse_scenario((ROOT / "config" / "simulate.sample.yaml").read_text(),
                              "simulate.sample.yaml", config)
    builder = RecordBuilder({q.id: float(q.sl_target) for q in config.queues})
    cores: list[EngineCore] = []

    def hook(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        if not cores:
            cores.append(core)
        for eff in effects:
            if isinstance(eff, Fact):
                builder.observe(eff, event.now)

    simulate(config, scenario, seed=3, on_apply=hook)
    live = cores[0].figures.total("consult")
    t = rollup(_records(builder))[("queue", "consult")]
    assert t.talk == pytest.approx(live.talk)
    assert t.wrap_up == pytest.approx(live.wrap_up)
    assert t.wait_answered == pytest.approx(live.wait_answered)
    assert t.aht == pytest.approx(figures.aht(live.talk, live.wrap_up, live.handled))


def test_a_call_answered_after_a_rona_has_both_offers() -> None:
    b = RecordBuilder({"q": 20.0}, {"a1": "gz", "a2": "gz"})
    b.observe(CallWaiting("c1", "q", "13800138000", 100.0, False, 0, "vip", "CN-GD", "",
                          True, "lookup", "4008001234", "2"), 100.0)
    b.observe(CallOffered("c1", "q", 1, 1.0, "a1", 0, "longest_idle", 2), 101.0)
    b.observe(AgentNoAnswer("a1", "c1", "NOANSWER", "q"), 105.0)
    b.observe(CallOffered("c1", "q", 2, 5.0, "a2", 0, "longest_idle", 1), 105.0)
    b.observe(AgentChanged("a2", "available", "", "on_call", "INUSE", "c1"), 107.0)
    b.observe(CallConnected("c1", "q", "a2", 7.0, 2), 107.0)
    b.observe(CallCompleted("c1", "q", "a2", None, 7.0, 60.0), 167.0)
    b.observe(AgentChanged("a2", "available", "", "wrap_up", "NOT_INUSE", None), 167.0)
    calls, first = b.take()
    (rec,) = calls
    assert rec.outcome == "completed" and rec.wrap_up == 0.0
    b.observe(AgentChanged("a2", "available", "", "idle", "NOT_INUSE", None), 172.0)
    calls, intervals = b.take()
    (rec,) = calls
    row = rec.to_row()
    assert row["wrap_up"] == 5.0 and row["talk"] == 60.0 and row["wait"] == 7.0
    assert [(o["target"], o["outcome"]) for o in row["offers"]] == [
        ("a1", "rona"), ("a2", "answered")]
    assert (row["did"], row["menu_choice"], row["region_source"], row["segment"],
            row["agent_site"]) == ("4008001234", "2", "lookup", "vip", "gz")
    assert [(i.state, i.seconds) for i in first + intervals] == [("on_call", 60.0),
                                                         ("wrap_up", 5.0)]
    t = call_totals(row)
    assert (t.answered, t.answered_within, t.rona, t.agent_offers, t.handled) == \
        (1, 1, 1, 2, 1)
    assert t.aht == 65.0
    sums = rollup([row])
    assert sums[("agent", "a1")].rona == 1 and sums[("agent", "a1")].answered == 0
    assert sums[("agent", "a2")].answered == 1 and sums[("site", "gz")].answered == 1
    assert sums[("did", "4008001234")].offered == 1


def test_a_transfer_back_to_a_queue_is_a_second_leg_not_a_second_call() -> None:
    b = RecordBuilder({"q": 20.0, "r": 30.0})
    b.observe(CallWaiting("c1", "q", "1", 0.0, False, 0, "", "", ""), 0.0)
    b.observe(CallConnected("c1", "q", "a1", 3.0, 1), 3.0)
    b.observe(CallCompleted("c1", "q", "a1", None, 3.0, 10.0), 13.0)
    b.observe(CallTransferred("c1", "q", "r", 0.0), 13.0)
    b.observe(CallWaiting("c1", "r", "1", 0.0, True, 0, "", "", ""), 13.0)
    rows = [r.to_row() for r in b.take()[0]]
    assert [(r["leg"], r["offered"], r["outcome"]) for r in rows] == [
        (1, True, "completed"), (2, False, "waiting")]
    assert rollup(rows)[("all", "")].offered == 1


def test_agent_time_and_occupancy() -> None:
    rows = [
        {"agent": "a", "start": 0, "end": 600, "status": "available", "reason": "",
         "state": "idle"},
        {"agent": "a", "start": 600, "end": 900, "status": "available", "reason": "",
         "state": "on_call"},
        {"agent": "a", "start": 900, "end": 1200, "status": "paused", "reason": "lunch",
         "state": "idle"},
    ]
    first = agent_rollup(rows, 0, 900)
    assert first == {("a", "staffed"): 900, ("a", "idle"): 600, ("a", "busy"): 300,
                     ("a", "on_call"): 300}
    both = {w: s for (_, w), s in agent_rollup(rows, 0, 1800).items()}
    assert both["pause:lunch"] == 300
    assert occupancy(both) == 300 / 900


def test_periods_follow_the_centre_time_zone() -> None:
    # 2026-12-03 23:59 in Shanghai is 15:59 UTC; the next bucket is the 4th
    t = 1_764_777_540.0  # 2025-12-03T15:59:00Z
    b = bucket_of(t)
    p = local_periods(b, "Asia/Shanghai")
    q = local_periods(b + 900, "Asia/Shanghai")
    assert (p.day, q.day) == (20251203, 20251204)
    assert p.week == 20251201 and p.month == 202512
    assert period_label(Granularity.MIN15, b, "Asia/Shanghai") == "2025-12-03 23:45"
    assert period_label(Granularity.MONTH, 202512, "UTC") == "2025-12"


def test_totals_round_trip() -> None:
    t = Totals(offered=3, wait_max=7.5)
    assert Totals.from_mapping(asdict(t)) == t


def test_exits_are_counted_as_the_live_figures_count_them() -> None:
    """A queue whose callers leave after 30 s (a message; or, from the first queue, to
    another queue): the records' exits, abandons and offers per queue = the core's."""
    from acd.config import parse_config

    config = parse_config("""
queues:
  - id: q
    skills: {s: 1}
    wrap_up: 0
    exits: {max_wait: 30, action: {to: queue, queue: r}}
  - id: r
    skills: {s: 1}
    wrap_up: 0
    exits: {max_wait: 90, action: {to: message}}
agents:
  - {id: a1, skills: {s: 1}}
  - {id: a2, skills: {s: 1}}
""")
    scenario = parse_scenario("""
ring_time: 1
queues:
  q:
    arrivals: [{from: "08:00", to: "10:00", calls_per_hour: 60}]
    handle_time: {distribution: exponential, mean: 150}
    patience: {distribution: exponential, mean: 200}
""", config=config)
    builder = RecordBuilder({q.id: float(q.sl_target) for q in config.queues})
    log: list[tuple[Fact, float]] = []
    result = simulate(config, scenario, seed=4, on_apply=_feed(builder, log))
    rows = _records(builder)
    sums = rollup(rows)
    for qid in ("q", "r"):
        live = result.core_stats[qid]
        t = sums.get(("queue", qid), Totals())
        assert (t.offered, t.answered, t.abandoned, t.exited) == (
            live["offered"], live["answered"], live["abandoned"], live["exits"]), qid
    assert sums[("queue", "q")].exited > 5 and sums[("queue", "r")].exited > 0
    ended = [r for r in rows if r["outcome"] == "exited"]
    assert ended and all(r["exits"][-1]["action"] == "message" for r in ended)
    assert all(r["exits"][0]["target"] == "r" for r in ended)
