"""Shared-partner routing: policy (pure) and the engine core's use of it."""

from __future__ import annotations

import heapq
from typing import Any

from acd.domain import (
    AgentStatus,
    CallArrived,
    CallHungUp,
    DialFinished,
    EngineCore,
    Offer,
    SetAgentStatus,
    StartTimer,
)
from routing.partners import PartnerSite, RegionRule, partner_candidates, partner_exclusions
from tests.unit.conftest import core_of

GD = PartnerSite("gd", "PJSIP/800@trunk-gd", 2, frozenset({"CN-GD"}), preference=5)
GD2 = PartnerSite("gd2", "PJSIP/800@trunk-gd2", 1, frozenset({"CN-GD"}), preference=1)
ZJ = PartnerSite("zj", "PJSIP/800@trunk-zj", 1, frozenset({"CN-ZJ"}),
                 services=frozenset({"repair"}))
ALL = {"gd", "gd2", "zj"}


def ids(sites: list[PartnerSite]) -> list[str]:
    return [s.site_id for s in sites]


def test_overflow_waits_then_covering_partners_by_preference() -> None:
    rule = RegionRule(overflow_after=20)
    kw = {"region": "CN-GD", "queue_id": "consult", "rule": rule, "open_sites": ALL,
          "active": {}}
    assert partner_candidates([GD, GD2, ZJ], waited=19.9, **kw) == []  # type: ignore[arg-type]
    assert ids(partner_candidates([GD2, GD, ZJ], waited=20, **kw)) == ["gd", "gd2"]  # type: ignore[arg-type]


def test_capacity_hours_services_and_tried_exclude() -> None:
    rule = RegionRule(primary=True)
    got = partner_candidates([GD, GD2], region="CN-GD", queue_id="consult", waited=0,
                             rule=rule, open_sites={"gd2"}, active={}, tried=set())
    assert ids(got) == ["gd2"]  # gd closed
    got = partner_candidates([GD, GD2], region="CN-GD", queue_id="consult", waited=0,
                             rule=rule, open_sites=ALL, active={"gd": 2}, tried={"gd2"})
    assert got == []  # gd full, gd2 tried
    got = partner_candidates([ZJ], region="CN-ZJ", queue_id="consult", waited=0,
                             rule=rule, open_sites=ALL, active={})
    assert got == []  # zj does not offer consult


def test_any_partner_stage_takes_non_covering_after_its_wait() -> None:
    rule = RegionRule(overflow_after=20, any_after=60)
    kw = {"region": "CN-SC", "queue_id": "repair", "rule": rule, "open_sites": ALL,
          "active": {}}
    assert partner_candidates([GD, ZJ], waited=30, **kw) == []  # type: ignore[arg-type]
    assert ids(partner_candidates([ZJ, GD], waited=60, **kw)) == ["gd", "zj"]  # type: ignore[arg-type]
    assert rule.next_change(30) == 60 and rule.next_change(61) is None


CONFIG = """
queues: [{id: consult, skills: {consult: 1}}]
agents:
  - {id: a1, skills: {consult: 1}, contact: "sip:a1@127.0.0.1:6001", status: logged_out}
sites:
  - {id: bj, kind: own}
  - id: gd
    kind: partner
    regions: [CN-GD]
    capacity: 1
    number: "8000"
    trunk: {contact: "sip:127.0.0.1:7001"}
    preference: 2
  - id: gd-b
    kind: partner
    regions: [CN-GD]
    capacity: 1
    number: "8000"
    trunk: {contact: "sip:127.0.0.1:7002"}
regions:
  overflow_after: 30
  policies: {CN-GD: {mode: overflow, after: 10}, CN-ZJ: {mode: primary}}
"""


def offers(effects: list[object]) -> list[tuple[str, str]]:
    return [(e.call_id, e.site_id or e.agent_id) for e in effects if isinstance(e, Offer)]


def arrive(core: EngineCore, call_id: str, region: str, t: float) -> list[object]:
    return list(core.apply(CallArrived(call_id, "consult", "1", t, t, region=region,
                                       region_known=True)))


