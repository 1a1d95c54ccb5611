"""Request and response bodies of the HTTP API (pydantic v2 → the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from acd.domain.figures import Window
from routing import Why


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Presence(StrEnum):
    """One word per agent, from its status, its state and its phone."""

    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"
    LOGGED_OUT = "logged_out"


class ErrorBody(_Out):
    error: str = Field(description="Stable machine-readable code, e.g. unknown_agent.")
    detail: str


class ValidationErrors(_Out):
    """FastAPI's invalid body or path answer."""

    detail: list[dict[str, Any]]


class Health(_Out):
    status: Literal["ok"] = "ok"


class Readiness(_Out):
    ready: bool
    accepting: bool = Field(description="The engine takes calls (FastAGI listening).")
    ami: Literal["up", "down", "disabled"]


class AgentCounts(_Out):
    ready: int = 0
    ringing: int = 0
    on_call: int = 0
    wrap_up: int = 0
    paused: int = 0
    unavailable: int = 0
    logged_out: int = 0


class WindowView(_Out):
    window: Window
    since: datetime = Field(description="Start of the window (local midnight for today).")
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    abandoned_after_target: int
    overflowed: int
    closed: int
    completed: int
    service_level: float | None = Field(
        description="answered within target / (answered + abandoned after target); "
                    "null when both are 0.")
    asa_seconds: float | None = Field(description="Mean wait of answered calls.")
    aht_seconds: float | None = Field(description="(talk + wrap-up) / completed calls.")
    abandon_rate: float | None = Field(description="abandoned / (answered + abandoned).")
    callbacks_requested: int = Field(0, description="Callbacks requested (not a "
                                     "campaign's attempts).")
    callbacks_completed: int = 0
    callbacks_failed: int = 0
    callbacks_cancelled: int = 0
    callbacks_answered: int = Field(0, description="Callbacks whose customer answered.")
    callbacks_told: int = Field(0, description="Of those, the ones whose caller was told "
                                               "an expected wait.")
    callback_delay_seconds: float | None = Field(
        None, description="Mean seconds from a callback's request to the customer's "
                          "answer.")
    callback_told_ewt_seconds: float | None = Field(
        None, description="Of the answered callbacks whose caller was told an expected "
                          "wait: the mean of that EWT …")
    callback_told_delay_seconds: float | None = Field(
        None, description="… and the mean of their request → answer.")


class QueueView(_Out):
    id: str
    name: str
    priority: int
    sl_target_seconds: int
    waiting: int
    longest_wait_seconds: float
    ringing: int = Field(description="Calls being offered to an agent now.")
    connected: int = Field(description="Calls in conversation now.")
    agents: AgentCounts = Field(description="Agents whose skills meet the queue's minimums.")
    rolling_15m: WindowView
    today: WindowView
    ewt_seconds: float | None = Field(
        default=None, description="What a caller arriving now would wait (null: unsure).")


class AgentView(_Out):
    id: str
    name: str
    status: Literal["logged_out", "available", "paused"]
    reason: str = Field(description="Pause reason (empty unless paused).")
    state: Literal["idle", "ringing", "on_call", "wrap_up"]
    presence: Presence
    device: str = Field(description="Asterisk device state of the agent's phone.")
    call_id: str | None
    queues: list[str]
    answered: int
    missed: int
    status_seconds: float | None = Field(
        default=None, description="Seconds in the current status (and pause reason).")
    state_seconds: float | None = Field(
        default=None, description="Seconds in the current state (idle, on_call …).")
    wrap_up_left: float | None = Field(
        default=None, description="Seconds of wrap-up left (null unless in wrap-up).")
    last_call_id: str | None = Field(
        default=None, description="The call the agent talked to last (its disposition).")


class CallView(_Out):
    id: str
    queue: str
    caller: str
    state: Literal["waiting", "offered", "connected"]
    priority: int
    position: int | None = Field(
        description="1-based place among the queue's waiting calls (null unless waiting).")
    wait_seconds: float = Field(description="Time waited since first entry (until answered).")
    entry_time: datetime
    agent: str | None
    talk_seconds: float | None
    segment: str
    region: str = Field(default="", description="The caller's province (ISO 3166-2:CN, "
                                                "CN-UNKNOWN when not known; empty: none).")
    site: str | None = Field(default=None, description="The partner site the call is "
                                                       "offered to or connected with.")
    region_source: str = Field(default="", description="How the region was found: lookup "
                               "(the number), ivr (an area code the caller keyed), "
                               "override, default.")
    did: str = Field(default="", description="The number the caller dialled.")
    menu_choice: str = Field(default="", description="The IVR key the caller pressed.")
    stage: int = Field(default=0, description="The queue's escalation stage the call is in.")
    ewt_seconds: float | None = Field(
        default=None, description="Expected wait from now (waiting calls; null when the "
                                  "estimate is unsure: no agent available, no handle time "
                                  "known yet).")


class CallsView(_Out):
    waiting: list[CallView] = Field(description="In the order agents will be offered them, "
                                                "per queue (position = that order).")
    active: list[CallView] = Field(description="Ringing an agent or in conversation.")
    next_cursor: str | None = Field(
        default=None, description="More calls: pass it as `cursor` for the next page.")


