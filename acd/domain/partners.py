"""Partner service sites: capacity, opening hours, and which calls may go to them now.

:class:`PartnerDesk` counts every site's calls (offered, answered, rejected, active
against its capacity), knows which waiting calls may go to a partner now (their wait or
their region's policy allows it: the *ready* set, armed by timers), and asks the pure
policy (``routing.partners``) for the best site of a call. Partner calls that Asterisk
has and no call of ours explains (put through before a restart: AMI resync) hold places
in their site's capacity until they hang up.

The core moves the calls; this desk only keeps the sites' side of the books.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from acd.domain.effects import Effect, StartTimer
from acd.domain.events import ChannelGone, PartnerChannels, PartnerDue
from acd.domain.facts import SiteRecovered
from acd.domain.records import Call, CallState
from acd.domain.settings import RegionSettings, SiteSettings
from routing.hours import Schedule
from routing.partners import (
    PartnerSite,
    PartnerStages,
    RegionRule,
    partner_candidates,
    partner_exclusions,
)


@dataclass(slots=True)
class SiteStats:
    offered: int = 0
    answered: int = 0
    rejected: int = 0
    active: int = 0


class PartnerDesk:
    def __init__(self, sites: Iterable[SiteSettings], regions: RegionSettings,
                 stages: Mapping[str, PartnerStages | None] | None = None) -> None:
        sites = list(sites)
        self.regions = regions
        #: Queue → when its stages add partners (None or absent: the regions' defaults).
        self.stages = dict(stages or {})
        #: Partner sites, most preferred first.
        self.partners: list[PartnerSite] = [
            s.partner for s in sorted(sites, key=lambda s: -s.preference)
            if s.partner is not None]
        self._schedules: dict[str, Schedule] = {s.id: s.schedule for s in sites}
        self._by_trunk = {s.trunk_device.upper(): s.id for s in sites if s.trunk_device}
        #: Every site's counters (own sites stay at zero: the core dials agents there).
        self.stats: dict[str, SiteStats] = {s.id: SiteStats() for s in sites}
        #: (server, channel) → site: partner calls found in Asterisk that no call of ours
        #: explains (put through before a restart): counted in the site's ``active``.
        self._recovered: dict[tuple[str, str], str] = {}
        #: Waiting calls that may go to a partner now (their wait or policy allows it).
        self.ready: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.partners)

    # -- hours and coverage ------------------------------------------------------------

    def is_open(self, site_id: str, now: float) -> bool:
        schedule = self._schedules.get(site_id)
        return schedule is not None and schedule.is_open(datetime.fromtimestamp(now, UTC))

    def open_sites(self, now: float) -> set[str]:
        return {p.site_id for p in self.partners if self.is_open(p.site_id, now)}

    def open_covering(self, region: str, queue_id: str, now: float) -> bool:
        """A partner site open now covers ``region`` and offers the queue's service."""
        return any(p.covers(region) and p.offers(queue_id) and self.is_open(p.site_id, now)
                   for p in self.partners)

    def site_for_trunk(self, device: str) -> str | None:
        """The partner site whose trunk endpoint is ``device`` (``PJSIP/<endpoint>``)."""
        return self._by_trunk.get(device.upper())

    # -- choosing a site -----------------------------------------------------------------

    def rule(self, call: Call) -> RegionRule:
        if call.partner_exit:  # a queue's exit: any partner offering the service, now
            return RegionRule(primary=True, overflow_after=0.0, any_after=0.0)
        return self.regions.rule(call.region, call.partner_first,
                                 self.stages.get(call.queue_id))

    def _active(self) -> dict[str, int]:
        return {sid: st.active for sid, st in self.stats.items()}

    def best(self, call: Call, now: float, open_sites: set[str] | None = None,
             ) -> PartnerSite | None:
        """The partner site that should take the call now, if any."""
        candidates = partner_candidates(
            self.partners, region=call.region, queue_id=call.queue_id,
            waited=now - call.entry_time, rule=self.rule(call),
            open_sites=self.open_sites(now) if open_sites is None else open_sites,
            active=self._active(), tried=call.tried_sites)
        return candidates[0] if candidates else None

    def why_not_others(self, call: Call, chosen: str, now: float) -> list[tuple[str, str]]:
        """Why each other site did not get the call (partner sites are few: a walk)."""
        return partner_exclusions(
            self.partners, chosen=chosen, region=call.region, queue_id=call.queue_id,
            waited=now - call.entry_time, rule=self.rule(call),
            open_sites=self.open_sites(now), active=self._active(), tried=call.tried_sites)

    def arm(self, call: Call, now: float, out: list[Effect]) -> None:
        """Mark the call ready for partners now, or time the moment it will be."""
        if not self.partners or call.state is not CallState.WAITING:
            return
        rule = self.rule(call)
        waited = now - call.entry_time
        if rule.some_allowed(waited):
            self.ready.add(call.call_id)
        later = rule.next_change(waited)
        if later is not None:
            out.append(StartTimer(later - waited, PartnerDue(call.call_id,
                                                             call.entry_time + later)))

    def ready_in_order(self, calls: Callable[[str], Call]) -> list[Call]:
        """The ready calls, longest waiting first."""
        return sorted((calls(c) for c in self.ready), key=lambda c: (c.entry_time, c.seq))

    # -- the books -----------------------------------------------------------------------

    def take(self, call: Call, site_id: str) -> None:
        """The call is offered to the site: it holds a place in its capacity."""
        self.ready.discard(call.call_id)
        call.site_id = site_id
        call.tried_sites.add(site_id)
        call.holds_site = True
        st = self.stats[site_id]
        st.offered += 1
        st.active += 1

    def release(self, call: Call) -> None:
        """The call no longer holds a place in its partner's capacity."""
        if call.site_id is not None and call.holds_site:
            self.stats[call.site_id].active -= 1
            call.holds_site = False
            if call.state is CallState.OFFERED:
                call.site_id = None

    def answered(self, site_id: str) -> None:
        self.stats[site_id].answered += 1

    def rejected(self, site_id: str) -> None:
        self.stats[site_id].rejected += 1

    def holds_recovered(self, server: str, channel: str) -> bool:
        return (server, channel) in self._recovered

    def channels(self, ev: PartnerChannels, out: list[Effect]) -> None:
        now_known = {(ev.server, ch): site for ch, site in ev.channels.items()
                     if site in self.stats}
        for key, site in list(self._recovered.items()):
            if key[0] == ev.server and key not in now_known:
                del self._recovered[key]
                self.stats[site].active -= 1
        for key, site in now_known.items():
            if key not in self._recovered:
                self._recovered[key] = site
                self.stats[site].active += 1
        for site in sorted(set(now_known.values())):
            out.append(SiteRecovered(site, ev.server,
                                     sum(1 for s in now_known.values() if s == site),
                                     self.stats[site].active))

    def channel_gone(self, ev: ChannelGone) -> None:
        site = self._recovered.pop((ev.server, ev.channel), None)
        if site is not None:
            # A place at that partner is free again: calls ready for partners stay ready,
            # so the end of this inbox step tries them.
            self.stats[site].active -= 1
