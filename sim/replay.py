"""``acd replay``: a recorded day through the real routing core, with another config.

::

    acd replay --from 2026-12-01 --to 2026-12-01 --config new.yaml [--shifts plan.yaml]

What is taken from the history database (``acd.runtime.history``), per local day:

* **arrivals** — every call's first entry (time, queue it entered, caller number, region,
  segment, DID, IVR choice): the callers come again at the same moments;
* **talk** — an answered call keeps its recorded talk time; a call that was not answered
  but is in the replay gets one drawn from its queue's recorded talk times;
* **patience, censored data handled honestly** — a caller who abandoned after waiting w
  seconds had patience w; a caller answered after w had patience *more than* w, unknown
  by how much. Per queue the patience distribution is the Kaplan–Meier estimate over
  both (abandons are events, answers are censored); an answered caller's patience is
  drawn from it *conditional on exceeding its recorded wait* (past the last event the
  estimate says nothing: that caller waits for ever);
* **staffing** — each agent's signed-in spans from the agent-state history (shifts) and
  its pauses (breaks, with their reasons; ring-no-answer pauses are left to the replay);
  agents of the new config with no history get ``--shifts`` (a YAML like the simulate
  scenario's ``shifts:``), else the span of the day's calls;
* **ring time and ring-no-answer** — the median recorded ring time of answered offers;
  the recorded share of agent offers not taken.

The replay runs :class:`sim.simulator.Simulation` — the real :class:`EngineCore` of the
new config — and its facts build records with the same :class:`acd.history.RecordBuilder`;
both sides are summed by :mod:`acd.history.rollup` (the live figures' formulas), so
"what really happened" and "what would have happened" are measured the same way.

**Self-check:** replaying a day with its own configuration reproduces its figures;
``tests/unit/test_replay.py`` does it on a generated day where the truth is known, and
``benchmarks/RESULTS.md`` states the error.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import timedelta
from typing import Any

from acd.config import Config, ConfigError, load_config
from acd.domain import AgentStatus, CallArrived, CloseCall, EngineCore, Event, Fact
from acd.domain import SetAgentStatus as SetStatus
from acd.domain.effects import Effect
from acd.history import RecordBuilder
from acd.history.periods import day_range
from acd.history.rollup import Totals, rollup
from sim.scenario import HandleTime, QueueScenario, Scenario, Shift, day_epoch
from sim.simulator import _APPLY, _ARRIVE, _PATIENCE, Simulation, _SimCall

# -- what the database tells -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One caller of a recorded day (times: seconds from local midnight)."""

    at: float
    queue: str
    caller: str = ""
    region: str = ""
    region_known: bool = False
    region_source: str = ""
    segment: str = ""
    did: str = ""
    menu_choice: str = ""
    outcome: str = ""
    wait: float = 0.0
    talk: float | None = None
    #: A caller who abandoned: the wait (an observed patience); else None.
    patience: float | None = None


@dataclass(slots=True)
class RecordedDay:
    day: Date
    calls: list[RecordedCall]
    #: agent → signed-in spans (seconds from local midnight).
    shifts: dict[str, list[tuple[float, float]]]
    #: agent → (start, end, reason) of its pauses (ring-no-answer pauses left out).
    pauses: dict[str, list[tuple[float, float, str]]]
    ring_time: float
    no_answer_probability: float
    rona_recovery: float
    #: The day's records (as the database has them): what really happened.
    rows: list[dict[str, Any]] = field(default_factory=list)


