"""The agent desktop and the supervisor console: sign-in, the agent's own tools, the
console's scoped snapshot, the audit log, and the pages (issue 13).

| resource | agent | supervisor | admin |
|---|---|---|---|
| ``POST /session`` (sign in), ``GET /session``, ``DELETE /session`` | ✓ | ✓ | ✓ |
| ``GET /desk`` (own status, call, reasons, dispositions) | ✓ | 403 | 403 |
| ``POST /desk/wrap-up`` (end, extend), ``POST /desk/disposition`` | ✓ | 403 | 403 |
| ``GET /desk/history`` (the caller's previous contacts) | its call's caller | 403 | 403 |
| ``POST /desk/transfer`` (its caller to a queue, keeping its place) | its call | 403 | 403 |
| ``POST /desk/callback`` (a callback to its caller's number) | its call | 403 | 403 |
| ``GET /console`` (agents, waiting calls, queues: in scope) | 403 | ✓ | ✓ |
| ``POST /agents/{id}/sign-out`` (ends the agent's page session) | 403 | ✓ (scope) | ✓ |
| ``GET /audit`` (supervisor and admin actions) | 403 | 403 | ✓ |

Pages: ``/desk`` (agent desktop), ``/console`` (supervisor console): one HTML file and
one script each, no inline script or style, a strict CSP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from acd.config import ApiRole, passwords
from acd.domain import DomainError, Fact, InvalidCommand, UnknownAgent, UnknownQueue
from acd.domain.events import EndWrapUp, ExtendWrapUp, RequestCallback, SetDisposition
from acd.domain.facts import CallOffered, CallWaiting
from acd.runtime.callbacks import dialer_of
from acd.runtime.campaigns import runner_of
from api.auth import Principal
from api.errors import EngineUnavailable
from api.models import AgentView, CallView, ErrorBody, QueueView, ValidationErrors
from api.routes import allow, api_state, principal, run_command
from api.sessions import COOKIE, Credentials, SessionStore
from api.state import ApiState

log = logging.getLogger("acd.api")
audit_log = logging.getLogger("acd.audit")

STATIC = Path(__file__).with_name("static")

def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


router = APIRouter(prefix="/api/v1", tags=["desktop"], responses={
    400: _error("The body is not valid JSON."),
    401: _error("Not signed in (no session cookie or bearer token), or a wrong id or "
                "PIN/password."),
    403: _error("The role or scope may not do this, no `X-CSRF-Token` with a session "
                "cookie, or a sign-in that is not JSON from the same origin."),
    404: _error("No such agent or call (or not this agent's)."),
    409: _error("The state does not allow it now (`not_in_wrap_up`, `wrap_up_limit`, "
                "`not_your_call`, `signed_in_elsewhere`, `not_in_conversation`, "
                "`no_call`, `same_queue`, `queue_closed`, `callbacks_not_configured`)."),
    413: _error("The body is larger than `api.limits.max_body_bytes`."),
    422: {"model": ErrorBody | ValidationErrors, "description": "Invalid body or query."},
    429: _error("Too many failed sign-ins or tokens from this client."),
    503: _error("The engine did not take the command in time, or the history database "
                "did not answer."),
})
pages = APIRouter(include_in_schema=False)

State = Annotated[ApiState, Depends(api_state)]
Anyone = Annotated[Principal, Depends(principal)]
AgentOnly = Annotated[Principal, Depends(allow(ApiRole.AGENT))]
Staff = Annotated[Principal, Depends(allow(ApiRole.SUPERVISOR, ApiRole.ADMIN))]
Admin = Annotated[Principal, Depends(allow(ApiRole.ADMIN))]


# -- what the desk remembers of the live session ---------------------------------------


class DeskMemory:
    """A fact hook: each call's caller and the live session's contacts per caller
    (the previous contacts when there is no history database), bounded."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self.calls: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.by_caller: dict[str, deque[str]] = {}

    def observe(self, fact: Fact, now: float) -> None:
        if isinstance(fact, CallWaiting):
            entry = self.calls.get(fact.call_id)
            if entry is None:
                entry = {"call_id": fact.call_id, "caller": fact.caller,
                         "entry_time": time.time() - max(0.0, now - fact.entry_time),
                         "queue": fact.queue, "agent": None, "outcome": "waiting"}
                self.calls[fact.call_id] = entry
                self.by_caller.setdefault(fact.caller, deque(maxlen=20)).append(
                    fact.call_id)
                while len(self.calls) > self.LIMIT:
                    old_id, old = self.calls.popitem(last=False)
                    ids = self.by_caller.get(old["caller"])
                    if ids is not None and old_id in ids:
                        ids.remove(old_id)
            entry["queue"] = fact.queue
        elif isinstance(fact, CallOffered):
            entry = self.calls.get(fact.call_id)
            if entry is not None:
                entry["agent"] = fact.agent
        else:
            entry = self.calls.get(getattr(fact, "call_id", "") or "")
            if entry is not None and fact.name.startswith("call_"):
                entry["outcome"] = fact.name.removeprefix("call_")

    def caller_of(self, call_id: str) -> str | None:
        entry = self.calls.get(call_id)
        return None if entry is None else str(entry["caller"])

    def contacts(self, caller: str, but: str) -> list[dict[str, Any]]:
        return [dict(self.calls[c]) for c in reversed(self.by_caller.get(caller, ()))
                if c != but and c in self.calls]


