"""Smoke tests of the expected-wait benchmarks, so they cannot rot.

``benchmarks.ewt_accuracy`` (with its oracle, ``benchmarks.ewt_oracle``) on a short
simulated multi-skill morning: the oracle's replay reproduces every caller's actual
outcome from the day's actual draws (the clairvoyant check), and every column is
computed. ``benchmarks.ewt_e2e``'s own parts — Asterisk's log, the hand-offs, the
figures and the report — on a log written in Asterisk 22's format (the runs themselves
need the sandbox and are not part of any test suite). Correctness only, no figure is
asserted.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from benchmarks.ewt_accuracy import MULTI, Load, OracleSpec, multi_scenario, render, run
from benchmarks.ewt_e2e import (
    ANNOUNCE_QUICK,
    AsteriskLog,
    Mode,
    Told,
    arrivals,
    figures,
    handoffs,
    markdown,
    numbers,
    talk_times_ms,
)
from benchmarks.ewt_oracle import Talk, bound, covering_pick, weighted_median
from harness.sipp import SippEvent
from sim.scenario import HandleTime


def test_accuracy_with_the_oracle_on_a_short_multi_skill_morning() -> None:
    load = Load("multi-skill", "×1.2", MULTI, multi_scenario(1.2, hours=2))
    row = run(load, days=1, seed=1, oracle=OracleSpec(rounds=32, every=1, check=True))
    wrong, checked = row.check
    assert checked > 100 and wrong == 0  # the replay's rules are the simulator's
    assert row.answered > 100
    for errs in (row.ewt, row.naive, row.oracle, row.ewt_sampled, row.naive_sampled):
        assert errs.callers > 50 and all(math.isfinite(x) for x in errs[:5])
        assert errs.per_caller <= errs.p90 and 0 <= errs.within_20pct <= 1
    assert 0.05 < row.bound < 0.5
    assert 0 < row.best_within_20pct <= 1
    assert all(math.isfinite(v) for v in row.oracle_told.values())
    table = render([row], 1, 1.0, OracleSpec(32), "python -m benchmarks.ewt_accuracy")
    assert "| multi-skill | ×1.2 |" in table and "nan" not in table
    assert "0 of" in table  # the clairvoyant check's line


def test_the_oracles_draws_and_statistics() -> None:
    talk = Talk.of(HandleTime(distribution="lognormal", mean=180, sd=120))
    rng = random.Random(1)
    # a call 300 s in lasts on: its remaining talk is drawn from the law beyond 300 s
    left = [talk.left(300.0, rng) for _ in range(4000)]
    assert min(left) >= 0 and 100 < statistics.fmean(left) < 400
    fresh = [talk.draw(rng) for _ in range(4000)]
    assert statistics.fmean(fresh) == pytest.approx(180, rel=0.06)
    assert weighted_median([1, 2, 3, 10], [1, 1, 1, 1]) == 2
    assert weighted_median([1, 2, 3, 10], [0.1, 0.1, 0.1, 5]) == 10
    # ±20 % of 10 covers 8.33 … 12.5: the pick covers the tight cluster
    assert 8.4 <= covering_pick([1.0, 9.0, 10.0, 11.0, 40.0], [1.0] * 5, 0.2) <= 11.2
    # one caller, all its weight within ±10 %: the bound is the grid's first step
    assert bound([(1.0, [1.0] * 41)]) == pytest.approx(0.10)
    assert math.isnan(bound([(1.0, [0.0] * 41)]))


LOG = """\
[2026-12-03 15:33:35.223] VERBOSE[1][C-00000001] pbx.c: Executing [s@hotline-acd:7] Set("PJSIP/carrier-sandbox-00000000", "__ACD_ENTRY=1796312015.223") in new stack
[2026-12-03 15:33:35.223] VERBOSE[1][C-00000001] pbx.c: Executing [s@hotline-acd:16] AGI("PJSIP/carrier-sandbox-00000000", "agi://127.0.0.1:1/inbound,1796312015.223,1796312015.0,4008001234,main") in new stack
[2026-12-03 15:33:35.423] VERBOSE[2][C-00000002] pbx.c: Executing [s@hotline-acd:7] Set("PJSIP/carrier-sandbox-00000001", "__ACD_ENTRY=1796312015.423") in new stack
[2026-12-03 15:33:35.423] VERBOSE[2][C-00000002] pbx.c: Executing [s@hotline-acd:16] AGI("PJSIP/carrier-sandbox-00000001", "agi://127.0.0.1:1/inbound,1796312015.423,1796312015.1,4008001234,main") in new stack
[2026-12-03 15:33:35.731] VERBOSE[1][C-00000001] res_musiconhold.c: Started music on hold, class 'default', on channel 'PJSIP/carrier-sandbox-00000000'
[2026-12-03 15:33:35.733] VERBOSE[1][C-00000001] res_agi.c: AGI Script Executing Application: (Dial) Options: (PJSIP/agent8101,4,m)
[2026-12-03 15:33:35.927] VERBOSE[2][C-00000002] res_musiconhold.c: Started music on hold, class 'default', on channel 'PJSIP/carrier-sandbox-00000001'
[2026-12-03 15:33:36.242] VERBOSE[3][C-00000001] bridge_channel.c: Channel PJSIP/agent8101-00000002 joined 'simple_bridge' basic-bridge <4bf9>
[2026-12-03 15:33:36.930] VERBOSE[2][C-00000002] res_musiconhold.c: Stopped music on hold on PJSIP/carrier-sandbox-00000001
[2026-12-03 15:33:36.931] VERBOSE[2][C-00000002] res_agi.c: <PJSIP/carrier-sandbox-00000001> Playing 'queue-youarenext.gsm' (escape_digits=#) (sample_offset 0) (language 'zh')
[2026-12-03 15:33:45.115] VERBOSE[2][C-00000002] res_agi.c: <PJSIP/carrier-sandbox-00000001> Playing 'queue-less-than.gsm' (escape_digits=#) (sample_offset 0) (language 'zh')
[2026-12-03 15:33:45.491] VERBOSE[3][C-00000001] bridge_channel.c: Channel PJSIP/agent8101-00000002 left 'native_rtp' basic-bridge <4bf9>
[2026-12-03 15:33:45.491] VERBOSE[1][C-00000001] bridge_channel.c: Channel PJSIP/carrier-sandbox-00000000 left 'native_rtp' basic-bridge <4bf9>
[2026-12-03 15:33:45.496] VERBOSE[2][C-00000002] res_musiconhold.c: Started music on hold, class 'default', on channel 'PJSIP/carrier-sandbox-00000001'
[2026-12-03 15:33:45.496] VERBOSE[2][C-00000002] res_agi.c: AGI Script Executing Application: (Dial) Options: (PJSIP/agent8101,4,m)
[2026-12-03 15:33:55.251] VERBOSE[4][C-00000002] bridge_channel.c: Channel PJSIP/agent8101-00000003 left 'native_rtp' basic-bridge <94ca>
"""  # noqa: E501  (Asterisk's own lines)


def test_e2e_hand_offs_from_asterisks_log_and_the_engines_clock() -> None:
    log = AsteriskLog.parse(LOG)
    assert log.offset == 0  # this log was written in UTC (another zone: whole hours)
    hang = log.hangups[0][0]
    engine_hangup = hang + log.offset
    states = [(engine_hangup + 0.002, "8101", "idle")]
    offers = [(engine_hangup + 0.0025, "c2", "8101")]
    (h,) = handoffs(log, states, offers)  # the second hang-up had nobody waiting
    assert h.agent == "agent8101" and h.channel == "C-00000002"
    assert h.delay_ms == pytest.approx(5.0, abs=0.01)
    assert h.in_prompt and not h.prompt_after  # cut in the middle of its announcement
    assert h.freed == pytest.approx(0.002, abs=1e-6)  # epoch seconds: ~0.2 µs steps
    assert h.offered == pytest.approx(0.0025, abs=1e-6)
    assert not log.in_prompt("C-00000002", hang + 1.0)  # hold music again after it


def test_e2e_figures_and_report() -> None:
    load = ANNOUNCE_QUICK
    times, talks = arrivals(load), talk_times_ms(load)
    assert len(times) == len(talks) == load.calls and times == sorted(times)
    assert all(1000 <= t < 100_000 for t in talks)
    callers = numbers("77", talks)
    assert len(set(callers)) == len(callers) and callers[0].endswith(f"{talks[0]:05d}")
    entry = 1_796_312_015.0
    told = [Told(f"c{i}", "consult", entry + i, entry + i + 0.5, ewt=10.0 + i,
                 naive=12.0, position=1, replay_lag=0.1, wait=9.0 + 1.5 * i,
                 caller=callers[i]) for i in range(4)]
    events = [SippEvent(entry + i, "answered", callers[i], f"x{i}") for i in range(4)]
    agent_events = [SippEvent(entry + i + 9.0 + 1.5 * i, "answered", callers[i], f"y{i}",
                              "agent8101") for i in range(4)]
    run = figures(Mode("on", "77"), load, callers, told, LOG, {"n": 4.0}, agent_events,
                  events, 0)
    assert run["ewt"]["n"] == run["naive"]["n"] == 4
    assert run["ewt"]["per_caller_rel"] <= run["ewt"]["p90_rel"]
    assert 0 <= run["ewt"]["within_20pct_rel"] <= 1
    assert run["free_to_dial_ms"]["n"] == 1 and run["in_prompt"] == 1
    assert run["wait_engine_vs_sipp_ms"]["n"] == 4
    results = {"kind": "announce", "load": load.__dict__, "rate": load.rate,
               "calls": load.calls, "started": "now", "seconds": 1.0, "runs": [run],
               "machine": {"nproc": "2", "cpu": "x", "python": "3", "sipp": "SIPp"}}
    assert "| announcements on | 1 | 1 |" in markdown(results)
    results["runs"] = [{**run, "mode": "off"}, run]
    assert "Announcements on ÷ off, same run: p50 1.00×" in markdown(results)
    assert "already in the engine's line" not in markdown(results)
    late = {**run["handoffs"][0], "freed": 0.002, "offered": 0.3,
            "dial": run["handoffs"][0]["dial"] + 0.3}
    results["runs"] = [{**run, "mode": "off"}, {**run, "handoffs": [*run["handoffs"], late]}]
    table = markdown(results)
    assert "already in the engine's line" in table
    assert "| announcements on | 1 | 1 | 1 | 5 | 5 | 5 | 5 | 1.00× | 1.00× |" in table
    results["runs"] = [run]
    results["kind"] = "accuracy"
    assert "**per caller" in markdown(results)
