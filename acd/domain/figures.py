"""Per-queue figures: the one definition of every figure, and the live windows.

**Formulas** (one place; the live view, the simulator and reports import them). ``None``
when there is nothing to divide by:

* service level = answered within T ÷ (answered + abandoned after T); callers who hung
  up within T ("short abandons") count neither way;
* ASA = total wait of answered calls ÷ answered;
* AHT = (talk + wrap-up) ÷ handled (completed) calls;
* abandon rate = abandoned ÷ (answered + abandoned).

**Windows.** :class:`LiveStats` counts per queue over the last 15 minutes and since local
midnight, fed the core's facts in order (``observe``); it is the core's own state::

    CallWaiting   (not a re-entry)    → offered
    CallConnected (wait)              → answered, answered within target, ASA
    CallAbandoned (wait)              → abandoned, abandoned after target
    CallOverflowed                    → overflowed (offers to partner sites)
    CallClosed                        → closed (reached a closed queue)
    CallCompleted (talk)              → handled, talk time
    CallTransferred                   → transferred out of / into a queue
    CallExited                        → exits (left by a queue's exit: not abandoned)
    AgentNoAnswer                     → ring-no-answer
    AgentChanged (wrap_up → other)    → wrap-up time, charged to the queue of the
                                        agent's last completed call

Pure: no clock and no I/O; every call passes ``now`` (epoch seconds). Memory is bounded:
one bucket per minute (15 of them) per queue; "today" is one set of counters per queue,
reset when the local date (in the configured time zone) changes; wrap-up bookkeeping is
one entry per agent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from acd.domain.callbacks import CallbackFinished, CallbackRequested
from acd.domain.campaigns import PREFIX as CAMPAIGN_PREFIX
from acd.domain.facts import (
    AgentChanged,
    AgentNoAnswer,
    CallAbandoned,
    CallClosed,
    CallCompleted,
    CallConnected,
    CallExited,
    CallOverflowed,
    CallTransferred,
    CallWaiting,
    Fact,
)

# -- the formulas ------------------------------------------------------------------------


def service_level(answered_within: float, answered: float,
                  abandoned_after: float) -> float | None:
    """Answered within T ÷ (answered + abandoned after T)."""
    den = answered + abandoned_after
    return answered_within / den if den else None


def asa(wait_answered: float, answered: float) -> float | None:
    """Average speed of answer: total wait of answered calls ÷ answered."""
    return wait_answered / answered if answered else None


def aht(talk: float, wrap_up: float, handled: float) -> float | None:
    """Average handle time: (talk + wrap-up) ÷ handled calls."""
    return (talk + wrap_up) / handled if handled else None


def abandon_rate(abandoned: float, answered: float) -> float | None:
    """Abandoned ÷ (answered + abandoned)."""
    den = answered + abandoned
    return abandoned / den if den else None


def answered_within(wait: float, target: float) -> bool:
    """An answered call counts "within target" when it waited at most T seconds."""
    return wait <= target


def abandoned_after(wait: float, target: float) -> bool:
    """An abandoned call counts against the service level when it waited more than T."""
    return wait > target


def occupancy(busy: float, staffed: float, paused: float) -> float | None:
    """Busy (ringing, on a call, wrap-up) ÷ available time (staffed − paused)."""
    available = staffed - paused
    return busy / available if available > 0 else None


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
    rona: int = 0
    transferred_in: int = 0
    transferred_out: int = 0
    #: Callers who left the line by an exit (voicemail, message, another queue …).
    exits: int = 0
    #: Callbacks (not a campaign's attempts): requested (a restore is not a request),
    #: their outcomes, and — those whose customer answered — the seconds from the
    #: request to the answer; of those, the ones told an expected wait: that EWT and
    #: their delay (the promise against what happened).
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    callbacks_failed: int = 0
    callbacks_cancelled: int = 0
    callbacks_answered: int = 0
    callback_delay: float = 0.0
    callbacks_told: int = 0
    callback_told_ewt: float = 0.0
    callback_told_delay: float = 0.0

    def add(self, other: Counts) -> None:
        for name in _COUNT_NAMES:  # not fields() per call: it runs for every event
            setattr(self, name, getattr(self, name) + getattr(other, name))


_COUNT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Counts))


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
        return service_level(c.answered_within_target, c.answered, c.abandoned_after_target)

    @property
    def asa(self) -> float | None:
        return asa(self.counts.wait_answered, self.counts.answered)

    @property
    def aht(self) -> float | None:
        c = self.counts
        return aht(c.talk, c.wrap_up, c.handled)

    @property
    def abandon_rate(self) -> float | None:
        return abandon_rate(self.counts.abandoned, self.counts.answered)

    @property
    def callback_delay(self) -> float | None:
        """Mean seconds from a callback's request to the customer's answer."""
        return asa(self.counts.callback_delay, self.counts.callbacks_answered)

    @property
    def callback_told_ewt(self) -> float | None:
        """Mean expected wait told to the callers whose callback was answered …"""
        return asa(self.counts.callback_told_ewt, self.counts.callbacks_told)

    @property
    def callback_told_delay(self) -> float | None:
        """… and the mean of their request → answer (the same callbacks)."""
        return asa(self.counts.callback_told_delay, self.counts.callbacks_told)


def is_campaign_attempt(callback_id: str) -> bool:
    """A campaign's attempt (campaign progress, not a callback's figures)."""
    return callback_id.startswith(CAMPAIGN_PREFIX)


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

    def observe(self, fact: Fact, now: float) -> None:
        """Account one fact of the core that happened at ``now``."""
        match fact:
            case CallWaiting(queue=queue, reentry=reentry):
                if not reentry:
                    self._bump(queue, now, offered=1)
            case CallConnected(queue=queue, wait=wait):
                wait = _seconds(wait)
                within = answered_within(wait, self.sl_targets.get(queue, 0.0))
                self._bump(queue, now, answered=1, answered_within_target=int(within),
                           wait_answered=wait)
            case CallAbandoned(queue=queue, wait=wait):
                wait = _seconds(wait)
                after = abandoned_after(wait, self.sl_targets.get(queue, 0.0))
                self._bump(queue, now, abandoned=1, abandoned_after_target=int(after),
                           wait_abandoned=wait)
            case CallOverflowed(queue=queue):
                self._bump(queue, now, overflowed=1)
            case CallClosed(queue=queue):
                self._bump(queue, now, closed=1)
            case CallCompleted(queue=queue, agent=agent, talk=talk):
                self._bump(queue, now, handled=1, talk=_seconds(talk))
                if agent is not None and queue in self._queues:
                    self._last_queue[agent] = queue
            case CallTransferred(from_queue=old, queue=queue):
                self._bump(old, now, transferred_out=1)
                self._bump(queue, now, transferred_in=1)
            case AgentNoAnswer(queue=queue):
                self._bump(queue, now, rona=1)
            case CallExited(queue=queue):
                self._bump(queue, now, exits=1)
            case AgentChanged(agent=agent, state=state):
                self._agent(agent, state, now)
            case CallbackRequested(callback_id=cb_id, queue=queue, restored=restored):
                if not restored and not is_campaign_attempt(cb_id):
                    self._bump(queue, now, callbacks_requested=1)
            case CallbackFinished(callback_id=cb_id) if not is_campaign_attempt(cb_id):
                self._callback_finished(fact, now)

    def _callback_finished(self, f: CallbackFinished, now: float) -> None:
        amounts: dict[str, float] = {}
        if f.outcome in ("completed", "failed", "cancelled"):
            amounts[f"callbacks_{f.outcome}"] = 1
        if f.delay is not None:
            delay = _seconds(f.delay)
            amounts.update(callbacks_answered=1, callback_delay=delay)
            if f.ewt is not None:
                amounts.update(callbacks_told=1, callback_told_ewt=_seconds(f.ewt),
                               callback_told_delay=delay)
        if amounts:
            self._bump(f.queue, now, **amounts)

    def _agent(self, agent: str, state: str, now: float) -> None:
        if state == "wrap_up":
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

    # -- persistence (the store): figures survive a restart or a takeover -------------

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
