"""The rate limiters of the doors (acd.runtime.ratelimit), on a fake clock."""

from __future__ import annotations

import pytest

from acd.runtime.ratelimit import KeyedBuckets, LogLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    b = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.wait(0.0) == pytest.approx(0.5)
    assert not b.take(0.4) and b.take(0.5)
    assert b.available(100.0) == 3  # never more than the burst


def test_keyed_buckets_are_per_key_and_bounded() -> None:
    clock = Clock()
    buckets = KeyedBuckets(rate=1.0, burst=2, max_keys=3, clock=clock)
    assert buckets.take("a") and buckets.take("a") and not buckets.take("a")
    assert buckets.take("b")  # b has its own
    assert buckets.wait("a") == pytest.approx(1.0) and buckets.wait("never") == 0
    for key in ("c", "d", "e"):
        buckets.take(key)
    assert len(buckets) == 3  # "a" and "b", the least recently used, forgotten
    assert buckets.wait("a") == 0
    clock.now += 1
    assert buckets.take("c")


def test_the_log_limiter_writes_one_line_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    lines = LogLimiter(60, clock=clock)
    assert lines.allow("peer") == 0
    assert [lines.allow("peer") for _ in range(5)] == [None] * 5
    assert lines.allow("other") == 0
    clock.now += 61
    assert lines.allow("peer") == 5  # "5 more left out"
    assert lines.allow("peer") is None
