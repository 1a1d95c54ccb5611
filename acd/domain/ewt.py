"""Expected wait (EWT) of every waiting caller, from where it really stands.

Pure: reads the core (router order, agents, calls, handle times); no clock, no I/O.

**How.** A replay of the next minutes in the router's order — the order in which agents
will really take the calls, across queues and stages — run many times with handle times
drawn from what the queue's calls really took (a Monte-Carlo replay: the first of twenty
busy agents frees long before the *expected* end of any one of their calls, so a replay
with expected values alone would tell callers far too long):

1. every *available* agent gets a time it will be free: now when idle with a free phone;
   for a call in progress, now + a remaining talk time drawn from the queue's recent talk
   times *longer than the call has lasted so far* (scaled to this agent's own pace) +
   the queue's wrap-up; ringing, from the offer: ring + a drawn talk time + wrap-up; in
   wrap-up, when it ends. Paused and logged-out agents are not counted (nobody knows
   when they return);
2. the waiting calls are taken in the router's global order (effective priority, then
   entry); each goes to the agent its stage admits who is free first — a later stage
   admits more agents, from the moment the call will reach it — and that agent is busy
   again for a drawn handle time (ring + talk + wrap-up) of that queue;
3. the caller's EWT is the *median* over the rounds of when its agent picks up, minus
   now (the median: what minimises the error callers hear about). At least 64 rounds,
   more when few callers wait (up to 512, within a fixed amount of work: a replay of a
   thousand waiting callers costs what it did, a small centre's median is not off by
   the rounds' own noise — ``benchmarks/ewt_accuracy.py``). Callers ahead may give
   up first: with enough abandons measured, each draws a patience (exponential, its mean
   the waiting time of the queue's callers ÷ their abandons — the censored estimate) and
   takes nobody's time if it runs out first.

Handle times are per queue and per agent on that queue (an agent with ten calls of a
queue has its own pace, shrunk towards the queue's), from the core's completed calls
(:class:`HandleTimes`, fed the core's facts); before enough calls, the queue's configured
``expected_handle_time`` seeds them (as a constant). An estimate is **unsure** — never
announced — when no handle time is known yet, when no available agent can ever take the
call, or when the caller is beyond the replay's horizon. The rounds use a random
generator seeded by the core's version: the same state gives the same estimate.

The naive estimator (position × AHT ÷ agents) is :func:`naive_estimate`, kept for the
accuracy comparison (``benchmarks/ewt_accuracy.py``).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
import statistics
from collections import deque
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from acd.domain.records import Agent, AgentState, AgentStatus, Call, CallState
from acd.domain.servers import Servers
from acd.domain.settings import Settings
from routing import Router
from routing.model import Stage


class CoreState(Protocol):
    """What the estimator reads of the core (the core itself, structurally)."""

    @property
    def router(self) -> Router: ...

    @property
    def agents(self) -> Mapping[str, Agent]: ...

    @property
    def calls(self) -> Mapping[str, Call]: ...

    @property
    def handle_times(self) -> HandleTimes: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def servers(self) -> Servers: ...

    @property
    def version(self) -> int: ...

#: Talk times remembered per queue (the most recent).
SAMPLES = 400
#: Completed calls below which a queue's handle time is not trusted without a seed.
MIN_SAMPLES = 10
#: Prior weight (in calls) of the queue's pace in an agent's own (shrinkage).
AGENT_PRIOR = 8.0
#: Waiting callers the replay walks at most (in router order); beyond: unsure.
HORIZON = 1_000
#: Rounds of the Monte-Carlo replay: at least ``ROUNDS``; when few callers wait, as many
#: as ``WORK`` placements and agents' draws allow, up to ``MAX_ROUNDS`` (the median of
#: 64 rounds is off the median of the waits by ≈ 1/5 of their spread, of 512 by 1/14).
#: A replay of a thousand waiting callers stays at ``ROUNDS``: its cost does not grow.
ROUNDS = 64
MAX_ROUNDS = 512
WORK = 32_768


class _Talks:
    """One queue's recent talk times, with a sorted view for conditional means."""

    __slots__ = ("_dirty", "_mean", "_prefix", "_sorted", "recent", "total")

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=SAMPLES)
        self.total = 0
        self._sorted: list[float] = []
        self._prefix: list[float] = [0.0]
        self._dirty = False
        self._mean: float | None = None

    def add(self, talk: float) -> None:
        self.recent.append(talk)
        self.total += 1
        self._dirty = True
        self._mean = None

    def _view(self) -> None:
        if self._dirty:
            self._sorted = sorted(self.recent)
            self._prefix = [0.0, *itertools.accumulate(self._sorted)]
            self._dirty = False

    def mean(self) -> float | None:
        if self._mean is None and self.recent:
            self._mean = sum(self.recent) / len(self.recent)
        return self._mean

    def draw(self, rng: random.Random) -> float:
        return self.recent[int(rng.random() * len(self.recent))]

    def draw_longer(self, elapsed: float, rng: random.Random) -> float | None:
        """A talk time of the recent ones longer than ``elapsed``, minus ``elapsed``."""
        self._view()
        n = len(self._sorted)
        i = bisect.bisect_right(self._sorted, elapsed)
        if i >= n:
            return None
        return self._sorted[i + int(rng.random() * (n - i))] - elapsed

    def remaining(self, elapsed: float) -> float | None:
        """E[T - elapsed | T > elapsed] over the recent talk times (None: none longer)."""
        self._view()
        n = len(self._sorted)
        i = bisect.bisect_right(self._sorted, elapsed)
        longer = n - i
        if longer == 0:
            return None
        return (self._prefix[n] - self._prefix[i]) / longer - elapsed


