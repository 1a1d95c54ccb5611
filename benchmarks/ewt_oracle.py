"""The oracle of the expected-wait benchmark: the best any estimator could tell.

``benchmarks/ewt_accuracy.py`` compares each caller's expected wait at entry with its
actual wait. How good *could* that be? Waits are random: the same state leads to many
futures. The oracle knows everything an estimator could possibly know at the caller's
entry, and the simulator's *true* model:

* the exact state: who waits, in the router's order, at which stage since when; which
  agent rings since when, talks since when, wraps up until when; who is idle since when;
* the true laws: talk times (the scenario's lognormal, exponential or constant, a call
  in progress drawn *conditioned on how long it has lasted*), the queues' wrap-up, the
  fixed ring time, callers' patience (exponential: memoryless, so a waiting caller's
  remaining patience is drawn afresh), and future arrivals (Poisson at the scenario's
  rates: a later caller of a higher-priority queue goes ahead, a later caller may take
  an agent while the caller waits for its next stage).

It replays the future ``rounds`` times, event by event, with the router's rules (an
agent who frees takes the best waiting call it may take: effective priority, then entry;
an arriving call, or one reaching its next stage, takes the longest-idle free agent its
stage admits; a caller whose patience runs out leaves, also while the phone rings), and
tells the median of the caller's drawn waits (the caller itself never gives up in the
replay: its wait is the one it has if it stays). No estimator working from the same
information can beat that median's error in the long run (for the median absolute
error; see :func:`statistics_of` for the variants).

The replay's rules are checked against the simulator itself: with the day's *actual*
draws (each call's talk time and patience and the arrival times, regenerated from the
simulator's seeds) instead of random ones, one replay reproduces every caller's actual
outcome — its wait to the microsecond, or its abandon (:class:`Clairvoyant`).

Scope: the scenarios of the accuracy benchmark (agents available all day, no
ring-no-answer, no partner sites, one Asterisk server, longest-idle queues).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from acd.domain import AgentState, AgentStatus, EngineCore
from routing.model import Strategy
from sim.scenario import HandleTime, Scenario
from sim.simulator import _arrival_times

_NORMAL = statistics.NormalDist()
#: A replay gives up on the caller after this long (then its wait counts as endless).
LIMIT = 4 * 3600.0
_FREE, _ARRIVE, _STAGE, _GIVEUP = range(4)
_WRAP, _RING, _TALK = range(3)


@dataclass(frozen=True, slots=True)
class Talk:
    """A talk-time law of the scenario (lognormal, exponential or constant)."""

    kind: str
    mean: float
    mu: float = 0.0
    sigma: float = 0.0

    @classmethod
    def of(cls, ht: HandleTime) -> Talk:
        if ht.distribution == "lognormal":
            sd = ht.mean if ht.sd is None else ht.sd
            sigma = math.sqrt(math.log1p((sd / ht.mean) ** 2))
            return cls("lognormal", ht.mean, math.log(ht.mean) - sigma * sigma / 2, sigma)
        return cls(ht.distribution, ht.mean)

    def draw(self, rng: random.Random) -> float:
        if self.kind == "lognormal":
            return rng.lognormvariate(self.mu, self.sigma)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        return self.mean

    def left(self, elapsed: float, rng: random.Random) -> float:
        """Talk time left of a call that has lasted ``elapsed``: T - elapsed | T > elapsed."""
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        if self.kind == "constant":
            return max(0.0, self.mean - elapsed)
        low = _NORMAL.cdf((math.log(elapsed) - self.mu) / self.sigma) if elapsed > 0 else 0.0
        p = min(max(low + (1.0 - low) * rng.random(), 1e-12), 1.0 - 1e-12)
        return max(0.0, math.exp(self.mu + self.sigma * _NORMAL.inv_cdf(p)) - elapsed)


@dataclass(frozen=True, slots=True)
class QueueTruth:
    talk: Talk
    patience: float | None
    wrap_up: float
    #: (start, end, arrivals per second), core clock.
    windows: tuple[tuple[float, float, float], ...]
    #: Effective priority of a new (ordinary) caller at each stage: queue + boost.
    priority: tuple[int, ...]
    #: Seconds after which each stage starts.
    after: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Model:
    """The simulator's true model of one day, on the core's clock."""

    ring: float
    queues: Mapping[str, QueueTruth]
    admitted: Mapping[tuple[str, int], frozenset[str]]

    @classmethod
    def of(cls, core: EngineCore, scenario: Scenario, epoch0: float) -> Model:
        if scenario.no_answer_probability or scenario.shifts:
            raise ValueError("the oracle models no ring-no-answer and no shifts")
        if core.servers.split or core.partners.partners:
            raise ValueError("the oracle models one Asterisk server and no partner site")
        router = core.router
        queues: dict[str, QueueTruth] = {}
        admitted: dict[tuple[str, int], frozenset[str]] = {}
        for qid, qs in core.settings.queues.items():
            stages = router.stages(qid)
            if qs.spec.strategy is not Strategy.LONGEST_IDLE:
                raise ValueError(f"queue {qid}: the oracle models longest-idle only")
            for j in range(len(stages)):
                admitted[(qid, j)] = core.estimator.admitted(qid, j)
            sc = scenario.queues.get(qid)
            queues[qid] = QueueTruth(
                Talk.of(sc.handle_time) if sc is not None else Talk("constant", 0.0),
                None if sc is None or sc.patience is None else sc.patience.mean,
                qs.wrap_up,
                () if sc is None else tuple(
                    (epoch0 + w.start, epoch0 + w.end, w.calls_per_hour / 3600.0)
                    for w in sorted(sc.arrivals, key=lambda w: w.start)
                    if w.calls_per_hour > 0),
                tuple(qs.priority + st.priority_boost for st in stages),
                tuple(st.after for st in stages))
        return cls(scenario.ring_time, queues, admitted)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state at the target caller's entry (read from the core)."""

    now: float
    target: str
    #: Idle agents: agent → idle since.
    free: Mapping[str, float]
    #: Busy agents: (agent, _WRAP/_RING/_TALK, wrap end / offer time / answer time,
    #: queue, call id, call entry).
    busy: tuple[tuple[str, int, float, str, str, float], ...]
    #: Waiting calls: (order key, call id, queue, stage, stage clock, entry).
    waiting: tuple[tuple[tuple[int, float, int], str, str, int, float, float], ...]

    @classmethod
    def of(cls, core: EngineCore, now: float, target: str,
           offered_at: Mapping[str, float]) -> Snapshot:
        free: dict[str, float] = {}
        busy: list[tuple[str, int, float, str, str, float]] = []
        for a in core.agents.values():
            if a.status is not AgentStatus.AVAILABLE:
                continue
            if a.state is AgentState.IDLE:
                if a.phone_free:
                    free[a.agent_id] = a.idle_since
                continue
            if a.state is AgentState.WRAP_UP:
                busy.append((a.agent_id, _WRAP, a.wrap_ends, "", "", 0.0))
                continue
            call = core.calls[a.call_id or ""]
            if a.state is AgentState.RINGING:
                busy.append((a.agent_id, _RING, offered_at[call.call_id], call.queue_id,
                             call.call_id, call.entry_time))
            else:
                assert call.answered_at is not None
                busy.append((a.agent_id, _TALK, call.answered_at, call.queue_id,
                             call.call_id, call.entry_time))
        waiting = []
        router = core.router
        for rq in router.queue_ids():
            for key, call_id in router.waiting_in(rq):
                w = core.calls[call_id].waiting
                assert w is not None
                waiting.append((key, call_id, w.queue_id, w.stage, w.stage_clock,
                                w.entry_time))
        waiting.sort()
        return cls(now, target, free, tuple(busy), tuple(waiting))