class AuditLog:
    """Every supervisor and admin action (API and console): who, what, when, answer.

    Kept in memory (the last ``size``) and, with ``desktop.audit_file``, appended to that
    file as JSON lines (flushed at each entry; the last ``size`` are read back at start,
    so ``GET /audit`` survives a restart)."""

    def __init__(self, size: int = 10_000, path: str | None = None) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=size)
        self.path = Path(path) if path else None
        if self.path is not None and self.path.exists():
            with self.path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a torn last line after a crash
                    if isinstance(entry, dict):
                        self.entries.append(entry)

    def record(self, who: Principal, method: str, path: str, status: int,
               detail: str = "") -> None:
        entry = {"time": time.time(), "who": who.name, "role": who.role.value,
                 "action": f"{method} {path}", "status": status, "detail": detail}
        self.entries.append(entry)
        audit_log.info("%s (%s): %s %s → %d %s", who.name, who.role.value, method, path,
                       status, detail)
        if self.path is not None:
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            except OSError as exc:
                log.warning("audit file %s: %s (the entry is in the log)", self.path, exc)


class AuditMiddleware(BaseHTTPMiddleware):
    """Audit every state-changing request a supervisor or admin made (API and console),
    with its answer; reads the principal the auth dependency left on the request."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint
                       ) -> Response:
        response = await call_next(request)
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            who: Principal | None = getattr(request.state, "principal", None)
            audit: AuditLog | None = getattr(request.app.state, "audit", None)
            if who is not None and audit is not None and not who.is_agent:
                audit.record(who, request.method, request.url.path, response.status_code,
                             getattr(request.state, "audit_detail", ""))
        return response


# -- sign-in ---------------------------------------------------------------------------


class SignIn(BaseModel):
    kind: Literal["agent", "supervisor"]
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    secret: str = Field(min_length=1, max_length=passwords.MAX_LENGTH)


class SessionInfo(BaseModel):
    who: str
    role: str
    agent: str | None = None
    supervisor: str | None = None
    csrf: str
    expires_in: float
    scope: dict[str, list[str] | None] = Field(default_factory=dict)


def _info(principal_: Principal, csrf: str, expires_in: float) -> SessionInfo:
    return SessionInfo(
        who=principal_.name, role=principal_.role.value, agent=principal_.agent_id,
        supervisor=principal_.supervisor, csrf=csrf, expires_in=round(expires_in),
        scope={"queues": sorted(principal_.queues) if principal_.queues is not None
               else None,
               "sites": sorted(principal_.sites) if principal_.sites is not None else None})


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


@router.post("/session", summary="Sign in on the desktop or console page",
             description="Agent id and PIN, or supervisor id and password. Sets an "
                         "HttpOnly SameSite=Strict session cookie; answers the CSRF token "
                         "that every state-changing request with the cookie must carry in "
                         "`X-CSRF-Token`. Wrong id or secret: 401 (same answer and time "
                         "for both); signed in elsewhere with `second_sign_in: refuse`: "
                         "409 `signed_in_elsewhere`.")
async def sign_in(body: SignIn, request: Request, state: State) -> JSONResponse:
    from api.guards import client_of

    if not request.headers.get("content-type", "").startswith("application/json") \
            or not _same_origin(request):
        raise HTTPException(403, "sign in from the page (JSON, same origin)")
    client = client_of(request.client)
    if state.failed_auth.retry_after(client) > 0:
        retry = state.failed_auth.throttled(client, "POST /api/v1/session")
        raise HTTPException(429, "too many failed sign-ins from this client",
                            headers={"Retry-After": str(retry)})
    creds: Credentials = request.app.state.credentials
    cred = creds.get(body.kind, body.id)
    ok = await asyncio.to_thread(passwords.verify_or_dummy, body.secret,
                                 cred.hashed if cred else None)
    if not ok or cred is None:
        state.failed_auth.failed(client, "invalid", "POST /api/v1/session")
        raise HTTPException(401, "unknown id or wrong PIN/password")
    state.sessions.end(request.cookies.get(COOKIE))  # never keep a cookie from before
    who = Principal(cred.principal.name, cred.principal.role, cred.principal.agent_id,
                    supervisor=cred.principal.supervisor, queues=cred.principal.queues,
                    sites=cred.principal.sites, agents=cred.principal.agents, session=True)
    session_id, session = state.sessions.create(who)
    log.info("%s signed in on the %s page", who.name,
             "desktop" if who.is_agent else "console")
    if not who.is_agent:  # a supervisor's or admin's sign-in is an action too
        request.app.state.audit.record(who, "POST", "/api/v1/session", 200, "signed in")
    response = JSONResponse(_info(who, session.csrf, state.sessions.ttl).model_dump())
    response.set_cookie(COOKIE, session_id, max_age=int(state.sessions.ttl), path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/session", summary="The current page session (and its CSRF token)")
async def get_session(request: Request, state: State) -> SessionInfo:
    session = state.sessions.lookup(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(401, "not signed in")
    return _info(session.principal, session.csrf, session.expires - state.sessions.clock())


@router.delete("/session", summary="Sign out (ends this page session)")
async def sign_out(request: Request, who: Anyone, state: State) -> JSONResponse:
    state.sessions.end(request.cookies.get(COOKIE))
    response = JSONResponse({"signed_out": who.name})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/agents/{agent_id}/sign-out", summary="End an agent's page session",
             description="Supervisor command (in scope); the agent's page shows it was "
                         "signed out. Its status does not change (`POST "
                         "/agents/{id}/state` with `logout` does that).")
async def sign_out_agent(agent_id: str, who: Staff, state: State) -> dict[str, Any]:
    if not who.sees_agent(agent_id):
        raise HTTPException(403, "agent outside this supervisor's scope")
    return {"agent": agent_id, "ended": state.sessions.end_for(f"agent:{agent_id}")}


# -- the agent's desk ------------------------------------------------------------------


class Disposition(BaseModel):
    code: str
    name: str


class ContactInfo(BaseModel):
    index: int
    number: str
    name: str
    region: str
    attempts: int = Field(description="Attempts on this contact before this one.")


class CallContext(BaseModel):
    """What the offered call is when it is not an inbound caller: a callback (the
    customer's number, when it was asked for, which attempt) or a campaign attempt (the
    campaign, the contact's fields, the outcome codes)."""

    kind: Literal["callback", "campaign"]
    number: str = Field(description="The number the engine calls.")
    queue: str
    requested_at: float = Field(description="When the callback was asked for (epoch s).")
    scheduled_for: float | None = Field(
        description="The time it was scheduled for (epoch s); null: as soon as possible.")
    attempt: int = Field(description="This attempt, from 1.")
    max_attempts: int
    reason: str = Field(description="Why: `caller_key`, `max_ewt`, `api:<who>`, "
                                    "`desk:<agent>`, `campaign:<id>` …")
    origin_call_id: str = Field(description="The call it replaced or was asked from "
                                            "(\"\" if scheduled through the API).")
    ewt: float | None = Field(description="The caller's expected wait when it asked.")
    campaign: str | None = None
    contact: ContactInfo | None = None
    outcome_codes: list[str] = Field(default_factory=list)


def call_context(state: ApiState, call_id: str) -> CallContext | None:
    """The callback or campaign context of a call (None: an inbound caller)."""
    from acd.domain.campaigns import parse_attempt_id

    engine = state.engine
    cb = engine.core.callbacks.by_id.get(call_id)
    if cb is None:
        return None
    settings = engine.core.callbacks.settings
    ctx = CallContext(
        kind="callback", number=cb.number, queue=cb.queue_id,
        requested_at=cb.requested_at, scheduled_for=cb.not_before or None,
        attempt=cb.attempts + 1,
        max_attempts=cb.max_attempts or (settings.attempts if settings else 1),
        reason=cb.reason, origin_call_id=cb.origin_call_id, ewt=cb.ewt)
    parsed = parse_attempt_id(call_id)
    if parsed is None:
        return ctx
    campaign_id, index = parsed
    ctx.kind, ctx.campaign = "campaign", campaign_id
    ctx.attempt = int(call_id.rsplit("-", 1)[1])  # cmp-<campaign>-<index>-<attempt>
    runner = runner_of(engine)
    campaign = runner.campaigns.get(campaign_id) if runner is not None else None
    if campaign is None:
        return ctx
    ctx.outcome_codes = list(campaign.settings.outcome_codes)
    ctx.max_attempts = campaign.settings.attempts
    if 0 <= index < len(campaign.contacts):
        c = campaign.contacts[index]
        ctx.contact = ContactInfo(index=c.index, number=c.number, name=c.name,
                                  region=c.region, attempts=ctx.attempt - 1)
    return ctx


class DeskView(BaseModel):
    agent: AgentView
    call: CallView | None
    context: CallContext | None = Field(
        default=None, description="The call's callback or campaign context.")
    queues: list[str] = Field(default_factory=list,
                              description="The queues a caller may be transferred to.")
    callbacks: bool = Field(default=False, description="Whether callbacks are "
                                                       "configured (a callback request "
                                                       "is possible).")
    pause_reasons: list[str]
    dispositions: list[Disposition]
    wrap_up_extend: float
    wrap_up_max: float
    note_max: int
    time: float


class WrapUpAction(BaseModel):
    action: Literal["end", "extend"]


class DispositionBody(BaseModel):
    call_id: str = Field(min_length=1, max_length=128)
    code: str = Field(default="", max_length=64)
    note: str = Field(default="", max_length=20_000)


def _agent_view(state: ApiState, agent_id: str) -> AgentView:
    view = state.views.agent(agent_id)
    if view is None:
        raise UnknownAgent(f"unknown agent {agent_id!r}")
    return view


@router.get("/desk", summary="The agent's own desk: status, call, reasons, codes")
async def desk(who: AgentOnly, state: State) -> DeskView:
    agent = _agent_view(state, who.agent_id or "")
    call = state.views.call(agent.call_id) if agent.call_id else None
    cfg = state.config
    return DeskView(
        agent=agent, call=call,
        context=call_context(state, call.id) if call is not None else None,
        queues=[q.id for q in cfg.queues], callbacks=state.engine.callback_dialer is not None,
        pause_reasons=list(cfg.engine.pause_reasons),
        dispositions=[Disposition(code=d.code, name=d.name or d.code)
                      for d in cfg.desktop.dispositions],
        wrap_up_extend=cfg.desktop.wrap_up_extend, wrap_up_max=cfg.desktop.wrap_up_max,
        note_max=cfg.desktop.note_max, time=state.views.now())


@router.post("/desk/wrap-up", summary="End the running wrap-up now, or extend it")
async def wrap_up(body: WrapUpAction, who: AgentOnly, state: State) -> AgentView:
    agent_id = who.agent_id or ""
    now = state.engine.clock()
    await run_command(state, EndWrapUp(agent_id, now) if body.action == "end"
                      else ExtendWrapUp(agent_id, 0.0, now))
    return _agent_view(state, agent_id)


@router.post("/desk/disposition", summary="Disposition code and note for the last call")
async def disposition(body: DispositionBody, who: AgentOnly, state: State
                      ) -> dict[str, str]:
    await run_command(state, SetDisposition(who.agent_id or "", body.call_id, body.code,
                                            body.note, state.engine.clock()))
    return {"call_id": body.call_id, "code": body.code}


@router.get("/desk/history", summary="The previous contacts of the caller of a call the "
                                      "agent holds or held last")
async def caller_history(request: Request, who: AgentOnly, state: State,
                         call: Annotated[str, Query(min_length=1, max_length=128)],
                         ) -> dict[str, Any]:
    agent = _agent_view(state, who.agent_id or "")
    if call not in (agent.call_id, agent.last_call_id):
        raise HTTPException(404, "not a call of this agent")
    memory: DeskMemory = request.app.state.desk_memory
    caller = memory.caller_of(call)
    if caller is None:
        view = state.views.call(call)
        caller = view.caller if view is not None else None
    if not caller:
        return {"caller": "", "source": "none", "contacts": []}
    history = getattr(request.app.state, "history", None)
    if history is None:
        return {"caller": caller, "source": "live",
                "contacts": memory.contacts(caller, call)[:10]}
    rows = await asyncio.to_thread(_db_contacts, history, caller, call)
    return {"caller": caller, "source": "history", "contacts": rows}


def _db_contacts(history: Any, caller: str, but: str) -> list[dict[str, Any]]:
    from acd.runtime.history.tables import calls

    t = calls
    q = (select(t.c.call_id, t.c.entry_time, t.c.queue, t.c.agent, t.c.outcome,
                t.c.disposition, t.c.note)
         .where(t.c.caller == caller, t.c.call_id != but)
         .order_by(t.c.entry_time.desc()).limit(10))
    with history.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


class NotInConversation(DomainError):
    code = "not_in_conversation"


class NoCall(DomainError):
    code = "no_call"


class SameQueue(DomainError):
    code = "same_queue"


class CallbacksOff(DomainError):
    code = "callbacks_not_configured"


class DeskTransfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", examples=["complaint"])


class DeskCallback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Epoch seconds; absent or past: as soon as an agent is free (its place: now).
    at: float | None = Field(default=None, ge=0, examples=[1767232800.0])
    queue: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
                              description="The queue whose agents call back (default: "
                                          "the call's).")


