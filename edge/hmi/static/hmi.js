"use strict";
// The operator's page: live parts per camera, recent rejects, health, history and
// feedback. Plain JavaScript, no build step and nothing from the internet: the edge box
// may be offline. Updates arrive as Server-Sent Events; drawing is throttled so a fast
// line does not flood the browser.

const state = {
  me: null,
  latest: new Map(),    // camera -> newest part
  recent: [],           // newest rejected parts first
  byId: new Map(),      // inspection id -> part (what is on screen)
  selected: null,
  dirty: true,
};
const RECENT_MAX = 12;
const DRAW_EVERY_MS = 250;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("logged out");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

function remember(part) {
  const known = state.byId.get(part.inspection_id);
  const merged = known ? Object.assign(known, part) : part;
  state.byId.set(part.inspection_id, merged);
  return merged;
}

function onResult(part) {
  part = remember(part);
  state.latest.set(part.source, part);
  if (part.verdict === "NG") {
    state.recent.unshift(part);
    state.recent.length = Math.min(state.recent.length, RECENT_MAX);
  }
  // Forget parts no longer on screen so a long shift does not grow the page's memory.
  const shown = new Set([...state.latest.values(), ...state.recent, state.selected].filter(Boolean));
  for (const [id, p] of state.byId) if (!shown.has(p)) state.byId.delete(id);
  state.dirty = true;
}

function onExplanation(update) {
  const part = state.byId.get(update.inspection_id);
  if (part) {
    Object.assign(part, update);
    state.dirty = true;
  }
}

function onReview(update) {
  const part = state.byId.get(update.inspection_id);
  if (part) {
    part.review = update.review;
    state.dirty = true;
  }
}

function partCard(part) {
  const card = document.getElementById("part-card").content.firstElementChild.cloneNode(true);
  card.dataset.id = part.inspection_id;
  card.classList.add(part.verdict.toLowerCase());
  const frame = card.querySelector(".frame");
  const overlay = card.querySelector(".overlay");
  if (part.image) frame.src = `/media/${encodeURIComponent(part.inspection_id)}/image`;
  else frame.replaceWith(el("div", { class: "no-image muted" }, "image not kept"));
  if (part.mask) overlay.src = `/media/${encodeURIComponent(part.inspection_id)}/overlay`;
  else overlay.remove();
  const verdict = card.querySelector(".verdict");
  verdict.textContent = part.verdict;
  verdict.classList.add(part.verdict.toLowerCase());
  card.querySelector(".camera").textContent = part.source;
  card.querySelector(".when").textContent = new Date(part.captured_unix_s * 1000).toLocaleTimeString();
  const numbers = [`score ${part.score.toFixed(3)}`];
  if (part.verdict === "NG") {
    numbers.push(`class ${part.defect_class || "unknown"} (${(100 * part.class_confidence).toFixed(0)} %)`);
    numbers.push(`${part.regions.length} region(s)`);
  }
  if (part.latency_ms != null) numbers.push(`${part.latency_ms.toFixed(1)} ms`);
  if (part.reason) numbers.push(part.reason);
  card.querySelector(".numbers").textContent = numbers.join(" · ");
  const explanation = card.querySelector(".explanation");
  if (part.explanation) {
    explanation.textContent = part.explanation;
    if (part.consistent === false) {
      explanation.classList.add("inconsistent");
      explanation.prepend(el("span", { class: "badge warn" }, `check: ${part.disagreements.join(", ")}`), " ");
    } else if (part.consistent === true) {
      explanation.prepend(el("span", { class: "badge ok" }, "consistent"), " ");
    }
  } else if (part.verdict === "NG") {
    explanation.textContent = "explanation pending...";
    explanation.classList.add("muted");
  } else {
    explanation.remove();
  }
  if (part.review) {
    card.querySelector(".review").textContent =
      `judged ${part.review.action.replace("_", " ")}${part.review.defect_class ? " (" + part.review.defect_class + ")" : ""} by ${part.review.user}`;
  }
  card.querySelector(".actions").append(...actionsFor(part));
  card.querySelector(".picture").addEventListener("click", () => select(part));
  return card;
}

function classPicker(preselect) {
  const picker = el("select", { class: "class-picker", "aria-label": "defect class" });
  for (const name of state.me.class_names || []) {
    const option = el("option", { value: name }, name);
    if (name === preselect) option.selected = true;
    picker.append(option);
  }
  return picker;
}

