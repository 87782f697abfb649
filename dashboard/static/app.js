// bulktag dashboard: plain JavaScript, no build step. Polls the JSON API and redraws.
// Every value from Redis (resource ids, tag values, providers' messages) reaches the page as
// a text node or an attribute value through el(); nothing is ever assigned to innerHTML.
"use strict";

const TOKEN_KEY = "bulktag.dashboard.token";
const state = {
  config: { actions: false, refresh_ms: 1500, statuses: [] },
  selected: null,            // campaign id shown in the detail panel
  detail: null,              // its last status document
  outcomes: { cursors: [0], status: "", q: "" },
  timer: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: the Content-Security-Policy forbids style attributes.
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// ---- formatting -------------------------------------------------------------------------
const int = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const rate = (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(n >= 100 ? 0 : 1));
function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
const when = (epoch) => (epoch ? new Date(epoch * 1000).toLocaleTimeString("en-GB") : "–");
const where = (t) => `${t.provider}:${t.project || t.region}`;

function bar(done, total, extraClass) {
  const pct = total ? Math.min(100, (100 * done) / total) : 0;
  return el("div", { class: `bar ${extraClass || ""}`, title: `${pct.toFixed(1)} %` },
    el("div", { class: "fill", style: { width: `${pct.toFixed(2)}%` } }),
    el("span", { class: "pct" }, `${pct.toFixed(1)} %`));
}
const badge = (text, kind) => el("span", { class: `badge ${kind || text}` }, text);

function statusMix(byStatus) {
  const parts = Object.entries(byStatus).filter(([, n]) => n > 0);
  if (!parts.length) return el("span", { class: "muted" }, "–");
  return el("span", { class: "mix" },
    parts.map(([s, n]) => el("span", { class: `chip ${s}` }, `${s.replace("_", " ")} ${int(n)}`)));
}
function codeList(byCode) {
  const parts = Object.entries(byCode).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  if (!parts.length) return el("span", { class: "muted" }, "–");
  return el("span", { class: "mix" },
    parts.map(([code, n]) => el("span", { class: "chip code" }, `${code} ${int(n)}`)));
}
function sparkline(series) {
  if (!series || !series.length) return el("span", { class: "muted" }, "–");
  const max = Math.max(1, ...series);
  return el("span", { class: "spark", title: "calls per second, last 60 s" },
    series.map((v) => el("i", { style: { height: `${Math.round((100 * v) / max)}%` } })));
}

// ---- API --------------------------------------------------------------------------------
async function getJSON(path) {
  const answer = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}`);
  return answer.json();
}
const token = () => sessionStorage.getItem(TOKEN_KEY);

async function act(action) {
  const cid = state.selected;
  const answer = await fetch(`/api/campaigns/${encodeURIComponent(cid)}/${action}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
  });
  const body = await answer.json().catch(() => ({}));
  if (answer.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    renderMode();
    toast("The token was refused; enter it again.", true);
  } else if (!answer.ok) {
    toast(body.error || `HTTP ${answer.status}`, true);
  } else {
    toast(`${cid}: ${body.message}`);
  }
  refresh();
}

// ---- rendering --------------------------------------------------------------------------
function tile(label, value, id) {
  return el("div", { class: "tile" }, el("div", { class: "label" }, label),
    el("div", { class: "value", id }, value));
}
function renderTiles(data) {
  const t = data.totals;
  $("tiles").replaceChildren(
    tile("active campaigns", int(t.active_campaigns), "tile-active"),
    tile("queued jobs", int(t.queued_jobs), "tile-queued"),
    tile("workers busy", `${int(t.busy_workers)} / ${int(t.workers)}`, "tile-workers"),
    tile("provider calls/s", rate(t.calls_per_s), "tile-calls"),
  );
}

function pausedWhy(doc) {
  return doc.targets.filter((t) => t.paused).map((t) => `${where(t)}: ${t.paused}`).join("; ");
}