@dataclass(slots=True)
class _Pace:
    mean: float = 0.0
    count: int = 0


class HandleTimes:
    """Talk times per queue and per (agent, queue), from completed calls."""

    def __init__(self, seeds: Mapping[str, float | None], wrap_up: Mapping[str, float]) -> None:
        self._seeds = dict(seeds)
        self._wrap = dict(wrap_up)
        self._talks: dict[str, _Talks] = {q: _Talks() for q in wrap_up}
        self._agents: dict[tuple[str, str], _Pace] = {}
        #: Offer → answer per queue (the phone rings before the caller is answered).
        self._rings: dict[str, _Pace] = {}
        #: Per queue: seconds callers spent waiting (answered or not) and how many gave
        #: up: the exponential patience's mean is exposure / abandons (censored MLE).
        self._exposure: dict[str, float] = {}
        self._abandons: dict[str, int] = {}
        self._offered_at: dict[str, tuple[str, float]] = {}
        #: (queue, agent) → the agent's pace ÷ the queue's, until the next talk time.
        self._scales: dict[tuple[str, str], float] = {}

    def offered(self, call_id: str, queue: str, wait: float) -> None:
        self._offered_at[call_id] = (queue, wait)

    def answered(self, call_id: str, wait: float) -> None:
        """The call was answered after ``wait`` (from entry): its ring time is measured."""
        offered = self._offered_at.pop(call_id, None)
        if offered is None:
            return
        queue, at = offered
        pace = self._rings.setdefault(queue, _Pace())
        pace.count = min(pace.count + 1, 200)  # a moving average once warm
        pace.mean += (max(0.0, wait - at) - pace.mean) / pace.count

    def forget(self, call_id: str) -> None:
        self._offered_at.pop(call_id, None)

    def offered_wait(self, call_id: str) -> float | None:
        """How long after its entry the call was offered (None: not offered)."""
        offered = self._offered_at.get(call_id)
        return None if offered is None else offered[1]

    def waited(self, queue: str, wait: float, *, abandoned: bool) -> None:
        """A caller of the queue stopped waiting after ``wait`` (answered or gave up)."""
        self._exposure[queue] = self._exposure.get(queue, 0.0) + max(0.0, wait)
        if abandoned:
            self._abandons[queue] = self._abandons.get(queue, 0) + 1

    def patience(self, queue: str) -> float | None:
        """Mean patience of the queue's callers (None: too few abandons to tell)."""
        abandons = self._abandons.get(queue, 0)
        if abandons < MIN_SAMPLES:
            return None
        return self._exposure.get(queue, 0.0) / abandons

    def ring(self, queue: str) -> float:
        pace = self._rings.get(queue)
        return pace.mean if pace is not None else 0.0

    def observe(self, queue: str, agent: str | None, talk: float) -> None:
        talks = self._talks.get(queue)
        if talks is None or talk <= 0:
            return
        talks.add(talk)
        self._scales.clear()
        if agent is not None:
            pace = self._agents.setdefault((agent, queue), _Pace())
            pace.count += 1
            pace.mean += (talk - pace.mean) / pace.count

    def known(self, queue: str) -> bool:
        talks = self._talks.get(queue)
        return (talks is not None and talks.total >= MIN_SAMPLES) or \
            self._seeds.get(queue) is not None

    def queue_talk(self, queue: str) -> float | None:
        talks = self._talks.get(queue)
        measured = talks.mean() if talks is not None and talks.total >= MIN_SAMPLES else None
        return measured if measured is not None else self._seeds.get(queue)

    def talk(self, queue: str, agent: str) -> float | None:
        """The agent's expected talk time on the queue (shrunk towards the queue's)."""
        base = self.queue_talk(queue)
        if base is None:
            return None
        pace = self._agents.get((agent, queue))
        if pace is None or pace.count == 0:
            return base
        return (pace.count * pace.mean + AGENT_PRIOR * base) / (pace.count + AGENT_PRIOR)

    def handle(self, queue: str, agent: str) -> float | None:
        """How long the agent is held by one call of the queue: ring + talk + wrap-up."""
        talk = self.talk(queue, agent)
        return None if talk is None else self.ring(queue) + talk + self._wrap.get(queue, 0.0)

    def remaining_talk(self, queue: str, agent: str, elapsed: float) -> float | None:
        """Expected talk time left of a call that has lasted ``elapsed`` seconds."""
        base = self.queue_talk(queue)
        mine = self.talk(queue, agent)
        if base is None or mine is None:
            return None
        scale = mine / base if base > 0 else 1.0
        talks = self._talks.get(queue)
        left = None
        if talks is not None and talks.total >= MIN_SAMPLES:
            left = talks.remaining(elapsed / scale)
            left = None if left is None else left * scale
        if left is None:  # longer than anything recent (or no samples): a short tail
            left = max(mine - elapsed, 0.2 * mine)
        return left

    def wrap_up(self, queue: str) -> float:
        return self._wrap.get(queue, 0.0)

    def _measured(self, queue: str) -> _Talks | None:
        talks = self._talks.get(queue)
        return talks if talks is not None and talks.total >= MIN_SAMPLES else None

    def _scale(self, queue: str, agent: str) -> float:
        key = (queue, agent)
        scale = self._scales.get(key)
        if scale is None:
            base, mine = self.queue_talk(queue), self.talk(queue, agent)
            scale = self._scales[key] = mine / base if base and mine else 1.0
        return scale

    def draw_handle(self, queue: str, agent: str, rng: random.Random) -> float | None:
        """One call's handle time (ring + talk + wrap-up) as this agent might take it."""
        talks = self._measured(queue)
        if talks is None:
            return self.handle(queue, agent)
        return (self.ring(queue) + talks.draw(rng) * self._scale(queue, agent)
                + self._wrap.get(queue, 0.0))

    def draw_remaining(self, queue: str, agent: str, elapsed: float,
                       rng: random.Random) -> float | None:
        """Talk time left of a call that has lasted ``elapsed`` seconds, drawn."""
        talks = self._measured(queue)
        if talks is None:
            return self.remaining_talk(queue, agent, elapsed)
        scale = self._scale(queue, agent)
        left = talks.draw_longer(elapsed / scale, rng)
        if left is None:  # longer than anything recent: a short tail
            return self.remaining_talk(queue, agent, elapsed)
        return left * scale


