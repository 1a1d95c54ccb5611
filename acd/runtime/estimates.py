"""Expected waits kept current off the routing path.

The estimator's replay (:mod:`acd.domain.ewt`) walks up to a thousand waiting callers
sixty-four times: about 0.2 s of CPU with a thousand waiting. Run on an arrival, an
announcement or a scrape it would hold every routing decision behind it (the capacity
benchmark measured agent free→Dial p50 of 12 s that way). Here it runs as a background
task in steps of a few hundred placements, the inbox routing calls between two steps; the
finished replay is published on the core, where announcements, the API, ``/metrics`` and
``max_ewt`` read it (a caller who joined since is placed by its queue's newcomer).

A replay runs when the core changed since the last one (at least every second while
callers wait, as time moves the estimates), never more often than ``every`` seconds, and
never more than ``share`` of the loop's time: a replay that cost 0.2 s of work waits
``0.2 / share`` seconds before the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from acd.domain import EngineCore
from acd.domain.ewt import Sweep

log = logging.getLogger("acd.estimates")

#: Fastest refresh (seconds) and the most of the loop's time replays may take.
EVERY = 0.25
SHARE = 0.1
#: Placements (or agents' draws) per step: ≈ 1 ms of work.
CHUNK = 256


class EstimateRefresher:
    """Replays the core's expected waits in the background and publishes them."""

    def __init__(self, core: EngineCore, clock: Callable[[], float], *,
                 every: float = EVERY, share: float = SHARE, chunk: int = CHUNK) -> None:
        self.core = core
        self.clock = clock
        self.every = every
        self.share = share
        self.chunk = chunk
        #: Called with every published replay (metrics: the wait told at entry).
        self.hooks: list[Callable[[Sweep], None]] = []
        #: The last replay's work (seconds of CPU, steps only) and the wait before the next.
        self.last_cost = 0.0
        self.interval = every
        self.replays = 0
        self._next: asyncio.Future[Sweep] | None = None

    def due(self, now: float) -> bool:
        last = self.core.background_sweep
        if last is None:
            return True
        if last.version != self.core.version:
            return True
        # time moves the estimates of callers who wait
        return now - last.now >= 1.0 and bool(last.calls or self.core.router.waiting())

    async def run(self) -> None:
        """Until cancelled; the core reads the published replays meanwhile."""
        core = self.core
        core.estimates_in_background = True
        try:
            while True:
                if self.due(self.clock()):
                    await self.replay()
                await asyncio.sleep(self.interval)
        finally:
            core.estimates_in_background = False

    async def covering(self, call_id: str, within: float) -> Sweep | None:
        """The latest replay, waiting up to ``within`` seconds for one that walked
        ``call_id`` (a caller who just joined: its first announcement tells its own
        estimate rather than its queue's newcomer's)."""
        deadline = time.monotonic() + within
        while True:
            sweep = self.core.background_sweep
            left = deadline - time.monotonic()
            if (sweep is not None and call_id in sweep.calls) or left <= 0 \
                    or not self.core.estimates_in_background:
                return sweep
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._next), left)
            except TimeoutError:
                return self.core.background_sweep

    async def replay(self) -> Sweep:
        """One replay in steps; published when complete."""
        steps = self.core.estimator.steps(self.clock(), self.chunk)
        work = 0.0
        while True:
            started = time.perf_counter()
            try:
                next(steps)
            except StopIteration as done:
                work += time.perf_counter() - started
                sweep: Sweep = done.value
                break
            work += time.perf_counter() - started
            await asyncio.sleep(0)  # the inbox routes calls between two steps
        self.core.background_sweep = sweep
        if self._next is not None:
            if not self._next.done():
                self._next.set_result(sweep)
            self._next = None
        self.replays += 1
        self.last_cost = work
        self.interval = max(self.every, work / self.share)
        for hook in self.hooks:
            try:
                hook(sweep)
            except Exception:
                log.exception("estimate hook failed")
        return sweep