function renderCampaigns(data) {
  const rows = data.campaigns.map((c) => {
    const s = c.by_status;
    return el("tr", {
      class: c.campaign_id === state.selected ? "selected clickable" : "clickable",
      dataset: { campaign: c.campaign_id },
      onclick: () => select(c.campaign_id),
    },
    el("td", { class: "mono" }, el("a", { href: `#campaign=${encodeURIComponent(c.campaign_id)}` }, c.campaign_id)),
    el("td", {}, badge(c.state)),
    el("td", {}, bar(c.done, c.resources, c.state)),
    el("td", { class: "num done" }, `${int(c.done)} / ${int(c.resources)}`),
    el("td", { class: "num" }, int(s.tagged)),
    el("td", { class: "num" }, int(s.not_found)),
    el("td", { class: "num" }, int(s.failed + s.invalid)),
    el("td", { class: "num" }, rate(c.rate_per_second_now)),
    el("td", { class: "num" }, duration(c.eta_s)),
    el("td", { class: "why" }, pausedWhy(c) || (c.state === "paused" ? "paused by operator" : "")));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 10, class: "empty" }, "No campaigns yet.")));
  $("campaigns").tBodies[0].replaceChildren(...rows);
  $("campaigns-note").textContent = data.campaigns_total > data.campaigns.length
    ? `newest ${data.campaigns.length} of ${int(data.campaigns_total)}` : "";
}

function stat(label, value, id) {
  return el("div", { class: "stat" }, el("div", { class: "label" }, label), el("div", { class: "value", id }, value));
}

function renderDetail(doc) {
  state.detail = doc;
  $("detail").hidden = false;
  $("detail-id").textContent = doc.campaign_id;
  const st = $("detail-state");
  st.textContent = doc.state;
  st.className = `badge ${doc.state}`;
  const s = doc.by_status;
  $("detail-stats").replaceChildren(
    stat("done", `${int(doc.done)} / ${int(doc.resources)}`, "detail-done"),
    stat("progress", bar(doc.done, doc.resources, doc.state)),
    stat("rate now", `${rate(doc.rate_per_second_now)} /s`, "detail-rate"),
    stat("ETA", duration(doc.eta_s), "detail-eta"),
    stat("tagged", int(s.tagged)), stat("not found", int(s.not_found)),
    stat("invalid", int(s.invalid)), stat("failed", int(s.failed)),
    stat("cancelled", int(s.cancelled)), stat("created", when(doc.created_at)),
  );
  $("targets").tBodies[0].replaceChildren(...doc.targets.map((t) => el("tr", {},
    el("td", {}, el("div", { class: "mono" }, where(t)),
      el("div", { class: "muted small" }, `${t.resource_type} · profile ${t.profile}`)),
    el("td", {}, bar(t.done, t.resources, t.paused ? "paused" : doc.state)),
    el("td", { class: "num" }, `${int(t.done)} / ${int(t.resources)}`),
    el("td", { class: "num" }, rate(t.rate_per_second_now)),
    el("td", { class: "num" }, duration(t.eta_s)),
    el("td", {}, statusMix(t.by_status)),
    el("td", {}, codeList(t.by_error_code)),
    el("td", { class: "why" }, t.paused || ""))));
  renderActions();
}

function renderActions() {
  const doc = state.detail;
  const unlocked = state.config.actions && !!token();
  for (const button of $("actions").querySelectorAll("button[data-action]")) {
    const action = button.dataset.action;
    const ended = doc && (doc.state === "done" || doc.state === "cancelled");
    let possible = !!doc;
    if (action === "pause") possible = possible && !ended && doc.state !== "paused";
    if (action === "resume") possible = possible && doc.state !== "cancelled" &&
      (doc.state === "paused" || doc.targets.some((t) => t.paused));
    if (action === "cancel") possible = possible && !ended;
    if (action === "retry") possible = possible && doc.by_status.failed > 0;
    button.disabled = !unlocked || !possible;
    button.title = unlocked ? "" : (state.config.actions ? "unlock with the actions token first" : "read-only dashboard");
  }
}