@dataclass(frozen=True, slots=True)
class Estimate:
    """A caller's expected wait: ``seconds`` from now (None when unknown), whether it is
    sure enough to tell the caller, its place in its queue's order, and how many
    available agents could take it."""

    seconds: float | None
    sure: bool
    position: int
    agents: int


UNKNOWN = Estimate(None, False, 0, 0)


@dataclass(slots=True)
class Sweep:
    """The replay's result at ``now``: every walked caller's estimate, and per router
    queue what a caller arriving now would wait."""

    now: float
    version: int
    calls: dict[str, Estimate] = field(default_factory=dict)
    newcomer: dict[str, Estimate] = field(default_factory=dict)
    #: How many waiting calls the replay walked (at most the horizon).
    calls_walked: int = 0

    def wait_of(self, call_id: str, router_queue: str, position: int | None,
                now: float) -> float | None:
        """A waiting caller's expected wait from ``now`` (None when unsure): its own
        estimate when the replay walked it; a caller who joined since is placed in its
        queue's line, the wait of a newcomer at the replay scaled to its position."""
        est = self.calls.get(call_id)
        if est is None:
            est = self.newcomer.get(router_queue)
            if est is None or not est.sure or est.seconds is None or position is None:
                return None
            return max(0.0, est.seconds * position / max(1, est.position) - (now - self.now))
        if not est.sure or est.seconds is None:
            return None
        return max(0.0, est.seconds - (now - self.now))


