/**
 * The live page the metrics port serves at `/`: one self-contained HTML document (no external
 * scripts, styles or fonts) that polls `stats.json` every second and draws six charts on
 * <canvas>: get hit ratio, operations per second, memory used against the limit, items,
 * evictions per second and connections. It exposes `window.memgCharts` (samples taken, failed
 * polls, times drawn, the plotted series) so a browser test can see it work.
 *
 * @module
 */

/** The page's HTML. */
export const METRICS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memg live</title>
<style>
  :root { color-scheme: light; --fg: #1d2330; --muted: #667085; --card: #ffffff;
    --bg: #f2f4f7; --grid: #e4e7ec; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 16px 20px; background: var(--bg); color: var(--fg);
    font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; margin-bottom: 12px; }
  h1 { font-size: 20px; margin: 0; }
  #status { color: var(--muted); }
  #status.down { color: #c4320a; font-weight: 600; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
  section { background: var(--card); border-radius: 8px; padding: 10px 12px 8px;
    box-shadow: 0 1px 2px rgba(16, 24, 40, .08); }
  section h2 { font-size: 13px; font-weight: 600; margin: 0; color: var(--muted);
    display: flex; justify-content: space-between; }
  section h2 span { color: var(--fg); font-variant-numeric: tabular-nums; }
  canvas { display: block; width: 100%; height: 170px; }
</style>
</head>
<body>
<header>
  <h1>memg</h1>
  <span id="version"></span>
  <span id="status">connecting…</span>
