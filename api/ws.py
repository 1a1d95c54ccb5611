"""WebSocket ``/api/v1/events``: a snapshot on connect, then every state change.

Authentication (the token never travels in the URL, so it never reaches an access log):

* the desktop's or console's session cookie (``api.sessions``), from the same origin
  (``Origin`` must match ``Host``), or

* ``Authorization: Bearer <token>`` on the upgrade request (programs), or
* subprotocols ``["acd.v1", "bearer.<token>"]`` (browsers: ``new WebSocket(url,
  ["acd.v1", "bearer." + token])``); the server selects ``acd.v1``.

A missing or unknown token: the socket is accepted, then closed with code **4401**
(a browser cannot read the status of a refused handshake, it can read a close code);
**4429** when the client presented too many unknown tokens (as HTTP 429).
4403 is reserved for a role that may not subscribe; today every role may, and an agent
sees only its own events.

Messages (JSON text frames, server → client):

* ``{"type": "snapshot", "time", "queues", "agents", "calls", "sites", "regions",
  "callbacks", "campaigns"}`` — once, first;
* ``{"type": "event", "time", "name", "data"}`` — each engine event as it is published
  (``call_waiting``, ``call_offered``, ``call_connected``, ``call_completed``,
  ``call_abandoned``, ``call_requeued``, ``call_overflowed``, ``partner_rejected``,
  ``agent_no_answer``, ``agent`` …);
* ``{"type": "pop", "time", "call", "context"}`` — to an agent, the call just offered
  to it (as ``GET /calls/{id}``) and its callback or campaign context (null for an
  inbound caller), sent just before that ``call_offered`` event;
* ``{"type": "summary", "time", "queues", "calls", "sites", "regions", "callbacks",
  "campaigns"}`` — per-queue figures, call counts, partner sites and calls by region,
  the callbacks not finished by state and the campaigns' progress
  (:func:`outbound_summary`), at most ``SUMMARY_DELAY`` after a change and every
  ``HEARTBEAT`` seconds otherwise.

An ``agent`` token gets its own agent and calls in the snapshot and summaries, and only
the events that name it. A client that falls more than ``MAX_LAG`` events behind is
closed with 1013 (try again later) rather than let memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect

from acd.domain.figures import is_campaign_attempt
from api.auth import (
    WS_PROTOCOL,
    Principal,
    bearer_from_header,
    bearer_from_subprotocols,
)
from api.guards import client_of
from api.sessions import COOKIE

if TYPE_CHECKING:
    from acd.domain import Fact
    from api.state import ApiState

log = logging.getLogger("acd.api")

#: Calls in the first snapshot at most (the first in line; the rest: ``GET /calls``
#: with the snapshot's ``calls.next_cursor``); events carry every change after it.
SNAPSHOT_CALLS = 1000
SUMMARY_DELAY = 0.25
HEARTBEAT = 5.0
MAX_LAG = 5000
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
#: Too many unknown tokens from this client (HTTP 429's counterpart).
CLOSE_THROTTLED = 4429


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, default=str, separators=(",", ":"))


def snapshot_message(state: ApiState, principal: Principal) -> dict[str, Any]:
    views = state.views
    if principal.is_agent:
        agent = views.agent(principal.agent_id or "")
        return {"type": "snapshot", "time": views.now(), "queues": [],
                "agents": [agent.model_dump(mode="json")] if agent else [],
                "calls": views.calls(principal.agent_id).model_dump(mode="json"),
                "sites": [], "regions": []}
    return {"type": "snapshot", "time": views.now(),
            "queues": [q.model_dump(mode="json") for q in views.queues()],
            "agents": [a.model_dump(mode="json") for a in views.agents()],
            "calls": views.calls(limit=SNAPSHOT_CALLS).model_dump(mode="json"),
            **_partner_summaries(state), **outbound_summary(state)}


def summary_message(state: ApiState, principal: Principal) -> dict[str, Any]:
    views = state.views
    if principal.is_agent:
        agent = views.agent(principal.agent_id or "")
        return {"type": "summary", "time": views.now(), "queues": [],
                "agents": [agent.model_dump(mode="json")] if agent else [],
                "calls": {}, "sites": [], "regions": []}
    return {"type": "summary", "time": views.now(),
            "queues": [q.model_dump(mode="json") for q in views.queues()],
            "calls": views.call_counts(),
            **_partner_summaries(state), **outbound_summary(state)}


def _partner_summaries(state: ApiState) -> dict[str, Any]:
    """Sites (as ``GET /sites``) and regions (as ``GET /regions``)."""
    views = state.views
    return {"sites": [s.model_dump(mode="json") for s in views.sites()],
            "regions": [r.model_dump(mode="json") for r in views.regions()]}


def outbound_summary(state: ApiState) -> dict[str, Any]:
    """``callbacks``: the callbacks not finished, by state (a campaign's attempts
    apart: they are its progress) — ``waiting`` (in line, scheduled or between
    attempts), ``dialing``, ``connected``; ``null`` without a callbacks section.
    ``campaigns``: each campaign's progress (as ``GET /campaigns``). Today's outcomes
    and delays are the queues' ``today`` figures."""
    engine = state.engine
    book = engine.core.callbacks
    callbacks: dict[str, int] | None = None
    if book.enabled:
        callbacks = {"waiting": 0, "dialing": 0, "connected": 0}
        for cb in book.pending():
            if is_campaign_attempt(cb.callback_id):
                continue
            key = cb.state.value if cb.state.value in callbacks else "waiting"
            callbacks[key] += 1
    runner = getattr(engine, "campaign_runner", None)
    campaigns = [] if runner is None else [c.progress() for c in runner.campaigns.values()]
    return {"callbacks": callbacks, "campaigns": campaigns}


