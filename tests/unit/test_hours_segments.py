"""Business hours, holidays and caller segments (pure policy)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from acd.config import ConfigError, parse_config
from routing.hours import Schedule, parse_days, parse_interval
from routing.segments import Segment, SegmentTable, normalise_number

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def test_weekday_hours_in_shanghai_time() -> None:
    s = Schedule.build("Asia/Shanghai", {"mon-fri": "08:30-20:00", "sat": ["09:00-12:00"]})
    assert s.is_open(at(2026, 11, 23, 8, 30))  # Monday
    assert not s.is_open(at(2026, 11, 23, 8, 29))
    assert not s.is_open(at(2026, 11, 23, 20, 0))  # end is exclusive
    assert s.is_open(at(2026, 11, 28, 11, 59))  # Saturday
    assert not s.is_open(at(2026, 11, 29, 10, 0))  # Sunday
    # 01:00 UTC on Monday is 09:00 in Shanghai
    assert s.is_open(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))


def test_holidays_close_and_make_up_days_open() -> None:
    s = Schedule.build("Asia/Shanghai", {"mon-fri": "09:00-18:00"},
                       holidays=[date(2026, 10, 1)], workdays=[date(2026, 10, 11)])
    assert not s.is_open(at(2026, 10, 1, 10))  # National Day, a Thursday
    assert s.is_open(at(2026, 10, 11, 10))  # a Sunday worked as a make-up day
    assert s.next_open(at(2026, 10, 1, 10)) == at(2026, 10, 2, 9)


def test_empty_schedule_is_always_open_and_24h_interval() -> None:
    assert Schedule().is_open(at(2026, 1, 1, 3))
    s = Schedule.build("Asia/Shanghai", {"daily": "00:00-24:00"})
    assert s.is_open(at(2026, 1, 1, 23, 59))


@pytest.mark.parametrize("bad", ["8-20", "20:00-08:00", "09:00-25:00", "09:60-10:00"])
def test_bad_intervals(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_interval(bad)


def test_days() -> None:
    assert parse_days("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_days("sat,sun") == (5, 6)
    with pytest.raises(ValueError):
        parse_days("fri-mon")


@pytest.mark.parametrize(("raw", "norm"), [
    ("+86 138-0013-8000", "13800138000"), ("008613800138000", "13800138000"),
    ("+8675588886666", "075588886666"), ("0086 755 8888 6666", "075588886666"),
    ("8613800138000", "13800138000"), ("0755-8888-6666", "075588886666"),
    ("+1 415 555 0100", "0014155550100"), ("anonymous", ""), ("", ""),
])
def test_normalise_number(raw: str, norm: str) -> None:
    assert normalise_number(raw) == norm


def test_segments_first_match_wins() -> None:
    t = SegmentTable([
        Segment("vip", frozenset({"13800138000"}), priority=10),
        Segment("dealer", prefixes=("0755",), priority=5, queue_id="dealers"),
        Segment("vip-late", frozenset({"075511112222"}), priority=9),
    ])
    vip = t.classify("+86 13800138000")
    assert vip is not None and vip.segment_id == "vip"
    dealer = t.classify("075511112222")  # dealer prefix comes first in the config
    assert dealer is not None and dealer.segment_id == "dealer"
    assert t.classify("13900000000") is None
    assert t.classify("anonymous") is None


def test_config_hours_ivr_segments_validation() -> None:
    cfg = parse_config("""
timezone: Asia/Shanghai
queues:
  - {id: consult, hours: {mon-fri: "08:30-20:00"}, holidays: [2026-10-01]}
  - {id: repair, closed: {action: voicemail, mailbox: "100@default"}}
ivr: {options: {"1": consult, "2": repair}}
segments:
  - {id: vip, numbers: ["+86 13800138000"], priority: 10}
""")
    assert not cfg.schedule("consult").is_open(at(2026, 10, 1, 10))
    seg = cfg.segment_table().classify("13800138000")
    assert seg is not None and seg.priority == 10
    with pytest.raises(ConfigError) as exc:
        parse_config("""
timezone: Mars/Olympus
queues: [{id: a, hours: {funday: "09:00-10:00"}, closed: {action: voicemail}}]
ivr: {options: {"12": a, "3": nope}}
""", "c.yaml")
    text = "\n".join(exc.value.errors)
    assert "c.yaml: timezone (line 2): unknown time zone" in text
    assert "queues[a].hours" in text and "queues[a].closed" in text
    assert "ivr.options" in text


@pytest.mark.parametrize(("raw", "norm"), [
    ("+86 10 1234 5678", "01012345678"), ("0086 10 1234 5678", "01012345678"),
    ("+86 138 0013 8000", "13800138000"),
])
def test_normalise_keeps_beijing_trunk_zero(raw: str, norm: str) -> None:
    assert normalise_number(raw) == norm


def test_one_normalisation_folds_full_width_digits_for_segments_too() -> None:
    """Segments and regions share one normaliser (routing.numbers): a full-width number
    from a softphone or a CRM matches the segment list written in ASCII."""
    table = SegmentTable([Segment("vip", numbers=frozenset({"13800138000"}))])
    seg = table.classify("＋８６ １３８００１３８０００")
    assert seg is not None and seg.segment_id == "vip"


def test_next_change_finds_the_next_opening_or_closing() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from routing.hours import Schedule

    tz = ZoneInfo("Asia/Shanghai")
    s = Schedule.build("Asia/Shanghai", {"mon-fri": ["09:00-12:00", "13:00-18:00"],
                                         "sat": "10:00-24:00"},
                       holidays=[datetime(2026, 12, 8).date()])
    at = datetime(2026, 12, 7, 11, 0, tzinfo=tz)  # a Monday, open
    assert s.next_change(at) == datetime(2026, 12, 7, 12, 0, tzinfo=tz)
    assert s.next_change(datetime(2026, 12, 7, 12, 0, tzinfo=tz)) == \
        datetime(2026, 12, 7, 13, 0, tzinfo=tz)
    # Monday 18:00 closes; Tuesday is a holiday: Wednesday 09:00 opens
    assert s.next_change(datetime(2026, 12, 7, 18, 0, tzinfo=tz)) == \
        datetime(2026, 12, 9, 9, 0, tzinfo=tz)
    # Saturday open to midnight; Sunday closed: it closes at Sunday 00:00
    assert s.next_change(datetime(2026, 12, 12, 23, 0, tzinfo=tz)) == \
        datetime(2026, 12, 13, 0, 0, tzinfo=tz)
    assert Schedule().next_change(at) is None  # around the clock
