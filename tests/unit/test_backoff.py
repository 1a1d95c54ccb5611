"""Reconnect backoff policies."""

from __future__ import annotations

import random

import pytest

from acd.runtime.backoff import Backoff, ConstantBackoff, ExponentialBackoff


def test_ceiling_doubles_from_base_up_to_cap() -> None:
    policy = ExponentialBackoff(base=0.2, cap=1.0, jitter=False)
    assert [policy.compute(n) for n in range(6)] == [0.0, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_huge_failure_counts_do_not_overflow() -> None:
    policy = ExponentialBackoff(base=0.2, cap=10.0, jitter=False)
    assert policy.compute(10_000) == 10.0
    assert ExponentialBackoff(base=0.2, cap=10.0).compute(10**9) <= 10.0


def test_full_jitter_stays_within_zero_and_the_ceiling_and_spreads() -> None:
    policy = ExponentialBackoff(base=0.5, cap=4.0, rng=random.Random(7))
    for failures in range(1, 12):
        samples = [policy.compute(failures) for _ in range(200)]
        ceiling = policy.ceiling(failures)
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) - min(samples) > ceiling / 2  # really spread, not constant


def test_seeded_rng_is_reproducible() -> None:
    a = ExponentialBackoff(rng=random.Random(42))
    b = ExponentialBackoff(rng=random.Random(42))
    assert [a.compute(n) for n in range(1, 20)] == [b.compute(n) for n in range(1, 20)]


def test_no_failures_means_no_delay() -> None:
    assert ExponentialBackoff().compute(0) == 0.0
    assert ExponentialBackoff().compute(-3) == 0.0
    assert ConstantBackoff(0.5).compute(0) == 0.0


def test_constant_backoff() -> None:
    policy: Backoff = ConstantBackoff(0.25)
    assert [policy.compute(n) for n in (1, 2, 50)] == [0.25, 0.25, 0.25]


@pytest.mark.parametrize("kwargs", [{"base": 0.0}, {"base": -1.0}, {"base": 2.0, "cap": 1.0}])
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ConstantBackoff(-0.1)


def test_repr_is_readable() -> None:
    assert repr(ExponentialBackoff()) == "ExponentialBackoff(base=0.2, cap=10.0, jitter=True)"
