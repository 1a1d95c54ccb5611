"""``acd simulate``: a simulated day through the real EngineCore on a virtual clock."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from acd.config import Config, ConfigError, load_config, parse_config
from acd.domain import AgentStatus, CallState, Effect, EngineCore, Event, Fact, Offer
from app.cli import main
from routing import AgentSpec
from routing.erlang import erlang_a
from sim import Scenario, parse_scenario, simulate
from sim.erlang import _erlang_a_extras
from sim.scenario import day_epoch

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "config" / "acd.sample.yaml"
SAMPLE_SCENARIO = ROOT / "config" / "simulate.sample.yaml"


def sample() -> tuple[Config, Scenario]:
    config = load_config(SAMPLE_CONFIG)
    return config, parse_scenario(SAMPLE_SCENARIO.read_text(), str(SAMPLE_SCENARIO), config)


def stationary(agents: int, *, patience: str = "none") -> tuple[Config, Scenario]:
    """M/M/c (or M/M/c+M): λ = 240/h, exponential talk 180 s, no wrap-up, no ring time."""
    rows = "\n".join(f"  - {{id: a{i}, skills: {{s: 1}}}}" for i in range(agents))
    config = parse_config(f"""
queues:
  - {{id: q, skills: {{s: 1}}, wrap_up: 0, sl_target: 20}}
agents:
{rows}
""")
    scenario = parse_scenario(f"""
ring_time: 0
warmup: 7200
queues:
  q:
    arrivals: [{{from: "00:00", to: "24:00", calls_per_hour: 240}}]
    handle_time: {{distribution: exponential, mean: 180}}
    patience: {patience}
""", config=config)
    return config, scenario


def without_wall(d: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in d.items() if k != "wall_seconds"}


# -- determinism and conservation --------------------------------------------------------


def test_same_seed_same_day_other_seed_other_day() -> None:
    config, scenario = sample()
    a = simulate(config, scenario).to_dict()
    b = simulate(config, scenario).to_dict()
    c = simulate(config, scenario, seed=scenario.seed + 1).to_dict()
    assert without_wall(a) == without_wall(b)
    assert a["queues"] != c["queues"]


def test_calls_are_conserved_and_match_the_core_counters() -> None:
    config, scenario = sample()
    # Stop the clock mid-afternoon: some callers are still waiting or ringing.
    for until, rona in ((14.5 * 3600, 0.2), (18 * 3600, 0.0)):
        sc = scenario.model_copy(update={"until": until, "no_answer_probability": rona})
        for seed in range(8):
            r = simulate(config, sc, seed=seed)
            f = r.queues["consult"].figures
            assert f.offered == f.answered + f.abandoned + f.unanswered_at_end
            core = r.core_stats["consult"]
            assert (core["offered"], core["answered"], core["abandoned"], core["rona"]) == \
                (f.offered, f.answered, f.abandoned, f.rona)
            assert core["answered_within_target"] == f.answered_within_target
            assert f.handled <= f.answered
    # Run to the end of the day: everyone is answered or hung up.
    r = simulate(config, scenario)
    f = r.queues["consult"].figures
    assert f.unanswered_at_end == 0 and f.offered == f.answered + f.abandoned > 300
    assert f.handled == f.answered


def test_warmup_calls_are_simulated_but_not_counted() -> None:
    config, scenario = sample()
    full = simulate(config, scenario)
    late = simulate(config, scenario.model_copy(update={"warmup": 4 * 3600.0}))
    f, g = full.queues["consult"].figures, late.queues["consult"].figures
    assert late.core_stats == full.core_stats  # the same day …
    assert 0 < g.offered < f.offered  # … counted from noon
    assert g.offered == g.answered + g.abandoned


# -- against Erlang ------------------------------------------------------------------------


@pytest.mark.parametrize("patience", ["none", "{mean: 120}"])
def test_stationary_single_skill_day_agrees_with_erlang(patience: str) -> None:
    """12 days of M/M/16 (Erlang C) or M/M/14+M (Erlang A): about 63 000 counted calls.

    Seeds are fixed, so this is deterministic. The tolerance, 3 percentage points on the
    service level and P(wait), is about four standard errors of the 12-day mean (one day's
    SL has a standard deviation of ~2.7 pp at 16 agents), so an innocent change of random
    streams will not trip it while a routing or bookkeeping error of that size would.
    """
    agents = 16 if patience == "none" else 14
    config, scenario = stationary(agents, patience=patience)
    within = den = queued = offered = answered = 0
    wait = 0.0
    for seed in range(12):
        r = simulate(config, scenario, seed=seed)
        q = r.queues["q"]
        f = q.figures
        within += f.answered_within_target
        den += f.answered + f.abandoned_after_target
        queued += f.queued_on_arrival
        offered += f.offered
        answered += f.answered
        wait += f.wait_answered_total
    assert q.single_skill and q.erlang is not None
    e = q.erlang
    assert e.model == ("Erlang C" if patience == "none" else "Erlang A")
    assert (e.agents_min, e.agents_max) == (agents, agents)
    assert e.offered == pytest.approx(240 * 22)
    assert e.service_level is not None
    assert within / den == pytest.approx(e.service_level, abs=0.03)
    assert queued / offered == pytest.approx(e.p_wait, abs=0.03)
    assert wait / answered == pytest.approx(e.asa, rel=0.2)


def test_erlang_a_extras_are_consistent() -> None:
    ea = erlang_a(13, 240 / 3600, 180.0, 120.0)
    p_answered, asa, short = _erlang_a_extras(ea, 20.0)
    assert p_answered == pytest.approx(1.0 - ea.p_abandon, abs=1e-9)
    assert 0.0 < asa < ea.mean_wait / ea.p_wait * 2
    # short abandons: at most the share of callers whose patience ends within 20 s
    assert 0.0 < short < ea.p_wait * -math.expm1(-20.0 / 120.0) + 1e-9


# -- multi-skill: runs, and the core never leaves an eligible agent idle --------------------

MULTI_CONFIG = """
engine: {ring_timeout: 12}
queues:
  - id: sales
    skills: {sales: 3}
    strategy: most_skilled
    wrap_up: 10
    sl_target: 20
    stages:
      - {after: 15, min_level_delta: 1}
      - {after: 40, min_level_delta: 2, priority_boost: 5}
  - id: repair
    skills: {repair: 2}
    priority: 5
    strategy: fewest_calls
    wrap_up: 5
    groups: [sz]
    stages:
      - {after: 30, groups: [sz, gz]}
  - id: vip
    skills: {vip: 1}
    wrap_up: 0
