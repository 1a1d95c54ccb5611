"""The same day with and without a callback option (issue 12.5).

    .venv/bin/python -m benchmarks.callbacks_sim [--days 5] [--ewt 120]

One queue of 14 agents, a morning peak above capacity (09:00-11:00 at 330 calls/h, then
210/h until 17:00; talk time exponential, mean 180 s; callers' patience exponential,
mean 150 s; ring time 2 s; wrap-up 10 s), through the real ``EngineCore`` (``acd
simulate``). Once without callbacks, once with ``exits: {max_ewt: X, action: {to:
callback}}``: a caller whose sure expected wait at entry is above X is offered a
callback; 80 % take it (12 s to confirm), the customer answers 90 % of callbacks (8 s of
ringing), a customer not reached is tried again after 120 s, at most 3 times. Printed:
abandon rate and SL side by side (the callbacks' answers count in SL with their whole
wait from the first entry: a callback is never "within target"), ASA, and the callbacks'
figures.
"""

from __future__ import annotations

import argparse
from typing import Any

from acd.config import Config
from sim import simulate
from sim.scenario import Scenario


def config(ewt: float | None) -> Config:
    queue: dict[str, Any] = {"id": "consult", "skills": {"consult": 1}, "sl_target": 20,
                             "wrap_up": 10, "expected_handle_time": 180}
    raw: dict[str, Any] = {
        "timezone": "UTC", "engine": {"explain_offers": False},
        "queues": [queue],
        "agents": [{"id": f"a{i}", "skills": {"consult": 1}} for i in range(14)],
    }
    if ewt is not None:
        queue["exits"] = {"max_ewt": ewt, "action": {"to": "callback"}}
        raw["callbacks"] = {"attempts": 3, "retry_after": 120}
    return Config.model_validate(raw)


def scenario(seed: int) -> Scenario:
    return Scenario.model_validate({
        "seed": seed, "ring_time": 2, "warmup": 0,
        "callback_accept": 0.8, "callback_confirm_time": 12,
        "callback_answer_probability": 0.9, "callback_ring_time": 8,
        "queues": {"consult": {
            "arrivals": [{"from": "09:00", "to": "11:00", "calls_per_hour": 330},
                         {"from": "11:00", "to": "17:00", "calls_per_hour": 210}],
            "handle_time": {"distribution": "exponential", "mean": 180},
            "patience": {"mean": 150}}},
    })


def run(days: int, ewt: float | None) -> dict[str, float]:
    totals: dict[str, float] = {}
    for seed in range(1, days + 1):
        result = simulate(config(ewt), scenario(seed))
        f = result.queues["consult"].figures.to_dict()
        for key in ("offered", "answered", "answered_within_target", "abandoned",
                    "abandoned_after_target", "callbacks_offered", "callbacks_requested",
                    "callbacks_completed", "callbacks_failed"):
            totals[key] = totals.get(key, 0) + (f.get(key) or 0)
        totals["wait_answered"] = totals.get("wait_answered", 0) + \
            (f["asa"] or 0) * f["answered"]
        if f.get("callback_delay_mean") is not None:
            totals["cb_delay"] = totals.get("cb_delay", 0) + \
                f["callback_delay_mean"] * f["callbacks_completed"]
        if f.get("callback_promised_ewt_mean") is not None:
            totals["cb_ewt"] = totals.get("cb_ewt", 0) + \
                f["callback_promised_ewt_mean"] * f["callbacks_completed"]
    return totals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--ewt", type=float, default=120.0)
    args = ap.parse_args()
    rows = [("without callbacks", run(args.days, None)),
            (f"callback offered at EWT > {args.ewt:g} s", run(args.days, args.ewt))]
    print("| | offered | answered | abandoned | abandon rate | SL ≤20 s | ASA | "
          "callbacks offered / taken / reached / failed | callback delay (mean) | "
          "EWT told (mean) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in rows:
        handled = t["answered"] + t["abandoned"]
        sl_base = t["answered"] + t["abandoned_after_target"]
        completed = t.get("callbacks_completed", 0)
        print(f"| {name} | {t['offered']:.0f} | {t['answered']:.0f} | {t['abandoned']:.0f} "
              f"| {100 * t['abandoned'] / handled:.1f} % "
              f"| {100 * t['answered_within_target'] / sl_base:.1f} % "
              f"| {t['wait_answered'] / t['answered']:.0f} s "
              f"| {t.get('callbacks_offered', 0):.0f} / {t.get('callbacks_requested', 0):.0f}"
              f" / {completed:.0f} / {t.get('callbacks_failed', 0):.0f} "
              f"| {(t['cb_delay'] / completed) if completed else 0:.0f} s "
              f"| {(t['cb_ewt'] / completed) if completed else 0:.0f} s |")


if __name__ == "__main__":
    main()
