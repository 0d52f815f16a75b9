// nightshift dashboard: draws the page the URL names from the control endpoint
// (/_nightshift/...), the same routes the CLI uses, and keeps it live with server-sent events.
// No framework, no build step: the emulator embeds this file as it is.
"use strict";

const API = "/_nightshift";
const TOKEN = document.querySelector('meta[name="nightshift-token"]').content;
const state = { status: null, samples: [], page: null, refreshTimer: null, lastRefresh: 0 };
// What a test (or you, in the console) reads when a page looks stuck.
window.nightshiftDebug = { pending: {}, errors: [], refreshes: 0 };
window.addEventListener("error", (e) => window.nightshiftDebug.errors.push(String(e.message)));

// ---- helpers -------------------------------------------------------------------------------

// Builds an element; children are nodes or strings (always text, never HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function link(href, ...children) {
  return el("a", { href, "data-link": true }, ...children);
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json", "x-nightshift-token": TOKEN },
    body: JSON.stringify(body),
  };
  const debug = window.nightshiftDebug;
  debug.pending[path] = (debug.pending[path] || 0) + 1;
  let res, text;
  try {
    res = await fetch(API + path, init);
    text = await res.text();
  } finally {
    debug.pending[path] -= 1;
    if (!debug.pending[path]) delete debug.pending[path];
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!res.ok) throw new Error((data && data.error) || res.status + " " + text);
  return data;
}

function flash(message, error) {
  const f = document.getElementById("flash");
  f.textContent = message;
  f.className = error ? "error" : "";
  f.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { f.hidden = true; }, error ? 8000 : 3500);
}

async function act(button, work, done) {
  button.disabled = true;
  try {
    const answer = await work();
    if (done) flash(done(answer));
    refreshSoon(0);
    return answer;
  } catch (e) {
    flash(e.message, true);
  } finally {
    button.disabled = false;
  }
}

function pretty(text) {
  if (text === null || text === undefined) return "";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return String(text); }
}

function time(t) {
  if (!t) return "–";
  const d = new Date(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ms(v) {
  return v === null || v === undefined ? "–" : (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " ms";
}

function age(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function badge(status) {
  return el("span", { class: "status " + status }, status);
}

function enc(s) { return encodeURIComponent(s); }

// True when `data` is what `holder` last drew: the page skips the redraw, so a selection, a
// hover or an open element survives the once-a-second refresh.
function unchanged(holder, data) {
  const text = JSON.stringify(data);
  if (holder.drawn === text) return true;
  holder.drawn = text;
  return false;
}

// ---- routing -------------------------------------------------------------------------------

const routes = [
  [/^\/ui\/?$/, overview, "overview"],
  [/^\/ui\/queues\/?$/, queues, "queues"],
  [/^\/ui\/queues\/([^/]+)$/, queue, "queues"],
  [/^\/ui\/functions\/?$/, functions, "functions"],
  [/^\/ui\/functions\/([^/]+)$/, fn, "functions"],
  [/^\/ui\/invocations\/([^/]+)$/, invocation, "functions"],
  [/^\/ui\/traces\/([^/]+)$/, trace, "functions"],
  [/^\/ui\/schedules\/?$/, schedules, "schedules"],
  [/^\/ui\/schedules\/([^/]+)$/, schedule, "schedules"],
];

function navigate(path, push) {
  if (push) history.pushState(null, "", path);
  const url = new URL(path, location.origin);
  for (const [re, page, nav] of routes) {
    const m = url.pathname.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === nav);
    }
    const root = document.getElementById("page");
    root.replaceChildren();
    state.page = page(root, ...m.slice(1).map(decodeURIComponent));
    refreshSoon(0);
    return;
  }
  document.getElementById("page").replaceChildren(el("h1", {}, "Not found"), link("/ui", "Overview"));
  state.page = null;
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-link]");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"), true);
});
window.addEventListener("popstate", () => navigate(location.pathname + location.search, false));

