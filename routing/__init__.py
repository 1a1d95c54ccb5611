"""Routing policy (pure: no I/O, no clock): who takes which call, and staffing maths.

* :mod:`routing.model` — queues, escalation stages, agents, waiting calls;
* :mod:`routing.router` — the indexed router the engine drives;
* :mod:`routing.decision` — what it answers (a match, an offer's exclusions,
  explanation);
* :mod:`routing.reference` — the same rules by full scans, for tests and benchmarks;
* :mod:`routing.erlang` — Erlang B, C and A.
"""

from routing.decision import (
    Decision,
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
    QueueSpec,
    Stage,
    StageSpec,
    Strategy,
    WaitingCall,
    is_eligible,
    resolve_stages,
)
from routing.reference import ReferenceRouter
from routing.router import Router

__all__ = [
    "AgentSpec",
    "Decision",
    "Exclusions",
    "Explanation",
    "Match",
    "PassedOver",
    "QueueSpec",
    "Reason",
    "ReferenceRouter",
    "Router",
    "RunnerUp",
    "Stage",
    "StageSpec",
    "Strategy",
    "WaitingCall",
    "Why",
    "is_eligible",
    "resolve_stages",
]
