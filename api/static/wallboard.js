// Hotline ACD wallboard (热线实时看板): live over the WebSocket /api/v1/events, no build
// step. Chinese first, English second.
//
// Token: open the page as  http://host:port/#token=<supervisor token>  (the fragment never
// reaches the server or its logs). ?token=... also works (the server blanks it in its
// logs). The token is kept in sessionStorage and removed from the address bar.
"use strict";

(function () {
  // Every string Chinese (zh-CN) first, English after it; dates, times and numbers in
  // Chinese conventions (24-hour clock, 2026年3月2日星期一, 1,234, 85%).
  const LOCALE = "zh-CN";
  const T = {
    waiting: ["排队", "Waiting"],
    longest: ["最长等待", "Longest wait"],
    ewt: ["新来电预计等待", "Expected wait"],
    sl15: ["服务水平 15分钟", "SL 15 min"],
    sltoday: ["服务水平 今日", "SL today"],
    asa: ["平均应答 15分钟", "ASA 15 min"],
    ab15: ["放弃 15分钟", "Abandoned 15 min"],
    ready: ["空闲", "Available"],
    oncall: ["通话中", "On call"],
    wrap: ["话后整理", "Wrap-up"],
    paused: ["暂停", "Paused"],
    out: ["未登录", "Logged out"],
    today: ["今日", "Today"],
    offered: ["来电", "offered"],
    answered: ["接通", "answered"],
    abandoned: ["放弃", "abandoned"],
    aht: ["平均处理时长", "AHT"],
    closed: ["休息中", "closed"],
    live: ["实时", "live"],
    offline: ["离线", "offline"],
    connecting: ["连接中…", "connecting…"],
    reconnecting: ["重连中…", "reconnecting…"],
    unauthorized: ["未授权", "unauthorized"],
    throttled: ["已限流", "throttled"],
    notoken: ["无令牌", "no token"],
    cbdelay: ["回拨用时（请求至接通）", "request to answer"],
    cbtold: ["告知等待", "EWT told"],
    cbnone: ["今日暂无接通的回拨", "no callback answered today"],
  };
  //: Provinces (ISO 3166-2:CN) by their Chinese short names.
  const REGION_ZH = {
    "CN-BJ": "北京", "CN-TJ": "天津", "CN-HE": "河北", "CN-SX": "山西", "CN-NM": "内蒙古",
    "CN-LN": "辽宁", "CN-JL": "吉林", "CN-HL": "黑龙江", "CN-SH": "上海", "CN-JS": "江苏",
    "CN-ZJ": "浙江", "CN-AH": "安徽", "CN-FJ": "福建", "CN-JX": "江西", "CN-SD": "山东",
    "CN-HA": "河南", "CN-HB": "湖北", "CN-HN": "湖南", "CN-GD": "广东", "CN-GX": "广西",
    "CN-HI": "海南", "CN-CQ": "重庆", "CN-SC": "四川", "CN-GZ": "贵州", "CN-YN": "云南",
    "CN-XZ": "西藏", "CN-SN": "陕西", "CN-GS": "甘肃", "CN-QH": "青海", "CN-NX": "宁夏",
    "CN-XJ": "新疆", "CN-TW": "台湾", "CN-HK": "香港", "CN-MO": "澳门", "CN-UNKNOWN": "未知",
  };
  const NUM = new Intl.NumberFormat(LOCALE);
  const PCT = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 0 });
  const TIME = new Intl.DateTimeFormat(LOCALE, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const DATE = new Intl.DateTimeFormat(LOCALE, {
    year: "numeric", month: "long", day: "numeric", weekday: "long" });

  function both(key) { return T[key][0] + " · " + T[key][1]; }
  function num(n) { return NUM.format(n || 0); }

  const $ = (sel, root) => (root || document).querySelector(sel);
  const queuesEl = $("#queues");
  const tiles = new Map(); // queue id -> {el, fields, data, at}
  const events = [];
  let backoff = 1000;

  function takeToken() {
    const frag = new URLSearchParams(location.hash.replace(/^#/, ""));
    const query = new URLSearchParams(location.search);
    const token = frag.get("token") || query.get("token");
    if (token) {
      sessionStorage.setItem("acd-token", token);
      query.delete("token");
      const q = query.toString();
      history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
      return token;
    }
    return sessionStorage.getItem("acd-token");
  }

  function notice(text) {
    const el = $("#notice");
    el.textContent = text || "";
    el.classList.toggle("show", !!text);
  }

  function conn(state, key) {
    $("#conn").dataset.state = state;
    $("#conn-text").textContent = both(key);
  }

  function mmss(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function pct(v) { return v === null || v === undefined ? "–" : PCT.format(v); }

  function level(value, good, fair) { // higher is better
    if (value === null || value === undefined) return "";
    return value >= good ? "ok" : value >= fair ? "warn" : "bad";
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function label(key) { // "排队" + a smaller "Waiting"
    const l = el("span", "label", T[key][0]);
    const en = el("span", "en", T[key][1]);
    en.lang = "en";
    l.append(en);
    return l;
  }

  function metric(key, field, cls) {
    const m = el("div", "metric");
    m.append(label(key));
    const v = el("span", "value" + (cls ? " " + cls : ""), "–");
    v.dataset.field = field;
    m.append(v);
    return m;
  }

  function tile(q) {
    const t = el("section", "tile");
    t.dataset.queue = q.id;
    t.append(el("h2", "", q.name));
    const big = el("div", "big");
    const w = el("div", "metric");
    const wv = el("span", "waiting", "0");
    wv.dataset.field = "waiting";
    w.append(wv, label("waiting"));
    const lw = el("div", "metric");
    const lwv = el("span", "wait ok", "0:00");
    lwv.dataset.field = "longest";
    lw.append(lwv, label("longest"));
    const ew = el("div", "metric");
    const ewv = el("span", "wait", "–");
    ewv.dataset.field = "ewt";
    ew.append(ewv, label("ewt"));
    big.append(w, lw, ew);
    const sl = el("div", "row");
    sl.append(metric("sl15", "sl15", "sl"), metric("sltoday", "sltoday", "sl"),
              metric("asa", "asa"), metric("ab15", "ab15"));
    const ag = el("div", "row agents");
    ag.append(metric("ready", "ready", "ready"), metric("oncall", "oncall", "oncall"),
              metric("wrap", "wrap"), metric("paused", "paused", "paused"),
              metric("out", "out", "out"));
    const today = el("div", "today");
    today.dataset.field = "today";
    t.append(big, sl, ag, today);
    queuesEl.append(t);
    const fields = {};
    t.querySelectorAll("[data-field]").forEach((f) => { fields[f.dataset.field] = f; });
    return { el: t, fields: fields, data: q, at: performance.now() };
  }

  function renderQueue(q) {
    let t = tiles.get(q.id);
    if (!t) { t = tile(q); tiles.set(q.id, t); }
    t.data = q;
    t.at = performance.now();
    const f = t.fields;
    f.waiting.textContent = num(q.waiting);
    f.ewt.textContent = q.ewt_seconds === null || q.ewt_seconds === undefined
      ? "–" : mmss(q.ewt_seconds);
    const r = q.rolling_15m, d = q.today;
    f.sl15.textContent = pct(r.service_level);
    f.sl15.className = "value sl " + level(r.service_level, 0.8, 0.6);
    f.sltoday.textContent = pct(d.service_level);
    f.sltoday.className = "value sl " + level(d.service_level, 0.8, 0.6);
    f.asa.textContent = r.asa_seconds === null ? "–" : mmss(r.asa_seconds);
    f.ab15.textContent = num(r.abandoned);
    f.ready.textContent = num(q.agents.ready);
    f.oncall.textContent = num(q.agents.on_call + q.agents.ringing);
    f.wrap.textContent = num(q.agents.wrap_up);
    f.paused.textContent = num(q.agents.paused);
    f.out.textContent = num(q.agents.logged_out + q.agents.unavailable);
    const aht = d.aht_seconds === null ? "–" : mmss(d.aht_seconds);
    f.today.textContent = T.today[0] + "：" + T.offered[0] + " " + num(d.offered) + " · " +
      T.answered[0] + " " + num(d.answered) + " · " + T.abandoned[0] + " " +
      num(d.abandoned) + " · " + T.aht[0] + " " + aht;
    const en = el("span", "en", T.today[1] + ": " + num(d.offered) + " " + T.offered[1] +
      " · " + num(d.answered) + " " + T.answered[1] + " · " + num(d.abandoned) + " " +
      T.abandoned[1] + " · " + T.aht[1] + " " + aht);
    en.lang = "en";
    f.today.append(en);
    tickQueue(t);
  }

  function tickQueue(t) {
    const q = t.data;
    const f = t.fields.longest;
    const longest = q.waiting > 0
      ? q.longest_wait_seconds + (performance.now() - t.at) / 1000 : 0;
    f.textContent = mmss(longest);
    const target = q.sl_target_seconds || 20;
    f.className = "wait " + (longest < target * 0.5 ? "ok" : longest < target ? "warn" : "bad");
  }

  function renderCalls(counts) {
    for (const k of ["waiting", "offered", "connected"]) {
      const e = document.querySelector('[data-calls="' + k + '"]');
      if (e) e.textContent = num(counts[k]);
    }
  }

  function renderSites(sites) {
    const partners = (sites || []).filter((s) => s.kind === "partner");
    const box = $("[data-sites]");
    box.replaceChildren(...partners.map((s) => {
      const row = el("div", "site");
      row.dataset.site = s.id;
      const share = s.capacity > 0 ? s.active / s.capacity : 0;
      if (share >= 1) row.classList.add("full");
      else if (share >= 0.75) row.classList.add("busy");
      if (!s.open) row.classList.add("closed");
      row.append(el("span", "name", (s.name || s.id) +
        (s.open ? "" : "（" + both("closed") + "）")));
      const bar = el("div", "bar");
      const fill = el("div", "fill");
      fill.style.width = Math.min(100, Math.round(share * 100)) + "%";
      bar.append(fill);
      const count = el("span", "count", num(s.active) + " / " + num(s.capacity));
      count.dataset.field = "active";
      row.append(bar, count);
      row.title = "来电 " + num(s.offered) + " · 接通 " + num(s.answered) + " · 拒接 " +
        num(s.rejected) + "  (" + num(s.offered) + " offered · " + num(s.answered) +
        " answered · " + num(s.rejected) + " rejected)";
      return row;
    }));
    return partners.length;
  }

  function renderRegions(regions) {
    const rows = (regions || []).filter((r) => r.calls > 0)
      .sort((a, b) => b.calls - a.calls || a.region.localeCompare(b.region)).slice(0, 12);
    $("[data-regions]").replaceChildren(...rows.map((r) => {
      const tr = el("tr");
      tr.dataset.region = r.region;
      const name = el("td", "", REGION_ZH[r.region] || r.region);
      if (r.name) {
        const en = el("span", "en", r.name);
        en.lang = "en";
        name.append(en);
      }
      tr.append(name, el("td", "", num(r.calls)),
                el("td", "", num(r.answered)), el("td", "", num(r.abandoned)),
                el("td", r.overflowed ? "over" : "", num(r.overflowed)));
      return tr;
    }));
    return rows.length;
  }

  function renderPartners(msg) {
    const sites = renderSites(msg.sites);
    const regions = renderRegions(msg.regions);
    $("#sites").hidden = sites === 0;
    $("#regions").hidden = regions === 0;
    $("#partners").classList.toggle("show", sites + regions > 0);
  }

  function sumToday(queues, field) {
    return (queues || []).reduce((n, q) => n + ((q.today || {})[field] || 0), 0);
  }

  function meanOf(queues, mean, count) { // the queues' means weighted by their counts
    let n = 0, total = 0;
    (queues || []).forEach((q) => {
      const d = q.today || {};
      if (d[count] > 0 && d[mean] !== null && d[mean] !== undefined) {
        n += d[count];
        total += d[mean] * d[count];
      }
    });
    return n > 0 ? total / n : null;
  }

  function setCb(key, text) {
    const e = document.querySelector('[data-cb="' + key + '"]');
    if (e) e.textContent = text;
    return e;
  }

  function renderCallbacks(msg) {
    const box = $("#callbacks");
    const live = msg.callbacks;
    const queues = msg.queues || [];
    const requested = sumToday(queues, "callbacks_requested");
    box.hidden = !live && requested === 0;
    if (box.hidden) return false;
    setCb("waiting", num((live || {}).waiting));
    setCb("dialing", num(((live || {}).dialing || 0) + ((live || {}).connected || 0)));
    setCb("requested", num(requested));
    setCb("completed", num(sumToday(queues, "callbacks_completed")));
    const failed = sumToday(queues, "callbacks_failed");
    setCb("failed", num(failed)).className = "value" + (failed > 0 ? " bad" : "");
    setCb("cancelled", num(sumToday(queues, "callbacks_cancelled")));
    // the promise against what happened: mean request → answer, and for the callers
    // told an expected wait, that EWT next to their own delay
    const delay = meanOf(queues, "callback_delay_seconds", "callbacks_answered");
    const told = meanOf(queues, "callback_told_ewt_seconds", "callbacks_told");
    const toldDelay = meanOf(queues, "callback_told_delay_seconds", "callbacks_told");
    const p = setCb("promise", "");
    if (delay === null) {
      p.append(document.createTextNode(both("cbnone")));
      return true;
    }
    const d = el("b", "", mmss(delay));
    d.dataset.cb = "delay";
    p.append(document.createTextNode(T.cbdelay[0] + " "), d);
    if (told !== null && toldDelay !== null) {
      const e = el("b", "", mmss(told));
      e.dataset.cb = "told";
      const td = el("b", toldDelay > told ? "late" : "", mmss(toldDelay));
      td.dataset.cb = "told-delay";
      p.append(document.createTextNode(" · " + T.cbtold[0] + " "), e,
               document.createTextNode("（实际 "), td, document.createTextNode("）"));
    }
    const en = el("span", "en", T.cbdelay[1] + " " + mmss(delay) + (told !== null &&
      toldDelay !== null ? " · " + T.cbtold[1] + " " + mmss(told) + " (actual " +
      mmss(toldDelay) + ")" : ""));
    en.lang = "en";
    p.append(en);
    return true;
  }

  function renderCampaigns(campaigns) {
    const rows = campaigns || [];
    $("[data-campaigns]").replaceChildren(...rows.map((c) => {
      const tr = el("tr");
      tr.dataset.campaign = c.campaign;
      const outcomes = Object.keys(c.outcomes || {}).sort()
        .map((k) => k + " " + num(c.outcomes[k])).join(" · ");
      const cells = [el("td", "", c.campaign), el("td", "", num(c.contacts)),
                     el("td", "", num(c.attempted)), el("td", "", num(c.reached)),
                     el("td", "outcomes", outcomes || "–")];
      ["name", "contacts", "attempted", "reached", "outcomes"].forEach((f, i) => {
        cells[i].dataset.field = f;
      });
      tr.append(...cells);
      return tr;
    }));
    $("#campaigns").hidden = rows.length === 0;
    return rows.length > 0;
  }

  function renderOutbound(msg) {
    const callbacks = renderCallbacks(msg);
    const campaigns = renderCampaigns(msg.campaigns);
    $("#outbound").classList.toggle("show", callbacks || campaigns);
  }

  function who(d) { return d.agent ? "坐席 " + d.agent : "合作网点 " + d.site; }
  function whoEn(d) { return d.agent ? "agent " + d.agent : "partner " + d.site; }

  function renderEvent(msg) { // one line: Chinese · English
    const d = msg.data || {};
    const wait = mmss(d.wait || 0);
    // a campaign's attempt is a callback to the dialler: named apart on the wall
    const cb = String(d.callback_id || "").startsWith("cmp-")
      ? ["外呼", "campaign call"] : ["回拨", "callback"];
    const what = {
      call_waiting: ["来电排队 " + d.queue, "call waiting in " + d.queue],
      call_offered: ["振铃 坐席 " + d.agent, "offered to agent " + d.agent],
      call_connected: [who(d) + " 接通，等待 " + wait,
                       "answered by " + whoEn(d) + " after " + wait],
      call_completed: ["通话结束（" + who(d) + "）", "completed (" + whoEn(d) + ")"],
      call_overflowed: ["转合作网点 " + d.site + (d.region ? "（" +
                          (REGION_ZH[d.region] || d.region) + "）" : "") + "，等待 " + wait,
                        "sent to partner " + d.site + (d.region ? " (" + d.region + ")" : "") +
                          " after " + wait],
      partner_rejected: ["合作网点 " + d.site + " 未接（" + d.dialstatus + "）",
                         "partner " + d.site + " did not take a call (" + d.dialstatus + ")"],
      call_abandoned: ["来电放弃 " + d.queue + "，等待 " + wait,
                       "abandoned in " + d.queue + " after " + wait],
      call_requeued: ["重新排队 " + d.queue, "back in queue " + d.queue],
      call_transferred: ["由 " + d.from + " 转至 " + d.queue,
                         "moved from " + d.from + " to " + d.queue],
      call_priority: ["优先级改为 " + d.priority, "priority changed to " + d.priority],
      agent_no_answer: ["坐席 " + d.agent + " 未应答", "agent " + d.agent + " did not answer"],
      callback_requested: [cb[0] + "请求 " + d.queue, cb[1] + " requested in " + d.queue],
      callback_dialing: [cb[0] + "拨号（坐席 " + d.agent + "）",
                         "calling (" + cb[1] + ", agent " + d.agent + ")"],
      callback_attempt: [cb[0] + "未接通（" + d.status + "）",
                         cb[1] + " not reached (" + d.status + ")"],
      callback_finished: [cb[0] + "结束：" + ({ completed: "完成", failed: "失败",
                            cancelled: "取消" }[d.outcome] || d.outcome),
                          cb[1] + " " + d.outcome],
      agent: ["坐席 " + d.agent + "：" + d.status + (d.reason ? "（" + d.reason + "）" : "") +
                "，" + d.state,
              "agent " + d.agent + ": " + d.status + (d.reason ? " (" + d.reason + ")" : "") +
                ", " + d.state],
    }[msg.name];
    if (!what) return;
    events.unshift(TIME.format(new Date()) + "  " + what[0] + " · " + what[1]);
    events.length = Math.min(events.length, 5);
    const ul = $("#events");
    ul.replaceChildren(...events.map((t) => el("li", "", t)));
  }

  function onMessage(msg) {
    if (msg.type === "snapshot") {
      queuesEl.replaceChildren();
      tiles.clear();
      (msg.queues || []).forEach(renderQueue);
      const c = msg.calls || { waiting: [], active: [] };
      renderCalls({
        waiting: c.waiting.length,
        offered: c.active.filter((x) => x.state === "offered").length,
        connected: c.active.filter((x) => x.state === "connected").length,
      });
      renderPartners(msg);
      renderOutbound(msg);
    } else if (msg.type === "summary") {
      (msg.queues || []).forEach(renderQueue);
      renderCalls(msg.calls || {});
      renderPartners(msg);
      renderOutbound(msg);
    } else if (msg.type === "event") {
      renderEvent(msg);
    }
  }

  function connect() {
    const token = takeToken();
    if (!token) {
      notice("没有令牌：请以 " + location.origin + "/#token=<主管令牌> 打开本页 · " +
             "No token: open this page as " + location.origin + "/#token=<supervisor token>");
      conn("down", "notoken");
      return;
    }
    conn("connecting", "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(scheme + "//" + location.host + "/api/v1/events",
                         ["acd.v1", "bearer." + token]);
    } catch (e) {
      notice("无法打开事件流 · Cannot open the event stream: " + e);
      return retry(10000);
    }
    ws.onopen = () => { backoff = 1000; };
    ws.onmessage = (ev) => {
      conn("live", "live");
      notice("");
      try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); }
    };
    ws.onclose = (ev) => {
      if (ev.code === 4401) {
        notice("令牌被拒绝（401），请检查地址中的 #token= · " +
               "The token was refused (401). Check the #token= in the address.");
        conn("down", "unauthorized");
        return retry(30000);
      }
      if (ev.code === 4429) {
        notice("此地址被拒绝的令牌过多（429），一分钟后重试 · " +
               "Too many refused tokens from this address (429): trying again in a minute.");
        conn("down", "throttled");
        return retry(60000);
      }
      conn("down", "reconnecting");
      retry(backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  function retry(delay) {
    setTimeout(connect, delay * (0.8 + Math.random() * 0.4));
  }

  function tickClock() {
    const now = new Date();
    $("#clock").textContent = TIME.format(now);
    $("#date").textContent = DATE.format(now);
  }

  tickClock();
  setInterval(() => {
    tickClock();
    tiles.forEach(tickQueue);
  }, 1000);
  connect();
})();
