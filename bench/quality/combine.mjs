#!/usr/bin/env node
// Recombines the pull and push terms offline, from the per-cell scores that
// `eval.mjs --dump FILE` writes, to test changes of the learner's method
// before building them into the core (issue 17, items 3-4).
//
//     node bench/quality/combine.mjs DUMP.jsonl [--lambdas 1,1.5,2] [--base 2] [--emb DIR] [--eps 0.02]
//
// At the learner's default tau the ranking of SOT is, nearly, the one-step
// push-pull score at uniform weights, `lambda * push-only + pull-only`
// (docs/learner-defaults.md): the `proxy` rows check that against the real
// learner's figures in BENCHMARKS.md. Per cell (task, contamination, rate;
// mean over the seeds of the dump) it prints the best baseline (lowest mean
// harmful recall@80%, with its standard error) and, for each candidate, its
// mean recall (`*` = above best + 1 s.e.: a lost cell) and its hard-negative
// and benign retention; then per candidate the number of lost cells and the
// mean and largest gap between benign and hard-negative retention.
// Candidates:
// - `proxy λ`: lambda * push + pull, the potentials as the learner has them;
// - `std λ`: each term divided by its median absolute deviation over the
//   downstream set (standardised terms: lambda means the same on every task);
// - `refusal ρ` (dumps with --dump-refusals): a second pull, towards safe
//   answers to sensitive requests, with weight ρ, added to `proxy --base`
//   (the embedder's lambda: 2 built-in, 1.5 MiniLM);
// - `density κ` (with --emb, the embeddings of --dump-emb): plus κ times the
//   leave-one-out soft-min cost of each sample to the rest of the downstream
//   set, at --eps (low in dense regions): drops samples in dense regions of
//   the downstream set that the anchor does not explain (the signal SAFT
//   uses), added to `proxy --base`;
// For cells with hard negatives it also prints, per baseline and candidate
// (of the proxies, `proxy --base` only), the AUROC of the score between the hard negatives and the injected
// harmful samples (0.5: the score does not tell them apart, whatever it does
// to the ordinary benign ones).
// - `free push`, `free λ`, `half λ` (with --emb): the push with the
//   reference marginal left free (each row's soft-min cost to the harmful
//   reference at uniform weights, at --eps: no reference potentials, the
//   limit of a semi-relaxed push), alone, in place of the push-only term of
//   `proxy --base`, and averaged with it;
// - `oracle`: the best lambda of the proxy per cell, chosen on the labels (a
//   ceiling for any choice of the term weights, not a method).
import { existsSync } from 'node:fs';
import { auroc, cellFile, cellVectors, mean, readDump, retention, se } from './stats.mjs';
import { args, opt } from '../args.mjs';

const LAMBDAS = opt('lambdas', '1,1.5,2,3').split(',').map(Number);
const BASE = Number(opt('base', 2));
const EMB = opt('emb');
const EPS = Number(opt('eps', 0.02));
const ORACLE = [0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 8, 16, 1000];
const BASELINES = ['push-only', 'pull-only', 'nearest-harmful', 'saft', 'random'];
const lines = readDump(args[0]);

const median = (a) => {
  const b = [...a].sort((x, y) => x - y);
  const m = b.length >> 1;
  return b.length % 2 ? b[m] : (b[m - 1] + b[m]) / 2;
};
const mad = (a) => {
  const m = median(a);
  return median(a.map((x) => Math.abs(x - m))) || 1;
};

/** Leave-one-out soft-min cosine cost of each downstream row to the others (rows are unit-norm). */
function looDensity(l) {
  if (!existsSync(cellFile(EMB, l, 'downstream'))) return null;
  const x = cellVectors(EMB, l, 'downstream');
  const n = l.kinds.length;
  const d = x.length / n;
  const out = new Float64Array(n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let top = -Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k] * x[j * d + k];
      row[j] = -(1 - dot) / EPS;
      top = Math.max(top, row[j]);
    }
    let s = 0;
    for (let j = 0; j < n; j++) if (j !== i) s += Math.exp(row[j] - top);
    out[i] = -EPS * (top + Math.log(s / (n - 1)));
  }
  const m = mean(out);
  return Array.from(out, (v) => v - m);
}

/** Each downstream row's soft-min cosine cost to the harmful reference at uniform weights, no potentials (the push of a reference marginal left free). */
function freePush(l) {
  if (!existsSync(cellFile(EMB, l, 'harmful'))) return null;
  const [x, h] = [cellVectors(EMB, l, 'downstream'), cellVectors(EMB, l, 'harmful')];
  const n = l.kinds.length;
  const d = x.length / n;
  const m = h.length / d;
  const norm = (v, i) => Math.hypot(...v.subarray(i * d, (i + 1) * d)) || 1;
  const hn = Array.from({ length: m }, (_, j) => norm(h, j));
  const out = new Float64Array(n);
  const row = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const xn = norm(x, i);
    let top = -Infinity;
    for (let j = 0; j < m; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k] * h[j * d + k];
      row[j] = -(1 - dot / (xn * hn[j])) / EPS;
      top = Math.max(top, row[j]);
    }
    let s = 0;
    for (let j = 0; j < m; j++) s += Math.exp(row[j] - top);
    out[i] = -EPS * (top + Math.log(s / m));
  }
  return Array.from(out);
}

