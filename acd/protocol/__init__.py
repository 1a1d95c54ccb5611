"""Sans-I/O protocol cores for Asterisk: FastAGI (:mod:`.agi`) and AMI (:mod:`.ami`).

Bytes in, frozen events out; no sockets, no asyncio, no clocks. The asyncio adapters
that move the bytes are :mod:`acd.fastagi` and :mod:`acd.ami_client`.
"""

from acd.protocol._common import CLOSED, NEED_DATA, Closed, NeedData
from acd.protocol.agi import (
    AGIConnection,
    AGIEnvironment,
    AGIHangup,
    AGIProtocolError,
    AGIResponse,
    AGIState,
)
from acd.protocol.ami import (
    ActionDone,
    AMIActionTracker,
    AMIBanner,
    AMIConnection,
    AMIEvent,
    AMIMessage,
    AMIProtocolError,
    AMIResponse,
    AMIState,
    FeedResult,
)

__all__ = [
    "CLOSED",
    "NEED_DATA",
    "AGIConnection",
    "AGIEnvironment",
    "AGIHangup",
    "AGIProtocolError",
    "AGIResponse",
    "AGIState",
    "AMIActionTracker",
    "AMIBanner",
    "AMIConnection",
    "AMIEvent",
    "AMIMessage",
    "AMIProtocolError",
    "AMIResponse",
    "AMIState",
    "ActionDone",
    "Closed",
    "FeedResult",
    "NeedData",
]