// A page is { refresh: async () => void, onInvocation?: (summary) => void }.
// Refreshes are coalesced: at most one per second, whatever the event rate.
function refreshSoon(delay) {
  if (state.refreshTimer !== null) return;
  const wait = delay === 0 ? 0 : Math.max(0, 1000 - (Date.now() - state.lastRefresh));
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    state.lastRefresh = Date.now();
    if (!state.page || !state.page.refresh) return;
    window.nightshiftDebug.refreshes += 1;
    try { await state.page.refresh(); } catch (e) {
      window.nightshiftDebug.errors.push(String(e && e.stack || e));
      flash(e.message, true);
    }
  }, wait);
}

// ---- live ----------------------------------------------------------------------------------

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource(API + "/events");
  source.addEventListener("open", () => { live.className = "live on"; });
  source.addEventListener("error", () => { live.className = "live off"; });
  source.addEventListener("status", (ev) => {
    const data = JSON.parse(ev.data);
    state.status = data.status;
    if (data.sample) {
      state.samples.push(data.sample);
      if (state.samples.length > 600) state.samples.shift();
    }
    showClock();
    if (state.page && state.page.onStatus) state.page.onStatus(); else refreshSoon();
  });
  source.addEventListener("invocation", (ev) => {
    const summary = JSON.parse(ev.data);
    if (state.page && state.page.onInvocation) state.page.onInvocation(summary);
  });
  // EventSource reconnects by itself after an emulator restart; the series restarts with it.
  // A page left for another is closed here: a page kept in the back/forward cache would keep
  // its stream open, and a browser opens at most 6 connections to one host over HTTP/1.1.
  window.addEventListener("pagehide", () => source.close(), { once: true });
}

window.addEventListener("pageshow", (ev) => { if (ev.persisted) connect(); });

function showClock() {
  const s = state.status;
  if (!s) return;
  document.getElementById("clock").textContent = time(s.now) + " · " + s.clock;
}

async function status() {
  state.status = await api("/status");
  showClock();
  return state.status;
}

// ---- overview ------------------------------------------------------------------------------

function overview(root) {
  root.append(el("h1", {}, "Overview"));
  const cards = el("div", { class: "cards", id: "overview-cards" });
  const clockBox = el("div", { id: "clock-controls", class: "toolbar" });
  const charts = el("div", { class: "grid2" },
    el("div", { class: "chart" }, el("h2", {}, "Invocations per second"),
      el("div", { id: "chart-invocations" }), legend([["succeeded", "var(--ok)"], ["failed", "var(--bad)"], ["timed out", "var(--warn)"]])),
    el("div", { class: "chart" }, el("h2", {}, "Queue depth"),
      el("div", { id: "chart-depths" }), el("div", { class: "legend", id: "depth-legend" })));
  root.append(cards, clockBox, charts);
  let loadedSeries = false;
  return {
    async refresh() {
      const s = await status();
      if (!loadedSeries) { state.samples = await api("/series"); loadedSeries = true; }
      draw(s);
    },
    onStatus() { draw(state.status); },
  };

  function draw(s) {
    const dlqs = s.queues.filter((q) => q.dead_letter_sources && q.dead_letter_sources.length);
    const dead = dlqs.reduce((n, q) => n + q.visible + q.in_flight + q.delayed, 0);
    const f = s.functions;
    const sum = (k) => f.reduce((n, x) => n + (x[k] || 0), 0);
    cards.replaceChildren(
      card(sum("invocations"), "invocations"),
      card(sum("errors") + sum("crashes"), "errors and crashes"),
      card(sum("timeouts"), "timeouts"),
      card(s.queues.reduce((n, q) => n + q.visible, 0), "messages waiting"),
      el("div", { class: "card" }, el("div", { class: "n", id: "dlq-count" }, String(dead)),
        el("div", { class: "l" }, "in dead-letter queues ", dlqs
          .filter((q) => q.visible + q.in_flight + q.delayed > 0)
          .map((q) => [link("/ui/queues/" + enc(q.name), q.name), " "]))),
      card(s.schedules.filter((x) => x.enabled).length + " / " + s.schedules.length, "schedules enabled"),
    );
    clockBox.replaceChildren(el("span", {}, "Clock: ", el("b", { id: "clock-now" }, time(s.now)), " (" + s.clock + ")"));
    if (s.clock === "manual") {
      for (const by of ["1m", "5m", "1h", "6h", "1d"]) {
        const b = el("button", { class: "secondary", "data-advance": by }, "advance " + by);
        b.addEventListener("click", () => act(b, () => api("/advance", { by }), (a) => "clock at " + time(a.now)));
        clockBox.append(b);
      }
    }
    drawCharts();
  }
}

