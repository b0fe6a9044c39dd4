import { wellFormedDeep } from '../text.js';
import type { PurifyReport } from './types.js';

/**
 * A self-contained HTML page for a purify report: summary tables, the weight
 * histogram and the 2-D projection, drawn as SVG by an inline script from the
 * report JSON embedded in the page (no network, no external files). When the
 * plots are drawn the script sets `data-rendered` on <body> to the number of
 * points plotted, which the tests check in a headless browser.
 */
export function renderReportHtml(given: PurifyReport): string {
  // A report read back from disk may hold lone surrogates in its escapes; the page must not.
  const report = wellFormedDeep(given);
  // JSON inside <script>: escape '<' so no '</script>' (or '<!--') can end it early.
  const data = JSON.stringify(report).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  const title = `SOT purify report: ${report.input.path}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body data-rendered="0">
<h1>SOT purify report</h1>
<p class="sub">${escapeHtml(report.input.path)} &middot; ${escapeHtml(report.createdAt)} &middot; sot-purify ${escapeHtml(report.version)}</p>
<section id="summary"></section>
<section><h2>Weights</h2><p class="note">log<sub>10</sub>(n &times; weight): 0 is the uniform weight; kept samples in blue, dropped in red.</p><div id="histogram"></div></section>
<section><h2>Embeddings (first two principal components)</h2><p class="note" id="projection-note"></p><div id="projection"></div></section>
<section><h2>Lowest-scored samples</h2><div id="lowest"></div></section>
<section id="warnings"></section>
<script type="application/json" id="sot-report">${data}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;padding:0 1rem;color:#1d2430}
h1{margin-bottom:.2rem}h2{margin-top:2rem;font-size:1.15rem}
.sub,.note{color:#5b6474}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .8rem .2rem 0;text-align:left;vertical-align:top}
th{color:#5b6474;font-weight:500}
svg{background:#fafbfc;border:1px solid #e3e6ea}
.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.warn{background:#fff6e0;border-left:4px solid #e0a800;padding:.4rem .8rem;margin:.3rem 0}
td.ex{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;max-width:620px}
`;

// Runs in the browser: builds the SVG plots and tables from the embedded JSON.
const SCRIPT = `
(function () {
  var r = JSON.parse(document.getElementById('sot-report').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  var COL = { kept: '#2f6fdf', dropped: '#d6453d', anchor: '#1b9e5a', harmful: '#111111' };
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function h(tag, text, parent) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function table(rows, parent) {
    var t = h('table', undefined, parent);
    rows.forEach(function (row) { var tr = h('tr', undefined, t); h('th', row[0], tr); h('td', String(row[1]), tr); });
    return t;
  }
  function mb(b) { return (b / 1048576).toFixed(0) + ' MiB'; }
  function held(name, st) {
    var v = st.verification;
    return name + ': ' + st.mode + (st.neighbours ? ' (' + st.neighbours + ' nearest)' : '') + ', ' + mb(st.bytes) +
      (v ? ', max error of the potential ' + v.maxError.toExponential(1) + ' (bound ' + st.bound.toExponential(1) + ')' : '');
  }
  function mem(r) {
    if (!r.memory) return 'n/a';
    var out = 'peak ' + mb(r.memory.peakRss) + ' of a ' + mb(r.memory.budget) + ' budget';
    if (r.learner && r.learner.storage) out += '; costs: ' + held('anchor', r.learner.storage.anchor) + '; ' + held('harmful', r.learner.storage.harmful);
    return out;
  }
  function refs(list) {
    return list.length ? list.map(function (x) { return x.source + ' (' + x.count + (x.licence ? ', ' + x.licence : '') + ')'; }).join('; ') : 'none';
  }

  var s = document.getElementById('summary');
  table([
    ['Input', r.input.path + ' (' + r.input.format + ', ' + r.input.recordFormat + ')'],
    ['Records', r.input.records + (r.input.skipped ? ' (' + r.input.skipped + ' invalid skipped)' : '')],
    ['Kept', r.selection.k + ' of ' + r.selection.n + ' (' + (100 * r.selection.k / Math.max(1, r.selection.n)).toFixed(1) + '%)'],
    ['Method', r.method],
    ['Harmful reference', refs(r.references.harmful)],
    ['Safe anchor', refs(r.references.anchor)],
    ['Embedder', r.embedder.id + ' (' + r.embedder.dim + '-d)'],
    ['Learner', r.learner ? r.learner.steps + ' steps, ' + (r.learner.converged ? 'converged' : 'not converged') : 'n/a'],
    ['Memory', mem(r)],
    ['Outputs', [r.outputs.dataset, r.outputs.scores].join(', ')],
    ['Time', Object.keys(r.timings).map(function (k) { return k + ' ' + r.timings[k].toFixed(2) + ' s'; }).join(', ')]
  ], s);

  // Histogram: stacked kept/dropped bars over log10(n * weight).
  var W = 900, H = 260, P = 36;
  var hist = r.histogram, nb = hist.kept.length, plotted = 0;
  var hs = el('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, id: 'histogram-svg' }, document.getElementById('histogram'));
  var maxc = 1;
  for (var i = 0; i < nb; i++) maxc = Math.max(maxc, hist.kept[i] + hist.dropped[i]);
  var bw = (W - 2 * P) / Math.max(1, nb);
  for (var i = 0; i < nb; i++) {
    var x = P + i * bw, hk = (H - 2 * P) * hist.kept[i] / maxc, hd = (H - 2 * P) * hist.dropped[i] / maxc;
    if (hist.kept[i]) { el('rect', { x: x, y: H - P - hk, width: Math.max(1, bw - 1), height: hk, fill: COL.kept, class: 'bar' }, hs); plotted++; }
    if (hist.dropped[i]) { el('rect', { x: x, y: H - P - hk - hd, width: Math.max(1, bw - 1), height: hd, fill: COL.dropped, class: 'bar' }, hs); plotted++; }
  }
  el('line', { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: '#888' }, hs);
  if (nb) {
    var lo = el('text', { x: P, y: H - P + 16, 'font-size': 11 }, hs); lo.textContent = hist.edges[0].toFixed(2);
    var hi = el('text', { x: W - P, y: H - P + 16, 'font-size': 11, 'text-anchor': 'end' }, hs); hi.textContent = hist.edges[nb].toFixed(2);
  }
  var top = el('text', { x: 4, y: P, 'font-size': 11 }, hs); top.textContent = String(maxc);

  // Projection scatter.
  var pr = r.projection, pts = [];
  pr.downstream.forEach(function (p) { pts.push([p[0], p[1], p[2] ? 'kept' : 'dropped']); });
  pr.anchor.forEach(function (p) { pts.push([p[0], p[1], 'anchor']); });
  pr.harmful.forEach(function (p) { pts.push([p[0], p[1], 'harmful']); });
  var PH = 560, xs = pts.map(function (p) { return p[0]; }), ys = pts.map(function (p) { return p[1]; });
  var x0 = Math.min.apply(null, xs.concat([0])), x1 = Math.max.apply(null, xs.concat([0]));
  var y0 = Math.min.apply(null, ys.concat([0])), y1 = Math.max.apply(null, ys.concat([0]));
  var sx = (W - 2 * P) / Math.max(1e-12, x1 - x0), sy = (PH - 2 * P) / Math.max(1e-12, y1 - y0);
  var ps = el('svg', { width: W, height: PH, viewBox: '0 0 ' + W + ' ' + PH, id: 'projection-svg' }, document.getElementById('projection'));
  var order = { dropped: 1, kept: 0, harmful: 2, anchor: 3 };
  pts.sort(function (a, b) { return order[a[2]] - order[b[2]]; });
  pts.forEach(function (p) {
    var cx = P + (p[0] - x0) * sx, cy = PH - P - (p[1] - y0) * sy;
    if (p[2] === 'harmful') el('path', { d: 'M' + (cx - 3) + ' ' + (cy - 3) + 'l6 6m0 -6l-6 6', stroke: COL.harmful, 'stroke-width': 1.2, class: 'pt harmful' }, ps);
    else el('circle', { cx: cx, cy: cy, r: p[2] === 'anchor' ? 4 : 2.2, fill: COL[p[2]], 'fill-opacity': p[2] === 'kept' ? 0.45 : 0.85, class: 'pt ' + p[2] }, ps);
    plotted++;
  });
  var note = document.getElementById('projection-note');
  note.textContent = 'Downstream: ' + pr.downstream.length + ' of ' + pr.downstreamTotal + ' samples shown; ' + pr.anchor.length + ' anchor, ' + pr.harmful.length + ' harmful reference points.';
  var lg = h('div', undefined, document.getElementById('projection')); lg.className = 'legend';
  [['kept', 'kept'], ['dropped', 'dropped'], ['anchor', 'safe anchor'], ['harmful', 'harmful reference']].forEach(function (k) {
    var sp = h('span', undefined, lg), sw = h('span', undefined, sp); sw.className = 'sw'; sw.style.background = COL[k[0]]; sp.appendChild(document.createTextNode(k[1]));
  });

  var lw = document.getElementById('lowest');
  var lt = h('table', undefined, lw), hr = h('tr', undefined, lt);
  ['index', 'line', 'n \\u00d7 weight', 'text'].forEach(function (c) { h('th', c, hr); });
  r.lowest.forEach(function (x) {
    var tr = h('tr', undefined, lt);
    h('td', String(x.index), tr); h('td', String(x.line), tr);
    h('td', (x.weight * r.selection.n).toExponential(2), tr);
    h('td', x.excerpt, tr).className = 'ex';
  });

  var wn = document.getElementById('warnings');
  if (r.warnings.length) { h('h2', 'Warnings', wn); r.warnings.forEach(function (w) { h('div', w, wn).className = 'warn'; }); }

  document.body.setAttribute('data-rendered', String(plotted));
})();
`;