function actionsFor(part) {
  if (!state.me || state.me.role !== "operator" || !part.image) return [];
  const send = (action, picker) => () => judge(part, action, picker ? picker.value : null);
  if (part.verdict === "NG") {
    const picker = classPicker(part.defect_class);
    return [
      el("button", { type: "button", class: "confirm", onclick: send("confirmed", picker) }, "Confirm defect"),
      el("button", { type: "button", class: "false-alarm", onclick: send("false_alarm") }, "False alarm"),
      picker,
      el("button", { type: "button", class: "reclass", onclick: send("reclass", picker) }, "Correct class"),
    ];
  }
  if (part.verdict === "OK") {
    const picker = classPicker(null);
    return [picker, el("button", { type: "button", class: "missed", onclick: send("missed_defect", picker) }, "Missed defect")];
  }
  return [];
}

async function judge(part, action, defectClass) {
  try {
    const record = await api("/api/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": state.me.csrf },
      body: JSON.stringify({ inspection_id: part.inspection_id, action, defect_class: defectClass }),
    });
    part.review = record;
    state.dirty = true;
  } catch (error) {
    alert(`Not saved: ${error.message}`);
  }
}

function select(part) {
  state.selected = remember(part);
  state.dirty = true;
}

function draw() {
  if (!state.dirty) return;
  state.dirty = false;
  const cameras = document.getElementById("cameras");
  if (state.latest.size) cameras.replaceChildren(...[...state.latest.values()].map(partCard));
  const strip = document.getElementById("strip");
  if (state.recent.length) {
    strip.replaceChildren(
      ...state.recent.map((part) => {
        const thumb = el("button", { type: "button", class: "thumb", title: part.defect_class || "unknown" });
        thumb.append(
          el("img", { src: `/media/${encodeURIComponent(part.inspection_id)}/image`, alt: "rejected part" }),
          el("span", {}, `${part.source} · ${part.defect_class || "unknown"}`)
        );
        thumb.addEventListener("click", () => select(part));
        return thumb;
      })
    );
  }
  const section = document.getElementById("detail-section");
  if (state.selected) {
    section.hidden = false;
    document.getElementById("detail").replaceChildren(partCard(state.selected));
  }
}

// The station's health at a glance, grouped as an operator reads it; every counter of
// /health stays available below, under "all figures".
function healthGroups(health) {
  const counts = health.counts || {};
  const parts = health.components || {};
  const perCamera = (family) => counts[family] || {};
  const cameras = new Set([...Object.keys(perCamera("captured")), ...Object.keys(health.fps || {})]);
  const sum = (family, camera) =>
    Object.entries(perCamera(family)).filter(([k]) => k === camera || k.startsWith(camera + "/")).reduce((a, [, v]) => a + v, 0);
  const groups = [];
  const results = counts.results || {};
  groups.push(["Verdicts", [["OK", results.OK || 0], ["NG", results.NG || 0], ["rejected (not inspected)", results.REJECTED || 0],
    ["last result", health.last_result_age_s == null ? "-" : `${health.last_result_age_s.toFixed(1)} s ago`]]]);
  for (const camera of [...cameras].sort()) {
    const fps = (health.fps || {})[camera];
    groups.push([`Camera ${camera}`, [["frames / s", fps == null ? "-" : fps.toFixed(1)], ["frames", sum("captured", camera)], ["dropped", sum("dropped", camera)],
      ["stalls", sum("stalls", camera)], ["restarts", sum("restarts", camera)]]]);
  }
  if (parts.mqtt) {
    const m = parts.mqtt;
    groups.push(["To the PLC (MQTT)", [["broker", m.connected ? "connected" : "NOT connected"],
      ["waiting in the outbox", m.outbox_depth_rows], ["delivered", m.acked], ["outbox full", m.outbox_full_alarm ? "YES" : "no"]]]);
  }
  if (parts.explainer) {
    const e = parts.explainer;
    groups.push(["Explanations", [["explained", e.explained], ["waiting", e.backlog], ["dropped", e.dropped],
      ["flagged for a check", e.inconsistent]]]);
  }
  if (parts.hmi) {
    const h = parts.hmi;
    groups.push(["This page", [["pages open", h.clients], ["parts stored", h.written], ["parts not stored (busy)", h.dropped]]]);
  }
  return groups;
}

