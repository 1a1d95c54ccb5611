"""``acd simulate`` for a manager (issue 15.6): confidence intervals over independent
days, shifts and closed days counted honestly, tallies per site, region and hour, the
report's wording, and the CLI."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
from pathlib import Path

import pytest

from acd.config import Config, ConfigError, load_config, parse_config
from app.cli import main
from sim import Scenario, parse_scenario, render, replicate, simulate
from sim.stats import estimate, t_cdf, t_quantile

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "config" / "acd.sample.yaml"
SAMPLE_SCENARIO = ROOT / "config" / "simulate.sample.yaml"
BEIJING_CONFIG = ROOT / "config" / "acd.beijing.yaml"
BEIJING_SCENARIO = ROOT / "config" / "simulate.beijing.yaml"


def beijing(**update: object) -> tuple[Config, Scenario]:
    config = load_config(BEIJING_CONFIG)
    scenario = parse_scenario(BEIJING_SCENARIO.read_text(encoding="utf-8"),
                              str(BEIJING_SCENARIO), config)
    return config, scenario.model_copy(update=update)


# -- Student's t and the interval --------------------------------------------------------


@pytest.mark.parametrize(("df", "table"), [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262),
                                           (29, 2.045), (120, 1.980), (10_000, 1.960)])
def test_t_quantile_matches_the_table(df: int, table: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(table, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-table, abs=5e-4)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-9)


def test_t_cdf_is_a_distribution() -> None:
    assert t_cdf(0.0, 5) == pytest.approx(0.5)
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/π
    xs = [t_cdf(x / 4, 3) for x in range(-40, 41)]
    assert all(a < b for a, b in itertools.pairwise(xs))
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_estimate_is_mean_plus_minus_t_s_over_root_n() -> None:
    e = estimate([1.0, 2.0, 3.0, 4.0, 5.0])
    assert e is not None and e.n == 5 and e.mean == 3.0
    assert e.half_width == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    assert e.low is not None and e.high is not None
    assert e.low == pytest.approx(3.0 - e.half_width)
    assert e.high == pytest.approx(3.0 + e.half_width)
    # Days on which a figure is undefined (no answered call: no ASA) are left out.
    e2 = estimate([None, 4.0, None, 6.0])
    assert e2 is not None and e2.n == 2 and e2.mean == 5.0
    one = estimate([7.0, None])
    assert one is not None and one.half_width is None and one.low is None
    assert estimate([None, None]) is None


def test_the_interval_covers_the_true_mean_95_times_in_100() -> None:
    rng = random.Random(7)
    trials, covered = 2000, 0
    for _ in range(trials):
        e = estimate(rng.gauss(10.0, 3.0) for _ in range(6))
        assert e is not None and e.low is not None and e.high is not None
        covered += e.low <= 10.0 <= e.high
    assert 0.935 <= covered / trials <= 0.965


# -- independent days --------------------------------------------------------------------


def test_replications_are_the_days_of_consecutive_seeds() -> None:
    config, scenario = beijing()
    reps = replicate(config, scenario, replications=4, seed=20)
    assert reps.seeds == [20, 21, 22, 23] and reps.n == 4
    # Day k is exactly the single day simulated with seed 20 + k.
    again = simulate(config, scenario, seed=22)
    assert again.callers.to_dict() == reps.results[2].callers.to_dict()
    days = [r.queues["consult"].figures.service_level for r in reps.results]
    assert len(set(days)) > 1  # the days differ
    sl = reps.queue("consult")["service_level"]
    assert sl is not None and sl.n == 4
    assert sl.mean == pytest.approx(statistics.fmean(d for d in days if d is not None))
    assert sl.half_width == pytest.approx(
        t_quantile(0.975, 3) * statistics.stdev(d for d in days if d is not None) / 2.0)


def test_more_days_narrow_the_interval() -> None:
    config, scenario = beijing()
    narrow = replicate(config, scenario, replications=16).callers()["service_level"]
    wide = replicate(config, scenario, replications=4).callers()["service_level"]
    assert narrow is not None and wide is not None
    assert narrow.half_width is not None and wide.half_width is not None
    assert narrow.half_width < wide.half_width


def test_the_scenario_says_how_many_days() -> None:
    config, scenario = beijing(replications=3)
    assert replicate(config, scenario).n == 3
    assert replicate(config, scenario, replications=1).n == 1
    with pytest.raises(ValueError):
        replicate(config, scenario, replications=0)


# -- multi-skilled agents: no Erlang figure, simulated figures with intervals -----------


def test_multi_skill_queues_get_intervals_not_erlang() -> None:
    config, scenario = beijing()
    reps = replicate(config, scenario, replications=5)
    for qid in ("consult", "repair"):
        q = reps.first.queues[qid]
        assert q.erlang is None and q.no_erlang == "shared_agents"
        figs = reps.queue(qid)
        for name in ("service_level", "asa", "abandon_rate", "aht", "occupancy"):
            e = figs[name]
            assert e is not None and e.n == 5 and e.half_width is not None, name
            assert e.half_width > 0, name
    text = render(reps)
    assert "队列 queue consult — 7 名坐席 agents (坐席兼顾其他队列 agents shared with other " \
           "queues: 无 Erlang 值 no Erlang figure)" in text
    sl = reps.queue("consult")["service_level"]
    assert sl is not None and sl.half_width is not None
    assert (f"服务水平 service level (≤ 20 s)    {100 * sl.mean:.1f} % ± "
            f"{100 * sl.half_width:.1f}") in text


# -- per site, per region, per hour -----------------------------------------------------


def test_tallies_add_up_to_all_callers_every_day() -> None:
    config, scenario = beijing()
    for seed in (1, 2):
        r = simulate(config, scenario, seed=seed)
        everyone = r.callers
        assert everyone.callers == sum(q.figures.callers for q in r.queues.values()) > 500
        for tallies in (r.regions, r.hours):
            for name in ("callers", "answered", "abandoned", "sent_away",
                         "answered_by_partner", "answered_within_target"):
                assert sum(getattr(f, name) for f in tallies.values()) \
                    == getattr(everyone, name), name
        assert set(r.regions) == {"CN-BJ", "CN-HE", "CN-GD", "CN-SC"}
        # Only Guangdong and Sichuan callers can reach a partner; Sichuan's is primary.
        assert r.regions["CN-BJ"].answered_by_partner == 0
        assert r.regions["CN-HE"].answered_by_partner == 0
        assert r.regions["CN-SC"].answered_by_partner > r.regions["CN-SC"].answered / 2
        assert 0 < r.regions["CN-GD"].answered_by_partner < r.regions["CN-GD"].answered
        # The partner sites' own counts are the callers' answered-by-partner.
        assert sum(s.answered for s in r.sites.values()) == everyone.answered_by_partner
        assert everyone.answered == sum(t.answered for t in r.agents.values()) \
            + everyone.answered_by_partner
        # Hours of arrival: 08:00 … 20:00, as the scenario's windows.
        assert min(r.hours) == 8 and max(r.hours) == 20


def test_the_report_has_site_region_and_hour_tables() -> None:
    config, scenario = beijing()
    reps = replicate(config, scenario, replications=3)
    text = render(reps)
    lines = text.splitlines()
    for head in ("按站点 by site", "按地区 by region", "按小时 by hour", "坐席 agents"):
        assert any(line.startswith(head) for line in lines), head
    row = next(line for line in lines if line.strip().startswith("CN-GD 广东 Guangdong"))
    gd = reps.region("CN-GD")
    assert gd["callers"] is not None and gd["answered_by_partner"] is not None
    assert f"{gd['callers'].mean:.1f}" in row and f"{gd['answered_by_partner'].mean:.1f}" in row
    site = next(line for line in lines if line.strip().startswith("guangdong"))
    assert "合作 partner" in site
    answered = reps.partner("guangdong")["answered"]
    assert answered is not None and f"{answered.mean:.1f}" in site
    own = next(line for line in lines if line.strip().startswith("beijing"))
    assert "自有 own" in own
    hours = [line.split()[0] for line in lines if re.match(r"  \d\d:00 ", line)]
    assert hours[0] == "08:00" and hours[-1] == "20:00"  # no empty hour after the last call


# -- shifts and closed days, counted honestly ------------------------------------------


def test_group_shifts_log_agents_in_and_out() -> None:
    config, scenario = beijing()
    shifts = scenario.agent_shifts(config)
    early = [(s.start, s.end) for s in shifts["1001"] or ()]
    assert early == [(8 * 3600, 12 * 3600), (13 * 3600, 17 * 3600)]
    assert [(s.start, s.end) for s in shifts["1005"] or ()] == [(12.5 * 3600, 21 * 3600)]
    assert [(s.start, s.end) for s in shifts["1008"] or ()] == [(8.5 * 3600, 18 * 3600)]
    r = simulate(config, scenario)
    # 09:00-10:00: the four early agents and 1008, all hour; the late ones not yet.
    assert r.hour_agents[9].staffed == pytest.approx(5 * 3600)
    assert r.agents["1005"].answered > 0
    # 12:00-13:00: the early group at lunch, the late group from 12:30, 1008 all hour.
    assert r.hour_agents[12].staffed >= (1 + 3 * 0.5) * 3600


def test_group_shift_union_and_own_entry() -> None:
    config = parse_config("""
