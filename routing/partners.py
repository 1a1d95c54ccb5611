"""Shared-partner routing: which partner site may take a waiting call, in what order.

Pure policy. A partner site covers provinces (ISO 3166-2:CN codes), offers some services
(queues), has opening hours (the caller passes which sites are open now) and a capacity
(max concurrent calls we send it; the caller passes how many are active).

Per region the company chooses the partner's role:

* **overflow** — own agents first; after ``overflow_after`` seconds of waiting the
  partners covering the caller's region are tried too;
* **primary** — the covering partners first (from the first second), own agents as
  backup.

After ``any_after`` seconds (if set) any partner offering the service may take the call,
wherever the caller is. Partners covering the caller's region always come first, then the
higher ``preference``, then the site id (a stable order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PartnerSite:
    site_id: str
    dial: str
    capacity: int
    regions: frozenset[str] = frozenset()
    #: Queues the site takes; empty: every queue.
    services: frozenset[str] = frozenset()
    preference: int = 0

    def offers(self, queue_id: str) -> bool:
        return not self.services or queue_id in self.services

    def covers(self, region: str) -> bool:
        return region in self.regions


@dataclass(frozen=True, slots=True)
class RegionRule:
    """The partner policy that applies to one caller."""

    primary: bool = False
    overflow_after: float = 30.0
    any_after: float | None = None

    def covering_allowed(self, waited: float) -> bool:
        return self.primary or waited >= self.overflow_after

    def any_allowed(self, waited: float) -> bool:
        return self.any_after is not None and waited >= self.any_after

    def next_change(self, waited: float) -> float | None:
        """Seconds of waiting at which more partners become allowed, if any is left."""
        times = [t for t in (None if self.primary else self.overflow_after, self.any_after)
                 if t is not None and t > waited]
        return min(times) if times else None


def partner_candidates(
    sites: Iterable[PartnerSite], *, region: str, queue_id: str, waited: float,
    rule: RegionRule, open_sites: Set[str], active: Mapping[str, int],
    tried: Set[str] = frozenset(),
) -> list[PartnerSite]:
    """Partners that may take the call now, best first (may be empty)."""
    covering_ok = rule.covering_allowed(waited)
    any_ok = rule.any_allowed(waited)
    if not (covering_ok or any_ok):
        return []
    out: list[tuple[tuple[int, int, str], PartnerSite]] = []
    for site in sites:
        if (site.site_id in tried or site.site_id not in open_sites
                or not site.offers(queue_id)
                or active.get(site.site_id, 0) >= site.capacity):
            continue
        covers = site.covers(region)
        if (covers and covering_ok) or any_ok:
            out.append(((0 if covers else 1, -site.preference, site.site_id), site))
    out.sort(key=lambda item: item[0])
    return [site for _, site in out]


def partner_exclusions(
    sites: Iterable[PartnerSite], *, chosen: str, region: str, queue_id: str,
    waited: float, rule: RegionRule, open_sites: Set[str], active: Mapping[str, int],
    tried: Set[str] = frozenset(),
) -> list[tuple[str, str]]:
    """Why each partner site other than ``chosen`` did not get the call: (site id, reason),
    in the configured order of the sites. The reasons are those of
    :func:`partner_candidates`, first that applies; a site that could have taken it was
    ranked below the chosen one."""
    covering_ok = rule.covering_allowed(waited)
    any_ok = rule.any_allowed(waited)
    out: list[tuple[str, str]] = []
    for site in sites:
        if site.site_id == chosen:
            continue
        busy = active.get(site.site_id, 0)
        covers = site.covers(region)
        if site.site_id in tried:
            why = "already tried for this call"
        elif site.site_id not in open_sites:
            why = "closed now"
        elif not site.offers(queue_id):
            why = f"does not take {queue_id}"
        elif busy >= site.capacity:
            why = f"at capacity ({busy}/{site.capacity})"
        elif not covers and not any_ok:
            why = f"does not cover {region or 'the unknown region'}"
        elif covers and not covering_ok and not any_ok:
            why = f"covers {region} but its wait ({rule.overflow_after:g} s) is not reached"
        else:
            why = "ranked below (coverage, preference, id)"
        out.append((site.site_id, why))
    return out
