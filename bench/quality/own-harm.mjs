#!/usr/bin/env node
// The variants behind the learner's second solve (docs/learner-defaults.md,
// "The data's own harm"), with the real learner, from the per-cell scores
// and embeddings that `eval.mjs --dump FILE --dump-emb DIR` writes:
//
//     node bench/quality/own-harm.mjs DUMP.jsonl DIR [--variant rows|centroid|local:3] [--share 0.05] [--mass 0.3,0.5] [--rates 0,0.01,0.05,0.1,0.2,0.3]
//
// Per cell: SOT solved once (ownHarmShare 0), then again with the `share`
// lowest-weighted samples of that solve joined to the harmful reference at
// each `mass`: as themselves (`rows`), as their one mean (`centroid`), or
// each as the mean of the k others among them nearest it (`local:k`, what
// the learner does). Prints harmful recall@80% and hard-negative / benign
// retention per cell (mean over the dump's seeds), then per variant the
// contaminated cells lost to the best baseline (+ 1 s.e.), the mean recall
// and the mean gap between benign and hard-negative retention; and the
// learner's time, one solve against both (the first mass's), side by side.
import { scoreSamples } from '../../dist/index.js';
import { cellVectors, mean, readDump, retention, se } from './stats.mjs';
import { args, opt } from '../args.mjs';

const [dumpFile, embDir] = args;
const VARIANT = opt('variant', 'local:3');
const SHARE = Number(opt('share', 0.05));
const MASSES = opt('mass', '0.3,0.5').split(',').map(Number);
const RATES = opt('rates', '0,0.01,0.05,0.1,0.2,0.3').split(',').map(Number);
const BASELINES = ['push-only', 'pull-only', 'nearest-harmful', 'saft', 'random'];
// the learner defaults of each embedder (the built-in one carries its own)
const DEFAULTS = { builtin: { eps: 0.02, lambda: 2 } };

/** The points that join the reference, one row each (unit rows: cosine). */
function points(x, d, rows) {
  const dot = (a, b) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[a * d + k] * x[b * d + k];
    return s;
  };
  const meanOf = (group) => {
    const c = new Float32Array(d);
    for (const r of group) for (let k = 0; k < d; k++) c[k] += x[r * d + k] / group.length;
    return c;
  };
  if (VARIANT === 'rows') return rows.map((r) => x.subarray(r * d, (r + 1) * d));
  if (VARIANT === 'centroid') return [meanOf(rows)];
  const k = Number(VARIANT.split(':')[1]);
  return rows.map((r) =>
    meanOf(
      rows
        .filter((o) => o !== r)
        .map((o) => [dot(r, o), o])
        .sort((p, q) => q[0] - p[0] || p[1] - q[1])
        .slice(0, k)
        .map(([, o]) => o),
    ),
  );
}

const lines = readDump(dumpFile).filter((l) => RATES.includes(l.rate));
const cells = new Map();
const times = { once: [], second: [] };
for (const l of lines) {
  const [x, a, h] = ['downstream', 'anchor', 'harmful'].map((k) => cellVectors(embDir, l, k));
  const n = l.kinds.length;
  const d = x.length / n;
  const m = h.length / d;
  const mat = (data) => ({ data, rows: data.length / d, cols: d });
  const once = { ...DEFAULTS[l.embedder], ownHarmShare: 0 };
  let t = performance.now();
  const s1 = Array.from(
    (await scoreSamples('sot', { downstream: mat(x), anchor: mat(a), harmful: mat(h) }, once)).scores,
  );
  times.once.push(performance.now() - t);
  const res = { once: retention(s1, l.kinds) };
  const rows = [...s1.keys()].sort((i, j) => s1[i] - s1[j] || i - j).slice(0, Math.round(SHARE * n));
  const own = points(x, d, rows);
  const joined = new Float32Array((m + own.length) * d);
  joined.set(h);
  own.forEach((p, t) => joined.set(p, (m + t) * d));
  for (const mass of MASSES) {
    const w = Float64Array.from({ length: m + own.length }, (_, j) => (j < m ? (1 - mass) / m : mass / own.length));
    const sets = { downstream: mat(x), anchor: mat(a), harmful: mat(joined), harmfulWeights: w };
    t = performance.now();
    res[`${VARIANT} ${mass}`] = retention(Array.from((await scoreSamples('sot', sets, once)).scores), l.kinds);
    if (mass === MASSES[0]) times.second.push(performance.now() - t);
  }
  const key = `${l.embedder} ${l.task}+${l.contam} ${l.rate}`;
  if (!cells.has(key)) cells.set(key, []);
  cells.get(key).push({ res, dump: l });
}
const total = {};
for (const [key, rs] of cells) {
  let line = key.padEnd(38);
  let best = null;
  if (rs[0].dump.rate > 0)
    for (const m of BASELINES) {
      const v = rs.map((r) => retention(r.dump.scores[m], r.dump.kinds).recall);
      if (!best || mean(v) + se(v) < best.bound) best = { m, bound: mean(v) + se(v) };
    }
  for (const name of Object.keys(rs[0].res)) {
    const t = (total[name] ??= { lost: 0, cells: 0, recall: [], gap: [] });
    const recall = best ? mean(rs.map((r) => r.res[name].recall)) : null;
    const hard = rs[0].res[name].hard === null ? null : mean(rs.map((r) => r.res[name].hard));
    const benign = mean(rs.map((r) => r.res[name].benign));
    if (hard !== null) t.gap.push(benign - hard);
    if (best) {
      t.cells++;
      t.recall.push(recall);
      if (recall > best.bound + 1e-9) t.lost++;
    }
    line += ` | ${name} ${recall === null ? '-' : recall.toFixed(3)} h${hard === null ? '-' : hard.toFixed(2)}/b${benign.toFixed(2)}`;
  }
  console.log(line);
}
for (const [name, t] of Object.entries(total))
  console.log(
    `${name.padEnd(16)} lost ${t.lost}/${t.cells}; mean recall ${mean(t.recall).toFixed(3)}; benign - hard-negative retention ${mean(t.gap).toFixed(3)}`,
  );
const median = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
const both = times.once.map((v, i) => v + times.second[i]);
console.log(
  `learner time per cell, median: one solve ${(median(times.once) / 1000).toFixed(3)} s, both ${(median(both) / 1000).toFixed(3)} s (${(median(both.map((v, i) => v / times.once[i]))).toFixed(2)}x)`,
);
