"""Staffing arithmetic: Erlang B, Erlang C and Erlang A.

Callers arrive at random (Poisson, ``arrival_rate`` per time unit); a call takes an agent
``mean_handle_time`` on average (exponential); ``servers`` agents answer. The offered load
``A = arrival_rate × mean_handle_time`` is in Erlangs. Use one time unit throughout
(seconds, say): waits come back in that unit.

* **Erlang C** (M/M/c): callers wait as long as it takes. Probability of waiting, service
  level (share answered within a target time) and average speed of answer (ASA).
* **Erlang A** (M/M/c+M, Palm's model): callers also hang up after an exponential patience
  of mean ``mean_patience``, which is what real queues do. Probability of waiting, of
  abandoning, mean wait, and service level counted against *all* offered calls (an
  abandoned call misses the target).

Numerics: Erlang B by its recursion ``B(k) = A·B(k-1) / (k + A·B(k-1))``, which never
overflows; Erlang A's queue distribution in log space; its service level by
uniformisation (sums of positive terms only), so large centres and heavy overload stay
accurate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Queue-length terms below this share (log scale) of the largest are dropped.
_LOG_NEGLIGIBLE = -40.0
_MAX_QUEUE_TERMS = 1_000_000


def offered_load(arrival_rate: float, mean_handle_time: float) -> float:
    """Traffic in Erlangs: how many agents would be busy on average."""
    return arrival_rate * mean_handle_time


def erlang_b(servers: int, load: float) -> float:
    """Probability that all ``servers`` are busy when callers cannot wait (blocking)."""
    _check(servers, load)
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(servers: int, load: float) -> float:
    """Probability that a caller has to wait (all agents busy on arrival).

    1.0 when the load is at or above the number of agents: the queue grows for ever.
    """
    _check(servers, load)
    if load >= servers:
        return 1.0
    b = erlang_b(servers, load)
    return servers * b / (servers - load * (1.0 - b))


def service_level(servers: int, arrival_rate: float, mean_handle_time: float,
                  target: float) -> float:
    """Erlang C: share of callers answered within ``target`` (P(wait ≤ target))."""
    load = offered_load(arrival_rate, mean_handle_time)
    p_wait = erlang_c(servers, load)
    if load >= servers:
        return 0.0
    return 1.0 - p_wait * math.exp(-(servers - load) * target / mean_handle_time)


def average_speed_of_answer(servers: int, arrival_rate: float,
                            mean_handle_time: float) -> float:
    """Erlang C: mean wait over all callers (ASA); infinite when overloaded."""
    load = offered_load(arrival_rate, mean_handle_time)
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) * mean_handle_time / (servers - load)


def agents_needed(arrival_rate: float, mean_handle_time: float, target: float,
                  service_level_goal: float) -> int:
    """Erlang C staffing: the fewest agents answering ``service_level_goal`` of the
    callers within ``target`` (e.g. 0.8 within 20 s)."""
    if not 0.0 < service_level_goal < 1.0:
        raise ValueError("service_level_goal must be between 0 and 1")
    servers = max(1, math.floor(offered_load(arrival_rate, mean_handle_time)) + 1)
    while service_level(servers, arrival_rate, mean_handle_time, target) < service_level_goal:
        servers += 1
    return servers


def _check(servers: int, load: float) -> None:
    if servers < 1:
        raise ValueError("servers must be at least 1")
    if not load > 0.0 or math.isinf(load):
        raise ValueError("load must be positive and finite")


# -- Erlang A ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErlangA:
    """Steady state of a queue whose callers may hang up (Erlang A)."""

    servers: int
    arrival_rate: float
    service_rate: float
    abandon_rate: float
    #: Share of callers answered at once.
    p_no_wait: float
    #: ``ahead[k]``: share of callers who arrive with all agents busy and ``k`` callers
    #: already waiting ahead of them.
    ahead: tuple[float, ...]

    @property
    def p_wait(self) -> float:
        """Share of callers who must wait (find every agent busy)."""
        return math.fsum(self.ahead)

    @property
    def mean_queue(self) -> float:
        """Mean number of callers waiting."""
        return math.fsum(k * p for k, p in enumerate(self.ahead))

    @property
    def mean_wait(self) -> float:
        """Mean time in queue over all callers (answered and abandoned), by Little's law."""
        return self.mean_queue / self.arrival_rate

    @property
    def p_abandon(self) -> float:
        """Share of callers who hang up before an agent answers."""
        return self.abandon_rate * self.mean_queue / self.arrival_rate

    def service_level(self, target: float) -> float:
        """Share of all offered callers answered within ``target``."""
        if target <= 0.0:
            return self.p_no_wait
        if math.isinf(target):
            return 1.0 - self.p_abandon
        return self.p_no_wait + self._answered_in_queue_within(target)

    def _answered_in_queue_within(self, target: float) -> float:
        # A waiting caller with j callers ahead moves up at rate cμ + jθ (an agent frees
        # or someone ahead hangs up) and gives up at rate θ. Uniformise that chain at rate
        # Λ and weigh its step-by-step answered mass by Poisson(Λt) probabilities.
        c_mu, theta = self.servers * self.service_rate, self.abandon_rate
        size = len(self.ahead)
        rate = c_mu + size * theta
        up = [(c_mu + j * theta) / rate for j in range(size)]
        stay = [1.0 - u - theta / rate for u in up]
        mass = list(self.ahead)
        mean = rate * target
        if not mean > 0.0:  # a target so short that rate × target underflows
            return 0.0
        steps = math.ceil(mean + 12.0 * math.sqrt(mean) + 30.0)
        answered = total = 0.0
        for n in range(1, steps + 1):
            answered += mass[0] * up[0]
            mass = [mass[j] * stay[j] + mass[j + 1] * up[j + 1] for j in range(size - 1)] + [
                mass[-1] * stay[-1]]
            total += answered * math.exp(-mean + n * math.log(mean) - math.lgamma(n + 1))
        return total


