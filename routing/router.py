"""Pure routing policy: who takes which call.

No I/O, no asyncio, no clock: the caller passes times in. The engine tells the router what
changed (a call waits, leaves, moves to its next escalation stage or to another queue; an
agent becomes routable or not) and asks for decisions.

Ordering rules (ACD_SPEC §4):

* waiting calls: the higher effective priority first (queue priority + the stage's boost +
  the caller's own priority), then the longer wait (earlier entry time), then arrival
  order (``seq``);
* free agents, by the queue's :class:`~routing.model.Strategy`: longest idle; most skilled
  then longest idle; fewest calls today then longest idle; ties by agent id.

When an agent becomes free it takes the best call it may take across every queue and
stage; when a call arrives it goes to the best free agent of its stage.
:meth:`Router.dispatch` is work-conserving: when it returns, no routable agent is eligible
for any waiting call.

How it stays fast (no decision walks all agents or all calls):

* every (queue, stage) is a *slot* with a heap of its waiting calls;
* free agents sit in *rings*, the bullseye itself: ring *j* of a queue holds the free
  agents who qualify from stage *j* on, so a call in stage *k* may go to rings 0..*k*. An
  agent joins one ring per queue it serves (``most_skilled`` queues: one more where a
  stage scores other skills), so becoming free costs one heap push per queue, not per
  stage. Which slots and rings an agent has is worked out when it is loaded or its skills
  change, for that agent only;
* heaps delete lazily: an entry carries a token, stale when the call left or the agent
  stopped being free; stale entries are dropped when they reach the top, and a heap with
  more garbage than live entries is rebuilt. Live counts give the number of candidates
  in O(stages);
* a decision looks at the slots of one agent, or the rings of one call's slot;
  :meth:`Router.dispatch` looks only at what changed since the last dispatch, and an
  agent freed since then joins its rings only if that dispatch leaves it free.

Why the others did not get an offered call (:meth:`Router.exclusions`, asked by the
engine after ``dispatch`` for each match, with its reasons for unroutable agents) comes
from the same indexes: a per-skill index of the agents holding each skill picks the
stage's rarest required skill (the *pivot*); its holders are sorted once per slot into
the agents the stage admits and counts of why the others are not admitted (kept until an
agent's skills change); everyone else misses the pivot, counted from the index sizes. At
the offer only the stage's admitted agents who are not free are looked at (the engine's
reason for each); the free ones are counted by the rings, and the next best of them read
off the tops of the ring heaps.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import filterfalse

from routing.decision import (
    Exclusions,
    Explanation,
    Match,
    PassedOver,
    Reason,
    RunnerUp,
    Why,
)
from routing.model import (
    AgentSpec,
    CallKey,
    QueueSpec,
    Stage,
    Strategy,
    WaitingCall,
    is_eligible,
    resolve_stages,
)

__all__ = [
    "RUNNERS_UP",
    "AgentSpec",
    "CallKey",
    "Match",
    "OrderKey",
    "QueueSpec",
    "Router",
    "UnroutableReason",
    "WaitingCall",
    "is_eligible",
]

#: The engine's reason an agent is not routable (paused, on a call, phone busy …): the
#: router knows only who is free.
UnroutableReason = Callable[[str], Reason]

#: How many agents an offer's :class:`~routing.decision.Exclusions` names.
RUNNERS_UP = 5

#: An offer asks the engine's reason for at most this many admitted agents; the rest are
#: counted as not routable, reason not looked up (a stage admitting thousands of agents).
WALK_LIMIT = 1024

_WHY_ORDER = {why: i for i, why in enumerate(Why)}
_NOT_LOOKED_UP = Reason(Why.NOT_ROUTABLE, detail="not looked up")

#: A waiting call in a slot heap: (-effective priority, entry time, seq, call id).
_CallEntry = tuple[int, float, int, str]
#: Where a waiting call stands: (-effective priority, entry time, seq); smaller first.
OrderKey = tuple[int, float, int]
#: A free agent in a ring heap: (strategy rank, idle since, agent id, routable token).
_AgentEntry = tuple[int, float, str, int]

#: A heap is rebuilt once it holds more than twice its live entries plus this slack.
_GARBAGE_SLACK = 64


@dataclass(eq=False, slots=True)
class _Ring:
    """Free agents who qualify for a queue from one stage on (a ring of the bullseye),
    ranked by the queue's strategy (for ``most_skilled``: on one stage's skills)."""

    entries: list[_AgentEntry] = field(default_factory=list)
    live: int = 0


@dataclass(eq=False, slots=True)
class _Slot:
    """The waiting calls of one (queue, stage), and the rings its free agents are in."""

    queue_id: str
    stage: Stage
    strategy: Strategy
    priority: int  # queue priority + stage boost
    #: Rings 0..stage, ranked for this stage: the free agents who may take its calls.
    rings: tuple[_Ring, ...] = ()
    calls: list[_CallEntry] = field(default_factory=list)
    live_calls: int = 0

    @property
    def live_agents(self) -> int:
        return sum(r.live for r in self.rings)


@dataclass(frozen=True, slots=True)
class _Roster:
    """Who a slot's stage admits, and why the others are not admitted: worked out once
    (from the holders of the stage's rarest required skill) until an agent changes."""

    pivot: str | None
    holders: int
    #: The agents the stage admits, by id.
    admitted: tuple[str, ...]
    #: Agents not admitted, by first unmet requirement (missing the pivot: by index size).
    counts: tuple[tuple[Reason, int], ...]
    #: The agents nearest to qualifying (earliest later stage), at most RUNNERS_UP.
    nearest: tuple[RunnerUp, ...]
    #: Free agents other than the chosen one: ranked below by the queue's strategy.
    ranked: Reason


#: A reason as a plain key while counting: (code, skill, level).
_Key = tuple[Why, str, int]


def _first_unmet(stage: Stage, agent: AgentSpec) -> tuple[_Key, int] | None:
    """The first requirement of the stage the agent does not meet (with the agent's
    level in that skill, 0 if none), or None when the stage admits it."""
    skills = agent.skills
    for skill, level in stage.requirement:
        has = skills.get(skill, 0)
        if has < level:
            return ((Why.LEVEL_TOO_LOW, skill, level) if has
                    else (Why.MISSING_SKILL, skill, 0)), has
    if stage.groups is not None and stage.groups.isdisjoint(agent.groups):
        return (Why.NOT_IN_GROUP, "", 0), 0
    return None


def _reason_order(reason: Reason) -> tuple[int, str, int, str]:
    return (_WHY_ORDER[reason.code], reason.skill, reason.level, reason.detail)


@dataclass(frozen=True, slots=True)
class _Memberships:
    """The rings an agent joins when free, by how they rank it.

    Rings of one ranking share one entry tuple; the entry lists are held directly (a
    compaction rebuilds a list in place).
    """

    #: longest_idle rings, ranked (0, idle since)
    by_idle: tuple[list[_AgentEntry], ...] = ()
    #: fewest_calls rings, ranked (calls today, idle since)
    by_calls: tuple[list[_AgentEntry], ...] = ()
    #: most_skilled rings with the agent's rank there (-score), then idle since
    by_skill: tuple[tuple[list[_AgentEntry], int], ...] = ()
    #: all of them
    rings: tuple[_Ring, ...] = ()


def _build_slots(queue: QueueSpec) -> tuple[tuple[_Slot, ...], dict[tuple[int, int], _Ring]]:
    """A queue's slots, and its rings keyed by (first stage, ranking stage).

    Rankings differ only where ``most_skilled`` scores a different skill set, so stages
    with the same skills share one ranking stage and every other strategy has one.
    """
    stages = resolve_stages(queue)
    ranking: list[int] = []
    for st in stages:
        same = [r for r in ranking if queue.strategy is not Strategy.MOST_SKILLED
                or {s for s, _ in stages[r].requirement} == {s for s, _ in st.requirement}]
        ranking.append(same[0] if same else st.index)
    rings: dict[tuple[int, int], _Ring] = {}
    slots = tuple(
        _Slot(queue.queue_id, st, queue.strategy, queue.priority + st.priority_boost,
              tuple(rings.setdefault((first, ranking[st.index]), _Ring())
                    for first in range(st.index + 1)))
        for st in stages
    )
    return slots, rings


class Router:
    """Indexes of waiting calls and free agents per (queue, stage); see the module doc."""

    def __init__(self, queues: Iterable[QueueSpec], agents: Iterable[AgentSpec]) -> None:
        self._queues: dict[str, QueueSpec] = {q.queue_id: q for q in queues}
        self._slots: dict[str, tuple[_Slot, ...]] = {}
        self._rings: dict[str, dict[tuple[int, int], _Ring]] = {}
        for qid, q in self._queues.items():
            self._slots[qid], self._rings[qid] = _build_slots(q)
        # Which queues an agent might serve, by one skill of each queue's widest stage.
        self._open_queues: list[str] = []
        self._queues_by_skill: dict[str, list[str]] = {}
        for qid, slots in self._slots.items():
            widest = slots[-1].stage.requirement
            if widest:
                self._queues_by_skill.setdefault(widest[0][0], []).append(qid)
            else:
                self._open_queues.append(qid)
        self._agents: dict[str, AgentSpec] = {}
        #: skill → the agents holding it (any level): for explaining offers
        self._holders: dict[str, set[str]] = {}
        #: slot → its roster, built at its first explained offer (see _roster)
        self._rosters: dict[_Slot, _Roster] = {}
        #: agent → the slots whose calls it may take
        self._agent_slots: dict[str, tuple[_Slot, ...]] = {}
        #: agent → the rings it joins when free
        self._agent_rings: dict[str, _Memberships] = {}
        for a in agents:
            self._load_agent(a)
        #: free agent → (idle since, calls today, token of its current ring entries)
        self._free: dict[str, tuple[float, int, int]] = {}
        self._tokens = itertools.count(1)
        #: the tokens of the free agents: a ring entry is live when its token is here
        self._live_tokens: set[int] = set()
        self._calls: dict[str, WaitingCall] = {}
        self._call_entry: dict[str, _CallEntry] = {}
        self._call_slot: dict[str, _Slot] = {}
        # What changed since the last dispatch: only these can make a new match.
        self._new_free: dict[str, None] = {}
        self._new_calls: dict[str, None] = {}
        # Freshly free agents not yet in their rings (a subset of _new_free): one who takes
        # a call at the next dispatch never needs to join them.
        self._unringed: dict[str, None] = {}

    # -- agents ------------------------------------------------------------------------

    def _load_agent(self, agent: AgentSpec) -> None:
        qids = dict.fromkeys(self._open_queues)
        for skill in agent.skills:
            qids.update(dict.fromkeys(self._queues_by_skill.get(skill, ())))
        slots: list[_Slot] = []
        by_idle: list[list[_AgentEntry]] = []
        by_calls: list[list[_AgentEntry]] = []
        by_skill: list[tuple[list[_AgentEntry], int]] = []
        rings: list[_Ring] = []
        for qid in qids:
            first = self._first_stage(agent, qid)
            if first is None:
                continue
            slots.extend(self._slots[qid][first:])
            strategy = self._queues[qid].strategy
            for (ring_first, ranking), ring in self._rings[qid].items():
                if ring_first != first:
                    continue
                rings.append(ring)
                if strategy is Strategy.MOST_SKILLED:
                    score = self._slots[qid][ranking].stage.score(agent)
                    by_skill.append((ring.entries, -score))
                elif strategy is Strategy.FEWEST_CALLS:
                    by_calls.append(ring.entries)
                else:
                    by_idle.append(ring.entries)
        old = self._agents.get(agent.agent_id)
        for skill in () if old is None else old.skills:
            self._holders[skill].discard(agent.agent_id)
        for skill in agent.skills:
            self._holders.setdefault(skill, set()).add(agent.agent_id)
        self._agents[agent.agent_id] = agent
        self._agent_slots[agent.agent_id] = tuple(slots)
        self._agent_rings[agent.agent_id] = _Memberships(
            tuple(by_idle), tuple(by_calls), tuple(by_skill), tuple(rings))

    def _first_stage(self, agent: AgentSpec, queue_id: str) -> int | None:
        """The first stage of the queue at which the agent qualifies (stages only widen)."""
        for slot in self._slots[queue_id]:
            if slot.stage.admits(agent):
                return slot.stage.index
        return None

    def update_agent(self, agent: AgentSpec) -> None:
        """Add an agent, or change an agent's skills or groups (rebuilds that agent only)."""
        free = self._free.get(agent.agent_id)
        self.set_unroutable(agent.agent_id)
        self._load_agent(agent)
        self._rosters.clear()
        if free is not None:
            self.set_routable(agent.agent_id, free[0], calls_today=free[1])

    def queues_of(self, agent_id: str) -> tuple[str, ...]:
        """The queues the agent serves from their first stage on."""
        return tuple(s.queue_id for s in self._agent_slots.get(agent_id, ())
                     if s.stage.index == 0)

    def set_routable(self, agent_id: str, idle_since: float, *, calls_today: int = 0) -> None:
        """The agent can take a call now (available, idle, phone free)."""
        if agent_id not in self._agents:
            raise KeyError(f"unknown agent {agent_id!r}")
        old = self._free.get(agent_id)
        if old is not None and old[0] == idle_since and old[1] == calls_today:
            return
        token = next(self._tokens)
        self._free[agent_id] = (idle_since, calls_today, token)
        if old is not None:
            self._live_tokens.discard(old[2])
        self._live_tokens.add(token)
        self._new_free[agent_id] = None
        if old is None or agent_id in self._unringed:
            self._unringed[agent_id] = None
        else:
            self._join_rings(agent_id, fresh=False)

    def _join_rings(self, agent_id: str, *, fresh: bool) -> None:
        """Push the agent's entries; ``fresh``: it was not counted in its rings yet."""
        idle_since, calls_today, token = self._free[agent_id]
        m = self._agent_rings[agent_id]
        push = heapq.heappush
        entry = (0, idle_since, agent_id, token)
        for entries in m.by_idle:
            push(entries, entry)
        entry = (calls_today, idle_since, agent_id, token)
        for entries in m.by_calls:
            push(entries, entry)
        for entries, rank in m.by_skill:
            push(entries, (rank, idle_since, agent_id, token))
        for ring in m.rings:
            if fresh:
                ring.live += 1  # one more entry and one more live: no new garbage
            elif len(ring.entries) > 2 * ring.live + _GARBAGE_SLACK:
                self._compact_ring(ring)

    def _ring_all(self) -> None:
        """Put every free agent in its rings: queries must see them all."""
        for agent_id in self._unringed:
            self._join_rings(agent_id, fresh=True)
        self._unringed.clear()

    def set_unroutable(self, agent_id: str) -> None:
        """The agent can no longer take a call (ringing, talking, paused, phone busy …)."""
        free = self._free.pop(agent_id, None)
        if free is None:
            return
        self._live_tokens.discard(free[2])
        self._new_free.pop(agent_id, None)
        if agent_id in self._unringed:
            del self._unringed[agent_id]
            return
        for ring in self._agent_rings[agent_id].rings:
            ring.live -= 1  # its entries are dropped lazily, or here when too many
            if len(ring.entries) > 2 * ring.live + _GARBAGE_SLACK:
                self._compact_ring(ring)

    def is_routable(self, agent_id: str) -> bool:
        return agent_id in self._free

    def _top_agent(self, slot: _Slot) -> _AgentEntry | None:
        best: _AgentEntry | None = None
        live, pop = self._live_tokens, heapq.heappop
        for ring in slot.rings:
            heap = ring.entries
            while heap:
                entry = heap[0]
                if entry[3] in live:
                    if best is None or entry < best:
                        best = entry
                    break
                pop(heap)
        return best

    def _compact_ring(self, ring: _Ring) -> None:
        live = self._live_tokens
        entries = ring.entries  # rebuilt in place: memberships hold the list
        entries[:] = [e for e in entries if e[3] in live]
        heapq.heapify(entries)

    # -- calls -------------------------------------------------------------------------

    def add_call(self, call: WaitingCall) -> None:
        """A call starts (or, after a ring-no-answer, resumes) waiting in ``call.stage``."""
        slots = self._slots.get(call.queue_id)
        if slots is None:
            raise KeyError(f"unknown queue {call.queue_id!r}")
        if call.call_id in self._calls:
            raise ValueError(f"call {call.call_id!r} is already waiting")
        if not 0 <= call.stage < len(slots):
            raise ValueError(f"queue {call.queue_id!r} has no stage {call.stage}")
        self._enqueue(call)

    def remove_call(self, call_id: str) -> WaitingCall | None:
        """The call stops waiting (offered, answered, abandoned). Returns it, stage included."""
        call = self._calls.get(call_id)
        if call is not None:
            self._dequeue(call_id)
        return call

    def set_stage(self, call_id: str, stage: int) -> WaitingCall:
        """Move a waiting call to another stage of its queue (the engine owns the timers).

        Raises ``KeyError`` for a call that is not waiting, ``ValueError`` for a stage the
        queue does not have; nothing changes then.
        """
        call = self._calls[call_id]
        if not 0 <= stage < len(self._slots[call.queue_id]):
            raise ValueError(f"queue {call.queue_id!r} has no stage {stage}")
        if stage != call.stage:
            self._dequeue(call_id)
            call = WaitingCall(call.call_id, call.queue_id, call.priority, call.entry_time,
                               call.seq, stage, call.queued_at, call.region)
            self._enqueue(call)
        return call

    def move_call(self, call_id: str, queue_id: str, *,
                  queued_at: float | None = None) -> WaitingCall:
        """Transfer a waiting call to another queue, keeping its seniority.

        The call starts at the new queue's stage 0; its stages count from ``queued_at``
        (``None``: from its original entry time, so a long wait escalates at once).
        """
        call = self._calls[call_id]
        if queue_id not in self._slots:
            raise KeyError(f"unknown queue {queue_id!r}")
        self._dequeue(call_id)
        call = dataclasses.replace(call, queue_id=queue_id, stage=0, queued_at=queued_at)
        self._enqueue(call)
        return call

    def call(self, call_id: str) -> WaitingCall | None:
        return self._calls.get(call_id)

    def waiting(self, queue_id: str | None = None) -> int:
        """How many calls wait, in one queue or in all."""
        if queue_id is None:
            return len(self._calls)
        return sum(s.live_calls for s in self._slots[queue_id])

    def queue_ids(self) -> tuple[str, ...]:
        """The router's queues (one per queue and Asterisk server when split)."""
        return tuple(self._slots)

    def agent_specs(self) -> Mapping[str, AgentSpec]:
        """Every agent the router knows, by id (skills and groups)."""
        return self._agents

    def order_key(self, call_id: str) -> OrderKey | None:
        """Where a waiting call stands in the order the router serves its queue: smaller
        is served first (effective priority — queue, stage boost and the call's own —
        then entry time, then arrival order). ``None`` when the call does not wait."""
        entry = self._call_entry.get(call_id)
        return None if entry is None else (entry[0], entry[1], entry[2])

    def waiting_in(self, queue_id: str) -> Iterator[tuple[OrderKey, str]]:
        """Every call waiting in the queue (all its stages) with its order key, in no
        particular order. O(calls in the queue)."""
        entries = self._call_entry
        for slot in self._slots[queue_id]:
            if not slot.live_calls:
                continue
            for e in slot.calls:
                if entries.get(e[3]) is e:
                    yield (e[0], e[1], e[2]), e[3]

    def position(self, call_id: str) -> int | None:
        """1 + how many calls of its queue the router serves before this one."""
        entry = self._call_entry.get(call_id)
        if entry is None:
            return None
        key = (entry[0], entry[1], entry[2])
        return 1 + sum(1 for k, _ in self.waiting_in(self._calls[call_id].queue_id) if k < key)

    def candidates(self, queue_id: str, stage: int = 0) -> int:
        """How many routable agents may take a call of this queue's stage."""
        self._ring_all()
        return self._slots[queue_id][stage].live_agents

    def stages(self, queue_id: str) -> tuple[Stage, ...]:
        return tuple(s.stage for s in self._slots[queue_id])

    def next_stage_at(self, call_id: str) -> float | None:
        """When the call is due in its next stage (absolute time), or None at the last."""
        call = self._calls[call_id]
        slots = self._slots[call.queue_id]
        if call.stage + 1 >= len(slots):
            return None
        return call.stage_clock + slots[call.stage + 1].stage.after

    def due_stage(self, call_id: str, now: float) -> int:
        """The furthest stage the call is due in at ``now`` (never before its current one)."""
        call = self._calls[call_id]
        waited = now - call.stage_clock
        due = call.stage
        for slot in self._slots[call.queue_id][call.stage + 1:]:
            if slot.stage.after > waited:
                break
            due = slot.stage.index
        return due

    def _enqueue(self, call: WaitingCall) -> None:
        slot = self._slots[call.queue_id][call.stage]
        entry = (-(slot.priority + call.priority), call.entry_time, call.seq, call.call_id)
        self._calls[call.call_id] = call
        self._call_entry[call.call_id] = entry
        self._call_slot[call.call_id] = slot
        slot.live_calls += 1
        heapq.heappush(slot.calls, entry)
        if len(slot.calls) > 2 * slot.live_calls + _GARBAGE_SLACK:
            self._compact_calls(slot)
        self._new_calls[call.call_id] = None

    def _dequeue(self, call_id: str) -> None:
        del self._calls[call_id]
        del self._call_entry[call_id]
        self._call_slot.pop(call_id).live_calls -= 1  # heap entry is dropped lazily
        self._new_calls.pop(call_id, None)

    def _top_call(self, slot: _Slot) -> _CallEntry | None:
        heap, entries = slot.calls, self._call_entry
        while heap:
            entry = heap[0]
            if entries.get(entry[3]) is entry:
                return entry
            heapq.heappop(heap)
        return None

    def _compact_calls(self, slot: _Slot) -> None:
        entries = self._call_entry
        slot.calls = [e for e in slot.calls if entries.get(e[3]) is e]
        heapq.heapify(slot.calls)

    # -- decisions ---------------------------------------------------------------------

    def _match(self, call_id: str, slot: _Slot, agent_id: str) -> Match:
        return Match(call_id, agent_id, slot.queue_id, slot.live_agents,
                     slot.stage.index, slot.strategy)

    def _best_call_for(self, agent_id: str) -> _CallEntry | None:
        best: _CallEntry | None = None
        for slot in self._agent_slots[agent_id]:
            if slot.live_calls:
                entry = self._top_call(slot)
                if entry is not None and (best is None or entry < best):
                    best = entry
        return best

    def match_call(self, call_id: str) -> Match | None:
        """The best routable agent for one waiting call, by its queue's strategy, or None."""
        slot = self._call_slot.get(call_id)
        if slot is None:
            return None
        self._ring_all()
        top = self._top_agent(slot)
        return None if top is None else self._match(call_id, slot, top[2])

    def match_agent(self, agent_id: str) -> Match | None:
        """The best waiting call the agent may take, across all its queues and stages."""
        if agent_id not in self._free:
            return None
        self._ring_all()
        best = self._best_call_for(agent_id)
        if best is None:
            return None
        return self._match(best[3], self._call_slot[best[3]], agent_id)

    def dispatch(self) -> list[Match]:
        """Every agent match possible now; matched calls and agents are taken out.

        Serves calls in global order (effective priority, then wait), each to the best
        free agent of its slot. Only agents freed and calls added or moved since the last
        dispatch can form a new pair, so only they are looked at: each proposes its best
        call, and a heap of proposals yields the best matchable call first. A proposal
        whose call was meanwhile taken is renewed when it comes up.

        The common case, one agent freed since the last dispatch, takes a short cut: the
        last dispatch left no free agent able to take a waiting call, so if the agent may
        take one, nobody else may: it takes its best call without joining its rings.
        """
        if len(self._new_free) == 1 and not self._new_calls and self._unringed:
            return self._dispatch_agent(next(iter(self._unringed)))
        self._ring_all()
        if len(self._new_calls) == 1 and not self._new_free:
            return self._dispatch_call(next(iter(self._new_calls)))
        proposals: list[tuple[_CallEntry, str]] = []
        for agent_id in self._new_free:
            best = self._best_call_for(agent_id)
            if best is not None:
                proposals.append((best, agent_id))
        proposals.extend((self._call_entry[c], "") for c in self._new_calls)
        self._new_free.clear()
        self._new_calls.clear()
        heapq.heapify(proposals)
        matches: list[Match] = []
        while proposals:
            entry, proposer = heapq.heappop(proposals)
            call_id = entry[3]
            if self._call_entry.get(call_id) is entry:
                slot = self._call_slot[call_id]
                top = self._top_agent(slot)
                if top is None:
                    continue  # nobody free for it (never so for an agent's proposal)
                matches.append(self._match(call_id, slot, top[2]))
                self._dequeue(call_id)
                self.set_unroutable(top[2])
                if proposer == top[2]:
                    continue
            if proposer and proposer in self._free:
                best = self._best_call_for(proposer)
                if best is not None:
                    heapq.heappush(proposals, (best, proposer))
        return matches

    def _dispatch_call(self, call_id: str) -> list[Match]:
        self._new_calls.clear()
        slot = self._call_slot[call_id]
        top = self._top_agent(slot)
        if top is None:
            return []
        match = self._match(call_id, slot, top[2])
        self._dequeue(call_id)
        self.set_unroutable(top[2])
        return [match]

    def _dispatch_agent(self, agent_id: str) -> list[Match]:
        self._new_free.clear()
        best = self._best_call_for(agent_id)
        if best is None:
            self._ring_all()
            return []
        call_id = best[3]
        slot = self._call_slot[call_id]
        match = Match(call_id, agent_id, slot.queue_id, slot.live_agents + 1,
                      slot.stage.index, slot.strategy)
        self._dequeue(call_id)
        self.set_unroutable(agent_id)
        return [match]

    # -- exclusions of an offer (from the indexes) ----------------------------------------

    def prepare_exclusions(self) -> None:
        """Work out every slot's roster now, rather than at its first explained offer
        (O(holders of its rarest required skill) per slot, once until a skill change)."""
        for slots in self._slots.values():
            for slot in slots:
                self._roster(slot)

    def _roster(self, slot: _Slot) -> _Roster:
        roster = self._rosters.get(slot)
        if roster is not None:
            return roster
        stage, agents = slot.stage, self._agents
        counts: dict[_Key, int] = {}
        pivot: str | None = None
        pool: Iterable[str] = agents
        if stage.requirement:
            pivot = min((s for s, _ in stage.requirement),
                        key=lambda s: (len(self._holders.get(s, ())), s))
            pool = self._holders.get(pivot, set())
            outside = len(agents) - len(pool)
            if outside:
                counts[(Why.MISSING_SKILL, pivot, 0)] = outside
        admitted: list[str] = []
        left_out: list[tuple[str, _Key, int]] = []
        held = 0
        for agent_id in sorted(pool):
            held += 1
            unmet = _first_unmet(stage, agents[agent_id])
            if unmet is None:
                admitted.append(agent_id)
            else:
                counts[unmet[0]] = counts.get(unmet[0], 0) + 1
                left_out.append((agent_id, *unmet))
        # the nearest to qualifying: admitted by the next stage, else the one after …
        nearest: list[RunnerUp] = []
        for later in (*self._slots[slot.queue_id][stage.index + 1:], None):
            keep: list[tuple[str, _Key, int]] = []
            for agent_id, key, has in left_out:
                if len(nearest) == RUNNERS_UP:
                    break
                if later is None or later.stage.admits(agents[agent_id]):
                    nearest.append(RunnerUp(agent_id, Reason(*key), f"has {has}" if has else "",
                                            None if later is None else later.stage.index))
                else:
                    keep.append((agent_id, key, has))
            left_out = keep
        reasons = sorted(((Reason(*key), n) for key, n in counts.items()),
                         key=lambda c: _reason_order(c[0]))
        roster = _Roster(pivot, held, tuple(admitted), tuple(reasons), tuple(nearest),
                         Reason(Why.RANKED_BELOW, detail=slot.strategy.value))
        self._rosters[slot] = roster
        return roster

    def exclusions(self, match: Match, why: UnroutableReason) -> Exclusions:
        """Why every agent but the chosen one does not get the match's call.

        Asked right after :meth:`dispatch` (the match is already taken out), before the
        offer goes out: the slot's roster says who lacks a skill, a level or a group;
        ``why`` says why each admitted agent who is not free is not (an agent taken by
        another match of the same dispatch is not free either); the slot's rings count
        the free ones, ranked below. Costs O(admitted agents of the call's stage), at
        most :data:`WALK_LIMIT` calls of ``why``; never part of :meth:`dispatch`.
        """
        self._ring_all()  # every free agent counted in its rings
        slot = self._slots[match.queue_id][match.stage]
        chosen = match.agent_id
        roster = self._roster(slot)
        admitted, free = roster.admitted, self._free
        walk = admitted if len(admitted) <= WALK_LIMIT else admitted[:WALK_LIMIT]
        busy = list(filterfalse(free.__contains__, walk))
        if chosen in free:
            others_free = slot.live_agents - 1
        else:
            others_free = slot.live_agents
            if chosen in busy:
                busy.remove(chosen)
        unlooked = len(admitted) - 1 - others_free - len(busy)
        reasons = list(map(why, busy))
        # count by identity (the engine hands out few distinct reason objects), then merge
        # equal ones: hashing a dataclass per agent would cost more than the walk
        by_id = Counter(map(id, reasons))
        distinct = dict(zip(map(id, reasons), reasons, strict=True))
        tally: dict[Reason, int] = {}
        for key, n in by_id.items():
            reason = distinct[key]
            tally[reason] = tally.get(reason, 0) + n
        dynamic = sorted(tally.items(), key=lambda c: _reason_order(c[0]))
        if unlooked:
            dynamic.append((_NOT_LOOKED_UP, unlooked))
        ranked = roster.ranked
        named: list[RunnerUp] = []
        if others_free:
            dynamic.append((ranked, others_free))
            named = self._next_best(slot, chosen, ranked, RUNNERS_UP)
        named.extend(RunnerUp(a, r) for a, r in zip(busy[:RUNNERS_UP - len(named)],
                                                     reasons, strict=False))
        named.extend(roster.nearest[:RUNNERS_UP - len(named)])
        return Exclusions(len(self._agents), roster.pivot, roster.holders, len(admitted),
                          roster.counts + tuple(dynamic), tuple(named))

    def _next_best(self, slot: _Slot, chosen: str, reason: Reason, k: int) -> list[RunnerUp]:
        """The best ``k`` free agents of the slot after ``chosen``, best first: its ring
        heaps sorted when small, else a bounded best-first walk down them (stale entries
        are stepped over; past the budget fewer are named)."""
        live, rings = self._live_tokens, slot.rings
        budget = 4 * k + 16
        best: list[_AgentEntry]
        if sum(len(ring.entries) for ring in rings) <= budget:
            best = sorted(e for ring in rings for e in ring.entries
                          if e[3] in live and e[2] != chosen)[:k]
        else:
            best = []
            frontier = [(ring.entries[0], i, 0) for i, ring in enumerate(rings)
                        if ring.entries]
            heapq.heapify(frontier)
            while frontier and len(best) < k and budget:
                budget -= 1
                entry, ring_no, pos = heapq.heappop(frontier)
                if entry[3] in live and entry[2] != chosen:
                    best.append(entry)
                heap = rings[ring_no].entries
                for child in (2 * pos + 1, 2 * pos + 2):
                    if child < len(heap):
                        heapq.heappush(frontier, (heap[child], ring_no, child))
        strategy = slot.strategy
        if strategy is Strategy.MOST_SKILLED:
            return [RunnerUp(e[2], reason, f"skill sum {-e[0]}") for e in best]
        if strategy is Strategy.FEWEST_CALLS:
            return [RunnerUp(e[2], reason, f"{e[0]} calls today") for e in best]
        return [RunnerUp(e[2], reason, f"idle since {round(e[1], 3)}") for e in best]

    # -- explanation (on demand: scans every agent) -------------------------------------

    def explain(self, call_id: str, agent_states: Mapping[str, str]) -> Explanation:
        """Why the call goes where it goes, and why each other agent does not get it.

        ``agent_states`` gives the engine's view of each agent ("paused(lunch)",
        "on_call" …), quoted for agents that are not routable.
        """
        self._ring_all()
        call = self._calls[call_id]
        slot = self._call_slot[call_id]
        stage, strategy = slot.stage, slot.strategy
        decision = self.match_call(call_id)
        chosen = decision.agent_id if decision is not None else None
        ranked: list[tuple[tuple[int, float, str], PassedOver]] = []
        others: list[PassedOver] = []
        for agent_id, agent in self._agents.items():
            if agent_id == chosen:
                continue
            reasons = list(stage.why_not(agent))
            free = self._free.get(agent_id)
            if free is None:
                reasons.append(f"not routable: {agent_states.get(agent_id, 'unknown')}")
            later = None if stage.admits(agent) else self._first_stage(agent, call.queue_id)
            if reasons:
                others.append(PassedOver(agent_id, tuple(reasons), later))
                continue
            assert free is not None and chosen is not None
            score = stage.score(agent)
            why = {
                Strategy.LONGEST_IDLE: f"idle since {free[0]:g}",
                Strategy.MOST_SKILLED: f"skill sum {score}",
                Strategy.FEWEST_CALLS: f"{free[1]} calls today",
            }[strategy]
            rank = {Strategy.LONGEST_IDLE: 0, Strategy.MOST_SKILLED: -score,
                    Strategy.FEWEST_CALLS: free[1]}[strategy]
            ranked.append(((rank, free[0], agent_id),
                           PassedOver(agent_id, (f"ranked below {chosen} by "
                                                 f"{strategy.value} ({why})",))))
        ranked.sort(key=lambda r: r[0])
        others.sort(key=lambda p: p.agent_id)
        return Explanation(call_id, call.queue_id, stage.index, strategy,
                           slot.live_agents, decision,
                           tuple(p for _, p in ranked) + tuple(others))
