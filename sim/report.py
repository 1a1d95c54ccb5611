"""The text report of a simulated day (``acd simulate`` without ``--json``)."""

from __future__ import annotations

import math

from sim.scenario import fmt_clock
from sim.simulator import AgentTime, SimResult, occupancy


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100.0 * x:.1f} %"


def _sec(x: float | None) -> str:
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.1f} s"


def render(result: SimResult, title: str = "") -> str:
    """The human-readable report."""
    lines: list[str] = []
    if title:
        lines.append(title)
    counted = f", counted from {fmt_clock(result.measure_from)}" \
        if result.measure_from > result.start else ""
    lines.append(f"simulated {result.date.isoformat()} {fmt_clock(result.start)}–"
                 f"{fmt_clock(result.end)}{counted}, "
                 f"seed {result.seed}: {result.events} core events in "
                 f"{result.wall_seconds:.2f} s")
    for qid, q in result.queues.items():
        f, e = q.figures, q.erlang
        lines.append("")
        if e is not None:
            staff = str(e.agents_min) if e.agents_min == e.agents_max \
                else f"{e.agents_min}–{e.agents_max}"
            lines.append(f"queue {qid}: single-skill, {staff} agents; {e.model} with handle "
                         f"{e.handle:.0f} s (ring + talk + wrap-up)")
        else:
            why = "no agents" if not q.pool else "agents shared with other queues"
            lines.append(f"queue {qid}: {len(q.pool)} agents ({why}; no Erlang figure)")
        rows: list[tuple[str, str, str]] = [
            ("offered", str(f.offered), "—" if e is None else f"{e.offered:.1f}"),
            ("answered", str(f.answered), ""),
            ("abandoned", str(f.abandoned), ""),
            (f"service level (≤ {f.sl_target:g} s)", _pct(f.service_level),
             "" if e is None else _pct(e.service_level)),
            ("ASA", _sec(f.asa), "" if e is None else _sec(e.asa)),
            ("P(wait)", _pct(f.p_wait), "" if e is None else _pct(e.p_wait)),
            ("abandon rate", _pct(f.abandon_rate),
             "" if e is None or e.abandon_rate is None else _pct(e.abandon_rate)),
            ("AHT (talk + wrap-up)", _sec(f.aht), ""),
            ("occupancy", _pct(occupancy(q.occupancy)),
             "" if e is None else _pct(e.occupancy)),
        ]
        if f.rona:
            rows.append(("ring-no-answer", str(f.rona), ""))
        if f.overflowed:
            rows.append(("to partner sites", str(f.overflowed), ""))
            rows.append(("answered by partners", str(f.answered_by_partner), ""))
        if f.closed:
            rows.append(("closed (outside hours)", str(f.closed), ""))
        if f.unanswered_at_end:
            rows.append(("unanswered at the end", str(f.unanswered_at_end), ""))
        head = ("", "simulated", "" if e is None else e.model)
        lines.append(f"  {head[0]:<24}{head[1]:>12}{head[2]:>12}".rstrip())
        for label, sim, model in rows:
            lines.append(f"  {label:<24}{sim:>12}{model:>12}".rstrip())
    lines.append("")
    lines.append(f"  {'agents':<24}{'staffed h':>12}{'busy h':>12}{'occupancy':>12}")
    groups: list[tuple[str, AgentTime]] = [
        (f"queue {qid} pool ({len(q.pool)})", q.occupancy) for qid, q in result.queues.items()]
    groups += [(f"group {g}", t) for g, t in sorted(result.groups.items())]
    groups.append((f"all ({len(result.agents)})", result.overall))
    for label, t in groups:
        lines.append(f"  {label:<24}{t.staffed / 3600:>12.1f}{t.busy / 3600:>12.1f}"
                     f"{_pct(occupancy(t)):>12}")
    return "\n".join(lines)
