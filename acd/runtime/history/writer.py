"""The history writer: facts in (on the routing path, O(1)), database rows out (behind it).

``observe`` is one of the engine's ``fact_hooks``: it hands the fact to the pure
:class:`acd.history.RecordBuilder` (in-memory, a dict update) and returns — no I/O, no
await, nothing that can block the inbox. A background task, every ``flush_interval``
seconds or when ``batch_size`` records are waiting:

1. takes the changed records (whole snapshots) from the builder;
2. appends them to the durable spool (one JSON line, fsync) in a worker thread;
3. writes every sealed spool segment to the database (one transaction per segment, in a
   worker thread) and deletes it.

Database down or slow: step 3 fails, the writer backs off and keeps spooling; when the
database answers again the segments are written oldest first (catch-up). Nothing waits
on the database but this task. On start, segments left by a previous run (a crash) are
written first.

Only the active engine records: facts are taken only while ``active()`` is true (the
composition root: the engine routes, or is handing its callers back). Writes are
idempotent and monotone (``db.HistoryDB``), so the spool of an engine that lost its
lease may still be written: it only holds what that engine saw happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acd.domain import Fact
from acd.history import RecordBuilder
from acd.runtime.backoff import Backoff, ExponentialBackoff
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.spool import Spool

log = logging.getLogger("acd.history")


@dataclass(slots=True)
class WriterStats:
    observed: int = 0
    spooled_batches: int = 0
    written_batches: int = 0
    written_calls: int = 0
    written_intervals: int = 0
    failures: int = 0
    last_error: str = ""


class HistoryWriter:
    def __init__(self, builder: RecordBuilder, db: HistoryDB, spool: Spool, *,
                 flush_interval: float = 0.2, batch_size: int = 500,
                 active: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.time,
                 backoff: Backoff | None = None, refresh_interval: float = 5.0) -> None:
        self.builder = builder
        self.db = db
        self.spool = spool
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.active = active
        self.clock = clock
        self.backoff = backoff or ExponentialBackoff(base=0.2, cap=5.0)
        self.refresh_interval = refresh_interval
        self.stats = WriterStats()
        self.failing = False
        #: The database's schema is up to date (migrations applied).
        self.ready = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Set when everything observed so far is in the database.
        self.idle = asyncio.Event()
        self._last_refresh = 0.0
        self._closes: list[dict[str, Any]] = []

    # -- the hook (inbox order, synchronous, never raises into the engine) -------------

    def observe(self, fact: Fact, now: float) -> None:
        if not self.active():
            return
        self.builder.observe(fact, now)
        self.stats.observed += 1
        self.idle.clear()
        if self.builder.pending >= self.batch_size:
            self._wake.set()

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task. The database's migrations run first, in the task: a
        database that is down does not hold up the engine (records spool meanwhile)."""
        self._task = asyncio.create_task(self._run(), name="acd-history-writer")

    async def stop(self, drain: float = 5.0) -> None:
        """Flush what is left (agents' open intervals closed now), then stop."""
        if self._task is None:
            return
        self.builder.close_intervals(self.clock())
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), drain)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        # Whatever is still in memory goes to the spool: the next start writes it.
        with contextlib.suppress(Exception):
            await self._spool_pending()

    async def drained(self) -> None:
        """Return once everything observed so far is in the database."""
        while True:
            self._wake.set()
            self.idle.clear()
            await self.idle.wait()
            if not self.builder.pending and not self._closes \
                    and not self.spool.segments():
                return

    def flush_soon(self) -> None:
        self._wake.set()

    def add_close(self, close: dict[str, Any]) -> None:
        """Close a call's record from its CDR (it ended unseen), after the snapshots
        already taken: it goes through the spool like them."""
        self._closes.append(close)
        self.idle.clear()
        self._wake.set()

    # -- the task --------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self._spool_pending()
            except Exception as exc:  # disk full …: keep the records in memory, retry
                log.error("history spool failed (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(self.backoff.compute(1))
                continue
            if not self.spool.segments():
                self._maybe_idle()
                continue
            try:
                if not self.ready:
                    await asyncio.to_thread(self.db.upgrade)
                    self.ready = True
                await asyncio.to_thread(self._write_spool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not self.failing:
                    log.warning("history database unavailable (%s): records are spooled "
                                "and written when it is back", self.stats.last_error[:300])
                    self.failing = True
                await asyncio.sleep(self.backoff.compute(failures))
                continue
            if self.failing:
                log.info("history database is back: spooled records written")
                self.failing = False
            failures = 0
            now = time.monotonic()
            if now - self._last_refresh >= self.refresh_interval:
                self._last_refresh = now
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.db.refresh, 200)
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.builder.pending and not self._closes and not self.spool.segments():
            self.idle.set()

    async def _spool_pending(self) -> None:
        if not self.builder.pending and not self._closes:
            return
        call_recs, intervals = self.builder.take()
        closes, self._closes = self._closes, []
        # Snapshots are taken here, on the loop (the builder mutates its records).
        batch: dict[str, Any] = {"calls": [r.to_row() for r in call_recs],
                                 "intervals": [i.to_row() for i in intervals]}
        if closes:
            batch["closes"] = closes
        await asyncio.to_thread(self.spool.append, batch)
        self.stats.spooled_batches += 1

    def _write_spool(self) -> None:
        """Worker thread: every segment to the database, oldest first."""
        self.spool.seal()
        for path in self.spool.sealed():
            batches = list(self.spool.read(path))
            call_rows = [r for b in batches for r in b.get("calls", ())]
            interval_rows = [r for b in batches for r in b.get("intervals", ())]
            closes = [r for b in batches for r in b.get("closes", ())]
            self.db.write(call_rows, interval_rows, closes)
            self.spool.remove(path)
            self.stats.written_batches += len(batches)
            self.stats.written_calls += len(call_rows)
            self.stats.written_intervals += len(interval_rows)
