// rollguard status page: polls /api/services and /api/services/NAME and draws them.
"use strict";

const REFRESH_MS = Number(document.body.dataset.refreshMs) || 2000;
const params = new URLSearchParams(window.location.search);
let selected = params.get("service");

function h(tag, attrs, ...children) {
  const svg = ["svg", "path", "line", "polygon", "polyline", "text", "title", "rect", "g"];
  const el = svg.includes(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick") el.addEventListener("click", v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clock(t) {
  if (t === null || t === undefined) return "";
  return new Date(t * 1000).toLocaleTimeString([], {hour12: false});
}

function ago(t, now) {
  if (!t) return "";
  const s = Math.max(0, now - t);
  if (s < 90) return `${s.toFixed(0)} s ago`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)).toString();
}

function drillMark(s) {
  return s.drill ? h("span", {class: "badge drill", title: "rollguard drill: a rehearsal of " +
    "the guard on its own service; no real traffic, nobody paged"}, "drill") : null;
}

function badge(judgement) {
  return h("span", {class: "badge j-" + judgement.replace(/ /g, "-")}, judgement);
}

async function getJSON(url) {
  const response = await fetch(url, {cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function choose(services) {
  if (selected && services.some(s => s.service === selected)) return selected;
  const troubled = services.find(s => s.judgement !== "ok" && !s.drill);
  return (troubled || services.find(s => !s.drill) || services[0] || {}).service || null;
}

function renderServices(data) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren(...data.services.map(s => h("tr", {
      class: s.service === selected ? "selected" : null, "data-service": s.service,
      onclick: () => { selected = s.service; history.replaceState(null, "", "?service=" +
        encodeURIComponent(s.service)); refresh(); }},
    h("td", {class: "name"}, s.service, drillMark(s)), h("td", {}, badge(s.judgement)),
    h("td", {}, s.active || "–"), h("td", {}, s.stable || "–"),
    h("td", {}, s.candidate || "–"),
    h("td", {}, s.candidate ? `${fmt(s.percent)} %` : ""),
    h("td", {}, s.pinned ? "pinned" : ""), h("td", {}, s.epoch ?? "–"),
    h("td", {}, s.pending ? h("span", {class: "badge j-waiting-for-approval"},
      `${s.pending} waiting`) : ""),
    h("td", {}, s.updated_at ? `${ago(s.updated_at, data.now)} by ${s.updated_by}` : ""))));
  if (!data.services.length) {
    body.replaceChildren(h("tr", {}, h("td", {colspan: 10, class: "muted"},
      "no service has a pointer yet")));
  }
}

function chart(metric, markers, now) {
  const W = 440, H = 170, L = 46, R = 8, T = 18, B = 20;
  const pts = metric.points;
  const svg = h("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart",
    "data-metric": metric.metric});
  svg.appendChild(h("text", {x: L, y: 12, class: "title"}, metric.metric +
    (metric.releases.candidate ? `  ${metric.releases.candidate} vs ` +
      `${metric.releases.baseline || "?"}` : "")));
  if (!pts.length) return svg;
  // points are kept only when a level changes: the time axis runs on to now
  const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], now, t0 + 1);
  const values = pts.flatMap(p => [p[1], p[2], p[3]]).filter(v => v !== null);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { hi += Math.abs(hi) * 0.1 + 1e-3; lo -= Math.abs(lo) * 0.1 + 1e-3; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = v => T + (hi - v) / (hi - lo) * (H - T - B);
  const line = (i, cls) => {
    const held = pts.concat([[now, ...pts[pts.length - 1].slice(1)]]);  // the last level holds
    const d = held.filter(p => p[i] !== null).map(p => `${x(p[0]).toFixed(1)},${y(p[i]).toFixed(1)}`);
    return d.length ? h("polyline", {points: d.join(" "), class: cls}) : null;
  };
  const banded = pts.concat([[now, ...pts[pts.length - 1].slice(1)]])
    .filter(p => p[1] !== null && p[3] !== null);
  if (banded.length) {
    const upper = banded.map(p => `${x(p[0]).toFixed(1)},${y(p[3]).toFixed(1)}`);
    const lower = banded.slice().reverse().map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    svg.appendChild(h("polygon", {points: upper.concat(lower).join(" "), class: "band"}));
  }
  for (const v of [lo + pad, hi - pad]) {
    svg.appendChild(h("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid"}));
    svg.appendChild(h("text", {x: L - 4, y: y(v) + 3, class: "axis", "text-anchor": "end"},
      fmt(v)));
  }
  svg.appendChild(h("text", {x: L, y: H - 5, class: "axis"}, clock(t0)));
  svg.appendChild(h("text", {x: W - R, y: H - 5, class: "axis", "text-anchor": "end"},
    clock(t1)));
  svg.appendChild(line(3, "limit"));
  svg.appendChild(line(1, "baseline"));
  svg.appendChild(line(2, "candidate"));
  // a rollback decision is drawn last: its flip follows within milliseconds
  const order = m => (m.kind === "decision" ? 1 : 0);
  for (const m of markers.slice().sort((a, b) => order(a) - order(b))) {
    if (m.at < t0 || m.at > t1 + 5) continue;
    if (m.kind === "alert" && m.metric && m.metric !== metric.metric) continue;
    const mx = x(Math.min(m.at, t1));
    svg.appendChild(h("line", {x1: mx, x2: mx, y1: T, y2: H - B,
        class: "marker m-" + m.kind, "data-kind": m.kind},
      h("title", {}, `${clock(m.at)} ${m.label}`)));
    if (m.kind === "decision") {
      svg.appendChild(h("text", {x: mx - 3, y: T + 2, class: "mlabel",
        transform: `rotate(-90 ${mx - 3} ${T + 2})`, "text-anchor": "end"}, "ROLLBACK"));
    }
  }
  return svg;
}

