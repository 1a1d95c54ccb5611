"""Why a call goes where it goes — and why the other agents did not get it.

The router knows only who is free; the reasons an agent is not (logged out, paused,
ringing, on a call, wrap-up, phone busy) come from its record here. ``why_unroutable``
runs for each admitted agent who is not free at every offer (``Router.exclusions``), so
it is written for speed: enum members and reasons looked up once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from acd.domain.records import Agent, AgentState, AgentStatus, Call, CallState
from routing import Reason, Router, Why


@lru_cache(maxsize=512)
def _reason(code: Why, detail: str = "") -> Reason:
    """One shared object per reason (pause reasons and device states are few)."""
    return Reason(code, detail=detail)


# Looked up once: reading an enum member through its class costs more than the rest of
# why_unroutable.
_AVAILABLE, _LOGGED_OUT, _IDLE = AgentStatus.AVAILABLE, AgentStatus.LOGGED_OUT, AgentState.IDLE
_BY_STATE = {AgentState.RINGING: _reason(Why.RINGING), AgentState.ON_CALL: _reason(Why.ON_CALL),
             AgentState.WRAP_UP: _reason(Why.WRAP_UP)}
_NO_AGENT, _AWAY, _TAKEN = _reason(Why.NOT_ROUTABLE), _reason(Why.LOGGED_OUT), _reason(Why.RINGING)
_PAUSED, _PHONE = Why.PAUSED, Why.PHONE


def why_unroutable(agents: Mapping[str, Agent], agent_id: str) -> Reason:
    """Why the router does not count an agent as free, from its record: the person's
    status first, then the engine's state, then the phone."""
    agent = agents.get(agent_id)
    if agent is None:
        return _NO_AGENT
    status = agent.status
    if status is _AVAILABLE:
        if agent.state is not _IDLE:
            return _BY_STATE[agent.state]
        if not agent.phone_free:
            return _reason(_PHONE, agent.device_shown)
        # routable by its record: another match of the same dispatch took it, rings next
        return _TAKEN
    if status is _LOGGED_OUT:
        return _AWAY
    return _reason(_PAUSED, agent.reason)


def describe(agent: Agent) -> str:
    """One word or phrase for an agent's situation (the explanation's lines)."""
    if agent.status is AgentStatus.PAUSED:
        return f"paused ({agent.reason})"
    if agent.status is AgentStatus.LOGGED_OUT:
        return "logged out"
    if agent.state is not AgentState.IDLE:
        return agent.state.value
    return f"phone {agent.device_shown}"


def explain(call: Call, router: Router, agents: Mapping[str, Agent]) -> list[str]:
    """Why a waiting call goes where it goes (scans every agent: on demand only), or the
    recorded decision of a call already offered, with why the other agents did not get
    it (counted when the offer was made)."""
    if call.state is CallState.WAITING:
        states = {a.agent_id: describe(a) for a in agents.values()}
        return router.explain(call.call_id, states).lines()
    d: Mapping[str, Any] = call.decision
    target = d.get("agent") or f"partner site {d.get('site')}"
    lines = [f"offered to {target} at stage {d.get('stage')} by "
             f"{d.get('strategy')} among {d.get('candidates')} candidate(s); "
             f"now {call.state.value}"]
    excluded = d.get("excluded")
    if isinstance(excluded, dict):
        lines.append(f"  {excluded['summary']}")
        lines += [f"  runner-up {r['text']}" for r in excluded["runners_up"]]
    lines += [f"  site {e['site']}: {e['reason']}" for e in d.get("excluded_sites") or ()]
    return lines
