// Figure 2, live: a view of the Session running in `figure2 serve`.
// State arrives as server-sent events on /events (reset, trace, lineage, status);
// buttons POST /api/<command>. Every sentence comes from /api/i18n (crate::lang).
"use strict";

const LETTERS = ["A", "B", "C", "D", "E", "F", "G", "H"];
const TIME_CLAIMS = ["iat", "exp", "nbf", "auth_time"];

const state = {
  lang: "en",
  i18n: null,
  epoch: 0,
  scenario: null,
  presets: [], // the preset selector's options: {name, label: {en, zh}, source}
  preset: "", // the preset the session runs under ("": the scenario's own policy)
  events: [],
  lineage: { families: [] },
  status: null,
  selected: null, // index in state.events of the selected exchange
  pinned: false, // the user chose an exchange: do not follow new ones
  queue: [], // exchanges waiting to be animated
  animating: false,
  connected: false,
  verdict: null,
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const words = () => state.i18n[state.lang];
const ui = (key) => (state.i18n ? words().ui[key] || key : key);
const fill = (template, args) => args.reduce((text, arg, i) => text.split(`{${i}}`).join(String(arg)), template);
const rel = (t) => "t+" + Math.max(0, t - state.epoch) + "s";
const field = (list, name) => {
  const found = (list || []).find(([k]) => k === name);
  return found ? found[1] : null;
};

// The OAuth error code on the wire (typed in the trace; no header is parsed here).
const errorOf = (x) => x.error || "";

// An event's own lines (step label, note, check, network line, role's reason), rendered
// by the server in every language.
const said = (event) => (event.text && event.text[state.lang]) || {};
const inLang = (both) => (both && typeof both === "object" ? both[state.lang] || both.en : both || "");

function statusClass(status) {
  if (status >= 500) return "grey";
  return status < 400 ? "ok" : "bad";
}

function responseNarration(x) {
  const l = words().letters[x.response_letter];
  if (x.status >= 500) return words().no_answer;
  return x.status < 400 ? l.ok : l.fail;
}

// ---------------------------------------------------------------- language

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = ui(node.getAttribute("data-i18n"));
  }
  for (const letter of LETTERS) {
    const label = document.querySelector(`#arrow-${letter} text:not(.badge)`);
    if (label) label.textContent = `(${letter}) ${words().letters[letter].arrow}`;
  }
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.classList.toggle("selected", b.getAttribute("data-lang") === state.lang);
  }
  document.title = ui("title");
  renderAll();
}

function setLang(lang) {
  state.lang = lang;
  try { localStorage.setItem("figure2-lang", lang); } catch (_) { /* private mode */ }
  applyLang();
}

// ---------------------------------------------------------------- rendering

function renderAll() {
  if (state.scenario) {
    document.getElementById("scenario-title").textContent = `${state.scenario.id}: ${inLang(state.scenario.title)}`;
  }
  renderPresets();
  renderStatus();
  renderTimeline();
  renderDetails();
  renderLineage();
  renderHoldings();
}

// The preset selector: every refresh policy, labelled in the page's language.
function renderPresets() {
  const select = document.getElementById("preset");
  const options = state.presets.map((p) =>
    el("option", { value: p.name, title: p.source || null, text: inLang(p.label) }));
  if (options.length) select.replaceChildren(...options);
  select.value = state.preset;
  const note = document.getElementById("preset-note");
  note.hidden = !state.preset;
  note.textContent = ui("preset_note");
}