</header>
<main id="charts"></main>
<script>
"use strict";
(() => {
  const HISTORY = 120; // seconds of samples kept and plotted
  const POLL_MS = 1000;
  const CHARTS = [
    { id: "hitRatio", title: "Get hit ratio", unit: "%", color: "#12b76a", max: 100 },
    { id: "ops", title: "Operations per second", unit: "/s", color: "#2e90fa" },
    { id: "memory", title: "Memory used / limit", unit: "B", color: "#7a5af8",
      extra: { id: "limit", color: "#f04438", label: "limit" } },
    { id: "items", title: "Items", unit: "", color: "#ee46bc" },
    { id: "evictions", title: "Evictions per second", unit: "/s", color: "#f79009" },
    { id: "connections", title: "Connections", unit: "", color: "#0ba5ec" },
  ];
  const state = { samples: 0, errors: 0, drawn: 0, series: {}, last: null };
  for (const c of CHARTS) {
    state.series[c.id] = [];
    if (c.extra) state.series[c.extra.id] = [];
  }
  window.memgCharts = state;

  const root = document.getElementById("charts");
  const views = CHARTS.map((c) => {
    const section = document.createElement("section");
    const h2 = document.createElement("h2");
    const title = document.createElement("div");
    title.textContent = c.title;
    const value = document.createElement("span");
    value.textContent = "–";
    h2.append(title, value);
    const canvas = document.createElement("canvas");
    canvas.id = "chart-" + c.id;
    section.append(h2, canvas);
    root.append(section);
    return { chart: c, canvas, value };
  });

  function fmt(v, unit) {
    if (v === null || !Number.isFinite(v)) return "–";
    if (unit === "%") return v.toFixed(1) + " %";
    const big = unit === "B" ? ["B", "KiB", "MiB", "GiB", "TiB"] : ["", "k", "M", "G", "T"];
    const step = unit === "B" ? 1024 : 1000;
    let i = 0;
    let x = Math.abs(v);
    while (x >= step && i < big.length - 1) { x /= step; i++; }
    const n = (v < 0 ? -x : x);
    const digits = i === 0 && Number.isInteger(n) ? 0 : n < 10 ? 2 : n < 100 ? 1 : 0;
    const suffix = unit === "B" ? " " + big[i] : big[i] + (unit === "/s" ? "/s" : "");
    return n.toFixed(digits) + suffix;
  }

  function niceMax(v, unit) {
    if (!(v > 0)) return 1;
    if (unit === "B") { // in whole KiB, MiB, GiB so the axis labels stay round
      let scale = 1;
      while (v / scale >= 1024) scale *= 1024;
      return niceMax(v / scale, "") * scale;
    }
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function draw(view) {
    const { chart, canvas } = view;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const main = state.series[chart.id];
    const extra = chart.extra ? state.series[chart.extra.id] : [];
    let top = chart.max ?? 0;
    if (chart.max === undefined) {
      for (const v of main.concat(extra)) if (v !== null && v > top) top = v;
      top = niceMax(top, chart.unit);
    }
    const left = 64, right = 8, up = 8, down = 18;
    const pw = w - left - right, ph = h - up - down;
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    g.textAlign = "right";
    for (let i = 0; i <= 4; i++) {
      const y = up + ph - (ph * i) / 4;
      g.strokeStyle = "#e4e7ec";
      g.lineWidth = 1;
      g.beginPath();
      g.moveTo(left, Math.round(y) + 0.5);
      g.lineTo(left + pw, Math.round(y) + 0.5);
      g.stroke();
      g.fillStyle = "#667085";
      g.fillText(fmt((top * i) / 4, chart.unit), left - 6, y);
    }
    g.textAlign = "center";
    g.textBaseline = "alphabetic";
    for (const s of [120, 90, 60, 30, 0]) {
      const x = left + pw - (pw * s) / HISTORY;
      g.fillText(s === 0 ? "now" : "-" + s + "s", Math.min(Math.max(x, left + 12), left + pw - 12), h - 4);
    }
    const xAt = (i, n) => left + pw - (pw * (n - 1 - i)) / HISTORY;
    const yAt = (v) => up + ph - (ph * Math.min(v, top)) / top;
    function line(values, color, fill, dashed) {
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.setLineDash(dashed ? [6, 4] : []);
      let open = false;
      let first = -1;
      g.beginPath();
      values.forEach((v, i) => {
        if (v === null) { open = false; return; }
        const x = xAt(i, values.length), y = yAt(v);
        if (open) g.lineTo(x, y); else { g.moveTo(x, y); if (first < 0) first = i; }
        open = true;
      });
      g.stroke();
      g.setLineDash([]);
      if (fill && first >= 0) {
        g.lineTo(xAt(values.length - 1, values.length), up + ph);
        g.lineTo(xAt(first, values.length), up + ph);
        g.closePath();
        g.globalAlpha = 0.12;
        g.fillStyle = color;
        g.fill();
        g.globalAlpha = 1;
      }
    }
    if (chart.extra) line(extra, chart.extra.color, false, true);
    line(main, chart.color, true, false);
    const lastMain = main.length ? main[main.length - 1] : null;
    let text = fmt(lastMain, chart.unit);
    if (chart.extra && extra.length) text += " of " + fmt(extra[extra.length - 1], chart.unit);
    view.value.textContent = text;
  }

  function drawAll() {
    for (const v of views) draw(v);
    state.drawn++;
  }

  const OPS = ["cmd_get", "cmd_set", "cmd_touch", "cmd_flush", "delete_hits", "delete_misses",
    "incr_hits", "incr_misses", "decr_hits", "decr_misses"];

  function push(id, v) {
    const s = state.series[id];
    s.push(v);
    if (s.length > HISTORY) s.shift();
  }

  function record(now, at) {
    const prev = state.last;
    const dt = prev ? (at - prev.at) / 1000 : 0;
    const rate = (get) => (prev && dt > 0 ? Math.max(0, get(now) - get(prev.stats)) / dt : null);
    const gets = prev ? (now.get_hits + now.get_misses) - (prev.stats.get_hits + prev.stats.get_misses) : 0;
    push("hitRatio", gets > 0 ? (100 * (now.get_hits - prev.stats.get_hits)) / gets : null);
    push("ops", rate((s) => OPS.reduce((sum, k) => sum + (s[k] || 0), 0)));
    push("memory", now.bytes);
    push("limit", now.limit_maxbytes);
    push("items", now.curr_items);
    push("evictions", rate((s) => s.evictions));
    push("connections", now.curr_connections);
    state.last = { stats: now, at };
    state.samples++;
  }

  const status = document.getElementById("status");
  async function poll() {
    try {
      const res = await fetch("stats.json", { cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const now = await res.json();
      record(now, performance.now());
      document.getElementById("version").textContent = "memcached " + now.version +
        " · pid " + now.pid + " · up " + now.uptime + " s";
      status.textContent = "live, every second";
      status.className = "";
    } catch (e) {
      state.errors++;
      status.textContent = "no answer from memg (" + e.message + ")";
      status.className = "down";
    }
    drawAll();
    setTimeout(poll, POLL_MS);
  }
  window.addEventListener("resize", drawAll);
  drawAll();
  poll();
})();
</script>
</body>
</html>
`;
