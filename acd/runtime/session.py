"""What the engine hands a caller's session: an offer, a closed verdict, or a release.

The engine keeps one queue per live FastAGI session (``Engine.open_session``); the core's
session effects (``Offer``, ``CloseCall``, ``ExitCall``) go there, and so does
:data:`RELEASE` when the engine stops or steps down and hands its waiting callers back
to the dialplan.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from acd.domain.effects import CloseCall, ExitCall, Offer


@dataclass(frozen=True, slots=True)
class Release:
    """Hand the caller back to the dialplan (it retries another engine with its place)."""


RELEASE = Release()



class SessionTaken(Exception):
    """A call id that already has a live session: a second one is refused (the first
    keeps the call and its place)."""


SessionItem = Offer | CloseCall | ExitCall | Release
SessionQueue = asyncio.Queue[SessionItem]