@dataclass(frozen=True, slots=True)
class _AgentNow:
    """An available agent as a sweep saw it: idle or in wrap-up, free ``at``; ringing or
    talking for ``queue``, since ``at``."""

    agent_id: str
    state: AgentState
    queue: str
    at: float


@dataclass(frozen=True, slots=True)
class _CallNow:
    """A waiting call as a sweep saw it."""

    call_id: str
    queue_id: str
    rq: str
    position: int
    stage: int
    stage_clock: float


class _Replay:
    """The mutable state of one round: agents' free times and the per-(router queue,
    stage) heaps of the agents each stage admits, with lazy deletion by version."""

    def __init__(self, estimator: WaitEstimator, free: dict[str, float]) -> None:
        self.estimator = estimator
        self.free = free
        self.version = dict.fromkeys(free, 0)
        self.heaps: dict[tuple[str, int], list[tuple[float, int, str]]] = {}
        self.members: dict[str, list[tuple[str, int]]] = {}

    def heap(self, rq: str, stage: int) -> list[tuple[float, int, str]]:
        key = (rq, stage)
        h = self.heaps.get(key)
        if h is None:
            free, version = self.free, self.version
            h = [(free[a], version[a], a) for a in self.estimator.admitted(rq, stage)
                 if a in free]
            heapq.heapify(h)
            self.heaps[key] = h
            for _, _, a in h:
                self.members.setdefault(a, []).append(key)
        return h

    def top(self, h: list[tuple[float, int, str]]) -> tuple[float, str] | None:
        version = self.version
        while h and version[h[0][2]] != h[0][1]:
            heapq.heappop(h)
        return (h[0][0], h[0][2]) if h else None

    def busy_until(self, agent: str, t: float) -> None:
        """The agent takes a call and is free again at ``t``."""
        self.free[agent] = t
        self.version[agent] += 1
        entry = (t, self.version[agent], agent)
        for key in self.members.get(agent, ()):
            heapq.heappush(self.heaps[key], entry)


