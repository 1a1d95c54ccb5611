// Hotline ACD reports page (zh-CN first, English second). No build step, no library:
// charts are SVG rendered by the server (/api/v1/reports/chart.svg).
//
// Token: open as  /reports#token=<supervisor token>  (the fragment never reaches the
// server); kept in sessionStorage like the wallboard's.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  let lang = localStorage.getItem("acd-lang") || "zh";
  const T = {
    zh: { period: "时段", key: "对象", offered: "呼入", answered: "接通", abandoned: "放弃",
          abandoned_short: "短放弃", service_level: "服务水平", asa: "平均应答(秒)",
          aht: "平均处理(秒)", abandon_rate: "放弃率", rona_rate: "未接率",
          partner_share: "合作方占比", partner_asa: "合作方应答(秒)", wait_max: "最长等待(秒)",
          overflowed: "溢出", exited: "离开", agent: "坐席", handled: "处理",
          occupancy: "占用率", staffed: "在线(分)", paused: "暂停(分)", pauses: "暂停原因",
          rona: "未接", entry: "进线时间", caller: "主叫", queue: "队列", outcome: "结果",
          wait: "等待(秒)", talk: "通话(秒)", recording: "录音", play: "播放",
          download: "下载", side: "", actual: "实际", replay: "重放", notoken: "请用 #token=<令牌> 打开本页", failed: "查询失败：",
          total: "合计", callbacks_requested: "回拨请求", callbacks_completed: "完成",
          callbacks_failed: "失败", callbacks_cancelled: "取消",
          callbacks_answered: "客户接通", callback_delay_mean: "请求至接通(秒)" },
    en: { period: "Period", key: "Key", offered: "Offered", answered: "Answered",
          abandoned: "Abandoned", abandoned_short: "Short aband.", service_level: "SL",
          asa: "ASA (s)", aht: "AHT (s)", abandon_rate: "Aband. rate", rona_rate: "RONA rate",
          partner_share: "Partner share", partner_asa: "Partner ASA (s)",
          wait_max: "Longest wait (s)", overflowed: "Overflowed", exited: "Exits",
          agent: "Agent", handled: "Handled", occupancy: "Occupancy",
          staffed: "Staffed (min)", paused: "Paused (min)", pauses: "Pause reasons",
          rona: "RONA", entry: "Entry", caller: "Caller", queue: "Queue",
          outcome: "Outcome", wait: "Wait (s)", talk: "Talk (s)", recording: "Recording",
          play: "Play", download: "Download", side: "", actual: "Actual",
          replay: "Replay", notoken: "Open this page as #token=<token>",
          failed: "Query failed: ", total: "Total",
          callbacks_requested: "Callbacks requested", callbacks_completed: "Completed",
          callbacks_failed: "Failed", callbacks_cancelled: "Cancelled",
          callbacks_answered: "Customer answered",
          callback_delay_mean: "Request to answer (s)" },
  };
  const t = (k) => (T[lang] && T[lang][k]) || k;

  function takeToken() {
    const frag = new URLSearchParams(location.hash.replace(/^#/, ""));
    const token = frag.get("token");
    if (token) {
      sessionStorage.setItem("acd-token", token);
      history.replaceState(null, "", location.pathname + location.search);
      return token;
    }
    return sessionStorage.getItem("acd-token");
  }
  const token = takeToken();

  function notice(text) { $("#notice").textContent = text || ""; }

  async function get(path, as) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    if (!r.ok) throw new Error(r.status + " " + (await r.text()).slice(0, 200));
    return as === "text" ? r.text() : as === "blob" ? r.blob() : r.json();
  }

  function params(extra) {
    const f = new FormData($("#query"));
    const p = new URLSearchParams();
    for (const k of ["from", "to", "by", "granularity"]) p.set(k, f.get(k));
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }

  const num = (v, d) => v === null || v === undefined ? "–" : Number(v).toFixed(d || 0);
  const pct = (v) => v === null || v === undefined ? "–" : Math.round(v * 100) + "%";

  function table(el, columns, rows) {
    const head = document.createElement("tr");
    for (const [key] of columns) {
      const th = document.createElement("th");
      th.textContent = t(key);
      head.appendChild(th);
    }
    $("thead", el).replaceChildren(head);
    const body = rows.map((row) => {
      const tr = document.createElement("tr");
      for (const [key, fmt] of columns) {
        const td = document.createElement("td");
        const v = fmt(row[key], row);
        if (v instanceof Node) td.appendChild(v); else td.textContent = v;
        tr.appendChild(td);
      }
      return tr;
    });
    $("tbody", el).replaceChildren(...body);
  }

  const text = (v) => v === null || v === undefined ? "" : String(v);
  const REPORT = [["period", (v, r) => r.label], ["key", text], ["offered", num],
    ["answered", num], ["abandoned", num], ["abandoned_short", num],
    ["service_level", pct], ["asa", (v) => num(v, 1)], ["aht", (v) => num(v, 1)],
    ["abandon_rate", pct], ["wait_max", (v) => num(v, 1)], ["rona_rate", pct],
    ["overflowed", num], ["partner_share", pct], ["partner_asa", (v) => num(v, 1)],
    ["exited", num]];
  const CALLBACKS = [["period", (v, r) => r.label], ["key", text],
    ["callbacks_requested", num], ["callbacks_completed", num], ["callbacks_failed", num],
    ["callbacks_cancelled", num], ["callbacks_answered", num],
    ["callback_delay_mean", (v) => num(v, 1)]];
  const AGENTS = [["period", (v, r) => r.label], ["agent", text], ["answered", num],
    ["handled", num], ["aht", (v) => num(v, 1)], ["rona", num], ["rona_rate", pct],
    ["staffed", (v) => num(v / 60, 1)], ["paused", (v) => num(v / 60, 1)],
    ["occupancy", pct],
    ["pauses", (v) => Object.entries(v || {}).map(([k, s]) => k + " " + num(s / 60, 1))
      .join(", ")]];

  function recordingCell(v, row) {
    if (!v || !v.file) return "";
    const span = document.createElement("span");
    const play = document.createElement("button");
    play.type = "button";
    play.textContent = t("play");
    play.addEventListener("click", async () => {
      try {
        const blob = await get("/api/v1/reports/recordings/" + encodeURIComponent(row.call_id)
          + "?leg=" + row.leg, "blob");
        const player = $("#player");
        player.hidden = false;
        player.src = URL.createObjectURL(blob);
        player.play();
      } catch (e) { notice(t("failed") + e.message); }
    });
    const dl = document.createElement("button");
    dl.type = "button";
    dl.textContent = t("download");
    dl.addEventListener("click", async () => {
      try {
        const blob = await get("/api/v1/reports/recordings/" + encodeURIComponent(row.call_id)
          + "?leg=" + row.leg + "&download=true", "blob");
        const a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = row.call_id.replace(/[^A-Za-z0-9._-]/g, "_") + ".wav";
        a.click();
      } catch (e) { notice(t("failed") + e.message); }
    });
    span.append(play, " ", dl);
    return span;
  }
  const RECORDS = [["entry", (v, r) => new Date(r.entry_time * 1000).toLocaleString()],
    ["caller", text], ["queue", text], ["outcome", text], ["agent", (v, r) => r.agent || r.site || ""],
    ["wait", (v) => num(v, 1)], ["talk", (v) => num(v, 1)], ["recording", recordingCell]];

  async function show() {
    if (!token) { notice(t("notoken")); return; }
    notice("");
    const metric = new FormData($("#query")).get("metric");
    try {
      const [report, callbacks, agents, records, svg] = await Promise.all([
        get("/api/v1/reports/calls?" + params()),
        get("/api/v1/reports/callbacks?" + params()),
        get("/api/v1/reports/agents?" + params()),
        get("/api/v1/reports/records?" + params({ limit: 200 })),
        get("/api/v1/reports/chart.svg?" + params({ metric }), "text"),
      ]);
      const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
      $("#chart").replaceChildren(document.importNode(doc.documentElement, true));
      table($("#report"), REPORT, [...report.rows,
        Object.assign({}, report.total, { label: t("total") })]);
      table($("#callbacks"), CALLBACKS, [...callbacks.rows,
        Object.assign({}, callbacks.total, { label: t("total") })]);
      table($("#agents"), AGENTS, agents.rows);
      table($("#records"), RECORDS, records.records);
    } catch (e) { notice(t("failed") + e.message); }
  }

  async function replay() {
    try {
      const day = new FormData($("#query")).get("from");
      const r = await get("/api/v1/reports/replay?day=" + encodeURIComponent(day));
      const rows = [];
      for (const [queue, sides] of Object.entries(r.queues)) {
        for (const side of ["actual", "replay"]) {
          rows.push(Object.assign({ queue: queue === "*" ? t("total") : queue,
            side: t(side) }, sides[side]));
        }
      }
      table($("#replayed"), [["queue", text], ["side", text], ["offered", num],
        ["answered", num], ["abandoned", num], ["service_level", pct],
        ["asa", (v) => num(v, 1)], ["abandon_rate", pct], ["partner_share", pct]], rows);
    } catch (e) { notice(t("failed") + e.message); }
  }

  async function csv(what) {
    try {
      const report = what === "callbacks" ? "callbacks" : "calls";
      const blob = await get("/api/v1/reports/" + report + "?" + params({ format: "csv" }),
                             "blob");
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = report === "calls" ? "report.csv" : "callbacks.csv";
      a.click();
    } catch (e) { notice(t("failed") + e.message); }
  }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const el of document.querySelectorAll("[data-zh]")) el.textContent = el.dataset[lang];
    $("#lang").textContent = lang === "zh" ? "English" : "中文";
  }

  document.addEventListener("DOMContentLoaded", () => {
    // ?from=&to=&by=&granularity= in the address prefill the form (a link to a report)
    const today = new Date().toISOString().slice(0, 10);
    const asked = new URLSearchParams(location.search);
    for (const n of ["from", "to"]) $("[name=" + n + "]").value = asked.get(n) || today;
    for (const n of ["by", "granularity", "metric"]) {
      if (asked.get(n)) $("[name=" + n + "]").value = asked.get(n);
    }
    $("#query").addEventListener("submit", (e) => { e.preventDefault(); show(); });
    $("#csv").addEventListener("click", () => csv("calls"));
    $("#callbacks-csv").addEventListener("click", () => csv("callbacks"));
    $("#replay").addEventListener("click", replay);
    $("#lang").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      localStorage.setItem("acd-lang", lang);
      applyLang();
      show();
    });
    applyLang();
    show();
  });
})();