function renderQueues(data) {
  const rows = data.queues.map((q) => el("tr", {},
    el("td", { class: "mono" }, q.name), el("td", { class: "num" }, int(q.depth)),
    el("td", { class: "num" }, duration(q.oldest_age_s)), el("td", { class: "num" }, int(q.started)),
    el("td", { class: q.failed ? "num bad" : "num" }, int(q.failed)),
    el("td", { class: "num" }, int(q.scheduled)), el("td", { class: "num" }, int(q.deferred))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No queues.")));
  $("queues").tBodies[0].replaceChildren(...rows);
}

function renderWorkers(data) {
  const rows = data.workers.map((w) => el("tr", {},
    el("td", {}, w.host || "–"), el("td", { class: "mono small" }, w.name),
    el("td", {}, badge(w.state, w.state === "busy" ? "running" : "idle")),
    el("td", { class: "mono small ellipsis", title: w.current_job || "" }, w.current_job || "–"),
    el("td", { class: "num" }, w.heartbeat_age_s === null ? "–" : `${duration(w.heartbeat_age_s)} ago`),
    el("td", { class: "num" }, `${int(w.jobs_done)}${w.jobs_failed ? ` (${int(w.jobs_failed)} failed)` : ""}`)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No workers running.")));
  $("workers").tBodies[0].replaceChildren(...rows);
}

function renderLimits(data) {
  const rows = data.limits.map((r) => el("tr", {},
    el("td", {}, r.provider), el("td", { class: "mono" }, r.location),
    el("td", { class: "num" }, `${rate(r.configured)}${r.overridden ? " (set)" : ""}`),
    el("td", {}, el("div", { class: "inline" },
      bar(r.rate, r.configured, r.rate < r.configured ? "paused" : "running"),
      el("span", { class: "small muted" }, `${rate(r.rate)}/s`))),
    el("td", { class: "num" }, rate(r.calls_per_s)),
    el("td", {}, sparkline(r.series)),
    el("td", { class: r.throttled_recent ? "num bad" : "num" }, int(r.throttled_recent)),
    el("td", { class: "num" }, int(r.calls_total))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No limiter has run yet.")));
  $("limits").tBodies[0].replaceChildren(...rows);
}

// ---- outcomes ---------------------------------------------------------------------------
async function loadOutcomes() {
  const o = state.outcomes;
  const cid = state.selected;
  if (!cid) return;
  const params = new URLSearchParams({ cursor: o.cursors[o.cursors.length - 1], limit: 25 });
  if (o.status) params.set("status", o.status);
  if (o.q) params.set("q", o.q);
  const page = await getJSON(`/api/campaigns/${encodeURIComponent(cid)}/outcomes?${params}`);
  if (cid !== state.selected || o !== state.outcomes) return;
  // A rare status or an id prefix may match nothing in one server-side scan slice (each
  // answer is time-boxed): walk on by itself for a while instead of showing an empty page.
  if (!page.rows.length && page.cursor && (o.walked || 0) < 40) {
    o.walked = (o.walked || 0) + 1;
    o.cursors[o.cursors.length - 1] = page.cursor;
    return loadOutcomes();
  }
  o.walked = 0;
  const targets = state.detail ? state.detail.targets : [];
  const rows = page.rows.map((r) => el("tr", { dataset: { resource: r.resource_id } },
    el("td", { class: "mono" }, r.resource_id),
    el("td", { class: "small" }, targets[r.target] ? where(targets[r.target]) : `${r.provider}:${r.location}`),
    el("td", {}, badge(r.status)),
    el("td", { class: "mono small" }, r.error_code || ""),
    el("td", { class: "message" }, r.error_message || ""),
    el("td", { class: "num" }, int(r.attempts)),
    el("td", { class: "small" }, when(r.finished_at)),
    el("td", { class: "mono small muted" }, r.request_id || "")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 8, class: "empty" },
    page.cursor ? "Nothing on this stretch yet: try the next page." : "No outcomes match.")));
  $("outcomes").tBodies[0].replaceChildren(...rows);
  o.next = page.cursor;
  $("outcome-next").disabled = !page.cursor;
  $("outcome-first").disabled = o.cursors.length === 1;
  $("outcome-note").textContent = `page ${o.cursors.length} · ${page.rows.length} rows` +
    (page.cursor ? "" : " · end");
}

function searchOutcomes() {
  state.outcomes = { cursors: [0], status: $("outcome-status").value, q: $("outcome-search").value.trim() };
  loadOutcomes().catch((e) => toast(e.message, true));
}

// ---- navigation, polling, controls ------------------------------------------------------
function select(cid) {
  if (location.hash !== `#campaign=${encodeURIComponent(cid)}`) location.hash = `campaign=${encodeURIComponent(cid)}`;
}
function fromHash() {
  const match = /^#campaign=(.+)$/.exec(location.hash);
  const cid = match ? decodeURIComponent(match[1]) : null;
  if (cid === state.selected) return;
  state.selected = cid;
  state.detail = null;
  $("detail").hidden = !cid;
  $("outcome-search").value = "";
  $("outcome-status").value = "";
  state.outcomes = { cursors: [0], status: "", q: "" };
  $("outcomes").tBodies[0].replaceChildren();
  refresh().then(() => loadOutcomes()).catch((e) => toast(e.message, true));
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    const cid = state.selected;
    const [overview, detail] = await Promise.all([
      getJSON("/api/overview"),
      cid ? getJSON(`/api/campaigns/${encodeURIComponent(cid)}`).catch(() => null) : null,
    ]);
    renderTiles(overview);
    renderCampaigns(overview);
    renderQueues(overview);
    renderWorkers(overview);
    renderLimits(overview);
    if (cid && detail && cid === state.selected) renderDetail(detail);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString("en-GB")}`;
    $("live-dot").className = "dot ok";
  } catch (e) {
    $("updated").textContent = "disconnected; retrying";
    $("live-dot").className = "dot bad";
  } finally {
    state.timer = setTimeout(refresh, state.config.refresh_ms);
  }
}

function renderMode() {
  const mode = $("mode");
  const has = !!token();
  if (!state.config.actions) {
    mode.textContent = "read-only";
    mode.className = "badge idle";
  } else {
    mode.textContent = has ? "actions unlocked" : "actions locked";
    mode.className = `badge ${has ? "running" : "queued"}`;
  }
  $("token").hidden = !state.config.actions || has;
  $("token-save").hidden = !state.config.actions || has;
  $("token-clear").hidden = !has;
  if (state.detail) renderActions();
}

let toastTimer = null;
function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

const CONFIRM = {
  pause: ["Pause", "Workers stop starting calls for this campaign until it is resumed."],
  resume: ["Resume", "Clears every pause (the operator's and targets paused after authentication failures) and enqueues the parked work again."],
  cancel: ["Cancel", "Stops the campaign for good: every resource not done yet is recorded as cancelled. This cannot be undone."],
  retry: ["Retry failed", "Enqueues again every resource whose outcome is failed."],
};
function confirmAction(action) {
  const [verb, text] = CONFIRM[action];
  $("confirm-title").textContent = `${verb} campaign ${state.selected}?`;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = verb;
  $("confirm-yes").dataset.action = action;
  $("confirm").showModal();
}

async function start() {
  try {
    state.config = await getJSON("/api/config");
  } catch (e) { /* the first refresh shows the connection state */ }
  for (const s of state.config.statuses) $("outcome-status").append(el("option", { value: s }, s.replace("_", " ")));
  renderMode();
  $("token-save").addEventListener("click", () => {
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    renderMode();
  });
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") $("token-save").click(); });
  $("token-clear").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); renderMode(); });
  for (const button of $("actions").querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => confirmAction(button.dataset.action));
  }
  $("confirm-no").addEventListener("click", () => $("confirm").close());
  $("confirm-yes").addEventListener("click", () => {
    $("confirm").close();
    act($("confirm-yes").dataset.action);
  });
  $("detail-close").addEventListener("click", () => { location.hash = ""; });
  $("outcome-go").addEventListener("click", searchOutcomes);
  $("outcome-status").addEventListener("change", searchOutcomes);
  $("outcome-search").addEventListener("keydown", (e) => { if (e.key === "Enter") searchOutcomes(); });
  $("outcome-next").addEventListener("click", () => {
    if (!state.outcomes.next) return;
    state.outcomes.cursors.push(state.outcomes.next);
    loadOutcomes().catch((e) => toast(e.message, true));
  });
  $("outcome-first").addEventListener("click", () => {
    state.outcomes.cursors = [0];
    loadOutcomes().catch((e) => toast(e.message, true));
  });
  window.addEventListener("hashchange", fromHash);
  if (location.hash) fromHash(); else refresh();
}

document.addEventListener("DOMContentLoaded", start);
