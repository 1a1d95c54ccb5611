"""REST resources under ``/api/v1``.

Every handler is ``async def``: it runs on the engine's event loop, reads one consistent
state (see ``api.views``) and sends commands through the engine's inbox.

| resource | agent | supervisor | admin |
|---|---|---|---|
| ``GET /queues``, ``GET /queues/{id}`` | 403 | ✓ | ✓ |
| ``GET /agents`` | 403 | ✓ | ✓ |
| ``GET /agents/{id}``, ``POST /agents/{id}/state`` | its own (else 403) | ✓ | ✓ |
| ``GET /calls`` | the calls it holds | ✓ | ✓ |
| ``GET /calls/{id}`` | a call it holds (else 404, as for no such call) | ✓ | ✓ |
| ``POST /calls/{id}/move``, ``POST /calls/{id}/priority`` | 403 | ✓ | ✓ |
| ``GET /calls/{id}/explanation`` | a call it holds (else 404) | ✓ | ✓ |
| ``GET /sites``, ``GET /sites/{id}``, ``GET /regions`` | 403 | ✓ | ✓ |
| ``GET /config`` | 403 | 403 | ✓ |
"""

from __future__ import annotations

import asyncio
import logging
import re
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from acd.config import ApiRole
from acd.domain import (
    AgentLogin,
    AgentStatus,
    CallState,
    Event,
    SetAgentStatus,
    SetCallPriority,
    TransferCall,
    UnknownAgent,
)
from acd.domain.views import BadCursor
from api.auth import Principal
from api.errors import EngineUnavailable, UnknownCall, UnknownQueue, UnknownSite
from api.guards import client_of
from api.models import (
    AgentAction,
    AgentStateChange,
    AgentView,
    CallExplanation,
    CallMove,
    CallPriority,
    CallsView,
    CallView,
    ErrorBody,
    QueueView,
    RegionView,
    SiteView,
    ValidationErrors,
)
from api.state import ApiState

log = logging.getLogger("acd.api")

_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="A token from the environment variable named in api.tokens[].env.",
)


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.acd
    return state


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The token's principal. A client that presented too many unknown tokens gets 429
    and its token is not looked at (api.guards.FailedAuth)."""
    state = api_state(request)
    client = client_of(request.client)
    where = f"{request.method} {request.url.path}"
    if state.failed_auth.retry_after(client) > 0:
        retry = state.failed_auth.throttled(client, where)
        raise HTTPException(429, "too many failed authentications from this client",
                            headers={"Retry-After": str(retry)})
    token = creds.credentials if creds else None
    found = state.tokens.authenticate(token)
    if found is None:
        state.failed_auth.failed(client, "invalid" if token else "missing", where)
        raise HTTPException(401, "missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return found


def allow(*roles: ApiRole) -> Any:
    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise HTTPException(403, f"role {who.role.value} may not do this")
        return who
    return check


Anyone = Annotated[Principal, Depends(principal)]
Staff = Annotated[Principal, Depends(allow(ApiRole.SUPERVISOR, ApiRole.ADMIN))]
Admin = Annotated[Principal, Depends(allow(ApiRole.ADMIN))]
State = Annotated[ApiState, Depends(api_state)]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
AgentId = Annotated[str, Path(pattern=_ID, max_length=64, examples=["1001"])]
QueueId = Annotated[str, Path(pattern=_ID, max_length=64, examples=["consult"])]
SiteId = Annotated[str, Path(pattern=_ID, max_length=64, examples=["gd"])]
CallId = Annotated[str, Path(min_length=1, max_length=128)]

Responses = dict[int | str, dict[str, Any]]

#: Calls per page of ``GET /calls`` (default, most).
DEFAULT_PAGE = 200
MAX_PAGE = 1000


class CallStateFilter(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_AUTH: Responses = {401: _error("No or unknown bearer token."),
                    403: _error("The token's role may not do this."),
                    429: _error("Too many unknown tokens from this client: the token is "
                                "not looked at; try again after `Retry-After` seconds.")}
_404: Responses = {404: _error("No such resource.")}
_503: Responses = {503: _error("The engine did not take the command in time.")}
_400: Responses = {400: _error("The body is not valid JSON."),
                   413: _error("The body is larger than `api.limits.max_body_bytes` "
                               "(refused before routing and authentication).")}
_422_PAUSE: Responses = {422: {"model": ErrorBody | ValidationErrors,
                               "description": "Invalid body, or `unknown_pause_reason`."}}
_409: Responses = {409: _error("The call is not waiting (ringing an agent or talking).")}

router = APIRouter(prefix="/api/v1", responses=_AUTH)


def _own(who: Principal, agent_id: str) -> None:
    if who.is_agent and who.agent_id != agent_id:
        raise HTTPException(403, "an agent token acts only for its own agent")


async def run_command(state: ApiState, event: Event) -> None:
    """Through the engine's inbox, in order; a domain error comes back as raised."""
    try:
        await asyncio.wait_for(state.engine.command(event), state.command_timeout)
    except TimeoutError:
        raise EngineUnavailable("the engine did not apply the command in time") from None


