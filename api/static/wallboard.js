// Hotline ACD wallboard: live over the WebSocket /api/v1/events, no build step.
//
// Token: open the page as  http://host:port/#token=<supervisor token>  (the fragment never
// reaches the server or its logs). ?token=... also works (the server blanks it in its
// logs). The token is kept in sessionStorage and removed from the address bar.
"use strict";

(function () {
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

  function conn(state, text) {
    $("#conn").dataset.state = state;
    $("#conn-text").textContent = text;
  }

  function mmss(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function pct(v) { return v === null || v === undefined ? "–" : Math.round(v * 100) + "%"; }

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

  function metric(label, field, cls) {
    const m = el("div", "metric");
    m.append(el("span", "label", label));
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
    w.append(wv, el("span", "label", "waiting"));
    const lw = el("div", "metric");
    const lwv = el("span", "wait ok", "0:00");
    lwv.dataset.field = "longest";
    lw.append(lwv, el("span", "label", "longest wait"));
    big.append(w, lw);
    const sl = el("div", "row");
    sl.append(metric("SL 15 min", "sl15", "sl"), metric("SL today", "sltoday", "sl"),
              metric("ASA 15 min", "asa"), metric("Abandoned 15 min", "ab15"));
    const ag = el("div", "row agents");
    ag.append(metric("Available", "ready", "ready"), metric("On call", "oncall", "oncall"),
              metric("Wrap-up", "wrap"), metric("Paused", "paused", "paused"),
              metric("Logged out", "out", "out"));
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
    f.waiting.textContent = String(q.waiting);
    const r = q.rolling_15m, d = q.today;
    f.sl15.textContent = pct(r.service_level);
    f.sl15.className = "value sl " + level(r.service_level, 0.8, 0.6);
    f.sltoday.textContent = pct(d.service_level);
    f.sltoday.className = "value sl " + level(d.service_level, 0.8, 0.6);
    f.asa.textContent = r.asa_seconds === null ? "–" : mmss(r.asa_seconds);
    f.ab15.textContent = String(r.abandoned);
    f.ready.textContent = String(q.agents.ready);
    f.oncall.textContent = String(q.agents.on_call + q.agents.ringing);
    f.wrap.textContent = String(q.agents.wrap_up);
    f.paused.textContent = String(q.agents.paused);
    f.out.textContent = String(q.agents.logged_out + q.agents.unavailable);
    f.today.textContent = "Today: " + d.offered + " offered · " + d.answered + " answered · " +
      d.abandoned + " abandoned · AHT " + (d.aht_seconds === null ? "–" : mmss(d.aht_seconds));
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
      if (e) e.textContent = String(counts[k] || 0);
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
      row.append(el("span", "name", s.name + (s.open ? "" : " (closed)")));
      const bar = el("div", "bar");
      const fill = el("div", "fill");
      fill.style.width = Math.min(100, Math.round(share * 100)) + "%";
      bar.append(fill);
      const count = el("span", "count", s.active + " / " + s.capacity);
      count.dataset.field = "active";
      row.append(bar, count);
      row.title = s.offered + " offered · " + s.answered + " answered · " + s.rejected +
        " rejected";
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
      tr.append(el("td", "", r.name || r.region), el("td", "", String(r.calls)),
                el("td", "", String(r.answered)), el("td", "", String(r.abandoned)),
                el("td", r.overflowed ? "over" : "", String(r.overflowed)));
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

  function renderEvent(msg) {
    const d = msg.data || {};
    const what = {
      call_waiting: "call waiting in " + d.queue,
      call_offered: "offered to agent " + d.agent,
      call_connected: "answered by " + (d.agent || "partner " + d.site) + " after " +
        mmss(d.wait || 0),
      call_completed: "completed (" + (d.agent || "partner " + d.site) + ")",
      call_overflowed: "sent to partner " + d.site + (d.region ? " (" + d.region + ")" : "") +
        " after " + mmss(d.wait || 0),
      partner_rejected: "partner " + d.site + " did not take a call (" + d.dialstatus + ")",
      call_abandoned: "abandoned in " + d.queue + " after " + mmss(d.wait || 0),
      call_requeued: "back in queue " + d.queue,
      call_transferred: "moved from " + d.from + " to " + d.queue,
      call_priority: "priority changed to " + d.priority,
      agent_no_answer: "agent " + d.agent + " did not answer",
      agent: "agent " + d.agent + ": " + d.status + (d.reason ? " (" + d.reason + ")" : "") +
        ", " + d.state,
    }[msg.name];
    if (!what) return;
    events.unshift(new Date().toLocaleTimeString([], { hour12: false }) + "  " + what);
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
    } else if (msg.type === "summary") {
      (msg.queues || []).forEach(renderQueue);
      renderCalls(msg.calls || {});
      renderPartners(msg);
    } else if (msg.type === "event") {
      renderEvent(msg);
    }
  }

  function connect() {
    const token = takeToken();
    if (!token) {
      notice("No token: open this page as " + location.origin + "/#token=<supervisor token>");
      conn("down", "no token");
      return;
    }
    conn("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(scheme + "//" + location.host + "/api/v1/events",
                         ["acd.v1", "bearer." + token]);
    } catch (e) {
      notice("Cannot open the event stream: " + e);
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
        notice("The token was refused (401). Check the #token= in the address.");
        conn("down", "unauthorized");
        return retry(30000);
      }
      if (ev.code === 4429) {
        notice("Too many refused tokens from this address (429): trying again in a minute.");
        conn("down", "throttled");
        return retry(60000);
      }
      conn("down", "reconnecting…");
      retry(backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  function retry(delay) {
    setTimeout(connect, delay * (0.8 + Math.random() * 0.4));
  }

  setInterval(() => {
    $("#clock").textContent = new Date().toLocaleTimeString([], { hour12: false });
    tiles.forEach(tickQueue);
  }, 1000);
  connect();
})();