function card(n, label) {
  return el("div", { class: "card" }, el("div", { class: "n" }, String(n)), el("div", { class: "l" }, label));
}

function legend(items) {
  return el("div", { class: "legend" }, items.map(([name, color]) => el("span", {}, el("i", { style: "background:" + color }), name)));
}

const PALETTE = ["#3a5ccc", "#c2332b", "#1f8a4c", "#b7791f", "#7b3fc4", "#11829a", "#a0446e", "#555"];

function drawCharts() {
  const samples = state.samples.slice(-300);
  const inv = document.getElementById("chart-invocations");
  const dep = document.getElementById("chart-depths");
  if (!inv || !dep) return;
  inv.replaceChildren(lines(samples, [
    [(s) => s.ended.succeeded, "var(--ok)"],
    [(s) => s.ended.failed, "var(--bad)"],
    [(s) => s.ended.timed_out, "var(--warn)"],
  ]));
  const names = [...new Set(samples.flatMap((s) => s.depths.map((d) => d.queue)))];
  const series = names.map((name, i) => [(s) => {
    const d = s.depths.find((x) => x.queue === name);
    return d ? d.visible + d.in_flight + d.delayed : 0;
  }, PALETTE[i % PALETTE.length]]);
  dep.replaceChildren(lines(samples, series));
  const lg = document.getElementById("depth-legend");
  if (lg) lg.replaceChildren(...names.map((n, i) => el("span", {}, el("i", { style: "background:" + PALETTE[i % PALETTE.length] }), n)));
}

// An SVG line chart of `samples` (one point a second), one polyline per [value, colour].
function lines(samples, series) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const W = 600, H = 140;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...samples.flatMap((s) => series.map(([f]) => f(s))));
  const n = Math.max(samples.length - 1, 1);
  for (const [f, color] of series) {
    const pts = samples.map((s, i) => `${(i / n) * W},${H - 4 - (f(s) / max) * (H - 12)}`).join(" ");
    const p = document.createElementNS(NS, "polyline");
    p.setAttribute("points", pts);
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", color);
    p.setAttribute("stroke-width", "2");
    p.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(p);
  }
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", "4"); label.setAttribute("y", "12");
  label.setAttribute("font-size", "11"); label.setAttribute("fill", "#888");
  label.textContent = "max " + max;
  svg.append(label);
  return svg;
}

// ---- queues --------------------------------------------------------------------------------

function queues(root) {
  root.append(el("h1", {}, "Queues"));
  const table = el("table", { id: "queues" });
  root.append(table);
  return {
    async refresh() {
      const s = await status();
      if (unchanged(table, s.queues)) return;
      table.replaceChildren(
        el("tr", {}, ["Queue", "Visible", "In flight", "Delayed", "Oldest", "Dead-letter queue", "Max receives"].map((h, i) => el("th", { class: i > 0 && i < 5 ? "num" : null }, h))),
        ...s.queues.map((q) => el("tr", { "data-queue": q.name },
          el("td", {}, link("/ui/queues/" + enc(q.name), q.name), q.dead_letter_sources && q.dead_letter_sources.length ? el("span", { class: "muted" }, " (DLQ of " + q.dead_letter_sources.join(", ") + ")") : null),
          el("td", { class: "num visible" }, q.visible),
          el("td", { class: "num" }, q.in_flight),
          el("td", { class: "num" }, q.delayed),
          el("td", { class: "num" }, age(q.oldest_age_s)),
          el("td", {}, q.dead_letter_queue ? link("/ui/queues/" + enc(q.dead_letter_queue), q.dead_letter_queue) : "–"),
          el("td", {}, q.max_receive_count || "–"))),
      );
    },
  };
}