function renderStatus() {
  const s = state.status;
  const conn = document.getElementById("connection");
  conn.className = state.connected ? "on" : "off";
  conn.textContent = state.connected ? ui("connected") : ui("disconnected");
  document.getElementById("clock").textContent = s ? `${ui("clock")} ${rel(s.t)}` : "";
  const next = document.getElementById("next");
  if (s && s.next) next.textContent = `${ui("next")} ${s.cursor + 1}/${s.total}: ${inLang(s.next)}`;
  else if (s) next.textContent = ui("finished");
  else next.textContent = "";
  const verdict = document.getElementById("verdict");
  verdict.className = state.verdict === null ? "" : state.verdict ? "passed" : "failed";
  verdict.textContent = state.verdict === null ? "" : state.verdict ? "✔ " + ui("passed") : "✘ " + ui("failed");
  for (const id of ["run", "step"]) {
    document.getElementById(id).disabled = !!(s && (s.busy || !s.next));
  }
  const gen = document.getElementById("generation");
  const family = state.lineage.families.filter((f) => f.client_id === (s ? s.client : "demo-client")).pop();
  const count = family ? family.generations.length : 1;
  if (gen.options.length !== count) {
    const keep = gen.value;
    gen.replaceChildren(...Array.from({ length: count }, (_, i) => el("option", { value: i, text: `rt #${i}` })));
    gen.value = Number(keep) < count ? keep : "0";
  }
}

function renderTimeline() {
  const list = document.getElementById("timeline");
  const items = [];
  let current = null;
  const ensureStep = () => {
    if (!current) {
      current = { node: el("li", { class: "step" }), exchanges: el("ol", { class: "exchanges" }), checks: null };
      current.node.append(current.exchanges);
      items.push(current.node);
    }
    return current;
  };
  state.events.forEach((event, index) => {
    switch (event.event) {
      case "scenario":
        break;
      case "step": {
        current = null;
        const s = ensureStep();
        s.node.setAttribute("data-number", event.number);
        s.node.prepend(
          el("div", { class: "step-head" }, `${event.number}. ${said(event).line}`, el("span", { class: "t", text: rel(event.t) })),
          said(event).note ? el("p", { class: "note", text: said(event).note }) : "",
        );
        break;
      }
      case "exchange": {
        const s = ensureStep();
        s.checks = null;
        const x = event;
        const error = errorOf(x);
        const row = el(
          "li",
          {
            class: `exchange ${statusClass(x.status)}${state.selected === index ? " selected" : ""}`,
            "data-index": index,
            "data-request": x.request_letter,
            "data-response": x.response_letter,
            "data-status": x.status,
            "data-error": error,
            onclick: () => select(index, true),
          },
          el("span", { class: "letters", text: `(${x.request_letter})→(${x.response_letter})` }),
          el("span", { class: "what", text: `${x.client_id} → ${x.to}: ${x.method} ${x.path}` }),
          el("span", { class: "status", text: error ? `${x.status} ${error}` : String(x.status) }),
          el("span", { class: "narration", text: `${words().letters[x.request_letter].ok} ${responseNarration(x)}` }),
          said(x).line ? el("span", { class: "rejection", text: `⚠ ${said(x).line}` }) : "",
        );
        s.exchanges.append(row);
        break;
      }
      case "resource_owner":
        ensureStep().node.append(el("div", { class: "extra owner", text: `(${words().phrases.resource_owner}) ${said(event).line}` }));
        break;
      case "network":
        ensureStep().node.append(el("div", { class: "extra network", text: said(event).line }));
        break;
      case "clock":
        ensureStep().node.append(el("div", { class: "extra clock", text: fill(words().phrases.clock, [event.advanced_by, rel(event.t)]) }));
        break;
      case "check": {
        const s = ensureStep();
        if (!s.checks) {
          s.checks = el("div", { class: "checks" });
          s.node.append(s.checks);
        }
        s.checks.append(el("span", { class: event.ok ? "check" : "check fail", text: `${event.ok ? "✔" : "✘"} ${said(event).line}` }));
        break;
      }
      case "done": {
        current = null;
        const text = event.passed
          ? "✔ " + fill(words().phrases.passed, [event.steps, event.exchanges])
          : "✘ " + fill(words().phrases.failed, [event.failures.length]) + ": " + said(event).failures.join("; ");
        items.push(el("li", { class: `done-line ${event.passed ? "passed" : "failed"}`, text }));
        break;
      }
    }
  });
  const box = list.parentElement;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  list.replaceChildren(...items);
  if (atBottom || !state.pinned) box.scrollTop = box.scrollHeight;
}

