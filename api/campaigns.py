"""Campaigns under ``/api/v1/campaigns`` (issue 12.2; acd.domain.campaigns).

| resource | agent | supervisor | admin |
|---|---|---|---|
| ``GET /campaigns`` (progress), ``GET /campaigns/{id}/contacts`` | 403 | ✓ | ✓ |
| ``POST /campaigns/{id}/contacts`` (CSV body: ``number[,name]`` per line) | 403 | ✓ | ✓ |
| ``POST /campaigns/{id}/contacts/{index}/outcome`` | the agent who talked to it | ✓ | ✓ |
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from acd.runtime.campaigns import CampaignRunner, runner_of
from api.models import ErrorBody, ValidationErrors
from api.routes import _AUTH, Anyone, Staff, State, _400, _404

router = APIRouter(prefix="/api/v1", tags=["campaigns"], responses=_AUTH)

CampaignId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,40}$")]
_OFF: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such campaign (or none configured)."}}
_BAD: dict[int | str, dict[str, Any]] = {
    **_400,
    422: {"model": ErrorBody | ValidationErrors,
          "description": "Invalid request, not UTF-8 text, or an unknown outcome code."}}


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z0-9_-]{1,32}$", examples=["sale"])


def _runner(state: Any) -> CampaignRunner:
    runner: CampaignRunner | None = runner_of(state.engine)
    if runner is None:
        raise HTTPException(404, "no campaigns are configured")
    return runner


def _campaign(runner: CampaignRunner, campaign_id: str) -> Any:
    campaign = runner.campaigns.get(campaign_id)
    if campaign is None:
        raise HTTPException(404, f"no campaign {campaign_id!r}")
    return campaign


@router.get("/campaigns", summary="Every campaign's progress")
async def list_campaigns(who: Staff, state: State) -> list[dict[str, Any]]:
    runner: CampaignRunner | None = runner_of(state.engine)
    return [] if runner is None else [c.progress() for c in runner.campaigns.values()]


@router.get("/campaigns/{campaign_id}/contacts", summary="A campaign's contacts",
            responses={**_404, **_OFF})
async def list_contacts(campaign_id: CampaignId, who: Staff,
                        state: State) -> list[dict[str, Any]]:
    return [c.as_dict() for c in _campaign(_runner(state), campaign_id).contacts]


@router.post("/campaigns/{campaign_id}/contacts", summary="Add contacts (CSV)",
             responses={**_404, **_OFF, **_BAD},
             description="The body is CSV text (`text/csv`): `number[,name]` per line, "
                         "an optional header. Numbers on the campaign's do-not-call list "
                         "are kept but never dialled; numbers outside `callbacks.allow` "
                         "are refused.")
async def add_contacts(campaign_id: CampaignId, request: Request, who: Staff,
                       state: State) -> dict[str, int]:
    runner = _runner(state)
    _campaign(runner, campaign_id)
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "the body is not UTF-8 text") from None
    return runner.load(campaign_id, text)


@router.post("/campaigns/{campaign_id}/contacts/{index}/outcome",
             summary="Set a contact's outcome code", responses={**_404, **_OFF, **_BAD})
async def set_outcome(campaign_id: CampaignId, index: Annotated[int, Path(ge=0)],
                      body: Outcome, who: Anyone, state: State) -> dict[str, Any]:
    campaign = _campaign(_runner(state), campaign_id)
    if not index < len(campaign.contacts):
        raise HTTPException(404, f"no contact {index}")
    contact = campaign.contacts[index]
    if who.is_agent and who.agent_id != contact.agent:
        raise HTTPException(403, "an agent sets the outcome of its own contacts only")
    try:
        return dict(campaign.set_outcome(index, body.code).as_dict())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