function candidates(l) {
  const P = l.scores['push-only'];
  const A = l.scores['pull-only'];
  const out = {};
  for (const lam of LAMBDAS) out[`proxy ${lam}`] = P.map((p, i) => lam * p + A[i]);
  const [sp, sa] = [mad(P), mad(A)];
  for (const lam of LAMBDAS) out[`std ${lam}`] = P.map((p, i) => (lam * p) / sp + A[i] / sa);
  const R = l.scores.refusal;
  if (R) for (const rho of [0.5, 1, 2]) out[`refusal ${rho}`] = P.map((p, i) => BASE * p + A[i] + rho * R[i]);
  const dens = EMB ? looDensity(l) : null;
  if (dens) for (const k of [0.5, 1, 2]) out[`density ${k}`] = P.map((p, i) => BASE * p + A[i] + k * dens[i]);
  const free = EMB ? freePush(l) : null;
  if (free) {
    out['free push'] = free;
    out[`free ${BASE}`] = free.map((f, i) => BASE * f + A[i]);
    out[`half ${BASE}`] = P.map((p, i) => (BASE * (p + free[i])) / 2 + A[i]);
  }
  return out;
}

const cells = new Map();
for (const l of lines) {
  const key = `${l.embedder} ${l.task}+${l.contam} ${l.rate}`;
  if (!cells.has(key)) cells.set(key, []);
  cells.get(key).push(l);
}
const summary = {};
for (const [key, ls] of cells) {
  const rate = ls[0].rate;
  const per = ls.map((l) =>
    Object.fromEntries(Object.entries(candidates(l)).map(([k, s]) => [k, retention(s, l.kinds)])),
  );
  const names = Object.keys(per[0]);
  const stat = (get) => {
    const v = ls.map(get);
    return v[0] === null ? null : mean(v);
  };
  let line = key.padEnd(36);
  let best = null;
  if (rate > 0) {
    for (const m of BASELINES) {
      const v = ls.map((l) => retention(l.scores[m], l.kinds).recall);
      if (!best || mean(v) + se(v) < best.bound) best = { m, mean: mean(v), bound: mean(v) + se(v) };
    }
    const oracle = ORACLE.map((lam) =>
      mean(
        ls.map(
          (l) =>
            retention(
              l.scores['push-only'].map((p, i) => lam * p + l.scores['pull-only'][i]),
              l.kinds,
            ).recall,
        ),
      ),
    );
    const o = oracle.indexOf(Math.min(...oracle));
    line += ` best ${best.m} ${best.mean.toFixed(3)}; oracle λ=${ORACLE[o]} ${oracle[o].toFixed(3)}`;
  }
  if (rate > 0 && ls[0].kinds.includes('hard')) {
    const hardVsHarm = (scores, kinds) => {
      const idx = kinds.flatMap((k, i) => (k === 'hard' || k === 'harmful' ? [i] : []));
      return auroc(
        idx.map((i) => scores[i]),
        idx.map((i) => kinds[i] === 'harmful'),
      );
    };
    const cands = ls.map(candidates);
    const parts = [...BASELINES.map((m) => [m, ls.map((l) => hardVsHarm(l.scores[m], l.kinds))])];
    for (const name of Object.keys(cands[0]).filter((k) => k === `proxy ${BASE}` || !k.startsWith('proxy')))
      parts.push([name, ls.map((l, j) => hardVsHarm(cands[j][name], l.kinds))]);
    line += `\n    hard-negative vs harmful AUROC: ${parts.map(([m, v]) => `${m} ${mean(v).toFixed(2)}`).join(', ')}`;
  }
  for (const [i, name] of names.entries()) {
    const s = (summary[name] ??= { lost: 0, cells: 0, gaps: [] });
    const rec = stat((_, j) => per[j][name].recall);
    const hard = stat((_, j) => per[j][name].hard);
    const benign = stat((_, j) => per[j][name].benign);
    if (hard !== null) s.gaps.push(benign - hard);
    let cell = `${name} `;
    if (rate > 0) {
      const lost = rec > best.bound + 1e-9;
      s.cells++;
      if (lost) s.lost++;
      cell += `${rec.toFixed(3)}${lost ? '*' : ''} `;
    }
    cell += `h${hard === null ? '-' : hard.toFixed(2)}/b${benign.toFixed(2)}`;
    line += `${i % 4 === 0 ? '\n   ' : ' |'} ${cell}`;
  }
  console.log(line);
}
console.log(
  '\ncandidate: contaminated cells lost (recall above the best baseline + 1 s.e.), benign minus hard-negative retention',
);
for (const [name, s] of Object.entries(summary))
  console.log(
    `  ${name.padEnd(12)} lost ${s.lost}/${s.cells}; hard-negative gap mean ${s.gaps.length ? mean(s.gaps).toFixed(3) : '-'}, max ${s.gaps.length ? Math.max(...s.gaps).toFixed(3) : '-'}`,
  );