// The access token seen before exchange `index` that differs from its own.
function previousToken(index, token) {
  for (let i = index - 1; i >= 0; i--) {
    const e = state.events[i];
    if (e.event === "exchange" && e.access_token && e.access_token.token !== token) return e.access_token;
  }
  return null;
}

function jwtRows(part, now, before) {
  const rows = [];
  const keys = Object.keys(now || {});
  for (const k of Object.keys(before || {})) if (!keys.includes(k)) keys.push(k);
  for (const k of keys) {
    const v = now ? now[k] : undefined;
    const was = before ? before[k] : undefined;
    const changed = before !== null && JSON.stringify(v) !== JSON.stringify(was);
    const show = (value) => (value === undefined ? "—" : typeof value === "string" ? value : JSON.stringify(value));
    const value = el("td", {}, show(v));
    if (TIME_CLAIMS.includes(k) && typeof v === "number") value.append(el("span", { class: "rel", text: `(${rel(v)})` }));
    if (changed && was !== undefined) value.append(el("span", { class: "was", text: show(was) }));
    rows.push(el("tr", { class: changed ? "changed" : "", "data-key": k }, el("td", { class: "part", text: part }), el("td", { class: "k", text: k }), value));
  }
  return rows;
}

function renderDetails() {
  const box = document.getElementById("details");
  const x = state.selected !== null ? state.events[state.selected] : null;
  if (!x || x.event !== "exchange") {
    box.replaceChildren(el("p", { class: "hint", text: ui("select_hint") }));
    return;
  }
  const L = words().letters;
  const error = errorOf(x);
  const parts = [
    el("p", { class: "title", text: `(${x.request_letter}) → (${x.response_letter})  ${x.client_id} → ${x.to}  ${x.method} ${x.path}  ${x.status}${error ? " " + error : ""}  · ${rel(x.t)}` }),
    el("div", { class: "says" },
      el("p", {}, el("b", { text: `(${x.request_letter}) ` }), L[x.request_letter].ok),
      el("p", {}, el("b", { text: `(${x.response_letter}) ` }), responseNarration(x)),
      said(x).line ? el("p", { class: "rejection", text: `⚠ ${said(x).line}` }) : ""),
    el("h3", { text: ui("rfc") }),
    el("div", { class: "rfc" },
      [x.request_letter, x.response_letter].map((letter) =>
        el("p", {},
          el("b", { text: `(${letter}) ` }),
          L[letter].rfc, " ",
          L[letter].citations.map((c) => el("a", { href: c.url, target: "_blank", rel: "noopener", text: c.label }))))),
    el("div", { class: "raw" },
      el("div", {}, el("h3", { text: ui("request") }), el("pre", { class: "raw-request", text: x.raw.request })),
      el("div", {}, el("h3", { text: ui("response") }), el("pre", { class: "raw-response", text: x.raw.response })),
      el("p", { class: "note", text: ui("raw_note") })),
  ];
  const jwt = x.access_token;
  if (jwt) {
    const before = previousToken(state.selected, jwt.token);
    const changed = [];
    if (before) {
      for (const [part, now, was] of [["header", jwt.header, before.header], ["claims", jwt.claims, before.claims]]) {
        const keys = new Set([...Object.keys(now), ...Object.keys(was)]);
        for (const k of keys) if (JSON.stringify(now[k]) !== JSON.stringify(was[k])) changed.push(k);
      }
    }
    parts.push(
      el("h3", {}, `${ui("jwt")} · `, el("span", { class: "tok", text: jwt.token }), ` (${ui(jwt.role)})`),
      el("p", { class: "jwt-note" },
        before
          ? [`${ui("changed_since")} ${before.token}: `, changed.flatMap((k, i) => [i ? " " : "", el("span", { class: "changed-key", text: k })])]
          : ui("first_token")),
      el("table", { class: "jwt" },
        el("tbody", {},
          jwtRows(ui("jwt_header"), jwt.header, before ? before.header : null),
          jwtRows(ui("jwt_claims"), jwt.claims, before ? before.claims : null))),
    );
  }
  box.replaceChildren(...parts);
}