function allFigures(health) {
  const rows = [];
  for (const [family, table] of Object.entries(health.counts || {})) {
    for (const [key, value] of Object.entries(table)) rows.push([`${family} ${key}`, String(value)]);
  }
  for (const [name, stats] of Object.entries(health.components || {})) {
    for (const [key, value] of Object.entries(stats || {})) {
      if (typeof value !== "object") rows.push([`${name} ${key}`, String(value)]);
    }
  }
  return rows;
}

async function refreshHealth() {
  try {
    const health = await api("/api/health");
    const badge = document.getElementById("status");
    const problems = health.problems || [];
    badge.textContent = problems.length ? `${health.status}: ${problems.join("; ")}` : health.status;
    badge.className = `badge ${health.status === "ok" ? "ok" : "warn"}`;
    const table = (rows) => el("table", { class: "figures" }, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v)))));
    const cards = healthGroups(health).map(([title, rows]) => el("div", { class: "card health-card" }, el("h3", {}, title), table(rows)));
    const details = el("details", {}, el("summary", {}, "all figures"), table(allFigures(health)));
    const open = document.querySelector("#health details")?.open;
    details.open = Boolean(open);
    document.getElementById("health").replaceChildren(...cards, details);
  } catch (error) {
    document.getElementById("status").textContent = "station unreachable";
  }
}

async function refreshHistory(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams({ limit: "50" });
  const pick = (id, key) => { const v = document.getElementById(id).value; if (v) params.set(key, v); };
  pick("f-verdict", "verdict");
  pick("f-class", "class");
  pick("f-camera", "camera");
  const { items } = await api(`/api/history?${params}`);
  const head = el("tr", {}, ...["time", "camera", "verdict", "score", "class", "explanation", "judged"].map((h) => el("th", {}, h)));
  const rows = items.map((part) => {
    const row = el("tr", { class: part.verdict.toLowerCase() },
      el("td", {}, new Date(part.captured_unix_s * 1000).toLocaleTimeString()),
      el("td", {}, part.source),
      el("td", {}, part.verdict),
      el("td", {}, part.score.toFixed(3)),
      el("td", {}, part.defect_class || ""),
      el("td", {}, part.explanation ? (part.consistent === false ? "check" : "yes") : ""),
      el("td", {}, part.review ? part.review.action.replace("_", " ") : ""));
    row.addEventListener("click", () => select(part));
    return row;
  });
  document.getElementById("history").replaceChildren(head, ...rows);
  const cameras = document.getElementById("f-camera");
  for (const camera of new Set(items.map((p) => p.source))) {
    if (![...cameras.options].some((o) => o.value === camera)) cameras.append(el("option", { value: camera }, camera));
  }
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("result", (e) => onResult(JSON.parse(e.data)));
  events.addEventListener("explanation", (e) => onExplanation(JSON.parse(e.data)));
  events.addEventListener("review", (e) => onReview(JSON.parse(e.data)));
  events.addEventListener("open", () => document.body.classList.remove("offline"));
  events.addEventListener("error", () => document.body.classList.add("offline"));
}

async function main() {
  state.me = await api("/api/me");
  document.getElementById("title").textContent = `${state.me.line} / ${state.me.station}`;
  document.getElementById("model").textContent = `model ${state.me.model_id}`;
  document.getElementById("who").textContent = `${state.me.user} (${state.me.role})`;
  document.body.classList.add(`role-${state.me.role}`);
  const classes = document.getElementById("f-class");
  for (const name of state.me.class_names || []) classes.append(el("option", { value: name }, name));
  classes.append(el("option", { value: "unknown" }, "unknown"));
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST", headers: { "X-CSRF-Token": state.me.csrf } });
    window.location.assign("/login");
  });
  document.getElementById("filters").addEventListener("submit", refreshHistory);
  const live = await api("/api/live");
  for (const part of [...live.recent_ng].reverse()) onResult(part);
  for (const part of live.latest) onResult(part);
  state.recent.length = Math.min(state.recent.length, RECENT_MAX);
  connect();
  setInterval(draw, DRAW_EVERY_MS);
  refreshHealth();
  setInterval(refreshHealth, 2000);
  refreshHistory();
  draw();
}

main();
