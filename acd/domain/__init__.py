"""The domain: calls, agents, partner sites and figures as a pure state machine.

No asyncio, no I/O, no pydantic, ``mypy --strict``. Events in (``events``), effects and
facts out (``effects``, ``facts``); settings are frozen values (``settings``). The
adapters in ``acd.runtime`` move bytes and carry out effects; ``sim`` drives the same
core through a simulated day.
"""

from acd.domain.core import HOURS_START, EngineCore
from acd.domain.effects import CloseCall, Effect, ExitCall, Offer, SessionEffect, StartTimer
from acd.domain.errors import (
    CallNotWaiting,
    DomainError,
    IllegalTransition,
    InvalidCommand,
    QueueClosed,
    UnknownAgent,
    UnknownCall,
    UnknownPauseReason,
    UnknownQueue,
)
from acd.domain.events import (
    AgentLogin,
    CallAnswered,
    CallArrived,
    CallerKey,
    CallHungUp,
    ChannelGone,
    DeviceSnapshot,
    DeviceStateChanged,
    DeviceStateLost,
    DialFinished,
    Event,
    HoursDue,
    OfferFailed,
    PartnerChannels,
    PartnerDue,
    PhoneRecheck,
    SetAgentStatus,
    SetCallPriority,
    StageDue,
    TransferCall,
    WaitLimit,
    WrapUpDone,
)
from acd.domain.facts import Fact
from acd.domain.records import Agent, AgentState, AgentStatus, Call, CallState
from acd.domain.settings import Settings

__all__ = [
    "HOURS_START",
    "Agent",
    "AgentLogin",
    "AgentState",
    "AgentStatus",
    "Call",
    "CallAnswered",
    "CallArrived",
    "CallHungUp",
    "CallNotWaiting",
    "CallState",
    "CallerKey",
    "ChannelGone",
    "CloseCall",
    "DeviceSnapshot",
    "DeviceStateChanged",
    "DeviceStateLost",
    "DialFinished",
    "DomainError",
    "Effect",
    "EngineCore",
    "Event",
    "ExitCall",
    "Fact",
    "HoursDue",
    "IllegalTransition",
    "InvalidCommand",
    "Offer",
    "OfferFailed",
    "PartnerChannels",
    "PartnerDue",
    "PhoneRecheck",
    "QueueClosed",
    "SessionEffect",
    "SetAgentStatus",
    "SetCallPriority",
    "Settings",
    "StageDue",
    "StartTimer",
    "TransferCall",
    "UnknownAgent",
    "UnknownCall",
    "UnknownPauseReason",
    "UnknownQueue",
    "WaitLimit",
    "WrapUpDone",
]
