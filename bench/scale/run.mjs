#!/usr/bin/env node
// Scaling of the whole `sot purify` with the built-in embedder: wall time per
// stage and peak RSS on 10k, 100k and 1M records resampled from the data
// mirror (50 anchor samples, 5,000 harmful samples), each run under a memory
// budget that the measured peak must respect.
//
//     npm run build && node bench/scale/run.mjs                  # every run of bench/scale/config.json
//     node bench/scale/run.mjs --runs 100000@8GB,100000@1GB       # n@budget pairs
//     node bench/scale/run.mjs --runs 10000@8GB/512               # n@budget/dim: the built-in embedder's length (--dim)
//     node bench/scale/run.mjs --data DIR --out FILE
//
// Each run is a fresh `node dist/cli.js purify` process with an empty
// embedding cache (a first run, as a user sees it), timed by the OS: peak RSS
// is GNU time's maximum resident set (the report's own figure as a fallback).
// Stage times come from the report. Harmful recall = injected records kept /
// injected records (random selection keeps `keep` of them). Results:
// bench/results/scale.json (the date is inside; --out to change) and a table on stdout.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinDim, parseBytes } from '../../dist/index.js';
import { runNode } from '../timed.mjs';
import { makeData } from './make-data.mjs';
import { opt } from '../args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const cfg = JSON.parse(readFileSync(opt('config', join(here, 'config.json')), 'utf8'));
const runs = (opt('runs') ?? cfg.runs.join(',')).split(',').map((r) => {
  const [size, dim] = r.split('/');
  const [n, budget] = size.split('@');
  return { n: Number(n), budget: budget ?? '8GB', dim: dim ? Number(dim) : undefined };
});
const dataDir = opt('data', process.env.SOT_SCALE_DIR || join(tmpdir(), 'sot-scale'));
const date = new Date().toISOString().slice(0, 10);
const outFile = opt('out', join(root, 'bench', 'results', 'scale.json'));

console.log(`data in ${dataDir} ...`);
const { files, pools } = await makeData(cfg, dataDir, [...new Set(runs.map((r) => r.n))]);
console.log(`pools: ${JSON.stringify(pools)}`);

const CLI = join(root, 'dist', 'cli.js');
const results = [];
const save = () => {
  mkdirSync(dirname(outFile), { recursive: true });
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, totalmem: totalmem(), node: process.version };
  writeFileSync(`${outFile}.tmp`, `${JSON.stringify({ date, config: cfg, pools, machine, runs: results }, null, 1)}\n`);
  writeFileSync(outFile, readFileSync(`${outFile}.tmp`));
  rmSync(`${outFile}.tmp`);
};

for (const run of runs) {
  const { train, truth } = files.sizes[run.n];
  const work = mkdtempSync(join(tmpdir(), 'sot-scale-run-'));
  const cache = join(work, 'cache');
  const output = join(work, 'out.jsonl');
  const cmd = [
    CLI,
    'purify',
    train,
    '--harmful',
    files.harmful,
    '--anchor',
    files.anchor,
    '-o',
    output,
    '--keep',
    String(cfg.keep),
    '--memory-budget',
    run.budget,
    '--json',
    ...(run.dim ? ['--dim', String(run.dim)] : []),
  ];
  console.log(`\n${run.n} records, budget ${run.budget}: ${process.execPath} ${cmd.slice(0, 2).join(' ')} ...`);
  const load = loadavg()[0];
  const t0 = performance.now();
  const r = runNode(cmd, { env: { ...process.env, SOT_CACHE_DIR: cache, SOT_OFFLINE: '1' } });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    console.log(r.stdout, r.stderr);
    results.push({ ...run, ok: false, status: r.status, stderr: r.stderr.slice(-2000) });
    save();
    continue;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  const peak = r.peakRss ?? out.memory.peakRss;
  // harmful recall and benign retention from the scores file's `kept` column
  const injected = new Set(JSON.parse(readFileSync(truth, 'utf8')));
  const rows = readFileSync(out.outputs.scores, 'utf8').split('\n');
  const kept = rows[0].split(',').indexOf('kept');
  let keptBad = 0,
    keptGood = 0;
  for (let i = 1; i < rows.length; i++) {
    if (!rows[i]) continue;
    const k = rows[i].split(',')[kept] === '1';
    if (injected.has(i - 1)) keptBad += k;
    else keptGood += k;
  }
  const budget = parseBytes('budget', run.budget);
  const res = {
    ...run,
    dim: run.dim ?? builtinDim(run.n, budget), // the automatic length: one document per record
    ok: true,
    budgetBytes: budget,
    wall,
    osWall: r.wall,
    peakRss: peak,
    peakSource: r.peakRss !== null ? 'GNU time (max resident set)' : 'report (process.resourceUsage)',
    withinBudget: peak <= budget,
    timings: out.timings,
    learner: out.learner,
    memory: out.memory,
    harmfulRecall: keptBad / injected.size,
    benignRetention: keptGood / (run.n - injected.size),
    injected: injected.size,
    loadBefore: load,
    loadAfter: loadavg()[0],
  };
  results.push(res);
  save();
  const st = out.learner.storage;
  console.log(
    `  ${wall.toFixed(1)} s, peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB (budget ${(budget / 2 ** 30).toFixed(2)} GiB${res.withinBudget ? '' : ', EXCEEDED'}), ` +
      `stages ${Object.entries(out.timings)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')}; ` +
      `costs: anchor ${st.anchor.mode}, harmful ${st.harmful.mode}${st.harmful.neighbours ? ` (${st.harmful.neighbours})` : ''}; ` +
      `harmful recall ${res.harmfulRecall.toFixed(3)}, benign retention ${res.benignRetention.toFixed(3)}`,
  );
  rmSync(work, { recursive: true, force: true });
}

// The table of BENCHMARKS.md.
const gib = (b) => (b / 2 ** 30).toFixed(2);
console.log(
  '\n| records | budget | dim | wall s | read | embed | references | learn | select | write | peak RSS GiB | within budget | anchor costs | harmful costs | learner steps / passes | harmful costs: build / verify s | max error of f (bound) | harmful recall | benign retention | learn s per 100k |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results.filter((x) => x.ok)) {
  const t = r.timings;
  const h = r.learner.storage.harmful;
  const err = h.verification ? `${h.verification.maxError.toExponential(1)} (${h.bound.toExponential(1)})` : 'exact';
  console.log(
    `| ${r.n.toLocaleString('en')} | ${r.budget} | ${r.dim} | ${r.wall.toFixed(1)} | ${t.read.toFixed(1)} | ${t.embed.toFixed(1)} | ${t.references.toFixed(1)} | ${t.learn.toFixed(1)} | ${t.select.toFixed(2)} | ${t.write.toFixed(1)} | ${gib(r.peakRss)} | ${r.withinBudget ? 'yes' : '**no**'} | ${r.learner.storage.anchor.mode} | ${h.mode}${h.neighbours ? ` (k ${h.neighbours})` : ''} | ${r.learner.steps} / ${r.learner.innerIterations ?? '-'} | ${h.buildSeconds?.toFixed(1) ?? '-'} / ${h.verification?.seconds?.toFixed(1) ?? '-'} | ${err} | ${r.harmfulRecall.toFixed(3)} | ${r.benignRetention.toFixed(3)} | ${((t.learn / r.n) * 1e5).toFixed(2)} |`,
  );
}
console.log(`\nwrote ${outFile}`);
