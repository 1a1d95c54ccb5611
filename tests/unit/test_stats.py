"""Per-window queue figures (acd.domain.figures): pure, time passed in by the test."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from acd.domain import Fact
from acd.domain.facts import (
    AgentChanged,
    CallAbandoned,
    CallCompleted,
    CallConnected,
    CallRequeued,
    CallWaiting,
)
from acd.domain.figures import LiveStats, Window
from acd.domain.views import agent_presence

_DEFAULTS: dict[str, object] = {"call_id": "c", "queue": "consult", "agent": None,
                                "wait": 0.0, "offers": 1, "site": None, "talk": 0.0,
                                "caller": "", "entry_time": 0.0, "reentry": False,
                                "priority": 0, "segment": "", "region": "", "server": "",
                                "status": "available", "reason": "", "state": "idle",
                                "device": "NOT_INUSE"}
_KINDS: dict[str, type[Fact]] = {c.name: c for c in (
    CallWaiting, CallConnected, CallAbandoned, CallCompleted, AgentChanged, CallRequeued)}


def fact(name: str, data: dict[str, object]) -> Fact:
    """The core's fact of that wire name, the given fields over neutral defaults (values
    are not checked: a test may hand figures a bad one)."""
    kind = _KINDS[name]
    names = [f.name for f in dataclasses.fields(kind)]  # type: ignore[arg-type]
    return kind(**{f: data.get(f, _DEFAULTS.get(f)) for f in names})

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=SHANGHAI).timestamp()  # a minute boundary


def stats() -> LiveStats:
    return LiveStats({"consult": 20.0, "repair": 30.0}, "Asia/Shanghai")


def arrive(s: LiveStats, now: float, queue: str = "consult", reentry: bool = False) -> None:
    s.observe(fact("call_waiting", {"call_id": "c", "queue": queue, "reentry": reentry}), now)


def test_rolling_window_drops_a_minute_after_fifteen() -> None:
    s = stats()
    arrive(s, T0 + 5)
    assert s.window("consult", Window.ROLLING, T0 + 5).counts.offered == 1
    # still inside: the current minute and the 14 before it
    assert s.window("consult", Window.ROLLING, T0 + 14 * 60 + 59).counts.offered == 1
    # the minute of the event has left the window
    assert s.window("consult", Window.ROLLING, T0 + 15 * 60).counts.offered == 0
    # ... but "today" still has it
    assert s.window("consult", Window.TODAY, T0 + 15 * 60).counts.offered == 1
    fig = s.window("consult", Window.ROLLING, T0 + 15 * 60 + 30)
    assert fig.since == T0 + 60  # 15 whole minutes back from the current one


def test_rolling_window_keeps_at_most_fifteen_buckets() -> None:
    s = stats()
    for i in range(3 * 60 * 60):  # one call a second for three hours
        arrive(s, T0 + i)
    assert len(s._queues["consult"].buckets) == 15
    assert s.window("consult", Window.ROLLING, T0 + 3 * 3600 - 1).counts.offered == 15 * 60
    assert s.total("consult").offered == 3 * 3600


def test_today_resets_at_local_midnight_in_shanghai() -> None:
    s = stats()
    before = datetime(2026, 3, 2, 23, 59, 30, tzinfo=SHANGHAI).timestamp()
    after = datetime(2026, 3, 3, 0, 0, 10, tzinfo=SHANGHAI).timestamp()
    arrive(s, before)
    s.observe(fact("call_abandoned", {"queue": "consult", "wait": 25.0}), before + 10)
    assert s.window("consult", Window.TODAY, before + 15).counts.offered == 1
    # Shanghai midnight is 16:00 UTC: the day is over there, not in UTC
    today = s.window("consult", Window.TODAY, after)
    assert today.counts.offered == 0 and today.counts.abandoned == 0
    assert today.since == datetime(2026, 3, 3, tzinfo=SHANGHAI).timestamp()
    assert s.next_midnight(before) == today.since
    # the rolling window does not care about midnight
    assert s.window("consult", Window.ROLLING, after).counts.offered == 1
    arrive(s, after)
    assert s.window("consult", Window.TODAY, after).counts.offered == 1
    assert s.window("consult", Window.ROLLING, after).counts.offered == 2


def test_service_level_asa_aht_and_abandon_rate() -> None:
    s = stats()  # consult: T = 20 s
    now = T0 + 1
    for wait in (3.0, 10.0, 20.0):  # answered within T (20 s counts as within)
        s.observe(fact("call_connected", {"queue": "consult", "agent": "a", "wait": wait}), now)
    s.observe(fact("call_connected", {"queue": "consult", "agent": "a", "wait": 45.0}), now)
    for wait in (2.0, 19.0):  # short abandons: neither way in the service level
        s.observe(fact("call_abandoned", {"queue": "consult", "wait": wait}), now)
    s.observe(fact("call_abandoned", {"queue": "consult", "wait": 21.0}), now)
    fig = s.window("consult", Window.ROLLING, now)
    c = fig.counts
    assert (c.answered, c.answered_within_target) == (4, 3)
    assert (c.abandoned, c.abandoned_after_target) == (3, 1)
    assert fig.service_level == 3 / (4 + 1)
    assert fig.asa == (3 + 10 + 20 + 45) / 4
    assert fig.abandon_rate == 3 / 7
    assert fig.aht is None  # nothing completed yet
    # the other queue has its own target and figures
    assert s.window("repair", Window.ROLLING, now).service_level is None


def test_aht_counts_talk_and_wrap_up() -> None:
    s = stats()
    s.observe(fact("call_completed", {"queue": "consult", "agent": "1001", "talk": 100.0}), T0)
    s.observe(fact("agent", {"agent": "1001", "status": "available", "state": "wrap_up"}), T0)
    s.observe(fact("agent", {"agent": "1001", "status": "available", "state": "wrap_up"}), T0 + 3)
    s.observe(fact("agent", {"agent": "1001", "status": "available", "state": "idle"}), T0 + 10)
    s.observe(fact("call_completed", {"queue": "consult", "agent": "1002", "talk": 50.0}), T0 + 20)
    fig = s.window("consult", Window.TODAY, T0 + 30)
    assert fig.counts.handled == 2
    assert fig.counts.wrap_up == 10.0
    assert fig.aht == (100 + 50 + 10) / 2


def test_reentry_unknown_queue_and_bad_values_are_ignored() -> None:
    s = stats()
    arrive(s, T0)
    arrive(s, T0 + 1, reentry=True)  # the same call back after an engine restart
    arrive(s, T0 + 1, queue="nope")
    s.observe(fact("call_connected", {"queue": "consult", "wait": "soon"}), T0 + 2)
    s.observe(fact("call_requeued", {"queue": "consult"}), T0 + 2)  # not a figure
    c = s.window("consult", Window.TODAY, T0 + 3).counts
    assert (c.offered, c.answered, c.wait_answered) == (1, 1, 0.0)
    assert set(s.queue_ids) == {"consult", "repair"}


def test_presence_words() -> None:
    assert agent_presence("available", "idle", True) == "ready"
    assert agent_presence("available", "idle", False) == "unavailable"
    assert agent_presence("available", "ringing", False) == "ringing"
    assert agent_presence("paused", "wrap_up", True) == "wrap_up"
    assert agent_presence("paused", "idle", True) == "paused"
    assert agent_presence("logged_out", "idle", False) == "logged_out"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=3 * 3600), max_size=60),
       st.floats(min_value=0, max_value=4 * 3600))
def test_rolling_window_matches_a_full_scan(offsets: list[float], read_at: float) -> None:
    s = stats()
    times = sorted(T0 + o for o in offsets)
    for t in times:
        arrive(s, t)
    now = max([T0 + read_at, *times])
    first_minute = int(now // 60) - 14
    expected = sum(1 for t in times if int(t // 60) >= first_minute)
    assert s.window("consult", Window.ROLLING, now).counts.offered == expected


# -- persistence (acd.runtime.store keeps these dumps) ------------------------------------------


def test_figures_survive_a_dump_and_restore_into_a_fresh_engine() -> None:
    import json

    s = stats()
    arrive(s, T0 + 5)
    arrive(s, T0 + 65, queue="repair")
    s.observe(fact("call_connected", {"queue": "consult", "wait": 12.0}), T0 + 17)
    s.observe(fact("call_abandoned", {"queue": "consult", "wait": 40.0}), T0 + 130)
    dumps = {q: json.loads(json.dumps(s.dump_queue(q))) for q in s.take_dirty()}
    assert set(dumps) == {"consult", "repair"}
    assert s.take_dirty() == set()  # taken

    fresh = stats()
    assert fresh.restore(dumps, T0 + 200) == 2
    for queue in ("consult", "repair"):
        for window in Window:
            assert (fresh.window(queue, window, T0 + 200).counts
                    == s.window(queue, window, T0 + 200).counts)
    # Prometheus totals count what this process saw: not taken over.
    assert fresh.total("consult").offered == 0
    # and the restored figures go on counting
    arrive(fresh, T0 + 210)
    assert fresh.window("consult", Window.TODAY, T0 + 210).counts.offered == 2


def test_restore_drops_what_has_left_its_window() -> None:
    s = stats()
    arrive(s, T0 + 5)
    dumps = {"consult": s.dump_queue("consult")}
    fresh = stats()
    fresh.restore(dumps, T0 + 20 * 60)  # 20 minutes later, same day
    assert fresh.window("consult", Window.ROLLING, T0 + 20 * 60).counts.offered == 0
    assert fresh.window("consult", Window.TODAY, T0 + 20 * 60).counts.offered == 1
    next_day = stats()
    next_day.restore(dumps, T0 + 86_400)
    assert next_day.window("consult", Window.TODAY, T0 + 86_400).counts.offered == 0


def test_restore_skips_unknown_queues_and_malformed_records() -> None:
    s = stats()
    arrive(s, T0 + 5)
    good = s.dump_queue("consult")
    fresh = stats()
    bad = [{"buckets": "x"}, {"buckets": [], "day": "not a date", "today": {}},
           {**good, "today": {"offered": -3}}, {**good, "today": {"offered": "many"}}, {}]
    for record in bad:
        assert fresh.restore({"consult": record}, T0 + 10) == 0
    assert fresh.restore({"elsewhere": good}, T0 + 10) == 0
    assert fresh.window("consult", Window.TODAY, T0 + 10).counts.offered == 0
    assert fresh.restore({"consult": good, "elsewhere": good}, T0 + 10) == 1
