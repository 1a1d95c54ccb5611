"""What the domain refuses, and what is our own bug.

::

    DomainError               a command or lookup the domain refuses; state untouched;
    │                         ``code`` is stable (the API maps it to HTTP in one place)
    ├── UnknownAgent          unknown_agent
    ├── UnknownPauseReason    unknown_pause_reason
    ├── UnknownCall           unknown_call
    ├── UnknownQueue          unknown_queue
    ├── CallNotWaiting        call_not_waiting
    ├── QueueClosed           queue_closed
    ├── NotInWrapUp           not_in_wrap_up (end or extend a wrap-up that is not running)
    ├── WrapUpLimit           wrap_up_limit (an extension past desktop.wrap_up_max)
    ├── NotYourCall           not_your_call (a disposition for a call the agent did not
    │                         talk to last)
    ├── UnknownSite           unknown_site
    ├── SiteUnavailable       site_unavailable (a partner closed, full, or not offering
    │                         the call's service)
    └── InvalidCommand        invalid_command (a value out of range)

    IllegalTransition         a state change the transition tables do not allow: a bug in
                              the engine (h11's LocalProtocolError), never the peer's fault

Events from the outside that no longer apply (a late ``DialEnd``, a timer of a call that
left) are not errors: the core ignores them by design.
"""

from __future__ import annotations


class DomainError(Exception):
    """A command that cannot be carried out; state is untouched. ``code`` is stable."""

    code = "domain_error"


class UnknownAgent(DomainError):
    code = "unknown_agent"


class UnknownPauseReason(DomainError):
    code = "unknown_pause_reason"


class UnknownCall(DomainError):
    code = "unknown_call"


class UnknownQueue(DomainError):
    code = "unknown_queue"


class CallNotWaiting(DomainError):
    code = "call_not_waiting"


class QueueClosed(DomainError):
    code = "queue_closed"


class InvalidCommand(DomainError):
    code = "invalid_command"


class NotInWrapUp(DomainError):
    code = "not_in_wrap_up"


class WrapUpLimit(DomainError):
    code = "wrap_up_limit"


class NotYourCall(DomainError):
    code = "not_your_call"


class UnknownSite(DomainError):
    code = "unknown_site"


class SiteUnavailable(DomainError):
    code = "site_unavailable"


class IllegalTransition(RuntimeError):
    """The engine tried a state change its tables forbid (a bug, not bad input)."""

    def __init__(self, what: str, ident: str, old: str, new: str) -> None:
        super().__init__(f"{what} {ident}: {old} -> {new} is not a legal transition")
        self.what, self.ident, self.old, self.new = what, ident, old, new
