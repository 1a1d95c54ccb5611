"""What each record adds to a report, by dimension — and the figures made of the sums.

A report is a sum of :class:`Totals` over the calls of a period, then the formulas of
:mod:`acd.domain.figures` (the live figures' own: service level, ASA, AHT, abandon
rate, occupancy). The database keeps these sums per 15-minute bucket and dimension
(pre-aggregates, rebuilt from the records of a bucket whenever one of them changes), so
a month's report adds a few thousand rows instead of reading a million calls.

How one call counts (the live counters' rules, ``acd.domain.figures.LiveStats``):

* offered — its first leg, unless it reached a closed queue (counted ``closed``); charged
  to the queue it first entered;
* answered — an agent or a partner picked up; within target when its wait ≤ the queue's
  target (``figures.answered_within``); its wait adds to ASA's total;
* abandoned — the caller hung up before an answer; after target when the wait > T
  (``figures.abandoned_after``); *short* when the wait < the configured short-abandon
  threshold (reported apart, and left out of the abandon rate of reports);
* handled — completed; talk and the wrap-up that followed make AHT;
* exits — each exit the caller took (a queue's max wait, max waiting, max expected wait,
  the caller's key): charged to the queue it left; an exit to voicemail or a message
  ends the call (not an abandon);
* RONA — its offers an agent did not take (no answer or busy), charged to that agent;
* overflowed — its offers to partner sites; partner answered and their wait: the
  partner's share and answer speed;
* callbacks — a callback's record (not a campaign's attempt) counts one requested, and
  its outcome: completed (it ended as a completed call), failed or cancelled (its exit
  ``callback/failed``, ``callback/cancelled``); when the customer answered, the time
  from the request to that answer adds to the callback delay.

Pure: rows are plain mappings (``CallRecord.to_row()`` or the database's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from acd.domain import figures

#: The dimensions a report can be split by ("all": the whole centre).
DIMENSIONS = ("all", "queue", "agent", "site", "region", "segment", "did")

#: Offer outcomes that count as a ring-no-answer.
RONA_OUTCOMES = frozenset({"rona", "busy"})


@dataclass(slots=True)
class Totals:
    """Counters and sums of one group (a bucket × dimension key, or a whole report row)."""

    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    abandoned_after: int = 0
    abandoned_short: int = 0
    closed: int = 0
    exited: int = 0
    handled: int = 0
    transferred: int = 0
    wait_answered: float = 0.0
    wait_abandoned: float = 0.0
    wait_max: float = 0.0
    talk: float = 0.0
    wrap_up: float = 0.0
    agent_offers: int = 0
    rona: int = 0
    overflowed: int = 0
    partner_answered: int = 0
    partner_wait: float = 0.0
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    callbacks_failed: int = 0
    callbacks_cancelled: int = 0
    #: Callbacks whose customer answered, and their seconds from request to answer.
    callbacks_answered: int = 0
    callback_delay: float = 0.0

    def add(self, other: Totals) -> None:
        for f in fields(self):
            if f.name == "wait_max":
                self.wait_max = max(self.wait_max, other.wait_max)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Totals:
        out = cls()
        for f in fields(cls):
            value = raw.get(f.name)
            if value is not None:
                setattr(out, f.name, type(getattr(out, f.name))(value))
        return out

    # -- the figures: acd.domain.figures, the live view's own definitions -------------

    @property
    def service_level(self) -> float | None:
        return figures.service_level(self.answered_within, self.answered,
                                     self.abandoned_after)

    @property
    def asa(self) -> float | None:
        return figures.asa(self.wait_answered, self.answered)

    @property
    def aht(self) -> float | None:
        return figures.aht(self.talk, self.wrap_up, self.handled)

    @property
    def abandon_rate(self) -> float | None:
        """Abandoned ÷ (answered + abandoned), short abandons left out (with no
        threshold configured: exactly the live figure)."""
        return figures.abandon_rate(self.abandoned - self.abandoned_short, self.answered)

    @property
    def rona_rate(self) -> float | None:
        """Offers to agents not taken (no answer, busy) ÷ offers to agents."""
        return self.rona / self.agent_offers if self.agent_offers else None

    @property
    def partner_share(self) -> float | None:
        """Answered by a partner site ÷ answered."""
        return self.partner_answered / self.answered if self.answered else None

    @property
    def partner_asa(self) -> float | None:
        return figures.asa(self.partner_wait, self.partner_answered)

    @property
    def callback_delay_mean(self) -> float | None:
        """Mean seconds from a callback's request to the customer's answer."""
        return figures.asa(self.callback_delay, self.callbacks_answered)

    def figures(self) -> dict[str, float | None]:
        return {"service_level": self.service_level, "asa": self.asa, "aht": self.aht,
                "abandon_rate": self.abandon_rate, "rona_rate": self.rona_rate,
                "partner_share": self.partner_share, "partner_asa": self.partner_asa,
                "callback_delay_mean": self.callback_delay_mean}


#: A callback's exit (``callback/<outcome>``) → its outcome.
CALLBACK_EXITS = {"callback/failed": "failed", "callback/cancelled": "cancelled"}


def is_callback(row: Mapping[str, Any]) -> bool:
    """A callback's record, not a campaign's attempt (those are campaign progress)."""
    cb = row.get("callback")
    if not cb:
        return False
    return not str(cb.get("reason") or "").startswith("campaign:")


def callback_totals(row: Mapping[str, Any], t: Totals) -> None:
    """What a callback's record adds (see the module's doc): requested, its outcome, the
    delay from its request to the customer's answer."""
    cb = row["callback"]
    t.callbacks_requested = 1
    outcome = "completed" if row["outcome"] == "completed" else \
        CALLBACK_EXITS.get(str(row.get("exit") or ""), "")
    if outcome == "completed":
        t.callbacks_completed = 1
    elif outcome == "failed":
        t.callbacks_failed = 1
    elif outcome == "cancelled":
        t.callbacks_cancelled = 1
    requested = cb.get("requested_at")
    if row.get("answered_at") is not None and requested is not None:
        t.callbacks_answered = 1
        t.callback_delay = max(0.0, float(row["answered_at"]) - float(requested))