agents:
  - {id: s1, skills: {sales: 4}, groups: [sz]}
  - {id: s2, skills: {sales: 2, repair: 3}, groups: [sz]}
  - {id: s3, skills: {sales: 3, repair: 2}, groups: [gz]}
  - {id: r1, skills: {repair: 4}, groups: [gz]}
  - {id: r2, skills: {repair: 2, sales: 1}, groups: [sz]}
  - {id: r3, skills: {repair: 3}, groups: [sz]}
  - {id: v1, skills: {vip: 2}}
  - {id: v2, skills: {vip: 1}}
"""

MULTI_SCENARIO = """
seed: 3
ring_time: 3
no_answer_probability: 0.05
rona_recovery: 20
queues:
  sales:
    arrivals:
      - {from: "09:00", to: "11:00", calls_per_hour: 50}
      - {from: "11:00", to: "12:00", calls_per_hour: 80}
    handle_time: {distribution: lognormal, mean: 150, sd: 90}
    patience: {mean: 90}
  repair:
    arrivals: [{from: "09:00", to: "12:00", calls_per_hour: 45}]
    handle_time: {mean: 200}
    patience: {mean: 150}
  vip:
    arrivals: [{from: "09:30", to: "11:30", calls_per_hour: 20}]
    handle_time: {distribution: constant, mean: 240}
shifts:
  s1: [{from: "09:00", to: "10:30"}]
  r1: [{from: "10:00", to: "12:00"}]
  v2: [{from: "09:00", to: "10:00"}, {from: "10:15", to: "12:00"}]
