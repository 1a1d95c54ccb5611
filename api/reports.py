"""Reports, call records and recordings under ``/api/v1/reports``; the reports page.

The history database is the node's (``app.state.history``, set by ``app.node`` when the
config has ``history:``); without it every route answers 404 ``history_disabled``.
Queries run in a worker thread: the engine's loop never waits on the database.

| resource | agent | supervisor | admin |
|---|---|---|---|
| ``GET /reports/calls`` (by queue, agent, site, region, segment, did, all) | 403 | ✓ | ✓ |
| ``GET /reports/agents`` (occupancy, pauses by reason) | 403 | ✓ | ✓ |
| ``GET /reports/callbacks`` (requested, completed, failed, cancelled, delay) | 403 | ✓ | ✓ |
| ``GET /reports/chart.svg`` | 403 | ✓ | ✓ |
| ``GET /reports/records``, ``/reports/records/{call}`` | its own calls | ✓ | ✓ |
| ``GET /reports/replay?day=`` (the day replayed with the running config) | 403 | ✓ | ✓ |
| ``GET /reports/recordings/{call}`` (play / download; audited) | 403 | ✓ | ✓ |
| ``GET /reports/recordings/{call}/audit``, ``POST /reports/purge`` | 403 | 403 | ✓ |

Callers' numbers are masked (``138****8000``) for roles not in
``history.show_numbers_to`` — except an agent's own callers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from acd.config import ApiRole
from acd.history.charts import bar_chart
from acd.history.periods import Granularity, day_range
from acd.history.rollup import DIMENSIONS
from acd.runtime.history.reports import (
    ReportQuery,
    agent_report,
    call_report,
    callback_report,
    masked,
    to_csv,
)
from acd.runtime.history.service import History
from api.auth import Principal
from api.models import ErrorBody
from api.routes import allow, principal

log = logging.getLogger("acd.api")
audit_log = logging.getLogger("acd.audit")

STATIC = Path(__file__).with_name("static")

def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


router = APIRouter(prefix="/api/v1/reports", tags=["reports"], responses={
    400: _error("A range that ends before it starts."),
    401: _error("No or unknown bearer token."),
    403: _error("The token's role may not do this."),
    404: _error("No history section in the config, or no such record or recording."),
    413: _error("Too many calls to replay here (use acd replay)."),
    503: _error("The history database did not answer."),
})
page_router = APIRouter(include_in_schema=False)

Staff = Annotated[Principal, Depends(allow(ApiRole.SUPERVISOR, ApiRole.ADMIN))]
Admin = Annotated[Principal, Depends(allow(ApiRole.ADMIN))]
Anyone = Annotated[Principal, Depends(principal)]

Day = Annotated[date | None, Query(description="First local day (default: today)")]


def history(request: Request) -> History:
    found: History | None = getattr(request.app.state, "history", None)
    if found is None:
        raise HTTPException(404, "history is not configured (config history:)")
    return found


Hist = Annotated[History, Depends(history)]


def _today(h: History) -> date:
    return datetime.now(ZoneInfo(h.db.timezone)).date()


def _query(h: History, first: date | None, last: date | None, by: str,
           granularity: Granularity, keys: list[str] | None) -> ReportQuery:
    first = first or _today(h)
    try:
        return ReportQuery(first, last or first, by, granularity, tuple(keys or ()))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


async def _run(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kw)
    except HTTPException:
        raise
    except Exception as exc:
        log.warning("history query failed: %s: %s", type(exc).__name__, exc)
        raise HTTPException(503, "the history database did not answer") from None


def _csv(report: dict[str, Any], name: str) -> Response:
    return Response(to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get("/calls", summary="Calls by period and dimension (JSON or CSV)")
async def calls_report(
    h: Hist, _who: Staff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    by: Annotated[str, Query(pattern="^(" + "|".join(DIMENSIONS) + ")$")] = "queue",
    granularity: Granularity = Granularity.DAY,
    key: Annotated[list[str] | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    q = _query(h, first, last, by, granularity, key)
    report = await _run(call_report, h.db, q)
    if format == "csv":
        return _csv(report, f"calls-{by}-{q.first}-{q.last}")
    return report


@router.get("/callbacks", summary="Callback outcomes by period and queue (JSON or CSV)")
async def callbacks_report(
    h: Hist, _who: Staff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    by: Annotated[str, Query(pattern="^(" + "|".join(DIMENSIONS) + ")$")] = "queue",
    granularity: Granularity = Granularity.DAY,
    key: Annotated[list[str] | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    """Per period and queue: callbacks requested, completed, failed, cancelled, those
    whose customer answered, and the mean seconds from the request to that answer
    (docs/reports.md)."""
    q = _query(h, first, last, by, granularity, key)
    report = await _run(callback_report, h.db, q)
    if format == "csv":
        return _csv(report, f"callbacks-{by}-{q.first}-{q.last}")
    return report


@router.get("/agents", summary="Agents: calls, AHT, RONA, occupancy, pauses by reason")
async def agents_report(
    h: Hist, _who: Staff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    granularity: Granularity = Granularity.DAY,
    agent: Annotated[list[str] | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    q = _query(h, first, last, "agent", granularity, agent)
    report = await _run(agent_report, h.db, q)
    if format == "csv":
        return _csv(report, f"agents-{q.first}-{q.last}")
    return report


_CHART_METRICS = {
    "volume": (("offered", "answered", "abandoned"), False),
    "service_level": (("service_level",), True),
    "asa": (("asa",), False),
    "aht": (("aht",), False),
    "partner_share": (("partner_share",), True),
}


@router.get("/chart.svg", summary="A report as an SVG chart (all keys summed)",
            response_class=Response)
async def chart(
    h: Hist, _who: Staff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    by: Annotated[str, Query(pattern="^(" + "|".join(DIMENSIONS) + ")$")] = "all",
    granularity: Granularity = Granularity.MIN60,
    key: Annotated[list[str] | None, Query()] = None,
    metric: Annotated[str, Query(pattern="^(" + "|".join(_CHART_METRICS) + ")$")]
    = "volume",
) -> Response:
    q = _query(h, first, last, by, granularity, key)
    report = await _run(call_report, h.db, q)
    fields, percent = _CHART_METRICS[metric]
    labels = sorted({r["label"] for r in report["rows"]})
    if by != "all" and len(fields) == 1:
        keys = sorted({r["key"] for r in report["rows"]})[:6]
        at = {(r["label"], r["key"]): r for r in report["rows"]}
        series = {k or "-": [at[(lb, k)][fields[0]] if (lb, k) in at else None
                             for lb in labels] for k in keys}
    else:
        summed: dict[str, dict[str, float]] = {}
        for r in report["rows"]:
            s = summed.setdefault(r["label"], {})
            for f in fields:
                if r[f] is not None:
                    s[f] = s.get(f, 0.0) + r[f]
        series = {f: [summed.get(lb, {}).get(f) for lb in labels] for f in fields}
    svg = bar_chart(labels, series, title=f"{metric} — {q.first}…{q.last}",
                    line=len(fields) == 1, percent=percent)
    return Response(svg, media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store",
                             "Content-Security-Policy": "default-src 'none'; style-src "
                                                        "'unsafe-inline'"})


def _show_numbers(h: History, who: Principal) -> bool:
    return who.role in h.settings.show_numbers_to


def _visible(h: History, who: Principal, row: dict[str, Any]) -> dict[str, Any]:
    """An agent sees its own callers' numbers; others as ``show_numbers_to`` says."""
    own = who.is_agent and row.get("agent") == who.agent_id
    return masked(_plain(row), own or _show_numbers(h, who))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("bucket", "day", "week", "month")}


