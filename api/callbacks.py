"""Callbacks under ``/api/v1/callbacks`` (issue 12: outbound work through the same agents).

| resource | agent | supervisor | admin |
|---|---|---|---|
| ``GET /callbacks`` (pending, oldest place first), ``GET /callbacks/figures`` | 403 | ✓ | ✓ |
| ``POST /callbacks`` (schedule one: a number, a queue, a time) | 403 | ✓ | ✓ |
| ``DELETE /callbacks/{id}`` (cancel one not being dialled) | 403 | ✓ | ✓ |

Commands go through the engine's inbox like every other; the dialer
(``acd.runtime.callbacks``) is the only thing that originates. 404 when the config has
no ``callbacks`` section: 404 (nothing could dial).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from acd.domain.callbacks import Callback
from acd.domain.events import CancelCallback, RequestCallback
from acd.runtime.callbacks import dialer_of
from api.errors import EngineUnavailable
from api.models import ErrorBody, ValidationErrors
from api.routes import _AUTH, Staff, State, _400, _404, _409, run_command
from routing.numbers import normalise_number

router = APIRouter(prefix="/api/v1", tags=["callbacks"], responses=_AUTH)

_OFF: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No `callbacks` section in the config."},
    503: {"model": ErrorBody, "description": "The engine did not take the command in "
                                             "time."}}
_422: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody | ValidationErrors,
          "description": "Invalid body, or `invalid_command` (a number outside "
                         "`callbacks.allow`)."}}

CallbackId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class CallbackView(BaseModel):
    callback_id: str
    call_id: str = Field(description="The inbound call it replaced (\"\" if scheduled).")
    queue: str
    number: str
    entry_time: float = Field(description="Its place in line: the caller's first entry.")
    requested_at: float
    ewt: float | None = Field(description="The caller's expected wait when it asked.")
    not_before: float
    attempts: int
    state: str = Field(description="pending, scheduled, retry, dialing, connected.")
    retry_at: float | None
    agent: str
    reason: str

    @classmethod
    def of(cls, cb: Callback) -> CallbackView:
        d = cb.as_dict()
        d.pop("server", None)
        d.pop("outcome", None)
        d.pop("dials", None)
        d.pop("max_attempts", None)
        return cls(**d)


class CallbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=3, max_length=32, examples=["13800138000"])
    queue: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", examples=["consult"])
    #: Epoch seconds; absent or past: as soon as an agent is free (its place: now).
    at: float | None = Field(default=None, ge=0, examples=[1767232800.0])


class CallbackFigures(BaseModel):
    offered: int = Field(description="Callers who left the line for a callback.")
    requested: int = Field(description="Callbacks confirmed (or scheduled).")
    completed: int
    failed: int
    cancelled: int
    attempts: int
    pending: int
    originated: int = Field(description="AMI Originates sent by this engine.")
    in_doubt: int = Field(description="Originates whose reply was lost: never resent.")


def _dialer(state: Any) -> Any:
    dialer = dialer_of(state.engine)
    if dialer is None:
        raise HTTPException(404, "callbacks are not configured (no callbacks section)")
    return dialer


@router.get("/callbacks", summary="Pending callbacks, oldest place first")
async def list_callbacks(who: Staff, state: State) -> list[CallbackView]:
    return [CallbackView.of(cb) for cb in state.engine.core.callback_list()]


@router.get("/callbacks/figures", summary="Callbacks offered, completed, failed …")
async def callback_figures(who: Staff, state: State) -> CallbackFigures:
    core = state.engine.core
    dialer = dialer_of(state.engine)
    return CallbackFigures(**core.callbacks.totals, pending=len(core.callbacks.pending()),
                           originated=dialer.originated if dialer else 0,
                           in_doubt=dialer.in_doubt if dialer else 0)


@router.post("/callbacks", status_code=201, summary="Schedule a callback",
             responses={**_400, **_404, **_409, **_422, **_OFF},
             description="A number to call back for a queue, now or at `at` (epoch "
                         "seconds). The number must match `callbacks.allow` (422 "
                         "`invalid_command` otherwise).")
async def schedule_callback(body: CallbackRequest, who: Staff, state: State) -> CallbackView:
    dialer = _dialer(state)
    engine = state.engine
    now = engine.clock()
    at = body.at if body.at is not None and body.at > now else 0.0
    cb_id = f"api-{secrets.token_hex(6)}"
    event = RequestCallback("", normalise_number(body.number), now, callback_id=cb_id,
                            queue_id=body.queue, entry_time=max(at, now),
                            not_before=at, reason=f"api:{who.name}")
    try:
        await asyncio.wait_for(dialer.request(event), state.command_timeout)
    except TimeoutError:
        raise EngineUnavailable("the engine did not apply the command in time") from None
    cb = engine.core.callbacks.by_id.get(cb_id)
    if cb is None:
        raise HTTPException(409, "the callback ended at once")
    return CallbackView.of(cb)


@router.delete("/callbacks/{callback_id}", status_code=204,
               responses={**_404, **_409, **_OFF},
               summary="Cancel a callback that is not being dialled")
async def cancel_callback(callback_id: CallbackId, who: Staff, state: State) -> None:
    _dialer(state)
    await run_command(state, CancelCallback(callback_id, state.engine.clock()))