"""


def test_multi_skill_day_is_work_conserving() -> None:
    config = parse_config(MULTI_CONFIG)
    scenario = parse_scenario(MULTI_SCENARIO, config=config)
    specs = {a.id: AgentSpec(a.id, dict(a.skills), frozenset(a.groups))
             for a in config.agents}
    shifts = {aid: [(s.start, s.end) for s in ss] for aid, ss in scenario.shifts.items()}
    seen = {"checks": 0, "contended": 0, "offers": 0}
    midnight = day_epoch(config, scenario.date)  # the core's clock is epoch time

    def check(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        seen["checks"] += 1
        now = event.now - midnight
        free = [a.agent_id for a in core.agents.values() if a.routable]
        for aid, agent in core.agents.items():
            assert core.router.is_routable(aid) == agent.routable, (aid, event)
        waiting = [c for c in core.calls.values() if c.state is CallState.WAITING]
        if waiting and any(core.agents[a].status is AgentStatus.AVAILABLE
                           for a in core.agents):
            seen["contended"] += 1
        for call in waiting:
            stage = core.router.stages(call.queue_id)[call.stage]
            idle = [a for a in free if stage.admits(specs[a])]
            assert not idle, f"{call.call_id} ({call.queue_id} stage {call.stage}) waits " \
                             f"while {idle} are free, after {event}"
        for eff in effects:
            if isinstance(eff, Offer):
                seen["offers"] += 1
                if eff.agent_id in shifts:  # never offered outside a shift
                    assert any(a <= now <= b for a, b in shifts[eff.agent_id])

    r = simulate(config, scenario, on_apply=check)
    assert seen["checks"] == r.events and seen["contended"] > 50 and seen["offers"] > 250
    figs = {qid: q.figures for qid, q in r.queues.items()}
    for f in figs.values():
        assert f.offered == f.answered + f.abandoned + f.unanswered_at_end
        assert f.unanswered_at_end == 0 and f.answered > 0
    assert sum(f.rona for f in figs.values()) > 0
    # sales and repair share agents: no Erlang figure; vip has its own two.
    assert not r.queues["sales"].single_skill and r.queues["sales"].erlang is None
    assert r.queues["vip"].single_skill and r.queues["vip"].erlang is not None
    assert r.queues["vip"].erlang.model == "Erlang C"
    assert (r.queues["vip"].erlang.agents_min, r.queues["vip"].erlang.agents_max) == (1, 2)
    assert 0.0 < (r.overall.busy / r.overall.available) < 1.0
    assert set(r.groups) == {"sz", "gz"}


def test_agents_come_back_after_ring_no_answer() -> None:
    config, scenario = sample()
    sc = scenario.model_copy(update={"no_answer_probability": 0.3})
    paused: list[tuple[float, str]] = []

    def watch(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Fact) and eff.name == "agent" \
                    and eff.data["status"] == "paused":
                paused.append((event.now, eff.data["agent"]))

    r = simulate(config, sc, on_apply=watch)
    f = r.queues["consult"].figures
    assert f.rona > 20 and len(paused) == f.rona
    assert f.unanswered_at_end == 0 and f.answered > 250
    assert all(t.paused > 0 for t in r.agents.values())


PARTNER_CONFIG = """
queues:
  - {id: consult, skills: {consult: 1}, sl_target: 20, wrap_up: 5,
     hours: {mon-fri: "09:00-17:00"}}
agents:
  - {id: a1, skills: {consult: 1}}
  - {id: a2, skills: {consult: 1}}
sites:
  - id: gd
    kind: partner
    regions: [CN-GD]
    capacity: 2
    number: "8000"
    trunk: {contact: "sip:127.0.0.1:7001"}
regions:
  overflow_after: 600
  policies: {CN-GD: {mode: overflow, after: 20}}
"""

PARTNER_SCENARIO = """
ring_time: 2
date: {date}
queues:
  consult:
    arrivals: [{{from: "08:00", to: "18:00", calls_per_hour: 50}}]
    handle_time: {{mean: 170}}
    patience: {{mean: 60}}
    regions: {{CN-GD: 1, CN-BJ: 1}}
"""


def test_queue_hours_partner_overflow_and_the_epoch_clock() -> None:
    config = parse_config(PARTNER_CONFIG)
    answered_at: dict[str, float] = {}
    late_hangups: list[str] = []

    def watch(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Offer) and eff.site_id:
                answered_at[eff.call_id] = event.now + 2.0  # the partner picks up
            if isinstance(eff, Fact) and eff.name == "call_abandoned" \
                    and event.now > answered_at.get(eff.data["call_id"], math.inf):
                late_hangups.append(eff.data["call_id"])

    monday = parse_scenario(PARTNER_SCENARIO.format(date="2025-03-03"), config=config)
    r = simulate(config, monday, on_apply=watch)
    q = r.queues["consult"]
    f = q.figures
    core = r.core_stats["consult"]
    # 08:00-09:00 and 17:00-18:00: CN-BJ callers get the closed action, CN-GD callers go
    # to the open partner first; in hours, CN-GD callers overflow after 20 s.
    assert f.closed == core["closed"] > 20
    assert f.offered == core["offered"] == f.answered + f.abandoned + f.unanswered_at_end
    assert 0 < f.answered_by_partner <= f.overflowed <= core["overflowed"]
    assert not late_hangups  # a caller the partner answered does not "abandon"
    assert not q.single_skill and q.erlang is None  # a partner takes this queue's calls
    # Sunday, nobody on shift: the partner takes what its capacity allows, the rest of the
    # CN-GD callers wait in vain, CN-BJ callers get the closed action.
    sunday = parse_scenario(PARTNER_SCENARIO.format(date="2025-03-02")
                            + "shifts: {a1: [], a2: []}\n", config=config)
    s = simulate(config, sunday).queues["consult"].figures
    assert s.answered == s.answered_by_partner > 0 and s.abandoned > 0
    assert s.closed > f.closed


# -- the scenario file -------------------------------------------------------------------------


def errors(text: str, config: Config | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_scenario(text, "sim.yaml", config)
    return exc.value.errors


def test_scenario_errors_name_file_key_path_and_line() -> None:
    config, _ = sample()
    text = """seed: 1
