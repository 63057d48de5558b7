// redstream's dashboard: polls the consumer's JSON endpoints every 2 s and renders them.
// Every value from the server is put on the page with textContent (never parsed as HTML), so a
// stream name or field value that looks like markup is shown as text.
"use strict";

const REFRESH_MS = 2000;
let selected = null;        // the stream whose detail is shown
let previous = new Map();   // stream name -> {handled, at} from the last refresh
let rates = new Map();      // stream name -> handled/s between the last two refreshes

const $ = (id) => document.getElementById(id);

function setText(id, value) {
  $(id).textContent = value;
}

function cell(tr, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "–" : String(value);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60), sec = s % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + sec + "s";
}

async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  const body = await r.json();
  if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
  return body;
}

function drawChart(series) {
  const n = series.handled.length;
  let peak = 1;
  for (let i = 0; i < n; i++) {
    peak = Math.max(peak, series.handled[i] || 0, series.failed[i] || 0);
  }
  for (const [key, id] of [["handled", "chart-handled"], ["failed", "chart-failed"]]) {
    const pts = [];
    series[key].forEach((v, i) => {
      if (v !== null) pts.push(i + "," + (158 - v / peak * 150).toFixed(1));
    });
    $(id).setAttribute("points", pts.join(" "));
  }
  setText("chart-peak", peak);
}

function renderStats(st) {
  setText("o-version", st.version);
  setText("o-uptime", duration(st.uptime_s));
  const redis = $("o-redis");
  redis.textContent = st.redis.ready ? "connected" : st.redis.state;
  redis.className = st.redis.ready ? "ok" : "bad";
  setText("o-consumer", st.consumer + " / " + st.group);
  setText("o-queue", st.queue.depth + " / " + st.queue.capacity);
  setText("o-workers", st.workers.busy + " / " + st.workers.total);
  setText("o-handled", st.totals.handled);
  setText("o-failed", st.totals.failed);
  setText("o-retried", st.totals.retried);
  setText("o-dead", st.totals.dead_lettered);
  drawChart(st.series);
  const now = performance.now();
  const next = new Map();
  for (const s of st.streams) {
    const before = previous.get(s.name);
    if (before && now > before.at) {
      rates.set(s.name, Math.max(0, (s.handled - before.handled) * 1000 / (now - before.at)));
    }
    next.set(s.name, {handled: s.handled, at: now, handler: s.handler, ordering: s.key_field ? s.ordering + " (" + s.key_field + ")" : s.ordering});
  }
  previous = next;
}

function ourGroup(stream, group) {
  return (stream.groups || []).find((g) => g.name === group) || null;
}

function renderStreams(ov) {
  const rows = [];
  for (const s of ov.streams) {
    const g = ourGroup(s, ov.group);
    const info = previous.get(s.name) || {};
    const tr = document.createElement("tr");
    tr.dataset.stream = s.name;
    if (s.name === selected) tr.className = "selected";
    cell(tr, s.name, "name");
    cell(tr, s.length, "length");
    cell(tr, g ? g.lag : null, "lag");
    cell(tr, g ? g.pending : null, "pending");
    cell(tr, g ? g.entries_read : null, "entries-read");
    const r = rates.get(s.name);
    cell(tr, r === undefined ? null : r.toFixed(1), "rate");
    cell(tr, s.process ? s.process.handler : info.handler, "handler");
    cell(tr, info.ordering || "none", "ordering");
    tr.addEventListener("click", () => select(s.name));
    rows.push(tr);
    if (s.name === selected) renderConsumers(g);
  }
  replaceRows(document.querySelector("#stream-table tbody"), rows);
}

function renderConsumers(g) {
  const rows = [];
  for (const c of g ? g.consumers || [] : []) {
    const tr = document.createElement("tr");
    cell(tr, c.name);
    cell(tr, c.pending);
    cell(tr, duration(c.idle_ms / 1000));
    rows.push(tr);
  }
  replaceRows(document.querySelector("#consumer-table tbody"), rows);
}

async function renderDeadLetters() {
  if (selected === null) return;
  const name = selected;
  const err = $("d-dlq-error");
  try {
    const d = await getJSON("api/deadletters?stream=" + encodeURIComponent(name));
    if (name !== selected) return;
    setText("d-replay", d.replay);
    err.hidden = d.error === null;
    err.textContent = d.error || "";
    const rows = [];
    for (const e of d.dead_letters) {
      const tr = document.createElement("tr");
      cell(tr, e.original_id);
      cell(tr, e.delivery_count);
      cell(tr, e.error);
      cell(tr, e.time);
      cell(tr, e.fields.map((f) => f.name + "=" + f.value + (f.cut ? "…" : "")).join("\n"),
           "fields");
      rows.push(tr);
    }
    replaceRows(document.querySelector("#dlq-table tbody"), rows);
  } catch (e) {
    err.hidden = false;
    err.textContent = "dead letters: " + e.message;
  }
}

function select(name) {
  selected = name;
  $("detail").hidden = false;
  setText("d-name", name);
  replaceRows(document.querySelector("#dlq-table tbody"), []);
  for (const tr of document.querySelectorAll("#stream-table tbody tr")) {
    tr.className = tr.dataset.stream === name ? "selected" : "";
  }
  refresh();
}

function renderProblems(p) {
  const rows = [];
  for (const e of p.problems) {
    const tr = document.createElement("tr");
    cell(tr, e.time.replace("T", " "), "nowrap");
    cell(tr, e.level, e.level === "error" ? "bad nowrap" : "nowrap");
    cell(tr, e.stream, "nowrap");
    cell(tr, e.module + ": " + e.message);
    rows.push(tr);
  }
  replaceRows(document.querySelector("#problem-table tbody"), rows);
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  const status = $("status");
  // Each part on its own: while Redis is away /streams fails, and the overview and the
  // problems (this process's own numbers) still show why.
  const failed = [];
  const parts = [
    ["stats", async () => renderStats(await getJSON("api/stats"))],
    ["streams", async () => renderStreams(await getJSON("streams"))],
    ["problems", async () => renderProblems(await getJSON("api/problems"))],
    ["dead letters", renderDeadLetters],
  ];
  for (const [what, run] of parts) {
    try {
      await run();
    } catch (e) {
      failed.push(what + ": " + e.message);
    }
  }
  if (failed.length === 0) {
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "status";
  } else {
    status.textContent = "cannot refresh " + failed.join("; ");
    status.className = "status bad";
  }
  busy = false;
}

refresh();
setInterval(refresh, REFRESH_MS);