def _visible(ev: Fact, principal: Principal) -> bool:
    return not principal.is_agent or getattr(ev, "agent", None) == principal.agent_id


def _data_for(ev: Fact, principal: Principal) -> dict[str, Any]:
    """The event's data as this principal may see it: an agent gets the counts of why
    the other agents did not get its call, not their names and states (as in the
    explanation endpoint)."""
    data = ev.data
    excluded = data.get("excluded")
    if principal.is_agent and isinstance(excluded, dict) and excluded.get("runners_up"):
        data["excluded"] = {**excluded, "runners_up": []}
    return data


async def events_endpoint(websocket: WebSocket) -> None:
    state: ApiState = websocket.app.state.acd
    offered = list(websocket.scope.get("subprotocols") or [])
    token = (bearer_from_header(websocket.headers.get("authorization"))
             or bearer_from_subprotocols(offered))
    subprotocol = WS_PROTOCOL if WS_PROTOCOL in offered else None
    client = client_of(websocket.client)
    if state.failed_auth.retry_after(client) > 0:
        state.failed_auth.throttled(client, "WebSocket /api/v1/events")
        await _refuse(websocket, subprotocol, CLOSE_THROTTLED,
                      "too many failed authentications from this client")
        return
    principal = state.tokens.authenticate(token)
    cookie: str | None = None
    if principal is None and token is None:
        principal = _session_principal(state, websocket)
        cookie = websocket.cookies.get(COOKIE) if principal is not None else None
    if principal is None:
        state.failed_auth.failed(client, "invalid" if token else "missing",
                                 "WebSocket /api/v1/events")
        await _refuse(websocket, subprotocol, CLOSE_UNAUTHORIZED,
                      "missing or invalid bearer token")
        return
    await websocket.accept(subprotocol=subprotocol)
    log.info("events stream opened for %s (%s)", principal.name, principal.role.value)
    async with state.engine.subscribe() as queue:
        # Subscribed before the snapshot is built (no await in between): nothing is missed.
        first = snapshot_message(state, principal)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.send_text(_dump(first))
            await _pump(websocket, state, principal, queue, cookie)
    log.info("events stream closed for %s", principal.name)


def _session_principal(state: ApiState, websocket: WebSocket) -> Principal | None:
    """A page's session cookie, from the same origin only (a cross-site page could make
    the browser send the cookie on its own WebSocket: the Origin tells it)."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host", "")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return None
    session = state.sessions.lookup(websocket.cookies.get(COOKIE))
    return None if session is None else session.principal


async def _refuse(websocket: WebSocket, subprotocol: str | None, close_code: int,
                  detail: str) -> None:
    """Accept, then close with an application code a browser can read (a refused
    handshake only shows up as a generic failure there)."""
    await websocket.accept(subprotocol=subprotocol)
    await websocket.close(code=close_code, reason=detail)


async def _pump(websocket: WebSocket, state: ApiState, principal: Principal,
                queue: asyncio.Queue[Fact], cookie: str | None = None) -> None:
    receiver = asyncio.create_task(_drain_incoming(websocket))
    sender = asyncio.create_task(_send_events(websocket, state, principal, queue, cookie))
    try:
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (receiver, sender):
            task.cancel()
        for task in (receiver, sender):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect,
                                     RuntimeError, OSError):
                await task


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _send_pop(websocket: WebSocket, state: ApiState, ev: Fact) -> None:
    """The agent's screen pop: the offered call as ``GET /calls/{id}`` shows it (caller,
    region and how it was found, segment, DID, IVR choice, queue, stage, wait, EWT) and
    its callback or campaign context (``api.desk.CallContext``, null for a caller), sent
    the moment the offer is published — before the phone rings."""
    from api.desk import call_context

    view = state.views.call(getattr(ev, "call_id", ""))
    if view is not None:
        context = call_context(state, view.id)
        await websocket.send_text(_dump({
            "type": "pop", "time": state.views.now(), "call": view.model_dump(mode="json"),
            "context": None if context is None else context.model_dump(mode="json")}))


async def _send_events(websocket: WebSocket, state: ApiState, principal: Principal,
                       queue: asyncio.Queue[Fact], cookie: str | None = None) -> None:
    """``cookie``: the page session the stream was opened with; once it ends (sign-out,
    a supervisor, a sign-in elsewhere, expiry) the stream closes with 4401."""
    loop = asyncio.get_running_loop()
    last_summary = loop.time()
    dirty = False
    while True:
        due = last_summary + (SUMMARY_DELAY if dirty else HEARTBEAT)
        ev: Fact | None = None
        with contextlib.suppress(TimeoutError):
            ev = await asyncio.wait_for(queue.get(), max(0.0, due - loop.time()))
        if cookie is not None and state.sessions.lookup(cookie) is None:
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
            return
        if ev is not None and _visible(ev, principal):
            if principal.is_agent and ev.name == "call_offered":
                await _send_pop(websocket, state, ev)
            await websocket.send_text(_dump({"type": "event", "time": state.views.now(),
                                             "name": ev.name,
                                             "data": _data_for(ev, principal)}))
            dirty = True
        if queue.qsize() > MAX_LAG:
            log.warning("events stream for %s fell %d events behind; closing",
                        principal.name, queue.qsize())
            await websocket.close(code=1013, reason="too far behind")
            return
        if loop.time() >= last_summary + (SUMMARY_DELAY if dirty else HEARTBEAT):
            await websocket.send_text(_dump(summary_message(state, principal)))
            last_summary = loop.time()
            dirty = False
