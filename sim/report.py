"""The text report of simulated days (``acd simulate`` without ``--json``), for a manager.

Labels are Chinese first, then English (as the pages are). Each figure is the mean over
the independent simulated days ± the half-width of its 95 % confidence interval
(:mod:`sim.stats`); the Erlang figure stands next to it where one applies. Tables: all
callers (several queues), each queue, per site (own centres and partner sites), per
region, per hour of arrival, agents. Engine-internal lines (core events, wall time) only
with ``verbose``.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

from routing.regions import REGION_NAMES
from sim.erlang import ErlangFigures
from sim.replicate import Figures, Replications
from sim.scenario import fmt_clock
from sim.simulator import EXITS, NO_AGENTS, PARTNERS, SHARED_AGENTS, TRANSFERS, QueueResult
from sim.stats import Estimate

_WEEKDAYS = (("周一", "Mon"), ("周二", "Tue"), ("周三", "Wed"), ("周四", "Thu"),
             ("周五", "Fri"), ("周六", "Sat"), ("周日", "Sun"))

_NO_ERLANG = {
    NO_AGENTS: "无坐席可接 no agent can take its calls",
    SHARED_AGENTS: "坐席兼顾其他队列 agents shared with other queues",
    PARTNERS: "合作网点也接此队列 partner sites take its calls",
    EXITS: "有离队规则 callers may leave by its exits",
    TRANSFERS: "来电也来自其他队列的离队 callers also come from other queues' exits",
}


# -- text of different widths (a Chinese character takes two columns) ---------------------

def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _ljust(text: str, w: int) -> str:
    return text + " " * max(0, w - width(text))


def _rjust(text: str, w: int) -> str:
    return " " * max(0, w - width(text)) + text


def _table(head: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]],
           indent: str = "  ") -> list[str]:
    """Columns two spaces apart: a Chinese and an English header line, the first column
    to the left, the others to the right."""
    widths = [max(width(h[0]), width(h[1]), *(width(r[i]) for r in rows))
              for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        parts = [_ljust(cells[0], widths[0])]
        parts += [_rjust(c, w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    return [line([h[0] for h in head]), line([h[1] for h in head]),
            *(line(r) for r in rows)]


# -- numbers ---------------------------------------------------------------------------

def _num(e: Estimate | None, ci: bool = True) -> str:
    if e is None:
        return "—"
    if e.half_width is None:
        return f"{e.mean:.0f}" if float(e.mean).is_integer() else f"{e.mean:.1f}"
    text = f"{e.mean:.1f}"
    return f"{text} ± {e.half_width:.1f}" if ci else text


def _pct(e: Estimate | None, ci: bool = True) -> str:
    if e is None:
        return "—"
    text = f"{100.0 * e.mean:.1f} %"
    if ci and e.half_width is not None:
        text += f" ± {100.0 * e.half_width:.1f}"
    return text


def _sec(e: Estimate | None, ci: bool = True) -> str:
    if e is None:
        return "—"
    text = f"{e.mean:.1f} s"
    if ci and e.half_width is not None:
        text += f" ± {e.half_width:.1f}"
    return text


def _hours(e: Estimate | None) -> str:
    return "—" if e is None else f"{e.mean:.1f}"


def _plain_pct(x: float | None) -> str:
    return "—" if x is None else f"{100.0 * x:.1f} %"


def _plain_sec(x: float | None) -> str:
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.1f} s"


def _any(e: Estimate | None) -> bool:
    """The figure is not zero on every day."""
    return e is not None and (e.mean != 0.0 or bool(e.half_width))


def hour_label(hour: int) -> str:
    day, h = divmod(hour, 24)
    return f"{h:02d}:00" + (f" +{day}d" if day else "")


def region_label(code: str) -> str:
    names = REGION_NAMES.get(code)
    if names is not None:
        return f"{code} {names[1]} {names[0]}"
    return f"{code} 未知 unknown" if code.endswith("UNKNOWN") else code


# -- blocks ----------------------------------------------------------------------------

Row = tuple[str, str, str]


def _caller_rows(f: Figures, target: str, erl: ErlangFigures | None) -> list[Row]:
    """The rows of a queue (or of all callers): what happened to the callers."""
    sent_away = _any(f["sent_away"])
    erl_offered = "" if erl is None else f"{erl.offered:.1f}"
    if _any(f["closed"]):
        rows: list[Row] = [("来电 callers", _num(f["callers"]), ""),
                           ("  关闭时段 closed (outside hours)", _num(f["closed"]), ""),
                           ("  排队 in line (offered)", _num(f["offered"]), erl_offered)]
    else:
        rows = [("来电 callers", _num(f["callers"]), erl_offered)]
    rows.append(("接通 answered", _num(f["answered"]), ""))
    if _any(f["answered_by_partner"]):
        rows.append(("  合作网点接通 by partner sites", _num(f["answered_by_partner"]), ""))
    rows.append(("放弃 abandoned", _num(f["abandoned"]), ""))
    if _any(f["exits"]):
        rows.append(("离队 left by an exit", _num(f["exits"]), ""))
        if _any(f["exits_ended"]):
            rows.append(("  其中结束 of which ended (voicemail, message)",
                         _num(f["exits_ended"]), ""))
    elif _any(f["exits_ended"]):  # a tally of callers: an exit to another queue is no end
        rows.append(("离队结束 ended by an exit (voicemail, message)",
                     _num(f["exits_ended"]), ""))
    if _any(f["unanswered_at_end"]):
        rows.append(("结束时仍在等 still waiting at the end", _num(f["unanswered_at_end"]), ""))
    erl_sl = "" if erl is None or not erl.offered else _plain_pct(erl.service_level)
    if sent_away:
        rows.append(("关闭/送走 closed or sent away", _num(f["sent_away"]), ""))
        rows.append((f"服务水平 service level (≤ {target}), 全部来电 all callers",
                     _pct(f["service_level_all"]), ""))
        rows.append(("  仅排队来电 callers in line only (as the wallboard counts)",
                     _pct(f["service_level"]), erl_sl))
    else:
        rows.append((f"服务水平 service level (≤ {target})", _pct(f["service_level"]),
                     erl_sl))
    has_erl = erl is not None and erl.offered > 0
    rows += [
        ("平均应答 ASA", _sec(f["asa"]), _plain_sec(erl.asa) if has_erl and erl else ""),
        ("需等待 P(wait)", _pct(f["p_wait"]),
         _plain_pct(erl.p_wait) if has_erl and erl else ""),
        ("放弃率 abandon rate", _pct(f["abandon_rate"]),
         _plain_pct(erl.abandon_rate) if has_erl and erl and erl.abandon_rate is not None
         else ""),
    ]
    if sent_away:
        rows.append(("送走率 sent away / callers", _pct(f["sent_away_rate"]), ""))
    return rows


def _block(title: str, rows: Sequence[Row], model: str) -> list[str]:
    head: list[tuple[str, str]] = [("", ""), ("模拟", "simulated")]
    if model:
        head.append(("模型", model))
        body = [list(r) for r in rows]
    else:
        body = [[r[0], r[1]] for r in rows]
    return [title, *_table(head, body)]


def _queue_title(q: QueueResult) -> str:
    e = q.erlang
    if e is not None:
        staff = str(e.agents_min) if e.agents_min == e.agents_max \
            else f"{e.agents_min}–{e.agents_max}"
        return (f"队列 queue {q.queue_id} — 单技能 single-skill, {staff} 名坐席 agents; "
                f"{e.model}, 处理时长 handle {e.handle:.0f} s "
                f"(振铃 ring + 通话 talk + 话后 wrap-up)")
    why = _NO_ERLANG.get(q.no_erlang or "", "")
    return (f"队列 queue {q.queue_id} — {len(q.pool)} 名坐席 agents "
            f"({why}: 无 Erlang 值 no Erlang figure)")


def _queue_block(reps: Replications, qid: str) -> list[str]:
    q = reps.first.queues[qid]
    f = reps.queue(qid)
    target = "—" if q.figures.sl_target is None else f"{q.figures.sl_target:g} s"
    e = q.erlang
    rows = _caller_rows(f, target, e)
    if _any(f["transferred_in"]):
        rows.insert(1, ("  由其他队列转入 moved in by other queues' exits",
                        _num(f["transferred_in"]), ""))
    rows.append(("平均处理 AHT (talk + wrap-up)", _sec(f["aht"]), ""))
    rows.append(("占用率 occupancy", _pct(f["occupancy"]),
                 "" if e is None else _plain_pct(e.occupancy)))
    if _any(f["rona"]):
        rows.append(("未接 ring-no-answer", _num(f["rona"]), ""))
    if _any(f["overflowed"]):
        rows.append(("转合作网点 sent to partner sites", _num(f["overflowed"]), ""))
    return _block(_queue_title(q), rows, "" if e is None else e.model)


def _all_block(reps: Replications) -> list[str]:
    targets = {q.figures.sl_target for q in reps.first.queues.values()}
    target = f"{targets.pop():g} s" if len(targets) == 1 and None not in targets \
        else "T, 各队列 each queue's"
    f = reps.callers()
    rows = _caller_rows(f, target, None)
    rows.append(("占用率 occupancy (all agents)", _pct(f["occupancy"]), ""))
    if _any(f["overflowed"]):
        rows.append(("转合作网点 sent to partner sites", _num(f["overflowed"]), ""))
    return _block("全部来电 all callers", rows, "")


def _sites_table(reps: Replications) -> list[str]:
    first = reps.first
    rows: list[list[str]] = []
    for sid in reps.own_sites:
        if sid not in first.groups:
            continue
        g = reps.group(sid)
        rows.append([sid, "自有 own", str(reps.group_sizes.get(sid, 0)), "—",
                     _num(g["answered"], ci=False), "—", _hours(g["staffed_hours"]),
                     _pct(g["occupancy"]), "—"])
    for sid in reps.partner_ids():
        p = reps.partner(sid)
        peak = max(r.sites[sid].peak for r in reps.results)
        rows.append([sid, "合作 partner", str(first.sites[sid].capacity),
                     _num(p["offered"], ci=False), _num(p["answered"], ci=False),
                     _num(p["rejected"], ci=False), "—", _pct(p["utilisation"]),
                     str(peak)])
    if not rows:
        return []
    head = [("站点", "site"), ("类型", "kind"), ("坐席/容量", "agents/capacity"),
            ("转入", "offered"), ("接通", "answered"), ("未接", "not taken"),
            ("在线时", "staffed h"), ("占用率", "occupancy"), ("峰值", "peak")]
    return ["按站点 by site (自有: 坐席占用率 own: agents' occupancy; "
            "合作: 容量占用率 partner: capacity held ÷ capacity open)",
            *_table(head, rows)]


def _tally_head(partners: bool) -> list[tuple[str, str]]:
    return [("来电", "callers"), ("接通", "answered"),
            *([("合作接通", "by partner")] if partners else []),
            ("放弃", "abandoned"), ("关闭/送走", "sent away"),
            ("服务水平(全部)", "SL all callers"), ("平均应答", "ASA")]


def _tally_cells(f: Figures, partners: bool) -> list[str]:
    return [_num(f["callers"], ci=False), _num(f["answered"], ci=False),
            *([_num(f["answered_by_partner"], ci=False)] if partners else []),
            _num(f["abandoned"], ci=False), _num(f["sent_away"], ci=False),
            _pct(f["service_level_all"]), _sec(f["asa"])]


def _regions_table(reps: Replications) -> list[str]:
    ids = reps.region_ids()
    if len(ids) < 2:
        return []  # one region (the default one, or a single province): all callers
    partners = bool(reps.partner_ids())
    rows = [[region_label(r), *_tally_cells(reps.region(r), partners)] for r in ids]
    return ["按地区 by region (来电省份 the caller's province)",
            *_table([("地区", "region"), *_tally_head(partners)], rows)]


def _hours_table(reps: Replications) -> list[str]:
    ids = reps.hour_ids()
    if not ids:
        return []
    partners = bool(reps.partner_ids())
    rows = []
    for h in ids:
        f = reps.hour(h)
        if not _any(f["callers"]):
            continue  # no caller in that hour on any day (agents finishing the last calls)
        rows.append([hour_label(h), *_tally_cells(f, partners), _hours(f["agents"]),
                     _pct(f["occupancy"], ci=False)])
    head = [("时段", "hour"), *_tally_head(partners), ("在线坐席", "agents"),
            ("占用率", "occupancy")]
    if not rows:
        return []
    return ["按小时 by hour (来电时刻 hour of arrival; 在线坐席: 平均在线人数 "
            "agents: mean number staffed; 无来电的小时不列 hours without callers left out)",
            *_table(head, rows)]


def _agents_table(reps: Replications) -> list[str]:
    first = reps.first
    rows: list[list[str]] = []

    def add(label: str, figs: Figures) -> None:
        rows.append([label, _hours(figs["staffed_hours"]), _hours(figs["busy_hours"]),
                     _pct(figs["occupancy"])])

    for qid, q in first.queues.items():
        days = [r.queues[qid].occupancy for r in reps.results]
        add(f"队列 queue {qid} ({len(q.pool)})", reps.agent_time(days))
    for g in sorted(first.groups):
        add(f"组 group {g}", reps.group(g))
    add(f"全部 all ({len(first.agents)})", reps.agent_time([r.overall for r in reps.results]))
    head = [("坐席", "agents"), ("在线时", "staffed h"), ("忙碌时", "busy h"),
            ("占用率", "occupancy")]
    return ["坐席 agents (在线: 已登录且所在站点营业 staffed: logged in while their site is "
            "open)", *_table(head, rows)]


def render(reps: Replications, title: str = "", *, verbose: bool = False) -> str:
    """The human-readable report of ``reps``."""
    first = reps.first
    lines: list[str] = []
    if title:
        lines.append(title)
    zh_day, en_day = _WEEKDAYS[first.date.weekday()]
    end = max(r.end for r in reps.results)
    counted = f"，计入自 counted from {fmt_clock(first.measure_from)}" \
        if first.measure_from > first.start else ""
    lines.append(f"日期 date {first.date.isoformat()} {zh_day} {en_day}, "
                 f"{fmt_clock(first.start)}–{fmt_clock(end)}{counted}")
    seeds = reps.seeds
    seed_text = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    notes = ["说明 notes"]
    if reps.n > 1:
        lines.append(f"{reps.n} 个独立模拟日 independent simulated days (种子 seeds "
                     f"{seed_text}): 平均值 ± 95 % 置信区间 mean ± 95 % confidence interval "
                     f"(见文末说明 see the notes at the end)")
        notes.append(f"  方法: 每个数字按天计算，取 {reps.n} 天的平均值 ± 95 % 置信区间的半宽"
                     f"（t 分布，自由度 {reps.n - 1}；百分比的 ± 为百分点）")
        notes.append(f"  method: each figure is computed per simulated day; shown: the mean "
                     f"over {reps.n} days ± the half-width of its 95 % confidence interval "
                     f"(Student's t, {reps.n - 1} degrees of freedom; ± of a percentage in "
                     f"percentage points). Counts in the tables without their interval: "
                     f"--json has them all")
    else:
        lines.append(f"1 个模拟日 one simulated day (种子 seed {seed_text}): 无置信区间 "
                     f"no confidence interval (use --replications 10)")
    if any(q.erlang is not None for q in first.queues.values()):
        notes.append("  Erlang: 单技能队列的解析值，按到达率和人数分段稳态计算 the analytic "
                     "figure of a single-skill queue, piecewise steady states")
    if verbose:
        eng = reps.engine()
        notes.append(f"  引擎 engine: {eng['events']} core events in "
                     f"{eng['wall_seconds']:.2f} s ({reps.n} days)")
    sections: list[list[str]] = []
    if len(first.queues) > 1:
        sections.append(_all_block(reps))
    sections += [_queue_block(reps, qid) for qid in first.queues]
    sections += [_sites_table(reps), _regions_table(reps), _hours_table(reps),
                 _agents_table(reps)]
    if len(notes) > 1:
        sections.append(notes)
    for section in sections:
        if section:
            lines.append("")
            lines += section
    return "\n".join(lines)