class Draws:
    """The random futures: talk times, patience and arrivals drawn from the true laws."""

    def __init__(self, model: Model, rng: random.Random) -> None:
        self.model = model
        self.rng = rng

    def left(self, call_id: str, queue: str, elapsed: float) -> float:
        return self.model.queues[queue].talk.left(elapsed, self.rng)

    def talk(self, call_id: str, queue: str) -> float:
        return self.model.queues[queue].talk.draw(self.rng)

    def deadline(self, call_id: str, queue: str, entry: float, now: float) -> float:
        """When the caller gives up (inf: never)."""
        mean = self.model.queues[queue].patience
        return math.inf if mean is None else now + self.rng.expovariate(1.0 / mean)

    def arrival(self, queue: str, after: float) -> tuple[float, str] | None:
        """The queue's next caller after ``after``: (time, call id) or None."""
        t = after
        for start, end, rate in self.model.queues[queue].windows:
            if end <= t:
                continue
            t = max(t, start) + self.rng.expovariate(rate)
            if t < end:
                return t, ""
            t = end  # memoryless: on into the next window
        return None


class Clairvoyant(Draws):
    """The day's actual draws, regenerated from the simulator's seeds (a check of the
    replay's rules: with these it must reproduce every actual outcome)."""

    def __init__(self, model: Model, scenario: Scenario, seed: int, epoch0: float) -> None:
        super().__init__(model, random.Random(0))
        self.times: dict[str, list[float]] = {}
        self.calls: dict[str, list[tuple[float, float | None]]] = {}
        for qid, qs in scenario.queues.items():
            times = [epoch0 + t for t in _arrival_times(
                qs.arrivals, random.Random(f"{seed}/{qid}/arrivals"))]
            call_rng = random.Random(f"{seed}/{qid}/calls")
            talk = qs.handle_time.sampler(call_rng)
            draws: list[tuple[float, float | None]] = []
            for _ in times:
                t = talk()
                p = None if qs.patience is None else call_rng.expovariate(1 / qs.patience.mean)
                draws.append((t, p))
            self.times[qid], self.calls[qid] = times, draws
        #: The core's call id → (queue, index of the queue's arrivals); fed by the caller.
        self.index: dict[str, tuple[str, int]] = {}

    def _draw(self, call_id: str) -> tuple[float, float | None]:
        queue, i = self.index[call_id] if ":" not in call_id else \
            (call_id.split(":")[0], int(call_id.split(":")[1]))
        return self.calls[queue][i]

    def left(self, call_id: str, queue: str, elapsed: float) -> float:
        return self._draw(call_id)[0] - elapsed

    def talk(self, call_id: str, queue: str) -> float:
        return self._draw(call_id)[0]

    def deadline(self, call_id: str, queue: str, entry: float, now: float) -> float:
        patience = self._draw(call_id)[1]
        return math.inf if patience is None else entry + patience

    def arrival(self, queue: str, after: float) -> tuple[float, str] | None:
        times = self.times.get(queue, [])
        i = bisect.bisect_right(times, after)
        return (times[i], f"{queue}:{i}") if i < len(times) else None