# -- queues -------------------------------------------------------------------------------


@router.get("/queues", tags=["queues"], summary="Every queue, live and per window")
async def list_queues(who: Staff, state: State) -> list[QueueView]:
    return state.views.queues()


@router.get("/queues/{queue_id}", tags=["queues"], responses=_404, summary="One queue")
async def get_queue(queue_id: QueueId, who: Staff, state: State) -> QueueView:
    view = state.views.queue(queue_id)
    if view is None:
        raise UnknownQueue(f"unknown queue {queue_id!r}")
    return view


# -- agents -------------------------------------------------------------------------------


@router.get("/agents", tags=["agents"], summary="Every agent")
async def list_agents(who: Staff, state: State) -> list[AgentView]:
    return state.views.agents()


@router.get("/agents/{agent_id}", tags=["agents"], responses=_404, summary="One agent")
async def get_agent(agent_id: AgentId, who: Anyone, state: State) -> AgentView:
    _own(who, agent_id)
    view = state.views.agent(agent_id)
    if view is None:
        raise UnknownAgent(f"unknown agent {agent_id!r}")
    return view


@router.post(
    "/agents/{agent_id}/state", tags=["agents"],
    responses={**_400, **_404, **_422_PAUSE, **_503},
    summary="Log in, make ready, pause (with a reason) or log out an agent",
    description="`login`: a logged-out agent becomes available, or paused if a `reason` "
                "is given; no change if already logged in. `ready`: available for calls "
                "(logs in if needed). `pause`: paused with `reason` (one of the configured "
                "`engine.pause_reasons`; none given: the first of them). `logout`: logged "
                "out. An agent "
                "token may change only its own agent; supervisors and admins any agent.",
)
async def change_agent_state(agent_id: AgentId, body: AgentStateChange, who: Anyone,
                             state: State) -> AgentView:
    _own(who, agent_id)
    now = state.engine.clock()
    event: Event
    match body.action:
        case AgentAction.LOGIN:
            event = AgentLogin(agent_id, now, body.reason or "")
        case AgentAction.READY:
            event = SetAgentStatus(agent_id, AgentStatus.AVAILABLE, now)
        case AgentAction.PAUSE:
            event = SetAgentStatus(agent_id, AgentStatus.PAUSED, now, body.reason or "")
        case AgentAction.LOGOUT:
            event = SetAgentStatus(agent_id, AgentStatus.LOGGED_OUT, now)
    await run_command(state, event)
    log.info("agent %s: %s by %s (%s)", agent_id, body.action.value, who.name,
             who.role.value)
    view = state.views.agent(agent_id)
    if view is None:
        raise UnknownAgent(f"unknown agent {agent_id!r}")
    return view


# -- calls --------------------------------------------------------------------------------


@router.get("/calls", tags=["calls"],
            summary="Waiting calls (with position) and active calls (with agent)",
            description="Waiting calls first, per queue in the order agents will be offered "
                        "them (`position` is that order), then calls ringing or talking. "
                        "Filter by `queue` and `state`; at most `limit` calls a page, the "
                        "next page from `next_cursor`. An agent token sees only the calls "
                        "it holds.",
            responses={422: {"model": ErrorBody | ValidationErrors,
                             "description": "A `cursor` this API did not hand out."}})
async def list_calls(who: Anyone, state: State,
                     queue: Annotated[str | None, Query(pattern=_ID, max_length=64)] = None,
                     call_state: Annotated[CallStateFilter | None, Query(alias="state")] = None,
                     cursor: Annotated[str | None, Query(max_length=512)] = None,
                     limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
                     ) -> CallsView:
    try:
        return state.views.calls(who.agent_id if who.is_agent else None, queue=queue,
                                 state=CallState(call_state.value) if call_state else None,
                                 cursor=cursor, limit=limit)
    except BadCursor as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/calls/{call_id}", tags=["calls"], responses=_404, summary="One live call",
            description="An agent token sees only a call it holds: another agent's call "
                        "answers exactly as a call that does not exist (404).")
async def get_call(call_id: CallId, who: Anyone, state: State) -> CallView:
    view = state.views.call(call_id)
    if view is None or (who.is_agent and view.agent != who.agent_id):
        raise UnknownCall(f"unknown call {call_id!r}")
    return view


