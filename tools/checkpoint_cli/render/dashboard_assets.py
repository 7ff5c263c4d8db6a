"""The dashboard's page, script and style: no framework, no CDN, no inline script.

The page is an empty shell; the script fetches ``api/progress`` every ``data-interval`` ms and
builds one card per stage with ``textContent`` only (stage names and errors are never parsed as
HTML). Each figure carries ``data-field`` (and its card ``data-stage``) so a test reads the DOM.
``body[data-refreshes]`` counts the successful refreshes.
"""

from __future__ import annotations

import html

__all__ = ["SCRIPT", "STYLE", "page"]


def page(*, location: str, interval_ms: int) -> str:
    """The HTML shell for the checkpoints in ``location``."""
    esc = html.escape
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Pipeline dashboard</title>"
        '<link rel="stylesheet" href="dashboard.css"></head>'
        f'<body data-interval="{interval_ms}" data-refreshes="0"><main>'
        '<header class="top"><h1>Pipeline dashboard</h1>'
        f'<p class="meta">Checkpoints in <code>{esc(location)}</code> &middot; '
        '<span id="state">loading…</span></p></header>'
        '<section class="summary"><strong>Overall progress</strong>'
        '<div class="bar"><div class="fill" id="overall-fill"></div>'
        '<span id="overall" data-field="overall">-</span></div></section>'
        '<div id="stages"></div>'
        '<p class="empty" id="empty" hidden>No checkpoints yet.</p>'
        '</main><script src="dashboard.js"></script></body></html>\n'
    )


STYLE = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --card:#fff; --bg:#f5f7fa;
  --blue:#2563eb; --amber:#d97706; --green:#16a34a; --red:#dc2626; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 20px; }
