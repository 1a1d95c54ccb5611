"""Small rate limiters shared by the doors (FastAGI, the API): token buckets per key,
bounded in memory, and a log line limiter.

Nothing here does I/O or keeps a task: the caller passes the time (``time.monotonic()``
by default), so the tests drive them with a fake clock.

* :class:`TokenBucket` — ``rate`` tokens a second up to ``burst``; :meth:`take` spends
  one if there is one.
* :class:`KeyedBuckets` — one bucket per key (a peer address, an API client), at most
  ``max_keys`` of them: the least recently used is forgotten first (a forgotten key
  starts again with a full bucket, which errs on the side of letting Asterisk in).
* :class:`LogLimiter` — at most one line per key every ``interval`` seconds; the next
  line says how many were left out in between, so a flood costs a bounded number of
  log lines and nothing is hidden.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["KeyedBuckets", "LogLimiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token; False (nothing spent) when there is none."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def wait(self, now: float) -> float:
        """Seconds until one token is there (0 when there is one now)."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        if self.rate <= 0:
            return float("inf")
        return (1.0 - self._tokens) / self.rate


class KeyedBuckets:
    """One :class:`TokenBucket` per key, at most ``max_keys`` (LRU)."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str) -> bool:
        """Spend one of ``key``'s tokens; False when it has none left."""
        return self._bucket(key, self.clock()).take(self.clock())

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token again (0: it has one now); creates nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(self.clock())


class LogLimiter:
    """Whether to write a log line now, per key, and how many were left out before it."""

    def __init__(self, interval: float = 60.0, *, max_keys: int = 1_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        self._last: OrderedDict[str, float] = OrderedDict()
        self._skipped: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: leave this line out. Else the number of lines left out since the last
        one written for ``key`` (0 for the first)."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            old, _ = self._last.popitem(last=False)
            self._skipped.pop(old, None)
        return self._skipped.pop(key, 0)