queues: [{id: q, skills: {s: 1}}]
agents:
  - {id: a, skills: {s: 1}, groups: [x, y]}
  - {id: b, skills: {s: 1}, groups: [x]}
  - {id: c, skills: {s: 1}}
""")
    sc = parse_scenario("""
queues: {q: {arrivals: [{from: "09:00", to: "10:00", calls_per_hour: 1}],
             handle_time: {mean: 60}}}
shifts:
  group:x: [{from: "08:00", to: "12:00"}]
  group:y: [{from: "11:00", to: "14:00"}]
  b: [{from: "15:00", to: "16:00"}]
""", config=config)
    got = {k: None if v is None else [(s.start / 3600, s.end / 3600) for s in v]
           for k, v in sc.agent_shifts(config).items()}
    assert got == {"a": [(8, 14)], "b": [(15, 16)], "c": None}
    with pytest.raises(ConfigError) as exc:
        parse_scenario("""
queues: {q: {arrivals: [{from: "09:00", to: "10:00", calls_per_hour: 1}],
             handle_time: {mean: 60}}}
shifts:
  group:z: [{from: "08:00", to: "12:00"}]
""", "sim.yaml", config)
    assert exc.value.errors == ["sim.yaml: shifts.group:z (line 5): no agent is in group 'z' "
                                "(agents' groups: x, y)"]


def test_a_closed_sunday_is_not_a_perfect_day() -> None:
    """Issue 15.6: a Sunday with closed queues must not read 'service level 100 %'."""
    config, tuesday = beijing(replications=3)
    sunday = tuesday.model_copy(update={"date": tuesday.date.replace(day=9)})
    assert sunday.date.weekday() == 6
    reps = replicate(config, sunday)
    everyone = reps.callers()
    callers, sent_away = everyone["callers"], everyone["sent_away"]
    assert callers is not None and sent_away is not None
    assert sent_away.mean > 0.7 * callers.mean  # only the Guangdong partner is open
    sl_all, sl_line = everyone["service_level_all"], everyone["service_level"]
    assert sl_all is not None and sl_line is not None
    assert sl_all.mean < 0.3 < 0.9 < sl_line.mean
    for r in reps.results:  # nobody of the Beijing centre works: its site is closed
        assert r.overall.staffed == 0.0
        assert r.regions["CN-BJ"].answered == 0
        assert r.regions["CN-BJ"].sent_away == r.regions["CN-BJ"].callers > 0
    text = render(reps)
    assert "100.0 %" not in text
    assert (f"服务水平 service level (≤ T, 各队列 each queue's), 全部来电 all callers  "
            f"{100 * sl_all.mean:.1f} %") in text
    assert "关闭/送走 closed or sent away" in text and "仅排队来电 callers in line only" in text
    # The weekday has no one sent away, and says nothing of it.
    weekday = render(replicate(config, tuesday))
    assert "关闭/送走 closed or sent away" not in weekday


def test_nobody_on_shift_counts_as_nobody() -> None:
    config = load_config(SAMPLE_CONFIG)
    scenario = parse_scenario(SAMPLE_SCENARIO.read_text(encoding="utf-8"), config=config)
    nobody = scenario.model_copy(update={"shifts": {
        a.id: [] for a in config.agents}, "replications": 2})
    reps = replicate(config, nobody)
    q = reps.queue("consult")
    assert q["answered"] is not None and q["answered"].mean == 0
    assert q["service_level"] is not None and q["service_level"].mean == 0.0
    assert q["occupancy"] is None  # nobody was staffed: no occupancy, not 0 % or 100 %


# -- the command line --------------------------------------------------------------------


def test_cli_date_override_and_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "-c", str(BEIJING_CONFIG), "-s", str(BEIJING_SCENARIO), "-n", "2"]
    assert main([*args, "--date", "2025-03-09", "--json"]) == 0
    sunday = json.loads(capsys.readouterr().out)
    assert sunday["date"] == "2025-03-09" and sunday["replications"] == 2
    assert sunday["callers"]["sent_away"]["mean"] > 0
    assert "engine" not in sunday
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "日期 date 2025-03-04 周二 Tue" in out and "core events" not in out
    assert main([*args, "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "引擎 engine: " in out and " core events in " in out
    with pytest.raises(SystemExit):
        main([*args, "--date", "2025-02-30"])
    assert "is not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "-n", "0"])
    assert "0 days: between 1 and 1000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "-n", "ten"])
    assert "'ten' is not a whole number" in capsys.readouterr().err


# -- exits, the end of the clock, the warm-up ------------------------------------------

EXITS_CONFIG = """
queues:
  - id: sales
    skills: {sales: 1}
    sl_target: 20
    wrap_up: 0
    exits:
      max_wait: 60
      action: {to: voicemail, mailbox: "100@default"}
  - id: busy
    skills: {busy: 1}
    wrap_up: 0
    exits:
      max_waiting: 2
      action: {to: queue, queue: overflow}
  - {id: overflow, skills: {overflow: 1}, wrap_up: 0}