@router.post("/desk/transfer", summary="Transfer the caller to a queue (keeping its place)",
             description="The agent's own call, in conversation: the caller leaves the "
                         "conversation for `queue` and lines up there with its first "
                         "entry time — what a blind transfer from the agent's phone to "
                         "the queue's code does (the engine redirects the caller's "
                         "channel over AMI). The agent goes to wrap-up. 409 "
                         "`not_in_conversation` (no call, or not connected yet), "
                         "`same_queue`, `queue_closed` (its hours); 404 `unknown_queue`; "
                         "503 when Asterisk could not be asked.")
async def desk_transfer(body: DeskTransfer, who: AgentOnly, state: State) -> dict[str, str]:
    from acd.domain import admission
    from acd.runtime.engine import TransferFailed

    agent = _agent_view(state, who.agent_id or "")
    view = state.views.call(agent.call_id) if agent.call_id else None
    if view is None or view.state != "connected" or view.agent != agent.id:
        raise NotInConversation("transfer only a call you are talking to "
                                "(no call in conversation now)")
    if state.engine.core.callbacks.by_id.get(view.id) is not None:
        raise NotInConversation("a callback or campaign call cannot be transferred "
                                "(the engine dialled it; request a callback instead)")
    engine = state.engine
    target = engine.core.queues.get(body.queue)
    if target is None:
        raise UnknownQueue(f"no queue {body.queue!r}")
    if target.id == view.queue:
        raise SameQueue(f"the caller is already in {body.queue!r}")
    if not admission.is_open(target, engine.clock()):
        from acd.domain.errors import QueueClosed

        raise QueueClosed(f"queue {target.id!r} is closed now (its hours)")
    try:
        await asyncio.wait_for(engine.transfer_connected(view.id, target.id),
                               state.command_timeout)
    except TimeoutError:
        raise HTTPException(503, "Asterisk did not answer the transfer in time") from None
    except TransferFailed as exc:
        raise HTTPException(503, str(exc)) from None
    log.info("call %s: agent %s transferred the caller to %s", view.id, agent.id, target.id)
    return {"call_id": view.id, "from_queue": view.queue, "queue": target.id}