class WaitEstimator:
    """EWT over one core (see the module docstring)."""

    def __init__(self, core: CoreState, *, horizon: int = HORIZON,
                 rounds: int = ROUNDS, max_rounds: int = MAX_ROUNDS,
                 work: int = WORK) -> None:
        self.core = core
        self.horizon = horizon
        self.rounds = rounds
        self.max_rounds = max_rounds
        self.work = work
        self._admitted: dict[tuple[str, int], frozenset[str]] = {}

    # -- inputs ----------------------------------------------------------------------

    def admitted(self, router_queue: str, stage: int) -> frozenset[str]:
        """The agents a stage of a router queue admits (skills, levels, groups)."""
        key = (router_queue, stage)
        found = self._admitted.get(key)
        if found is None:
            router = self.core.router
            st = router.stages(router_queue)[stage]
            found = frozenset(a for a, spec in router.agent_specs().items() if st.admits(spec))
            self._admitted[key] = found
        return found

    def free_at(self, agent: Agent, now: float, rng: random.Random | None = None,
                ) -> float | None:
        """When an available agent will be free for a new call (None: not counted);
        drawn with ``rng``, else the expected time."""
        snap = self._agent_now(agent, now)
        return None if snap is None else self._free(snap, now, rng)

    def _agent_now(self, agent: Agent, now: float) -> _AgentNow | None:
        """What the replay needs of an agent, read once (the core moves on while a sweep
        runs in steps)."""
        if agent.status is not AgentStatus.AVAILABLE:
            return None
        state = agent.state
        if state is AgentState.IDLE:
            return _AgentNow(agent.agent_id, state, "", now) if agent.phone_free else None
        if state is AgentState.WRAP_UP:
            return _AgentNow(agent.agent_id, state, "", max(now, agent.wrap_ends))
        call = self.core.calls.get(agent.call_id or "")
        if call is None:
            return None
        if state is AgentState.RINGING:  # since the offer
            offered = self.core.handle_times.offered_wait(call.call_id)
            since = now if offered is None else min(now, call.entry_time + offered)
            return _AgentNow(agent.agent_id, state, call.queue_id, since)
        started = call.answered_at if call.answered_at is not None else now
        return _AgentNow(agent.agent_id, state, call.queue_id, started)

    def _free(self, snap: _AgentNow, now: float, rng: random.Random | None) -> float | None:
        state = snap.state
        if state is AgentState.IDLE or state is AgentState.WRAP_UP:
            return snap.at
        times, queue, aid = self.core.handle_times, snap.queue, snap.agent_id
        if state is AgentState.RINGING:  # ring + talk + wrap-up from the offer
            handle = times.handle(queue, aid) if rng is None \
                else times.draw_handle(queue, aid, rng)
            return None if handle is None else \
                max(snap.at, now - times.ring(queue)) + handle
        elapsed = max(0.0, now - snap.at)
        left = times.remaining_talk(queue, aid, elapsed) if rng is None \
            else times.draw_remaining(queue, aid, elapsed, rng)
        return None if left is None else now + left + times.wrap_up(queue)

    # -- the replay ------------------------------------------------------------------

    def sweep(self, now: float) -> Sweep:
        """The replay at ``now``, at once."""
        steps = self.steps(now)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: Sweep = done.value
                return result

    def steps(self, now: float, chunk: int = 256) -> Generator[None, None, Sweep]:
        """The replay at ``now`` in steps of about ``chunk`` placements (or agents'
        draws): between two steps the caller may let the core move on (the runtime
        routes calls in between). The waiting calls, their order and the agents are
        read before the first step, so the result is the state at ``now`` (the handle
        times drawn are the latest: a call ending meanwhile adds its talk time)."""
        core = self.core
        router = core.router
        out = Sweep(now, core.version)
        available = [snap for a in core.agents.values()
                     if (snap := self._agent_now(a, now)) is not None]
        router_queues = router.queue_ids()
        entries = [(key, call_id, rq) for rq in router_queues
                   for key, call_id in router.waiting_in(rq)]
        cut = len(entries) > self.horizon
        ordered = heapq.nsmallest(self.horizon, entries) if cut else sorted(entries)
        calls: list[_CallNow] = []
        positions: dict[str, int] = {}
        for _, call_id, rq in ordered:
            positions[rq] = positions.get(rq, 0) + 1
            call = core.calls.get(call_id)
            waiting = None if call is None else call.waiting
            if call is not None and waiting is not None \
                    and call.state is CallState.WAITING:
                calls.append(_CallNow(call_id, call.queue_id, rq, positions[rq],
                                      waiting.stage, waiting.stage_clock))
        times = core.handle_times
        known = {q: times.known(q) for q in core.settings.queues}
        rng = random.Random(core.version)
        patience = {q: times.patience(q) for q in core.settings.queues}
        stages = {rq: router.stages(rq) for rq in router_queues}
        rings = {q: times.ring(q) for q in core.settings.queues}
        per_round = len(available) + len(calls) + len(router_queues)
        rounds = max(self.rounds, min(self.max_rounds, self.work // max(1, per_round)))
        starts: dict[str, list[float]] = {c.call_id: [] for c in calls}
        newcomer: dict[str, list[float]] = {rq: [] for rq in router_queues}
        pools: dict[str, int] = {}
        agents_of: dict[str, int] = {}
        work = 0
        for _ in range(rounds):
            free: dict[str, float] = {}
            for snap in available:
                t = self._free(snap, now, rng)
                if t is not None:
                    free[snap.agent_id] = t
                work += 1
                if work >= chunk:
                    work = 0
                    yield
            replay = _Replay(self, free)
            for c in calls:
                placed = self._place(replay, c, now, rng, patience.get(c.queue_id),
                                     stages[c.rq], rings.get(c.queue_id, 0.0))
                if placed is not None:
                    starts[c.call_id].append(placed[0])
                    agents_of[c.call_id] = placed[1]
                work += 1
                if work >= chunk:
                    work = 0
                    yield
            for rq in router_queues:
                h = replay.heap(rq, 0)
                pools[rq] = len(h)
                first = replay.top(h)
                if first is not None:
                    newcomer[rq].append(first[0] + rings.get(self._queue_of(rq), 0.0))
        for c in calls:
            drawn = starts[c.call_id]
            if not drawn:
                out.calls[c.call_id] = Estimate(None, False, c.position, 0)
                continue
            out.calls[c.call_id] = Estimate(
                _told(drawn, now), known.get(c.queue_id, False),
                c.position, agents_of.get(c.call_id, 0))
        for rq in router_queues:
            drawn = newcomer[rq]
            out.newcomer[rq] = Estimate(
                _told(drawn, now) if drawn else None,
                bool(drawn) and not cut and known.get(self._queue_of(rq), False),
                positions.get(rq, 0) + 1, pools.get(rq, 0))
        out.calls_walked = len(calls)
        return out

    def _place(self, replay: _Replay, call: _CallNow, now: float, rng: random.Random,
               patience: float | None, stages: tuple[Stage, ...],
               ring: float) -> tuple[float, int] | None:
        """One round: when the call's agent picks up (and how many could take it). With
        a measured ``patience`` the caller may give up first (memoryless: its remaining
        patience is drawn afresh): it then takes nobody's time, but its own estimate
        still counts the wait it would have had. ``stages``: its router queue's;
        ``ring``: its queue's ring time."""
        rq, stage, stage_clock = call.rq, call.stage, call.stage_clock
        best: tuple[float, str] | None = None
        agents = 0
        for j in range(stage, len(stages)):
            eligible_from = now if j == stage else max(now, stage_clock + stages[j].after)
            h = replay.heap(rq, j)
            agents = max(agents, len(h))
            t = replay.top(h)
            if t is not None and (best is None or max(t[0], eligible_from) < best[0]):
                best = (max(t[0], eligible_from), t[1])
        if best is None:
            return None
        start, agent = best
        gives_up = patience is not None and start - now > rng.expovariate(1.0 / patience)
        if not gives_up:
            handle = self.core.handle_times.draw_handle(call.queue_id, agent, rng)
            replay.busy_until(agent, start + (handle or 0.0))
        # the caller is answered when the agent picks up: the phone rings first
        return start + ring, agents

    def _queue_of(self, router_queue: str) -> str:
        return router_queue.split("@", 1)[0] if self.core.servers.split else router_queue


def _told(drawn: list[float], now: float) -> float:
    """What to tell from the rounds: the median of the drawn waits (what minimises the
    error callers hear about, in seconds; ``benchmarks/ewt_accuracy.py`` compared it,
    under the simulator's true model, with a 1/wait-weighted median, a median weighted
    by the chance to stay that long and a ±20 %-coverage pick: none better)."""
    return max(0.0, statistics.median(drawn) - now)


def naive_estimate(position: int, aht: float | None, agents: int) -> float | None:
    """The textbook estimator: position × AHT ÷ agents (None without AHT or agents)."""
    if aht is None or agents <= 0:
        return None
    return position * aht / agents


def spoken_minutes(seconds: float) -> int:
    """What a caller is told: 0 for "less than a minute", else the nearest whole minute
    (at least 1)."""
    if seconds < 60:
        return 0
    return max(1, round(seconds / 60))