agents:
  - {id: a1, skills: {sales: 1}}
  - {id: a2, skills: {sales: 1}}
  - {id: b1, skills: {busy: 1}}
  - {id: o1, skills: {overflow: 1}}
  - {id: o2, skills: {overflow: 1}}
"""

EXITS_SCENARIO = """
ring_time: 1
replications: 3
queues:
  sales:
    arrivals: [{from: "09:00", to: "11:00", calls_per_hour: 60}]
    handle_time: {mean: 150}
  busy:
    arrivals: [{from: "09:00", to: "11:00", calls_per_hour: 40}]
    handle_time: {mean: 120}
"""


def test_exits_are_counted_as_exits_and_voicemail_as_sent_away() -> None:
    config = parse_config(EXITS_CONFIG)
    scenario = parse_scenario(EXITS_SCENARIO, config=config)
    reps = replicate(config, scenario)
    for r in reps.results:
        sales, busy = r.queues["sales"], r.queues["busy"]
        s, b = sales.figures, busy.figures
        # Overloaded (60/h × 150 s on 2 agents): callers past 60 s go to voicemail.
        assert s.exits == s.exits_ended > 10 and s.abandoned == 0
        assert s.sent_away == s.exits_ended and s.closed == 0
        assert s.offered == s.answered + s.exits + s.unanswered_at_end
        assert s.service_level_all is not None and s.service_level is not None
        assert s.service_level_all < s.service_level
        assert sales.erlang is None and sales.no_erlang == "exits"
        # The third caller in line of "busy" is moved to "overflow": an exit, not sent
        # away, and it is answered there.
        assert b.exits > 0 and b.exits_ended == 0 and b.sent_away == 0
        assert r.queues["overflow"].figures.transferred_in == b.exits
        assert r.callers.sent_away == s.exits_ended
        assert list(r.queues) == ["sales", "busy", "overflow"]
    text = render(reps)
    assert "离队 left by an exit" in text
    assert "其中结束 of which ended (voicemail, message)" in text
    assert "有离队规则 callers may leave by its exits" in text
    # The queue only exits send callers to is reported too, and says where they came from.
    moved = reps.queue("overflow")["transferred_in"]
    assert moved is not None and moved.half_width is not None
    assert "队列 queue overflow — 2 名坐席 agents (来电也来自其他队列的离队 callers also " \
           "come from other queues' exits: 无 Erlang 值 no Erlang figure)" in text
    assert re.search(rf"由其他队列转入 moved in by other queues' exits +{moved.mean:.1f} ± ",
                     text)
    everyone = text.split("\n\n")[1]
    assert everyone.startswith("全部来电 all callers")
    assert "离队结束 ended by an exit (voicemail, message)" in everyone


def test_a_queue_exits_can_reach_is_reported_every_day_even_without_callers() -> None:
    config = parse_config(EXITS_CONFIG)
    quiet = parse_scenario(EXITS_SCENARIO.replace("calls_per_hour: 40", "calls_per_hour: 1"),
                           config=config)
    reps = replicate(config, quiet)
    for r in reps.results:  # nobody is ever third in line of "busy"
        assert list(r.queues) == ["sales", "busy", "overflow"]
        assert r.queues["busy"].figures.exits == 0
        assert r.queues["overflow"].figures.transferred_in == 0
        assert r.queues["overflow"].no_erlang == "transfers"
    moved = reps.queue("overflow")["transferred_in"]
    assert moved is not None and moved.mean == 0
    assert "由其他队列转入" not in render(reps)


def test_until_stops_the_clock_and_warmup_is_not_counted() -> None:
    config = parse_config(EXITS_CONFIG)
    scenario = parse_scenario(EXITS_SCENARIO + 'until: "10:30"\nwarmup: 1800\n',
                              config=config)
    reps = replicate(config, scenario)
    for r in reps.results:
        assert r.end == 10.5 * 3600 and r.measure_from == 9.5 * 3600
        assert min(r.hours) == 9  # 09:30-10:00 counted, under hour 9
        f = r.queues["busy"].figures
        assert f.offered == f.answered + f.abandoned + f.exits + f.unanswered_at_end
    text = render(reps)
    assert "日期 date 2025-03-03 周一 Mon, 09:00–10:30，计入自 counted from 09:30" in text