@router.post("/desk/callback", status_code=201,
             summary="Request a callback to the caller of the agent's call",
             description="During the conversation or its wrap-up: a callback to the "
                         "caller's number (never another), now (`at` absent: as soon as "
                         "an agent of the queue is free) or at `at` (epoch seconds), for "
                         "the call's queue or `queue`. 409 `callbacks_not_configured` (no "
                         "`callbacks` section), `no_call`; 422 `invalid_command` (the "
                         "number outside `callbacks.allow`); 404 `unknown_queue`.")
async def desk_callback(body: DeskCallback, request: Request, who: AgentOnly,
                        state: State) -> dict[str, Any]:
    import secrets

    from api.callbacks import CallbackView

    agent = _agent_view(state, who.agent_id or "")
    engine = state.engine
    dialer = dialer_of(engine)
    if dialer is None:
        raise CallbacksOff("callbacks are not configured (no callbacks section): "
                           "no callback can be requested")
    call_id = agent.call_id if agent.state in ("on_call", "wrap_up") and agent.call_id \
        else (agent.last_call_id if agent.state == "wrap_up" else None)
    view = state.views.call(call_id) if call_id else None
    if call_id and view is not None and (view.state != "connected" or view.agent != agent.id):
        call_id = None  # ringing, or not this agent's
    if not call_id:
        raise NoCall("request a callback during a conversation or its wrap-up")
    memory: DeskMemory = request.app.state.desk_memory
    number = view.caller if view is not None else (memory.caller_of(call_id) or "")
    if not number:
        raise InvalidCommand("the caller's number is not known")
    queue_id = body.queue or (view.queue if view is not None
                              else str((memory.calls.get(call_id) or {}).get("queue", "")))
    now = engine.clock()
    at = body.at if body.at is not None and body.at > now else 0.0
    cb_id = f"desk-{secrets.token_hex(6)}"
    event = RequestCallback(call_id, number, now, callback_id=cb_id, queue_id=queue_id,
                            entry_time=max(at, now), not_before=at,
                            reason=f"desk:{agent.id}")
    try:
        await asyncio.wait_for(dialer.request(event), state.command_timeout)
    except TimeoutError:
        raise EngineUnavailable("the engine did not apply the command in time") from None
    cb = engine.core.callbacks.by_id.get(cb_id)
    if cb is None:
        raise HTTPException(409, "the callback ended at once")
    log.info("call %s: agent %s requested callback %s", call_id, agent.id, cb_id)
    return CallbackView.of(cb).model_dump()