class AgentAction(StrEnum):
    LOGIN = "login"  # logged out → available, or paused with ``reason`` if one is given
    READY = "ready"  # → available (logs in if needed)
    PAUSE = "pause"  # → paused with a reason
    LOGOUT = "logout"  # → logged out


class AgentStateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: AgentAction
    reason: str = Field(default="", max_length=64, pattern=r"^[\w .:/-]*$",
                        description="Pause reason, one of engine.pause_reasons (pause: "
                                    "default 'break'; login: log in paused).")


class CallMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", examples=["repair"],
                       description="The queue to move the waiting call to.")


class CallPriority(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=0, le=1000, description="The call's own priority on top of its "
                                                     "queue's (0 = none); higher is served first.")


class SiteView(_Out):
    id: str
    name: str
    kind: Literal["own", "partner"]
    regions: list[str] = Field(description="Provinces the site covers (partners).")
    services: list[str] = Field(description="Queues the site takes (empty: every queue).")
    capacity: int = Field(description="Most calls sent to the site at once.")
    active: int = Field(description="Calls offered to or connected with the site now.")
    offered: int = Field(description="Calls offered to the site since the engine started.")
    answered: int
    rejected: int = Field(description="Offers the site did not take (busy, no answer, "
                                      "unavailable).")
    open: bool = Field(description="Within the site's hours now.")
    preference: int = Field(description="Higher first among partners that could take a call.")


class RegionView(_Out):
    region: str = Field(description="ISO 3166-2:CN province code, or CN-UNKNOWN.")
    name: str = Field(description="English name of the province (empty for CN-UNKNOWN).")
    calls: int = Field(description="Calls from the region since the engine started.")
    answered: int = Field(description="Answered by an agent or a partner site.")
    abandoned: int
    overflowed: int = Field(description="Offers of the region's calls to partner sites.")


class ExcludedCount(_Out):
    """How many agents one reason left out."""

    reason: Why = Field(description="missing_skill, level_too_low, not_in_group, "
                                    "logged_out, paused, ringing, on_call, wrap_up, phone "
                                    "(busy or unavailable), not_routable, ranked_below.")
    skill: str | None = Field(default=None, description="missing_skill, level_too_low.")
    level: int | None = Field(default=None, description="level_too_low: the stage's "
                                                        "minimum level.")
    detail: str | None = Field(default=None, description="paused: the pause reason; "
                                                         "phone: the device state; "
                                                         "ranked_below: the strategy.")
    text: str = Field(description="The reason in words, e.g. 'level below 3 in repair'.")
    count: int


class RunnerUp(_Out):
    """An agent named among those who did not get the call, nearest first."""

    agent: str
    reason: Why
    skill: str | None = None
    level: int | None = None
    detail: str | None = None
    note: str = Field(default="", description="The agent's own figure behind the reason "
                                              "('idle since …', 'has 2').")
    eligible_from_stage: int | None = Field(
        default=None, description="The first later stage at which the agent qualifies.")
    text: str = Field(description="The line as a person reads it.")


class Exclusions(_Out):
    """Why the other agents did not get the call, counted when the offer was made.

    Every agent is counted once, under the first reason that applies (skills, levels and
    groups; then status, state, phone; then the strategy's ranking): ``excluded`` =
    ``agents`` − 1. Only holders of ``pivot_skill`` (the stage's rarest required skill)
    are checked one by one; the others are counted as missing it from the skill index.
    """

    agents: int = Field(description="Every agent of the engine (the chosen one included).")
    pivot_skill: str | None = Field(description="The required skill whose holders were "
                                                "checked (null: none required).")
    holders: int = Field(description="Agents holding pivot_skill at any level.")
    admitted: int = Field(description="Agents meeting the stage's skills, levels and "
                                      "groups, routable or not.")
    excluded: int
    summary: str = Field(description="The counts in one line.")
    counts: list[ExcludedCount] = Field(description="Most basic reason first.")
    runners_up: list[RunnerUp] = Field(description="Up to five agents: the next best by "
                                                   "the strategy, then admitted agents who "
                                                   "were not routable, then the nearest to "
                                                   "qualifying.")


class SiteExclusion(_Out):
    site: str
    reason: str


class Decision(_Out):
    stage: int | None = None
    strategy: str | None = None
    candidates: int | None = None
    agent: str | None = None
    site: str | None = None
    excluded: Exclusions | None = Field(
        default=None, description="Why the other agents did not get the call, recorded at "
                                  "the offer (null for an offer to a partner site).")
    excluded_sites: list[SiteExclusion] = Field(
        default_factory=list, description="For an offer to a partner site: why each other "
                                          "partner site did not get the call.")


class CallExplanation(_Out):
    call_id: str
    queue: str
    state: Literal["waiting", "offered", "connected"]
    region: str
    site: str | None
    lines: list[str] = Field(description="The engine's explanation: for a waiting call, why "
                                         "each agent is or is not a candidate; else the "
                                         "recorded decision, with why the other agents "
                                         "were excluded.")
    decision: Decision | None = Field(description="The last routing decision (null: none "
                                                  "yet).")
