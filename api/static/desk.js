// The agent desktop: sign in with id + PIN, status (ready / pause with a reason / log
// out, time in status), the offered call's screen pop (from the event stream, before the
// phone rings), the caller's previous contacts, wrap-up (countdown, end, extend,
// disposition and note), during a call: transfer the caller to a queue (it keeps its
// place) and request a callback; a callback's or campaign attempt's context in the pop.
// Keyboard: Alt+R ready, Alt+P pause; every control is tabbable.
"use strict";

(() => {
  const { el, text, duration, call } = ACD;
  const $ = (id) => document.getElementById(id);
  const PRESENCE = { ready: "就绪 Ready", paused: "暂停 Paused", logged_out: "已签出 Logged out",
    ringing: "振铃 Ringing", on_call: "通话中 On call", wrap_up: "话后处理 Wrap-up",
    unavailable: "话机不可用 Phone unavailable" };
  const SOURCE = { lookup: "号码归属 number lookup", ivr: "按键区号 area code keyed",
    override: "指定 override", default: "默认 default" };
  let me = null, agent = null, clockOffset = 0, desk = null, stream = null, lastCall = null;
  window.acdPops = [];  // [{call, context, receivedAt (performance.now())}] for tests and benchmarks

  function notice(msg) { text("notice", msg); }

  function showSignedIn(on) {
    $("signin-box").hidden = on;
    $("desk").hidden = !on;
    $("signout").hidden = !on;
  }

  function renderAgent() {
    if (!agent) return;
    const s = $("status");
    s.dataset.presence = agent.presence;
    s.textContent = PRESENCE[agent.presence] || agent.presence;
    text("reason", agent.status === "paused" ? "(" + agent.reason + ")" : "");
    const wrapping = agent.state === "wrap_up";
    $("wrap").hidden = !(wrapping || (lastCall && agent.state === "on_call"));
    showActions();
    if (!wrapping && agent.state !== "ringing" && agent.state !== "on_call" &&
        !$("pop").hidden && $("pop").dataset.call !== agent.call_id) {
      text("pop-state", "已结束 ended");
    }
    tick();
  }

  function tick() {
    if (!agent) return;
    const elapsed = (performance.now() - agent._at) / 1000;
    text("status-time", duration((agent.status_seconds || 0) + elapsed));
    if (agent.state === "wrap_up" && agent.wrap_up_left !== null) {
      text("wrap-left", duration(Math.max(0, agent.wrap_up_left - elapsed)));
    } else {
      text("wrap-left", "");
    }
  }

  function setAgent(a) {
    agent = Object.assign({}, a, { _at: performance.now() });
    renderAgent();
  }

  const REASON = { caller_key: "来电者按键 caller's key", max_ewt: "等待过长 long wait",
    api: "主管预约 scheduled" };
  function when(epoch) {
    return epoch ? new Date(epoch * 1000).toLocaleString("zh-CN", { hour12: false }) : "";
  }

  // What the offered call is when it is not an inbound caller: every value through
  // textContent (ACD.text), never markup.
  function showContext(ctx) {
    const box = $("pop-context");
    box.hidden = !ctx;
    if (!ctx) { delete box.dataset.kind; return; }
    box.dataset.kind = ctx.kind;
    text("pop-kind", ctx.kind === "campaign" ? "外呼活动 Campaign call" : "回拨 Callback");
    text("ctx-number", ctx.number);
    text("ctx-requested", when(ctx.requested_at));
    text("ctx-scheduled", ctx.scheduled_for ? when(ctx.scheduled_for) : "尽快 as soon as possible");
    text("ctx-attempt", ctx.attempt + " / " + ctx.max_attempts);
    const why = ctx.reason || "";
    text("ctx-reason", REASON[why] || (why.startsWith("desk:") ? "坐席预约 agent " + why.slice(5)
      : why.startsWith("api:") ? "预约 scheduled by " + why.slice(4) : why));
    text("ctx-campaign", ctx.campaign || "");
    const c = ctx.contact;
    text("ctx-contact", c ? [c.name, c.number, c.region].filter(Boolean).join(" · ") : "");
    text("ctx-outcomes", (ctx.outcome_codes || []).join(", "));
  }

  function showActions() {
    const on = !!(agent && agent.state === "on_call" && lastCall === agent.call_id);
    $("actions").hidden = !(on || (agent && agent.state === "wrap_up" && lastCall));
    $("transfer").disabled = $("transfer-queue").disabled = !on;
    $("callback").disabled = !(desk && desk.callbacks);
    $("callback").title = desk && desk.callbacks ? "" : "未配置回拨 Callbacks are not configured";
  }

  function pop(c, ctx) {
    lastCall = c.id;
    showContext(ctx || null);
    const p = $("pop");
    p.hidden = false;
    p.dataset.call = c.id;
    text("pop-state", c.state === "connected" ? "通话中 connected" : "振铃 ringing");
    text("pop-caller", c.caller || "未知号码 unknown");
    text("pop-region", (c.region || "") + (c.region_source ? " · " + (SOURCE[c.region_source] || c.region_source) : ""));
    text("pop-segment", c.segment);
    text("pop-queue", c.queue);
    text("pop-did", c.did);
    text("pop-menu", c.menu_choice);
    text("pop-stage", c.stage);
    text("pop-wait", duration(c.wait_seconds));
    text("pop-ewt", c.ewt_seconds === null || c.ewt_seconds === undefined ? "—" : duration(c.ewt_seconds));
    $("note").value = "";
    loadHistory(c.id);
  }

  async function loadHistory(callId) {
    const body = $("history");
    body.replaceChildren();
    try {
      const h = await call("GET", "/api/v1/desk/history?call=" + encodeURIComponent(callId));
      if (!h.contacts.length) {
        body.append(el("tr", {}, el("td", { colSpan: 5 }, "首次来电 First contact")));
      }
      for (const r of h.contacts) {
        const when = new Date(r.entry_time * 1000).toLocaleString("zh-CN", { hour12: false });
        body.append(el("tr", { "data-call": r.call_id }, el("td", {}, when), el("td", {}, r.queue || ""),
          el("td", {}, r.agent || ""), el("td", {}, r.outcome || ""),
          el("td", {}, [r.disposition, r.note].filter(Boolean).join(" · "))));
      }
    } catch (e) {
      body.append(el("tr", {}, el("td", { colSpan: 5 }, "历史不可用 history unavailable")));
    }
  }

  function onMessage(msg, at) {
    if (msg.type === "pop") {
      window.acdPops.push({ call: msg.call, context: msg.context, receivedAt: at, wall: Date.now() });
      pop(msg.call, msg.context);
    } else if (msg.type === "snapshot" || msg.type === "summary") {
      const a = (msg.agents || []).find((x) => x.id === me.agent);
      if (a) setAgent(a);
    } else if (msg.type === "event" && msg.name === "agent" && msg.data.agent === me.agent) {
      refresh();
    } else if (msg.type === "event" && msg.name === "call_connected" && msg.data.agent === me.agent) {
      text("pop-state", "通话中 connected");
    }
  }

  async function refresh() {
    try {
      desk = await call("GET", "/api/v1/desk");
      setAgent(desk.agent);
      if (desk.call && $("pop").dataset.call !== desk.call.id) pop(desk.call, desk.context);
    } catch (e) {
      if (e.status === 401) signedOut("会话已结束 Session ended");
    }
  }

  function fillChoices() {
    const reasons = $("pause-reason");
    reasons.replaceChildren(...desk.pause_reasons.map((r) => el("option", { value: r }, r)));
    const transfer = $("transfer-queue");
    transfer.replaceChildren(el("option", { value: "" }, "— 转接到 Transfer to —"),
      ...desk.queues.map((q) => el("option", { value: q }, q)));
    showActions();
    const disp = $("disposition");
    disp.replaceChildren(el("option", { value: "" }, "— 处理结果 Disposition —"),
      ...desk.dispositions.map((d) => el("option", { value: d.code }, d.name)));
  }

  async function start(info) {
    me = info;
    text("who", info.agent);
    showSignedIn(true);
    await refresh();
    if (desk) fillChoices();
    stream = ACD.stream(onMessage, (s) => {
      $("conn").dataset.state = s;
      text("conn", { live: "在线 live", connecting: "连接中 connecting", down: "断开 down",
        "signed-out": "已退出 signed out" }[s] || s);
      if (s === "signed-out") signedOut("已在别处登录或被主管签出 Signed in elsewhere or signed out by a supervisor");
    });
  }

  function signedOut(why) {
    if (stream) stream.close();
    stream = null; me = null; agent = null;
    showSignedIn(false);
    notice(why || "");
  }

  async function act(fn) {
    notice("");
    try { await fn(); await refresh(); } catch (e) { notice(e.message); }
  }

  function state(action, reason) {
    return call("POST", "/api/v1/agents/" + encodeURIComponent(me.agent) + "/state",
      reason ? { action, reason } : { action });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("signin").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      notice("");
      try {
        const info = await ACD.signIn("agent", $("signin-id").value.trim(), $("signin-pin").value);
        $("signin-pin").value = "";
        await start(info);
      } catch (e) {
        notice(e.status === 401 ? "工号或密码错误 Wrong id or PIN" : e.message);
      }
    });
    $("ready").addEventListener("click", () => act(() => state("ready")));
    $("pause").addEventListener("click", () => act(() => state("pause", $("pause-reason").value)));
    $("logout").addEventListener("click", () => act(() => state("logout")));
    $("wrap-end").addEventListener("click", () => act(() => call("POST", "/api/v1/desk/wrap-up", { action: "end" })));
    $("wrap-extend").addEventListener("click", () => act(() => call("POST", "/api/v1/desk/wrap-up", { action: "extend" })));
    $("save").addEventListener("click", () => act(async () => {
      await call("POST", "/api/v1/desk/disposition", { call_id: lastCall || (agent && agent.last_call_id) || "",
        code: $("disposition").value, note: $("note").value });
      notice("已保存 Saved");
    }));
    $("transfer").addEventListener("click", () => act(async () => {
      const queue = $("transfer-queue").value;
      if (!queue) { notice("请选择队列 Choose a queue"); return; }
      const r = await call("POST", "/api/v1/desk/transfer", { queue });
      notice("已转接到 Transferred to " + r.queue);
    }));
    $("callback").addEventListener("click", () => act(async () => {
      const raw = $("callback-at").value;
      const at = raw ? new Date(raw).getTime() / 1000 : null;
      if (raw && isNaN(at)) { notice("时间无效 Invalid time"); return; }
      const r = await call("POST", "/api/v1/desk/callback", at ? { at } : {});
      notice("已预约回拨 Callback requested: " + r.number +
        (r.not_before ? " @ " + when(r.not_before) : " (尽快 as soon as possible)"));
    }));
    $("signout").addEventListener("click", async () => { await ACD.signOut(); signedOut(""); });
    setInterval(tick, 500);
    const info = await ACD.session();
    if (info && info.role === "agent") await start(info);
  });
})();
