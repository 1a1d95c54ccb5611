"""Shared-partner routing: which partner site may take a waiting call, in what order.

Pure policy. A partner site covers provinces (ISO 3166-2:CN codes), offers some services
(queues), has opening hours (the caller passes which sites are open now) and a capacity
(max concurrent calls we send it; the caller passes how many are active).

One caller's partners widen with its wait, like its own agents through its queue's
stages (:class:`RegionRule`): after ``overflow_after`` seconds the partners covering the
caller's region, after ``any_after`` any partner offering the service, and after each
``sites`` step the sites it names. The queue's stages give those times; a region's policy
may change them for its callers:

* **overflow** — own agents first; covering partners after the region's wait;
* **primary** — the covering partners first (from the first second), own agents as
  backup.

Partners covering the caller's region always come first, then the higher
``preference``, then the site id (a stable order).
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
class PartnerStages:
    """When a queue's stages add partner sites, in seconds of waiting (None: never):
    those covering the caller's region, any offering the service, named sites."""

    covering: float | None = None
    any: float | None = None
    sites: tuple[tuple[float, frozenset[str]], ...] = ()


@dataclass(frozen=True, slots=True)
class RegionRule:
    """The partners one caller may go to as its wait grows."""

    primary: bool = False
    #: Covering partners after this wait (None: never, unless ``primary``).
    overflow_after: float | None = 30.0
    any_after: float | None = None
    #: (wait, site ids): the named sites after that wait.
    sites: tuple[tuple[float, frozenset[str]], ...] = ()

    def covering_allowed(self, waited: float) -> bool:
        return self.primary or (self.overflow_after is not None
                                and waited >= self.overflow_after)

    def any_allowed(self, waited: float) -> bool:
        return self.any_after is not None and waited >= self.any_after

    def named_allowed(self, site_id: str, waited: float) -> bool:
        return any(waited >= after and site_id in ids for after, ids in self.sites)

    def some_allowed(self, waited: float) -> bool:
        """Some partner may take the call now (given coverage, hours and capacity)."""
        return (self.covering_allowed(waited) or self.any_allowed(waited)
                or any(waited >= after for after, _ in self.sites))

    def next_change(self, waited: float) -> float | None:
        """Seconds of waiting at which more partners become allowed, if any is left."""
        times = [t for t in (None if self.primary else self.overflow_after, self.any_after,
                             *(after for after, _ in self.sites))
                 if t is not None and t > waited]
        return min(times) if times else None

    def named_after(self, site_id: str) -> float | None:
        """When the named steps admit the site (None: they never do)."""
        times = [after for after, ids in self.sites if site_id in ids]
        return min(times) if times else None


def partner_candidates(
    sites: Iterable[PartnerSite], *, region: str, queue_id: str, waited: float,
    rule: RegionRule, open_sites: Set[str], active: Mapping[str, int],
    tried: Set[str] = frozenset(),
) -> list[PartnerSite]:
    """Partners that may take the call now, best first (may be empty)."""
    if not rule.some_allowed(waited):
        return []
    covering_ok = rule.covering_allowed(waited)
    any_ok = rule.any_allowed(waited)
    out: list[tuple[tuple[int, int, str], PartnerSite]] = []
    for site in sites:
        if (site.site_id in tried or site.site_id not in open_sites
                or not site.offers(queue_id)
                or active.get(site.site_id, 0) >= site.capacity):
            continue
        covers = site.covers(region)
        if (covers and covering_ok) or any_ok or rule.named_allowed(site.site_id, waited):
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
        elif any_ok or rule.named_allowed(site.site_id, waited) or (covers and covering_ok):
            why = "ranked below (coverage, preference, id)"
        elif (named := rule.named_after(site.site_id)) is not None:
            why = f"joins at {named:g} s of waiting (a stage of {queue_id})"
        elif covers and rule.overflow_after is not None:
            why = f"covers {region} but its wait ({rule.overflow_after:g} s) is not reached"
        elif covers:
            why = f"covers {region}, but {queue_id}'s stages add no covering partner"
        else:
            why = f"does not cover {region or 'the unknown region'}"
        out.append((site.site_id, why))
    return out