function queue(root, name) {
  const head = el("dl", { class: "kv", id: "queue-info" });
  const search = el("input", { type: "search", id: "message-search", placeholder: "search id, body, attributes" });
  const body = el("textarea", { id: "send-body", placeholder: '{"kind": "order.placed", ...}' });
  const group = el("input", { type: "text", id: "send-group", placeholder: "MessageGroupId (FIFO)" });
  const send = el("button", { id: "send-button" }, "Send");
  const purge = el("button", { id: "purge-button", class: "danger" }, "Purge");
  const redriveAll = el("button", { id: "redrive-all", hidden: true }, "Redrive all");
  const redriveSome = el("button", { id: "redrive-selected", class: "secondary", hidden: true }, "Redrive selected");
  const table = el("table", { id: "messages" });
  root.append(el("h1", {}, "Queue ", el("span", { id: "queue-name" }, name)), head,
    el("div", { class: "toolbar" }, search, redriveAll, redriveSome, purge, el("span", { class: "muted", id: "message-count" })),
    table,
    el("h2", {}, "Send a message"), body, el("div", { class: "toolbar" }, group, send));
  let isDlq = false;
  const selected = new Set();
  send.addEventListener("click", () => act(send, () => api("/send", { queue: name, body: body.value, group_id: group.value || undefined }), (a) => "sent " + a.message_id));
  purge.addEventListener("click", () => act(purge, () => api("/purge", { queue: name }), () => name + " purged"));
  redriveAll.addEventListener("click", () => act(redriveAll, () => api("/dlq/redrive", { dlq: name }), () => "redrive started"));
  redriveSome.addEventListener("click", () => act(redriveSome, () => api("/dlq/redrive", { dlq: name, message_ids: [...selected] }), (a) => {
    selected.clear();
    return a.moved + " message(s) moved back";
  }));
  search.addEventListener("input", () => refreshSoon(0));
  return {
    async refresh() {
      const s = await status();
      const q = s.queues.find((x) => x.name === name);
      if (!q) { head.replaceChildren(el("dt", {}, "error"), el("dd", {}, "no queue " + name)); return; }
      isDlq = !!(q.dead_letter_sources && q.dead_letter_sources.length);
      redriveAll.hidden = !isDlq;
      redriveSome.hidden = !isDlq;
      head.replaceChildren(
        el("dt", {}, "URL"), el("dd", {}, q.url),
        el("dt", {}, "Messages"), el("dd", {}, `${q.visible} visible · ${q.in_flight} in flight · ${q.delayed} delayed · oldest ${age(q.oldest_age_s)}`),
        el("dt", {}, "Dead-letter queue"), el("dd", {}, q.dead_letter_queue ? [link("/ui/queues/" + enc(q.dead_letter_queue), q.dead_letter_queue), " after " + q.max_receive_count + " receives"] : "–"),
        ...(isDlq ? [el("dt", {}, "Dead letters of"), el("dd", {}, q.dead_letter_sources.map((x) => [link("/ui/queues/" + enc(x), x), " "]))] : []));
      const messages = await api(`/queues/${enc(name)}/messages?limit=200&q=${enc(search.value)}`);
      document.getElementById("message-count").textContent = messages.length + " shown";
      if (unchanged(table, [isDlq, messages])) return;
      for (const id of [...selected]) if (!messages.some((m) => m.message_id === id)) selected.delete(id);
      table.replaceChildren(
        el("tr", {}, isDlq ? el("th", {}, "") : null, ["Message", "State", "Sent", "Receives", isDlq ? "Reason" : "Attributes", "Body"].map((h) => el("th", {}, h))),
        ...messages.map((m) => {
          const box = isDlq ? el("input", { type: "checkbox", class: "select-message", checked: selected.has(m.message_id) }) : null;
          if (box) box.addEventListener("change", () => { if (box.checked) selected.add(m.message_id); else selected.delete(m.message_id); });
          const attrs = Object.entries(m.attributes || {}).map(([k, v]) => k + "=" + v).join("\n");
          return el("tr", { "data-message-id": m.message_id },
            isDlq ? el("td", {}, box) : null,
            el("td", {}, el("code", {}, m.message_id)),
            el("td", {}, badge(m.state || "visible")),
            el("td", {}, time(m.sent_at)),
            el("td", { class: "num" }, m.receive_count),
            el("td", { class: isDlq ? "reason" : "attributes" }, el("pre", { class: "body" }, isDlq ? (m.reason || "–") : (attrs || "–"))),
            el("td", {}, el("pre", { class: "body" }, pretty(m.body))));
        }));
    },
  };
}

