"""Erlang B, C and A against published values, exact special cases and a simulation."""

from __future__ import annotations

import heapq
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.erlang import (
    agents_needed,
    average_speed_of_answer,
    erlang_a,
    erlang_b,
    erlang_c,
    service_level,
)


def poisson(mean: float, n: int) -> float:
    return math.exp(-mean + n * math.log(mean) - math.lgamma(n + 1))


# -- published values --------------------------------------------------------------------


def test_erlang_b_table_values() -> None:
    # Erlang B tables: 5 trunks at 3 Erlangs block 11.0 %; 10 trunks at 5 Erlangs, 1.8 %.
    assert erlang_b(5, 3.0) == pytest.approx(0.1101, abs=1e-4)
    assert erlang_b(10, 5.0) == pytest.approx(0.0184, abs=1e-4)
    assert erlang_b(1, 2.0) == pytest.approx(2.0 / 3.0)


def test_erlang_c_textbook_values() -> None:
    # 10 Erlangs on 12 agents: 44.94 % of callers wait.
    assert erlang_c(12, 10.0) == pytest.approx(0.4494, abs=1e-4)
    # The worked example used by Erlang C calculators: 360 calls per half hour, 4-minute
    # calls, 55 agents, 15-second target → wait 23.9 %, ASA 8.2 s, service level 84.6 %.
    rate, aht = 360 / 1800, 240.0
    assert erlang_c(55, rate * aht) == pytest.approx(0.2387, abs=1e-4)
    assert average_speed_of_answer(55, rate, aht) == pytest.approx(8.18, abs=0.01)
    assert service_level(55, rate, aht, 15.0) == pytest.approx(0.8459, abs=1e-4)


def test_erlang_c_single_agent_is_mm1() -> None:
    # M/M/1: P(wait) = ρ, ASA = ρ/(μ - λ)
    assert erlang_c(1, 0.6) == pytest.approx(0.6)
    assert average_speed_of_answer(1, 0.6, 1.0) == pytest.approx(0.6 / 0.4)


def test_overload_and_bad_inputs() -> None:
    assert erlang_c(10, 10.0) == 1.0
    assert service_level(10, 1.0, 10.0, 20.0) == 0.0
    assert average_speed_of_answer(10, 1.0, 10.0) == math.inf
    with pytest.raises(ValueError):
        erlang_c(0, 1.0)
    with pytest.raises(ValueError):
        erlang_b(3, -1.0)
    with pytest.raises(ValueError):
        erlang_a(3, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        erlang_a(3, 4.0, 1.0, math.inf)  # never hang up, more load than agents


def test_staffing_finds_the_fewest_agents() -> None:
    rate, aht = 360 / 1800, 240.0
    n = agents_needed(rate, aht, 20.0, 0.8)
    assert service_level(n, rate, aht, 20.0) >= 0.8 > service_level(n - 1, rate, aht, 20.0)


def test_large_centres_stay_finite() -> None:
    assert 0.0 < erlang_c(2000, 1950.0) < 1.0
    assert 0.0 <= erlang_b(5000, 10.0) < 1e-300
    a = erlang_a(500, 10.0, 60.0, 30.0)  # 600 Erlangs on 500 agents: abandonment balances
    assert 0.0 < a.p_abandon < 1.0 and 0.0 < a.service_level(20.0) < 1.0


# -- Erlang A: exact special cases -------------------------------------------------------


def test_erlang_a_with_patience_equal_to_handle_time_is_infinite_servers() -> None:
    # When callers hang up at the same rate they are served, the number in the system is
    # that of M/M/∞: Poisson(A). Then P(wait) = P(N ≥ c), P(abandon) = E[(N − c)⁺] / A.
    c, load = 12, 10.0
    a = erlang_a(c, load / 180, 180.0, 180.0)
    tail = math.fsum(poisson(load, n) for n in range(c, 200))
    excess = math.fsum((n - c) * poisson(load, n) for n in range(c, 200))
    assert a.p_wait == pytest.approx(tail, rel=1e-9)
    assert a.p_abandon == pytest.approx(excess / load, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(servers=st.integers(1, 30), occupancy=st.floats(0.2, 0.95),
       aht=st.floats(30.0, 600.0), target=st.floats(0.0, 120.0))
def test_erlang_a_without_abandonment_is_erlang_c(
    servers: int, occupancy: float, aht: float, target: float
) -> None:
    rate = servers * occupancy / aht
    a = erlang_a(servers, rate, aht, math.inf)
    assert a.p_abandon == 0.0
    assert a.p_wait == pytest.approx(erlang_c(servers, rate * aht), rel=1e-9)
    assert a.service_level(target) == pytest.approx(
        service_level(servers, rate, aht, target), abs=1e-7)
    assert a.mean_wait == pytest.approx(average_speed_of_answer(servers, rate, aht), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(servers=st.integers(1, 40), load=st.floats(0.5, 60.0), patience=st.floats(10.0, 600.0))
def test_erlang_a_limits_and_bounds(servers: int, load: float, patience: float) -> None:
    aht = 180.0
    a = erlang_a(servers, load / aht, aht, patience)
    assert a.p_no_wait + a.p_wait == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= a.p_abandon <= a.p_wait + 1e-12
    assert a.service_level(0.0) == pytest.approx(a.p_no_wait)
    assert a.service_level(math.inf) == pytest.approx(1.0 - a.p_abandon)
    levels = [a.service_level(t) for t in (5.0, 20.0, 60.0)]
    assert levels == sorted(levels)
    assert a.p_no_wait - 1e-9 <= levels[0] and levels[-1] <= 1.0 - a.p_abandon + 1e-9


def simulate(servers: int, rate: float, aht: float, patience: float, target: float,
             callers: int, seed: int) -> tuple[float, float]:
    """First come, first served with impatient callers: (answered within target, abandoned)."""
    rng = random.Random(seed)
    free_at = [0.0] * servers
    now = 0.0
    within = abandoned = 0
    for _ in range(callers):
        now += rng.expovariate(rate)
        start = max(now, free_at[0])
        if start - now > rng.expovariate(1 / patience):
            abandoned += 1
            continue
        within += start - now <= target
        heapq.heapreplace(free_at, start + rng.expovariate(1 / aht))
    return within / callers, abandoned / callers


def test_erlang_a_matches_a_simulation() -> None:
    a = erlang_a(5, 1.0, 4.0, 2.0)
    sl, ab = simulate(5, 1.0, 4.0, 2.0, 1.0, 60_000, seed=7)
    assert a.service_level(1.0) == pytest.approx(sl, abs=0.01)
    assert a.p_abandon == pytest.approx(ab, abs=0.01)
