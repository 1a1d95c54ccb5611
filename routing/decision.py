"""What the router answers: a match with an agent, an overflow to another target, and the
on-demand explanation of why every other agent was passed over."""

from __future__ import annotations

from dataclasses import dataclass

from routing.model import AgentsTarget, ExternalTarget, Strategy


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

    @property
    def target(self) -> AgentsTarget:
        return AgentsTarget()


@dataclass(frozen=True, slots=True)
class Overflow:
    """No own agent can take the call, but its stage offers other targets.

    ``targets`` are the stage's partner sites covering the caller's region and its
    last-resort actions, in order of preference; ``target`` is the first. The engine tries
    them in order (a full or failing partner → the next one).
    """

    call_id: str
    queue_id: str
    stage: int
    targets: tuple[ExternalTarget, ...]

    @property
    def target(self) -> ExternalTarget:
        return self.targets[0]

    @property
    def candidates(self) -> int:
        return len(self.targets)


Decision = Match | Overflow


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
            case Overflow(target=target):
                head = f"→ {target!r}"
            case None:
                head = "→ keeps waiting"
        out = [f"call {self.call_id} in {self.queue_id} stage {self.stage} {head} "
               f"({self.strategy.value}, {self.candidates} candidate(s))"]
        for p in self.passed_over:
            later = ("" if p.eligible_from_stage is None
                     else f" [eligible from stage {p.eligible_from_stage}]")
            out.append(f"  {p.agent_id}: {'; '.join(p.reasons)}{later}")
        return out
