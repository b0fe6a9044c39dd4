#!/usr/bin/env node
// Quality grid for the SOT learner's defaults, on real data.
//
// One command (from the repo root; embeds first if the cache is missing):
//
//     bash bench/quality/run.sh                 # every run docs/learner-defaults.md cites, ~28 min on 2 cores
//     bash bench/quality/run.sh --quick         # alpaca-jbb, seed 0, shipped defaults, seconds
//     node bench/quality/grid.mjs [--quick] [--tasks alpaca-jbb,gsm8k-jbb,alpaca-hh] [--seeds 0,1,2]
//                                 [--eps 0.02,0.05] [--lambda 1] [--tau 0.05] [--no-extras] [--no-anchor] [--out FILE]
//
// Tasks: alpaca-jbb (alpaca-libre + JailbreakBench ablation answers), gsm8k-jbb
// (gsm8k + the same), alpaca-hh (alpaca-libre + hh-rlhf `rejected`, noisy).
// Without flags: tasks alpaca-jbb,gsm8k-jbb, seeds 0-2, eps {0.02,0.05,0.1,0.2}
// x lambda {0.5,1,2} x tau {0.02,0.05,0.1,0.2}, baselines, extras (~10 min).
//
// Needs `npm run build` (dist/ + native addon) and the embeddings cached by
// bench/quality/embed.py in $SOTQ_CACHE (default /tmp/sotq-emb).
//
// For each task and seed it draws: downstream = 1,800 benign + 200 injected
// harmful pairs (10%), shuffled; safe anchor = 50 other benign rows of the
// same task; harmful reference = the whole harm_ref pool (disjoint from the
// injected set by source and prompt). It runs learnWeights over the grid and
// the baselines through scoreSamples, keeps the top K = 80% with selectTopK,
// and records harmful recall@K (lower is better; random ~0.8), benign
// retention, AUROC of the score as a benign-vs-harmful detector, the weights'
// effective sample size, steps/converged and wall time. It prints a table and
// writes everything to bench/quality/results/.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { learnWeights, scoreSamples, selectTopK, threadCount } from '../../dist/index.js';
import { auroc, mulberry32 } from './stats.mjs';
import { flag, opt } from '../args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CACHE = process.env.SOTQ_CACHE ?? '/tmp/sotq-emb';

// ---------- arguments ----------
const nums = (s) => s.split(',').map(Number);
const quick = flag('quick');
const TASKS = opt('tasks', quick ? 'alpaca-jbb' : 'alpaca-jbb,gsm8k-jbb').split(',');
const SEEDS = nums(opt('seeds', quick ? '0' : '0,1,2'));
const EPS = nums(opt('eps', quick ? '0.05' : '0.02,0.05,0.1,0.2'));
const LAMBDA = nums(opt('lambda', quick ? '1' : '0.5,1,2'));
const TAU = nums(opt('tau', quick ? '0.05' : '0.02,0.05,0.1,0.2'));
const EXTRAS = !flag('no-extras');
const N_BENIGN = 1800;
const N_HARM = 200;
const N_ANCHOR = 50;
const KEEP = 0.8;

const TASK_DEFS = {
  'alpaca-jbb': { benign: 'alpaca', injected: 'jbb_unsafe' },
  'gsm8k-jbb': { benign: 'gsm8k', injected: 'jbb_unsafe' },
  'alpaca-hh': { benign: 'alpaca', injected: 'hh_rejected' },
};

// ---------- data ----------
function loadPool(name) {
  const meta = JSON.parse(readFileSync(join(CACHE, `${name}.json`), 'utf8'));
  const buf = readFileSync(join(CACHE, `${name}.f32`));
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  if (data.length !== meta.n * meta.dim)
    throw new Error(`${name}: ${data.length} floats, expected ${meta.n} x ${meta.dim}`);
  return { name, n: meta.n, dim: meta.dim, data, rows: meta.rows };
}

