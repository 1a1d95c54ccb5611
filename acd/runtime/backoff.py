"""Reconnect delay policies (a policy object, as in redis-py's ``backoff.py``).

A policy answers one question: after ``failures`` consecutive failed attempts, how long
should the caller sleep before the next one? ``failures`` counts from 1; 0 (nothing has
failed yet) always means "no delay". Policies hold no per-connection state, so one
instance may be shared.
"""

from __future__ import annotations

import random
from typing import Protocol

__all__ = ["Backoff", "ConstantBackoff", "ExponentialBackoff"]


class Backoff(Protocol):
    def compute(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (>= 0)."""
        ...


class ConstantBackoff:
    """The same delay after every failure (handy in tests)."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.delay = delay

    def compute(self, failures: int) -> float:
        return self.delay if failures > 0 else 0.0

    def __repr__(self) -> str:
        return f"ConstantBackoff({self.delay!r})"


class ExponentialBackoff:
    """Capped exponential backoff with **full jitter**.

    The ceiling doubles per failure, ``min(cap, base * 2 ** (failures - 1))``; with
    ``jitter`` the delay is drawn uniformly from ``[0, ceiling]`` ("full jitter", AWS
    Architecture Blog, *Exponential Backoff And Jitter*): when Asterisk restarts, every
    client that lost it reconnects at a different moment instead of in lock-step, and
    the expected delay is half the ceiling. Without ``jitter`` the ceiling itself is
    returned. Pass ``rng`` (a seeded :class:`random.Random`) for reproducible tests.
    """

    def __init__(
        self,
        base: float = 0.2,
        cap: float = 10.0,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0:
            raise ValueError("base must be > 0")
        if cap < base:
            raise ValueError("cap must be >= base")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self, failures: int) -> float:
        """The largest delay ``compute(failures)`` can return."""
        if failures <= 0:
            return 0.0
        # 2.0 ** 64 is far past any sane cap; bounding the exponent avoids OverflowError.
        return min(self.cap, self.base * 2.0 ** min(failures - 1, 64))

    def compute(self, failures: int) -> float:
        ceiling = self.ceiling(failures)
        return self._rng.uniform(0.0, ceiling) if self.jitter else ceiling

    def __repr__(self) -> str:
        return f"ExponentialBackoff(base={self.base!r}, cap={self.cap!r}, jitter={self.jitter!r})"
