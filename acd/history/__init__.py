"""Call history: the records built from the core's facts, and the figures over them.

Pure (no I/O, no asyncio, no clock; mypy strict), like :mod:`acd.domain`:

* :mod:`acd.history.records` — a call's whole life (:class:`CallRecord`, its offers) and
  the agents' state intervals, built from facts by :class:`RecordBuilder`;
* :mod:`acd.history.periods` — the centre's local day, week, month of an instant;
* :mod:`acd.history.rollup` — what one record adds to a report's counters, by dimension
  (queue, agent, site, region, segment, DID), with the formulas of
  :mod:`acd.domain.figures` — the live figures' own definitions.

The writer, the spool and the database are in :mod:`acd.runtime.history`.
"""

from acd.history.records import (
    FINAL_OUTCOMES,
    OPEN_OUTCOMES,
    AgentInterval,
    CallRecord,
    OfferRecord,
    RecordBuilder,
)

__all__ = [
    "FINAL_OUTCOMES",
    "OPEN_OUTCOMES",
    "AgentInterval",
    "CallRecord",
    "OfferRecord",
    "RecordBuilder",
]
