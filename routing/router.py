"""Pure routing policy: who takes which call.

No I/O, no asyncio, no clock: the caller passes times in. The engine tells the router
what changed (a call waits, a call leaves, an agent becomes routable or not) and asks
for matches. The router keeps small indexes so a decision looks only at the queues an
agent serves and the agents eligible for a queue, never at everything.

Ordering rules (ACD_SPEC §4):

* waiting calls: higher priority first, then the longer wait (earlier entry time), then
  arrival order;
* idle agents: the longest idle first (``idle_since`` ascending), then agent id.

Dispatch is work-conserving: after :meth:`Router.dispatch` no routable agent is left
idle while a call it may take is waiting.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A service line: what an agent must be able to do to take its calls."""

    queue_id: str
    required_skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0


@dataclass(frozen=True, slots=True)
class AgentSpec:
    agent_id: str
    skills: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, order=True)
class CallKey:
    """Sort key of a waiting call: smallest is served first."""

    neg_priority: int
    entry_time: float
    seq: int


@dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: str
    queue_id: str
    priority: int
    entry_time: float
    seq: int

    @property
    def key(self) -> CallKey:
        return CallKey(-self.priority, self.entry_time, self.seq)


@dataclass(frozen=True, slots=True)
class Match:
    call_id: str
    agent_id: str
    queue_id: str
    candidates: int


def is_eligible(agent: AgentSpec, queue: QueueSpec) -> bool:
    """An agent may serve a queue when it has every required skill at the minimum level."""
    return all(agent.skills.get(s, 0) >= lvl for s, lvl in queue.required_skills.items())


class Router:
    """Indexes of waiting calls per queue and routable agents per queue.

    Calls per queue live in a heap with lazy deletion; routable agents per queue in a
    heap keyed by ``(idle_since, agent_id)``, also with lazy deletion. Each operation is
    O(log n) amortised in the size of one queue's structures.
    """

    def __init__(self, queues: Iterable[QueueSpec], agents: Iterable[AgentSpec]) -> None:
        self._queues: dict[str, QueueSpec] = {q.queue_id: q for q in queues}
        self._agents: dict[str, AgentSpec] = {a.agent_id: a for a in agents}
        self._queues_of_agent: dict[str, tuple[str, ...]] = {}
        for a in self._agents.values():
            self._queues_of_agent[a.agent_id] = tuple(
                q.queue_id for q in self._queues.values() if is_eligible(a, q)
            )
        self._calls: dict[str, WaitingCall] = {}
        self._call_heaps: dict[str, list[tuple[CallKey, str]]] = {q: [] for q in self._queues}
        self._routable: dict[str, float] = {}
        self._agent_heaps: dict[str, list[tuple[float, str]]] = {q: [] for q in self._queues}

    # -- what the engine tells us -------------------------------------------------------

    def queues_of(self, agent_id: str) -> tuple[str, ...]:
        return self._queues_of_agent.get(agent_id, ())

    def add_call(self, call: WaitingCall) -> None:
        if call.queue_id not in self._queues:
            raise KeyError(f"unknown queue {call.queue_id!r}")
        if call.call_id in self._calls:
            raise ValueError(f"call {call.call_id!r} is already waiting")
        self._calls[call.call_id] = call
        heapq.heappush(self._call_heaps[call.queue_id], (call.key, call.call_id))

    def remove_call(self, call_id: str) -> WaitingCall | None:
        return self._calls.pop(call_id, None)  # heap entry dropped lazily

    def set_routable(self, agent_id: str, idle_since: float) -> None:
        """The agent can take a call now (available, idle, phone free)."""
        if agent_id not in self._agents:
            raise KeyError(f"unknown agent {agent_id!r}")
        if self._routable.get(agent_id) == idle_since:
            return
        self._routable[agent_id] = idle_since
        for qid in self._queues_of_agent[agent_id]:
            heapq.heappush(self._agent_heaps[qid], (idle_since, agent_id))

    def set_unroutable(self, agent_id: str) -> None:
        self._routable.pop(agent_id, None)  # heap entries dropped lazily

    def waiting(self) -> int:
        return len(self._calls)

    def is_routable(self, agent_id: str) -> bool:
        return agent_id in self._routable

    # -- decisions ---------------------------------------------------------------------

    def _best_call(self, queue_id: str) -> WaitingCall | None:
        heap = self._call_heaps[queue_id]
        while heap:
            key, call_id = heap[0]
            call = self._calls.get(call_id)
            if call is not None and call.queue_id == queue_id and call.key == key:
                return call
            heapq.heappop(heap)
        return None

    def _best_agent(self, queue_id: str) -> str | None:
        heap = self._agent_heaps[queue_id]
        while heap:
            idle_since, agent_id = heap[0]
            if self._routable.get(agent_id) == idle_since:
                return agent_id
            heapq.heappop(heap)
        return None

    def _candidates(self, queue_id: str) -> int:
        return sum(1 for a in self._routable if queue_id in self._queues_of_agent[a])

    def match_call(self, call_id: str) -> Match | None:
        """The best routable agent for one waiting call, or None."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        agent_id = self._best_agent(call.queue_id)
        if agent_id is None:
            return None
        return Match(call_id, agent_id, call.queue_id, self._candidates(call.queue_id))

    def match_agent(self, agent_id: str) -> Match | None:
        """The best waiting call, across every queue the agent serves, or None."""
        if agent_id not in self._routable:
            return None
        best: WaitingCall | None = None
        for qid in self._queues_of_agent.get(agent_id, ()):
            call = self._best_call(qid)
            if call is not None and (best is None or call.key < best.key):
                best = call
        if best is None:
            return None
        return Match(best.call_id, agent_id, best.queue_id, self._candidates(best.queue_id))

    def dispatch(self) -> list[Match]:
        """Every match possible right now; matched calls and agents are taken out.

        Serves calls in global order (priority, then wait), each to the longest-idle
        eligible agent. Work-conserving: when it returns, no routable agent is eligible
        for any waiting call.
        """
        matches: list[Match] = []
        while True:
            best_pair: tuple[CallKey, WaitingCall, str] | None = None
            for qid in self._queues:
                call = self._best_call(qid)
                if call is None:
                    continue
                agent_id = self._best_agent(qid)
                if agent_id is None:
                    continue
                if best_pair is None or call.key < best_pair[0]:
                    best_pair = (call.key, call, agent_id)
            if best_pair is None:
                return matches
            _, call, agent_id = best_pair
            matches.append(Match(call.call_id, agent_id, call.queue_id,
                                 self._candidates(call.queue_id)))
            self.remove_call(call.call_id)
            self.set_unroutable(agent_id)
