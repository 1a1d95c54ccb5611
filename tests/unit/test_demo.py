"""The demo explains itself (issue 15.8): each caller's story, marked impatient / VIP /
IVR / Guangdong, from the engine's events; its artifacts go to the cache, one folder
per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from harness import demo
from harness.demo import IVR_CALLER, VIP, artifacts_dir, outcome, render, stories

ROOT = Path(__file__).resolve().parents[2]


class Ev(NamedTuple):
    """What the demo reads of a fact: its wire name and payload."""

    name: str
    data: dict[str, Any]


def ev(name: str, **data: Any) -> Ev:
    return Ev(name, data)


EVENTS = [
    ev("call_waiting", call_id="a", caller="13800000001", queue="consult", segment="",
       region="CN-BJ", priority=0),
    ev("call_waiting", call_id="b", caller="13700001110", queue="consult", segment="",
       region="CN-LN", priority=0),
    ev("call_offered", call_id="a", agent="1004"),
    ev("agent_no_answer", call_id="a", agent="1004", dialstatus="NOANSWER"),
    ev("call_waiting", call_id="v", caller=VIP, queue="consult", segment="vip",
       region="CN-BJ", priority=10),
    ev("call_waiting", call_id="i", caller=IVR_CALLER, queue="repair", segment="",
       region="CN-BJ", priority=0),
    ev("call_waiting", call_id="g", caller="13926010001", queue="consult", segment="",
       region="CN-GD", priority=0),
    ev("call_connected", call_id="v", agent="1002", wait=0.8),
    ev("call_abandoned", call_id="b", queue="consult", wait=1.6),
    ev("call_connected", call_id="a", agent="1001", wait=6.0),
    ev("call_connected", call_id="i", agent="1003", wait=2.0),
    ev("call_overflowed", call_id="g", site="gd-partner", region="CN-GD", wait=4.0),
    ev("call_connected", call_id="g", agent=None, site="gd-partner", wait=0.3),
    ev("call_completed", call_id="a", talk=2.5),
]


def test_each_caller_story_is_told_and_marked() -> None:
    rows = stories(EVENTS)
    assert [r.caller for r in rows] == ["13800000001", "13700001110", VIP, IVR_CALLER,
                                        "13926010001"]
    text = render(rows, {"13700001110"})
    lines = text.splitlines()[2:]
    assert lines[0] == ("13800000001   consult  answered by agent 1001 after 6.0 s (first "
                        "rang 1004 (NOANSWER): no answer), talked 2.5 s")
    assert lines[1].endswith("gave up after waiting 1.6 s — recorded abandoned, the engine "
                             "freed its place")
    assert lines[2].strip() == "↳ impatient (hangs up after 1.5 s)"
    assert "answered by agent 1002 after 0.8 s, served ahead of 1 earlier caller(s)" in \
        lines[3]
    assert lines[4].strip() == "↳ VIP (+10 priority)"
    assert lines[6].strip() == "↳ IVR: dialled 4008005678, pressed 2 → repair"
    assert "sent to partner site gd-partner after 4.0 s" in lines[7]
    assert lines[8].strip() == "↳ Guangdong: the partner covers it"


def test_an_impatient_caller_answered_in_time_is_said_so() -> None:
    rows = stories([
        ev("call_waiting", call_id="b", caller="13700001110", queue="consult"),
        ev("call_connected", call_id="b", agent="1002", wait=1.0)])
    assert outcome(rows[0], rows, {"13700001110"}).endswith(
        "in time; it hung up when its patience ran out, during the call")


def test_one_artifacts_folder_per_run_in_the_cache(tmp_path: Path) -> None:
    first, second = artifacts_dir(tmp_path), artifacts_dir(tmp_path)
    assert first != second and first.parent == second.parent == tmp_path
    assert first.is_dir() and second.is_dir()
    default = demo.default_cache_dir() / "demo"
    assert not str(default).startswith(str(ROOT))  # never inside the repository


def test_the_trickle_mixes_hotline_guangdong_and_ivr_callers_and_rushes() -> None:
    import random

    from routing.regions import lookup_region

    rng = random.Random(7)
    groups = [demo.next_arrivals(n, rng) for n in range(200)]
    rushes = [g for n, g in enumerate(groups) if n % demo.RUSH_EVERY == demo.RUSH_EVERY - 1]
    assert all(len(g) == demo.RUSH and [a.kind for a in g[-2:]] == ["guangdong"] * 2
               for g in rushes)
    singles = [g[0] for n, g in enumerate(groups)
               if n % demo.RUSH_EVERY != demo.RUSH_EVERY - 1]
    assert all(len(groups[n]) == 1 for n in range(200) if n % demo.RUSH_EVERY != 9)
    kinds = {a.kind for a in singles}
    assert kinds == {"hotline", "guangdong", "ivr"}
    assert {a.digit for a in singles if a.kind == "ivr"} == {"1", "2"}
    every = [a for g in groups for a in g]
    assert all(a.number not in (VIP, IVR_CALLER) for a in every)
    assert all(lookup_region(a.number)[0] == "CN-GD" for a in every if a.kind == "guangdong")
    assert all(lookup_region(a.number)[0] != "CN-GD" for a in every if a.kind != "guangdong")
    assert {a.service for a in every} == {demo.DID, demo.IVR_DID}
    assert all(a.service == demo.IVR_DID for a in every if a.kind == "ivr")


def test_it_stays_up_unless_once(monkeypatch: Any) -> None:
    seen: list[bool] = []

    async def fake_run(calls: int, rate: float, stay: bool, base: Path | None = None) -> int:
        seen.append(stay)
        return 0

    monkeypatch.setattr(demo, "run", fake_run)
    assert demo.main([]) == 0 and demo.main(["--once"]) == 0 and demo.main(["--stay"]) == 0
    assert seen == [True, False, True]


def test_the_urls_carry_the_demo_sign_ins() -> None:
    text = demo.urls("http://127.0.0.1:8080", "tok", "demo-1")
    assert "wallboard   http://127.0.0.1:8080/#token=tok" in text
    assert f"/desk      (agent 1004, PIN {demo.DEMO_PIN}" in text
    assert f"/console   (supervisor demo, password {demo.DEMO_PASSWORD})" in text
    assert "Ctrl-C ends it" in text
