import { wellFormedDeep } from '../text.js';
import type { PurifyReport } from './types.js';
import { UPLOT } from './vendor.generated.js';

/**
 * A self-contained HTML page for a purify report: a summary, charts drawn
 * with uPlot (inlined, with its licence notice), the 2-D map, the breakdown
 * by group and a sortable, searchable, paged table of the records, built by
 * an inline script from the report JSON embedded in the page (no network, no
 * external files). Once drawn, the script sets `data-rendered` on <body> to
 * the number of points and bars plotted, and `data-ready` once the table
 * answers (the tests and bench/report-load.mjs wait for it).
 */
export function renderReportHtml(given: PurifyReport): string {
  // A report read back from disk may hold lone surrogates in its escapes; the page must not.
  const report = wellFormedDeep(given);
  // JSON inside <script>: escape '<' so no '</script>' (or '<!--') can end it early.
  const data = JSON.stringify(report)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  const title = `SOT purify report: ${report.input.path}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${UPLOT.css}</style>
<style>${STYLE}</style>
</head>
<body data-rendered="0">
<h1>SOT purify report</h1>
<p class="sub">${escapeHtml(report.input.path)} &middot; ${escapeHtml(report.createdAt)} &middot; sot-purify ${escapeHtml(report.version)}</p>
<section id="verdict"></section>
<section id="summary"></section>
<section><h2>Weights</h2><p class="note">How many records got each weight, on log<sub>10</sub>(n &times; weight): 0 is the uniform weight. Records left of the cut-off were removed.</p><div id="histogram" class="chart"></div></section>
<section id="contrib-section"><h2>Why: pull and push</h2><p class="note">Each record's log-weight is its pull plus its push (plus one offset shared by all): left is far from the anchor, down is close to the harmful reference. The dashed line is the cut-off. Point at a record for its reason.</p><div id="contrib" class="chart"></div></section>
<section><h2>Map of the embeddings</h2><p class="note" id="projection-note"></p><div id="projection" class="chart"></div></section>
<section id="groups"></section>
<section id="table-section"><h2>Records</h2>
<div class="controls"><input id="search" type="search" placeholder="search excerpt, reason, group" aria-label="search the records">
<select id="filter" aria-label="which records"><option value="all">all records</option><option value="dropped">removed only</option><option value="kept">kept only</option></select>
<button id="download-removed" type="button">Download removed records</button><a id="download-link" hidden></a>
<span id="count" class="note"></span></div>
<table id="records"><thead><tr></tr></thead><tbody></tbody></table>
<div class="controls"><button id="prev" type="button">&larr; previous</button> <span id="page" class="note"></span> <button id="next" type="button">next &rarr;</button></div>
</section>
<section id="warnings"></section>
<footer class="note">Charts drawn with uPlot ${escapeHtml(UPLOT.version)} (MIT licence, inlined below).</footer>
<script type="application/json" id="sot-report">${data}</script>
<script>/*! uPlot ${UPLOT.version}\n${UPLOT.licence.replace(/\*\//g, '* /')}*/
${UPLOT.js}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1d2430}
h1{margin-bottom:.2rem}h2{margin-top:2rem;font-size:1.15rem}
.sub,.note{color:#5b6474}
.lead{font-size:1.1rem}.clean{color:#1b7a45;font-weight:600}.dirty{color:#b3261e;font-weight:600}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .8rem .2rem 0;text-align:left;vertical-align:top}
th{color:#5b6474;font-weight:500}
#records{width:100%;font-size:13px;table-layout:fixed}#records th.num{width:3.6rem}#records th.group{width:5rem}#records th.why{width:28%}#records th{cursor:pointer;user-select:none;white-space:nowrap;border-bottom:1px solid #ccd}
#records th[aria-sort=ascending]::after{content:" \\25B2"}#records th[aria-sort=descending]::after{content:" \\25BC"}
#records td{border-bottom:1px solid #eef}#records tr.row{cursor:pointer}#records tr.row:hover{background:#f4f7fb}
#records tr.dropped td:first-child{border-left:3px solid #d6453d}#records tr.kept td:first-child{border-left:3px solid #2f6fdf}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.ex,td.why{font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}td.ex{font-family:ui-monospace,monospace}
tr.detail td{background:#f7f8fa;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.controls{margin:.5rem 0;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
.controls input{min-width:18rem;padding:.25rem .4rem}
.warn{background:#fff6e0;border-left:4px solid #e0a800;padding:.4rem .8rem;margin:.3rem 0}
.chart{position:relative}.tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #ccd;padding:.3rem .5rem;font-size:12px;max-width:420px;z-index:10;box-shadow:0 1px 4px #0002}
.bar{display:inline-block;height:.7rem;background:#d6453d;vertical-align:middle}
`;

// Runs in the browser: the charts (uPlot), the group breakdown and the record table, from the embedded JSON.
const SCRIPT = `
(function () {
  var r = JSON.parse(document.getElementById('sot-report').textContent);
  var COL = { kept: '#2f6fdf', dropped: '#d6453d', anchor: '#1b9e5a', harmful: '#555555' };
  var plotted = 0;
  function h(tag, text, parent, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }
  function pct(x) { return (100 * x).toFixed(x < 0.01 ? 2 : 1) + '%'; }
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
  function ownHarm(l) {
    var k = l.ownHarm ? l.ownHarm.length : 0;
    return k ? ', then again with the ' + k + ' records it weighted lowest joined to the harmful reference' : '';
  }
  function sharded(sh) {
    if (!sh) return 'n/a';
    var f = sh.fit;
    return 'fitted on ' + f.sample + ' of ' + f.records + ' records (' + f.steps + ' steps, ' + (f.converged ? 'converged' : 'not converged') +
      '), ' + sh.refit + ' refit pass' + (sh.refit === 1 ? '' : 'es') + ' over all records' +
      (sh.refitError === null || sh.refitError === undefined ? '' : ' (marginal error ' + sh.refitError.toExponential(1) + ')') +
      ', scored in ' + sh.shards + ' shards';
  }
  function refs(list) {
    return list.length ? list.map(function (x) { return x.source + ' (' + x.count + (x.licence ? ', ' + x.licence : '') + ')'; }).join('; ') : 'none';
  }
  function width(el) { return Math.max(320, Math.min(1060, el.clientWidth || 900)); }

  // --- summary ---
  var n = r.selection.n, k = r.selection.k;
  var v = document.getElementById('verdict');
  h('p', 'Kept ' + k + ' of ' + n + ' records (' + pct(k / Math.max(1, n)) + '); removed ' + (n - k) + '.', v, 'lead');
  var c = r.contamination;
  if (c) {
    var range = ' (' + pct(c.low) + ' to ' + pct(c.high) + ' at ' + Math.round(100 * c.level) + '% confidence; ' + c.method + ')';
    var p = h('p', undefined, v, 'lead');
    if (c.clean) { h('span', 'This data looks clean', p, 'clean'); p.appendChild(document.createTextNode(': the estimated contamination is ' + pct(c.estimate) + range + '.')); }
    else if (c.verdict === 'inconclusive') { h('span', 'Contamination unclear', p, 'dirty'); p.appendChild(document.createTextNode(': the estimate is ' + pct(c.estimate) + range + ', too wide an interval to call the data clean or contaminated.')); }
    else { h('span', 'Estimated contamination: ' + pct(c.estimate) + ' of the records', p, 'dirty'); p.appendChild(document.createTextNode(range + '.')); }
    p.id = 'contamination';
  }
  var outs = [r.outputs.dataset, r.outputs.scores].concat(r.outputs.removed ? [r.outputs.removed] : []);
  table([
    ['Input', r.input.path + ' (' + r.input.format + ', ' + r.input.recordFormat + ')'],
    ['Records', r.input.records + (r.input.skipped ? ' (' + r.input.skipped + ' invalid skipped)' : '')],
    ['Kept', k + ' of ' + n + ' (' + pct(k / Math.max(1, n)) + ')'],
    ['Method', r.method],
    ['Harmful reference', refs(r.references.harmful)],
    ['Safe anchor', refs(r.references.anchor)],
    ['Embedder', r.embedder.id + ' (' + r.embedder.dim + '-d)'],
    ['Learner', r.learner ? r.learner.steps + ' steps, ' + (r.learner.converged ? 'converged' : 'not converged') + ownHarm(r.learner) : sharded(r.sharded)],
    ['Memory', mem(r)],
    ['Outputs', outs.join(', ')],
    ['Time', Object.keys(r.timings).map(function (k) { return k + ' ' + r.timings[k].toFixed(2) + ' s'; }).join(', ')]
  ], document.getElementById('summary'));

  // --- charts ---
  function vline(x, label) {
    return function (u) {
      if (x === null || x === undefined) return;
      var ctx = u.ctx, px = u.valToPos(x, 'x', true);
      ctx.save(); ctx.strokeStyle = '#111'; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.fillStyle = '#111'; ctx.font = (11 * devicePixelRatio) + 'px system-ui'; ctx.fillText(label, px + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
      ctx.restore();
    };
  }
  var hist = r.histogram, nb = hist.kept.length;
  if (nb) {
    var xs = [], all = [], kept = [];
    for (var i = 0; i < nb; i++) { xs.push((hist.edges[i] + hist.edges[i + 1]) / 2); all.push(hist.kept[i] + hist.dropped[i]); kept.push(hist.kept[i]); if (all[i]) plotted++; }
    var he = document.getElementById('histogram');
    new uPlot({
      title: 'Records by weight', width: width(he), height: 280,
      scales: { x: { time: false, range: [hist.edges[0], hist.edges[nb]] } },
      axes: [{ label: 'log10(n \\u00d7 weight)   (0 = uniform weight)' }, { label: 'records' }],
      series: [
        { label: 'log10(n\\u00d7w)', value: function (u, x) { return x === null ? '' : x.toFixed(2); } },
        { label: 'removed + kept', fill: COL.dropped, stroke: COL.dropped, paths: uPlot.paths.bars({ size: [0.95, 100] }), points: { show: false } },
        { label: 'kept', fill: COL.kept, stroke: COL.kept, paths: uPlot.paths.bars({ size: [0.95, 100] }), points: { show: false } }
      ],
      hooks: { draw: [vline(r.cutoff, 'cut-off')] }
    }, [xs, all, kept], he);
  }

  // A scatter chart (uPlot facets): layers of [x, y, id] points, a tooltip for the nearest visible point.
  function scatter(el, o) {
    var xs = [], ys = [];
    o.layers.forEach(function (l) { for (var i = 0; i < l.x.length; i++) { xs.push(l.x[i]); ys.push(l.y[i]); } });
    function span(v) { var lo = Infinity, hi = -Infinity; v.forEach(function (a) { if (a < lo) lo = a; if (a > hi) hi = a; }); if (!(hi > lo)) { lo -= 1; hi += 1; } var m = (hi - lo) * 0.04; return [lo - m, hi + m]; }
    function draw(layer) {
      return function (u, si) {
        var ctx = u.ctx, d = u.data[si], rad = layer.r * devicePixelRatio;
        ctx.save(); ctx.beginPath(); ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height); ctx.clip();
        ctx.fillStyle = layer.color; ctx.globalAlpha = layer.alpha;
        for (var i = 0; i < d[0].length; i++) {
          var px = u.valToPos(d[0][i], 'x', true), py = u.valToPos(d[1][i], 'y', true);
          ctx.beginPath(); ctx.arc(px, py, rad, 0, 2 * Math.PI); ctx.fill();
        }
        ctx.restore();
        return null;
      };
    }
    var data = [null].concat(o.layers.map(function (l) { return [l.x, l.y]; }));
    var u = new uPlot({
      mode: 2, title: o.title, width: width(el), height: o.height || 480,
      legend: { live: false }, cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: false, range: span(xs) }, y: { range: span(ys) } },
      axes: [{ label: o.xLabel }, { label: o.yLabel }],
      series: [{}].concat(o.layers.map(function (l) { return { label: l.label, stroke: l.color, fill: l.color, paths: draw(l), points: { show: false } }; })),
      hooks: { draw: o.draw ? [o.draw] : [] }
    }, data, el);
    o.layers.forEach(function (l) { plotted += l.x.length; });
    var tip = h('div', undefined, u.over, 'tip'); tip.hidden = true;
    u.over.addEventListener('mouseleave', function () { tip.hidden = true; });
    u.over.addEventListener('mousemove', function (e) {
      var best = null, bd = 64;
      o.layers.forEach(function (l, li) {
        if (!u.series[li + 1].show || !l.describe) return;
        for (var i = 0; i < l.x.length; i++) {
          var dx = u.valToPos(l.x[i], 'x') - e.offsetX, dy = u.valToPos(l.y[i], 'y') - e.offsetY, dd = dx * dx + dy * dy;
          if (dd < bd) { bd = dd; best = [l, i]; }
        }
      });
      if (!best) { tip.hidden = true; return; }
      tip.textContent = best[0].describe(best[1]);
      tip.hidden = false;
      tip.style.left = Math.min(e.offsetX + 12, u.over.clientWidth - 300) + 'px'; tip.style.top = (e.offsetY + 12) + 'px';
    });
    return u;
  }

  var T = r.records, rows = T ? T.index.length : 0, slotOf = new Int32Array(T ? T.total : 0).fill(-1);
  for (var i = 0; i < rows; i++) slotOf[T.index[i]] = i;
  function describe(s) {
    var out = 'line ' + T.line[s] + ', rank ' + T.rank[s] + ', ' + (T.kept[s] ? 'kept' : 'removed');
    if (T.pull) out += ', pull ' + T.pull[s].toFixed(2) + ', push ' + T.push[s].toFixed(2);
    if (T.reason[s]) out += '\\n' + T.reason[s];
    return out + '\\n' + T.excerpt[s];
  }
  if (T && T.pull && r.contributions) {
    var MAX_POINTS = 10000;
    var count = function (want) { var c = 0; for (var i = 0; i < rows; i++) if (T.kept[i] === want) c++; return c; };
    var layer = function (want, label, color) {
      var x = [], y = [], id = [];
      for (var i = 0; i < rows; i++) if (T.kept[i] === want) id.push(i);
      // At most MAX_POINTS per layer, evenly spaced in record order: more only hides the shape and slows the page.
      if (id.length > MAX_POINTS) { var all = id; id = []; for (var j = 0; j < MAX_POINTS; j++) id.push(all[Math.floor(j * all.length / MAX_POINTS)]); }
      id.forEach(function (s) { x.push(T.pull[s]); y.push(T.push[s]); });
      return { label: label + (id.length < count(want) ? ' (' + id.length + ' of ' + count(want) + ' shown)' : ''), color: color, alpha: 0.6, r: 2.2, x: x, y: y, describe: function (j) { return describe(id[j]); } };
    };
    // The cut-off line: pull + push = ln(n w_cut) - offset.
    var cut = r.cutoff === null || r.cutoff === undefined ? null : r.cutoff * Math.LN10 - r.contributions.offset;
    scatter(document.getElementById('contrib'), {
      title: 'Pull and push contributions to each record\\'s log-weight',
      xLabel: 'pull (negative: far from the anchor)', yLabel: 'push (negative: close to harm)',
      layers: [layer(1, 'kept', COL.kept), layer(0, 'removed', COL.dropped)],
      draw: function (u) {
        if (cut === null) return;
        var ctx = u.ctx, x0 = u.scales.x.min, x1 = u.scales.x.max;
        ctx.save(); ctx.beginPath(); ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height); ctx.clip();
        ctx.strokeStyle = '#111'; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5 * devicePixelRatio; ctx.beginPath();
        ctx.moveTo(u.valToPos(x0, 'x', true), u.valToPos(cut - x0, 'y', true)); ctx.lineTo(u.valToPos(x1, 'x', true), u.valToPos(cut - x1, 'y', true)); ctx.stroke();
        ctx.restore();
      }
    });
  } else {
    document.getElementById('contrib-section').hidden = true;
  }

  var pr = r.projection;
  var split = function (pts, want) {
    var x = [], y = [], id = [];
    pts.forEach(function (p) { if (want === undefined || p[2] === want) { x.push(p[0]); y.push(p[1]); id.push(p[3]); } });
    return { x: x, y: y, id: id };
  };
  var dk = split(pr.downstream, 1), dd = split(pr.downstream, 0);
  // One lighter layer per reference set (the legend hides or shows each).
  var refLayers = function (pts, which, names, label, colours, alpha, rad) {
    // (a report of an older version does not say which set a point is from: one layer for all)
    if (!which && names.length > 1) names = [{ source: names.map(function (n) { return n.source; }).join(', ') }];
    var out = names.map(function (name, j) { return { label: label + ': ' + name.source, color: colours[j % colours.length], alpha: alpha, r: rad, x: [], y: [] }; });
    if (!out.length) return [];
    pts.forEach(function (p, i) { var l = out[which ? Math.min(which[i], out.length - 1) : 0]; l.x.push(p[0]); l.y.push(p[1]); });
    return out.filter(function (l) { return l.x.length; });
  };
  var refs2d = refLayers(pr.harmful, pr.harmfulSet, r.references.harmful, 'harmful', ['#555555', '#8a5a00', '#6b3fa0', '#7a7a7a'], 0.22, 2.6)
    .concat(refLayers(pr.anchor, pr.anchorSet, r.references.anchor, 'anchor', [COL.anchor, '#0f6e8c'], 0.3, 3));
  var pointAt = function (set) { return function (j) { var s = T ? slotOf[set.id[j]] : -1; return s === undefined || s < 0 ? 'record ' + set.id[j] : describe(s); }; };
  scatter(document.getElementById('projection'), {
    title: 'Records and references on the first two principal components',
    xLabel: 'principal component 1', yLabel: 'principal component 2', height: 560,
    layers: refs2d.concat([
      { label: 'kept', color: COL.kept, alpha: 0.55, r: 2.2, x: dk.x, y: dk.y, describe: pointAt(dk) },
      { label: 'removed', color: COL.dropped, alpha: 0.85, r: 2.4, x: dd.x, y: dd.y, describe: pointAt(dd) }
    ])
  });
  document.getElementById('projection-note').textContent = 'Downstream: ' + pr.downstream.length + ' of ' + pr.downstreamTotal + ' records shown; ' + pr.anchor.length + ' anchor and ' + pr.harmful.length + ' harmful reference points, drawn lighter, one layer per set. Click a legend entry to hide or show its layer.';

  // --- breakdown by group ---
  if (r.groups) {
    var g = document.getElementById('groups');
    h('h2', 'Removed by ' + r.groups.field, g);
    var gt = h('table', undefined, g), gh = h('tr', undefined, gt);
    [r.groups.field, 'records', 'removed', 'share removed', ''].forEach(function (c) { h('th', c, gh); });
    r.groups.rows.forEach(function (row) {
      var tr = h('tr', undefined, gt), share = row.dropped / Math.max(1, row.total);
      h('td', row.value === '' ? '(none)' : row.value, tr); h('td', String(row.total), tr, 'num'); h('td', String(row.dropped), tr, 'num'); h('td', pct(share), tr, 'num');
      var bar = h('span', undefined, h('td', undefined, tr), 'bar'); bar.style.width = Math.round(200 * share) + 'px';
    });
  }

  // --- the record table ---
  if (!T) {
    // A report of an older version: its lowest-scored records only.
    var L = r.lowest;
    T = { total: n, index: L.map(function (x) { return x.index; }), line: L.map(function (x) { return x.line; }), score: L.map(function (x) { return x.weight; }),
      rank: L.map(function (_, i) { return n - 1 - i; }), kept: L.map(function () { return 0; }), pull: null, push: null, logWeight: null,
      reason: L.map(function () { return ''; }), excerpt: L.map(function (x) { return x.excerpt; }), group: null, nearest: L.map(function () { return null; }), cited: {} };
    rows = T.index.length;
  }
  var cols = [
    { key: 'rank', label: 'rank', num: true }, { key: 'line', label: 'line', num: true },
    { key: 'score', label: 'n \\u00d7 weight', num: true, fmt: function (v) { return (v * n).toPrecision(3); } },
    { key: 'kept', label: 'kept', num: true, fmt: function (v) { return v ? 'yes' : 'removed'; } }
  ];
  if (T.pull) cols.push({ key: 'pull', label: 'pull', num: true, fmt: function (v) { return v.toFixed(2); } }, { key: 'push', label: 'push', num: true, fmt: function (v) { return v.toFixed(2); } });
  if (T.group) cols.push({ key: 'group', label: r.groups ? r.groups.field : 'group' });
  cols.push({ key: 'reason', label: 'reason', cls: 'why' }, { key: 'excerpt', label: 'excerpt', cls: 'ex' });
  var PAGE = 50, page = 0, sortKey = 'rank', sortDir = -1, view = new Uint32Array(rows), hay = null;
  var order = new Uint32Array(rows);
  for (var i = 0; i < rows; i++) order[i] = i;
  var headRow = document.querySelector('#records thead tr'), body = document.querySelector('#records tbody');
  cols.forEach(function (c) {
    var th = h('th', c.label, headRow, c.num ? 'num' : c.key === 'group' ? 'group' : c.cls); th.dataset.col = c.key; th.setAttribute('role', 'columnheader'); th.tabIndex = 0;
    var go = function () { sortBy(c.key, c.key === sortKey ? -sortDir : (c.num ? 1 : 1)); };
    th.addEventListener('click', go); th.addEventListener('keydown', function (e) { if (e.key === 'Enter') go(); });
  });
  // Each column's ascending order, computed once (ties by position); descending is its reverse.
  var orders = {};
  function ascending(key) {
    if (orders[key]) return orders[key];
    var col = T[key], idx = new Uint32Array(rows), i;
    for (i = 0; i < rows; i++) idx[i] = i;
    if (key === 'rank' && rows === T.total) {
      for (i = 0; i < rows; i++) idx[col[i]] = i; // the ranks of all records are 0..n-1: no sort needed
    } else if (typeof col[0] === 'number') {
      var v = Float64Array.from(col);
      idx.sort(function (a, b) { return v[a] - v[b] || a - b; });
    } else {
      // The first three characters as a number settle most comparisons without touching the strings.
      var pre = new Float64Array(rows);
      for (i = 0; i < rows; i++) { var t = col[i]; pre[i] = t.charCodeAt(0) * 4294967296 + (t.charCodeAt(1) || 0) * 65536 + (t.charCodeAt(2) || 0) || 0; }
      idx.sort(function (a, b) { var d = pre[a] - pre[b]; if (d) return d; var x = col[a], y = col[b]; return x < y ? -1 : x > y ? 1 : a - b; });
    }
    return (orders[key] = idx);
  }
  function sortBy(key, dir) {
    sortKey = key; sortDir = dir;
    var asc = ascending(key);
    if (dir > 0) order.set(asc);
    else for (var i = 0; i < rows; i++) order[i] = asc[rows - 1 - i];
    headRow.querySelectorAll('th').forEach(function (th) { if (th.dataset.col === key) th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending'); else th.removeAttribute('aria-sort'); });
    apply();
  }
  var search = document.getElementById('search'), filter = document.getElementById('filter');
  // The records the learner's second solve took as the data's own harm, a choice of the filter when there are some.
  var own = new Set(r.learner && r.learner.ownHarm ? r.learner.ownHarm : []);
  if (own.size) h('option', "the data's own harm (" + own.size + ')', filter).value = 'own';
  var count = 0;
  // What a search looks in, lower-cased once: built when the page is idle, or at the first search.
  function haystack() {
    if (hay) return hay;
    hay = new Array(rows);
    for (var i = 0; i < rows; i++) hay[i] = (T.excerpt[i] + '\\u0000' + T.reason[i] + '\\u0000' + (T.group ? T.group[i] : '') + '\\u0000line ' + T.line[i]).toLowerCase();
    return hay;
  }
  function apply() {
    var q = search.value.trim().toLowerCase(), f = filter.value;
    if (q) haystack();
    count = 0;
    for (var j = 0; j < rows; j++) {
      var s = order[j];
      if (f === 'dropped' && T.kept[s]) continue;
      if (f === 'kept' && !T.kept[s]) continue;
      if (f === 'own' && !own.has(T.index[s])) continue;
      if (q && hay[s].indexOf(q) < 0) continue;
      view[count++] = s;
    }
    page = 0;
    draw();
  }
  function draw() {
    var pages = Math.max(1, Math.ceil(count / PAGE));
    if (page >= pages) page = pages - 1;
    var frag = document.createDocumentFragment();
    for (var j = page * PAGE; j < Math.min(count, (page + 1) * PAGE); j++) {
      var s = view[j], tr = h('tr', undefined, frag, 'row ' + (T.kept[s] ? 'kept' : 'dropped'));
      tr.dataset.slot = String(s);
      cols.forEach(function (c) {
        var v = T[c.key][s], td = h('td', c.fmt ? c.fmt(v) : String(v), tr, c.num ? 'num' : c.cls);
        if (c.cls) td.title = v; // one line in the table (far cheaper to lay out); the whole text on hover and in the detail row
      });
    }
    body.replaceChildren(frag);
    document.getElementById('page').textContent = 'page ' + (page + 1) + ' of ' + pages;
    document.getElementById('count').textContent = count + ' of ' + rows + ' records' + (T.total > rows ? ' (the ' + rows + ' lowest ranked of ' + T.total + ')' : '');
    document.getElementById('prev').disabled = page === 0; document.getElementById('next').disabled = page >= pages - 1;
  }
  body.addEventListener('click', function (e) {
    var tr = e.target.closest('tr.row');
    if (!tr) return;
    var next = tr.nextSibling;
    if (next && next.classList && next.classList.contains('detail')) { next.remove(); return; }
    var s = Number(tr.dataset.slot), td = h('td'), d = h('tr', undefined, undefined, 'detail');
    td.colSpan = cols.length; d.appendChild(td);
    var lines = ['record ' + T.index[s] + ' (line ' + T.line[s] + '), rank ' + T.rank[s] + ', weight ' + T.score[s].toExponential(3) + (T.logWeight ? ', log-weight ' + T.logWeight[s].toFixed(3) + ' = pull ' + T.pull[s].toFixed(3) + ' + push ' + T.push[s].toFixed(3) + ' + offset ' + r.contributions.offset.toFixed(3) + ' (\\u00b1' + r.contributions.maxResidual.toFixed(3) + ')' : '')];
    (T.nearest[s] || []).forEach(function (x, j) { lines.push((j + 1) + '. ' + x[0] + ' #' + x[1] + ', cost ' + x[2].toFixed(4) + ': ' + (T.cited[x[0] + ' #' + x[1]] || '')); });
    if (T.reason[s]) lines.push('why: ' + T.reason[s]);
    lines.push('text: ' + T.excerpt[s]);
    lines.forEach(function (l) { h('div', l, td); });
    tr.after(d);
  });
  search.addEventListener('input', apply); filter.addEventListener('change', apply);
  document.getElementById('prev').addEventListener('click', function () { page--; draw(); });
  document.getElementById('next').addEventListener('click', function () { page++; draw(); });
  var dl = document.getElementById('download-removed');
  dl.textContent = 'Download removed records (' + (n - k) + ')';
  dl.addEventListener('click', function () {
    var out = [];
    for (var s = 0; s < rows; s++) {
      if (T.kept[s]) continue;
      var rec = { index: T.index[s], line: T.line[s], score: T.score[s], rank: T.rank[s] };
      if (T.pull) { rec.log_weight = T.logWeight[s]; rec.pull = T.pull[s]; rec.push = T.push[s]; }
      if (T.group) rec[r.groups ? r.groups.field : 'group'] = T.group[s];
      rec.reason = T.reason[s];
      rec.nearest = (T.nearest[s] || []).map(function (x) { return { set: x[0], index: x[1], cost: x[2], excerpt: T.cited[x[0] + ' #' + x[1]] || '' }; });
      rec.excerpt = T.excerpt[s];
      out.push(JSON.stringify(rec));
    }
    var a = document.getElementById('download-link');
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([out.join('\\n') + (out.length ? '\\n' : '')], { type: 'application/x-ndjson' }));
    var base = (r.outputs.removed || r.outputs.dataset).split(/[\\\\/]/).pop().replace(/\\.[^.]*$/, '');
    a.download = base + '.audit.jsonl';
    a.dataset.count = String(out.length);
    a.click();
  });

  var wn = document.getElementById('warnings');
  if (r.warnings.length) { h('h2', 'Warnings', wn); r.warnings.forEach(function (w) { h('div', w, wn, 'warn'); }); }

  sortBy('rank', -1); // the lowest ranked (the removed) first
  document.body.setAttribute('data-rendered', String(plotted));
  document.body.setAttribute('data-ready', String(Math.round(performance.now())));
  // Once the page answers: the search index and the orders of the text columns, while the reader reads.
  var later = window.requestIdleCallback || function (f) { return setTimeout(f, 50); };
  var pending = [haystack].concat(cols.filter(function (c) { return !c.num; }).map(function (c) { return function () { ascending(c.key); }; }));
  (function idle() { var job = pending.shift(); if (job) later(function () { job(); idle(); }); })();
})();
`;
