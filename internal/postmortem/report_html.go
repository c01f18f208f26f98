package postmortem

import (
	"html/template"
	"io"
)

// writeReportHTML renders the model as one page. html/template escapes the model
// into the script as JSON, so nothing in a journal (a progress line, a reason) can
// break out of it.
func writeReportHTML(w io.Writer, m *reportData) error {
	return reportTmpl.Execute(w, m)
}

var reportTmpl = template.Must(template.New("report").Parse(reportPage))

// reportPage is the whole page: no external resource, so that it opens on an
// air-gapped laptop. The script draws the timeline into an SVG from the model and
// redraws it on resize and zoom; bars narrower than a few pixels are merged into
// aggregates (a stacked bar of their outcomes) so that 10,000 jobs stay readable.
const reportPage = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root{--fg:#1d2329;--mut:#5f6b76;--bg:#fff;--lane:#f5f7f9;--lane2:#eceff3;--line:#d5dbe1}
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:16px 20px}
h1{font-size:18px;margin:0 0 2px}h2{font-size:15px;margin:22px 0 6px}
.mut{color:var(--mut)}
table{border-collapse:collapse;margin:4px 0}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}th{font-weight:600;color:var(--mut);border-bottom:1px solid var(--line)}
#legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:10px 0}
#legend span{display:inline-flex;align-items:center;gap:5px}
#legend i{display:inline-block;width:14px;height:10px;border-radius:2px}
#bar{display:flex;gap:8px;align-items:center;margin:6px 0}
button{font:inherit;padding:2px 10px;border:1px solid var(--line);background:#fff;border-radius:4px;cursor:pointer}
button:hover{background:var(--lane)}
#chart{position:relative;border:1px solid var(--line);border-radius:4px;overflow:hidden;user-select:none}
svg text{font:11px system-ui,sans-serif;fill:var(--fg)}
svg .lbl{fill:var(--fg)}svg .sub{fill:var(--mut)}
svg .bar,svg .agg{cursor:pointer}
svg .bar:hover,svg .agg:hover,svg .sel{stroke:#000;stroke-width:1.5}
svg .grid{stroke:#e3e7eb}
#tip{position:fixed;z-index:9;pointer-events:none;display:none;max-width:560px;background:#1d2329;color:#fff;border-radius:4px;padding:6px 8px;font-size:12px;box-shadow:0 2px 8px rgba(0,0,0,.3)}
#tip b{color:#fff}#tip table td{padding:0 8px 0 0;color:#e8edf2}#tip .k{color:#9fd3ff}
#detail table td.k{color:#1f6fb2;white-space:nowrap}
#detail{min-height:20px}
.o-accepted{fill:#2e9d4f;background:#2e9d4f}.o-applied-earlier{fill:#1a9aa0;background:#1a9aa0}
.o-orphaned{fill:#e07b1a;background:#e07b1a}.o-released{fill:#9aa3ad;background:#9aa3ad}
.o-flagged{fill:#8e44ad;background:#8e44ad}.o-failed{fill:#d93025;background:#d93025}
.o-lost{fill:#6d4c41;background:#6d4c41}.o-pending{fill:#f2c230;background:#f2c230}
.o-held{fill:#5b8def;background:#5b8def}
</style></head>
<body>
<h1>{{.Title}}</h1>
<div class="mut">generated {{.Generated}} · {{len .Journals}} journal(s) · {{len .Lanes}} slot(s) · {{len .Jobs}} job bar(s) · times in UTC</div>
<div id="legend"></div>
<div id="bar"><button id="reset">Whole run</button><button id="out">Zoom out</button>
<span class="mut">Drag across the chart to zoom in; click a bar to keep its events below; click an aggregate to zoom into it.</span></div>
<div id="chart"><svg id="svg" width="100%" height="100"></svg></div>
<div id="tip"></div>
<h2>Selected job</h2><div id="detail" class="mut">Click a bar.</div>
<h2>Journals</h2>
<table><tr><th>#</th><th>journal</th><th>events</th><th>first event</th><th>last event</th><th>how it ends</th></tr>
{{range $i, $j := .Journals}}<tr><td>{{$i}}</td><td title="{{$j.Path}}">{{$j.Name}}</td><td>{{$j.Events}}</td><td>{{$j.First}}</td><td>{{$j.Last}}</td><td>{{$j.Ending}}</td></tr>
{{end}}</table>
<h2>Recoveries</h2><div id="recoveries"></div>
<h2>Orphaned outputs ({{len .Orphans}})</h2>
{{if .Orphans}}<p class="mut">Finished work the tracker no longer takes from the worker that did it (its session was lost). <code>dcjournal export JOURNAL --orphans --out DIR</code> saves them.</p>
<table id="orphans"><tr><th>journal</th><th>slot</th><th>stage</th><th>job</th><th>seq</th><th>orphaned</th><th>output</th><th>reason</th></tr>
{{range .Orphans}}<tr><td>{{.Journal}}</td><td>{{.Slot}}</td><td>{{.Stage}}</td><td>{{.Job}}</td><td>{{.Seq}}</td><td>{{.Time}}</td><td>{{.Output}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p class="mut">None: no finished output is waiting outside the tracker.</p>{{end}}
<script>
"use strict";
const D = {{.}};
const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("svg"), tip = document.getElementById("tip");
const detail = document.getElementById("detail");
const LABEL = 210, AXIS = 26, GROUP = 18, MINBAR = 3;
const LANE = D.lanes.length > 12 ? 16 : 26;
let view = [0, D.span], stack = [], selected = -1;
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const abs = t => new Date(D.t0 + t);
const hms = t => { const d = abs(t); return d.toISOString().slice(11, 23); };
const dur = ms => ms < 1000 ? ms + " ms" : ms < 60000 ? (ms / 1000).toFixed(1) + " s" : ms < 3600000 ? (ms / 60000).toFixed(1) + " min" : (ms / 3600000).toFixed(1) + " h";

// Legend with counts.
document.getElementById("legend").innerHTML = D.outcomes.map(o =>
  '<span><i class="o-' + o + '"></i>' + o + ' <span class="mut">' + (D.counts[o] || 0) + '</span></span>').join("") +
  '<span><i style="background:repeating-linear-gradient(45deg,#c9ced4 0 3px,#fff 3px 6px)"></i>worker dead</span>' +
  '<span><i style="background:#c0392b;width:3px"></i>recovery</span>';

// Recoveries list, from the marks.
(function () {
  const rows = D.marks.filter(m => m[2] === "recovery");
  const el = document.getElementById("recoveries");
  if (!rows.length) { el.innerHTML = '<p class="mut">None recorded: no restart found unsettled work.</p>'; return; }
  el.innerHTML = "<table><tr><th>time</th><th>journal</th><th>slot</th><th>what recovery did</th></tr>" + rows.map(m => {
    const l = D.lanes[m[0]];
    return "<tr><td>" + esc(abs(m[1]).toISOString().replace("T", " ").slice(0, 23)) + "</td><td>" + esc(D.journals[l.j].name) + "</td><td>" + esc(l.slot) + "</td><td>" + esc(m[3].replace(/^recovery: /, "")) + "</td></tr>";
  }).join("") + "</table>";
})();

// Layout: lanes grouped by journal, a header row per journal when there are several.
const laneY = [];
let H = AXIS;
D.lanes.forEach((l, i) => {
  if (D.journals.length > 1 && (i === 0 || D.lanes[i - 1].j !== l.j)) H += GROUP;
  laneY.push(H); H += LANE;
});
H += 8;
const jobsByLane = D.lanes.map(() => []);
D.jobs.forEach((b, i) => jobsByLane[b[0]].push(i));

function niceStep(span, px) {
  const target = span / Math.max(2, px / 110);
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5];
  return steps.find(s => s >= target) || 864e5;
}

function draw() {
  const W = Math.max(svg.clientWidth || 900, 400);
  const PW = W - LABEL - 10;
  const x = t => LABEL + (t - view[0]) / (view[1] - view[0]) * PW;
  const vis = (a, b) => b >= view[0] && a <= view[1];
  const out = [];
  svg.setAttribute("height", H);
  out.push('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><rect width="3" height="6" fill="#c9ced4"/></pattern>' +
    '<pattern id="pend" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f2c230"/><rect width="2" height="6" fill="#fff6d5"/></pattern>' +
    '<clipPath id="plot"><rect x="' + LABEL + '" y="0" width="' + PW + '" height="' + H + '"/></clipPath></defs>');
  // Axis.
  const step = niceStep(view[1] - view[0], PW);
  for (let t = Math.ceil((D.t0 + view[0]) / step) * step - D.t0; t <= view[1]; t += step) {
    const X = x(t).toFixed(1);
    out.push('<line class="grid" x1="' + X + '" x2="' + X + '" y1="' + (AXIS - 6) + '" y2="' + H + '"/>');
    out.push('<text class="sub" x="' + X + '" y="14" text-anchor="middle">' + (step < 1000 ? hms(t) : hms(t).slice(0, step < 60000 ? 8 : 5)) + '</text>');
  }
  // Journal headers and lane backgrounds.
  D.lanes.forEach((l, i) => {
    const y = laneY[i];
    if (D.journals.length > 1 && (i === 0 || D.lanes[i - 1].j !== l.j))
      out.push('<text class="lbl" x="4" y="' + (y - 5) + '" font-weight="600">' + esc(D.journals[l.j].name) + ' <tspan class="sub">' + esc(D.journals[l.j].ending) + '</tspan></text>');
    out.push('<rect class="lane" data-lane="' + i + '" x="0" y="' + y + '" width="' + W + '" height="' + LANE + '" fill="' + (i % 2 ? "var(--lane2)" : "var(--lane)") + '"/>');
    out.push('<text class="lbl" x="6" y="' + (y + LANE / 2 + 4) + '">' + esc(l.slot) + ' <tspan class="sub">' + esc((l.worker || "") + (l.stage ? " · " + l.stage : "")) + '</tspan></text>');
  });
  out.push('<g clip-path="url(#plot)">');
  // Bars, merged into aggregates where they would be too thin to see.
  const bh = LANE - 8;
  jobsByLane.forEach((idx, lane) => {
    const y = laneY[lane] + 4;
    let agg = null;
    const flush = () => {
      if (!agg) return;
      if (agg.items.length === 1) { bar(agg.items[0]); agg = null; return; }
      const counts = {}; agg.items.forEach(i => { const o = D.outcomes[D.jobs[i][3]]; counts[o] = (counts[o] || 0) + 1; });
      const w = Math.max(agg.x1 - agg.x0, MINBAR);
      let cx = agg.x0;
      const parts = D.outcomes.filter(o => counts[o]);
      out.push('<g class="agg" data-agg="' + agg.items[0] + ',' + agg.items.length + '" data-t="' + agg.t0 + ',' + agg.t1 + '">');
      parts.forEach(o => { const pw = w * counts[o] / agg.items.length; out.push('<rect class="o-' + o + '" x="' + cx.toFixed(2) + '" y="' + y + '" width="' + pw.toFixed(2) + '" height="' + bh + '"/>'); cx += pw; });
      out.push('<rect x="' + agg.x0.toFixed(2) + '" y="' + (y + bh - 2) + '" width="' + w.toFixed(2) + '" height="2" fill="#000" opacity=".25"/></g>');
      agg = null;
    };
    const bar = i => {
      const b = D.jobs[i], o = D.outcomes[b[3]];
      const x0 = x(b[1]), w = Math.max(x(b[2]) - x0, MINBAR);
      const fill = o === "pending" ? ' fill="url(#pend)"' : "";
      out.push('<rect class="bar o-' + o + (i === selected ? " sel" : "") + '" data-i="' + i + '" x="' + x0.toFixed(2) + '" y="' + y + '" width="' + w.toFixed(2) + '" height="' + bh + '" rx="2"' + fill + '/>');
      if (w > 24) {
        let last = -9;
        b[7].forEach(t => { const X = x(t); if (X - last >= 2) { out.push('<line x1="' + X.toFixed(1) + '" x2="' + X.toFixed(1) + '" y1="' + y + '" y2="' + (y + 4) + '" stroke="#fff" stroke-width="1" pointer-events="none"/>'); last = X; } });
        b[8].forEach(t => { const X = x(t); out.push('<path d="M' + X.toFixed(1) + ' ' + (y + bh) + 'l-3 4h6z" fill="#1d2329" pointer-events="none"/>'); });
      }
      if (w > 60) out.push('<text x="' + (x0 + 4).toFixed(1) + '" y="' + (y + bh - 4) + '" fill="#fff" style="fill:#fff" pointer-events="none">' + b[4] + '</text>');
    };
    for (const i of idx) {
      const b = D.jobs[i];
      if (!vis(b[1], b[2])) continue;
      const x0 = x(b[1]), x1 = x(b[2]);
      if (x1 - x0 >= 6) { flush(); bar(i); continue; }
      if (agg && x0 <= agg.x1 + 2) { agg.items.push(i); agg.x1 = Math.max(agg.x1, x1); agg.t1 = Math.max(agg.t1, b[2]); continue; }
      flush();
      agg = {x0: x0, x1: x1, items: [i], t0: b[1], t1: b[2]};
    }
    flush();
  });
  // Dead gaps, shaded across the journal's lanes.
  D.gaps.forEach((g, gi) => {
    const end = g[3] === "silent" ? D.span : g[2];
    if (!vis(g[1], end)) return;
    const lanes = D.lanes.map((l, i) => l.j === g[0] ? i : -1).filter(i => i >= 0);
    if (!lanes.length) return;
    const y0 = laneY[lanes[0]], y1 = laneY[lanes[lanes.length - 1]] + LANE;
    const x0 = x(g[1]), w = Math.max(x(end) - x0, 4);
    out.push('<rect class="gap" data-gap="' + gi + '" x="' + x0.toFixed(1) + '" y="' + y0 + '" width="' + w.toFixed(1) + '" height="' + (y1 - y0) + '" fill="url(#hatch)" stroke="#7f8c8d" stroke-width=".5" opacity="' + (g[3] === "silent" ? 0.5 : 0.75) + '"/>');
    if (w > 70 && g[3] !== "silent") out.push('<text class="sub" x="' + (x0 + 3).toFixed(1) + '" y="' + (y0 - 2) + '" pointer-events="none">' + (g[3] === "dead" ? "dead " : "stopped ") + dur(g[2] - g[1]) + '</text>');
  });
  // Marks: recoveries (red line), lost sessions, drains, failed commands.
  D.marks.forEach((m, mi) => {
    if (!vis(m[1], m[1])) return;
    const X = x(m[1]).toFixed(1), y = laneY[m[0]];
    const t = m[2];
    if (t === "recovery") out.push('<g class="mark recovery" data-m="' + mi + '"><line x1="' + X + '" x2="' + X + '" y1="' + y + '" y2="' + (y + LANE) + '" stroke="#c0392b" stroke-width="2"/><circle cx="' + X + '" cy="' + (y + 3) + '" r="3.5" fill="#c0392b"/></g>');
    else if (t === "lost") out.push('<g class="mark" data-m="' + mi + '"><path d="M' + (X - 4) + ' ' + (y + 2) + 'l8 8m0 -8l-8 8" stroke="#6d4c41" stroke-width="2"/></g>');
    else if (t === "drained") out.push('<g class="mark" data-m="' + mi + '"><rect x="' + (X - 3) + '" y="' + (y + 2) + '" width="6" height="' + (LANE - 4) + '" fill="#34495e"/></g>');
    else if (t === "failed") out.push('<g class="mark" data-m="' + mi + '"><circle cx="' + X + '" cy="' + (y + LANE - 3) + '" r="2.5" fill="#d93025"/></g>');
    else if (t === "registered" || t === "closed") out.push('<g class="mark" data-m="' + mi + '"><line x1="' + X + '" x2="' + X + '" y1="' + (y + 1) + '" y2="' + (y + LANE - 1) + '" stroke="#7f8c8d" stroke-dasharray="2,2"/></g>');
    else if (t === "orphan") out.push('<g class="mark" data-m="' + mi + '"><circle cx="' + X + '" cy="' + (y + LANE / 2) + '" r="3" fill="#e07b1a"/></g>');
  });
  out.push('</g><rect id="brush" x="0" y="0" width="0" height="' + H + '" fill="#1f6fb2" opacity=".15" visibility="hidden"/>');
  svg.innerHTML = out.join("");
}

function jobEvents(i) {
  const b = D.jobs[i], rows = [];
  for (let k = b[5]; k < b[5] + b[6]; k++) rows.push(D.ev[k]);
  return rows;
}
function jobHead(i) {
  const b = D.jobs[i], l = D.lanes[b[0]];
  return "<b>job " + b[4] + (b[9] ? " · stage " + esc(b[9]) : "") + " · " + D.outcomes[b[3]] + "</b> · " + esc(D.journals[l.j].name) + " slot " + esc(l.slot) +
    "<br>" + hms(b[1]) + " → " + hms(b[2]) + " (" + dur(b[2] - b[1]) + ")";
}
function eventsTable(i) {
  return "<table>" + jobEvents(i).map(e => "<tr><td>" + hms(e[0]) + '</td><td class="k">' + esc(D.kinds[e[1]]) + "</td><td>" + esc(e[2]) + "</td></tr>").join("") + "</table>";
}
function tipFor(el) {
  if (el.dataset.i !== undefined) return jobHead(+el.dataset.i) + eventsTable(+el.dataset.i);
  if (el.dataset.agg !== undefined) {
    const [first, n] = el.dataset.agg.split(",").map(Number);
    const counts = {};
    const ids = jobsByLane[D.jobs[first][0]];
    const start = ids.indexOf(first);
    const jobs = ids.slice(start, start + n);
    jobs.forEach(i => { const o = D.outcomes[D.jobs[i][3]]; counts[o] = (counts[o] || 0) + 1; });
    const [t0, t1] = el.dataset.t.split(",").map(Number);
    return "<b>" + n + " jobs</b> " + hms(t0) + " → " + hms(t1) + "<br>" + Object.entries(counts).map(([o, c]) => c + " " + o).join(", ") +
      "<br>jobs " + jobs.slice(0, 12).map(i => D.jobs[i][4]).join(", ") + (n > 12 ? ", …" : "") + '<br><span class="k">click to zoom in</span>';
  }
  if (el.dataset.m !== undefined) { const m = D.marks[+el.dataset.m]; return "<b>" + hms(m[1]) + "</b> " + esc(m[3]); }
  if (el.dataset.gap !== undefined) { const g = D.gaps[+el.dataset.gap]; return "<b>" + hms(g[1]) + (g[3] === "silent" ? "" : " → " + hms(g[2])) + "</b> " + esc(g[4]); }
  return "";
}
function target(ev) {
  let el = ev.target;
  while (el && el !== svg) { if (el.dataset && (el.dataset.i !== undefined || el.dataset.agg !== undefined || el.dataset.m !== undefined || el.dataset.gap !== undefined)) return el; el = el.parentNode; }
  return null;
}
svg.addEventListener("mousemove", ev => {
  if (drag) return;
  const el = target(ev);
  if (!el) { tip.style.display = "none"; return; }
  tip.innerHTML = tipFor(el);
  tip.style.display = "block";
  const r = tip.getBoundingClientRect();
  tip.style.left = Math.min(ev.clientX + 14, innerWidth - r.width - 8) + "px";
  tip.style.top = (ev.clientY + 16 + r.height > innerHeight ? ev.clientY - r.height - 10 : ev.clientY + 16) + "px";
});
svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });

// Zoom: drag a range; click an aggregate; buttons.
let drag = null;
const PWnow = () => Math.max(svg.clientWidth || 900, 400) - LABEL - 10;
const tAt = px => view[0] + (px - LABEL) / PWnow() * (view[1] - view[0]);
function zoom(a, b) { if (b - a < 2) b = a + 2; stack.push(view); view = [Math.max(0, a), Math.min(D.span, b)]; draw(); }
svg.addEventListener("mousedown", ev => { const r = svg.getBoundingClientRect(); if (ev.clientX - r.left < LABEL) return; drag = {x: ev.clientX - r.left, moved: false}; });
addEventListener("mousemove", ev => {
  if (!drag) return;
  const r = svg.getBoundingClientRect(), X = Math.max(LABEL, ev.clientX - r.left);
  if (Math.abs(X - drag.x) > 4) drag.moved = true;
  const br = document.getElementById("brush");
  br.setAttribute("x", Math.min(X, drag.x)); br.setAttribute("width", Math.abs(X - drag.x)); br.setAttribute("visibility", "visible");
});
addEventListener("mouseup", ev => {
  if (!drag) return;
  const d = drag; drag = null;
  const r = svg.getBoundingClientRect(), X = Math.max(LABEL, ev.clientX - r.left);
  if (d.moved) { zoom(tAt(Math.min(X, d.x)), tAt(Math.max(X, d.x))); return; }
  const el = target(ev);
  if (!el) return;
  if (el.dataset.agg !== undefined) { const [t0, t1] = el.dataset.t.split(",").map(Number); const pad = (t1 - t0) * 0.05 + 1; zoom(t0 - pad, t1 + pad); return; }
  if (el.dataset.i !== undefined) { selected = +el.dataset.i; detail.className = ""; detail.innerHTML = jobHead(selected) + eventsTable(selected); draw(); }
});
document.getElementById("reset").onclick = () => { stack = []; view = [0, D.span]; draw(); };
document.getElementById("out").onclick = () => { view = stack.pop() || [0, D.span]; draw(); };
addEventListener("resize", draw);
draw();
</script>
</body></html>
`