// ---- functions -----------------------------------------------------------------------------

function functions(root) {
  root.append(el("h1", {}, "Functions"));
  const table = el("table", { id: "functions" });
  root.append(table);
  return {
    async refresh() {
      const s = await status();
      if (unchanged(table, s.functions)) return;
      table.replaceChildren(
        el("tr", {}, ["Function", "Instances", "Busy", "Invocations", "Errors", "Timeouts", "Crashes", "p50", "p95", "Cold starts"].map((h, i) => el("th", { class: i ? "num" : null }, h))),
        ...s.functions.map((f) => el("tr", { "data-function": f.name },
          el("td", {}, link("/ui/functions/" + enc(f.name), f.name)),
          ...[f.instances, f.busy, f.invocations, f.errors, f.timeouts, f.crashes, ms(f.p50_ms), ms(f.p95_ms), f.cold_starts].map((v) => el("td", { class: "num" }, v)))));
    },
  };
}

function invocationRows(list) {
  return [
    el("tr", {}, ["Started", "Request id", "Trigger", "Status", "Duration", "Init", "Memory", "Error"].map((h) => el("th", {}, h))),
    ...list.map((i) => el("tr", { class: "clickable", "data-request-id": i.request_id, onclick: () => navigate("/ui/invocations/" + enc(i.request_id), true) },
      el("td", {}, time(i.started_at)),
      el("td", {}, link("/ui/invocations/" + enc(i.request_id), el("code", {}, i.request_id))),
      el("td", {}, i.trigger),
      el("td", {}, badge(i.status)),
      el("td", { class: "num" }, ms(i.duration_ms)),
      el("td", { class: "num" }, ms(i.init_duration_ms)),
      el("td", { class: "num" }, i.max_memory_mb ? i.max_memory_mb + " MB" : "–"),
      el("td", {}, i.error || ""))),
  ];
}

function fn(root, name) {
  const filter = el("select", { id: "status-filter" }, ["all", "failed", "success", "error", "timeout", "crash", "init_error", "running"].map((s) => el("option", { value: s }, s)));
  const search = el("input", { type: "search", id: "invocation-search", placeholder: "request id, message id or job id" });
  const table = el("table", { id: "invocations" });
  root.append(el("h1", {}, "Function ", el("span", { id: "function-name" }, name)),
    el("div", { class: "cards", id: "function-cards" }),
    el("div", { class: "toolbar" }, filter, search), table);
  filter.addEventListener("change", () => refreshSoon(0));
  search.addEventListener("input", () => refreshSoon(0));
  return {
    async refresh() {
      const s = await status();
      const f = s.functions.find((x) => x.name === name);
      if (f) {
        document.getElementById("function-cards").replaceChildren(
          card(f.invocations, "invocations"), card(f.errors, "errors"), card(f.timeouts, "timeouts"),
          card(ms(f.p50_ms), "p50"), card(ms(f.p95_ms), "p95"), card(f.instances + " / " + f.busy, "instances / busy"), card(f.cold_starts, "cold starts"));
      }
      const list = await api(`/invocations?function=${enc(name)}&status=${enc(filter.value)}&q=${enc(search.value)}&limit=200`);
      if (unchanged(table, list)) return;
      table.replaceChildren(...invocationRows(list));
    },
    onInvocation(summary) { if (summary.function === name) refreshSoon(); },
  };
}