@router.get("/records", summary="Call records of a range of local days")
async def records(
    h: Hist, who: Anyone,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    if who.is_agent:
        agent = who.agent_id  # an agent sees its own calls only
    first = first or _today(h)
    start, end = day_range(first, last or first, h.db.timezone)
    filters = {k: v for k, v in (("queue", queue), ("agent", agent),
                                 ("outcome", outcome)) if v}
    rows = await _run(h.db.calls_between, start, end, limit=limit, offset=offset,
                      filters=filters)
    out = [_visible(h, who, r) for r in rows]
    if format == "csv":
        flat = [{k: v for k, v in r.items() if k not in ("offers", "decision",
                                                          "transfers")}
                | {"offers": len(r.get("offers") or ())} for r in out]
        return _csv({"rows": flat}, f"records-{first}")
    return {"from": first.isoformat(), "to": (last or first).isoformat(),
            "limit": limit, "offset": offset, "records": out}


@router.get("/records/{call_id}", summary="One call's record (every leg, every offer)")
async def record(h: Hist, who: Anyone, call_id: str) -> Any:
    legs = await _run(h.db.call, call_id)
    if who.is_agent:
        legs = [r for r in legs if r.get("agent") == who.agent_id]
    if not legs:
        raise HTTPException(404, f"no record of call {call_id!r}")
    return {"call_id": call_id, "legs": [_visible(h, who, r) for r in legs]}


#: The most calls a replay may take in the engine's own process (a bigger day: the CLI).
REPLAY_MAX_CALLS = 50_000


@router.get("/replay", summary="A recorded day replayed with the running config, next to "
            "what happened (the what-if of acd replay, in the engine's process)")
async def replay_day(request: Request, h: Hist, _who: Staff,
                     day: Annotated[date | None, Query()] = None,
                     seed: Annotated[int, Query(ge=0, le=10**6)] = 1) -> Any:
    from sim.replay import recorded_day
    from sim.replay import replay_day as run_replay

    config = request.app.state.acd.config
    which = day or _today(h)
    start, end = day_range(which, which, h.db.timezone)
    count = await _run(h.db.count_calls, start, end)
    if count > REPLAY_MAX_CALLS:
        raise HTTPException(413, f"{count} calls: replay this day with acd replay")

    def work() -> dict[str, Any]:
        rows = h.db.calls_between(start, end, limit=REPLAY_MAX_CALLS + 1)
        intervals = h.db.intervals_between(start, end)
        result = run_replay(recorded_day(rows, intervals, which, config), config,
                            seed=seed)
        return result.to_dict()

    return await _run(work)


@router.get("/recordings/{call_id}", summary="Play or download a call's recording "
            "(audited)", response_class=FileResponse)
async def recording(h: Hist, who: Staff, call_id: str,
                    leg: Annotated[int, Query(ge=1)] = 1,
                    download: bool = False) -> FileResponse:
    legs = await _run(h.db.call, call_id)
    rec = next((r.get("recording") for r in legs if r["leg"] == leg), None)
    if not rec or not rec.get("file"):
        raise HTTPException(404, f"no recording of call {call_id!r}")
    path = Path(h.settings.recordings_dir) / Path(str(rec["file"])).name
    if not path.is_file():
        raise HTTPException(404, "the recording's file is gone (retention)")
    action = "download" if download else "play"
    await _run(h.db.audit_recording, call_id, leg, who.name, who.role.value, action,
               time.time())
    audit_log.info("recording %s of call %s leg %d by %s (%s)", action, call_id, leg,
                   who.name, who.role.value)
    return FileResponse(path, media_type="audio/wav",
                        filename=path.name if download else None,
                        content_disposition_type="attachment" if download else "inline",
                        headers={"Cache-Control": "no-store"})


@router.get("/recordings/{call_id}/audit", summary="Who played or downloaded it")
async def recording_audit(h: Hist, _who: Admin, call_id: str) -> Any:
    return {"call_id": call_id, "access": await _run(h.db.recording_audit, call_id)}


@router.post("/purge", summary="Apply the retention now")
async def purge_now(h: Hist, who: Admin) -> Any:
    try:
        done = await h.purge()
    except Exception as exc:
        raise HTTPException(503, f"purge failed: {type(exc).__name__}") from None
    audit_log.info("history purge by %s: %s", who.name, done)
    return done


# -- the page ---------------------------------------------------------------------------

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'")
_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                 "X-Content-Type-Options": "nosniff", "Content-Security-Policy": _CSP}


def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


@page_router.get("/reports")
async def reports_page() -> HTMLResponse:
    return HTMLResponse(_static("reports.html"), headers=_PAGE_HEADERS)


@page_router.get("/reports.js")
async def reports_js() -> Response:
    return Response(_static("reports.js"), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


@page_router.get("/reports.css")
async def reports_css() -> Response:
    return Response(_static("reports.css"), media_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


#: Everything this module serves (``api.app`` includes it with one line).
routes = APIRouter()
routes.include_router(router)
routes.include_router(page_router)
