"""Several independent simulated days of one scenario, and their figures with confidence
intervals (:mod:`sim.stats`): per queue, over all callers, per region, per hour of
arrival, per site.

Replication ``k`` (0 … n−1) is the day simulated with seed ``seed + k``: its arrivals,
talk times, patience, regions and ring-no-answers come from random streams of that seed
only, so the days are independent. Each figure is computed per day with the one
definition of :mod:`acd.domain.figures` and then estimated over the days.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from acd.config import Config, SiteKind
from sim.scenario import Scenario
from sim.simulator import AgentTime, QueueFigures, SimResult, SiteFigures, occupancy, simulate
from sim.stats import CONFIDENCE, Estimate, estimate

#: A tally's figures, each computed per day (counts, then ratios and times).
TALLY_FIGURES: dict[str, Callable[[QueueFigures], float | None]] = {
    "callers": lambda f: f.callers,
    "offered": lambda f: f.offered,
    "answered": lambda f: f.answered,
    "abandoned": lambda f: f.abandoned,
    "closed": lambda f: f.closed,
    "exits": lambda f: f.exits,
    "exits_ended": lambda f: f.exits_ended,
    "transferred_in": lambda f: f.transferred_in,
    "sent_away": lambda f: f.sent_away,
    "overflowed": lambda f: f.overflowed,
    "answered_by_partner": lambda f: f.answered_by_partner,
    "rona": lambda f: f.rona,
    "unanswered_at_end": lambda f: f.unanswered_at_end,
    "service_level": lambda f: f.service_level,
    "service_level_all": lambda f: f.service_level_all,
    "asa": lambda f: f.asa,
    "abandon_rate": lambda f: f.abandon_rate,
    "sent_away_rate": lambda f: f.sent_away_rate,
    "p_wait": lambda f: f.p_wait,
    "aht": lambda f: f.aht,
}

#: Agents' time, per day.
TIME_FIGURES: dict[str, Callable[[AgentTime], float | None]] = {
    "staffed_hours": lambda t: t.staffed / 3600.0,
    "busy_hours": lambda t: t.busy / 3600.0,
    "answered": lambda t: t.answered,
    "occupancy": occupancy,
}

#: A partner site's figures, per day.
SITE_FIGURES: dict[str, Callable[[SiteFigures], float | None]] = {
    "offered": lambda s: s.offered,
    "answered": lambda s: s.answered,
    "rejected": lambda s: s.rejected,
    "utilisation": lambda s: s.utilisation,
    "peak": lambda s: s.peak,
}

Figures = dict[str, Estimate | None]
_T = TypeVar("_T")


def _figures(items: Sequence[_T], table: Mapping[str, Callable[[_T], float | None]],
             confidence: float) -> Figures:
    return {name: estimate((f(x) for x in items), confidence) for name, f in table.items()}


@dataclass(frozen=True, slots=True)
class Replications:
    """``n`` independent days of one scenario; figures with their intervals."""

    results: tuple[SimResult, ...]
    #: Own sites of the config (their agents' time is in ``SimResult.groups``).
    own_sites: tuple[str, ...] = ()
    #: Group (own site) → how many agents are in it.
    group_sizes: Mapping[str, int] = field(default_factory=dict)
    confidence: float = CONFIDENCE

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.results]

    @property
    def first(self) -> SimResult:
        return self.results[0]

    # -- per dimension -----------------------------------------------------------------

    def _tally(self, pick: Callable[[SimResult], QueueFigures | None]) -> Figures:
        days = [pick(r) or QueueFigures(None) for r in self.results]
        return _figures(days, TALLY_FIGURES, self.confidence)

    def queue(self, queue_id: str) -> Figures:
        out = self._tally(lambda r: r.queues[queue_id].figures)
        out["occupancy"] = estimate(
            (occupancy(r.queues[queue_id].occupancy) for r in self.results), self.confidence)
        return out

    def callers(self) -> Figures:
        out = self._tally(lambda r: r.callers)
        out["occupancy"] = estimate((occupancy(r.overall) for r in self.results),
                                    self.confidence)
        return out

    def region_ids(self) -> list[str]:
        return sorted({k for r in self.results for k in r.regions})

    def region(self, region: str) -> Figures:
        return self._tally(lambda r: r.regions.get(region))

    def hour_ids(self) -> list[int]:
        return sorted({k for r in self.results for k in (*r.hours, *r.hour_agents)})

    def hour(self, hour: int) -> Figures:
        out = self._tally(lambda r: r.hours.get(hour))
        times = [r.hour_agents.get(hour) or AgentTime() for r in self.results]
        out["agents"] = estimate((t.staffed / 3600.0 for t in times), self.confidence)
        out["occupancy"] = estimate((occupancy(t) for t in times), self.confidence)
        return out

    def partner_ids(self) -> list[str]:
        return list(self.first.sites)

    def partner(self, site_id: str) -> Figures:
        return _figures([r.sites[site_id] for r in self.results], SITE_FIGURES,
                        self.confidence)

    def group(self, group: str) -> Figures:
        return _figures([r.groups.get(group) or AgentTime() for r in self.results],
                        TIME_FIGURES, self.confidence)

    def agent_time(self, days: Sequence[AgentTime]) -> Figures:
        """Agents' time figures over the given days' times (one per day)."""
        return _figures(days, TIME_FIGURES, self.confidence)

    def engine(self) -> dict[str, Any]:
        """Engine-internal figures (``--verbose``): core events and wall time."""
        return {"events": sum(r.events for r in self.results),
                "wall_seconds": sum(r.wall_seconds for r in self.results),
                "core_stats": [r.core_stats for r in self.results]}

    def to_dict(self, *, verbose: bool = False) -> dict[str, Any]:
        """Every figure as ``{mean, half_width, low, high, n}`` (``None``: undefined on
        every day); the Erlang figures where they apply."""
        def out(figs: Figures) -> dict[str, Any]:
            return {k: None if v is None else v.to_dict() for k, v in figs.items()}

        first = self.first
        data: dict[str, Any] = {
            "date": first.date.isoformat(), "replications": self.n, "seeds": self.seeds,
            "confidence": self.confidence, "method": METHOD_EN,
            "start": first.start, "measure_from": first.measure_from,
            "end": max(r.end for r in self.results),
            "queues": {
                qid: {"simulated": out(self.queue(qid)), "pool": list(q.pool),
                      "single_skill": q.single_skill, "no_erlang": q.no_erlang,
                      "sl_target": q.figures.sl_target,
                      "erlang": None if q.erlang is None else q.erlang.to_dict()}
                for qid, q in first.queues.items()},
            "callers": out(self.callers()),
            "regions": {g: out(self.region(g)) for g in self.region_ids()},
            "hours": {f"{h:02d}": out(self.hour(h)) for h in self.hour_ids()},
            "sites": {
                **{s: {"kind": "own", **out(self.group(s))} for s in self.own_sites
                   if s in first.groups},
                **{s: {"kind": "partner", "capacity": first.sites[s].capacity,
                       **out(self.partner(s))} for s in self.partner_ids()}},
            "groups": {g: out(self.group(g)) for g in sorted(first.groups)},
        }
        if verbose:
            data["engine"] = self.engine()
        return data


METHOD_EN = ("independent replications: each figure is computed on each simulated day "
             "(its own random seed) and given as the mean over the days ± the half-width "
             "of its 95 % confidence interval, t distribution with n − 1 degrees of "
             "freedom (mean ± t·s/√n)")


def replicate(config: Config, scenario: Scenario, *, replications: int | None = None,
              seed: int | None = None,
              confidence: float = CONFIDENCE) -> Replications:
    """Simulate ``replications`` (default: the scenario's) independent days, seeds
    ``seed`` (default: the scenario's), ``seed + 1`` …"""
    n = scenario.replications if replications is None else replications
    if n < 1:
        raise ValueError("at least one replication")
    base = scenario.seed if seed is None else seed
    results = tuple(simulate(config, scenario, seed=base + k) for k in range(n))
    own = tuple(s.id for s in config.sites if s.kind is SiteKind.OWN)
    sizes: dict[str, int] = {}
    for a in config.agents:
        for g in a.groups:
            sizes[g] = sizes.get(g, 0) + 1
    return Replications(results, own, sizes, confidence)

