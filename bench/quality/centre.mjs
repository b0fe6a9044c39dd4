#!/usr/bin/env node
// Cosine costs about the anchor's mean: SOT and the baselines on the same
// embeddings as they are and translated so that the anchor's mean is the
// origin (docs/learner-defaults.md, "Also tried: the cosine about the
// anchor's mean"). From the per-cell scores and embeddings that
// `eval.mjs --dump FILE --dump-emb DIR` writes:
//
//     node bench/quality/centre.mjs DUMP.jsonl DIR [--origin anchor|downstream] [--learner JSON] [--out FILE.json]
//
// Per embedder: the anisotropy of its vectors (the mean cosine between two
// anchor samples, |mean of the unit rows|^2, and the median and spread of the
// nearest-harmful cost), then per cell the harmful recall@80% (mean over the
// dump's seeds) and hard-negative retention of every method in both
// geometries, SOT's contamination estimate, and per geometry the contaminated
// cells SOT loses to a baseline of the same geometry (issue 17's rule: its
// mean recall above the baseline's mean + 1 s.e.; random left out, as it
// does not depend on the geometry), development and held-out tasks apart.
// The translation is done here, in float64, before the library normalises
// the rows: a measurement of the features, not a library path.
import { writeFileSync } from 'node:fs';
import { scoreSamples } from '../../dist/index.js';
import { cellVectors, mean, readDump, retention, se } from './stats.mjs';
import { args, opt } from '../args.mjs';

const [dumpFile, embDir] = args;
const ORIGIN = opt('origin', 'anchor');
const LEARNER = JSON.parse(opt('learner', '{}'));
// the learner defaults each embedder carries (the others run at the core's)
const DEFAULTS = { builtin: { eps: 0.02, lambda: 2 } };
const METHODS = ['sot', 'push-only', 'pull-only', 'nearest-harmful', 'saft'];

const median = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];

/** Unit rows of `x` (d wide), after subtracting `origin` when given. */
function unitRows(x, d, origin) {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let nn = 0;
    for (let k = 0; k < d; k++) {
      const v = x[r * d + k] - (origin ? origin[k] : 0);
      out[r * d + k] = v;
      nn += v * v;
    }
    const s = nn > 0 ? 1 / Math.sqrt(nn) : 0;
    for (let k = 0; k < d; k++) out[r * d + k] *= s;
  }
  return out;
}

function meanRow(x, d) {
  const mu = new Float64Array(d);
  const n = x.length / d;
  for (let i = 0; i < x.length; i++) mu[i % d] += x[i] / n;
  return mu;
}

/** The anisotropy figures of one cell's raw vectors. */
function anisotropy(x, a, h, d) {
  const mu = meanRow(unitRows(a, d), d);
  const pairCos = mu.reduce((s, v) => s + v * v, 0);
  const ux = unitRows(x, d);
  const uh = unitRows(h, d);
  const near = [];
  for (let i = 0; i < ux.length / d; i++) {
    let best = -2;
    for (let j = 0; j < uh.length / d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += ux[i * d + k] * uh[j * d + k];
      if (s > best) best = s;
    }
    near.push(1 - best);
  }
  const m = median(near);
  return { pairCos, nearestMedian: m, nearestMad: median(near.map((v) => Math.abs(v - m))) };
}

