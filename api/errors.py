"""Errors of the API and the one place that maps them to HTTP.

::

    Exception
    ├── acd.domain.DomainError           a command or lookup the domain refuses; stable
    │   │                                ``code``
    │   ├── UnknownAgent                 unknown_agent        → 404
    │   ├── UnknownQueue                 unknown_queue        → 404
    │   ├── UnknownCall                  unknown_call         → 404
    │   ├── UnknownSite                  unknown_site         → 404
    │   ├── UnknownPauseReason           unknown_pause_reason → 422
    │   ├── CallNotWaiting               call_not_waiting     → 409
    │   ├── QueueClosed                  queue_closed         → 409
    │   ├── InvalidCommand               invalid_command      → 422
    │   ├── (api.sessions) SignInRefused signed_in_elsewhere  → 409
    │   └── (any other code)             → 409 (the state does not allow it now)
    └── EngineUnavailable                the engine did not take the command in time → 503

Domain errors know nothing about HTTP: :func:`status_for` is the only mapping, used by
the one exception handler ``api.app`` installs. Bodies are ``{"error": code, "detail":
message}``.
"""

from __future__ import annotations

from acd.domain import DomainError, UnknownCall, UnknownQueue
from acd.domain.errors import UnknownSite


class EngineUnavailable(Exception):
    """The engine's inbox did not apply a command within ``api.command_timeout``."""

    code = "engine_unavailable"


#: Codes whose HTTP status is not the default 409.
_STATUS = {"unknown_agent": 404, "unknown_queue": 404, "unknown_call": 404,
           "unknown_site": 404,
           "unknown_pause_reason": 422, "call_not_waiting": 409, "queue_closed": 409,
           "invalid_command": 422}


def status_for(exc: DomainError) -> int:
    code = getattr(exc, "code", DomainError.code)
    if code in _STATUS:
        return _STATUS[code]
    return 404 if code.startswith("unknown_") else 409


__all__ = ["EngineUnavailable", "UnknownCall", "UnknownQueue", "UnknownSite", "status_for"]
