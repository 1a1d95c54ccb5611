"""Admission: the one place that decides which queue a caller joins and on what terms.

Two steps, both pure:

1. **The entry plan** (``entry_queue`` / ``menu_queue``), run by the caller's session
   because it may need the caller's input: a choice already made on the channel (a retry
   after an engine restart, an agent's transfer) wins, then the caller's segment's
   dedicated queue, then the dialled number (DID), then the IVR menu (the session plays
   it: ``entry_queue`` returns ``None``), then the default queue.
2. **Admission** (``admit``), run by the core when the call arrives, with the engine's
   state at that moment: open → the caller waits for an agent (partners first when its
   region's partner is primary); closed, but a partner open now covers the caller's
   region and offers the service → partners first; closed otherwise → the queue's
   closed action. A call admitted before a restart (restored) is not refused again.

The simulator runs the same functions.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from enum import StrEnum

from acd.domain.settings import EntrySettings, QueueSettings
from routing.numbers import normalise_did
from routing.segments import Segment


class Admission(StrEnum):
    OPEN = "open"
    #: The queue is closed, but an open partner covering the caller takes the call.
    PARTNER_FIRST = "partner_first"
    CLOSED = "closed"


def entry_queue(entry: EntrySettings, queues: Collection[str], *, chosen: str | None,
                segment: Segment | None, did: str | None) -> str | None:
    """The queue a call enters, or ``None`` when the caller must choose in the menu.

    ``queues``: the queue ids; ``chosen``: ``ACD_QUEUE`` already on the channel (ignored
    unless a known queue); ``did``: the dialled number, any format (normalised here)."""
    if chosen and chosen in queues:
        return chosen
    if segment is not None and segment.queue_id is not None:
        return segment.queue_id
    if did:
        by_did = entry.dids.get(normalise_did(did)) or entry.dids.get(did)
        if by_did is not None:
            return by_did
    if entry.menu is not None and entry.menu.options:
        return None
    return entry.default_queue


def menu_queue(entry: EntrySettings, key: str) -> str:
    """The queue of a key pressed in the menu (no key, or an unknown one: the default)."""
    if entry.menu is not None and key in entry.menu.options:
        return entry.menu.options[key]
    return entry.default_queue


def is_open(queue: QueueSettings, now: float) -> bool:
    schedule = queue.schedule
    return schedule.always_open or schedule.is_open(datetime.fromtimestamp(now, UTC))


def admit(queue: QueueSettings, now: float, *, partner_covers: bool,
          restored: bool = False) -> Admission:
    """Open, partners first, or closed (see the module docstring). ``partner_covers``:
    a partner site open now covers the caller's region and offers this queue."""
    if restored or is_open(queue, now):
        return Admission.OPEN
    return Admission.PARTNER_FIRST if partner_covers else Admission.CLOSED
