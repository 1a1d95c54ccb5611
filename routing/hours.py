"""Business hours and holidays: is a queue (or site) open at a given instant?

Pure: the instant comes in as an aware ``datetime``; the schedule says, per weekday, the
local opening intervals, and lists holiday dates (closed all day) and special working
days (open with the weekday hours of ``workday_hours`` — the Chinese calendar moves
working days around public holidays, so "open on this Sunday" must be expressible).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?-(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True, slots=True)
class Interval:
    start: time
    end: time  # exclusive; 24:00 is written as time.max

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end or (self.end == time.max and t >= self.start)


def parse_interval(text: str) -> Interval:
    """``"08:30-20:00"``; seconds are allowed (``"08:30-17:59:30"``), 24:00 ends a day."""
    m = _RANGE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an interval like 08:30-20:00")
    h1, m1, s1, h2, m2, s2 = (int(g or 0) for g in m.groups())
    if (h1 > 23 or m1 > 59 or s1 > 59 or m2 > 59 or s2 > 59 or h2 > 24
            or (h2 == 24 and (m2 or s2))):
        raise ValueError(f"{text!r}: hour, minute or second out of range")
    start = time(h1, m1, s1)
    end = time.max if h2 == 24 else time(h2, m2, s2)
    if end <= start:
        raise ValueError(f"{text!r}: the end must be after the start")
    return Interval(start, end)


def parse_days(spec: str) -> tuple[int, ...]:
    """``"mon-fri"``, ``"sat"``, ``"mon,wed,fri"``, ``"daily"`` → weekday numbers."""
    spec = spec.strip().lower()
    if spec in ("daily", "all", "mon-sun"):
        return tuple(range(7))
    out: list[int] = []
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        if a not in DAYS or (b and b not in DAYS):
            raise ValueError(f"{spec!r}: days are mon..sun, ranges like mon-fri, or daily")
        i, j = DAYS.index(a), DAYS.index(b or a)
        if j < i:
            raise ValueError(f"{spec!r}: a day range runs forward (mon-fri)")
        out.extend(range(i, j + 1))
    return tuple(sorted(set(out)))


def check_hours(hours: Mapping[str, str | Iterable[str]]) -> None:
    """Raise ValueError unless every day spec and interval of ``hours`` parses."""
    for days, ranges in hours.items():
        parse_days(days)
        for r in [ranges] if isinstance(ranges, str) else ranges:
            parse_interval(r)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Opening hours in one time zone. An empty ``weekly`` means open around the clock."""

    tz: str = "Asia/Shanghai"
    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # open although a weekend (make-up days)
    workday_hours: tuple[Interval, ...] = ()

    @classmethod
    def build(cls, tz: str, hours: Mapping[str, str | Iterable[str]],
              holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> Schedule:
        ZoneInfo(tz)  # raises for an unknown zone
        weekly: dict[int, list[Interval]] = {}
        for days, ranges in hours.items():
            items = [ranges] if isinstance(ranges, str) else list(ranges)
            for day in parse_days(days):
                weekly.setdefault(day, []).extend(parse_interval(r) for r in items)
        frozen = {d: tuple(sorted(v, key=lambda i: i.start)) for d, v in weekly.items()}
        monday = frozen.get(0, ())
        return cls(tz, frozen, frozenset(holidays), frozenset(workdays), monday)

    @property
    def always_open(self) -> bool:
        return not self.weekly and not self.holidays

    def is_open(self, at: datetime) -> bool:
        if self.always_open:
            return True
        local = at.astimezone(ZoneInfo(self.tz))
        day, t = local.date(), local.time()
        if day in self.holidays:
            return False
        if day in self.workdays:
            return any(i.contains(t) for i in self.workday_hours)
        if not self.weekly:
            return True
        return any(i.contains(t) for i in self.weekly.get(local.weekday(), ()))

    def next_open(self, at: datetime, horizon_days: int = 14) -> datetime | None:
        """The next instant the schedule opens, within the horizon."""
        if self.is_open(at):
            return at
        local = at.astimezone(ZoneInfo(self.tz))
        for offset in range(horizon_days + 1):
            day = (local + timedelta(days=offset)).date()
            if day in self.holidays:
                continue
            intervals = (self.workday_hours if day in self.workdays
                         else self.weekly.get(day.weekday(), ()))
            for iv in intervals:
                start = datetime.combine(day, iv.start, ZoneInfo(self.tz))
                if start > local:
                    return start
        return None

    def next_change(self, at: datetime, horizon_days: int = 15) -> datetime | None:
        """The next instant after ``at`` at which the schedule opens or closes (None:
        never within the horizon, e.g. always open)."""
        if self.always_open:
            return None
        zone = ZoneInfo(self.tz)
        local = at.astimezone(zone)
        state = self.is_open(at)
        candidates: list[datetime] = []
        for offset in range(horizon_days + 1):
            day = (local + timedelta(days=offset)).date()
            midnight = datetime.combine(day, time(0, 0), zone)
            candidates.append(midnight)
            intervals = (self.workday_hours if day in self.workdays
                         else self.weekly.get(day.weekday(), ()))
            for iv in intervals:
                candidates.append(datetime.combine(day, iv.start, zone))
                if iv.end != time.max:
                    candidates.append(datetime.combine(day, iv.end, zone))
        for moment in sorted(candidates):
            if moment > local and self.is_open(moment) != state:
                return moment
        return None
