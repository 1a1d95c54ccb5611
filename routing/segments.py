"""Caller segments (dealer, distributor, retailer, consumer, VIP …) from number lists.

A segment matches a caller by exact number or by prefix, on the *normalised* national
number (digits only, ``+86`` / ``0086`` / ``86`` country prefix removed for Chinese
numbers). The first matching segment in configuration order wins. A segment may raise the
call's priority and/or send it to a dedicated queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from routing.numbers import normalise_number

__all__ = ["Segment", "SegmentTable", "normalise_number"]

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
