"""Sites, regions, explanations and their metrics over a real Engine with partner sites.

No Asterisk: the engine runs in this loop (FastAGI on an ephemeral port, no AMI) and the
test posts what the caller sessions would post (``CallArrived`` with a region,
``DialFinished`` with the partner's site id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from acd.config import ApiRole, parse_config
from acd.domain import CallHungUp, DialFinished
from api.auth import Principal, TokenStore
from api.ws import snapshot_message, summary_message
from tests.unit.conftest import ApiRig

SUP = "supervisor-token-0123456789"
AGENT = "agent-a1-token-0123456789"
TOKENS = TokenStore([(SUP, Principal("wallboard", ApiRole.SUPERVISOR)),
                     (AGENT, Principal("agent-a1", ApiRole.AGENT, "a1"))])
H = {"Authorization": f"Bearer {SUP}"}
HA = {"Authorization": f"Bearer {AGENT}"}

CONFIG = """
fastagi: {host: 127.0.0.1, port: 0}
queues: [{id: consult, skills: {consult: 1}, wrap_up: 0}]
agents:
  - {id: a1, skills: {consult: 1}, contact: "sip:a1@127.0.0.1:6001", status: logged_out}
sites:
  - {id: bj, name: Beijing centre, kind: own}
  - id: gd
    name: Guangzhou partner
    kind: partner
    regions: [CN-GD]
    capacity: 1
    number: "8000"
    trunk: {contact: "sip:127.0.0.1:7001"}
    preference: 2
  - id: gd-b
    kind: partner
    regions: [CN-GD]
    services: [consult]
    capacity: 3
    number: "8000"
    trunk: {contact: "sip:127.0.0.1:7002"}
regions:
  overflow_after: 30
  policies: {CN-GD: {mode: overflow, after: 0}, CN-ZJ: {mode: primary}}
