// constellate's page: plain JS against the JSON API, nothing loaded from outside this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const MAP_W = 640, MAP_H = 460, MAP_PAD = 10;
const MAP_LABELS = { topic: 15, cluster: 12 }; // names drawn on the map: the largest groups of the level
const state = {
  clusters: [], // the live clusters, largest first
  topics: [], // the live topics, largest first ([] when the run has none)
  byId: new Map(), // cluster id -> cluster
  topicById: new Map(), // topic id -> topic
  topicOf: new Map(), // cluster id -> its topic's id
  topicRank: new Map(), // topic id -> its place in id order (its colour)
  selected: null, // { level: "cluster" | "topic", id }
  expanded: new Set(), // topic ids open in the catalogue
  level: localStorage.getItem("constellate-map-level") === "cluster" ? "cluster" : "topic",
  points: [],
  run: null,
  shownRows: 50,
  outlierLimit: 25,
  seq: { detail: 0, search: 0 },
};

function headers() {
  const key = localStorage.getItem("constellate-key");
  const h = { "Content-Type": "application/json" };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function api(method, path, body) {
  const resp = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const reason = data.error || resp.statusText;
    const details = (data.details || []).map((d) => d.reason).join("; ");
    throw new Error(details ? `${reason}: ${details}` : reason);
  }
  return data;
}