def _merge(spans: Iterable[tuple[float, float]], gap: float = 1.0) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def recorded_day(rows: Sequence[Mapping[str, Any]], intervals: Sequence[Mapping[str, Any]],
                 day: Date, config: Config) -> RecordedDay:
    """A day's callers, staffing and agent behaviour from its records and intervals."""
    midnight = day_epoch(config, day)
    end_of_day = midnight + 86_400
    rona_reason = config.engine.rona_pause_reason
    calls = []
    for r in sorted(rows, key=lambda r: (r["entry_time"], r["call_id"])):
        if not r.get("offered", True) and r["outcome"] != "closed":
            continue  # a transfer's further leg: the same caller
        answered = r.get("answered_at") is not None
        calls.append(RecordedCall(
            float(r["entry_time"]) - midnight, str(r.get("first_queue") or r["queue"]),
            str(r.get("caller") or ""), str(r.get("region") or ""),
            bool(r.get("region_known")), str(r.get("region_source") or ""),
            str(r.get("segment") or ""), str(r.get("did") or ""),
            str(r.get("menu_choice") or ""), str(r["outcome"]), float(r.get("wait") or 0.0),
            float(r["talk"]) if answered and r.get("talk") is not None else None,
            float(r.get("wait") or 0.0) if r["outcome"] == "abandoned" else None))
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    pauses: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    recoveries = []
    for iv in intervals:
        start = max(float(iv["start"]), midnight) - midnight
        end = min(float(iv["end"]), end_of_day) - midnight
        if end <= start or iv["status"] == "logged_out":
            continue
        spans[str(iv["agent"])].append((start, end))
        if iv["status"] == "paused" and iv["state"] == "idle":
            if iv["reason"] == rona_reason:
                recoveries.append(end - start)
            else:
                pauses[str(iv["agent"])].append((start, end, str(iv["reason"])))
    rings, offered, not_taken = [], 0, 0
    for r in rows:
        for o in r.get("offers") or ():
            if o["kind"] != "agent":
                continue
            offered += 1
            if o["outcome"] in ("rona", "busy"):
                not_taken += 1
            elif o["outcome"] == "answered" and o.get("ended") is not None:
                rings.append(float(o["ended"]) - float(o["at"]))
    return RecordedDay(
        day, calls, {a: _merge(s) for a, s in spans.items()},
        {a: sorted(p) for a, p in pauses.items()},
        statistics.median(rings) if rings else 0.0,
        min(0.99, not_taken / offered) if offered else 0.0,
        statistics.median(recoveries) if recoveries else 30.0, [dict(r) for r in rows])


# -- patience: Kaplan–Meier over abandons (events) and answers (censored) -----------------