function renderDecision(d) {
  const box = document.getElementById("decision");
  if (!d) { box.replaceChildren(h("p", {class: "muted"}, "no decision yet")); return; }
  const ev = Object.entries(d.evidence || {}).map(([k, v]) =>
    h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v)
      : k === "since" ? `${clock(v)} (event time)` : fmt(v))));
  box.replaceChildren(
    h("p", {class: "decision-head"}, badge(d.verdict || "watching"), " ",
      h("b", {}, d.action === "rollback" ? `rollback of ${d.release} to ${d.to}` +
        (d.components && d.components.length ? ` (${d.components.join(", ")} only)` : "")
        : `alert about ${d.release}`),
      ` at ${clock(d.at)}`, d.requires_approval ? " — waits for approval" : ""),
    h("p", {class: "reason"}, d.reason || ""),
    h("table", {class: "evidence"}, h("tbody", {}, ev)));
}

function renderPending(rows) {
  const box = document.getElementById("pending");
  box.replaceChildren(...rows.map(p => h("div", {class: "approval"},
    h("b", {}, `Waiting for approval: ${p.op} to ${p.to || "stable"}`),
    ` (command ${p.command_id}, issued by ${p.issued_by} at ${clock(p.issued_at)}) — `,
    p.reason || "", h("br"), h("code", {}, p.how))));
}

function renderHistory(rows) {
  document.querySelector("#history tbody").replaceChildren(...rows.map(r => h("tr",
    {class: "o-" + r.outcome},
    h("td", {}, clock(r.at)), h("td", {}, r.op), h("td", {}, r.release || ""),
    h("td", {}, r.outcome), h("td", {}, r.by || ""), h("td", {}, r.approved_by || ""),
    h("td", {}, `${r.epoch_before ?? ""} → ${r.epoch_after ?? ""}`),
    h("td", {class: "reason"}, [r.reason, r.late].filter(Boolean).join("; ")))));
}

function renderRecent(records) {
  document.getElementById("recent").replaceChildren(...records.map(r => h("li",
    {class: "r-" + r.type},
    h("span", {class: "muted"}, clock(r.at) + " "), h("b", {}, r.type +
      (r.verdict ? ` ${r.verdict}` : "") + (r.status ? ` ${r.status}` : "")), " ",
    r.reason || r.message || r.why || "")));
}

function rolloutText(r, now) {
  if (!r) return "";
  return `; rolling out ${r.release}: step ${r.step} of ${r.steps.length} ` +
    `(${fmt(r.percent)} %), ${r.status} since ${ago(r.since, now)}, waits for ${r.waits_for}`;
}

function renderDetail(page) {
  const s = page.service;
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").replaceChildren(s.service, " ", badge(s.judgement),
    " ", drillMark(s));
  const share = s.candidate ? `; candidate ${s.candidate} on ${fmt(s.percent)} %` : "";
  document.getElementById("pointer").replaceChildren(
    s.active ? `active ${s.active}, stable ${s.stable}${share}; epoch ${s.epoch}` +
      (s.pinned ? "; pinned" : "") + `; changed ${ago(s.updated_at, page.now)} by ` +
      `${s.updated_by}` + rolloutText(s.rollout, page.now) : "no pointer");
  renderPending(page.pending);
  const charts = document.getElementById("charts");
  charts.replaceChildren(...page.metrics.map(m => chart(m, page.markers, page.now)));
  if (!page.metrics.length) {
    charts.replaceChildren(h("p", {class: "muted"},
      "no metric levels yet (the worker reports them once a candidate is judged)"));
  }
  renderDecision(page.last_decision);
  renderHistory(page.history);
  renderRecent(page.recent);
}

async function refresh() {
  try {
    const all = await getJSON("/api/services");
    selected = choose(all.services);
    renderServices(all);
    let problems = all.problems;
    if (selected) {
      const page = await getJSON("/api/services/" + encodeURIComponent(selected));
      renderDetail(page);
      problems = page.problems;
    }
    document.getElementById("problems").textContent = problems.join("; ");
    document.getElementById("updated").textContent = "updated " + clock(all.now);
    document.body.dataset.loaded = "true";
  } catch (err) {
    document.getElementById("problems").textContent = String(err.message || err);
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