@dataclass(slots=True)
class _Waiting:
    """A waiting call in one replay: where it stands, its stage, when it gives up."""

    key: tuple[int, float, int]
    queue: str
    stage: int
    gone: float


def replay(model: Model, snap: Snapshot, draws: Draws, *, target_patience: bool = False,
           ) -> float:
    """One future from the snapshot: when the target caller is answered (inf: it gave up
    — only with ``target_patience`` — or waited beyond ``LIMIT``)."""
    now, target, ring = snap.now, snap.target, model.ring
    queues, admitted = model.queues, model.admitted
    #: (time, order, kind, agent / queue / call id, call id of an arrival, stage)
    heap: list[tuple[float, int, int, str, str, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    n = 0
    free = dict(snap.free)
    for agent, kind, t0, queue, call_id, entry in snap.busy:
        if kind == _WRAP:
            t = t0
        elif kind == _RING:
            answer = t0 + ring
            gone = draws.deadline(call_id, queue, entry, now)
            t = gone if gone < answer else \
                answer + draws.talk(call_id, queue) + queues[queue].wrap_up
        else:
            t = now + draws.left(call_id, queue, now - t0) + queues[queue].wrap_up
        n += 1
        push(heap, (t, n, _FREE, agent, "", 0))
    waiting: dict[str, _Waiting] = {}
    for key, call_id, queue, stage, clock, entry in snap.waiting:
        gone = draws.deadline(call_id, queue, entry, now) \
            if call_id != target or target_patience else math.inf
        waiting[call_id] = _Waiting(key, queue, stage, gone)
        for j in range(stage + 1, len(queues[queue].after)):
            n += 1
            push(heap, (max(now, clock + queues[queue].after[j]), n, _STAGE, call_id, "", j))
        if gone < math.inf:
            n += 1
            push(heap, (gone, n, _GIVEUP, call_id, "", 0))
    for qid in queues:
        nxt = draws.arrival(qid, now)
        if nxt is not None:
            n += 1
            push(heap, (nxt[0], n, _ARRIVE, qid, nxt[1], 0))
    seq = 1 << 40
    limit = now + LIMIT

    def pick(queue: str, stage: int) -> str | None:
        ok = admitted[(queue, stage)]
        best: tuple[float, str] | None = None
        for agent, since in free.items():
            if agent in ok and (best is None or (since, agent) < best):
                best = (since, agent)
        return None if best is None else best[1]

    def offer(call_id: str, w: _Waiting, agent: str, t: float) -> float | None:
        nonlocal n
        free.pop(agent, None)
        answer = t + ring
        if call_id == target:
            return math.inf if w.gone < answer else answer
        n += 1
        if w.gone < answer:  # hangs up while the phone rings: the agent is free at once
            push(heap, (w.gone, n, _FREE, agent, "", 0))
        else:
            push(heap, (answer + draws.talk(call_id, w.queue) + queues[w.queue].wrap_up,
                        n, _FREE, agent, "", 0))
        return None

    while heap:
        t, _, kind, name, arriving, j = pop(heap)
        if t > limit:
            return math.inf
        if kind == _FREE:
            best_id: str | None = None
            best: _Waiting | None = None
            for call_id, w in waiting.items():
                if name in admitted[(w.queue, w.stage)] and (best is None or w.key < best.key):
                    best_id, best = call_id, w
            if best_id is None or best is None:
                free[name] = t
                continue
            del waiting[best_id]
            done = offer(best_id, best, name, t)
            if done is not None:
                return done
        elif kind == _ARRIVE:
            nxt = draws.arrival(name, t)
            if nxt is not None:
                n += 1
                push(heap, (nxt[0], n, _ARRIVE, name, nxt[1], 0))
            qt = queues[name]
            seq += 1
            call_id = arriving or f"new{seq}"
            w = _Waiting((-qt.priority[0], t, seq), name, 0, draws.deadline(call_id, name, t, t))
            agent_free = pick(name, 0)
            if agent_free is not None:
                offer(call_id, w, agent_free, t)
                continue
            waiting[call_id] = w
            for stage in range(1, len(qt.after)):
                n += 1
                push(heap, (t + qt.after[stage], n, _STAGE, call_id, "", stage))
            if w.gone < math.inf:
                n += 1
                push(heap, (w.gone, n, _GIVEUP, call_id, "", 0))
        elif kind == _STAGE:
            found = waiting.get(name)
            if found is None or found.stage >= j:
                continue
            prio = queues[found.queue].priority
            found.key = (found.key[0] + prio[found.stage] - prio[j], found.key[1],
                         found.key[2])
            found.stage = j
            agent_free = pick(found.queue, j)
            if agent_free is not None:
                del waiting[name]
                done = offer(name, found, agent_free, t)
                if done is not None:
                    return done
        elif waiting.pop(name, None) is not None and name == target:  # _GIVEUP
            return math.inf
    return math.inf


def oracle_waits(model: Model, snap: Snapshot, rounds: int, seed: int) -> list[float]:
    """The target caller's wait in ``rounds`` random futures (inf: beyond the limit)."""
    draws = Draws(model, random.Random(seed))
    return [replay(model, snap, draws) - snap.now for _ in range(rounds)]


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value at which half the weight lies on either side."""
    pairs = sorted(zip(values, weights, strict=True))
    half = sum(weights) / 2
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= half:
            return v
    return pairs[-1][0]


#: Relative errors at which the bound is worked out (0.10, 0.11 … 0.50).
BOUND_GRID = tuple(round(0.10 + 0.01 * i, 2) for i in range(41))
#: Only callers who waited at least this long count in the per-caller relative error.
MIN_WAIT = 20.0


def coverage(waits: Sequence[float], patience: float | None,
             min_wait: float = MIN_WAIT) -> tuple[float, list[float]]:
    """For the bound on *any* estimator's median relative error.

    Returns ``(den, [num(r) for r in BOUND_GRID])`` from the drawn waits: ``den`` the
    chance the caller is counted (answered — it stays: exp(−wait / mean patience) —
    after waiting at least ``min_wait``), ``num(r)`` the largest chance, over every value
    an estimator could tell, that it is counted *and* within ±r of its wait. Summed over
    callers, Σ num(r) / Σ den is the largest share of counted callers within ±r that any
    estimator could expect; below one half, no estimator's median relative error can be
    r or less.
    """
    counted = sorted(w for w in waits if min_wait <= w < math.inf)
    weight = {w: 1.0 if patience is None else math.exp(-w / patience) for w in counted}
    n = len(waits)
    den = sum(weight.values()) / n
    nums = []
    for r in BOUND_GRID:
        # telling e covers the waits in [e/(1+r), e/(1−r)]: a window of width
        # log((1+r)/(1−r)) in log-wait; slide it over the sorted waits
        ratio = (1 + r) / (1 - r)
        best = acc = 0.0
        j = 0
        for w in counted:
            acc += weight[w]
            while counted[j] * ratio < w:
                acc -= weight[counted[j]]
                j += 1
            best = max(best, acc)
        nums.append(best / n)
    return den, nums


def bound(pairs: Sequence[tuple[float, list[float]]]) -> float:
    """The smallest relative error r (of ``BOUND_GRID``) at which an estimator could
    have half the counted callers within ±r (nan: none of the grid)."""
    den = sum(d for d, _ in pairs)
    if den <= 0:
        return math.nan
    for i, r in enumerate(BOUND_GRID):
        if sum(nums[i] for _, nums in pairs) / den >= 0.5:
            return r
    return math.nan


def best_share(pairs: Sequence[tuple[float, list[float]]], r: float) -> float:
    """The largest share of the counted callers any estimator could expect within ±r
    (``r`` on ``BOUND_GRID``; nan: nobody counted)."""
    den = sum(d for d, _ in pairs)
    if den <= 0:
        return math.nan
    i = BOUND_GRID.index(round(r, 2))
    return sum(nums[i] for _, nums in pairs) / den


def covering_pick(waits: Sequence[float], weights: Sequence[float], r: float) -> float:
    """The value whose ±r holds the most weight of the drawn waits (a wait W is within
    ±r of e when |e − W| ≤ r·W, i.e. e/(1+r) ≤ W ≤ e/(1−r))."""
    pairs = sorted(zip(waits, weights, strict=True))
    ratio = (1 + r) / (1 - r)
    best, pick, acc, j = -1.0, pairs[0][0], 0.0, 0
    for w, wt in pairs:
        acc += wt
        while pairs[j][0] * ratio < w:
            acc -= pairs[j][1]
            j += 1
        if acc > best:
            # any e in [(1−r)·w, (1+r)·low] covers the window low … w: its middle
            best, pick = acc, ((1 - r) * w + (1 + r) * pairs[j][0]) / 2
    return pick


def statistics_of(waits: Sequence[float], patience: float | None) -> dict[str, float]:
    """What could be told from the drawn waits:

    * ``median``: the best for the absolute error;
    * ``inverse``: the median weighted by 1/wait, the best for the mean *relative* error
      (minimises E|e − W| / W);
    * ``stayers``: the median weighted by the chance the caller stays that long
      (exp(−wait / mean patience)): the best for the callers who are answered — the only
      ones whose error is measured (a caller who gives up has no actual wait);
    * ``stayers_inverse``: both weights.
    """
    finite = [w for w in waits if w < math.inf] or [LIMIT]
    inv = [1.0 / max(w, 1.0) for w in finite]
    stay = [1.0 if patience is None else math.exp(-w / patience) for w in finite]
    return {
        "median": statistics.median(waits),
        "cover20": covering_pick(finite, stay, 0.2),
        "inverse": weighted_median(finite, inv),
        "stayers": weighted_median(finite, stay),
        "stayers_inverse": weighted_median(finite, [a * b for a, b in zip(inv, stay,
                                                                          strict=True)]),
    }