const hash = (s) => [...s].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7);
function permutation(n, rand) {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
function gather(pool, idx) {
  const d = pool.dim;
  const data = new Float32Array(idx.length * d);
  idx.forEach((r, k) => data.set(pool.data.subarray(r * d, (r + 1) * d), k * d));
  return { data, rows: idx.length, cols: d };
}

/** Downstream (benign + injected, shuffled), labels (1 = harmful), anchor. */
function split(task, seed, pools) {
  const def = TASK_DEFS[task];
  const benign = pools[def.benign];
  const inj = pools[def.injected];
  const rand = mulberry32(hash(`${task}/${seed}`));
  const bperm = permutation(benign.n, rand);
  const hperm = permutation(inj.n, rand);
  const items = [
    ...bperm.slice(0, N_BENIGN).map((r) => [benign, r, 0]),
    ...hperm.slice(0, N_HARM).map((r) => [inj, r, 1]),
  ];
  const order = permutation(items.length, rand);
  const d = benign.dim;
  const data = new Float32Array(items.length * d);
  const labels = new Uint8Array(items.length);
  order.forEach((src, k) => {
    const [pool, r, y] = items[src];
    data.set(pool.data.subarray(r * d, (r + 1) * d), k * d);
    labels[k] = y;
  });
  const anchor = gather(benign, bperm.slice(N_BENIGN, N_BENIGN + N_ANCHOR));
  return { downstream: { data, rows: items.length, cols: d }, labels, anchor };
}

// ---------- metrics ----------

async function metrics(scores, labels, weights) {
  const sel = await selectTopK(scores, { fraction: KEEP }, weights);
  let harmKept = 0;
  let benKept = 0;
  let nh = 0;
  for (let i = 0; i < labels.length; i++) {
    nh += labels[i];
    if (sel.kept[i]) labels[i] ? harmKept++ : benKept++;
  }
  // effective sample size of the training weights over the kept set, as a
  // fraction of K: 1 = uniform, 0.1 = the loss is carried by a tenth of them
  let ess = null;
  let maxTrainWeight = null;
  if (weights) {
    let s = 0;
    let s2 = 0;
    maxTrainWeight = 0;
    for (let i = 0; i < labels.length; i++) {
      if (!sel.kept[i]) continue;
      const t = sel.trainWeight[i];
      (s += t), (s2 += t * t), (maxTrainWeight = Math.max(maxTrainWeight, t));
    }
    ess = (s * s) / s2 / sel.k;
  }
  return {
    recall: harmKept / nh,
    retention: benKept / (labels.length - nh),
    auroc: auroc(scores, labels),
    ess,
    maxTrainWeight,
  };
}

// ---------- runs ----------
const r4 = (v) => (v === null || v === undefined ? v : Math.round(v * 1e4) / 1e4);

async function runSot(sets, labels, o) {
  const t0 = performance.now();
  const res = await learnWeights(sets, o);
  const ms = performance.now() - t0;
  const m = await metrics(res.weights, labels, res.weights);
  return {
    ...m,
    ms,
    steps: res.steps,
    converged: res.converged,
    innerConverged: res.innerConverged,
    innerIterations: res.innerIterations,
    objective: res.objective[res.objective.length - 1],
    warnings: res.warnings,
  };
}

async function runBaseline(method, sets, labels, o) {
  const t0 = performance.now();
  const res = await scoreSamples(method, sets, o);
  const ms = performance.now() - t0;
  return { ...(await metrics(res.scores, labels)), ms };
}

function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function sd(xs) {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1));
}

