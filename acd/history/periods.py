"""Reporting periods: 15-minute buckets and the centre's local day, week and month.

A call belongs to the bucket of its first entry (``entry_time``): reports count a call
in the interval it was offered in, as call centres do. Buckets are 15 minutes of epoch
time; every time zone's offset is a multiple of 15 minutes, so a bucket never straddles
a local midnight and its local day, week (the Monday) and month are those of its start.

Pure: the time zone is an IANA name; no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

BUCKET = 900


class Granularity(StrEnum):
    MIN15 = "15m"
    MIN30 = "30m"
    MIN60 = "60m"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def seconds(self) -> int | None:
        """Length of an interval granularity (None for day, week, month)."""
        return {"15m": 900, "30m": 1800, "60m": 3600}.get(self.value)


def bucket_of(t: float) -> int:
    """The 15-minute bucket (its start, epoch seconds) an instant falls in."""
    return int(t // BUCKET) * BUCKET


@dataclass(frozen=True, slots=True)
class LocalPeriods:
    """The local day, week (its Monday) and month of a bucket, as integers that sort:
    ``20261203``, ``20261130``, ``202612``."""

    day: int
    week: int
    month: int


def _ymd(d: date) -> int:
    return d.year * 10_000 + d.month * 100 + d.day


def ymd_date(value: int) -> date:
    return date(value // 10_000, value // 100 % 100, value % 100)


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


@lru_cache(maxsize=65_536)
def local_periods(bucket: int, tz: str) -> LocalPeriods:
    d = datetime.fromtimestamp(bucket, _zone(tz)).date()
    monday = d - timedelta(days=d.weekday())
    return LocalPeriods(_ymd(d), _ymd(monday), d.year * 100 + d.month)


def local_midnight(d: date, tz: str) -> float:
    """Epoch seconds of a local date's midnight."""
    return datetime.combine(d, datetime.min.time(), _zone(tz)).timestamp()


def day_range(first: date, last: date, tz: str) -> tuple[float, float]:
    """[start, end) epoch seconds from ``first``'s local midnight to the one after
    ``last``."""
    return local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)


def period_label(granularity: Granularity, key: int, tz: str) -> str:
    """How a period is shown: ``2026-12-03 08:15`` for intervals (local), ISO dates for
    days and weeks (the Monday), ``2026-12`` for months."""
    if granularity.seconds is not None:
        return datetime.fromtimestamp(key, _zone(tz)).strftime("%Y-%m-%d %H:%M")
    if granularity is Granularity.MONTH:
        return f"{key // 100:04d}-{key % 100:02d}"
    return ymd_date(key).isoformat()
