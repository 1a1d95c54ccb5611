"""What routing is about, as plain frozen values: queues, their escalation stages, agents,
waiting calls.

A **queue** is a service line (consult, repair, …). To take its calls an agent needs every
required skill at the queue's minimum level (levels run 1–5). A call that waits too long
**escalates** through the queue's stages, a bullseye that only ever grows:

* stage 0 is the queue's base requirement (skills, levels, admitted groups);
* each later stage starts after a number of seconds of waiting and may lower every
  required level (``min_level_delta``, never below 1), replace the required skills by a
  subset, admit more agent groups (other own sites) and raise the call's priority.

A stage never narrows: every agent admitted at one stage stays admitted at the next.
:func:`resolve_stages` checks this when the queue is built, so a wrong config is refused
before the router ever sees it. (The partner sites and the last-resort action a queue's
stages may add are the engine's: :mod:`routing.partners` orders the sites.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

MIN_LEVEL = 1
MAX_LEVEL = 5


class Strategy(StrEnum):
    """How a queue picks among the agents free to take a call."""

    #: The agent who has waited longest since the last call (fair share of the work).
    LONGEST_IDLE = "longest_idle"
    #: The highest sum of levels on the stage's required skills, then longest idle.
    MOST_SKILLED = "most_skilled"
    #: The fewest calls handled today, then longest idle (evens out the day's load).
    FEWEST_CALLS = "fewest_calls"


# -- config --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One ring of a queue's bullseye, reached after ``after`` seconds of waiting."""

    after: float
    #: Lowers every required minimum level by this much (never below 1).
    min_level_delta: int = 0
    #: Replaces the queue's required skills (must be a subset, levels no higher).
    skills: Mapping[str, int] | None = None
    #: Agent groups (sites, teams) admitted; ``None`` admits every agent.
    groups: frozenset[str] | None = None
    #: Added to the call's priority while it is in this stage.
    priority_boost: int = 0


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A service line: who may take its calls, how they are chosen, how calls escalate."""

    queue_id: str
    #: Skill → minimum level an agent needs (stage 0).
    required_skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    strategy: Strategy = Strategy.LONGEST_IDLE
    #: Agent groups admitted at stage 0; ``None`` admits every agent.
    groups: frozenset[str] | None = None
    #: Escalation stages 1, 2, … (stage 0 is the requirement above).
    stages: tuple[StageSpec, ...] = ()

    def __post_init__(self) -> None:
        resolve_stages(self)  # refuse a config that narrows or has bad levels


@dataclass(frozen=True, slots=True)
class AgentSpec:
    agent_id: str
    #: Skill → level, 1 (beginner) to 5 (expert).
    skills: Mapping[str, int] = field(default_factory=dict)
    #: The groups the agent belongs to: its site, its team.
    groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _check_levels(f"agent {self.agent_id!r}", self.skills)


@dataclass(frozen=True, slots=True, order=True)
class CallKey:
    """Sort key of a waiting call: smallest is served first."""

    neg_priority: int
    entry_time: float
    seq: int


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """A caller waiting in a queue.

    ``priority`` is the caller's own priority on top of the queue's (a VIP or dealer
    segment); 0 for an ordinary caller. Seniority is ``(entry_time, seq)``: it survives a
    ring-no-answer (remove, then add again) and a transfer to another queue.
    """

    call_id: str
    queue_id: str
    priority: int
    entry_time: float
    seq: int
    #: The escalation stage the call is in (the engine moves it, see ``Router.set_stage``).
    stage: int = 0
    #: When the call joined this queue: its stages count from here (``None``: entry time).
    queued_at: float | None = None
    #: The caller's region, used to pick the partner sites that cover it.
    region: str = ""

    @property
    def key(self) -> CallKey:
        """Order by the call's own priority and seniority (without queue or stage boost)."""
        return CallKey(-self.priority, self.entry_time, self.seq)

    @property
    def stage_clock(self) -> float:
        return self.entry_time if self.queued_at is None else self.queued_at