def call_totals(row: Mapping[str, Any], short_abandon: float = 0.0) -> Totals:
    """What one call (one leg) adds, before it is charged to its dimensions."""
    t = Totals()
    outcome = row["outcome"]
    wait = float(row.get("wait") or 0.0)
    target = float(row.get("sl_target") or 0.0)
    if outcome == "closed":
        t.closed = 1
    elif row.get("offered", True):
        t.offered = 1
    if int(row.get("leg") or 1) > 1 or row.get("transfers"):
        t.transferred = len(row.get("transfers") or ()) or 1
    if row.get("answered_at") is not None:
        t.answered = 1
        t.answered_within = int(figures.answered_within(wait, target))
        t.wait_answered = wait
        t.wait_max = wait
        if row.get("site"):
            t.partner_answered, t.partner_wait = 1, wait
    elif outcome == "abandoned":
        t.abandoned = 1
        t.abandoned_after = int(figures.abandoned_after(wait, target))
        t.abandoned_short = int(wait < short_abandon)
        t.wait_abandoned = wait
        t.wait_max = wait
    # every exit the caller took (as the live figures count CallExited)
    t.exited = len(row.get("exits") or ()) or int(outcome == "exited")
    if outcome == "completed":
        t.handled = 1
        t.talk = float(row.get("talk") or 0.0)
        t.wrap_up = float(row.get("wrap_up") or 0.0)
    for offer in row.get("offers") or ():
        if offer["kind"] == "site":
            t.overflowed += 1
        else:
            t.agent_offers += 1
            t.rona += offer["outcome"] in RONA_OUTCOMES
    if is_callback(row):
        callback_totals(row, t)
    return t


