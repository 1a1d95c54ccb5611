"""Per-queue figures over time windows: the last 15 minutes and since local midnight.

Pure: no clock and no I/O. Every call passes ``now`` (epoch seconds), so tests drive
time by hand. :class:`LiveStats` is fed the engine's ``Publish`` events (``observe``) and
answers per queue and window (``window``)::

    call_waiting   (not a re-entry)    → offered
    call_connected (wait)              → answered, answered within target, ASA
    call_abandoned (wait)              → abandoned, abandoned after target
    call_overflowed                    → overflowed (to a partner site)
    call_closed                        → closed (reached a closed queue)
    call_completed (talk)              → handled, talk time
    agent (state wrap_up → other)      → wrap-up time, charged to the queue of the
                                         agent's last completed call

Derived figures (``None`` when there is nothing to divide by):

* service level = answered within T ÷ (answered + abandoned after T); callers who hung
  up within T ("short abandons") count neither way;
* ASA = total wait of answered calls ÷ answered;
* AHT = (talk + wrap-up) ÷ handled (completed) calls;
* abandon rate = abandoned ÷ (answered + abandoned).

Memory is bounded: the rolling window keeps one bucket per minute (15 of them) per
queue; "today" is one set of counters per queue, reset when the local date (in the
configured time zone) changes; wrap-up bookkeeping is one entry per agent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from acd.config import Config

#: Rolling window: this many one-minute buckets (the current minute and the 14 before).
ROLLING_MINUTES = 15
_BUCKET = 60.0


class Window(StrEnum):
    ROLLING = "rolling_15m"
    TODAY = "today"


@dataclass(slots=True)
class Counts:
    """Raw counters and sums for one bucket, one day or the whole run."""

    offered: int = 0
    answered: int = 0
    answered_within_target: int = 0
    abandoned: int = 0
    abandoned_after_target: int = 0
    overflowed: int = 0
    closed: int = 0
    handled: int = 0
    wait_answered: float = 0.0
    wait_abandoned: float = 0.0
    talk: float = 0.0
    wrap_up: float = 0.0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """What a supervisor reads for one queue and one window."""

    window: Window
    #: Start of the window (epoch seconds).
    since: float
    counts: Counts

    @property
    def service_level(self) -> float | None:
        c = self.counts
        denominator = c.answered + c.abandoned_after_target
        return c.answered_within_target / denominator if denominator else None

    @property
    def asa(self) -> float | None:
        c = self.counts
        return c.wait_answered / c.answered if c.answered else None

    @property
    def aht(self) -> float | None:
        c = self.counts
        return (c.talk + c.wrap_up) / c.handled if c.handled else None

    @property
    def abandon_rate(self) -> float | None:
        c = self.counts
        ended = c.answered + c.abandoned
        return c.abandoned / ended if ended else None


class _QueueWindows:
    __slots__ = ("buckets", "day", "today", "total")

    def __init__(self) -> None:
        #: (minute index, counts), oldest first; at most ROLLING_MINUTES entries.
        self.buckets: deque[tuple[int, Counts]] = deque()
        self.day: date | None = None
        self.today = Counts()
        self.total = Counts()


class LiveStats:
    """Per-queue windows fed by engine events. ``sl_targets``: queue id → T seconds."""

    def __init__(self, sl_targets: Mapping[str, float], timezone: str = "Asia/Shanghai",
                 *, rolling_minutes: int = ROLLING_MINUTES) -> None:
        self.sl_targets = dict(sl_targets)
        self.tz = ZoneInfo(timezone)
        self.rolling_minutes = rolling_minutes
        self._queues = {qid: _QueueWindows() for qid in self.sl_targets}
        #: agent → queue of its last completed call (for wrap-up time).
        self._last_queue: dict[str, str] = {}
        #: agent → (wrap-up start, queue).
        self._wrap_started: dict[str, tuple[float, str]] = {}
        #: Queues whose figures changed since the last :meth:`take_dirty` (the store).
        self._dirty: set[str] = set()

    @property
    def queue_ids(self) -> Iterable[str]:
        return self._queues.keys()

    # -- input ---------------------------------------------------------------------------

    def observe(self, name: str, data: Mapping[str, Any], now: float) -> None:
        """Account one published engine event that happened at ``now``."""
        queue = data.get("queue")
        match name:
            case "call_waiting":
                if not data.get("reentry"):
                    self._bump(queue, now, offered=1)
            case "call_connected":
                wait = _seconds(data.get("wait"))
                within = wait <= self.sl_targets.get(str(queue), 0.0)
                self._bump(queue, now, answered=1, answered_within_target=int(within),
                           wait_answered=wait)
            case "call_abandoned":
                wait = _seconds(data.get("wait"))
                after = wait > self.sl_targets.get(str(queue), 0.0)
                self._bump(queue, now, abandoned=1, abandoned_after_target=int(after),
                           wait_abandoned=wait)
            case "call_overflowed":
                self._bump(queue, now, overflowed=1)
            case "call_closed":
                self._bump(queue, now, closed=1)
            case "call_completed":
                self._bump(queue, now, handled=1, talk=_seconds(data.get("talk")))
                agent = data.get("agent")
                if agent is not None and str(queue) in self._queues:
                    self._last_queue[str(agent)] = str(queue)
            case "agent":
                self._agent(data, now)

    def _agent(self, data: Mapping[str, Any], now: float) -> None:
        agent = str(data.get("agent"))
        if data.get("state") == "wrap_up":
            if agent not in self._wrap_started and agent in self._last_queue:
                self._wrap_started[agent] = (now, self._last_queue[agent])
            return
        started = self._wrap_started.pop(agent, None)
        if started is not None:
            since, queue = started
            self._bump(queue, now, wrap_up=max(0.0, now - since))

    def _bump(self, queue: object, now: float, **amounts: float) -> None:
        windows = self._queues.get(str(queue))
        if windows is None:
            return  # not a configured queue: never grow a new series
        delta = Counts(**amounts)  # type: ignore[arg-type]
        minute = int(now // _BUCKET)
        buckets = windows.buckets
        if buckets and buckets[-1][0] == minute:
            buckets[-1][1].add(delta)
        elif not buckets or buckets[-1][0] < minute:
            fresh = Counts()
            fresh.add(delta)
            buckets.append((minute, fresh))
        else:
            # A late event for an earlier minute (clock stepped back): charge the newest.
            buckets[-1][1].add(delta)
        while buckets and buckets[0][0] <= minute - self.rolling_minutes:
            buckets.popleft()
        day = self._local_date(now)
        if windows.day != day:
            windows.day = day
            windows.today = Counts()
        windows.today.add(delta)
        windows.total.add(delta)
        self._dirty.add(str(queue))

    # -- persistence (acd.runtime.store): figures survive a restart or a takeover ----------------

    def take_dirty(self) -> set[str]:
        """The queues whose figures changed since the last call (and forget them)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def dump_queue(self, queue_id: str) -> dict[str, Any]:
        """One queue's figures as plain JSON-able data (:meth:`restore` reads it back)."""
        windows = self._queues[queue_id]
        return {
            "buckets": [[minute, asdict(counts)] for minute, counts in windows.buckets],
            "day": windows.day.isoformat() if windows.day is not None else None,
            "today": asdict(windows.today),
        }

    def restore(self, dumps: Mapping[str, Mapping[str, Any]], now: float) -> int:
        """Take the figures another engine (or this one before a restart) stored: the
        rolling buckets still inside the window and "today" when it is still the same
        local day. The process totals behind the Prometheus ``_total`` counters are not
        taken: a counter counts what this process saw (Prometheus handles its reset; a
        counter that jumped by another engine's figures would double-count them in
        ``rate()``). Unknown queues and malformed records are skipped; returns how many
        queues were restored."""
        restored = 0
        today = self._local_date(now)
        oldest = int(now // _BUCKET) - self.rolling_minutes + 1
        for queue_id, dump in dumps.items():
            windows = self._queues.get(queue_id)
            if windows is None:
                continue
            try:
                buckets = [(int(minute), _counts(raw)) for minute, raw in dump["buckets"]]
                day = date.fromisoformat(dump["day"]) if dump.get("day") else None
                fresh = _QueueWindows()
                fresh.buckets.extend(b for b in sorted(buckets, key=lambda b: b[0])
                                     if b[0] >= oldest)
                if day == today:
                    fresh.day, fresh.today = day, _counts(dump["today"])
                fresh.total = windows.total
            except (KeyError, TypeError, ValueError):
                continue
            self._queues[queue_id] = fresh
            restored += 1
        return restored

    # -- output --------------------------------------------------------------------------

    def window(self, queue_id: str, window: Window, now: float) -> WindowFigures:
        windows = self._queues.get(queue_id)
        if window is Window.ROLLING:
            first = int(now // _BUCKET) - self.rolling_minutes + 1
            counts = Counts()
            if windows is not None:
                for minute, bucket in windows.buckets:
                    if first <= minute <= first + self.rolling_minutes - 1:
                        counts.add(bucket)
            return WindowFigures(window, first * _BUCKET, counts)
        day = self._local_date(now)
        midnight = datetime.combine(day, datetime.min.time(), self.tz).timestamp()
        counts = Counts()
        if windows is not None and windows.day == day:
            counts.add(windows.today)
        return WindowFigures(window, midnight, counts)

    def total(self, queue_id: str) -> Counts:
        """Everything since the engine started (for ``_total`` counters)."""
        windows = self._queues.get(queue_id)
        out = Counts()
        if windows is not None:
            out.add(windows.total)
        return out

    def _local_date(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.tz).date()

    def next_midnight(self, now: float) -> float:
        """When "today" resets (epoch seconds), in the configured time zone."""
        tomorrow = self._local_date(now) + timedelta(days=1)
        return datetime.combine(tomorrow, datetime.min.time(), self.tz).timestamp()


def _counts(raw: object) -> Counts:
    if not isinstance(raw, Mapping):
        raise TypeError("counts must be an object")
    known = {f.name for f in fields(Counts)}
    counts = Counts(**{k: v for k, v in raw.items() if k in known})
    for f in fields(Counts):
        value = getattr(counts, f.name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"bad {f.name}: {value!r}")
    return counts


def _seconds(value: object) -> float:
    if isinstance(value, int | float) and value == value:  # not NaN
        return max(0.0, float(value))
    return 0.0


# -- live views shared by the API and the metrics ---------------------------------------

#: What a wallboard shows per agent, from the two axes (status, state) and the device.
PRESENCES = ("ready", "ringing", "on_call", "wrap_up", "paused", "unavailable", "logged_out")


def agent_presence(status: str, state: str, phone_free: bool) -> str:
    """One word per agent: ``ready`` (may be offered a call now), ``ringing``,
    ``on_call``, ``wrap_up``, ``paused``, ``unavailable`` (available but the phone is busy,
    unregistered, unreachable or not heard of while AMI is up) or ``logged_out``."""
    if state in ("ringing", "on_call", "wrap_up"):
        return state
    if status == "logged_out":
        return "logged_out"
    if status == "paused":
        return "paused"
    return "ready" if phone_free else "unavailable"


def queue_members(config: Config) -> dict[str, tuple[str, ...]]:
    """Queue id → the agents whose skills meet every minimum of the queue."""
    return {
        q.id: tuple(a.id for a in config.agents
                    if all(a.skills.get(s, 0) >= lvl for s, lvl in q.skills.items()))
        for q in config.queues
    }