@router.get(
    "/calls/{call_id}/explanation", tags=["calls"], responses=_404,
    summary="Why a live call goes where it goes",
    description="For a waiting call, the engine's reasons for each agent (candidate or "
                "not, and why); for a call ringing or talking, the recorded decision. "
                "`decision` is the last routing decision: stage, strategy, candidates, "
                "the agent or partner site, and `excluded`: why the other agents did not "
                "get the call, counted by reason when the offer was made (missing skill, "
                "level too low, paused, phone busy, ranked below …) with up to five named "
                "runners-up. An agent token sees only a call it holds (any other call "
                "answers 404, as one that does not exist), and no runners-up.",
)
async def explain_call(call_id: CallId, who: Anyone, state: State) -> CallExplanation:
    if who.is_agent:
        call = state.views.call(call_id)
        if call is None or call.agent != who.agent_id:
            raise UnknownCall(f"unknown call {call_id!r}")
    view = state.views.explanation(call_id)
    if view is None:
        raise UnknownCall(f"unknown call {call_id!r}")
    if who.is_agent:
        view = _without_colleagues(view)
    return view


def _without_colleagues(view: CallExplanation) -> CallExplanation:
    """An agent sees its own state only: the counts of why others were excluded, not
    which colleague was paused or on a call."""
    d = view.decision
    if d is None or d.excluded is None:
        return view
    return view.model_copy(update={
        "decision": d.model_copy(update={
            "excluded": d.excluded.model_copy(update={"runners_up": []})}),
        "lines": [line for line in view.lines if not line.startswith("  runner-up ")],
    })


@router.post(
    "/calls/{call_id}/move", tags=["calls"], responses={**_400, **_404, **_409, **_503},
    summary="Move a waiting call to another queue (it keeps its place by seniority)",
    description="Supervisor command. The call keeps its first-entry time, so it lines up "
                "in the new queue by how long it has waited. Only a waiting call moves "
                "(409 `call_not_waiting` while it rings an agent or talks).",
)
async def move_call(call_id: CallId, body: CallMove, who: Staff, state: State) -> CallView:
    await run_command(state, TransferCall(call_id, body.queue, state.engine.clock()))
    log.info("call %s: moved to %s by %s", call_id, body.queue, who.name)
    return _live_call(state, call_id)


@router.post(
    "/calls/{call_id}/priority", tags=["calls"], responses={**_400, **_404, **_409, **_503},
    summary="Change a waiting call's priority (its wait still counts)",
    description="Supervisor command. `priority` is the call's own priority on top of its "
                "queue's; calls are served by priority, then by time waited.",
)
async def set_call_priority(call_id: CallId, body: CallPriority, who: Staff,
                            state: State) -> CallView:
    await run_command(state, SetCallPriority(call_id, body.priority, state.engine.clock()))
    log.info("call %s: priority %d by %s", call_id, body.priority, who.name)
    return _live_call(state, call_id)


def _live_call(state: ApiState, call_id: str) -> CallView:
    view = state.views.call(call_id)
    if view is None:  # it ended (or was answered and completed) meanwhile
        raise UnknownCall(f"unknown call {call_id!r}")
    return view


# -- sites and regions -------------------------------------------------------------------


@router.get("/sites", tags=["sites"],
            summary="Own and partner sites: capacity, calls now, totals, open now")
async def list_sites(who: Staff, state: State) -> list[SiteView]:
    return state.views.sites()


@router.get("/sites/{site_id}", tags=["sites"], responses=_404, summary="One site")
async def get_site(site_id: SiteId, who: Staff, state: State) -> SiteView:
    view = state.views.site(site_id)
    if view is None:
        raise UnknownSite(f"unknown site {site_id!r}")
    return view


@router.get("/regions", tags=["sites"],
            summary="Calls by the caller's province (since the engine started)",
            description="Regions that had calls, plus the configured policy regions (zeros "
                        "until a call comes), by code.")
async def list_regions(who: Staff, state: State) -> list[RegionView]:
    return state.views.regions()


# -- admin --------------------------------------------------------------------------------


@router.get("/config", tags=["admin"], summary="The running configuration (no secrets)",
            description="Secrets are never in the file (only the names of the environment "
                        "variables that hold them); a password written into a URL anyway "
                        "(`store.url`) is shown as `***`.")
async def get_config(who: Admin, state: State) -> dict[str, Any]:
    redacted: dict[str, Any] = redact(state.config.model_dump(mode="json"))
    return redacted


#: ``scheme://user:password@host...``: the authority of a URL.
_AUTHORITY = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/?#]*)")


def redact(value: Any) -> Any:
    """``value`` with every password inside a URL's user info replaced by ``***``."""
    if isinstance(value, str):
        match = _AUTHORITY.match(value)
        if match is None or "@" not in match["authority"]:
            return value
        userinfo, _, host = match["authority"].rpartition("@")
        if ":" not in userinfo:
            return value
        user = userinfo.split(":", 1)[0]
        return f"{match['scheme']}{user}:***@{host}{value[match.end():]}"
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