def _answer_part(t: Totals) -> Totals:
    """For an agent or a site: what it did with the calls it answered."""
    return Totals(answered=t.answered, answered_within=t.answered_within,
                  handled=t.handled, wait_answered=t.wait_answered,
                  wait_max=t.wait_max if t.answered else 0.0, talk=t.talk,
                  wrap_up=t.wrap_up, partner_answered=t.partner_answered,
                  partner_wait=t.partner_wait)


Key = tuple[str, str]


def rollup(rows: Iterable[Mapping[str, Any]], short_abandon: float = 0.0,
           ) -> dict[Key, Totals]:
    """(dimension, key) → the sums of the calls ``rows`` (one bucket's, say)."""
    out: dict[Key, Totals] = defaultdict(Totals)
    for row in rows:
        t = call_totals(row, short_abandon)
        out[("all", "")].add(t)
        queue = str(row.get("queue") or "")
        first = str(row.get("first_queue") or queue)
        # offered: the queue first entered; exits: the queue left; the rest: the last
        rest = Totals()
        rest.add(t)
        if first != queue and t.offered:
            out[("queue", first)].offered += 1
            rest.offered = 0
        exits = row.get("exits") or ()
        if exits:
            for e in exits:
                out[("queue", str(e.get("queue") or queue))].exited += 1
            rest.exited = 0
        out[("queue", queue)].add(rest)
        for dim in ("region", "segment", "did"):
            out[(dim, str(row.get(dim) or ""))].add(t)
        answered_by = _answer_part(t)
        if row.get("agent"):
            out[("agent", str(row["agent"]))].add(answered_by)
        site = row.get("site") or row.get("agent_site")
        if site:
            out[("site", str(site))].add(answered_by)
        for offer in row.get("offers") or ():
            if offer["kind"] == "site":
                out[("site", str(offer["target"]))].overflowed += 1
            else:
                agent = out[("agent", str(offer["target"]))]
                agent.agent_offers += 1
                agent.rona += offer["outcome"] in RONA_OUTCOMES
    return dict(out)


# -- agents' time ------------------------------------------------------------------------

#: Engine-driven states that keep an agent busy.
BUSY_STATES = frozenset({"ringing", "on_call", "wrap_up"})


def interval_seconds(row: Mapping[str, Any], start: float, end: float,
                     ) -> dict[str, float]:
    """What one agent interval adds to the agent's time in [start, end): ``staffed``
    (signed in), ``busy`` (ringing, on a call, wrap-up; also by state), ``paused``
    (paused and not busy; also ``pause:<reason>``), ``idle`` (available, waiting)."""
    seconds = min(float(row["end"]), end) - max(float(row["start"]), start)
    if seconds <= 0 or row["status"] == "logged_out":
        return {}
    out = {"staffed": seconds}
    state = str(row["state"])
    if state in BUSY_STATES:
        out["busy"] = seconds
        out[state] = seconds
    elif row["status"] == "paused":
        out["paused"] = seconds
        out[f"pause:{row['reason'] or '-'}"] = seconds
    else:
        out["idle"] = seconds
    return out


def agent_rollup(rows: Iterable[Mapping[str, Any]], start: float, end: float,
                 ) -> dict[tuple[str, str], float]:
    """(agent, what) → seconds in [start, end), from the agents' intervals."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        for what, seconds in interval_seconds(row, start, end).items():
            out[(str(row["agent"]), what)] += seconds
    return dict(out)


def occupancy(seconds: Mapping[str, float]) -> float | None:
    """Busy ÷ (staffed − paused), ``acd.domain.figures.occupancy``."""
    return figures.occupancy(seconds.get("busy", 0.0), seconds.get("staffed", 0.0),
                             seconds.get("paused", 0.0))