h1 { margin: 0 0 4px; font-size: 22px; }
h2 { margin: 0; font-size: 16px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.summary, .stage { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; margin-bottom: 14px; }
.stage header { display: flex; gap: 10px; align-items: center; margin-bottom: 10px; }
.badge { font-size: 12px; padding: 1px 8px; border-radius: 10px; background: #e5e7eb; }
.s-running, .s-recovering { background: #dbeafe; } .s-completed { background: #dcfce7; }
.s-failed, .s-corrupt { background: #fee2e2; } .s-paused { background: #fef3c7; }
.live { color: var(--green); font-size: 12px; }
.bar { position: relative; height: 22px; background: #eef2f7; border-radius: 5px;
  overflow: hidden; margin: 6px 0 10px; }
.fill { position: absolute; inset: 0 auto 0 0; width: 0; background: var(--blue);
  transition: width .4s; }
.done .fill { background: var(--green); } .failed .fill { background: var(--red); }
.bar span { position: relative; padding-left: 8px; line-height: 22px; font-weight: 600; }
dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px;
  margin: 0 0 8px; }
dl div { background: var(--bg); border-radius: 6px; padding: 6px 8px; }
dt { color: var(--muted); font-size: 12px; } dd { margin: 0; font-weight: 600; }
.error { color: var(--red); margin: 6px 0; }
svg.chart { width: 100%; height: 140px; display: block; }
svg.chart .processed { fill: none; stroke: var(--blue); stroke-width: 2; }
svg.chart .rate { fill: none; stroke: var(--amber); stroke-width: 1.5; stroke-dasharray: 5 3; }
svg.chart .axis { stroke: var(--line); } svg.chart text { fill: var(--muted); font-size: 11px; }
.legend { color: var(--muted); font-size: 12px; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const body = document.body;
  const interval = Number(body.dataset.interval) || 2000;
  const stages = document.getElementById("stages");
  const SVG = "http://www.w3.org/2000/svg";
  let refreshes = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.round(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function rate(value) {
    return value === null || value === undefined ? "-" : value.toFixed(1) + " items/s";
  }

  function card(name) {
    let section = stages.querySelector('section[data-stage="' + CSS.escape(name) + '"]');
    if (section) return section;
    section = el("section", "stage");
    section.dataset.stage = name;
    const head = el("header");
    head.append(el("h2", "", name), el("span", "badge"), el("span", "live"));
    const bar = el("div", "bar");
    bar.append(el("div", "fill"), el("span"));
    bar.lastChild.dataset.field = "progress";
    const figures = el("dl");
    for (const [field, label] of [
      ["processed", "Processed"], ["total", "Total"], ["percent", "Percent"],
      ["successful", "Successful"], ["failed", "Failed"], ["success_rate", "Success rate"],
      ["throughput", "Throughput (avg)"], ["recent_throughput", "Throughput (recent)"],
      ["eta", "ETA"], ["updated_at", "Updated (UTC)"],
    ]) {
      const box = el("div");
      const value = el("dd", "", "-");
      value.dataset.field = field;
      box.append(el("dt", "", label), value);
      figures.append(box);
    }
    const error = el("div", "error");
    error.dataset.field = "error";
    const chart = document.createElementNS(SVG, "svg");
    chart.setAttribute("class", "chart");
    chart.setAttribute("viewBox", "0 0 1000 140");
    chart.setAttribute("preserveAspectRatio", "none");
    const legend = el("div", "legend",
      "processed items over time (solid), throughput in items/s (dashed), since this page's server started");
    section.append(head, bar, figures, error, chart, legend);
    stages.append(section);
    return section;
  }

  function set(section, field, text) {
    const node = section.querySelector('[data-field="' + field + '"]');
    if (node) node.textContent = text;
  }

  function drawChart(svg, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const axis = document.createElementNS(SVG, "line");
    axis.setAttribute("class", "axis");
    axis.setAttribute("x1", "40"); axis.setAttribute("x2", "990");
    axis.setAttribute("y1", "120"); axis.setAttribute("y2", "120");
    svg.append(axis);
    if (series.length < 2) return;
    const t0 = series[0][0], t1 = series[series.length - 1][0];
    const span = Math.max(t1 - t0, 1e-6);
    const maxN = Math.max(1, ...series.map((p) => p[1]));
    const rates = [];
    for (let i = 1; i < series.length; i++) {
      const dt = series[i][0] - series[i - 1][0];
      rates.push([series[i][0], dt > 0 ? Math.max(0, (series[i][1] - series[i - 1][1]) / dt) : 0]);
    }
    const maxR = Math.max(1e-6, ...rates.map((p) => p[1]));
    const x = (t) => 40 + 950 * (t - t0) / span;
    const line = (points, max, cls) => {
      const poly = document.createElementNS(SVG, "polyline");
      poly.setAttribute("class", cls);
      poly.setAttribute("points", points.map((p) =>
        x(p[0]).toFixed(1) + "," + (120 - 110 * p[1] / max).toFixed(1)).join(" "));
      svg.append(poly);
    };
    line(series, maxN, "processed");
    if (rates.length > 1) line(rates, maxR, "rate");
    const label = (text, xPos, yPos) => {
      const node = document.createElementNS(SVG, "text");
      node.setAttribute("x", String(xPos)); node.setAttribute("y", String(yPos));
      node.textContent = text;
      svg.append(node);
    };
    label(String(maxN), 2, 16);
    label("0", 2, 122);
    label(maxR.toFixed(1) + "/s", 930, 16);
    label(duration(span) + " shown", 460, 136);
  }

  function render(data) {
    document.getElementById("overall").textContent = data.overall_progress.toFixed(1) + "%";
    document.getElementById("overall-fill").style.width = data.overall_progress + "%";
    document.getElementById("empty").hidden = data.stages.length > 0;
    const seen = new Set();
    for (const stage of data.stages) {
      seen.add(stage.stage);
      const section = card(stage.stage);
      const badge = section.querySelector(".badge");
      badge.textContent = stage.status;
      badge.className = "badge s-" + stage.status;
      badge.dataset.field = "status";
      section.querySelector(".live").textContent = stage.live ? "● live" : "";
      const bar = section.querySelector(".bar");
      bar.className = "bar" + (stage.status === "completed" ? " done" : stage.status === "failed" ? " failed" : "");
      bar.querySelector(".fill").style.width = (stage.percent || 0) + "%";
      set(section, "progress", stage.progress_text || "-");
      for (const field of ["processed", "total", "successful", "failed", "success_rate", "updated_at", "eta"]) {
        set(section, field, stage[field] === undefined || stage[field] === null ? "-" : String(stage[field]));
      }
      set(section, "percent", stage.percent === undefined ? "-" : stage.percent.toFixed(1) + "%");
      set(section, "throughput", rate(stage.throughput));
      set(section, "recent_throughput", rate(stage.recent_throughput));
      set(section, "error", stage.error || stage.last_error || "");
      drawChart(section.querySelector("svg.chart"), stage.series);
    }
    for (const section of Array.from(stages.children)) {
      if (!seen.has(section.dataset.stage)) section.remove();
    }
  }

  async function refresh() {
    const state = document.getElementById("state");
    try {
      const response = await fetch("api/progress", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      render(data);
      refreshes += 1;
      body.dataset.refreshes = String(refreshes);
      state.textContent = data.error
        ? "error: " + data.error
        : "live, refreshed every " + interval / 1000 + " s; last " + data.generated_at + " UTC";
    } catch (err) {
      state.textContent = "cannot reach the dashboard server (" + err.message + "); retrying";
    } finally {
      setTimeout(refresh, interval);
    }
  }

  refresh();
})();
"""