"""


CALLER = "02088886601"


@pytest.fixture
async def rig() -> AsyncIterator[ApiRig]:
    async with ApiRig(parse_config(CONFIG + "api: {}\n"), tokens=TOKENS, headers=H) as r:
        yield r


def by_id(items: object, key: str = "id") -> dict[str, dict[str, object]]:
    assert isinstance(items, list)
    return {i[key]: i for i in items}


async def test_partner_overflow_shows_in_sites_regions_calls_explanations_and_metrics(
        rig: ApiRig) -> None:
    sites = by_id(await rig.get("/api/v1/sites"))
    assert list(sites) == ["bj", "gd", "gd-b"]
    assert sites["bj"]["kind"] == "own" and sites["bj"]["name"] == "Beijing centre"
    assert sites["gd"] == {
        "id": "gd", "name": "Guangzhou partner", "kind": "partner", "regions": ["CN-GD"],
        "services": [], "capacity": 1, "active": 0, "offered": 0, "answered": 0,
        "rejected": 0, "open": True, "preference": 2}
    # the configured policy regions are listed before any call
    regions = by_id(await rig.get("/api/v1/regions"), "region")
    assert list(regions) == ["CN-GD", "CN-ZJ"]
    assert regions["CN-ZJ"] == {"region": "CN-ZJ", "name": "Zhejiang", "calls": 0,
                                "answered": 0, "abandoned": 0, "overflowed": 0}

    # a Guangdong caller overflows at once (after: 0) to gd, the preferred partner
    rig.arrive("c1", region="CN-GD", caller=CALLER, session=True)
    await rig.settle()
    offer = await rig.offer("c1")
    assert offer.site_id == "gd"
    call = await rig.get("/api/v1/calls/c1")
    assert isinstance(call, dict)
    assert (call["state"], call["region"], call["site"], call["agent"]) == \
        ("offered", "CN-GD", "gd", None)
    why = await rig.get("/api/v1/calls/c1/explanation")
    assert isinstance(why, dict)
    assert why["decision"] == {
        "stage": 0, "strategy": "partner", "candidates": 2, "agent": None, "site": "gd",
        "excluded": None,
        "excluded_sites": [{"site": "gd-b", "reason": "ranked below (coverage, preference, id)"}]}
    assert why["lines"][-1] == "  site gd-b: ranked below (coverage, preference, id)"
    assert why["lines"] and (why["state"], why["site"], why["region"]) == \
        ("offered", "gd", "CN-GD")
    assert (await rig.get("/api/v1/sites/gd")) == {**sites["gd"], "active": 1, "offered": 1}

    # gd is busy: gd-b takes it and answers
    rig.engine.post(DialFinished("c1", "", "BUSY", rig.engine.clock(), site_id="gd"))
    await rig.settle()
    assert (await rig.offer("c1")).site_id == "gd-b"
    sites = by_id(await rig.get("/api/v1/sites"))
    assert (sites["gd"]["rejected"], sites["gd"]["active"]) == (1, 0)
    assert (sites["gd-b"]["offered"], sites["gd-b"]["active"]) == (1, 1)
    m = await rig.metrics()
    assert m[("acd_site_active_calls", (("site", "gd-b"),))] == 1
    # the call ends now after 5 s of talk (not 5 s in the future: an event stamped in the
    # next minute put every later one in that minute's bucket, out of the rolling window)
    rig.engine.post(DialFinished("c1", "", "ANSWER", rig.engine.clock(), 5.0,
                                 site_id="gd-b"))
    await rig.settle()
    sites = by_id(await rig.get("/api/v1/sites"))
    assert (sites["gd-b"]["answered"], sites["gd-b"]["active"]) == (1, 0)

    # a Sichuan caller waits (no partner covers it, no agent logged in), then hangs up
    rig.arrive("c2", region="CN-SC", caller=CALLER, session=True)
    await rig.settle()
    why = await rig.get("/api/v1/calls/c2/explanation")
    assert isinstance(why, dict)
    assert why["state"] == "waiting" and why["decision"] is None and why["lines"]
    assert (await rig.http.get("/api/v1/calls/c2/explanation", headers=HA)).status_code == 404
    rig.engine.post(CallHungUp("c2", rig.engine.clock()))
    await rig.settle()
    assert (await rig.http.get("/api/v1/calls/c2/explanation", headers=H)).status_code == 404

    regions = by_id(await rig.get("/api/v1/regions"), "region")
    assert list(regions) == ["CN-GD", "CN-SC", "CN-ZJ"]
    gd = regions["CN-GD"]
    assert (gd["calls"], gd["answered"], gd["abandoned"], gd["overflowed"]) == (1, 1, 0, 2)
    sc = regions["CN-SC"]
    assert (sc["name"], sc["calls"], sc["abandoned"], sc["overflowed"]) == \
        ("Sichuan", 1, 1, 0)
    queue = await rig.get("/api/v1/queues/consult")
    assert isinstance(queue, dict)
    for window in ("today", "rolling_15m"):
        w = queue[window]
        assert (w["offered"], w["answered"], w["abandoned"], w["overflowed"],
                w["completed"]) == (2, 1, 1, 2, 1), w

    m = await rig.metrics()
    site = "acd_site_calls_total"
    assert m[(site, (("outcome", "rejected"), ("site", "gd")))] == 1
    assert m[(site, (("outcome", "offered"), ("site", "gd")))] == 1
    assert m[(site, (("outcome", "answered"), ("site", "gd-b")))] == 1
    assert m[(site, (("outcome", "answered"), ("site", "bj")))] == 0
    assert m[("acd_site_capacity", (("site", "gd-b"),))] == 3
    assert m[("acd_site_active_calls", (("site", "gd-b"),))] == 0
    region = "acd_region_calls_total"
    assert m[(region, (("outcome", "overflowed"), ("region", "CN-GD")))] == 2
    assert m[(region, (("outcome", "abandoned"), ("region", "CN-SC")))] == 1
    assert m[(region, (("outcome", "offered"), ("region", "CN-ZJ")))] == 0
    assert m[("acd_calls_overflowed_total", (("queue", "consult"),))] == 2
    assert {labels for name, labels in m if name == region} <= {
        (("outcome", o), ("region", r)) for r in ("CN-GD", "CN-SC", "CN-ZJ")
        for o in ("offered", "answered", "abandoned", "overflowed")}

    # the wallboard's WebSocket messages carry the same site and region summaries
    state = rig.app.state.acd
    summary = summary_message(state, TOKENS.authenticate(SUP))  # type: ignore[arg-type]
    assert by_id(summary["sites"])["gd"]["rejected"] == 1
    assert by_id(summary["regions"], "region")["CN-GD"]["overflowed"] == 2
    snap = snapshot_message(state, TOKENS.authenticate(SUP))  # type: ignore[arg-type]
    assert [s["id"] for s in snap["sites"]] == ["bj", "gd", "gd-b"]
    mine = summary_message(state, TOKENS.authenticate(AGENT))  # type: ignore[arg-type]
    assert mine["sites"] == [] and mine["regions"] == []


async def test_unknown_site_is_404_and_agents_may_not_list_sites(rig: ApiRig) -> None:
    r = await rig.http.get("/api/v1/sites/nope", headers=H)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_site")
    for path in ("/api/v1/sites", "/api/v1/sites/gd", "/api/v1/regions"):
        assert (await rig.http.get(path, headers=HA)).status_code == 403


async def test_an_agent_may_read_the_explanation_of_its_own_call(rig: ApiRig) -> None:
    r = await rig.http.post("/api/v1/agents/a1/state", json={"action": "ready"}, headers=HA)
    assert r.status_code == 200
    # not covered by a partner: goes to the agent
    rig.arrive("c3", region="CN-SC", caller=CALLER, session=True)
    await rig.settle()
    assert (await rig.offer("c3")).agent_id == "a1"
    r = await rig.http.get("/api/v1/calls/c3/explanation", headers=HA)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"]["agent"] == "a1" and body["decision"]["site"] is None
    assert body["site"] is None and body["region"] == "CN-SC"
    # why the other agents did not get it, recorded at the offer, structured
    excluded = body["decision"]["excluded"]
    assert excluded["excluded"] == excluded["agents"] - 1
    assert sum(c["count"] for c in excluded["counts"]) == excluded["excluded"]
    assert all({"reason", "skill", "level", "detail", "text", "count"} <= set(c)
               for c in excluded["counts"])
    assert body["lines"][1].strip() == excluded["summary"]