queues:
  consult:
    arrivals:
      - {from: "08:00", to: "25:00", calls_per_hour: 10}
    handle_time: {mean: 100}
  repiar:
    arrivals: [{from: "08:00", to: "09:00", calls_per_hour: 10}]
    handle_time: {distribution: exponential, mean: 100, sd: 3}
"""
    assert errors(text, config) == [
        "sim.yaml: queues.consult.arrivals[0].to (line 5): '25:00' is after 24:00",
        "sim.yaml: queues.repiar.handle_time (line 9): "
        "sd applies to the lognormal distribution only",
    ]
    text = """queues:
  repiar:
    arrivals: [{from: "08:00", to: "09:00", calls_per_hour: 10}]
    handle_time: {mean: 100}
shifts:
  "9999": [{from: "08:00", to: "12:00"}]
ring_time: 20
"""
    assert errors(text, config) == [
        "sim.yaml: queues.repiar (line 2): unknown queue 'repiar' (the config has consult)",
        "sim.yaml: shifts.9999 (line 6): unknown agent '9999'",
        "sim.yaml: ring_time (line 7): 20 s is not below the engine's ring_timeout (15 s): "
        "no call would be answered",
    ]
    overlap = errors("""queues:
  consult:
    arrivals:
      - {from: "08:00", to: "10:00", calls_per_hour: 10}
      - {from: "09:00", to: "11:00", calls_per_hour: 10}
    handle_time: {mean: 100}
    patience: forever
""")
    assert overlap[0] == ("sim.yaml: queues.consult.arrivals (line 3): windows 08:00-10:00 "
                          "and 09:00-11:00 overlap")
    assert overlap[1].startswith("sim.yaml: queues.consult.patience (line 7): ")
    assert errors("queues: [")[0].startswith("sim.yaml (line 1, column 10): invalid YAML")


def test_unquoted_times_and_patience_none() -> None:
    # YAML 1.1 would read 12:00 as the base-60 integer 720.
    sc = parse_scenario("""queues:
  q:
    arrivals: [{from: 9:30, to: 12:00, calls_per_hour: 10}]
    handle_time: {mean: 100}
    patience: none
until: 13:00:30
""")
    w = sc.queues["q"].arrivals[0]
    assert (w.start, w.end, sc.until) == (9.5 * 3600, 12 * 3600, 13 * 3600 + 30)
    assert sc.queues["q"].patience is None


# -- command line ---------------------------------------------------------------------------


def test_cli_prints_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--config", str(SAMPLE_CONFIG), "--scenario", str(SAMPLE_SCENARIO),
            "--replications", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "queue consult — 单技能 single-skill" in out and "Erlang A" in out
    assert "service level (≤ 20 s)" in out
    assert "3 个独立模拟日 independent simulated days (种子 seeds 42–44)" in out
    assert "core events" not in out
    assert main([*args, "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seeds"] == [5, 6, 7] and data["replications"] == 3
    assert "engine" not in data
    q = data["queues"]["consult"]
    assert q["single_skill"] and q["erlang"]["model"] == "Erlang A"
    sim = q["simulated"]
    assert sim["offered"]["n"] == 3
    assert sim["offered"]["mean"] == pytest.approx(sim["answered"]["mean"]
                                                   + sim["abandoned"]["mean"])
    sl = sim["service_level"]
    assert sl["low"] < sl["mean"] < sl["high"]


def test_cli_reports_scenario_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "sim.yaml"
    bad.write_text("queues:\n  nope:\n    arrivals: []\n    handle_time: {mean: 1}\n")
    assert main(["simulate", "-c", str(SAMPLE_CONFIG), "-s", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: queues.nope.arrivals (line 3): List should have at least 1 item" in err
