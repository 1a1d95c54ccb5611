"""Proactive campaigns (issue 12.2): contact lists worked by the same agents, blended
with inbound so that inbound service never pays for outbound.

A campaign is a list of contacts, the queue whose agents work it (a queue of its own,
with a lower ``priority`` than the inbound queues: the router then always serves an
inbound caller first when an agent could take both), a calling window evaluated **in the
contact's local time** (its region from the number, as for inbound callers, and the
region's time zone), attempts and spacing, a do-not-call list and the outcome codes the
agents set.

Each attempt on a contact is one callback (``acd.domain.callbacks``) of one attempt:
the engine reserves an agent and rings it first, then the customer — never predictive,
no customer is ever connected to silence. The runner (``acd.runtime.campaigns``)
releases attempts progressively: at most one per routable agent of the campaign's
queue, none while the blending guard fails (an inbound caller waiting longer than
``guard.max_inbound_wait`` seconds, or the inbound queues' service level over the last
15 minutes below ``guard.min_service_level``).

Pure: no I/O, no clock (``now`` comes in); ``mypy --strict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from routing.hours import Schedule

#: Callback ids of campaign attempts: ``cmp-<campaign>-<contact index>-<attempt>``.
PREFIX = "cmp-"


class ContactState(StrEnum):
    #: Not tried yet, or waiting for its next attempt.
    PENDING = "pending"
    #: An attempt is in line or being dialled.
    DIALING = "dialing"
    #: Reached (an agent talked with the customer); the agent may set an outcome code.
    REACHED = "reached"
    #: Attempts used up without reaching the customer.
    FAILED = "failed"
    #: On the do-not-call list: never dialled.
    DO_NOT_CALL = "do_not_call"
    #: Its number may not be called (``callbacks.allow``).
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    id: str
    queue_id: str
    #: The calling window, in the contact's local time (the schedule's own zone is
    #: replaced by the contact's).
    hours: Mapping[str, str | tuple[str, ...]]
    attempts: int = 3
    retry_after: float = 3600.0
    do_not_call: frozenset[str] = frozenset()
    outcome_codes: tuple[str, ...] = ()
    max_inbound_wait: float = 30.0
    min_service_level: float | None = None
    #: Region (ISO 3166-2) → IANA zone; the config's time zone for the others.
    timezones: Mapping[str, str] = field(default_factory=dict)
    default_timezone: str = "Asia/Shanghai"


@dataclass(slots=True)
class Contact:
    index: int
    number: str
    name: str = ""
    region: str = ""
    timezone: str = ""
    state: ContactState = ContactState.PENDING
    attempts: int = 0
    next_at: float = 0.0
    outcome: str = ""
    #: The last attempt's DIALSTATUS / outcome of the callback.
    last_status: str = ""
    agent: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "number": self.number, "name": self.name,
                "region": self.region, "timezone": self.timezone,
                "state": self.state.value, "attempts": self.attempts,
                "next_at": self.next_at, "outcome": self.outcome,
                "last_status": self.last_status, "agent": self.agent}


class Campaign:
    """One campaign's contacts and progress."""

    def __init__(self, settings: CampaignSettings) -> None:
        self.settings = settings
        self.contacts: list[Contact] = []
        self._schedules: dict[str, Schedule] = {}

    def add(self, rows: Iterable[tuple[str, str]], region_of: Any,
            allowed: Any) -> dict[str, int]:
        """Add contacts (number, name): ``region_of(number) -> region`` (as for inbound
        callers), ``allowed(number) -> bool`` (``callbacks.allow``). Returns counts of
        added, do_not_call, refused, duplicates."""
        known = {c.number for c in self.contacts}
        counts = {"added": 0, "do_not_call": 0, "refused": 0, "duplicates": 0}
        s = self.settings
        for number, name in rows:
            if number in known:
                counts["duplicates"] += 1
                continue
            known.add(number)
            region = str(region_of(number))
            contact = Contact(len(self.contacts), number, name, region,
                              s.timezones.get(region, s.default_timezone))
            if number in s.do_not_call:
                contact.state = ContactState.DO_NOT_CALL
                counts["do_not_call"] += 1
            elif not allowed(number):
                contact.state = ContactState.REFUSED
                counts["refused"] += 1
            else:
                counts["added"] += 1
            self.contacts.append(contact)
        return counts

    def schedule(self, tz: str) -> Schedule:
        sched = self._schedules.get(tz)
        if sched is None:
            hours = {k: (v if isinstance(v, str) else list(v))
                     for k, v in self.settings.hours.items()}
            sched = self._schedules[tz] = Schedule.build(tz, hours)
        return sched

    def in_window(self, contact: Contact, now: float) -> bool:
        """Whether it is calling time where the contact is."""
        if not self.settings.hours:
            return True
        tz = contact.timezone or self.settings.default_timezone
        ZoneInfo(tz)
        return self.schedule(tz).is_open(datetime.fromtimestamp(now, UTC))

    def due(self, now: float, limit: int) -> list[Contact]:
        """Up to ``limit`` contacts to try now, in list order: pending, their spacing
        over, within their local window; never one on the do-not-call list."""
        out: list[Contact] = []
        if limit <= 0:
            return out
        for c in self.contacts:
            if c.state is ContactState.PENDING and c.next_at <= now \
                    and c.number not in self.settings.do_not_call \
                    and self.in_window(c, now):
                out.append(c)
                if len(out) >= limit:
                    break
        return out

    def attempt_id(self, contact: Contact) -> str:
        return f"{PREFIX}{self.settings.id}-{contact.index}-{contact.attempts + 1}"

    def finished(self, contact: Contact, outcome: str, status: str, agent: str | None,
                 now: float) -> None:
        """An attempt's callback ended: ``completed`` (reached), else not reached."""
        contact.attempts += 1
        contact.last_status = status
        contact.agent = agent or contact.agent
        if outcome == "completed":
            contact.state = ContactState.REACHED
        elif contact.attempts >= self.settings.attempts:
            contact.state = ContactState.FAILED
        else:
            contact.state = ContactState.PENDING
            contact.next_at = now + self.settings.retry_after

    def set_outcome(self, index: int, code: str) -> Contact:
        if not 0 <= index < len(self.contacts):
            raise KeyError(index)
        if self.settings.outcome_codes and code not in self.settings.outcome_codes:
            raise ValueError(f"unknown outcome code {code!r} (one of "
                             f"{', '.join(self.settings.outcome_codes)})")
        contact = self.contacts[index]
        contact.outcome = code
        return contact

    def progress(self) -> dict[str, Any]:
        states: dict[str, int] = {s.value: 0 for s in ContactState}
        outcomes: dict[str, int] = {}
        attempted = 0
        for c in self.contacts:
            states[c.state.value] += 1
            attempted += c.attempts > 0
            if c.outcome:
                outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
        return {"campaign": self.settings.id, "queue": self.settings.queue_id,
                "contacts": len(self.contacts), "attempted": attempted,
                "reached": states[ContactState.REACHED.value], "states": states,
                "outcomes": outcomes}


def parse_attempt_id(callback_id: str) -> tuple[str, int] | None:
    """(campaign id, contact index) of a campaign attempt's callback id."""
    if not callback_id.startswith(PREFIX):
        return None
    body = callback_id[len(PREFIX):]
    parts = body.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1])


def parse_csv(text: str) -> list[tuple[str, str]]:
    """Contacts from CSV text: ``number[,name]`` per line; a header line whose first
    cell is not a number is skipped; blank lines and ``#`` comments too."""
    import csv
    import io

    rows: list[tuple[str, str]] = []
    for i, cells in enumerate(csv.reader(io.StringIO(text))):
        if not cells or not cells[0].strip() or cells[0].lstrip().startswith("#"):
            continue
        raw = cells[0].strip()
        if i == 0 and not any(ch.isdigit() for ch in raw):
            continue  # a header
        rows.append((raw, cells[1].strip() if len(cells) > 1 else ""))
    return rows
