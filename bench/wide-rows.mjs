#!/usr/bin/env node
// `sot purify` with wide vectors under a memory budget: wall time, the write
// stage (which computes the report's map, a 2-D principal-component
// projection) and peak RSS, for each built-in embedder length. The data is
// the scale benchmark's (bench/scale/config.json), at --n records.
//
//     npm run build && node bench/wide-rows.mjs                          # 5,000 records, dims 2048,8192,16384, 2GB
//     node bench/wide-rows.mjs --n 10000 --dims 4096 --budget 1GB
//     node bench/wide-rows.mjs --cli /tmp/old/dist/cli.js --label old    # another build, same data
//
// Each run is a fresh process with no embedding cache, timed by GNU time
// (maximum resident set). Results are appended to
// bench/results/wide-rows.json (--out to change).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { opt } from './args.mjs';
import { runNode } from './timed.mjs';
import { makeData } from './scale/make-data.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const n = Number(opt('n', 5000));
const dims = opt('dims', '2048,8192,16384').split(',').map(Number);
const budget = opt('budget', '2GB');
const cli = resolve(opt('cli', join(root, 'dist', 'cli.js')));
const label = opt('label', cli === join(root, 'dist', 'cli.js') ? 'this build' : cli);
const outFile = opt('out', join(root, 'bench', 'results', 'wide-rows.json'));
const cfg = JSON.parse(readFileSync(join(here, 'scale', 'config.json'), 'utf8'));
const { files } = await makeData(cfg, opt('data', process.env.SOT_SCALE_DIR || join(tmpdir(), 'sot-scale')), [n]);
const { train } = files.sizes[n];

const results = existsSync(outFile) ? JSON.parse(readFileSync(outFile, 'utf8')) : [];
for (const dim of dims) {
  const work = mkdtempSync(join(tmpdir(), 'sot-wide-'));
  const argv = [
    cli,
    'purify',
    train,
    '--harmful',
    files.harmful,
    '--anchor',
    files.anchor,
    '-o',
    join(work, 'out.jsonl'),
    '--dim',
    String(dim),
    '--memory-budget',
    budget,
    '--no-cache',
    '--json',
  ];
  const load = loadavg()[0];
  const r = runNode(argv, { env: { ...process.env, SOT_OFFLINE: '1' } });
  if (r.status !== 0 || r.peakRss === null) {
    console.log(`${label}, dim ${dim}: failed (${r.status})\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
    rmSync(work, { recursive: true, force: true });
    continue;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  const report = JSON.parse(readFileSync(out.outputs.report, 'utf8'));
  const res = {
    date: new Date().toISOString().slice(0, 10),
    build: label,
    n,
    dim,
    budget,
    wall: r.wall,
    peakRss: r.peakRss,
    write: out.timings.write,
    timings: out.timings,
    plotted: report.projection.downstream.length,
    loadBefore: load,
    loadAfter: loadavg()[0],
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, totalmem: totalmem(), node: process.version },
  };
  results.push(res);
  writeFileSync(outFile, `${JSON.stringify(results, null, 1)}\n`);
  console.log(
    `${label}, dim ${dim}: ${res.wall.toFixed(1)} s, write ${res.write.toFixed(1)} s, peak RSS ${(res.peakRss / 2 ** 20).toFixed(0)} MiB (budget ${budget}), map ${res.plotted} records`,
  );
  rmSync(work, { recursive: true, force: true });
}
