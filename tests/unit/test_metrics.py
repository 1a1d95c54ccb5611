"""Prometheus metrics (acd.runtime.metrics): a Collector over a real Engine fed synthetic events.

No Asterisk: the engine runs in this loop (FastAGI on an ephemeral port, no AMI) and the
test plays the caller sessions, posting the events a session would post.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry, DuplicateTimeseries

from acd.config import Config
from acd.domain import CallAnswered, CallArrived, CallHungUp, DialFinished
from acd.runtime.engine import Engine
from acd.runtime.metrics import EngineCollector, build_registry
from api.app import create_app
from app.node import Node

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "grafana-acd.json"
ALLOWED_LABELS = {"queue", "state", "status", "outcome", "presence", "event", "window", "le",
                  "direction",
                  "site", "region"}


def config() -> Config:
    return Config.model_validate({
        "fastagi": {"host": "127.0.0.1", "port": 0},
        # synthetic callers who waited before the engine started: no restart hold
        "store": {"restore_grace": 0},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0, "sl_target": 20},
                   {"id": "repair", "skills": {"repair": 1}, "wrap_up": 0}],
        "agents": [{"id": "1001", "skills": {"consult": 2}},
                   {"id": "1002", "skills": {"repair": 1}, "status": "logged_out"}],
        "sites": [{"id": "bj", "kind": "own", "capacity": 20}],
        "regions": {"policies": {"CN-GD": {"mode": "overflow", "after": 10}}},
    })


class Clock:
    def __init__(self) -> None:
        self.now = 1_770_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with Node(config(), ami_secrets=None, clock=Clock()) as node:
        yield node.engine


async def settle(engine: Engine) -> None:
    await asyncio.wait_for(engine.flushed(), 5)


async def place_calls(engine: Engine, numbers: list[str]) -> tuple[int, int]:
    """Even calls answered by 1001 after a wait, odd calls abandoned while ringing."""
    clock = engine.clock
    assert isinstance(clock, Clock)
    answered = abandoned = 0
    for i, number in enumerate(numbers):
        cid = f"call-{number}"
        offers = engine.open_session(cid)
        clock.now += 1.0
        entry = clock.now - (i % 40)  # waits of 0..39 s
        engine.post(CallArrived(cid, "consult", number, entry, clock.now))
        offer = await asyncio.wait_for(offers.get(), 2)
        if i % 2 == 0:
            engine.post(CallAnswered(cid, offer.agent_id, clock.now))
            clock.now += 2.0
            engine.post(DialFinished(cid, offer.agent_id, "ANSWER", clock.now, talk=2.0))
            answered += 1
        else:
            engine.post(CallHungUp(cid, clock.now))
            engine.post(DialFinished(cid, offer.agent_id, "CANCEL", clock.now))
            abandoned += 1
        await settle(engine)
        engine.close_session(cid, offers)
    return answered, abandoned


def scrape(registry: CollectorRegistry) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.name, dict(s.labels), s.value) for s in fam.samples]
    return out


def series(scraped: dict[str, list[tuple[str, dict[str, str], float]]]) -> set[str]:
    return {f"{name}{sorted(labels.items())}" for fam in scraped.values()
            for name, labels, _ in fam}


def value(scraped: dict[str, list[tuple[str, dict[str, str], float]]], family: str,
          sample: str | None = None, **labels: str) -> float:
    for name, lab, v in scraped[family]:
        if (sample is None or name == sample) and all(lab.get(k) == x for k, x in labels.items()):
            return v
    raise KeyError((family, sample, labels))


async def test_label_sets_stay_bounded_after_1000_calls_from_1000_numbers(
        engine: Engine) -> None:
    registry, collector = build_registry(engine)
    collector.attach()

    numbers = [f"1380013{i:04d}" for i in range(1000)]
    await place_calls(engine, numbers[:100])
    await engine.estimates.replay()  # the expected waits are known (and stay so)
    early = series(scrape(registry))
    answered, abandoned = await place_calls(engine, numbers[100:])
    scraped = scrape(registry)
    assert series(scraped) == early  # no new series for new callers

    for fam in scraped.values():
        for _, labels, _ in fam:
            assert set(labels) <= ALLOWED_LABELS
            for v in labels.values():
                assert not re.search(r"\d{6,}", v), f"caller-like label value {v!r}"
                assert not v.startswith("call-")
    assert len(early) < 320  # fixed per queue and site (EWT error histogram: 2 × 2 × 12)

    # the figures are right
    assert value(scraped, "acd_calls_offered", queue="consult") == 1000
    assert value(scraped, "acd_calls_answered", queue="consult") == 50 + answered
    assert value(scraped, "acd_calls_abandoned", queue="consult") == 50 + abandoned
    assert value(scraped, "acd_calls_completed", queue="consult") == 500
    assert value(scraped, "acd_talk_seconds", queue="consult") == pytest.approx(1000.0)
    waits = "acd_call_wait_seconds"
    assert value(scraped, waits, f"{waits}_count", queue="consult", outcome="answered") == 500
    assert value(scraped, waits, f"{waits}_count", queue="consult", outcome="abandoned") == 500
    assert value(scraped, waits, f"{waits}_bucket", queue="consult", outcome="answered",
                 le="+Inf") == 500
    # waits of 0..39 s (even i: 0, 2, ..., 38); 20 s is within the target of 20 s
    within = value(scraped, "acd_calls_answered_within_target", queue="consult")
    assert within == value(scraped, waits, f"{waits}_bucket", queue="consult",
                           outcome="answered", le="20.0")
    assert value(scraped, "acd_calls_waiting", queue="consult") == 0
    assert value(scraped, "acd_agents", status="available", state="idle") == 1
    assert value(scraped, "acd_agents", status="logged_out", state="idle") == 1
    assert value(scraped, "acd_queue_agents", queue="consult", presence="ready") == 1
    assert value(scraped, "acd_queue_agents", queue="repair", presence="logged_out") == 1
    decisions = "acd_routing_decision_seconds"
    assert value(scraped, decisions, f"{decisions}_count", event="CallArrived") == 1000
    assert value(scraped, "acd_ami_up") == 0
    assert value(scraped, "acd_engine_accepting") == 1
    assert 0 < value(scraped, "acd_service_level_ratio", queue="consult",
                     window="today") < 1


async def test_waiting_calls_and_longest_wait_are_live_gauges(engine: Engine) -> None:
    registry, _ = build_registry(engine)
    clock = engine.clock
    assert isinstance(clock, Clock)
    # 1002 (repair) is logged out: repair calls wait
    engine.post(CallArrived("r1", "repair", "02000000001", clock.now - 30, clock.now))
    engine.post(CallArrived("r2", "repair", "02000000002", clock.now - 5, clock.now))
    await settle(engine)
    scraped = scrape(registry)
    assert value(scraped, "acd_calls_waiting", queue="repair") == 2
    assert value(scraped, "acd_longest_wait_seconds", queue="repair") == pytest.approx(30)
    clock.now += 10
    assert value(scrape(registry), "acd_longest_wait_seconds", queue="repair") == \
        pytest.approx(40)
    assert not scraped.get("acd_service_level_ratio")  # nobody answered or abandoned


async def test_app_built_twice_has_no_duplicated_timeseries(engine: Engine) -> None:
    first = create_app(engine, config(), registry=CollectorRegistry())
    second = create_app(engine, config(), registry=CollectorRegistry())
    assert first.state.acd.registry is not second.state.acd.registry
    # the same names twice on ONE registry are refused (describe() names them)
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    with pytest.raises(DuplicateTimeseries):
        registry.register(EngineCollector(engine))


async def test_a_failing_observer_never_stops_routing(engine: Engine,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(ev: object, now: float) -> None:
        raise RuntimeError("observer bug")

    engine.fact_hooks.append(broken)
    engine.apply_hooks.append(broken)
    answered, _ = await place_calls(engine, ["0755000001", "0755000002"])
    assert answered == 1
    assert "observer" in caplog.text


async def test_a_failing_effect_never_stops_the_inbox(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import acd.runtime.engine

    real, failures = acd.runtime.engine.events_log.info, []

    def flaky(*args: Any) -> None:
        if not failures:  # the first event line of the run fails
            failures.append(args)
            raise RuntimeError("adapter bug")
        real(*args)

    monkeypatch.setattr(acd.runtime.engine.events_log, "info", flaky)
    caplog.set_level(logging.INFO, logger="acd.events")  # event lines are written
    answered, _ = await place_calls(engine, ["0755000001", "0755000002"])
    assert answered == 1 and failures
    assert "engine failed to carry out" in caplog.text
    assert engine._loop_task is not None and not engine._loop_task.done()


async def test_every_metric_the_dashboard_uses_is_exported(engine: Engine) -> None:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"]
             for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\bacd_[a-z_]+", e)}
    registry, collector = build_registry(engine)
    collector.attach()
    await place_calls(engine, ["0755000001", "0755000002"])
    exported = {name for fam in scrape(registry).values() for name, _, _ in fam}
    assert used and used <= exported, used - exported
