"""The routing rules written as plainly as possible: every decision scans everything.

This is the specification the indexed :class:`~routing.router.Router` must agree with,
decision for decision. Tests compare the two on random scripts; the benchmark measures how
much the indexes buy. Never use it in the engine: a decision costs O(agents) or O(calls).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from routing.decision import Match
from routing.model import AgentSpec, QueueSpec, Stage, Strategy, WaitingCall, resolve_stages

CallOrder = tuple[int, float, int, str]
AgentOrder = tuple[int, float, str]


class ReferenceRouter:
    """Same rules and same answers as :class:`~routing.router.Router`, by full scans."""

    def __init__(self, queues: Iterable[QueueSpec], agents: Iterable[AgentSpec]) -> None:
        self.queues = {q.queue_id: q for q in queues}
        self.stages = {qid: resolve_stages(q) for qid, q in self.queues.items()}
        self.agents = {a.agent_id: a for a in agents}
        self.calls: dict[str, WaitingCall] = {}
        #: agent id → (idle since, calls today)
        self.free: dict[str, tuple[float, int]] = {}

    # -- changes -------------------------------------------------------------------------

    def add_call(self, call: WaitingCall) -> None:
        self.calls[call.call_id] = call

    def remove_call(self, call_id: str) -> WaitingCall | None:
        return self.calls.pop(call_id, None)

    def set_stage(self, call_id: str, stage: int) -> None:
        self.calls[call_id] = dataclasses.replace(self.calls[call_id], stage=stage)

    def move_call(self, call_id: str, queue_id: str, *, queued_at: float | None = None) -> None:
        self.calls[call_id] = dataclasses.replace(
            self.calls[call_id], queue_id=queue_id, stage=0, queued_at=queued_at)

    def set_routable(self, agent_id: str, idle_since: float, *, calls_today: int = 0) -> None:
        self.free[agent_id] = (idle_since, calls_today)

    def set_unroutable(self, agent_id: str) -> None:
        self.free.pop(agent_id, None)

    def update_agent(self, agent: AgentSpec) -> None:
        self.agents[agent.agent_id] = agent

    # -- the rules -----------------------------------------------------------------------

    def stage_of(self, call: WaitingCall) -> Stage:
        return self.stages[call.queue_id][call.stage]

    def call_order(self, call: WaitingCall) -> CallOrder:
        """Higher effective priority first, then earlier entry, then arrival order."""
        priority = (self.queues[call.queue_id].priority + self.stage_of(call).priority_boost
                    + call.priority)
        return (-priority, call.entry_time, call.seq, call.call_id)

    def agent_order(self, agent_id: str, call: WaitingCall) -> AgentOrder:
        """The queue's strategy, then longest idle, then agent id."""
        idle_since, calls_today = self.free[agent_id]
        strategy = self.queues[call.queue_id].strategy
        if strategy is Strategy.MOST_SKILLED:
            rank = -self.stage_of(call).score(self.agents[agent_id])
        elif strategy is Strategy.FEWEST_CALLS:
            rank = calls_today
        else:
            rank = 0
        return (rank, idle_since, agent_id)

    def eligible(self, agent_id: str, call: WaitingCall) -> bool:
        return self.stage_of(call).admits(self.agents[agent_id])

    def candidates(self, call: WaitingCall) -> list[str]:
        return [a for a in self.free if self.eligible(a, call)]

    def _match(self, call: WaitingCall, agent_id: str) -> Match:
        return Match(call.call_id, agent_id, call.queue_id, len(self.candidates(call)),
                     call.stage, self.queues[call.queue_id].strategy)

    # -- decisions -----------------------------------------------------------------------

    def match_call(self, call_id: str) -> Match | None:
        call = self.calls.get(call_id)
        if call is None:
            return None
        agents = self.candidates(call)
        if not agents:
            return None
        return self._match(call, min(agents, key=lambda a: self.agent_order(a, call)))

    def match_agent(self, agent_id: str) -> Match | None:
        if agent_id not in self.free:
            return None
        calls = [c for c in self.calls.values() if self.eligible(agent_id, c)]
        if not calls:
            return None
        return self._match(min(calls, key=self.call_order), agent_id)

    def dispatch(self) -> list[Match]:
        """The best call that anyone may take goes to its best agent; again until none."""
        matches: list[Match] = []
        while True:
            for call in sorted(self.calls.values(), key=self.call_order):
                match = self.match_call(call.call_id)
                if match is not None:
                    matches.append(match)
                    del self.calls[match.call_id]
                    del self.free[match.agent_id]
                    break
            else:
                return matches