# -- listen / whisper / barge -------------------------------------------------------


class SpyBody(BaseModel):
    mode: Literal["listen", "whisper", "barge"] = "listen"


@router.post("/calls/{call_id}/spy",
             summary="Listen, whisper or barge on an agent's live call from your phone",
             description="Supervisor command (a signed-in supervisor, or a token bound to "
                         "one, with `endpoint` configured): the engine originates a call to "
                         "the supervisor's own phone that runs ChanSpy on the agent's "
                         "channel (`listen`: hear both sides; `whisper`: the agent hears "
                         "you, the caller does not; `barge`: both hear you). Only a "
                         "connected call in the supervisor's scope; audited (who, which "
                         "call, agent, mode, when).")
async def spy_on_call(call_id: str, body: SpyBody, who: Staff, request: Request,
                      state: State) -> dict[str, str]:
    from acd.runtime.spy import SpyFailed, originate_spy

    view = state.views.call(call_id)
    if view is None or not who.sees_queue(view.queue):
        raise HTTPException(404, f"unknown call {call_id!r}")
    if view.state != "connected" or view.agent is None:
        raise HTTPException(409, "only a call in conversation with an agent")
    if not who.sees_agent(view.agent):
        raise HTTPException(403, "agent outside this supervisor's scope")
    if who.supervisor is None:
        raise HTTPException(403, "this principal is not a supervisor with a phone")
    request.state.audit_detail = f"{body.mode} call {call_id} agent {view.agent}"
    try:
        action = await originate_spy(state.config, who.supervisor, view.agent, body.mode,
                                     request.app.state.environ)
    except SpyFailed as exc:
        raise HTTPException(503, str(exc)) from None
    return {"call_id": call_id, "agent": view.agent, "mode": body.mode, "action": action}