const lines = readDump(dumpFile);
const cells = new Map();
const aniso = new Map();
for (const l of lines) {
  const [x, a, h] = ['downstream', 'anchor', 'harmful'].map((k) => cellVectors(embDir, l, k));
  const raw = { x, a, h };
  const d = raw.x.length / l.kinds.length;
  if (!aniso.has(l.embedder)) aniso.set(l.embedder, { dim: d, ...anisotropy(raw.x, raw.a, raw.h, d) });
  const origin = meanRow(ORIGIN === 'anchor' ? raw.a : raw.x, d);
  const c = { x: unitRows(raw.x, d, origin), a: unitRows(raw.a, d, origin), h: unitRows(raw.h, d, origin) };
  const mat = (data) => ({ data, rows: data.length / d, cols: d });
  const sets = { downstream: mat(c.x), anchor: mat(c.a), harmful: mat(c.h) };
  const rawSets = { downstream: mat(raw.x), anchor: mat(raw.a), harmful: mat(raw.h) };
  const opts = { ...DEFAULTS[l.embedder], ...LEARNER };
  const key = `${l.embedder} ${l.task}+${l.contam} ${l.rate}`;
  if (!cells.has(key))
    cells.set(key, {
      embedder: l.embedder,
      set: l.task.startsWith('heldout') ? 'held-out' : 'dev',
      rate: l.rate,
      runs: [],
    });
  const run = { raw: {}, centred: {} };
  for (const m of METHODS) {
    // a dump of some methods only (eval.mjs --methods): the others from its vectors
    run.raw[m] = retention(l.scores[m] ?? Array.from((await scoreSamples(m, rawSets, opts)).scores), l.kinds);
    const s = await scoreSamples(m, sets, opts);
    run.centred[m] = retention(Array.from(s.scores), l.kinds);
    if (m === 'sot') run.estimate = s.learned.contamination;
  }
  cells.get(key).runs.push(run);
}

const out = { origin: ORIGIN, learner: LEARNER, anisotropy: Object.fromEntries(aniso), cells: {} };
for (const [name, a] of aniso)
  console.log(
    `${name}: d ${a.dim}, mean cosine between anchor samples ${a.pairCos.toFixed(3)}, nearest-harmful cost median ${a.nearestMedian.toFixed(3)} (MAD ${a.nearestMad.toFixed(3)})`,
  );
const lost = {};
for (const [key, c] of cells) {
  const row = { n: c.runs.length };
  let line = key.padEnd(44);
  for (const g of ['raw', 'centred']) {
    const f = (m, k) => c.runs.map((r) => r[g][m][k]);
    row[g] = {};
    for (const m of METHODS) {
      const rec = c.rate > 0 ? f(m, 'recall') : null;
      const hard = c.runs[0][g][m].hard === null ? null : mean(f(m, 'hard'));
      row[g][m] = { recall: rec && mean(rec), se: rec && se(rec), hard, benign: mean(f(m, 'benign')) };
    }
    const s = row[g].sot;
    if (c.rate > 0) {
      const best = METHODS.slice(1).reduce(
        (b, m) => {
          const v = row[g][m].recall + row[g][m].se;
          return v < b.v ? { m, v } : b;
        },
        { m: null, v: Infinity },
      );
      const t = (lost[`${c.embedder} ${c.set} ${g}`] ??= { lost: 0, cells: 0 });
      t.cells++;
      if (s.recall > best.v + 1e-9) t.lost++;
      line += ` | ${g} sot ${s.recall.toFixed(3)}${s.hard === null ? '' : ` h${s.hard.toFixed(2)}`} (best ${best.m} ${row[g][best.m].recall.toFixed(3)}${row[g][best.m].hard === null ? '' : ` h${row[g][best.m].hard.toFixed(2)}`})`;
    } else line += ` | ${g} benign ${s.benign.toFixed(2)}${s.hard === null ? '' : ` h${s.hard.toFixed(2)}`}`;
  }
  const est = c.runs.map((r) => r.estimate?.estimate ?? Number.NaN);
  row.estimate = mean(est);
  row.verdicts = c.runs.map((r) => r.estimate?.verdict);
  line += ` | estimate ${row.estimate.toFixed(3)} (${row.verdicts.filter((v) => v === 'contaminated').length}/${c.runs.length} contaminated)`;
  out.cells[key] = row;
  console.log(line);
}
for (const [k, t] of Object.entries(lost)) console.log(`${k}: SOT loses ${t.lost} of ${t.cells} contaminated cells`);
out.lost = lost;
if (opt('out')) writeFileSync(opt('out'), `${JSON.stringify(out, null, 1)}\n`);