class Patience:
    """The patience distribution of one queue's callers (Kaplan–Meier)."""

    def __init__(self, abandons: Iterable[float], answered: Iterable[float]) -> None:
        events = sorted(abandons)
        censored = sorted(answered)
        times = sorted(set(events))
        self.times: list[float] = []
        self.survival: list[float] = []
        s = 1.0
        for t in times:
            at_risk = (len(events) - bisect.bisect_left(events, t)) + \
                (len(censored) - bisect.bisect_left(censored, t))
            died = bisect.bisect_right(events, t) - bisect.bisect_left(events, t)
            if at_risk:
                s *= 1.0 - died / at_risk
            self.times.append(t)
            self.survival.append(s)

    def surv(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        return self.survival[i - 1] if i else 1.0

    def draw_beyond(self, wait: float, rng: random.Random) -> float:
        """A patience drawn given that it exceeds ``wait``; ``inf`` past the estimate."""
        base = self.surv(wait)
        if base <= 0:
            return wait
        u = rng.random() * base
        i = bisect.bisect_right(self.times, wait)
        while i < len(self.times):
            if self.survival[i] <= u:
                return self.times[i]
            i += 1
        return math.inf


# -- the replay ---------------------------------------------------------------------------


class _Replay(Simulation):
    """A Simulation whose callers are the recorded ones (``_ARRIVE`` payload: an index)."""

    def __init__(self, config: Config, scenario: Scenario, day: RecordedDay,
                 talks: Mapping[str, Sequence[float]], patience: Mapping[str, Patience],
                 *, seed: int, on_apply: Any) -> None:
        super().__init__(config, scenario, seed=seed, on_apply=on_apply)
        self.day = day
        self._talks = talks
        self._patience_km = patience
        self._rng = random.Random(f"{seed}/replay")
        self._queues = {q.id for q in config.queues}
        self._default_queue = config.default_queue or config.queues[0].id
        self._segments = config.segment_table()

    def _schedule_day(self) -> None:
        super()._schedule_day()  # shifts (scenario.shifts), no random arrivals
        self._pending_arrivals = 0
        for i, call in enumerate(self.day.calls):
            self._push(call.at, _ARRIVE, i)
            self._pending_arrivals += 1
        for agent, pauses in self.day.pauses.items():
            if agent not in self._agents:
                continue
            for start, end, reason in pauses:
                self._push(start, _APPLY, SetStatus(agent, AgentStatus.PAUSED,
                                                    self._clock(start), reason))
                self._push(end, _APPLY, SetStatus(agent, AgentStatus.AVAILABLE,
                                                  self._clock(end)))

    def _arrive(self, payload: Any) -> None:
        rec = self.day.calls[int(payload)]
        self._pending_arrivals -= 1
        now, clock = self._now, self._clock()
        queue = rec.queue if rec.queue in self._queues else self._default_queue
        call_id = f"r{int(payload)}"
        if rec.talk is not None:
            talk = rec.talk
        else:
            pool = self._talks.get(queue) or [t for ts in self._talks.values() for t in ts]
            talk = self._rng.choice(pool) if pool else 60.0
        if rec.patience is not None:
            patience: float | None = rec.patience
        else:
            km = self._patience_km.get(rec.queue)
            patience = km.draw_beyond(rec.wait, self._rng) if km is not None else None
        segment = self._segments.classify(rec.caller) if rec.caller else None
        self._calls[call_id] = _SimCall(queue, now, talk, True)
        effects = self._apply(CallArrived(
            call_id, queue, rec.caller, clock, clock,
            priority_boost=segment.priority if segment else 0,
            segment=segment.segment_id if segment else rec.segment, region=rec.region,
            region_known=rec.region_known, region_source=rec.region_source, did=rec.did,
            menu_choice=rec.menu_choice))
        if any(isinstance(e, CloseCall) for e in effects):
            self._calls.pop(call_id, None)
            return
        if patience is not None and math.isfinite(patience) \
                and call_id in self.core.calls:
            self._push(now + patience, _PATIENCE, call_id)


def _shift_models(spans: Mapping[str, Sequence[tuple[float, float]]]) -> dict[str, list[Shift]]:
    def clock(s: float) -> str:
        s = min(max(0.0, s), 86_400.0)
        return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"

    out: dict[str, list[Shift]] = {}
    for agent, ss in spans.items():
        shifts = []
        for start, end in ss:
            a, b = clock(start), clock(end)
            if a != b:
                shifts.append(Shift.model_validate({"from": a, "to": b}))
        if shifts:
            out[agent] = shifts
    return out


@dataclass(slots=True)
class ReplayResult:
    day: Date
    actual: dict[str, Totals]
    replayed: dict[str, Totals]
    unanswered_at_end: int

    def to_dict(self) -> dict[str, Any]:
        def side(t: Totals) -> dict[str, Any]:
            return {"offered": t.offered, "answered": t.answered,
                    "abandoned": t.abandoned, "closed": t.closed,
                    "overflowed": t.overflowed, "partner_answered": t.partner_answered,
                    **t.figures()}

        return {"day": self.day.isoformat(), "unanswered_at_end": self.unanswered_at_end,
                "queues": {q: {"actual": side(self.actual.get(q, Totals())),
                               "replay": side(self.replayed.get(q, Totals()))}
                           for q in sorted(set(self.actual) | set(self.replayed))}}


def replay_day(day: RecordedDay, config: Config, *, seed: int = 1,
               shifts: Mapping[str, Sequence[tuple[float, float]]] | None = None,
               ) -> ReplayResult:
    """Replay one recorded day with ``config`` (the new one, or its own)."""
    talks: dict[str, list[float]] = defaultdict(list)
    waits_ans: dict[str, list[float]] = defaultdict(list)
    waits_ab: dict[str, list[float]] = defaultdict(list)
    for c in day.calls:
        if c.talk is not None:
            talks[c.queue].append(c.talk)
            waits_ans[c.queue].append(c.wait)
        elif c.patience is not None:
            waits_ab[c.queue].append(c.patience)
    patience = {q: Patience(waits_ab.get(q, ()), waits_ans.get(q, ()))
                for q in set(waits_ab) | set(waits_ans)}
    agents = {a.id for a in config.agents}
    first = min((c.at for c in day.calls), default=0.0)
    last = max((c.at for c in day.calls), default=0.0)
    spans = {a: s for a, s in day.shifts.items() if a in agents}
    for agent, s in (shifts or {}).items():
        if agent in agents:
            spans[agent] = list(s)
    for agent in agents - set(spans):
        spans[agent] = [(max(0.0, first - 60), min(86_400.0, last + 3600))]
    queues = {q.id: QueueScenario.model_validate({
        "arrivals": [{"from": "00:00", "to": "24:00", "calls_per_hour": 0}],
        "handle_time": HandleTime(distribution="constant", mean=60)}) for q in config.queues}
    ring = min(day.ring_time, config.engine.ring_timeout - 0.5)
    scenario = Scenario(seed=seed, date=day.day, ring_time=max(0.0, ring),
                        no_answer_probability=day.no_answer_probability,
                        rona_recovery=day.rona_recovery, queues=queues,
                        shifts=_shift_models(spans))
    builder = RecordBuilder({q.id: float(q.sl_target) for q in config.queues})

    def hook(core: EngineCore, event: Event, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Fact):
                builder.observe(eff, event.now)

    sim = _Replay(config, scenario, day, talks, patience, seed=seed, on_apply=hook)
    sim.run()
    replayed_rows = {}
    for rec in builder.take()[0]:
        replayed_rows[(rec.call_id, rec.leg)] = rec.to_row()
    unanswered = sum(1 for r in replayed_rows.values() if not r["final"])
    actual = _by_queue(rollup(day.rows))
    replayed = _by_queue(rollup(replayed_rows.values()))
    return ReplayResult(day.day, actual, replayed, unanswered)


def _by_queue(sums: Mapping[tuple[str, str], Totals]) -> dict[str, Totals]:
    out = {k: t for (dim, k), t in sums.items() if dim == "queue"}
    out["*"] = sums.get(("all", ""), Totals())
    return out


def replay(db: Any, config_now: Config, config_new: Config, first: Date, last: Date, *,
           seed: int = 1, shifts: Mapping[str, Sequence[tuple[float, float]]] | None = None,
           ) -> list[ReplayResult]:
    """Replay each local day of [first, last] from the database ``db``."""
    results = []
    d = first
    while d <= last:
        start, end = day_range(d, d, config_now.timezone)
        rows = db.calls_between(start, end, limit=10_000_000)
        intervals = db.intervals_between(start, end)
        day = recorded_day(rows, intervals, d, config_now)
        results.append(replay_day(day, config_new, seed=seed, shifts=shifts))
        d += timedelta(days=1)
    return results


# -- output --------------------------------------------------------------------------------

_COLUMNS = (("offered", "offered", "{:.0f}"), ("answered", "answered", "{:.0f}"),
            ("abandoned", "abandoned", "{:.0f}"), ("SL", "service_level", "{:.1%}"),
            ("ASA s", "asa", "{:.1f}"), ("aband.", "abandon_rate", "{:.1%}"),
            ("partner", "partner_share", "{:.1%}"))


def table(results: Sequence[ReplayResult]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.day}  (actual | replay)")
        head = "queue".ljust(12) + "".join(f"{name:>22}" for name, _, _ in _COLUMNS)
        lines.append(head)
        data = r.to_dict()["queues"]
        for q, sides in data.items():
            cells = []
            for _, key, fmt in _COLUMNS:
                a, b = sides["actual"][key], sides["replay"][key]
                fa = "-" if a is None else fmt.format(a)
                fb = "-" if b is None else fmt.format(b)
                cells.append(f"{fa:>10} | {fb:<9}")
            lines.append(q.ljust(12) + "".join(f"{c:>22}" for c in cells))
        if r.unanswered_at_end:
            lines.append(f"  ({r.unanswered_at_end} replayed calls still waiting at the end)")
    return "\n".join(lines)


def load_shifts(path: str) -> dict[str, list[tuple[float, float]]]:
    """``agent: [{from: "08:00", to: "12:00"}, …]`` (the simulate scenario's format)."""
    import yaml

    from sim.scenario import parse_clock

    with open(path, encoding="utf-8") as f:
        raw: dict[str, Any] = yaml.safe_load(f) or {}
    plan: dict[str, Any] = raw.get("shifts", raw)
    return {str(a): [(parse_clock(s["from"]), parse_clock(s["to"])) for s in ss]
            for a, ss in plan.items()}


def cmd_replay(args: argparse.Namespace) -> int:
    """The days recorded in the database of ``--config`` (or ``--db``), replayed with
    ``--config``: the configuration to try (its time zone is the centre's)."""
    from acd.runtime.history.db import HistoryDB

    try:
        config = load_config(args.config)
        if config.history is None and not args.db:
            raise ConfigError([f"{args.config}: no history section (give --db URL)"])
        url = args.db or config.history.database_url()  # type: ignore[union-attr]
        shifts = load_shifts(args.shifts) if args.shifts else None
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    db = HistoryDB(url, timezone=config.timezone)
    try:
        first = Date.fromisoformat(args.first)
        last = Date.fromisoformat(args.last) if args.last else first
        results = replay(db, config, config, first, last, seed=args.seed, shifts=shifts)
    finally:
        db.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(table(results))
    return 0


def add_replay_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay recorded days through the routing core "
                       "with a (new) config; prints actual next to replayed figures")
    p.add_argument("--config", "-c", required=True,
                   help="the config to replay with (its history.url is the database)")
    p.add_argument("--db", help="database URL (default: the config's history.url)")
    p.add_argument("--from", dest="first", required=True, help="first local day")
    p.add_argument("--to", dest="last", help="last local day (default: the first)")
    p.add_argument("--shifts", help="YAML shift plan for agents (overrides the recorded)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)
