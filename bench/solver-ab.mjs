#!/usr/bin/env node
// A/B timing of the Sinkhorn solver between two builds of the addon, form by
// form, interleaved in one process so that both see the same machine load.
//
//   cp native/sot.linux-x64-gnu.node /tmp/sot-main.node     # before the change
//   npm run build:native                                     # after it
//   node bench/solver-ab.mjs --a /tmp/sot-main.node --b native/sot.linux-x64-gnu.node
//   node bench/solver-ab.mjs --runs 5 --n 20000 --m 2000 --d 384 --eps 0.05 --forms dense,kernel
//
// The problem is the standard one of BENCHMARKS.md: gaussian points, L2-normalised
// (seeded), cosine cost, uniform weights, at eps 0.01 by default (the grid's small
// eps: enough passes for the solver, not the setup, to dominate, and for the
// stored kernel to be built and served). Forms:
//   dense      sinkhornCost on the cost matrix, no stored kernel
//   kernel     sinkhornCost on the cost matrix with the stored kernel
//   truncated  sinkhornPoints, storage 'truncated' (no verification pass)
//   blocked    sinkhornPoints, storage 'blocked'
//   exact      sinkhornPoints, dense, finishing on the float64 costs (exactCosts 'on';
//              not in the default list: builds before the float64 finish lack it)
//   learner    learnWeights with both terms truncated under --budget (the solver as
//              the scale benchmark drives it: persistent stores, warm starts)
// Each run solves with A then B, or B then A (alternating), `--runs` times per form;
// prints the median and the fastest seconds of each, the ratio of the medians B / A
// and the median of the paired ratios (B / A of the two solves of one run, side by
// side, so the least affected by a load that changes over minutes), the passes and
// the storage report, and /proc/loadavg after each form. Checks that A and B agree
// (largest |f_A - f_B|, or of the learned weights). Also the CPU seconds of the
// process during each solve (all its threads): on a shared machine they move less
// with the load than the wall time does.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { opt } from './args.mjs';

const require = createRequire(import.meta.url);
const A = require(resolve(opt('a', '/tmp/sot-main.node')));
const B = require(resolve(opt('b', 'native/sot.linux-x64-gnu.node')));
const runs = Number(opt('runs', 5));
const [n, m, d] = ['n', 'm', 'd'].map((k, i) => Number(opt(k, [20000, 2000, 384][i])));
const eps = Number(opt('eps', 0.01));
const tol = Number(opt('tol', 1e-6));
const forms = opt('forms', 'dense,kernel,truncated,blocked,learner').split(',');
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim();

/** Gaussian rows (Box-Muller over a seeded xorshift), each scaled to unit length. */
function points(rows, seed) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const data = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) {
    let norm = 0;
    for (let k = 0; k < d; k++) {
      const v = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
      data[i * d + k] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let k = 0; k < d; k++) data[i * d + k] /= norm;
  }
  return { data, rows, cols: d };
}

const x = points(n, 1);
const y = points(m, 2);
const cost = { data: await A.costMatrix(x, y, 'cosine'), rows: n, cols: m };
// exactCosts 'off': the forms from points solve their held costs, as they did before the float64 finish
const solve = (o) => ({ eps, tol, maxIter: 1000, exactCosts: 'off', ...o });
const learnSets = { downstream: x, anchor: points(50, 3), harmful: points(5000, 4) };

const run = {
  dense: (lib) => lib.sinkhornCost(cost, null, null, solve({ storage: { storeKernel: false } })),
  kernel: (lib) => lib.sinkhornCost(cost, null, null, solve({ storage: { storeKernel: true } })),
  truncated: (lib) =>
    lib.sinkhornPoints(x, y, 'cosine', null, null, solve({ storage: { mode: 'truncated', verify: false } })),
  blocked: (lib) => lib.sinkhornPoints(x, y, 'cosine', null, null, solve({ storage: { mode: 'blocked' } })),
  exact: (lib) => lib.sinkhornPoints(x, y, 'cosine', null, null, solve({ exactCosts: 'on' })),
  learner: (lib) => lib.learnWeights(learnSets, { storage: { budget: Number(opt('budget', 256 << 20)) } }),
};

const median = (v) => [...v].sort((p, q) => p - q)[v.length >> 1];
console.log(
  `n ${n} m ${m} d ${d} eps ${eps} tol ${tol}, ${runs} runs, threads A ${A.threadCount()} B ${B.threadCount()}`,
);
console.log(`loadavg before: ${loadavg()}`);
const rows = [];
for (const form of forms) {
  const t = { A: [], B: [] };
  const cpu = { A: [], B: [] };
  const out = {};
  for (let r = 0; r < runs; r++) {
    for (const side of r % 2 ? ['B', 'A'] : ['A', 'B']) {
      const [t0, c0] = [performance.now(), process.cpuUsage()];
      out[side] = await run[form](side === 'A' ? A : B);
      t[side].push((performance.now() - t0) / 1000);
      const c = process.cpuUsage(c0);
      cpu[side].push((c.user + c.system) / 1e6);
    }
  }
  const [a, b] = [median(t.A), median(t.B)];
  const paired = median(t.B.map((v, i) => v / t.A[i]));
  const [minA, minB] = [Math.min(...t.A), Math.min(...t.B)];
  const [cpuA, cpuB] = [median(cpu.A), median(cpu.B)];
  const info = (o) =>
    o.storage
      ? `${o.storage.mode} ${o.passes} passes (kernel ${o.storage.kernelPasses}/${o.storage.kernelBuilds})`
      : `${o.steps} steps, ${o.innerIterations} inner (${o.anchorStorage.mode}, ${o.harmfulStorage.mode})`;
  const diff = out.A.f
    ? Math.max(...out.A.f.map((v, i) => Math.abs(v - out.B.f[i])))
    : Math.max(...out.A.weights.map((v, i) => Math.abs(v - out.B.weights[i])));
  rows.push({ form, a, b, ratio: b / a, paired, minA, minB, cpuA, cpuB, info: info(out.B), diff, load: loadavg() });
  console.log(
    `${form.padEnd(9)} A ${a.toFixed(3)} s  B ${b.toFixed(3)} s  B/A ${(b / a).toFixed(3)}  paired ${paired.toFixed(3)}  min A ${minA.toFixed(3)} B ${minB.toFixed(3)}  ${info(out.B)}  max|A-B| ${diff.toExponential(2)}  load ${loadavg()}`,
  );
  console.log(`          cpu A ${cpuA.toFixed(3)} s  B ${cpuB.toFixed(3)} s  B/A ${(cpuB / cpuA).toFixed(3)}`);
  console.log(
    `          runs A ${t.A.map((v) => v.toFixed(3)).join(' ')}  B ${t.B.map((v) => v.toFixed(3)).join(' ')}`,
  );
}
console.log(`loadavg after: ${loadavg()}`);
console.log(
  '\n| form | A median (s) | B median (s) | B / A | paired B / A | fastest A / B (s) | CPU s A / B (median) | CPU B / A | passes | max abs diff | loadavg after |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.form} | ${r.a.toFixed(3)} | ${r.b.toFixed(3)} | ${r.ratio.toFixed(3)} | ${r.paired.toFixed(3)} | ${r.minA.toFixed(3)} / ${r.minB.toFixed(3)} | ${r.cpuA.toFixed(3)} / ${r.cpuB.toFixed(3)} | ${(r.cpuB / r.cpuA).toFixed(3)} | ${r.info} | ${r.diff.toExponential(1)} | ${r.load.split(' ').slice(0, 3).join(' ')} |`,
  );