# -- resolved stages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage as the router applies it: the effective requirement, worked out once."""

    index: int
    after: float
    #: (skill, minimum level) pairs, sorted by skill.
    requirement: tuple[tuple[str, int], ...]
    groups: frozenset[str] | None
    priority_boost: int

    def admits(self, agent: AgentSpec) -> bool:
        """True when the agent may take a call in this stage (ignoring routability)."""
        skills = agent.skills
        for skill, level in self.requirement:
            if skills.get(skill, 0) < level:
                return False
        return self.groups is None or not self.groups.isdisjoint(agent.groups)

    def score(self, agent: AgentSpec) -> int:
        """Sum of the agent's levels on the required skills (``most_skilled``)."""
        return sum(agent.skills.get(skill, 0) for skill, _ in self.requirement)

    def why_not(self, agent: AgentSpec) -> tuple[str, ...]:
        """Every reason the agent may not take a call in this stage, in plain words."""
        reasons: list[str] = []
        for skill, level in self.requirement:
            has = agent.skills.get(skill)
            if has is None:
                reasons.append(f"missing skill {skill}")
            elif has < level:
                reasons.append(f"level too low for {skill} (has {has} < {level})")
        if self.groups is not None and self.groups.isdisjoint(agent.groups):
            mine = ", ".join(sorted(agent.groups)) or "none"
            admitted = ", ".join(sorted(self.groups))
            reasons.append(f"not in admitted group (in {mine}; admitted {admitted})")
        return tuple(reasons)


def _check_levels(owner: str, skills: Mapping[str, int]) -> None:
    for skill, level in skills.items():
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(
                f"{owner}: level of {skill} must be {MIN_LEVEL}–{MAX_LEVEL}, got {level}"
            )


def resolve_stages(queue: QueueSpec) -> tuple[Stage, ...]:
    """The queue's stages 0..n with their effective requirements; refuses narrowing.

    Raises ``ValueError`` naming the queue and stage when a level is out of range, a stage
    starts before the previous one, requires a skill or level the previous stage did not,
    or admits fewer groups.
    """
    qid = queue.queue_id
    _check_levels(f"queue {qid!r}", queue.required_skills)
    base = tuple(sorted(queue.required_skills.items()))
    stages = [Stage(0, 0.0, base, queue.groups, 0)]
    for index, spec in enumerate(queue.stages, start=1):
        where = f"queue {qid!r} stage {index}"
        if spec.min_level_delta < 0:
            raise ValueError(f"{where}: min_level_delta must be ≥ 0 (stages only widen)")
        skills = queue.required_skills if spec.skills is None else spec.skills
        _check_levels(where, skills)
        requirement = tuple(
            sorted((s, max(MIN_LEVEL, lvl - spec.min_level_delta)) for s, lvl in skills.items())
        )
        stage = Stage(index, float(spec.after), requirement, spec.groups,
                      spec.priority_boost)
        _check_widens(where, stages[-1], stage)
        stages.append(stage)
    return tuple(stages)


def _check_widens(where: str, prev: Stage, cur: Stage) -> None:
    if cur.after < prev.after:
        raise ValueError(f"{where}: starts after {cur.after:g} s, before stage "
                         f"{prev.index} ({prev.after:g} s)")
    before = dict(prev.requirement)
    for skill, level in cur.requirement:
        if skill not in before:
            raise ValueError(f"{where}: requires {skill}, which stage {prev.index} did not "
                             "(stages only widen)")
        if level > before[skill]:
            raise ValueError(f"{where}: requires {skill} at {level}, above stage "
                             f"{prev.index}'s {before[skill]} (stages only widen)")
    if cur.groups is not None and (prev.groups is None or not prev.groups <= cur.groups):
        raise ValueError(f"{where}: admits fewer agent groups than stage {prev.index} "
                         "(stages only widen)")


def is_eligible(agent: AgentSpec, queue: QueueSpec, stage: int = 0) -> bool:
    """An agent may serve a queue's stage when it has every required skill at the stage's
    minimum level and belongs to an admitted group."""
    return resolve_stages(queue)[stage].admits(agent)
