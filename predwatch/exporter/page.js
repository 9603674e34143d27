// The status page: renders the /status document (embedded in the page, then re-read every
// few seconds when the page is served live). Every text from the data goes in through
// textContent, never as markup: feature names and rules come from the monitored events.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const CONFIG = JSON.parse(document.getElementById("status-config").textContent);

function fill(node, attrs, kids) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const kid of kids.flat(3)) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}
const h = (tag, attrs, ...kids) => fill(document.createElement(tag), attrs, kids);
const s = (tag, attrs, ...kids) => fill(document.createElementNS(SVG, tag), attrs, kids);

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
function num(v, digits = 3) {
  if (!isNum(v)) return "–";
  if (Number.isInteger(v)) return v.toLocaleString("en");
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(digits);
}
const pct = (v) => (isNum(v) ? (100 * v).toFixed(1) + "%" : "–");
const when = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC") : "–");
// A time on an axis: the time of day, with the date when the axis spans days.
const clock = (iso, days) => (iso ? (days ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 19))
  : "");
// A duration in seconds as people say it: 3600 -> "1h", 90 -> "90s".
function span(seconds) {
  if (!isNum(seconds)) return seconds ? String(seconds) : "window";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
const ratioMetric = (m) => m.metric !== "mae";
const show = (m, v) => (ratioMetric(m) ? num(v) : num(v, 4));

function header(doc, stale) {
  const join = doc.join || {};
  return h("header", { class: "top" },
    h("h1", {}, CONFIG.title),
    h("span", { class: "meta" }, "report at event time ", h("b", {}, when(doc.at_iso))),
    h("span", { class: "meta" }, "predictions ", h("b", {}, num(join.predictions)),
      " · labels ", h("b", {}, num(join.labels)), " · joined ", h("b", {}, num(join.matched)),
      " · waiting for a label ", h("b", {}, num(join.pending_predictions)),
      " · never labelled ", h("b", {}, num(join.unlabelled)),
      join.evicted ? [" · evicted ", h("b", {}, num(join.evicted))] : null),
    h("span", { class: "meta" }, "label coverage ", h("b", {}, pct(doc.coverage))),
    CONFIG.live ? h("span", { class: "meta" }, "consumer lag ",
      h("b", {}, num(doc.lag ? doc.lag.total : null)), " records") : null,
    stale ? h("span", { class: "stale" }, stale) : null);
}

function alertLine(alert) {
  const labels = Object.entries(alert.labels || {})
    .filter(([key]) => key !== "alertname").map(([key, v]) => `${key}=${v}`).join(" ");
  const summary = (alert.annotations || {}).summary;
  return h("div", { class: `alert ${alert.state}`, "data-state": alert.state },
    h("span", { class: "state" }, alert.state),
    h("span", { class: "rule" }, alert.rule), " ",
    h("span", { class: "detail" }, labels,
      ` · value ${num(alert.value)} vs threshold ${num(alert.threshold)}`,
      alert.starts_at_iso ? ` · since ${when(alert.starts_at_iso)}` : ""),
    summary ? h("div", {}, summary) : null);
}

function alertsSection(doc) {
  const shown = (doc.alerts || []).filter((a) => a.state === "firing" || a.state === "pending");
  const evaluated = doc.alerts_evaluated_at_iso
    ? h("p", { class: "muted" }, `Alerts as evaluated at ${when(doc.alerts_evaluated_at_iso)}; ` +
      "the figures below are from the report at " + when(doc.at_iso) + ".") : null;
  return h("section", { class: "alerts", id: "alerts" },
    shown.length ? shown.map(alertLine) : h("p", { class: "none" }, "No alert is firing."),
    shown.length ? evaluated : null);
}

function kpi(label, value, sub, bad) {
  return h("div", { class: "kpi" }, h("span", { class: "label" }, label),
    h("span", { class: bad ? "value bad" : "value" }, value),
    sub ? h("span", { class: "sub" }, " " + sub) : null);
}

// Headline metric per window: realised bar, estimate as a diamond (binary models).
function windowsChart(m) {
  const estimates = {};
  for (const w of (m.estimated ? m.estimated.windows : [])) estimates[w.name] = w;
  const rows = [{ name: "cumulative", value: m.cumulative[m.metric], count: m.cumulative.count }];
  for (const w of m.windows) {
    const est = estimates[w.name];
    rows.push({ name: w.name, value: w[m.metric], count: w.count,
      estimate: est ? est.estimated[m.metric] : null, coverage: est ? est.coverage : null });
  }
  if (m.estimated) {
    rows.push({ name: "waiting", value: null, count: m.estimated.pending.count,
      estimate: m.estimated.pending[m.metric] });
  }
  const firing = new Set(m.alerts.filter((a) => a.state === "firing").map((a) => a.labels.window));
  const values = rows.flatMap((r) => [r.value, r.estimate]).filter(isNum);
  const top = ratioMetric(m) ? 1 : Math.max(1e-9, ...values) * 1.1;
  const W = 460, left = 86, right = 120, rowH = 26, H = rows.length * rowH + 24;
  const x = (v) => left + (W - left - right) * Math.max(0, Math.min(1, v / top));
  const svg = s("svg", { class: "chart chart-windows", viewBox: `0 0 ${W} ${H}`,
    role: "img", "aria-label": `${m.metric} per window`,
    "data-points": values.length });
  svg.append(s("line", { class: "axis", x1: left, x2: left, y1: 0, y2: H - 18 }));
  for (const tick of [0, 0.5, 1]) {
    svg.append(s("text", { x: x(tick * top), y: H - 4, "text-anchor": "middle" },
      num(tick * top, ratioMetric(m) ? 1 : 3)));
  }
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    svg.append(s("text", { x: left - 6, y: y + 14, "text-anchor": "end" }, r.name));
    if (isNum(r.value)) {
      svg.append(s("rect", { class: firing.has(r.name) ? "realised alerting" : "realised",
        x: left, y: y + 3, height: 14,
        width: Math.max(1, x(r.value) - left), "data-value": r.value }));
    }
    if (isNum(r.estimate)) {
      const cx = x(r.estimate), cy = y + 10;
      svg.append(s("path", { class: "estimate", "data-value": r.estimate,
        d: `M${cx} ${cy - 7} L${cx + 6} ${cy} L${cx} ${cy + 7} L${cx - 6} ${cy} Z` }));
    }
    const text = [isNum(r.value) ? show(m, r.value) : "", isNum(r.estimate) ?
      `est ${show(m, r.estimate)}` : ""].filter(Boolean).join(" · ");
    svg.append(s("text", { class: "value", x: W - right + 8, y: y + 14 }, text || "no pairs yet"));
  });
  return h("div", { class: "chart-box" }, svg,
    h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:#2e5aac" }),
      `realised ${m.metric}`), m.estimated ? h("span", {}, h("i", {
      style: "background:#d97706" }), "estimated from scores") : null,
    firing.size ? h("span", {}, h("i", { style: "background:#b42318" }), "alert firing") : null));
}

