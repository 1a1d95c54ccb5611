"""Prometheus metrics: a custom Collector over the engine's snapshot at scrape time.

Nothing here touches the global registry: :class:`EngineCollector` is registered on the
registry the caller passes in (``api.app.create_app(..., registry=...)``), so an app can
be built twice in one process (tests) without "Duplicated timeseries".

Gauges and counters are read from the engine's typed read views
(:class:`acd.domain.views.LiveView`) and the core's figures
(:class:`acd.domain.figures.LiveStats`) when Prometheus scrapes; the two histograms
cannot be rebuilt from a snapshot, so they are accumulated from the engine's hooks:

* ``acd_call_wait_seconds{queue,outcome}`` — each call's wait when it was answered or
  abandoned (facts ``CallConnected`` / ``CallAbandoned``);
* ``acd_routing_decision_seconds{event}`` — the time ``EngineCore.apply`` took for one
  inbox event (the routing decision included), by event type.

Label values are bounded: queue ids, site ids and agent presences come from the config
and fixed enums, regions from the 34 provinces + ``CN-UNKNOWN`` (anything else is counted
as ``CN-UNKNOWN``), outcomes and event types from fixed sets. A call id, caller number or
agent id is never a label.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from acd.domain import CallState, Event, Fact
from acd.domain.ewt import Sweep
from acd.domain.facts import (
    CallAbandoned,
    CallCompleted,
    CallConnected,
    CallReleased,
    CallWaiting,
)
from acd.domain.figures import Window
from acd.domain.views import PRESENCES, presence_of
from routing.regions import UNKNOWN_REGION, is_region_code

if TYPE_CHECKING:
    from acd.runtime.engine import Engine

#: Waits (seconds): fine around typical service-level targets (10–30 s).
WAIT_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
#: Time in ``EngineCore.apply`` for one event (seconds): tens of µs to tens of ms.
DECISION_BUCKETS: tuple[float, ...] = (
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1,
)
OUTCOMES = ("answered", "abandoned")
#: Expected-wait errors (seconds).
EWT_ERROR_BUCKETS: tuple[float, ...] = (5, 10, 15, 30, 60, 90, 120, 180, 300, 600)
#: Callers whose entry estimate is kept at most (until answered or gone).
MAX_TRACKED = 100_000
AGENT_STATUSES = ("logged_out", "available", "paused")
AGENT_STATES = ("idle", "ringing", "on_call", "wrap_up")
SITE_OUTCOMES = ("offered", "answered", "rejected")
REGION_OUTCOMES = ("offered", "answered", "abandoned", "overflowed")
#: Bound on the event-type label: types beyond this many are counted as "other".
MAX_EVENT_TYPES = 32


class _Histogram:
    """Cumulative-bucket histogram keyed by a bounded label tuple."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        #: labels → (per-bucket counts incl. +Inf, sum)
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        entry = self.series.get(labels)
        if entry is None:
            entry = ([0] * (len(self.bounds) + 1), [0.0])
            self.series[labels] = entry
        counts, total = entry
        counts[bisect.bisect_left(self.bounds, value)] += 1
        total[0] += value

    def family(self, name: str, doc: str, labelnames: Sequence[str],
               preset: Iterable[tuple[str, ...]] = ()) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=list(labelnames))
        empty = ([0] * (len(self.bounds) + 1), [0.0])
        keys = list(dict.fromkeys([*preset, *self.series]))
        for labels in keys:
            counts, total = self.series.get(labels, empty)
            cumulative, running = [], 0
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                running += count
                cumulative.append((_le(bound), float(running)))
            fam.add_metric(list(labels), cumulative, total[0])
        return fam


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class EngineCollector:
    """Metric families for one engine; ``attach()`` hooks it to the engine's events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        settings = engine.settings
        self.queue_ids = list(settings.queues)
        self.sl_targets = {q.id: q.sl_target for q in settings.queues.values()}
        self.waits = _Histogram(WAIT_BUCKETS)
        #: |expected wait told at entry - actual wait| of answered callers.
        self.ewt_errors = _Histogram(EWT_ERROR_BUCKETS)
        #: Callers who joined since the last replay (when they joined, their entry
        #: time), then the total wait the first replay after their entry told them
        #: (call → seconds from entry).
        self._joined: dict[str, tuple[float, float]] = {}
        self._entry_ewt: dict[str, float] = {}
        self.decisions = _Histogram(DECISION_BUCKETS)
        self._event_types: set[str] = set()
        self.site_ids = list(settings.sites)
        self.site_capacity = {s.id: s.capacity for s in settings.sites.values()}
        self.policy_regions = list(settings.regions.policy_regions)

    # -- hooks ---------------------------------------------------------------------------

    def attach(self) -> None:
        self.engine.fact_hooks.append(self.on_fact)
        self.engine.apply_hooks.append(self.on_apply)
        self.engine.estimates.hooks.append(self.on_sweep)

    def detach(self) -> None:
        for hooks, fn in ((self.engine.fact_hooks, self.on_fact),
                          (self.engine.apply_hooks, self.on_apply),
                          (self.engine.estimates.hooks, self.on_sweep)):
            while fn in hooks:
                hooks.remove(fn)  # type: ignore[arg-type]

    def on_fact(self, fact: Fact, now: float) -> None:
        if isinstance(fact, CallWaiting):
            if not fact.reentry and len(self._entry_ewt) + len(self._joined) < MAX_TRACKED:
                self._joined[fact.call_id] = (now, fact.entry_time)
            return
        if isinstance(fact, CallAbandoned | CallReleased | CallCompleted | CallConnected):
            self._joined.pop(fact.call_id, None)
        if isinstance(fact, CallAbandoned | CallReleased | CallCompleted):
            self._entry_ewt.pop(fact.call_id, None)
        if isinstance(fact, CallConnected):
            told = self._entry_ewt.pop(fact.call_id, None)
            if told is not None and fact.queue in self.sl_targets:
                error = told - fact.wait
                self.ewt_errors.observe((fact.queue, "over" if error >= 0 else "under"),
                                        abs(error))
            outcome = "answered"
        elif isinstance(fact, CallAbandoned):
            outcome = "abandoned"
        else:
            return
        if fact.queue in self.sl_targets:
            self.waits.observe((fact.queue, outcome), max(0.0, float(fact.wait)))

    def on_sweep(self, sweep: Sweep) -> None:
        """The first replay after a caller joined tells its wait (what its first
        announcement says): kept as seconds from its entry — the first-entry time its
        actual wait (``CallConnected.wait``) counts from, not the moment it joined the
        engine's line (Asterisk answered it ≈ 0.5 s before) — compared when answered."""
        joined, self._joined = self._joined, {}
        later: dict[str, tuple[float, float]] = {}
        for call_id, (at, entry) in joined.items():
            if at > sweep.now:  # joined while this replay ran: the next one tells
                later[call_id] = (at, entry)
                continue
            est = sweep.calls.get(call_id)
            if est is not None and est.sure and est.seconds is not None:
                self._entry_ewt[call_id] = sweep.now - entry + est.seconds
        self._joined.update(later)

    def on_apply(self, event: Event, seconds: float) -> None:
        kind = type(event).__name__
        if kind not in self._event_types:
            if len(self._event_types) >= MAX_EVENT_TYPES:
                kind = "other"
            else:
                self._event_types.add(kind)
        self.decisions.observe((kind,), seconds)

    # -- Collector -----------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Names only (so a registry refuses a second collector with the same names)."""
        yield from self._families(False, 0.0)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(True, self.engine.clock())

    def _families(self, live: bool, now: float) -> Iterator[Metric]:
        qids = self.queue_ids if live else []
        figures = self.engine.core.figures
        view = self.engine.view

        # counters: everything this process saw since it started
        totals = {qid: figures.total(qid) for qid in qids}
        for name, attr, doc in (
            ("acd_calls_offered", "offered", "Calls that entered the queue."),
            ("acd_calls_answered", "answered", "Calls answered by an agent."),
            ("acd_calls_answered_within_target", "answered_within_target",
             "Calls answered within the queue's service-level target."),
            ("acd_calls_abandoned", "abandoned", "Callers who hung up while waiting."),
            ("acd_calls_closed", "closed", "Callers who reached the queue while closed."),
            ("acd_ring_no_answer", "rona", "Offers the agent did not answer."),
            ("acd_calls_transferred_in", "transferred_in",
             "Waiting calls moved into the queue (transfer or supervisor)."),
            ("acd_calls_transferred_out", "transferred_out",
             "Waiting calls moved out of the queue to another one."),
            ("acd_calls_overflowed", "overflowed",
             "Offers of the queue's calls to partner sites."),
            ("acd_calls_abandoned_after_target", "abandoned_after_target",
             "Callers who hung up after waiting longer than the target."),
            ("acd_calls_completed", "handled", "Answered calls that ended."),
            ("acd_talk_seconds", "talk", "Talk time of completed calls."),
            ("acd_wrap_up_seconds", "wrap_up", "Agent wrap-up time after calls."),
        ):
            yield _counter(name, doc, ["queue"],
                           (([q], float(getattr(c, attr))) for q, c in totals.items()))

        # live gauges
        core = self.engine.core
        yield _gauge("acd_calls_waiting", "Calls waiting in the queue now.", ["queue"],
                     (([q], float(view.waiting(q))) for q in qids))
        yield _gauge("acd_calls_active", "Calls ringing an agent (offered) or in conversation.",
                     ["queue", "state"],
                     (([q, st.value], float(core.live_count(q, st)))
                      for q in qids for st in (CallState.OFFERED, CallState.CONNECTED)))
        oldest = {q: view.oldest_entry(q) for q in qids}
        yield _gauge("acd_longest_wait_seconds",
                     "Wait of the longest-waiting call now (0: none waiting).", ["queue"],
                     (([q], max(0.0, now - t) if (t := oldest[q]) is not None else 0.0)
                      for q in qids))

        by_axes = {(s, t): 0 for s in AGENT_STATUSES for t in AGENT_STATES}
        presence: dict[str, str] = {}
        for a in (core.agents.values() if live else ()):
            axes = (a.status.value, a.state.value)
            if axes in by_axes:
                by_axes[axes] += 1
            presence[a.agent_id] = presence_of(a)
        yield _gauge("acd_agents", "Agents by status (their choice) and state (driven by the "
                     "engine).", ["status", "state"],
                     (([s, t], float(n)) for (s, t), n in (by_axes.items() if live else ())))
        rows: list[tuple[list[str], float]] = []
        for qid in qids:
            counts = dict.fromkeys(PRESENCES, 0)
            for aid in view.members.get(qid, ()):
                if aid in presence:
                    counts[presence[aid]] += 1
            rows += [([qid, p], float(n)) for p, n in counts.items()]
        yield _gauge("acd_queue_agents", "Agents able to take the queue's calls, by presence.",
                     ["queue", "presence"], rows)

        rows = []
        for qid in qids:
            for window in Window:
                sl = figures.window(qid, window, now).service_level
                if sl is not None:
                    rows.append(([qid, window.value], sl))
        yield _gauge("acd_service_level_ratio", "Answered within target / (answered + "
                     "abandoned after target), per window.", ["queue", "window"], rows)

        yield from self._site_families(live)

        ami = self.engine.ami
        yield GaugeMetricFamily("acd_ami_up", "1 when the AMI connection is up.",
                                value=1.0 if ami is not None and ami.connected else 0.0)
        yield GaugeMetricFamily("acd_engine_accepting", "1 when the engine takes calls.",
                                value=1.0 if self.engine.accepting else 0.0)
        yield GaugeMetricFamily(
            "acd_engine_active", "1 when this engine is the active one: it routes calls "
            "(with ha: it holds the lease). Summed over every engine it must be 1; 0 "
            "means callers get only the dialplan's app_queue fallback.",
            value=1.0 if self.engine.core.routing else 0.0)
        yield GaugeMetricFamily(
            "acd_store_loaded", "1 when the active engine has read the store; 0 while it "
            "takes calls from the config alone and writes nothing (store unreadable).",
            value=1.0 if self.engine.store_loaded else 0.0)
        yield GaugeMetricFamily("acd_inbox_events", "Events waiting in the engine's inbox.",
                                value=float(self.engine.inbox.qsize()))

        yield self.waits.family(
            "acd_call_wait_seconds", "Time callers waited, by how the wait ended.",
            ["queue", "outcome"], [(q, o) for q in qids for o in OUTCOMES])
        yield self.ewt_errors.family(
            "acd_ewt_error_seconds", "How far the expected wait told at entry was from the "
            "actual wait of answered callers (over: told longer; under: shorter).",
            ["queue", "direction"], [(q, d) for q in qids for d in ("over", "under")])
        yield _gauge("acd_expected_wait_seconds", "What a caller arriving now would wait "
                     "(queues where the estimate is sure).", ["queue"],
                     (([q], t) for q in qids
                      if (t := view.queue_ewt(q, now)) is not None))
        yield self.decisions.family(
            "acd_routing_decision_seconds", "Time the engine spent applying one event "
            "(state change and routing decision), by event type.", ["event"])


    def _site_families(self, live: bool) -> Iterator[Metric]:
        """Partner sites (configured ids) and regions (the 34 provinces + CN-UNKNOWN),
        read from the engine core's counters."""
        core = self.engine.core
        sites = self.site_ids if live else []
        site_stats = core.partners.stats if live else {}
        yield _gauge("acd_site_active_calls", "Calls offered to or connected with the site "
                     "now.", ["site"],
                     (([s], float(site_stats[s].active if s in site_stats else 0))
                      for s in sites))
        yield _gauge("acd_site_capacity", "Most calls sent to the site at once.", ["site"],
                     (([s], float(self.site_capacity[s])) for s in sites))
        rows: list[tuple[list[str], float]] = []
        for s in sites:
            st = site_stats.get(s)
            rows += [([s, outcome], float(getattr(st, outcome) if st else 0))
                     for outcome in SITE_OUTCOMES]
        yield _counter("acd_site_calls", "Calls offered to the site, answered by it, or "
                       "rejected (busy, no answer, unavailable).", ["site", "outcome"], rows)
        by_region: dict[str, list[int]] = {}
        if live:
            for code in self.policy_regions:
                by_region.setdefault(code, [0, 0, 0, 0])
            for code, rst in core.region_stats.items():
                label = code if is_region_code(code) else UNKNOWN_REGION
                acc = by_region.setdefault(label, [0, 0, 0, 0])
                for i, n in enumerate((rst.calls, rst.answered, rst.abandoned,
                                       rst.overflowed)):
                    acc[i] += n
        yield _counter("acd_region_calls", "Calls by the caller's province: offered, "
                       "answered (agent or partner), abandoned, overflowed (offers to "
                       "partners).", ["region", "outcome"],
                       (([code, outcome], float(n)) for code, counts in sorted(by_region.items())
                        for outcome, n in zip(REGION_OUTCOMES, counts, strict=True)))


def _counter(name: str, doc: str, labels: list[str],
             rows: Iterable[tuple[list[str], float]]) -> Metric:
    fam = CounterMetricFamily(name, doc, labels=labels)
    for values, v in rows:
        fam.add_metric(values, v)
    return fam


def _gauge(name: str, doc: str, labels: list[str],
           rows: Iterable[tuple[list[str], float]]) -> Metric:
    fam = GaugeMetricFamily(name, doc, labels=labels)
    for values, v in rows:
        fam.add_metric(values, v)
    return fam


def build_registry(engine: Engine, registry: CollectorRegistry | None = None,
                   ) -> tuple[CollectorRegistry, EngineCollector]:
    """A fresh registry (never the global one) with the engine's collector on it."""
    reg = registry if registry is not None else CollectorRegistry(auto_describe=False)
    collector = EngineCollector(engine)
    reg.register(collector)
    return reg, collector
