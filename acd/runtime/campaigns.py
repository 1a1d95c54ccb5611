"""The campaign runner (issue 12.2): releases campaign attempts into the line as
callbacks, progressively and only while inbound is within target (acd.domain.campaigns).

Every ``interval`` seconds, for each campaign: if the blending guard holds (no inbound
caller waiting longer than ``guard.max_inbound_wait``; the inbound queues' service level
over the last 15 minutes at least ``guard.min_service_level``), it releases at most as
many attempts as the campaign's queue has routable agents, minus the attempts already in
line — one call per agent the router can reserve, never more (progressive, not
predictive). Each attempt is a callback of one attempt (``RequestCallback`` with
``max_attempts=1``): the dialer rings the agent first, then the customer. The outcome
comes back as ``callback_finished``; the runner then schedules the contact's next
attempt (after ``retry_after``) or ends it.

Contacts come in through ``acd campaign load`` / ``POST /api/v1/campaigns/{id}/contacts``;
a campaign's progress is written behind to the store (``<prefix>:campaigns``, through the
store writer: fenced) and restored on activation, after the callbacks
(docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from acd.domain import CallState, DomainError, Fact
from acd.domain.callbacks import CallbackFinished, CallbackState, allowed
from acd.domain.campaigns import (
    Campaign,
    CampaignSettings,
    Contact,
    ContactState,
    parse_attempt_id,
    parse_csv,
)
from acd.domain.events import RequestCallback
from acd.domain.figures import Window
from acd.runtime.engine import Engine
from routing.numbers import normalise_number

log = logging.getLogger("acd.campaigns")


class CampaignRunner:
    def __init__(self, engine: Engine, campaigns: Mapping[str, CampaignSettings], *,
                 interval: float = 1.0) -> None:
        self.engine = engine
        self.campaigns = {cid: Campaign(s) for cid, s in campaigns.items()}
        self.interval = interval
        self.held_by_guard = 0

    # -- contacts ------------------------------------------------------------------------

    def load(self, campaign_id: str, text: str) -> dict[str, int]:
        """Add the contacts of a CSV text (``number[,name]``); raises KeyError for an
        unknown campaign."""
        campaign = self.campaigns[campaign_id]
        cb = self.engine.settings.callbacks
        patterns = cb.allow if cb is not None else ()
        rows = [(normalise_number(n), name) for n, name in parse_csv(text)]
        counts = campaign.add(
            [(n, name) for n, name in rows if n],
            lambda n: self.engine.regions.resolve(n).region,
            lambda n: allowed(n, patterns))
        log.info("campaign %s: %d contacts added (%d on the do-not-call list, %d numbers "
                 "not allowed, %d duplicates)", campaign_id, counts["added"],
                 counts["do_not_call"], counts["refused"], counts["duplicates"])
        self._changed(campaign_id)
        return counts

    # -- the store (acd.runtime.store: <prefix>:campaigns, fenced like the rest) ---------

    def _changed(self, campaign_id: str) -> None:
        self.engine.store_writer.mark_campaign(campaign_id)

    def record(self, campaign_id: str) -> dict[str, Any] | None:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            return None
        return {"contacts": [c.as_dict() for c in campaign.contacts]}

    def restore(self, records: Mapping[str, Mapping[str, Any]]) -> int:
        """The stored contacts and progress of each campaign (after a restart or a
        takeover; the callbacks were restored first). A contact whose attempt was being
        dialled and did not come back as a callback had its customer leg started before
        the takeover: it is not called again (``last_status`` ``TAKEOVER``)."""
        restored = 0
        for cid, rec in records.items():
            campaign = self.campaigns.get(cid)
            if campaign is None:
                continue
            try:
                contacts = [_contact(raw) for raw in rec.get("contacts", [])]
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("stored campaign %s not restored: %s", cid, exc)
                continue
            campaign.contacts = contacts
            for c in contacts:
                if c.state is ContactState.DIALING and \
                        campaign.attempt_id(c) not in self.engine.core.callbacks.by_id:
                    c.state, c.last_status = ContactState.REACHED, "TAKEOVER"
                    c.attempts += 1
            restored += 1
        return restored

    def observe(self, fact: Fact, now: float) -> None:
        """Engine fact hook: an attempt's outcome."""
        if not isinstance(fact, CallbackFinished):
            return
        found = parse_attempt_id(fact.callback_id)
        if found is None or found[0] not in self.campaigns:
            return
        campaign = self.campaigns[found[0]]
        if not 0 <= found[1] < len(campaign.contacts):
            return
        contact = campaign.contacts[found[1]]
        campaign.finished(contact, fact.outcome, fact.status, fact.agent, now)
        self._changed(found[0])

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign runner failed a round")
            await asyncio.sleep(self.interval)

    def guard_ok(self, campaign: Campaign, now: float) -> bool:
        """Inbound within target: no inbound caller waiting longer than the guard's
        ``max_inbound_wait``; the inbound queues' SL (15 min) not below the minimum."""
        s = campaign.settings
        core = self.engine.core
        campaign_queues = {c.settings.queue_id for c in self.campaigns.values()}
        for call in core.calls.values():
            if call.state is CallState.WAITING and call.queue_id not in campaign_queues \
                    and not core.callbacks.is_callback(call.call_id) \
                    and now - call.entry_time > s.max_inbound_wait:
                return False
        if s.min_service_level is not None:
            for qid in core.queues:
                if qid in campaign_queues:
                    continue
                sl = core.figures.window(qid, Window.ROLLING, now).service_level
                if sl is not None and sl < s.min_service_level:
                    return False
        return True

    def free_agents(self, queue_id: str) -> int:
        core = self.engine.core
        return sum(core.router.candidates(core.servers.router_queue(queue_id, server))
                   for server in core.servers.names)

    async def tick(self) -> None:
        engine = self.engine
        dialer = engine.callback_dialer
        if dialer is None or not engine.core.routing:
            return
        now = engine.clock()
        for campaign in self.campaigns.values():
            in_line = 0
            for contact in campaign.contacts:
                if contact.state is ContactState.DIALING:
                    cb = engine.core.callbacks.by_id.get(campaign.attempt_id(contact))
                    if cb is not None and cb.state is not CallbackState.DIALING \
                            and cb.state is not CallbackState.CONNECTED:
                        in_line += 1
            room = self.free_agents(campaign.settings.queue_id) - in_line
            if room <= 0:
                continue
            due = campaign.due(now, room)
            if not due:
                continue
            if not self.guard_ok(campaign, now):
                self.held_by_guard += 1
                continue
            self._changed(campaign.settings.id)
            for contact in due:
                cb_id = campaign.attempt_id(contact)
                contact.state = ContactState.DIALING
                try:
                    await dialer.request(RequestCallback(
                        "", contact.number, now, callback_id=cb_id,
                        queue_id=campaign.settings.queue_id, entry_time=now,
                        reason=f"campaign:{campaign.settings.id}", max_attempts=1))
                except DomainError as exc:
                    log.warning("campaign %s contact %d not dialled: %s",
                                campaign.settings.id, contact.index, exc)
                    contact.state = ContactState.REFUSED


def _contact(raw: Mapping[str, Any]) -> Contact:
    return Contact(int(raw["index"]), str(raw["number"]), str(raw.get("name") or ""),
                   str(raw.get("region") or ""), str(raw.get("timezone") or ""),
                   ContactState(raw.get("state") or "pending"), int(raw.get("attempts") or 0),
                   float(raw.get("next_at") or 0.0), str(raw.get("outcome") or ""),
                   str(raw.get("last_status") or ""), str(raw.get("agent") or ""))


def runner_of(engine: Engine) -> CampaignRunner | None:
    """The engine's campaigns (None: no campaigns configured)."""
    runner = engine.campaign_runner
    return runner if isinstance(runner, CampaignRunner) else None
