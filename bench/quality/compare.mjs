#!/usr/bin/env node
// Two quality II results files side by side (BENCHMARKS.md, "Quality II: the
// built-in embedder's length"): per contaminated cell, SOT's mean harmful
// recall@K, hard-negative and benign retention in each, the best baseline's
// recall in each, and a summary row (mean recall, mean benign minus
// hard-negative retention, cells where SOT's mean is above the best
// baseline's mean + 1 s.e.).
//
//     node bench/quality/compare.mjs before.json after.json
import { readFileSync } from 'node:fs';

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const se = (xs) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1) / xs.length);
const f = (x) => (x === null || Number.isNaN(x) ? '-' : x.toFixed(3));
const BASELINES = ['push-only', 'pull-only', 'nearest-harmful', 'saft', 'random'];

const files = process.argv.slice(2);
if (files.length !== 2) throw new Error('usage: compare.mjs before.json after.json');
const cellsOf = (file) => {
  const m = new Map();
  for (const r of JSON.parse(readFileSync(file, 'utf8')).results) {
    if (r.anchor !== 50 || !(r.rate > 0)) continue;
    const k = [r.set ?? 'dev', r.task, r.contam, r.rate].join('|');
    if (!m.has(k)) m.set(k, new Map());
    const byMethod = m.get(k);
    if (!byMethod.has(r.method)) byMethod.set(r.method, []);
    byMethod.get(r.method).push(r);
  }
  return m;
};
const stat = (runs, field) => {
  const xs = runs.map((r) => r[field]).filter((x) => x !== null && x !== undefined);
  return xs.length ? mean(xs) : Number.NaN;
};
const summarise = (byMethod) => {
  const sot = byMethod.get('sot');
  const best = BASELINES.filter((b) => byMethod.has(b))
    .map((b) => {
      const xs = byMethod.get(b).map((r) => r.recall);
      return { b, m: mean(xs), bound: mean(xs) + se(xs) };
    })
    .sort((x, y) => x.bound - y.bound)[0];
  const recall = stat(sot, 'recall');
  return { recall, hard: stat(sot, 'hard'), benign: stat(sot, 'benign'), best, lost: recall > best.bound + 1e-12 };
};

const [before, after] = files.map(cellsOf);
console.log(
  '| set | task + contamination | rate | SOT recall | hard-neg | benign | best baseline (recall) | SOT ≤ best + 1 s.e. |',
);
console.log('|---|---|---|---|---|---|---|---|');
const totals = [before, after].map(() => ({ recall: [], gap: [], lost: 0, cells: 0 }));
for (const k of [...after.keys()].sort()) {
  if (!before.has(k)) continue;
  const [set, task, contam, rate] = k.split('|');
  const s = [before, after].map((m) => summarise(m.get(k)));
  s.forEach((x, i) => {
    totals[i].recall.push(x.recall);
    if (!Number.isNaN(x.hard)) totals[i].gap.push(x.benign - x.hard);
    totals[i].lost += x.lost;
    totals[i].cells++;
  });
  const pair = (g) => `${g(s[0])} → ${g(s[1])}`;
  console.log(
    `| ${set} | ${task} + ${contam} | ${rate} | ${pair((x) => f(x.recall))} | ${pair((x) => f(x.hard))} | ${pair((x) => f(x.benign))} | ${pair((x) => `${x.best.b} ${f(x.best.m)}`)} | ${pair((x) => (x.lost ? 'no' : 'yes'))} |`,
  );
}
const [t0, t1] = totals;
console.log(
  `\nmean SOT recall ${f(mean(t0.recall))} → ${f(mean(t1.recall))}; mean benign − hard-negative retention ${f(mean(t0.gap))} → ${f(mean(t1.gap))}; cells lost ${t0.lost} → ${t1.lost} of ${t1.cells}`,
);