def test_core_overflows_to_covering_partner_after_the_region_wait() -> None:
    core = core_of(CONFIG)
    eff = arrive(core, "c1", "CN-GD", 100.0)
    assert offers(eff) == []
    timer = next(e for e in eff if isinstance(e, StartTimer))
    assert timer.delay == 10
    eff = list(core.apply(timer.event))
    assert offers(eff) == [("c1", "gd")]
    o = next(e for e in eff if isinstance(e, Offer))
    assert o.dial == "PJSIP/8000@trunk-gd"
    assert core.partners.stats["gd"].active == 1
    # gd rejects (486): the next partner at once
    eff = list(core.apply(DialFinished("c1", "", "BUSY", 111.0, site_id="gd")))
    assert offers(eff) == [("c1", "gd-b")]
    assert core.partners.stats["gd"].rejected == 1 and core.partners.stats["gd"].active == 0
    # gd-b answers; capacity held until the call ends
    core.apply(DialFinished("c1", "", "ANSWER", 150.0, 30.0, site_id="gd-b"))
    assert core.partners.stats["gd-b"].answered == 1 and core.partners.stats["gd-b"].active == 0
    totals = core.figures.total("consult")
    assert totals.overflowed == 2 and totals.answered == 1


def test_capacity_is_never_exceeded_and_freed_capacity_is_reused() -> None:
    core = core_of(CONFIG.replace("after: 10", "after: 0"))
    got = []
    for i in range(4):
        got += offers(arrive(core, f"c{i}", "CN-GD", 100.0 + i))
    assert got == [("c0", "gd"), ("c1", "gd-b")]  # two sites × capacity 1
    eff = list(core.apply(DialFinished("c0", "", "NOANSWER", 120.0, site_id="gd")))
    # c0 goes to gd-b? full. gd is free now but c0 tried it: c2 (older than c3) takes gd
    assert offers(eff) == [("c2", "gd")]
    assert all(st.active <= 1 for st in core.partners.stats.values())


def test_primary_region_goes_to_partner_first_and_agents_back_up() -> None:
    cfg = CONFIG.replace("regions:\n  overflow_after", """  - id: zj
    kind: partner
    regions: [CN-ZJ]
    number: "9000"
    trunk: {contact: "sip:127.0.0.1:7003"}
regions:
  overflow_after""")
    core = core_of(cfg)
    core.apply(SetAgentStatus("a1", AgentStatus.AVAILABLE, 0.0))
    assert offers(arrive(core, "z1", "CN-ZJ", 10.0)) == [("z1", "zj")]  # agent a1 is free
    eff = list(core.apply(DialFinished("z1", "", "CHANUNAVAIL", 11.0, site_id="zj")))
    assert offers(eff) == [("z1", "a1")]  # the own centre backs up


def test_abandon_while_partner_rings_frees_capacity() -> None:
    core = core_of(CONFIG.replace("after: 10", "after: 0"))
    assert offers(arrive(core, "c1", "CN-GD", 100.0)) == [("c1", "gd")]
    core.apply(DialFinished("c1", "", "CANCEL", 101.0, site_id="gd"))
    core.apply(CallHungUp("c1", 101.0))
    assert core.partners.stats["gd"].active == 0
    assert core.region_stats["CN-GD"].abandoned == 1


def test_partner_calls_found_after_a_restart_hold_capacity_until_they_hang_up() -> None:
    from acd.domain import ChannelGone, PartnerChannels

    core = core_of(CONFIG.replace("after: 10", "after: 0"))
    assert core.partner_for_device("PJSIP/trunk-gd") == "gd"
    assert core.partner_for_device("PJSIP/a1") is None
    # AMI resync after a restart: each site still has a call put through before it.
    core.apply(PartnerChannels("", {"PJSIP/trunk-gd-00000001": "gd",
                                    "PJSIP/trunk-gd-b-00000002": "gd-b",
                                    "PJSIP/trunk-xx-00000003": "no-such-site"}, 99.0))
    assert core.partners.stats["gd"].active == 1 and core.partners.stats["gd-b"].active == 1
    assert offers(arrive(core, "c1", "CN-GD", 100.0)) == []  # both full: it waits
    # the same resync again (AMI reconnect) counts nothing twice
    core.apply(PartnerChannels("", {"PJSIP/trunk-gd-00000001": "gd",
                                    "PJSIP/trunk-gd-b-00000002": "gd-b"}, 101.0))
    assert core.partners.stats["gd"].active == 1
    # a Hangup of some other channel changes nothing; the recovered gd call's frees gd
    assert offers(list(core.apply(ChannelGone("", "PJSIP/a1-00000009", 102.0)))) == []
    assert core.partners.holds_recovered("", "PJSIP/trunk-gd-00000001")
    eff = list(core.apply(ChannelGone("", "PJSIP/trunk-gd-00000001", 103.0)))
    assert offers(eff) == [("c1", "gd")]
    assert core.partners.stats["gd"].active == 1  # now c1's
    # a later resync that no longer lists gd-b's channel frees it too
    core.apply(PartnerChannels("", {}, 104.0))
    assert core.partners.stats["gd-b"].active == 0