function invocation(root, id) {
  const box = el("div", {});
  root.append(el("h1", {}, "Invocation ", el("code", {}, id)), box);
  let done = false;
  return {
    async refresh() {
      if (done) return;
      const i = await api("/invocations/" + enc(id));
      done = i.status !== "running";
      const logs = el("pre", { id: "logs" }, i.logs.map((l) => el("div", { class: "logline " + l.stream },
        el("span", { class: "t" }, l.time.slice(11, 23) + " "), l.line)));
      box.replaceChildren(
        el("dl", { class: "kv" },
          el("dt", {}, "Function"), el("dd", {}, link("/ui/functions/" + enc(i.function), i.function)),
          el("dt", {}, "Status"), el("dd", { id: "invocation-status" }, badge(i.status), i.error ? " " + i.error : ""),
          el("dt", {}, "Trigger"), el("dd", {}, i.trigger),
          el("dt", {}, "Started"), el("dd", {}, time(i.started_at)),
          el("dt", {}, "Duration"), el("dd", {}, ms(i.duration_ms), i.init_duration_ms ? " (init " + ms(i.init_duration_ms) + ")" : ""),
          el("dt", {}, "Max memory"), el("dd", {}, i.max_memory_mb ? i.max_memory_mb + " MB" : "–"),
          i.message_ids.length ? [el("dt", {}, "Messages"), el("dd", {}, i.message_ids.join(", "))] : null,
          i.trace_id ? [el("dt", {}, "Trace"), el("dd", { id: "invocation-trace", title: i.trace_header }, traceLink(i.trace_id))] : null,
          i.trace_links && i.trace_links.length ? [el("dt", {}, "Linked to"), el("dd", { id: "invocation-links" }, i.trace_links.map((t) => [traceLink(t), " "]))] : null),
        el("div", { class: "grid2" },
          el("div", {}, el("h2", {}, "Event"), el("pre", { id: "event" }, pretty(i.event))),
          el("div", {}, el("h2", {}, i.status === "success" ? "Response" : "Error"), el("pre", { id: "response" }, pretty(i.response)))),
        el("h2", {}, "Log (" + i.logs.length + " lines" + (i.logs_dropped ? ", " + i.logs_dropped + " dropped" : "") + ")"), logs);
    },
    onInvocation(summary) { if (summary.request_id === id) { done = false; refreshSoon(0); } },
  };
}

// ---- traces --------------------------------------------------------------------------------

function traceLink(id) {
  return link("/ui/traces/" + enc(id), el("code", {}, id));
}

// The chain a trace is part of (GET /_nightshift/trace/{id}, what `nightshift trace` prints):
// its invocations in the order they started, then the links between its traces. An SQS
// batch starts a new trace linked to its messages' traces, so one flow spans several traces.
function trace(root, id) {
  const table = el("table", { id: "chain" });
  const links = el("table", { id: "chain-links" });
  const summary = el("p", { class: "muted", id: "chain-summary" });
  root.append(el("h1", {}, "Trace ", el("code", {}, id)), summary, table, el("h2", {}, "Links"), links);
  return {
    async refresh() {
      const chain = await api("/trace/" + enc(id));
      if (unchanged(table, chain)) return;
      const total = chain.invocations.reduce((n, i) => n + (i.duration_ms || 0), 0);
      summary.textContent = chain.invocations.length
        ? `${chain.invocations.length} invocation(s) in ${chain.trace_ids.length} trace(s), ${ms(total)} in functions`
        : "no invocation in the history has this trace";
      table.replaceChildren(
        el("tr", {}, ["#", "Started", "Function", "Trigger", "Status", "Duration", "Trace", "Request id"].map((h) => el("th", {}, h))),
        ...chain.invocations.map((i, n) => el("tr", { "data-request-id": i.request_id, class: i.trace_id === id ? "current" : null },
          el("td", { class: "num" }, n + 1),
          el("td", {}, time(i.started_at)),
          el("td", {}, link("/ui/functions/" + enc(i.function), i.function)),
          el("td", {}, i.trigger),
          el("td", {}, badge(i.status)),
          el("td", { class: "num" }, ms(i.duration_ms)),
          el("td", {}, i.trace_id ? traceLink(i.trace_id) : "–"),
          el("td", {}, link("/ui/invocations/" + enc(i.request_id), el("code", {}, i.request_id))))));
      links.replaceChildren(
        el("tr", {}, ["Trace", "Linked to"].map((h) => el("th", {}, h))),
        ...(chain.links || []).map((l) => el("tr", {}, el("td", {}, traceLink(l.from)), el("td", {}, traceLink(l.to)))));
    },
    onInvocation() { refreshSoon(); },
  };
}

