"""What the router answers: a match with an agent, an overflow to another target, why the
other agents did not get an offered call (counted when it was made), and the on-demand
explanation of why every other agent was passed over."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from routing.model import Strategy


class Why(StrEnum):
    """Why an agent did not get a call, in the order they are tried: an agent is counted
    under the first that applies (skills and groups, then the engine's view of the
    agent, then the queue's strategy)."""

    MISSING_SKILL = "missing_skill"
    LEVEL_TOO_LOW = "level_too_low"
    NOT_IN_GROUP = "not_in_group"
    LOGGED_OUT = "logged_out"
    PAUSED = "paused"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    #: The phone is busy or unavailable (``detail``: the device state).
    PHONE = "phone"
    #: Not routable, and the engine gave no reason.
    NOT_ROUTABLE = "not_routable"
    #: Free and eligible, but the queue's strategy ranked the chosen agent first.
    RANKED_BELOW = "ranked_below"


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason, as a key to count agents by: bounded (skills of the queue, pause
    reasons, device states, strategies), never an agent's own figures."""

    code: Why
    #: ``missing_skill``, ``level_too_low``: the skill.
    skill: str = ""
    #: ``level_too_low``: the stage's minimum level.
    level: int = 0
    #: ``paused``: the pause reason; ``phone``: the device state; ``ranked_below``: the
    #: strategy.
    detail: str = ""
    #: The reason in words, e.g. "level below 3 in repair" (worked out once: reasons are
    #: few and shared, their words are read at every offer).
    text: str = field(default="", init=False, compare=False, repr=False)
    _items: tuple[tuple[str, Any], ...] = field(default=(), init=False, compare=False,
                                                repr=False)

    def __post_init__(self) -> None:
        code, skill, detail = self.code, self.skill, self.detail
        if code is Why.MISSING_SKILL:
            text = f"missing skill {skill}"
        elif code is Why.LEVEL_TOO_LOW:
            text = f"level below {self.level} in {skill}"
        elif code is Why.NOT_IN_GROUP:
            text = "not in an admitted group"
        elif code is Why.RANKED_BELOW:
            text = f"ranked below by {detail}"
        elif code is Why.PHONE:
            text = f"phone {detail or 'busy'}"
        else:
            words = code.value.replace("_", " ")
            text = f"{words} ({detail})" if detail else words
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "_items", (
            ("reason", code.value), ("skill", skill or None), ("level", self.level or None),
            ("detail", detail or None), ("text", text)))

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        """``reason`` (the code), ``skill``, ``level``, ``detail`` (None when not
        applicable) and ``text``."""
        return dict(self._items)


@dataclass(frozen=True, slots=True)
class RunnerUp:
    """An agent named among those who did not get the call, nearest first."""

    agent_id: str
    reason: Reason
    #: The agent's own figure behind the reason: "idle since 12", "has 2" …
    note: str = ""
    #: The first later stage of the call's queue at which the agent would qualify.
    eligible_from_stage: int | None = None

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        later = ("" if self.eligible_from_stage is None
                 else f", eligible from stage {self.eligible_from_stage}")
        return f"{self.agent_id}: {self.reason}{note}{later}"


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Why the other agents did not get a call, counted when the offer was made.

    Every agent the router knows is counted once: the chosen one, and each other under
    the first reason that excludes it (see :class:`Why`), so the counts add up to
    ``agents - 1``. Only the holders of ``pivot`` — the call stage's required skill held
    by the fewest agents — are checked for skills, levels and groups; every other agent
    misses ``pivot`` and is counted so from the size of the skill index. With no required
    skill, ``pivot`` is None and every agent is checked.
    """

    #: Every agent the router knows (the chosen one included).
    agents: int
    pivot: str | None
    #: Agents holding ``pivot`` (at any level); all agents when ``pivot`` is None.
    holders: int
    #: Agents meeting the stage's skills, levels and groups (routable or not).
    admitted: int
    #: (reason, number of agents), most basic reason first.
    counts: tuple[tuple[Reason, int], ...]
    #: Up to a handful of named agents: the next best by the strategy, then admitted
    #: agents who were not routable, then the nearest to qualifying.
    runners_up: tuple[RunnerUp, ...] = ()

    @property
    def excluded(self) -> int:
        return sum(n for _, n in self.counts)

    def summary(self) -> str:
        """One line: "9 of 10 agents excluded: 4 missing skill s1, 2 paused (lunch) …"."""
        parts = ", ".join(f"{n} {reason.text}" for reason, n in self.counts)
        head = f"{self.excluded} of {self.agents} agent(s) excluded"
        return f"{head}: {parts}" if parts else head

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (a published event, the API)."""
        return {
            "agents": self.agents, "pivot_skill": self.pivot, "holders": self.holders,
            "admitted": self.admitted, "excluded": self.excluded, "summary": self.summary(),
            "counts": [dict(reason._items, count=n) for reason, n in self.counts],
            "runners_up": [dict(r.reason._items, agent=r.agent_id, text=str(r), note=r.note,
                                eligible_from_stage=r.eligible_from_stage)
                           for r in self.runners_up],
        }


@dataclass(frozen=True, slots=True)
class Match:
    """An own agent takes a call.

    ``candidates`` is how many routable agents could have taken it (the chosen one
    included), ``stage`` the call's escalation stage and ``strategy`` how the agent was
    picked among them.
    """

    call_id: str
    agent_id: str
    queue_id: str
    candidates: int
    stage: int = 0
    strategy: Strategy = Strategy.LONGEST_IDLE


Decision = Match


@dataclass(frozen=True, slots=True)
class PassedOver:
    """An agent who did not get the call, and why (one reason or several)."""

    agent_id: str
    reasons: tuple[str, ...]
    #: The first later stage of this call's queue at which the agent would qualify.
    eligible_from_stage: int | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a call went where it went, or why it still waits."""

    call_id: str
    queue_id: str
    stage: int
    strategy: Strategy
    candidates: int
    decision: Decision | None
    passed_over: tuple[PassedOver, ...]

    def lines(self) -> list[str]:
        """The explanation as text, one line per agent, for a supervisor's screen."""
        match self.decision:
            case Match(agent_id=agent):
                head = f"→ agent {agent}"
            case None:
                head = "→ keeps waiting"
        out = [f"call {self.call_id} in {self.queue_id} stage {self.stage} {head} "
               f"({self.strategy.value}, {self.candidates} candidate(s))"]
        for p in self.passed_over:
            later = ("" if p.eligible_from_stage is None
                     else f" [eligible from stage {p.eligible_from_stage}]")
            out.append(f"  {p.agent_id}: {'; '.join(p.reasons)}{later}")
        return out