function renderLineage() {
  const box = document.getElementById("lineage");
  const families = state.lineage.families || [];
  if (!families.length) {
    box.replaceChildren(el("p", { class: "empty", text: ui("no_family") }));
    return;
  }
  box.replaceChildren(
    ...families.map((f) =>
      el("div", { class: "family", "data-state": f.state, "data-number": f.number },
        el("div", { class: "family-head" },
          el("b", { text: `${ui("family")} ${f.number}` }),
          el("span", { text: f.client_id }),
          el("span", { text: `${ui("granted")} ${rel(f.created_at)}` }),
          el("span", { class: "state", text: ui(f.state) + (f.ended_at !== null ? ` · ${rel(f.ended_at)}` : "") })),
        el("ol", { class: "chain" },
          f.generations.map((g) =>
            el("li", { class: "gen", "data-status": g.status, "data-token": g.token },
              el("span", { class: "tok", text: `#${g.generation} ${g.token}` }),
              el("span", { class: "lbl", text: ui(g.status) }),
              el("span", { class: "when", text: `${rel(g.issued_at)}${g.expires_at !== null ? " → " + rel(g.expires_at) : ""}` }),
              g.replayed ? el("span", { class: "flag", text: "⚠ " + ui("replayed") }) : "",
              g.delivered ? "" : el("span", { class: "flag lost", text: "✉ " + ui("never_delivered") })))))),
  );
}

// What the client holds, from its last successful token response.
function renderHoldings() {
  let at = "", rt = "";
  for (const e of state.events) {
    if (e.event !== "exchange" || e.status !== 200 || !"AG".includes(e.request_letter)) continue;
    const a = field(e.response, "access_token");
    const r = field(e.response, "refresh_token");
    if (a) at = a.split(" ")[0];
    if (r && r.startsWith("rt#")) rt = r;
  }
  document.getElementById("holds-at").textContent = at;
  document.getElementById("holds-rt").textContent = rt;
  const families = state.lineage.families || [];
  const live = families.filter((f) => f.state === "live").length;
  document.getElementById("as-families").textContent = families.length ? fill(ui("families_n"), [families.length]) : "";
  document.getElementById("as-live").textContent = families.length ? fill(ui("live_n"), [live]) : "";
}

function select(index, byUser) {
  state.selected = index;
  if (byUser) state.pinned = true;
  for (const row of document.querySelectorAll(".exchange")) {
    row.classList.toggle("selected", Number(row.getAttribute("data-index")) === index);
  }
  showOnFigure(state.events[index]);
  renderDetails();
}

// The selected exchange's arrows show its own outcome.
function showOnFigure(x) {
  for (const g of document.querySelectorAll("#figure .arrow")) {
    const letter = g.getAttribute("data-letter");
    g.classList.toggle("selected", !!x && (letter === x.request_letter || letter === x.response_letter));
  }
  if (!x || x.event !== "exchange" || state.animating) return;
  const response = document.getElementById(`arrow-${x.response_letter}`);
  response.classList.remove("ok", "bad", "grey");
  response.classList.add("done", statusClass(x.status));
  const error = errorOf(x);
  response.querySelector("text.badge").textContent = error ? `${x.status} ${error}` : String(x.status);
}

// ---------------------------------------------------------------- animation

function enqueue(x) {
  state.queue.push(x);
  if (!state.animating) animateNext();
}

function moveAlong(line, ms) {
  const packet = document.getElementById("packet");
  const [x1, y1, x2, y2] = ["x1", "y1", "x2", "y2"].map((a) => Number(line.getAttribute(a)));
  return new Promise((resolve) => {
    const start = performance.now();
    packet.classList.add("moving");
    const frame = (now) => {
      const k = Math.min(1, (now - start) / ms);
      const e = k < 0.5 ? 2 * k * k : 1 - Math.pow(-2 * k + 2, 2) / 2;
      packet.setAttribute("cx", x1 + (x2 - x1) * e);
      packet.setAttribute("cy", y1 + (y2 - y1) * e);
      if (k < 1) requestAnimationFrame(frame);
      else {
        packet.classList.remove("moving");
        resolve();
      }
    };
    requestAnimationFrame(frame);
  });
}