def test_partner_exclusions_say_why_each_other_site_did_not_get_the_call() -> None:
    bj = PartnerSite("sc", "PJSIP/800@trunk-sc", 1, frozenset({"CN-SC"}))
    kw = {"region": "CN-GD", "queue_id": "consult", "rule": RegionRule(overflow_after=30)}
    why = dict(partner_exclusions([GD, GD2, ZJ, bj], chosen="gd", waited=40,
                                  open_sites={"gd", "gd2", "sc"}, active={"gd2": 0},
                                  **kw))  # type: ignore[arg-type]
    assert why == {"gd2": "ranked below (coverage, preference, id)", "zj": "closed now",
                   "sc": "does not cover CN-GD"}
    why = dict(partner_exclusions([GD, GD2, ZJ], chosen="gd", waited=40, open_sites=ALL,
                                  active={"gd2": 1}, tried={"zj"}, **kw))  # type: ignore[arg-type]
    assert why == {"gd2": "at capacity (1/1)", "zj": "already tried for this call"}
    why = dict(partner_exclusions([GD, GD2, ZJ], chosen="", waited=5, open_sites=ALL,
                                  active={}, **kw))  # type: ignore[arg-type]
    assert why["gd"] == "covers CN-GD but its wait (30 s) is not reached"
    assert why["zj"] == "does not take consult"


def test_a_partner_offer_records_why_the_other_sites_did_not_get_it() -> None:
    core = core_of(CONFIG)
    timer = next(e for e in arrive(core, "c1", "CN-GD", 100.0) if isinstance(e, StartTimer))
    core.apply(timer.event)
    d = core.calls["c1"].decision
    assert (d["site"], d["candidates"]) == ("gd", 2)
    assert d["excluded_sites"] == [{"site": "gd-b",
                                    "reason": "ranked below (coverage, preference, id)"}]
    core.apply(DialFinished("c1", "", "BUSY", 111.0, site_id="gd"))
    d = core.calls["c1"].decision
    assert (d["site"], d["candidates"]) == ("gd-b", 1)
    assert d["excluded_sites"] == [{"site": "gd", "reason": "already tried for this call"}]
    assert core.explain("c1")[-1] == "  site gd: already tried for this call"


# -- the queue's stages add partners and the last resort (one way a call widens) --------

STAGED = """
queues:
  - id: consult
    skills: {consult: 2}
    stages:
      - {after: 15, partners: covering}
      - {after: 25, min_level_delta: 1}
      - {after: 40, partners: [sc]}
      - {after: 60, partners: any}
      - {after: 90, action: {to: voicemail, mailbox: "100@default", sound: custom/sorry}}
agents:
  - {id: a1, skills: {consult: 1}, contact: "sip:a1@h", status: logged_out}
sites:
  - {id: gd, kind: partner, regions: [CN-GD], capacity: 1, number: "8000",
     trunk: {contact: "sip:127.0.0.1:7001"}}
  - {id: sc, kind: partner, regions: [CN-SC], capacity: 1, number: "8000",
     trunk: {contact: "sip:127.0.0.1:7002"}}
  - {id: zj, kind: partner, regions: [CN-ZJ], capacity: 1, number: "8000",
     trunk: {contact: "sip:127.0.0.1:7003"}}
regions:
  overflow_after: 30
  policies: {CN-HB: {after: 5}}
"""


