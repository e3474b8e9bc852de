// constellate's page: plain JS against the JSON API, nothing loaded from outside this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { clusters: [], byId: new Map(), selected: null, points: [], shownClusters: 50, outlierLimit: 25 };

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

function colour(id, alpha = 1) {
  if (id === null || id === undefined) return `rgba(120,120,120,${alpha})`;
  const hue = (id * 137.508) % 360;
  return `hsla(${hue}, 65%, 45%, ${alpha})`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function sparkline(values) {
  const w = 60, h = 16;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  if (values.length > 1) {
    const max = Math.max(...values), min = Math.min(...values);
    const span = max - min || 1;
    const pts = values.map((v, i) => `${(i / (values.length - 1)) * (w - 2) + 1},${h - 1 - ((v - min) / span) * (h - 2)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#3a6ee8");
    svg.append(line);
  }
  svg.setAttribute("aria-label", `sizes ${values.join(", ")}`);
  return svg;
}

// -- catalogue ---------------------------------------------------------------------------------
async function loadClusters() {
  const data = await api("GET", "/clusters");
  state.clusters = data.clusters;
  state.byId = new Map(data.clusters.map((c) => [c.cluster_id, c]));
  $("#cluster-count").textContent = `${data.clusters.length} in ${data.run_id || "no run yet"}`;
  renderCatalogue();
  const filter = $("#filter");
  const current = filter.value;
  filter.replaceChildren(el("option", { value: "" }, "all clusters"));
  for (const c of data.clusters) filter.append(el("option", { value: c.cluster_id }, `${c.name} (${c.size})`));
  filter.value = state.byId.has(Number(current)) ? current : "";
}

function renderCatalogue() {
  const body = $("#catalogue tbody");
  body.replaceChildren();
  for (const c of state.clusters.slice(0, state.shownClusters)) {
    const name = el("td", {}, el("span", { class: "swatch", style: `background:${colour(c.cluster_id)}` }), c.name);
    if (c.pinned) name.append(el("span", { class: "pin", title: "named by a human; later runs keep it" }, "pinned"));
    const row = el(
      "tr",
      { dataset: { cluster: c.cluster_id }, onclick: () => selectCluster(c.cluster_id) },
      name,
      el("td", {}, c.size),
      el("td", {}, sparkline(c.history || [])),
      el("td", { class: "muted" }, (c.keywords || []).slice(0, 4).join(", ")),
    );
    if (c.cluster_id === state.selected) row.classList.add("selected");
    body.append(row);
  }
  $("#more-clusters").hidden = state.clusters.length <= state.shownClusters;
}

async function selectCluster(id) {
  state.selected = id;
  renderCatalogue();
  drawMap();
  $("#filter").value = id === null ? "" : String(id);
  if ($("#q").value.trim()) await search();
  const panel = $("#cluster-panel");
  if (id === null) { panel.hidden = true; return; }
  const c = await api("GET", `/clusters/${id}`);
  panel.hidden = false;
  $("#cluster-title").textContent = `${c.name}${c.pinned ? " (pinned)" : ""}`;
  $("#cluster-meta").textContent = `#${c.cluster_id} · ${c.size} tickets · +${c.growth_24h} in 24 h · +${c.growth_7d} in 7 d`;
  $("#lineage").replaceChildren(
    ...c.lineage.slice(-8).map((e) => el("li", {}, `${e.event} ${e.into !== undefined ? "→ " + e.into : ""} ${e.name || ""}`)),
  );
}

// -- map ---------------------------------------------------------------------------------------
async function loadMap() {
  const data = await api("GET", "/map?limit=5000");
  state.points = data.points;
  $("#map-count").textContent = data.total > data.points.length ? `${data.points.length} of ${data.total} placed` : `${data.points.length} tickets`;
  drawMap();
}

function toCanvas(p, canvas) {
  const pad = 10;
  return [pad + p.x * (canvas.width - 2 * pad), pad + (1 - p.y) * (canvas.height - 2 * pad)];
}

function drawMap() {
  const canvas = $("#map");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let drawn = 0;
  for (const p of state.points) {
    const [x, y] = toCanvas(p, canvas);
    const faded = state.selected !== null && p.cluster_id !== state.selected;
    if (p.is_outlier) {
      ctx.strokeStyle = faded ? "rgba(0,0,0,0.15)" : "rgba(0,0,0,0.8)";
      ctx.beginPath();
      ctx.moveTo(x - 3, y - 3); ctx.lineTo(x + 3, y + 3); ctx.moveTo(x + 3, y - 3); ctx.lineTo(x - 3, y + 3);
      ctx.stroke();
    } else {
      ctx.fillStyle = colour(p.cluster_id, faded ? 0.12 : 0.75);
      ctx.beginPath();
      ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    drawn += 1;
  }
  canvas.dataset.points = drawn;
}

function nearestPoint(event) {
  const canvas = $("#map");
  const rect = canvas.getBoundingClientRect();
  const mx = ((event.clientX - rect.left) * canvas.width) / rect.width;
  const my = ((event.clientY - rect.top) * canvas.height) / rect.height;
  let best = null, bestD = 64;
  for (const p of state.points) {
    const [x, y] = toCanvas(p, canvas);
    const d = (x - mx) ** 2 + (y - my) ** 2;
    if (d < bestD) { best = p; bestD = d; }
  }
  return best;
}

function hover(event) {
  const tip = $("#tooltip");
  const p = nearestPoint(event);
  if (!p) { tip.hidden = true; return; }
  const c = state.byId.get(p.cluster_id);
  tip.textContent = `${p.text}  —  ${c ? c.name : "unlabelled"}${p.is_outlier ? " (outlier)" : ""}`;
  const canvas = $("#map");
  tip.style.left = `${event.clientX - canvas.getBoundingClientRect().left + 24}px`;
  tip.style.top = `${event.clientY - canvas.getBoundingClientRect().top + 40}px`;
  tip.hidden = false;
}

// -- tickets: search and outliers ----------------------------------------------------------------
function ticketItem(t, extra) {
  const c = state.byId.get(t.cluster_id);
  const item = el(
    "li",
    { dataset: { ticket: t.ticket_id, cluster: t.cluster_id ?? "" } },
    el("input", { type: "checkbox", value: t.ticket_id, "aria-label": "pick for split" }),
    " ",
    t.text,
    el("div", { class: "meta" },
      el("span", { class: "swatch", style: `background:${colour(t.cluster_id)}` }),
      `${c ? c.name : t.cluster_name || "unlabelled"}${t.score !== undefined ? ` · score ${t.score}` : ""}` +
        `${t.is_outlier ? ` · outlier ${t.outlier_score}` : ""}`),
  );
  if (extra) item.append(extra);
  return item;
}

async function search() {
  const q = $("#q").value.trim();
  if (!q) return;
  const params = new URLSearchParams({ q, limit: "20" });
  const filter = $("#filter").value;
  if (filter) params.set("cluster_id", filter);
  const data = await api("GET", `/search?${params}`);
  $("#results").replaceChildren(...data.hits.map((h) => ticketItem(h)));
  $("#results").dataset.cluster = data.cluster_id ?? "";
}

async function loadOutliers() {
  const data = await api("GET", `/outliers?limit=${state.outlierLimit}`);
  $("#outliers").replaceChildren(
    ...data.outliers.map((t) =>
      ticketItem(t, el("button", { onclick: () => edit(() => api("POST", `/tickets/${encodeURIComponent(t.ticket_id)}/not-outlier`)) }, "not an outlier")),
    ),
  );
}

// -- runs and alerts ---------------------------------------------------------------------------
async function loadRuns() {
  const data = await api("GET", "/runs?limit=20");
  $("#runs tbody").replaceChildren(
    ...data.runs.map((r) =>
      el("tr", {},
        el("td", {}, r.run_id + (r.run_id === data.current_run ? " (live)" : "")),
        el("td", {}, r.status),
        el("td", {}, r.n_points ?? ""),
        el("td", {}, r.n_clusters ?? ""),
        el("td", {}, r.outlier_fraction !== undefined ? `${(100 * r.outlier_fraction).toFixed(1)}%` : ""),
        el("td", {}, r.silhouette ?? ""),
        el("td", {}, r.alerts ?? ""),
        el("td", {}, r.seconds ? r.seconds.total : "")),
    ),
  );
  $("#status").textContent = data.current_run ? `live run ${data.current_run}` : "no run yet: post tickets, then recluster";
}

async function loadAlerts() {
  const data = await api("GET", "/alerts?limit=20");
  $("#alerts").replaceChildren(
    ...(data.alerts.length ? data.alerts : [null]).map((a) =>
      a ? el("li", {}, el("span", { class: "kind" }, a.rule), ` ${a.cluster_name || ""} — ${a.reason}`) : el("li", { class: "muted" }, "none yet"),
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
    if (state.selected !== null && !state.byId.has(state.selected)) state.selected = null;
    if (state.selected !== null) await selectCluster(state.selected);
  } catch (err) {
    showError(err);
  }
}

function wire() {
  $("#api-key").value = localStorage.getItem("constellate-key") || "";
  $("#api-key").addEventListener("change", (e) => { localStorage.setItem("constellate-key", e.target.value); refresh(); });
  $("#recluster").addEventListener("click", () => edit(() => api("POST", "/recluster")));
  $("#search-form").addEventListener("submit", (e) => { e.preventDefault(); search().catch(showError); });
  $("#filter").addEventListener("change", (e) => selectCluster(e.target.value === "" ? null : Number(e.target.value)).catch(showError));
  $("#more-clusters").addEventListener("click", () => { state.shownClusters += 50; renderCatalogue(); });
  $("#more-outliers").addEventListener("click", () => { state.outlierLimit *= 2; loadOutliers().catch(showError); });
  $("#clear-selection").addEventListener("click", () => selectCluster(null));
  $("#rename").addEventListener("click", () => {
    const name = prompt("New name (pinned: later runs keep it)", state.byId.get(state.selected)?.name || "");
    if (name) edit(() => api("PATCH", `/clusters/${state.selected}`, { name }));
  });
  $("#merge").addEventListener("click", () => {
    const other = prompt("Id of the cluster to merge into this one");
    if (other) edit(() => api("POST", `/clusters/${state.selected}/merge`, { cluster_id: Number(other) }));
  });
  $("#split").addEventListener("click", () => {
    const ids = checkedTickets();
    if (!ids.length) return showError(new Error("check tickets of this cluster in the search results first"));
    const name = prompt(`Name of the new cluster for ${ids.length} tickets`);
    if (name) edit(() => api("POST", `/clusters/${state.selected}/split`, { ticket_ids: ids, name }));
  });
  const canvas = $("#map");
  canvas.addEventListener("mousemove", hover);
  canvas.addEventListener("mouseleave", () => { $("#tooltip").hidden = true; });
  canvas.addEventListener("click", (e) => { const p = nearestPoint(e); if (p) selectCluster(p.cluster_id).catch(showError); });
  refresh();
  setInterval(() => { loadRuns().catch(() => {}); loadAlerts().catch(() => {}); }, 10000);
}

wire();