class PartnerSend(BaseModel):
    site: str = Field(default="", max_length=64,
                      description="A partner site id; empty: the best open partner with "
                                  "room that offers the call's service.")


@router.post("/calls/{call_id}/partner",
             summary="Send a waiting call to a partner site now",
             description="Supervisor command: the call is offered to the named partner "
                         "site (or the best one) at once, if it is open, has room and "
                         "offers the call's service (409 `site_unavailable` otherwise); "
                         "refused outside the supervisor's scope. Audited.")
async def send_to_partner(call_id: str, body: PartnerSend, who: Staff, request: Request,
                          state: State) -> CallView:
    from acd.domain.events import SendToPartner

    view = state.views.call(call_id)
    if view is None or not who.sees_queue(view.queue):
        raise HTTPException(404, f"unknown call {call_id!r}")
    if body.site and not who.sees_site(body.site):
        raise HTTPException(403, "site outside this supervisor's scope")
    request.state.audit_detail = f"call {call_id} to {body.site or 'the best partner'}"
    await run_command(state, SendToPartner(call_id, body.site, state.engine.clock()))
    after = state.views.call(call_id)
    if after is None:
        raise HTTPException(404, f"unknown call {call_id!r}")
    return after


# -- the console -----------------------------------------------------------------------


class ConsoleView(BaseModel):
    time: float
    queues: list[QueueView]
    agents: list[AgentView]
    waiting: list[CallView]
    active: list[CallView]
    scope: dict[str, list[str] | None]