async function animateNext() {
  const x = state.queue.shift();
  if (!x) {
    state.animating = false;
    return;
  }
  state.animating = true;
  // Keep up when many exchanges arrive at once (Run): shorter moves.
  const ms = state.queue.length > 3 ? 180 : 420;
  const request = document.getElementById(`arrow-${x.request_letter}`);
  const response = document.getElementById(`arrow-${x.response_letter}`);
  const cls = statusClass(x.status);
  for (const g of [request, response]) g.classList.remove("ok", "bad", "grey", "done");
  request.classList.add("active");
  await moveAlong(request.querySelector("line"), ms);
  request.classList.remove("active");
  request.classList.add("done");
  response.classList.add("active", cls);
  const badge = response.querySelector("text.badge");
  const error = errorOf(x);
  badge.textContent = error ? `${x.status} ${error}` : String(x.status);
  await moveAlong(response.querySelector("line"), ms);
  response.classList.remove("active");
  response.classList.add("done");
  animateNext();
}

// ---------------------------------------------------------------- events

function onReset(data) {
  state.scenario = data.scenario;
  state.presets = data.presets || [];
  state.preset = data.preset || "";
  state.epoch = data.epoch;
  state.events = [];
  state.lineage = { families: [] };
  state.selected = null;
  state.pinned = false;
  state.queue = [];
  state.verdict = null;
  for (const g of document.querySelectorAll("#figure .arrow")) {
    g.classList.remove("ok", "bad", "grey", "done", "active", "selected");
    g.querySelector("text.badge").textContent = "";
  }
  document.getElementById("failure").textContent = "";
  renderAll();
}

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    renderAll();
  });
}

function onTrace(data) {
  const event = data.event;
  state.events[data.index] = event;
  if (event.event === "exchange") {
    enqueue(event);
    if (!state.pinned) state.selected = data.index;
  }
  if (event.event === "done") state.verdict = event.passed;
  scheduleRender();
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => {
    state.connected = true;
    renderStatus();
  });
  source.addEventListener("error", () => {
    state.connected = false;
    renderStatus();
  });
  source.addEventListener("reset", (m) => onReset(JSON.parse(m.data)));
  source.addEventListener("trace", (m) => onTrace(JSON.parse(m.data)));
  source.addEventListener("lineage", (m) => {
    state.lineage = JSON.parse(m.data);
    scheduleRender();
  });
  source.addEventListener("status", (m) => {
    state.status = JSON.parse(m.data);
    scheduleRender();
  });
  source.addEventListener("failure", (m) => {
    document.getElementById("failure").textContent = JSON.parse(m.data).message;
  });
}

async function command(name, query) {
  document.getElementById("failure").textContent = "";
  try {
    const response = await fetch(`/api/${name}${query ? "?" + query : ""}`, { method: "POST", headers: { "x-figure2-live": "1" } });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      document.getElementById("failure").textContent = body.error || `${name}: ${response.status}`;
    }
  } catch (e) {
    document.getElementById("failure").textContent = String(e);
  }
}

async function init() {
  state.i18n = await (await fetch("/api/i18n")).json();
  try {
    const saved = localStorage.getItem("figure2-lang");
    if (saved && state.i18n[saved]) state.lang = saved;
  } catch (_) { /* private mode */ }
  const on = (id, f) => document.getElementById(id).addEventListener("click", f);
  on("run", () => command("run"));
  on("step", () => command("step"));
  on("advance", () => command("advance", "seconds=" + encodeURIComponent(document.getElementById("seconds").value || "0")));
  on("call", () => command("call", "resource=read"));
  on("refresh", () => command("refresh"));
  on("replay", () => command("replay", "generation=" + encodeURIComponent(document.getElementById("generation").value || "0")));
  on("revoke", () => command("revoke"));
  on("restart", () => command("restart"));
  on("reset", () => command("reset"));
  document.getElementById("preset").addEventListener("change", (e) => command("preset", "name=" + encodeURIComponent(e.target.value)));
  for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => setLang(b.getAttribute("data-lang")));
  applyLang();
  connect();
}

init();