// Metric history: one point per closed window, its control band and mean.
function historyChart(m) {
  const history = m.history;
  const series = history && history.metrics ? history.metrics[m.metric] ||
    Object.values(history.metrics)[0] : null;
  const points = series ? series.points.filter((p) => isNum(p.value)) : [];
  if (!points.length) {
    return h("div", { class: "chart-box" }, h("p", { class: "none" },
      "No metric history yet: a point is added as each history window closes, " +
      "once its predictions are labelled or timed out."));
  }
  const estimated = history.metrics["estimated_" + m.metric];
  const band = Array.isArray(series.band) ? series.band : null;
  const all = points.map((p) => p.value).concat(band || []).concat(
    estimated ? estimated.points.map((p) => p.value).filter(isNum) : []);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (ratioMetric(m)) { lo = Math.max(0, lo - 0.05); hi = Math.min(1, hi + 0.05); }
  if (hi - lo < 1e-9) { hi += 0.05; lo -= 0.05; }
  const W = 900, H = 220, left = 44, bottom = 22, top = 8;
  const t0 = points[0].end, t1 = points[points.length - 1].end;
  const x = (t) => left + (W - left - 8) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5);
  const y = (v) => top + (H - top - bottom) * (1 - (v - lo) / (hi - lo));
  const svg = s("svg", { class: "chart chart-history", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${m.metric} per ${span(history.window)} window`,
    "data-points": points.length });
  if (band) {
    svg.append(s("rect", { class: "band", x: left, width: W - left - 8,
      y: y(Math.min(hi, band[1])), height: Math.max(1, y(Math.max(lo, band[0])) -
      y(Math.min(hi, band[1]))), "data-low": band[0], "data-high": band[1] }));
  }
  if (isNum(series.mean)) {
    svg.append(s("line", { class: "mean", x1: left, x2: W - 8, y1: y(series.mean),
      y2: y(series.mean) }));
  }
  svg.append(s("line", { class: "axis", x1: left, x2: left, y1: top, y2: H - bottom }));
  svg.append(s("line", { class: "axis", x1: left, x2: W - 8, y1: H - bottom, y2: H - bottom }));
  for (const v of [lo, hi]) {
    svg.append(s("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" }, num(v, 2)));
  }
  const days = t1 - t0 > 86400;
  svg.append(s("text", { x: left, y: H - 6 }, clock(points[0].end_iso, days)));
  svg.append(s("text", { x: W - 8, y: H - 6, "text-anchor": "end" },
    clock(points[points.length - 1].end_iso, days)));
  if (estimated) {
    const est = estimated.points.filter((p) => isNum(p.value) && p.end >= t0);
    svg.append(s("polyline", { class: "estimate", "stroke-dasharray": "5 3",
      points: est.map((p) => `${x(p.end)},${y(p.value)}`).join(" ") }));
  }
  svg.append(s("polyline", { class: "series",
    points: points.map((p) => `${x(p.end)},${y(p.value)}`).join(" ") }));
  for (const p of points) {
    const out = band && (p.value < band[0] || p.value > band[1]);
    svg.append(s("circle", { class: out ? "point outside" : "point realised", r: out ? 4 : 3,
      cx: x(p.end), cy: y(p.value), "data-value": p.value },
    s("title", {}, `${when(p.end_iso)}: ${show(m, p.value)} (${num(p.count)} pairs)`)));
  }
  const caption = [`${m.metric} per ${span(history.window)} window`,
    isNum(series.mean) ? `mean ${show(m, series.mean)}` : "",
    isNum(series.median) ? `median ${show(m, series.median)}` : "",
    isNum(series.variance) ? `variance ${num(series.variance, 5)}` : "",
    band ? `band ${show(m, band[0])}–${show(m, band[1])}` : "no band yet",
    series.outside ? "LATEST OUTSIDE THE BAND" : ""].filter(Boolean).join(" · ");
  const legend = h("div", { class: "legend" },
    h("span", {}, h("i", { style: "background:#2e5aac" }), `realised ${m.metric}`),
    estimated ? h("span", {}, h("i", { style: "background:#d97706" }), "estimated") : null,
    band ? h("span", {}, h("i", { style: "background:#d7eadf" }), "control band") : null,
    band ? h("span", {}, h("i", { style: "background:#b42318" }), "outside the band") : null);
  return h("div", { class: "chart-box wide" }, svg, legend,
    h("div", { class: "caption" }, caption));
}

// Reliability diagram: per score bin, the mean score against the share of positives.
function calibrationChart(m) {
  const bins = m.calibration && m.calibration.cumulative.bins
    ? m.calibration.cumulative.bins.filter((b) => b.count > 0) : [];
  if (!bins.length) return null;
  const S = 180, pad = 26, x = (v) => pad + (S - pad - 6) * v, y = (v) => S - pad - (S - pad - 6) * v;
  const total = bins.reduce((sum, b) => sum + b.count, 0);
  const svg = s("svg", { class: "chart chart-calibration", viewBox: `0 0 ${S} ${S}`,
    role: "img", "aria-label": "calibration", "data-points": bins.length },
  s("line", { class: "axis", x1: x(0), y1: y(0), x2: x(1), y2: y(1) }),
  s("line", { class: "axis", x1: x(0), y1: y(0), x2: x(1), y2: y(0) }),
  s("text", { x: x(0.5), y: S - 6, "text-anchor": "middle" }, "mean score"),
  s("text", { x: 10, y: y(0.5), transform: `rotate(-90 10 ${y(0.5)})`,
    "text-anchor": "middle" }, "positives"),
  bins.map((b) => s("circle", { class: "realised", cx: x(b.mean_score), cy: y(b.positive_rate),
    r: 2.5 + 6 * Math.sqrt(b.count / total), "data-value": b.positive_rate },
  s("title", {}, `${pct(b.mean_score)} scored, ${pct(b.positive_rate)} positive (${b.count})`))));
  return h("div", { class: "chart-box", style: "flex: 0 1 200px; min-width: 180px" }, svg,
    h("div", { class: "caption" }, `calibration error ${num(m.calibration.cumulative.ece)}`));
}

// One row per column, one PSI cell per window; a drifting cell (and its row) in red.
function featuresPart(m) {
  if (!m.features.length) {
    return h("p", { class: "none" }, "No data drift figures yet: they come once the " +
      "reference (the first predictions, or drift.reference.path) is complete.");
  }
  const windows = [...new Set(m.features.map((f) => f.window))];
  const rows = new Map();
  for (const f of m.features) {
    if (!rows.has(f.feature)) rows.set(f.feature, {});
    rows.get(f.feature)[f.window] = f;
  }
  const cell = (f) => (f ? h("td", { class: f.drift ? "drift-cell" : null,
    title: `p (adjusted) ${num(f.p_adjusted, 4)} · JS ${num(f.js)} · ${num(f.n)} values` },
  num(f.psi), f.drift ? " drift" : "") : h("td", {}, "–"));
  return [
    m.drifted.length ? h("div", {}, m.drifted.map((f) => h("span", { class: "feature-chip" }, f)))
      : h("p", { class: "muted" }, "No feature drifts (PSI per window below)."),
    h("table", { class: "features" },
      h("tr", {}, h("th", {}, "column"), windows.map((w) => h("th", {}, `PSI ${w}`))),
      [...rows].map(([feature, byWindow]) => h("tr", { "data-feature": feature,
        class: m.drifted.includes(feature) ? "drifted" : null },
      h("td", {}, feature), windows.map((w) => cell(byWindow[w]))))),
  ];
}

function segmentsPart(m) {
  if (!m.segments.length) return h("p", { class: "none" }, "No failing segment found yet.");
  const name = (seg) => (seg.metric === "mae" ? "MAE" : "error");
  const value = (seg, v) => (seg.metric === "mae" ? num(v) : pct(v));
  return h("ol", { class: "segments" }, m.segments.map((seg) => h("li", {},
    h("code", { class: "rule" }, seg.rule), ` — ${name(seg)} ${value(seg, seg.value)} vs `,
    `${value(seg, seg.rest)} elsewhere (×${num(seg.lift, 1)}, ${num(seg.support)} pairs)`)));
}

function card(m) {
  const est = m.estimated;
  const concept = m.concept || { count: 0 };
  const head = m.cumulative[m.metric];
  const coverage = est && est.windows.length ? est.windows[0] : null;
  return h("article", { class: m.firing ? "card has-firing" : "card",
    "data-model": m.model, "data-version": m.version },
  h("h2", {}, `${m.model} ${m.version}`, h("span", { class: "task" }, m.task),
    m.firing ? h("span", { class: "badge" }, `${m.firing} firing`) : null),
  h("div", { class: "kpis" },
    kpi(`${m.metric} (all pairs)`, show(m, head), `${num(m.cumulative.count)} pairs`),
    est ? kpi(`estimated ${m.metric}, waiting`, show(m, est.pending[m.metric]),
      `${num(est.pending.count)} predictions`) : null,
    coverage ? kpi(`labels in ${coverage.name}`, pct(coverage.coverage),
      `${num(coverage.labelled)} labelled`) : null,
    kpi("concept drift", num(concept.count), concept.last_detection_time_iso
      ? `last ${when(concept.last_detection_time_iso)}` : "detections", concept.count > 0),
    m.drifted.length ? kpi("drifting features", num(m.drifted.length), "", true) : null),
  h("h3", {}, `${m.metric} over time`), historyChart(m),
  h("h3", {}, `${m.metric} per window, estimated against realised`),
  h("div", { class: "charts" }, windowsChart(m), calibrationChart(m)),
  h("h3", {}, "Data drift"), featuresPart(m),
  h("h3", {}, "Where it errs most"), segmentsPart(m),
  m.alerts.length ? [h("h3", {}, "Alerts"), m.alerts.map(alertLine)] : null);
}

function comparisons(doc) {
  if (!doc.comparisons.length) return null;
  return h("section", { class: "card", id: "comparisons", style: "margin-top: 16px" },
    h("h2", {}, "Version comparisons"),
    h("table", {}, h("tr", {}, ["model", "metric", "versions", "estimates", "p", "verdict"]
      .map((t) => h("th", {}, t))),
    doc.comparisons.map((c) => h("tr", {}, h("td", {}, c.model), h("td", {}, c.metric),
      h("td", {}, c.groups.join(" vs ")), h("td", {}, c.estimates.map((v) => num(v)).join(" vs ")),
      h("td", {}, num(c.p_value, 4)),
      h("td", {}, c.significant ? "differ" : "no significant difference")))));
}

function render(doc, stale) {
  const root = document.getElementById("app");
  root.replaceChildren(header(doc, stale), h("main", {}, alertsSection(doc),
    doc.models.length ? h("div", { class: "cards", id: "cards" }, doc.models.map(card))
      : h("p", { class: "none" }, "No model has reported yet."),
    comparisons(doc),
    h("footer", {}, CONFIG.live ? `Refreshes every ${CONFIG.refresh} s from ./status.`
      : "Written by predwatch replay.")));
}

let latest = JSON.parse(document.getElementById("status-data").textContent);
render(latest, null);
if (CONFIG.live) {
  setInterval(async () => {
    try {
      const response = await fetch("status", { cache: "no-store" });
      if (!response.ok) throw new Error(`status answered ${response.status}`);
      latest = await response.json();
      render(latest, null);
    } catch (error) {
      render(latest, `not refreshed: ${error.message}`);
    }
  }, CONFIG.refresh * 1000);
}