class Timers:
    """The core's timers on a virtual clock: ``feed`` the effects of an apply, ``run``
    fires the timers due up to a moment (in time order); both return every effect."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.pending: list[tuple[float, int, Any]] = []
        self.n = 0

    def feed(self, effects: list[object]) -> list[object]:
        for e in effects:
            if isinstance(e, StartTimer):
                self.n += 1
                heapq.heappush(self.pending, (e.event.now, self.n, e.event))
        return effects

    def run(self, until: float) -> list[object]:
        seen: list[object] = []
        while self.pending and self.pending[0][0] <= until:
            _, _, event = heapq.heappop(self.pending)
            seen += self.feed(list(self.core.apply(event)))
        return seen


def test_stages_add_covering_then_named_then_any_partners_as_the_wait_grows() -> None:
    from acd.domain.facts import CallOverflowed

    core = core_of(STAGED)
    timers = Timers(core)
    # a Guangdong caller: its covering partner at 15 s (the stage), not 30 (the default)
    eff = timers.feed(arrive(core, "gd1", "CN-GD", 100.0)) + timers.run(114.9)
    assert offers(eff) == []
    assert offers(timers.run(115.0)) == [("gd1", "gd")]
    core.apply(CallHungUp("gd1", 116.0))
    # a Beijing caller is covered by nobody: sc joins by name at 40 s, any at 60 s
    eff = timers.feed(arrive(core, "bj1", "CN-BJ", 200.0)) + timers.run(239.9)
    assert offers(eff) == []
    assert offers(timers.run(240.0)) == [("bj1", "sc")]
    eff = timers.feed(list(core.apply(DialFinished("bj1", "", "NOANSWER", 245.0,
                                                   site_id="sc"))))
    assert offers(eff) == []  # gd and zj do not cover Beijing: it waits for any at 60 s
    eff = timers.run(260.0)
    assert offers(eff)[0][0] == "bj1" and offers(eff)[0][1] in {"gd", "zj"}
    overflowed = [e for e in eff if isinstance(e, CallOverflowed)]
    assert overflowed


def test_a_regions_own_wait_wins_over_the_stage_for_its_callers() -> None:
    cfg = STAGED.replace("policies: {CN-HB: {after: 5}}", "policies: {CN-GD: {after: 5}}")
    core = core_of(cfg)
    eff = arrive(core, "gd1", "CN-GD", 100.0)
    timer = next(e for e in eff if isinstance(e, StartTimer)
                 and type(e.event).__name__ == "PartnerDue")
    assert timer.delay == 5


def test_the_last_stages_action_is_the_last_resort_an_exit_not_an_abandon() -> None:
    from acd.domain import ExitCall

    core = core_of(STAGED.replace("      - {after: 40, partners: [sc]}\n", "")
                   .split("sites:")[0])
    timers = Timers(core)
    # no partner site at all: the caller waits through the stages to the last resort
    eff = timers.feed(arrive(core, "c1", "CN-BJ", 100.0)) + timers.run(189.9)
    assert [e for e in eff if isinstance(e, ExitCall)] == []
    eff = timers.run(190.0)
    assert [e for e in eff if isinstance(e, ExitCall)] == [
        ExitCall("c1", "consult", "custom/sorry", "100@default")]
    totals = core.figures.total("consult")
    assert (totals.exits, totals.abandoned) == (1, 0)


def test_stages_that_add_only_partners_or_the_last_resort_are_not_router_stages() -> None:
    core = core_of(STAGED)
    stages = core.router.stages("consult")
    assert [s.after for s in stages] == [0.0, 25.0]  # the agents' bullseye only


def test_stage_partner_and_action_mistakes_are_config_errors_at_their_key() -> None:
    import pytest

    from acd.config import ConfigError, parse_config

    bad = {
        "      - {after: 40, partners: [sc]}": "      - {after: 40, partners: [sx]}",
        "      - {after: 60, partners: any}": "      - {after: 60, partners: covering}",
        "      - {after: 15, partners: covering}":
            "      - {after: 15, partners: covering, action: {to: message}}",
    }
    expected = ["stages[2].partners[0] (line 8): unknown partner site 'sx'",
                "partners: covering is added by more than one stage",
                "the stage after 15 s has an action, but a later stage follows"]
    for (old, new), message in zip(bad.items(), expected, strict=True):
        with pytest.raises(ConfigError) as exc:
            parse_config(STAGED.replace(old, new))
        assert message in str(exc.value), str(exc.value)
