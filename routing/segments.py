"""Caller segments (dealer, distributor, retailer, consumer, VIP …) from number lists.

A segment matches a caller by exact number or by prefix, on the *normalised* national
number (digits only, ``+86`` / ``0086`` / ``86`` country prefix removed for Chinese
numbers). The first matching segment in configuration order wins. A segment may raise the
call's priority and/or send it to a dedicated queue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_NON_DIGITS = re.compile(r"\D")


def _national(rest: str) -> str:
    """National form after the country code: an 11-digit mobile as is, else the trunk 0
    before the area code (``10 1234 5678`` → ``01012345678``)."""
    if len(rest) == 11 and rest.startswith("1"):
        return rest
    return "0" + rest


def normalise_number(raw: str) -> str:
    """Digits of a caller number, national form for China: ``+86 138-0013-8000`` →
    ``13800138000``; ``0086755…`` → ``0755…``. Anything without digits → ``""``."""
    text = raw.strip()
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+"):
        if digits.startswith("86"):
            return _national(digits[2:])
        return "00" + digits  # international, kept recognisable
    if digits.startswith("0086"):
        return _national(digits[4:])
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        return digits[2:]  # 86 + an 11-digit mobile number
    return digits


@dataclass(frozen=True, slots=True)
class Segment:
    segment_id: str
    numbers: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    priority: int = 0
    queue_id: str | None = None

    def matches(self, number: str) -> bool:
        return number in self.numbers or any(number.startswith(p) for p in self.prefixes)


class SegmentTable:
    """Ordered segments; exact numbers are looked up in a dict, prefixes scanned."""

    def __init__(self, segments: Iterable[Segment], default: str = "consumer") -> None:
        self.segments = tuple(segments)
        self.default = default
        self._exact: dict[str, Segment] = {}
        for seg in self.segments:
            for n in seg.numbers:
                self._exact.setdefault(n, seg)

    def classify(self, raw_number: str) -> Segment | None:
        number = normalise_number(raw_number)
        if not number:
            return None
        first: Segment | None = self._exact.get(number)
        for seg in self.segments:
            if first is not None and seg is first:
                break
            if seg.prefixes and seg.matches(number):
                return seg
        return first