def erlang_a(servers: int, arrival_rate: float, mean_handle_time: float,
             mean_patience: float) -> ErlangA:
    """Erlang A for ``servers`` agents; ``mean_patience`` may be ``math.inf`` (Erlang C)."""
    load = offered_load(arrival_rate, mean_handle_time)
    _check(servers, load)
    if not mean_patience > 0.0:
        raise ValueError("mean_patience must be positive")
    mu, theta = 1.0 / mean_handle_time, 1.0 / mean_patience
    if theta == 0.0 and load >= servers:
        raise ValueError("callers who never hang up need more agents than the load")
    # Relative to P(all c busy, nobody waiting): P(fewer than c busy) and P(k waiting).
    log_inv_b = 0.0  # log(1 / ErlangB(k, A)), by the same recursion inverted
    for k in range(1, servers + 1):
        log_inv_b = _log_add(0.0, math.log(k / load) + log_inv_b)
    log_terms = [0.0]
    c_mu = servers * mu
    peak = 0.0
    while True:
        k = len(log_terms)
        nxt = log_terms[-1] + math.log(arrival_rate / (c_mu + k * theta))
        if nxt < peak + _LOG_NEGLIGIBLE and arrival_rate < c_mu + k * theta:
            break
        if k >= _MAX_QUEUE_TERMS:
            raise ValueError("queue too long to evaluate (patience too long for the load)")
        log_terms.append(nxt)
        peak = max(peak, nxt)
    log_total = _log_add(log_inv_b, _log_sum(log_terms[1:])) if len(log_terms) > 1 \
        else log_inv_b
    ahead = tuple(math.exp(t - log_total) for t in log_terms)
    p_no_wait = math.exp(_log_expm1(log_inv_b) - log_total)
    return ErlangA(servers, arrival_rate, mu, theta, p_no_wait, ahead)


def _log_add(a: float, b: float) -> float:
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def _log_sum(values: list[float]) -> float:
    hi = max(values)
    return hi + math.log(math.fsum(math.exp(v - hi) for v in values))


def _log_expm1(x: float) -> float:
    """log(e^x − 1) for x > 0, without overflow."""
    return x + math.log(-math.expm1(-x))
