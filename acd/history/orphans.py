"""Closing the record of a call no engine saw end, from Asterisk's own CDR (AMI ``Cdr``).

A conversation goes on inside Asterisk when the engine dies (Dial runs on); a caller may
hang up between two engine attempts; the app_queue fallback serves calls while no engine
answers. No engine publishes the end of those calls, so their records would stay open —
or, for a fallback call, never exist. Asterisk posts one ``Cdr`` event per leg of the
caller's channel when it hangs up; :func:`close_from_cdr` reads them into what the
database needs to close (or create) the record: answered or not, by which endpoint, how
long the answered leg lasted.

Pure: the legs are the events' headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Dialplan contexts a hotline caller's channel ends in (asterisk_conf/extensions.conf).
HOTLINE_CONTEXTS = frozenset({"hotline", "hotline-acd", "hotline-fallback"})


def endpoint_of(channel: str) -> str:
    """``PJSIP/agent7201-0000001f`` → ``agent7201``."""
    return channel.split("/", 1)[-1].rsplit("-", 1)[0] if channel else ""


def is_caller_leg(headers: Mapping[str, str]) -> bool:
    return headers.get("DestinationContext", "") in HOTLINE_CONTEXTS


def close_from_cdr(call_id: str, legs: Sequence[Mapping[str, str]], ended_at: float,
                   ) -> dict[str, Any]:
    """What the legs say of the call: ``answered_by`` (the endpoint that answered, or
    None), ``talk`` (its leg's billable seconds: whole seconds, an upper bound of the
    talk when it was the caller's first leg), ``duration`` (the caller channel's life),
    ``fallback`` (served by app_queue), ``caller`` and ``ended_at``."""
    answered_by: str | None = None
    talk = 0.0
    for leg in legs:
        dest = leg.get("DestinationChannel", "")
        if leg.get("Disposition") == "ANSWERED" and dest and leg.get(
                "LastApplication") in ("Dial", "Queue"):
            answered_by = endpoint_of(dest)
            talk = float(leg.get("BillableSeconds") or 0)
    duration = max((float(leg.get("Duration") or 0) for leg in legs), default=0.0)
    total = sum(float(leg.get("Duration") or 0) for leg in legs)
    return {
        "call_id": call_id, "answered_by": answered_by, "talk": talk,
        "duration": max(duration, total), "ended_at": ended_at,
        "fallback": any(leg.get("LastApplication") == "Queue"
                        or leg.get("DestinationContext") == "hotline-fallback"
                        for leg in legs),
        "caller": next((leg.get("Source", "") for leg in legs if leg.get("Source")), ""),
    }