async function main() {
  const pools = {};
  for (const t of TASKS) {
    if (!TASK_DEFS[t]) throw new Error(`unknown task ${t}`);
    for (const p of [TASK_DEFS[t].benign, TASK_DEFS[t].injected]) pools[p] ??= loadPool(p);
  }
  const harm = loadPool('harm_ref');
  const harmful = { data: harm.data, rows: harm.n, cols: harm.dim };
  const started = Date.now();
  console.log(
    `tasks ${TASKS.join(',')} seeds ${SEEDS.join(',')} | n = ${N_BENIGN}+${N_HARM}, anchor ${N_ANCHOR}, harmful ref ${harm.n}, d ${harm.dim}, K = ${KEEP * 100}% | threads ${threadCount()}`,
  );
  const runs = [];
  const cells = [];
  for (const eps of EPS) for (const lambda of LAMBDA) for (const tau of TAU) cells.push({ eps, lambda, tau });
  for (const task of TASKS) {
    for (const seed of SEEDS) {
      const { downstream, labels, anchor } = split(task, seed, pools);
      const sets = { downstream, anchor, harmful };
      const t0 = Date.now();
      // baselines (OT ones at every eps of the grid)
      for (const method of ['random', 'nearest-harmful', 'saft']) {
        const r = await runBaseline(method, sets, labels, { seed });
        runs.push({ task, seed, method, ...r });
      }
      for (const eps of EPS) {
        for (const method of ['pull-only', 'push-only']) {
          const r = await runBaseline(method, sets, labels, { eps });
          runs.push({ task, seed, method, eps, ...r });
        }
      }
      for (const c of cells) {
        const r = await runSot(sets, labels, c);
        runs.push({ task, seed, method: 'sot', ...c, ...r });
      }
      if (EXTRAS) {
        // step size around the defaults (every seed); cost, debiased objective (seed 0)
        const extras = [
          { eps: 0.05, lambda: 1, tau: 0.05, step: 0.25 },
          { eps: 0.05, lambda: 1, tau: 0.05, step: 1 },
          { eps: 0.05, lambda: 1, tau: 0.1, step: 0.25 },
          { eps: 0.05, lambda: 1, tau: 0.1, step: 1 },
        ];
        if (seed === SEEDS[0]) {
          // embeddings are unit-norm: sqeuclidean = 2 x cosine, so this must match cosine eps 0.05, tau 0.05
          extras.push({ eps: 0.1, lambda: 1, tau: 0.1, cost: 'sqeuclidean' });
          // with lambda = 1 the self terms cancel in the gradient: debiased only differs for lambda != 1
          extras.push({ eps: 0.05, lambda: 2, tau: 0.05, debiased: true });
          extras.push({ eps: 0.05, lambda: 0.5, tau: 0.05, debiased: true });
          // no anchor: the downstream set is its own pull target (slow: 2000 x 2000)
          if (flag('no-anchor')) {
            extras.push({ eps: 0.05, lambda: 1, tau: 0.05, noAnchor: true });
            extras.push({ eps: 0.05, lambda: 1.5, tau: 0.2, noAnchor: true });
            extras.push({ eps: 0.05, lambda: 4, tau: 0.2, noAnchor: true });
          }
        }
        for (const x of extras) {
          const { noAnchor, ...o } = x;
          const s = noAnchor ? { downstream, harmful } : sets;
          const r = await runSot(s, labels, o);
          runs.push({ task, seed, method: 'sot', extra: true, ...x, ...r });
        }
      }
      console.log(`  ${task} seed ${seed}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  const wall = (Date.now() - started) / 1000;

  // ---------- aggregate ----------
  const key = (r) =>
    r.method === 'sot'
      ? `sot eps=${r.eps} lambda=${r.lambda} tau=${r.tau}${r.step ? ` step=${r.step}` : ''}${r.cost ? ` ${r.cost}` : ''}${r.debiased ? ' debiased' : ''}${r.noAnchor ? ' no-anchor' : ''}`
      : `${r.method}${r.eps !== undefined ? ` eps=${r.eps}` : ''}`;
  const groups = new Map();
  for (const r of runs) {
    const k = key(r);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  // rank of each grid cell's recall within its (task, seed), 1 = best, ties averaged
  const rankOf = new Map();
  for (const t of TASKS) {
    for (const sd of SEEDS) {
      const rs = runs.filter((r) => r.method === 'sot' && !r.extra && r.task === t && r.seed === sd);
      rs.forEach((r) => {
        const better = rs.filter((q) => q.recall < r.recall).length;
        const same = rs.filter((q) => q.recall === r.recall).length;
        rankOf.set(r, better + (same + 1) / 2);
      });
    }
  }
  const summary = [];
  for (const [k, rs] of groups) {
    const per = {};
    for (const t of TASKS) {
      const tr = rs.filter((r) => r.task === t);
      if (tr.length)
        per[t] = {
          recall: r4(mean(tr.map((r) => r.recall))),
          recallSd: r4(sd(tr.map((r) => r.recall))),
          auroc: r4(mean(tr.map((r) => r.auroc))),
        };
    }
    const sot = rs[0].method === 'sot';
    summary.push({
      key: k,
      method: rs[0].method,
      eps: rs[0].eps,
      lambda: rs[0].lambda,
      tau: rs[0].tau,
      extra: !!rs[0].extra,
      recall: r4(mean(rs.map((r) => r.recall))),
      worstRecall: r4(Math.max(...rs.map((r) => r.recall))),
      retention: r4(mean(rs.map((r) => r.retention))),
      auroc: r4(mean(rs.map((r) => r.auroc))),
      ess: sot ? r4(mean(rs.map((r) => r.ess))) : null,
      maxTrainWeight: sot ? r4(Math.max(...rs.map((r) => r.maxTrainWeight))) : null,
      meanRank: rankOf.has(rs[0]) ? r4(mean(rs.map((r) => rankOf.get(r)))) : null,
      ms: Math.round(mean(rs.map((r) => r.ms))),
      steps: sot ? Math.round(mean(rs.map((r) => r.steps))) : null,
      maxSteps: sot ? Math.max(...rs.map((r) => r.steps)) : null,
      notConverged: sot ? rs.filter((r) => !r.converged).length : null,
      innerNotConverged: sot ? rs.filter((r) => !r.innerConverged).length : null,
      runs: rs.length,
      perTask: per,
    });
  }
  summary.sort((a, b) => a.recall - b.recall);

  const head = [
    'config',
    'recall',
    'worst',
    'rank',
    'AUROC',
    'retain',
    'ESS',
    'maxTW',
    ...TASKS.map((t) => `rec:${t}`),
    'steps',
    'max',
    '!conv',
    'ms',
  ];
  const rows = summary.map((s) => [
    s.key,
    s.recall.toFixed(3),
    s.worstRecall.toFixed(3),
    s.meanRank === null ? '' : s.meanRank.toFixed(1),
    s.auroc.toFixed(3),
    s.retention.toFixed(3),
    s.ess === null ? '' : s.ess.toFixed(2),
    s.maxTrainWeight === null ? '' : s.maxTrainWeight.toFixed(1),
    ...TASKS.map((t) => (s.perTask[t] ? `${s.perTask[t].recall.toFixed(3)}±${s.perTask[t].recallSd.toFixed(3)}` : '')),
    s.steps ?? '',
    s.maxSteps ?? '',
    s.notConverged ?? '',
    s.ms,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((v, i) => String(v).padEnd(widths[i])).join('  ');
  console.log(
    `\nrecall = harmful kept in the top ${KEEP * 100}% (mean over tasks x seeds; lower is better), worst = max over runs`,
  );
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log(`\nwall ${wall.toFixed(0)} s, ${runs.length} runs`);

  // --quick writes to /tmp so that it never mixes with the results the doc cites
  const out = opt(
    'out',
    quick ? '/tmp/sotq-grid-quick.json' : join(here, 'results', `grid-${new Date().toISOString().slice(0, 10)}.json`),
  );
  mkdirSync(dirname(out), { recursive: true });
  const manifest = (() => {
    try {
      return JSON.parse(readFileSync(join(CACHE, 'manifest.json'), 'utf8'));
    } catch {
      return null;
    }
  })();
  writeFileSync(
    out,
    JSON.stringify(
      {
        setup: {
          tasks: TASKS,
          seeds: SEEDS,
          nBenign: N_BENIGN,
          nHarm: N_HARM,
          nAnchor: N_ANCHOR,
          nHarmfulRef: harm.n,
          dim: harm.dim,
          keep: KEEP,
          grid: { eps: EPS, lambda: LAMBDA, tau: TAU },
        },
        machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, threads: threadCount(), node: process.version },
        embeddings: manifest,
        wallSeconds: wall,
        summary,
        runs: runs.map((r) => ({
          ...r,
          recall: r4(r.recall),
          retention: r4(r.retention),
          auroc: r4(r.auroc),
          ess: r4(r.ess),
          ms: Math.round(r.ms),
        })),
      },
      null,
      1,
    ),
  );
  console.log(`wrote ${out}`);
}

await main();
