// The supervisor console: the queues, agents and waiting calls in the supervisor's scope,
// live (the event stream triggers a refresh of GET /api/v1/console, at most every
// 300 ms); force an agent's state, end its page session; move a waiting caller to another
// queue (it keeps its place), change its priority; the audit log (admins).
"use strict";

(() => {
  const { el, text, duration, call } = ACD;
  const $ = (id) => document.getElementById(id);
  const PRESENCE = { ready: "就绪 Ready", paused: "暂停 Paused", logged_out: "已签出 Logged out",
    ringing: "振铃 Ringing", on_call: "通话中 On call", wrap_up: "话后 Wrap-up",
    unavailable: "不可用 Unavailable" };
  let me = null, stream = null, pending = null, queueIds = [];

  function notice(msg) { text("notice", msg); }

  function button(label, cls, data, fn) {
    const b = el("button", { type: "button", class: cls }, label);
    for (const [k, v] of Object.entries(data)) b.setAttribute(k, v);
    b.addEventListener("click", () => act(fn));
    return b;
  }

  async function act(fn) {
    notice("");
    try { await fn(); await refresh(); } catch (e) { notice(e.message); }
  }

  function agentState(id, action, reason) {
    return call("POST", "/api/v1/agents/" + encodeURIComponent(id) + "/state",
      reason ? { action, reason } : { action });
  }

  function render(v) {
    queueIds = v.queues.map((q) => q.id);
    $("queues").replaceChildren(...v.queues.map((q) => el("tr", { "data-queue": q.id },
      el("td", {}, q.name || q.id), el("td", { "data-field": "waiting" }, q.waiting),
      el("td", {}, duration(q.longest_wait_seconds)),
      el("td", {}, q.rolling_15m.service_level === null ? "—" : Math.round(q.rolling_15m.service_level * 100) + "%"),
      el("td", {}, q.agents.ready || 0), el("td", {}, q.agents.on_call || 0),
      el("td", {}, q.agents.paused || 0))));
    $("agents").replaceChildren(...v.agents.map((a) => el("tr", { "data-agent": a.id },
      el("td", {}, a.name && a.name !== a.id ? a.id + " " + a.name : a.id),
      el("td", { "data-field": "presence" }, (PRESENCE[a.presence] || a.presence) + (a.reason ? " (" + a.reason + ")" : "")),
      el("td", {}, duration(a.state === "idle" ? a.status_seconds : a.state_seconds)),
      el("td", {}, a.device), el("td", {}, a.answered), el("td", {}, a.call_id || ""),
      el("td", {},
        button("就绪 Ready", "", { "data-action": "ready" }, () => agentState(a.id, "ready")),
        button("暂停 Pause", "", { "data-action": "pause" }, () => agentState(a.id, "pause", $("reason").value)),
        button("签出 Log out", "danger", { "data-action": "logout" }, async () => {
          await agentState(a.id, "logout");
          await call("POST", "/api/v1/agents/" + encodeURIComponent(a.id) + "/sign-out");
        })))));
    $("waiting").replaceChildren(...v.waiting.map((c) => {
      const target = el("select", { "aria-label": "目标队列 Target queue", "data-field": "target" },
        ...queueIds.filter((q) => q !== c.queue).map((q) => el("option", { value: q }, q)));
      const prio = el("input", { type: "number", value: c.priority, min: -100, max: 100,
        "aria-label": "优先级 Priority", "data-field": "priority" });
      return el("tr", { "data-call": c.id },
        el("td", {}, c.position), el("td", {}, c.queue), el("td", {}, c.caller),
        el("td", {}, c.region), el("td", {}, c.segment), el("td", {}, c.stage),
        el("td", {}, duration(c.wait_seconds)),
        el("td", {}, c.ewt_seconds === null ? "—" : duration(c.ewt_seconds)),
        el("td", {}, prio),
        el("td", {}, target,
          button("转队列 Move", "", { "data-action": "move" }, () =>
            call("POST", "/api/v1/calls/" + encodeURIComponent(c.id) + "/move", { queue: target.value })),
          button("设优先级 Set priority", "", { "data-action": "priority" }, () =>
            call("POST", "/api/v1/calls/" + encodeURIComponent(c.id) + "/priority",
              { priority: parseInt(prio.value, 10) || 0 })),
          button("转合作方 To partner", "", { "data-action": "partner" }, () =>
            call("POST", "/api/v1/calls/" + encodeURIComponent(c.id) + "/partner", {}))));
    }));
  }

  function renderActive(v) {
    $("active").replaceChildren(...v.active.filter((c) => c.state === "connected").map((c) =>
      el("tr", { "data-call": c.id }, el("td", {}, c.queue), el("td", {}, c.caller),
        el("td", {}, c.agent || c.site || ""), el("td", {}, duration(c.talk_seconds)),
        el("td", {}, ...[["listen", "监听 Listen"], ["whisper", "耳语 Whisper"], ["barge", "强插 Barge"]]
          .map(([mode, label]) => button(label, "", { "data-action": mode }, async () => {
            await call("POST", "/api/v1/calls/" + encodeURIComponent(c.id) + "/spy", { mode });
            notice("正在呼叫您的话机 Ringing your phone (" + mode + ")");
          }))))));
  }

  async function refresh() {
    pending = null;
    try {
      const view = await call("GET", "/api/v1/console");
      render(view);
      renderActive(view);
      if (me && me.role === "admin") {
        const rows = await call("GET", "/api/v1/audit?limit=50");
        $("audit").replaceChildren(...rows.map((r) => el("tr", {},
          el("td", {}, new Date(r.time * 1000).toLocaleTimeString("zh-CN", { hour12: false })),
          el("td", {}, r.who), el("td", {}, r.action), el("td", {}, r.status))));
      }
    } catch (e) {
      if (e.status === 401) signedOut("会话已结束 Session ended");
      else notice(e.message);
    }
  }

  function soon() { if (!pending) pending = setTimeout(refresh, 300); }

  async function start(info) {
    me = info;
    text("who", info.supervisor || info.who);
    const q = info.scope && info.scope.queues;
    text("scope", q ? "范围 Scope: " + q.join(", ") : "");
    $("signin-box").hidden = true; $("console").hidden = false; $("signout").hidden = false;
    $("audit-box").hidden = info.role !== "admin";
    try {
      const cfgReasons = ["break", "lunch", "training", "meeting", "after-call"];
      $("reason").replaceChildren(...cfgReasons.map((r) => el("option", { value: r }, r)));
    } catch (e) { /* keep going */ }
    await refresh();
    stream = ACD.stream((msg) => { if (msg.type !== "snapshot") soon(); }, (s) => {
      $("conn").dataset.state = s;
      text("conn", { live: "在线 live", connecting: "连接中 connecting", down: "断开 down",
        "signed-out": "已退出 signed out" }[s] || s);
    });
    setInterval(soon, 5000);
  }

  function signedOut(why) {
    if (stream) stream.close();
    stream = null; me = null;
    $("signin-box").hidden = false; $("console").hidden = true; $("signout").hidden = true;
    notice(why || "");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("signin").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      notice("");
      try {
        const info = await ACD.signIn("supervisor", $("signin-id").value.trim(), $("signin-pw").value);
        $("signin-pw").value = "";
        await start(info);
      } catch (e) {
        notice(e.status === 401 ? "账号或密码错误 Wrong id or password" : e.message);
      }
    });
    $("signout").addEventListener("click", async () => { await ACD.signOut(); signedOut(""); });
    const info = await ACD.session();
    if (info && info.role !== "agent") await start(info);
  });
})();