// ---- schedules -----------------------------------------------------------------------------

function schedules(root) {
  root.append(el("h1", {}, "Schedules"));
  const table = el("table", { id: "schedules" });
  root.append(table);
  return {
    async refresh() {
      const s = await status();
      if (unchanged(table, s.schedules)) return;
      table.replaceChildren(
        el("tr", {}, ["Schedule", "Target", "Expression", "Time zone", "State", "Next fire", "Last fire", "Fires", "Failures", "Dead-lettered", ""].map((h) => el("th", {}, h))),
        ...s.schedules.map((x) => {
          const fire = el("button", { class: "fire secondary" }, "fire now");
          fire.addEventListener("click", () => act(fire, () => api("/fire", { schedule: x.name }), (a) => x.name + ": " + a.outcome + " (" + a.request_id + ")"));
          const toggle = el("button", { class: "toggle secondary" }, x.enabled ? "disable" : "enable");
          toggle.addEventListener("click", () => act(toggle, () => api("/schedules/state", { schedule: x.name, enabled: !x.enabled }), (d) => d.name + (d.enabled ? " enabled" : " disabled")));
          return el("tr", { "data-schedule": x.name },
            el("td", {}, link("/ui/schedules/" + enc(x.name), x.name), x.api ? el("span", { class: "muted" }, " (API, " + x.group + ")") : null),
            el("td", {}, x.function), el("td", {}, el("code", {}, x.expression)), el("td", {}, x.timezone),
            el("td", { class: "state" }, x.enabled ? "enabled" : "disabled"),
            el("td", {}, time(x.next_fire)), el("td", {}, time(x.last_fire)),
            el("td", { class: "num" }, x.fires), el("td", { class: "num" }, x.failures), el("td", { class: "num" }, x.dead_lettered),
            el("td", {}, fire, " ", toggle));
        }));
    },
  };
}

function schedule(root, name) {
  const box = el("div", {});
  root.append(el("h1", {}, "Schedule ", el("span", { id: "schedule-name" }, name)), box);
  return {
    async refresh() {
      const d = await api("/schedule?name=" + enc(name));
      if (unchanged(box, d)) return;
      const fire = el("button", { id: "fire-now" }, "fire now");
      fire.addEventListener("click", () => act(fire, () => api("/fire", { schedule: d.name }), (a) => d.name + ": " + a.outcome));
      const toggle = el("button", { id: "toggle", class: "secondary" }, d.enabled ? "disable" : "enable");
      toggle.addEventListener("click", () => act(toggle, () => api("/schedules/state", { schedule: d.name, enabled: !d.enabled }), (x) => x.name + (x.enabled ? " enabled" : " disabled")));
      box.replaceChildren(
        el("dl", { class: "kv" },
          el("dt", {}, "Expression"), el("dd", {}, el("code", {}, d.expression), " in " + d.timezone),
          el("dt", {}, "Target"), el("dd", {}, d.function),
          el("dt", {}, "State"), el("dd", { id: "schedule-state" }, d.enabled ? "enabled" : "disabled"),
          el("dt", {}, "Fires"), el("dd", {}, `${d.fires} fires · ${d.failures} failures · ${d.dead_lettered} dead-lettered`),
          el("dt", {}, "Last runs"), el("dd", { class: "runs" }, d.runs.slice(0, 40).reverse().map((r) => el("span", { class: "status " + r.status, title: r.status + " " + time(r.started_at) })))),
        el("div", { class: "toolbar" }, fire, toggle),
        el("h2", {}, "Next fires"),
        el("ol", { id: "next-fires" }, d.next_fires.length ? d.next_fires.map((t) => el("li", {}, time(t))) : el("li", { class: "muted" }, "none")),
        el("h2", {}, "Runs"),
        el("table", { id: "runs" }, invocationRows(d.runs)));
    },
    onInvocation(summary) { if (summary.trigger === "schedule:" + name) refreshSoon(); },
  };
}

// ---- start ---------------------------------------------------------------------------------

connect();
navigate(location.pathname + location.search, false);
