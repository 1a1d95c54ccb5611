"""Routing policy (pure: no I/O, no clock): who takes which call, and staffing maths.

* :mod:`routing.model` — queues, escalation stages, targets, agents, waiting calls;
* :mod:`routing.router` — the indexed router the engine drives;
* :mod:`routing.decision` — what it answers (match, overflow, an offer's exclusions,
  explanation);
* :mod:`routing.reference` — the same rules by full scans, for tests and benchmarks;
* :mod:`routing.erlang` — Erlang B, C and A.
"""

from routing.decision import (
    Decision,
    Exclusions,
    Explanation,
    Match,
    Overflow,
    PassedOver,
    Reason,
    RunnerUp,
    Why,
)
from routing.model import (
    ActionTarget,
    AgentSpec,
    AgentsTarget,
    ExternalTarget,
    PartnerTarget,
    QueueSpec,
    Stage,
    StageSpec,
    Strategy,
    TargetSpec,
    WaitingCall,
    is_eligible,
    resolve_stages,
)
from routing.reference import ReferenceRouter
from routing.router import Router

__all__ = [
    "ActionTarget",
    "AgentSpec",
    "AgentsTarget",
    "Decision",
    "Exclusions",
    "Explanation",
    "ExternalTarget",
    "Match",
    "Overflow",
    "PartnerTarget",
    "PassedOver",
    "QueueSpec",
    "Reason",
    "ReferenceRouter",
    "Router",
    "RunnerUp",
    "Stage",
    "StageSpec",
    "Strategy",
    "TargetSpec",
    "WaitingCall",
    "Why",
    "is_eligible",
    "resolve_stages",
]