function showError(err) {
  const box = $("#error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

// A cluster's hue steps by the golden angle with its id; the few topics share the wheel evenly
// (by id order, so a topic keeps its colour while the set of topics stays the same).
function colour(id, alpha = 1) {
  if (id === null || id === undefined) return `rgba(120,120,120,${alpha})`;
  const rank = state.topicRank.get(id);
  if (rank !== undefined) {
    const n = state.topicRank.size;
    const light = n > 8 && rank % 2 ? 55 : 43;
    return `hsla(${((215 + (rank * 360) / n) % 360).toFixed(1)}, 62%, ${light}%, ${alpha})`;
  }
  const hue = (id * 137.508) % 360;
  return `hsla(${hue.toFixed(1)}, 65%, 45%, ${alpha})`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function sparkline(values) {
  const w = 60, h = 16;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  values = (values || []).filter((v) => typeof v === "number");
  if (values.length > 1) {
    const max = Math.max(...values), min = Math.min(...values);
    const span = max - min;
    const y = (v) => (span ? h - 1 - ((v - min) / span) * (h - 2) : h / 2); // a steady size: a level line
    const pts = values.map((v, i) => `${(i / (values.length - 1)) * (w - 2) + 1},${y(v)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#3a6ee8");
    svg.append(line);
  }
  svg.setAttribute("aria-label", `sizes ${values.join(", ")}`);
  return svg;
}

// -- the catalogue: topics, each opening into its clusters ----------------------------------------
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const entryOf = (level, id) => (level === "topic" ? state.topicById : state.byId).get(id);
const nameOf = (level, id) => entryOf(level, id)?.name || (id === null || id === undefined ? "unlabelled" : `${level} #${id}`);
const topicOfCluster = (id) => (id === null || id === undefined ? null : state.topicOf.get(id) ?? null);
const isSelected = (level, id) => state.selected !== null && state.selected.level === level && state.selected.id === id;

function clustersOf(topicId) {
  return state.clusters.filter((c) => topicOfCluster(c.cluster_id) === topicId);
}

async function loadClusters() {
  const [data, topics] = await Promise.all([
    api("GET", "/clusters"),
    api("GET", "/clusters?level=topic").catch(() => ({ clusters: [] })), // a run without topics: a flat list
  ]);
  state.run = data.run_id || null;
  state.clusters = data.clusters || [];
  state.topics = (topics.clusters || []).filter((t) => (t.level || "topic") === "topic");
  state.byId = new Map(state.clusters.map((c) => [c.cluster_id, c]));
  state.topicById = new Map(state.topics.map((t) => [t.cluster_id, t]));
  state.topicRank = new Map([...state.topicById.keys()].sort((a, b) => a - b).map((id, i) => [id, i]));
  state.topicOf = new Map();
  for (const t of state.topics) for (const c of t.children || []) state.topicOf.set(c, t.cluster_id);
  for (const c of state.clusters) {
    if (c.topic_id !== null && c.topic_id !== undefined && state.topicById.has(c.topic_id)) state.topicOf.set(c.cluster_id, c.topic_id);
  }
  for (const id of [...state.expanded]) if (!state.topicById.has(id)) state.expanded.delete(id);
  const counts = [state.topics.length ? plural(state.topics.length, "topic") : null, plural(state.clusters.length, "cluster")];
  $("#cluster-count").textContent = state.run ? counts.filter(Boolean).join(" · ") : "no run yet";
  renderCatalogue();
  renderFilter();
  renderMoveTargets();
}

function nameCell(entry, level, extra) {
  const id = entry.cluster_id;
  const name = entry.name || `${level} #${id}`;
  const line = el("div", { class: "name-line" });
  if (level === "topic") {
    const open = state.expanded.has(id);
    line.append(el("button", {
      class: "toggle", type: "button", "aria-expanded": String(open), title: open ? "hide its clusters" : "show its clusters",
      onclick: (e) => { e.stopPropagation(); toggleTopic(id); },
    }, open ? "▾" : "▸"));
  }
  line.append(el("span", { class: "swatch", style: `background:${colour(id)}` }), el("span", { class: "name", title: name }, name));
  if (entry.pinned) line.append(el("span", { class: "pin", title: "named by a human; later runs keep it" }, "pinned"));
  const keywords = (entry.keywords || []).join(", ");
  const words = [extra, keywords].filter(Boolean).join(" · ");
  return el("td", { class: "name-cell" }, line, el("span", { class: "keywords", title: words }, words || " "));
}

function catalogueRow(entry, level, topicId, extra) {
  const id = entry.cluster_id;
  const child = level === "cluster" && topicId !== null;
  const row = el(
    "tr",
    {
      class: `${level}${child ? " child" : ""}${isSelected(level, id) ? " selected" : ""}`,
      dataset: level === "topic" ? { topic: id } : { cluster: id, topic: topicId ?? "" },
      onclick: () => select(level, id).catch(showError),
    },
    nameCell(entry, level, extra),
    el("td", { class: "num" }, el("span", { class: "size" }, entry.size ?? ""), sparkline(entry.history)),
  );
  if (child && !state.expanded.has(topicId)) row.hidden = true;
  return row;
}

function renderCatalogue() {
  const rows = [];
  let top = 0;
  for (const t of state.topics) {
    if (top++ >= state.shownRows) break;
    const kids = clustersOf(t.cluster_id);
    rows.push(catalogueRow(t, "topic", null, plural(kids.length, "cluster")));
    for (const c of kids) rows.push(catalogueRow(c, "cluster", t.cluster_id));
  }
  for (const c of state.clusters) { // clusters without a known topic (or every cluster, when there are no topics)
    if (topicOfCluster(c.cluster_id) !== null) continue;
    if (top++ >= state.shownRows) break;
    rows.push(catalogueRow(c, "cluster", null));
  }
  $("#catalogue tbody").replaceChildren(...rows);
  $("#more-clusters").hidden = top <= state.shownRows;
}

function toggleTopic(id, open) {
  const show = open ?? !state.expanded.has(id);
  if (show) state.expanded.add(id); else state.expanded.delete(id);
  renderCatalogue();
}

function revealRow(level, id) { // scroll the catalogue panel (only) to a picked row
  const row = document.querySelector(`#catalogue tbody tr[data-${level}="${id}"]`);
  const panel = $("#catalogue-panel");
  if (!row || row.hidden) return;
  const top = row.getBoundingClientRect().top - panel.getBoundingClientRect().top;
  if (top < 40 || top > panel.clientHeight - 40) panel.scrollTop += top - panel.clientHeight / 3;
}

function renderFilter() {
  const options = [el("option", { value: "" }, "in all topics and clusters")];
  for (const t of state.topics) {
    options.push(el("option", { value: `topic:${t.cluster_id}` }, `${t.name || "topic #" + t.cluster_id} (topic, ${t.size ?? "?"})`));
    for (const c of clustersOf(t.cluster_id)) options.push(el("option", { value: `cluster:${c.cluster_id}` }, `\u2003${c.name || "cluster #" + c.cluster_id} (${c.size ?? "?"})`));
  }
  for (const c of state.clusters) {
    if (topicOfCluster(c.cluster_id) === null) options.push(el("option", { value: `cluster:${c.cluster_id}` }, `${c.name || "cluster #" + c.cluster_id} (${c.size ?? "?"})`));
  }
  $("#filter").replaceChildren(...options);
  syncFilter();
}

function syncFilter() {
  const filter = $("#filter");
  const want = state.selected ? `${state.selected.level}:${state.selected.id}` : "";
  filter.value = [...filter.options].some((o) => o.value === want) ? want : "";
}

function renderMoveTargets() {
  $("#move-topic").replaceChildren(
    el("option", { value: "" }, "move into topic…"),
    ...state.topics.map((t) => el("option", { value: t.cluster_id }, t.name || `topic #${t.cluster_id}`)),
  );
}

// Pick a cluster or a topic (id null: nothing): the catalogue, the map, the search and the panel follow.
async function select(level, id) {
  state.selected = id === null || id === undefined ? null : { level, id };
  if (state.selected) {
    const topic = level === "topic" ? id : topicOfCluster(id);
    if (topic !== null) state.expanded.add(topic);
  }
  renderCatalogue();
  syncFilter();
  drawMap();
  if ($("#q").value.trim()) await search();
  await showDetail();
}

const selectCluster = (id) => select("cluster", id);

async function showDetail() {
  const panel = $("#cluster-panel");
  const sel = state.selected;
  const seq = ++state.seq.detail;
  if (sel === null) { panel.hidden = true; return; }
  const c = await api("GET", `/clusters/${sel.id}`);
  if (seq !== state.seq.detail) return; // a newer pick is on its way
  const level = c.level || sel.level;
  panel.hidden = false;
  panel.dataset.level = level;
  $("#cluster-title").textContent = `${c.name || `${level} #${c.cluster_id}`}${c.pinned ? " (pinned)" : ""}`;
  $("#cluster-title").title = c.name || "";
  $("#cluster-meta").textContent =
    `${level} #${c.cluster_id} · ${c.size ?? "?"} tickets · +${c.growth_24h ?? 0} in 24 h · +${c.growth_7d ?? 0} in 7 d`;
  $("#cluster-keywords").textContent = (c.keywords || []).join(", ");
  const parent = $("#cluster-parent");
  const topic = c.topic || (topicOfCluster(c.cluster_id) !== null ? state.topicById.get(topicOfCluster(c.cluster_id)) : null);
  parent.hidden = level !== "cluster" || !topic;
  parent.replaceChildren(...(topic ? ["in topic ", el("button", { class: "link", type: "button", onclick: () => select("topic", topic.cluster_id).catch(showError) }, topic.name || `#${topic.cluster_id}`)] : []));
  const kids = c.clusters || [];
  const children = $("#cluster-children");
  children.hidden = level !== "topic" || !kids.length;
  children.replaceChildren(...kids.map((k) => el("li", {},
    el("button", { type: "button", class: "chip", title: (k.keywords || []).join(", "), dataset: { cluster: k.cluster_id }, onclick: () => select("cluster", k.cluster_id).catch(showError) },
      el("span", { class: "swatch", style: `background:${colour(k.cluster_id)}` }), `${k.name || "#" + k.cluster_id} · ${k.size ?? "?"}`))));
  for (const node of panel.querySelectorAll("[data-for=cluster]")) node.hidden = level !== "cluster";
  const move = $("#move-topic");
  for (const o of move.options) o.disabled = o.value !== "" && topic !== null && topic !== undefined && Number(o.value) === topic.cluster_id;
  move.value = "";
  $("#lineage").replaceChildren(
    ...(c.lineage || []).slice(-8).map((e) => el("li", {}, `${e.event || ""} ${e.into !== undefined ? "→ " + e.into : ""} ${e.name || ""}`)),
  );
}

// -- map ---------------------------------------------------------------------------------------
async function loadMap() {
  const data = await api("GET", "/map?limit=5000");
  state.points = (data.points || []).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)); // placed ones
  const total = data.total ?? state.points.length;
  $("#map-count").textContent = total > state.points.length ? `${state.points.length} of ${total} placed` : `${state.points.length} tickets`;
  drawMap();
}

const pointTopic = (p) => p.topic_id ?? topicOfCluster(p.cluster_id);
const groupOf = (p, level) => (level === "topic" ? pointTopic(p) : p.cluster_id) ?? null;

function inSelection(p) {
  const sel = state.selected;
  return sel === null || groupOf(p, sel.level) === sel.id;
}

function toCanvas(p) {
  return [MAP_PAD + p.x * (MAP_W - 2 * MAP_PAD), MAP_PAD + (1 - p.y) * (MAP_H - 2 * MAP_PAD)];
}

function sizeCanvas(canvas) {
  const dpr = Math.max(1, Math.round((window.devicePixelRatio || 1) * 100) / 100);
  if (canvas.width !== Math.round(MAP_W * dpr)) { canvas.width = Math.round(MAP_W * dpr); canvas.height = Math.round(MAP_H * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(canvas.width / MAP_W, 0, 0, canvas.height / MAP_H, 0, 0);
  return ctx;
}

function drawMap() {
  const canvas = $("#map");
  const ctx = sizeCanvas(canvas);
  const level = mapLevel();
  ctx.clearRect(0, 0, MAP_W, MAP_H);
  const groups = new Map(); // group id -> { n, sx, sy, members }
  const colours = new Set();
  let drawn = 0;
  const highlighted = [];
  for (const p of state.points) { // everything outside the selection first, faded, so the picked group is on top
    if (inSelection(p) && state.selected !== null) { highlighted.push(p); continue; }
    drawn += drawPoint(ctx, p, level, state.selected !== null, colours, groups);
  }
  for (const p of highlighted) drawn += drawPoint(ctx, p, level, false, colours, groups);
  const labels = drawLabels(ctx, groups, level);
  canvas.dataset.points = drawn;
  canvas.dataset.level = level;
  canvas.dataset.colours = colours.size;
  canvas.dataset.labels = labels.length;
  canvas.dataset.labelNames = JSON.stringify(labels);
}

function drawPoint(ctx, p, level, faded, colours, groups) {
  const [x, y] = toCanvas(p);
  if (p.is_outlier) {
    ctx.strokeStyle = faded ? "rgba(0,0,0,0.15)" : "rgba(0,0,0,0.8)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x - 3, y - 3); ctx.lineTo(x + 3, y + 3); ctx.moveTo(x + 3, y - 3); ctx.lineTo(x - 3, y + 3);
    ctx.stroke();
    return 1;
  }
  const g = groupOf(p, level);
  const fill = colour(g, faded ? 0.12 : 0.75);
  colours.add(colour(g));
  ctx.fillStyle = fill;
  ctx.beginPath();
  ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
  ctx.fill();
  if (g !== null) {
    const group = groups.get(g) || { n: 0, sx: 0, sy: 0, members: [] };
    group.n += 1; group.sx += x; group.sy += y; group.members.push([x, y]);
    groups.set(g, group);
  }
  return 1;
}

function shorten(text, max) {
  return text.length <= max ? text : text.slice(0, max - 1).trimEnd() + "…";
}

// Names of the largest groups at their centroid (moved onto the nearest member, so a group in two
// blobs is not named in the empty space between them), nudged off one another or left out.
function drawLabels(ctx, groups, level) {
  const order = [...groups.entries()].sort((a, b) => b[1].n - a[1].n);
  const wanted = order.slice(0, MAP_LABELS[level]);
  const sel = state.selected;
  if (sel && sel.level === level && !wanted.some(([g]) => g === sel.id)) {
    const extra = order.find(([g]) => g === sel.id);
    if (extra) wanted.unshift(extra);
  }
  ctx.font = "600 12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.textAlign = "center";
  const boxes = [], names = [];
  const h = 18;
  for (const [g, group] of wanted) {
    const cx = group.sx / group.n, cy = group.sy / group.n;
    let ax = cx, ay = cy, best = Infinity;
    for (const [x, y] of group.members) {
      const d = (x - cx) ** 2 + (y - cy) ** 2;
      if (d < best) { best = d; ax = x; ay = y; }
    }
    const text = shorten(nameOf(level, g), 28);
    const w = ctx.measureText(text).width + 10;
    const tries = [[0, 0], [0, -h], [0, h], [w / 2, 0], [-w / 2, 0], [0, -2 * h], [0, 2 * h], [w / 2, -h], [-w / 2, h], [w / 2, h], [-w / 2, -h]];
    let box = null;
    for (const [dx, dy] of tries) {
      const x = Math.min(Math.max(ax + dx - w / 2, 1), MAP_W - w - 1);
      const y = Math.min(Math.max(ay + dy - h / 2, 1), MAP_H - h - 1);
      const b = { x, y, w, h };
      if (!boxes.some((o) => b.x < o.x + o.w + 2 && o.x < b.x + b.w + 2 && b.y < o.y + o.h + 1 && o.y < b.y + b.h + 1)) { box = b; break; }
    }
    if (box === null) continue;
    boxes.push(box);
    names.push(text);
    const faded = sel !== null && !(sel.level === level && sel.id === g) && !(sel.level === "cluster" && level === "topic" && topicOfCluster(sel.id) === g);
    ctx.globalAlpha = faded ? 0.7 : 1;
    ctx.fillStyle = "rgba(255,255,255,0.88)";
    ctx.strokeStyle = colour(g);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(box.x, box.y, box.w, box.h, 4); else ctx.rect(box.x, box.y, box.w, box.h);
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = "#1d2330";
    ctx.fillText(text, box.x + box.w / 2, box.y + box.h / 2 + 0.5);
    ctx.globalAlpha = 1;
  }
  return names;
}

function nearestPoint(event) {
  const canvas = $("#map");
  const rect = canvas.getBoundingClientRect();
  const mx = ((event.clientX - rect.left) * MAP_W) / rect.width;
  const my = ((event.clientY - rect.top) * MAP_H) / rect.height;
  let best = null, bestD = 64;
  for (const p of state.points) {
    const [x, y] = toCanvas(p);
    const d = (x - mx) ** 2 + (y - my) ** 2;
    if (d < bestD) { best = p; bestD = d; }
  }
  return best;
}

function hover(event) {
  const tip = $("#tooltip");
  const p = nearestPoint(event);
  if (!p) { tip.hidden = true; return; }
  const topic = pointTopic(p);
  const where = [nameOf("cluster", p.cluster_id), topic !== null ? nameOf("topic", topic) : null].filter(Boolean).join(" · ");
  tip.textContent = `${p.text || ""}  —  ${where}${p.is_outlier ? " (outlier)" : ""}`;
  const panel = $("#map-panel").getBoundingClientRect();
  const left = event.clientX - panel.left + 14;
  tip.style.left = `${Math.min(left, panel.width - 330)}px`;
  tip.style.top = `${event.clientY - panel.top + 18}px`;
  tip.hidden = false;
}

// The level the map shows: the one chosen, but clusters while the run has no topics.
function mapLevel() {
  const topics = state.topics.length > 0;
  const level = state.level === "topic" && !topics ? "cluster" : state.level;
  for (const input of document.querySelectorAll("input[name=map-level]")) {
    input.checked = input.value === level;
    if (input.value === "topic") input.disabled = !topics;
  }
  return level;
}

function setLevel(level) {
  state.level = level === "cluster" ? "cluster" : "topic";
  localStorage.setItem("constellate-map-level", state.level);
  drawMap();
}

// -- tickets: search and outliers ----------------------------------------------------------------
function ticketItem(t, extra) {
  const topic = t.topic_id ?? topicOfCluster(t.cluster_id);
  const clusterName = state.byId.get(t.cluster_id)?.name || t.cluster_name || "unlabelled";
  const topicName = topic !== null && topic !== undefined ? state.topicById.get(topic)?.name || t.topic_name : null;
  const item = el(
    "li",
    { dataset: { ticket: t.ticket_id, cluster: t.cluster_id ?? "", topic: topic ?? "" } },
    el("input", { type: "checkbox", value: t.ticket_id, "aria-label": "pick for split" }),
    " ",
    t.text ?? "",
    el("div", { class: "meta" },
      el("span", { class: "swatch", style: `background:${colour(t.cluster_id)}` }),
      el("span", { class: "where" },
        clusterName,
        topicName ? el("span", { class: "topic-name" }, ` · ${topicName}`) : null,
        `${typeof t.score === "number" ? ` · score ${t.score}` : ""}${t.is_outlier ? ` · outlier ${t.outlier_score ?? ""}` : ""}`),
      extra),
  );
  return item;
}

function filterParams() {
  const [level, id] = ($("#filter").value || "").split(":");
  if (!id) return {};
  return level === "topic" ? { topic_id: id } : { cluster_id: id };
}

async function search() {
  const q = $("#q").value.trim();
  if (!q) return;
  const params = new URLSearchParams({ q, limit: "20", ...filterParams() });
  const seq = ++state.seq.search;
  const data = await api("GET", `/search?${params}`);
  if (seq !== state.seq.search) return; // a newer search is on its way
  const hits = data.hits || [];
  $("#results").replaceChildren(...hits.map((h) => ticketItem(h)));
  const scope = data.topic_id !== null && data.topic_id !== undefined ? `topic ${nameOf("topic", data.topic_id)}`
    : data.cluster_id !== null && data.cluster_id !== undefined ? `cluster ${nameOf("cluster", data.cluster_id)}` : "all tickets";
  const note = $("#results-note");
  note.textContent = `${plural(hits.length, "hit")} in ${scope}`;
  note.hidden = false;
  $("#results").dataset.topic = data.topic_id ?? "";
  $("#results").dataset.cluster = data.cluster_id ?? "";
}

async function loadOutliers() {
  const data = await api("GET", `/outliers?limit=${state.outlierLimit}`);
  const outliers = data.outliers || [];
  $("#outliers").replaceChildren(
    ...(outliers.length ? outliers.map((t) =>
      ticketItem(t, el("button", { onclick: () => edit(() => api("POST", `/tickets/${encodeURIComponent(t.ticket_id)}/not-outlier`)) }, "not an outlier")),
    ) : [el("li", { class: "muted" }, "none")]),
  );
  $("#more-outliers").hidden = outliers.length < state.outlierLimit;
}

// -- runs and alerts ---------------------------------------------------------------------------
async function loadRuns() {
  const data = await api("GET", "/runs?limit=20");
  $("#runs tbody").replaceChildren(
    ...(data.runs || []).map((r) =>
      el("tr", {},
        el("td", {}, r.run_id + (r.run_id === data.current_run ? " (live)" : "")),
        el("td", {}, r.status ?? ""),
        el("td", {}, r.n_points ?? ""),
        el("td", {}, r.n_clusters ?? ""),
        el("td", {}, typeof r.outlier_fraction === "number" ? `${(100 * r.outlier_fraction).toFixed(1)}%` : ""),
        el("td", {}, r.silhouette ?? ""),
        el("td", {}, r.alerts ?? ""),
        el("td", {}, r.seconds ? r.seconds.total ?? "" : "")),
    ),
  );
  $("#status").textContent = data.current_run ? `live run ${data.current_run}` : "no run yet: post tickets, then recluster";
  return data.current_run || null;
}

async function loadAlerts() {
  const data = await api("GET", "/alerts?limit=20");
  const alerts = data.alerts || [];
  $("#alerts").replaceChildren(
    ...(alerts.length ? alerts : [null]).map((a) =>
      a ? el("li", {}, el("span", { class: "kind" }, a.rule || "alert"), ` ${a.cluster_name || ""} — ${a.reason || ""}`) : el("li", { class: "muted" }, "none yet"),
    ),
  );
}

// -- edits -------------------------------------------------------------------------------------
async function edit(action) {
  try {
    showError(null);
    await action();
    await refresh();
  } catch (err) {
    showError(err);
  }
}

function checkedTickets() {
  return [...document.querySelectorAll("#results input:checked, #outliers input:checked")].map((i) => i.value);
}

async function refresh() {
  try {
    await loadClusters();
    await Promise.all([loadMap(), loadOutliers(), loadRuns(), loadAlerts()]);
    const sel = state.selected;
    if (sel !== null && !entryOf(sel.level, sel.id)) state.selected = null;
    await select(state.selected?.level, state.selected?.id ?? null);
  } catch (err) {
    showError(err);
  }
}

function wire() {
  $("#api-key").value = localStorage.getItem("constellate-key") || "";
  $("#api-key").addEventListener("change", (e) => { localStorage.setItem("constellate-key", e.target.value); refresh(); });
  $("#recluster").addEventListener("click", () => edit(() => api("POST", "/recluster")));
  $("#search-form").addEventListener("submit", (e) => { e.preventDefault(); search().catch(showError); });
  $("#filter").addEventListener("change", (e) => {
    const [level, id] = e.target.value.split(":");
    select(level, id ? Number(id) : null).catch(showError);
  });
  $("#more-clusters").addEventListener("click", () => { state.shownRows += 50; renderCatalogue(); });
  $("#more-outliers").addEventListener("click", () => { state.outlierLimit *= 2; loadOutliers().catch(showError); });
  $("#clear-selection").addEventListener("click", () => select(null, null).catch(showError));
  $("#rename").addEventListener("click", () => {
    const sel = state.selected;
    if (!sel) return;
    const name = prompt(`New name of this ${sel.level} (pinned: later runs keep it)`, entryOf(sel.level, sel.id)?.name || "");
    if (name) edit(() => api("PATCH", `/clusters/${sel.id}`, { name }));
  });
  $("#merge").addEventListener("click", () => {
    const other = prompt("Id of the cluster to merge into this one");
    if (other) edit(() => api("POST", `/clusters/${state.selected.id}/merge`, { cluster_id: Number(other) }));
  });
  $("#split").addEventListener("click", () => {
    const ids = checkedTickets();
    if (!ids.length) return showError(new Error("check tickets of this cluster in the search results first"));
    const name = prompt(`Name of the new cluster for ${ids.length} tickets`);
    if (name) edit(() => api("POST", `/clusters/${state.selected.id}/split`, { ticket_ids: ids, name }));
  });
  $("#move").addEventListener("click", () => {
    const topic = $("#move-topic").value;
    if (!topic) return showError(new Error("choose the topic to move this cluster into"));
    edit(() => api("POST", `/clusters/${state.selected.id}/move`, { topic_id: Number(topic) }));
  });
  for (const input of document.querySelectorAll("input[name=map-level]")) input.addEventListener("change", (e) => setLevel(e.target.value));
  setLevel(state.level);
  const canvas = $("#map");
  canvas.addEventListener("mousemove", hover);
  canvas.addEventListener("mouseleave", () => { $("#tooltip").hidden = true; });
  canvas.addEventListener("click", (e) => {
    const p = nearestPoint(e);
    const level = mapLevel();
    const g = p ? groupOf(p, level) : null;
    if (g !== null) select(level, g).then(() => revealRow(level, g)).catch(showError);
  });
  refresh();
  setInterval(async () => {
    try {
      const live = await loadRuns();
      await loadAlerts();
      if (live !== state.run) await refresh(); // a run finished (here or elsewhere): show it
    } catch { /* the next tick tries again */ }
  }, 10000);
}

wire();
