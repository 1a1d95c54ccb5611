// Shared by the agent desktop and the supervisor console: sign-in, the session's CSRF
// token, JSON calls, the event stream, and bilingual labels (Chinese first, English
// second). No inline script anywhere (the pages' CSP is script-src 'self'); every text
// from the server goes in with textContent, never innerHTML.
"use strict";

const ACD = (() => {
  let csrf = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  // "中文 English": the English smaller, after the Chinese.
  function label(zh, en) {
    const span = el("span", {}, zh);
    span.append(el("span", { class: "en" }, en));
    return span;
  }

  function text(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = value === null || value === undefined ? "" : String(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(r);
  }

  async function call(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
    const res = await fetch(path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && (data.detail || data.error)) || ("HTTP " + res.status));
      err.status = res.status; err.code = data && data.error;
      throw err;
    }
    return data;
  }

  async function session() {
    try {
      const info = await call("GET", "/api/v1/session");
      csrf = info.csrf;
      return info;
    } catch (e) {
      csrf = null;
      return null;
    }
  }

  async function signIn(kind, id, secret) {
    const info = await call("POST", "/api/v1/session", { kind, id, secret });
    csrf = info.csrf;
    return info;
  }

  async function signOut() {
    try { await call("DELETE", "/api/v1/session"); } finally { csrf = null; }
  }

  // The event stream with the session cookie; onMessage(msg, receivedAt).
  function stream(onMessage, onState) {
    let ws = null, closedByUs = false, retry = 1000;
    function open() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      ws = new WebSocket(scheme + location.host + "/api/v1/events", ["acd.v1"]);
      onState("connecting");
      ws.onopen = () => { retry = 1000; onState("live"); };
      ws.onmessage = (ev) => {
        const at = performance.now();
        let msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        onMessage(msg, at);
      };
      ws.onclose = (ev) => {
        onState(ev.code === 4401 ? "signed-out" : "down");
        if (!closedByUs && ev.code !== 4401) setTimeout(open, retry);
        retry = Math.min(retry * 2, 15000);
      };
    }
    open();
    return { close() { closedByUs = true; if (ws) ws.close(); } };
  }

  return { el, label, text, duration, call, session, signIn, signOut, stream };
})();