@router.get("/console", summary="The supervisor's console: queues, agents and calls in "
                                "its scope")
async def console(who: Staff, state: State) -> ConsoleView:
    views = state.views
    calls = views.calls(limit=1000)
    return ConsoleView(
        time=views.now(),
        queues=[q for q in views.queues() if who.sees_queue(q.id)],
        agents=[a for a in views.agents() if who.sees_agent(a.id)],
        waiting=[c for c in calls.waiting if who.sees_queue(c.queue)],
        active=[c for c in calls.active if who.sees_queue(c.queue)],
        scope={"queues": sorted(who.queues) if who.queues is not None else None,
               "sites": sorted(who.sites) if who.sites is not None else None})


@router.get("/audit", summary="The audit log: supervisor and admin actions, newest first")
async def audit(who: Admin, request: Request,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[dict[str, Any]]:
    log_: AuditLog = request.app.state.audit
    return list(reversed(log_.entries))[:limit]


# -- pages -----------------------------------------------------------------------------

_PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
             "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
             "connect-src 'self'")
_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


def _page(name: str) -> Any:
    html = (STATIC / name).read_text(encoding="utf-8")

    async def serve(request: Request) -> HTMLResponse:
        import re

        host = request.headers.get("host", "")
        csp = _PAGE_CSP + (f" ws://{host} wss://{host}"
                           if re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,255}", host) else "")
        return HTMLResponse(html, headers={**_HEADERS, "Content-Security-Policy": csp})
    return serve


def _asset(name: str, media: str) -> Any:
    body = (STATIC / name).read_text(encoding="utf-8")

    async def serve() -> Response:
        return Response(body, media_type=media, headers=_HEADERS)
    return serve


pages.add_api_route("/desk", _page("desk.html"), methods=["GET"])
pages.add_api_route("/console", _page("console.html"), methods=["GET"])
for _name, _media in (("desk.js", "text/javascript; charset=utf-8"),
                      ("console.js", "text/javascript; charset=utf-8"),
                      ("common.js", "text/javascript; charset=utf-8"),
                      ("desk.css", "text/css; charset=utf-8")):
    pages.add_api_route(f"/static/{_name}", _asset(_name, _media), methods=["GET"])


def install(app: Any, state: ApiState, environ: Any = None) -> None:
    """Wire the desktop into an app: sessions from the config, credentials, the live
    memory (a fact hook while the app lives), the audit log and its middleware."""
    desk_cfg = state.config.desktop
    state.sessions = SessionStore(ttl=desk_cfg.session_ttl,
                                  second_sign_in=desk_cfg.second_sign_in)
    app.state.credentials = Credentials(state.config)
    app.state.desk_memory = DeskMemory()
    app.state.audit = AuditLog(path=desk_cfg.audit_file)
    app.state.environ = environ  # the spy account's secret (None: the process's)
    app.add_middleware(AuditMiddleware)
    app.include_router(router)
    app.include_router(pages)
