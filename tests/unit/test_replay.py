"""What-if replay (sim/replay.py) — the self-check on generated days where the truth is
known: a day simulated through the core, recorded by the history builder, written to a
real database, replayed with its own config, reproduces its figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acd.config import Config, load_config
from acd.domain import EngineCore, Event, Fact
from acd.domain.effects import Effect
from acd.history import RecordBuilder
from acd.runtime.history.db import HistoryDB
from app.cli import main
from sim import parse_scenario, simulate
from sim.replay import Patience, replay

ROOT = Path(__file__).resolve().parents[2]


def record_a_day(config: Config, tmp_path: Path, *, rona: float = 0.0,
                 seed: int = 7) -> tuple[str, Any]:
    """Simulate a day (the truth), record it as the engine would, write it to SQLite."""
    scenario = parse_scenario((ROOT / "config" / "simulate.sample.yaml").read_text(),
                              "simulate.sample.yaml", config)
    scenario = scenario.model_copy(update={"no_answer_probability": rona})
    builder = RecordBuilder({q.id: float(q.sl_target) for q in config.queues})
    last = [0.0]

    def hook(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        last[0] = event.now
        for eff in effects:
            if isinstance(eff, Fact):
                builder.observe(eff, event.now)

    truth = simulate(config, scenario, seed=seed, on_apply=hook)
    builder.close_intervals(last[0])
    calls, intervals = builder.take()
    url = f"sqlite:///{tmp_path / 'history.db'}"
    db = HistoryDB(url, timezone=config.timezone)
    db.upgrade()
    db.write([c.to_row() for c in calls], [i.to_row() for i in intervals])
    db.close()
    return url, truth


def test_replaying_a_day_with_its_own_config_reproduces_it(tmp_path: Path) -> None:
    config = load_config(ROOT / "config" / "acd.sample.yaml")
    url, truth = record_a_day(config, tmp_path)
    db = HistoryDB(url, timezone=config.timezone)
    (result,) = replay(db, config, config, truth.date, truth.date)
    db.close()
    actual, replayed = result.actual["consult"], result.replayed["consult"]
    sim = truth.queues["consult"].figures
    # the recorded figures are the simulated truth …
    assert (actual.offered, actual.answered, actual.abandoned) == (
        sim.offered, sim.answered, sim.abandoned)
    assert actual.service_level == pytest.approx(sim.service_level)
    assert actual.abandoned > 5 and actual.offered > 200
    # … and the replay reproduces them: same arrivals, talk, staffing, ring time; the
    # abandoners' patience as observed, the answered callers' drawn beyond their wait
    assert (replayed.offered, replayed.answered, replayed.abandoned) == (
        actual.offered, actual.answered, actual.abandoned)
    assert replayed.service_level == pytest.approx(actual.service_level, abs=1e-9)
    assert replayed.asa == pytest.approx(actual.asa, abs=1e-6)


def test_self_check_error_with_ring_no_answers_is_within_tolerance(tmp_path: Path) -> None:
    """With ring-no-answers (random: not the same agents miss the same calls) the replay
    is a statistical twin: SL within 3 points, ASA within 15 %, abandons within 2 points
    (the tolerance benchmarks/RESULTS.md states)."""
    config = load_config(ROOT / "config" / "acd.sample.yaml")
    url, truth = record_a_day(config, tmp_path, rona=0.05)
    db = HistoryDB(url, timezone=config.timezone)
    errors = []
    for seed in range(5):
        (result,) = replay(db, config, config, truth.date, truth.date, seed=seed)
        a, r = result.actual["consult"], result.replayed["consult"]
        assert r.offered == a.offered
        errors.append((abs(r.service_level - a.service_level),
                       abs(r.asa - a.asa) / a.asa,
                       abs(r.abandon_rate - a.abandon_rate)))
    db.close()
    mean = [sum(e[i] for e in errors) / len(errors) for i in range(3)]
    assert mean[0] < 0.03 and mean[1] < 0.15 and mean[2] < 0.02, mean


def test_what_if_one_more_agent_answers_faster(tmp_path: Path) -> None:
    config = load_config(ROOT / "config" / "acd.sample.yaml")
    url, truth = record_a_day(config, tmp_path)
    more = config.model_copy(update={"agents": [
        *config.agents, config.agents[0].model_copy(update={"id": "1099",
                                                            "endpoint": "agent1099"})]})
    fewer = config.model_copy(update={"agents": config.agents[:-1]})
    db = HistoryDB(url, timezone=config.timezone)
    (plus,) = replay(db, config, more, truth.date, truth.date)
    (minus,) = replay(db, config, fewer, truth.date, truth.date)
    db.close()
    base = plus.actual["consult"]
    assert plus.replayed["consult"].asa < base.asa
    assert minus.replayed["consult"].asa > base.asa
    assert minus.replayed["consult"].abandoned >= base.abandoned


def test_patience_kaplan_meier_counts_answered_callers_as_censored() -> None:
    km = Patience(abandons=[10, 20, 30], answered=[5, 15, 25, 35])
    # at t=10: 6 at risk (10,20,30 events; 15,25,35 censored), 1 event
    assert km.surv(10) == pytest.approx(5 / 6)
    assert km.surv(20) == pytest.approx(5 / 6 * 3 / 4)
    import random
    rng = random.Random(1)
    draws = [km.draw_beyond(26, rng) for _ in range(200)]
    assert all(d > 26 for d in draws)
    assert {d for d in draws if d != float("inf")} == {30}


def test_acd_replay_command_prints_actual_and_replay(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(ROOT / "config" / "acd.sample.yaml")
    url, truth = record_a_day(config, tmp_path)
    cfg = tmp_path / "acd.yaml"
    cfg.write_text((ROOT / "config" / "acd.sample.yaml").read_text())
    assert main(["replay", "-c", str(cfg), "--db", url, "--from", truth.date.isoformat(),
                 "--json"]) == 0
    (day,) = json.loads(capsys.readouterr().out)
    q = day["queues"]["consult"]
    assert q["actual"]["offered"] == q["replay"]["offered"] > 100
    assert main(["replay", "-c", str(cfg), "--db", url, "--from",
                 truth.date.isoformat()]) == 0
    assert "actual | replay" in capsys.readouterr().out
    assert main(["report", "-c", str(cfg), "--db", url, "--from",
                 truth.date.isoformat(), "--by", "all"]) == 0
    out = capsys.readouterr().out
    assert "calls by all" in out and "total" in out
