#!/usr/bin/env node
// Scale of sharded purification (`sot purify --shards`), by command, not in CI:
//
//     npm run build && node bench/fit-scale.mjs [--size 10000000] [--shards 8] [--workers 2]
//          [--sample 100000] [--budget 8GB] [--dir /tmp/sot-scale] [--out FILE]
//
// Makes the dataset like the scale benchmark (bench/scale/make-data.mjs: the
// same config, seed and files), then runs the CLI under /usr/bin/time and
// records wall time, records/s, the peak resident set of the largest process
// (coordinator or worker: wait4's ru_maxrss covers the waited-for children),
// harmful recall of the injected records, and /proc/loadavg before and after.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1] : d);
const size = Number(opt('size', '10000000'));
const shards = opt('shards', '8');
const workers = opt('workers', '2');
const sample = opt('sample', '100000');
const budget = opt('budget', '8GB');
const dir = opt('dir', process.env.SOT_SCALE_DIR || '/tmp/sot-scale');
const cfg = JSON.parse(readFileSync(join(here, 'scale', 'config.json'), 'utf8'));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');

const train = join(dir, `train-${size}.jsonl`);
if (!existsSync(train)) {
  const made = spawnSync(
    process.execPath,
    [join(here, 'scale', 'make-data.mjs'), '--out', dir, '--sizes', String(size)],
    { stdio: 'inherit' },
  );
  if (made.status !== 0) process.exit(made.status ?? 1);
}
const out = join(dir, `train-${size}.sharded.jsonl`);
const before = loadavg();
const t0 = performance.now();
const run = spawnSync(
  '/usr/bin/time',
  [
    '-f',
    '%e %M',
    process.execPath,
    join(root, 'dist', 'cli.js'),
    'purify',
    train,
    '--harmful',
    join(dir, 'harmful.jsonl'),
    '--anchor',
    join(dir, 'anchor.jsonl'),
    '--shards',
    shards,
    '--workers',
    workers,
    '--sample',
    sample,
    '--memory-budget',
    budget,
    '--keep',
    String(cfg.keep),
    '-o',
    out,
    '--scores',
    join(dir, `train-${size}.sharded.scores.csv`),
    '--no-cache',
    '--json',
  ],
  { encoding: 'utf8', maxBuffer: 1 << 26 },
);
const wall = (performance.now() - t0) / 1000;
if (run.status !== 0) {
  process.stderr.write(run.stdout + run.stderr);
  process.exit(run.status ?? 1);
}
const summary = JSON.parse(run.stdout.trim().split('\n').pop());
const [, peakKiB] = run.stderr.trim().split('\n').pop().split(' ').map(Number);
const injected = new Set(JSON.parse(readFileSync(join(dir, `injected-${size}.json`), 'utf8')));
// harmful recall: injected records among the kept (the scores file's kept column, by record index)
let kept = 0;
const csv = readFileSync(join(dir, `train-${size}.sharded.scores.csv`), 'utf8');
let at = csv.indexOf('\n') + 1;
while (at > 0 && at < csv.length) {
  const end = csv.indexOf('\n', at);
  const line = csv.slice(at, end < 0 ? csv.length : end);
  const comma = line.indexOf(',');
  const idx = Number(line.slice(0, comma));
  if (injected.has(idx) && line.split(',')[6] === '1') kept++;
  at = end < 0 ? -1 : end + 1;
}
const result = {
  size,
  shards: Number(shards),
  workers: Number(workers),
  sample: Number(sample),
  budget,
  cpus: cpus().length,
  wallSeconds: wall,
  recordsPerSecond: size / wall,
  peakRssLargestProcessBytes: peakKiB * 1024,
  k: summary.k,
  attempts: summary.attempts,
  harmfulRecall: kept / injected.size,
  loadBefore: before,
  loadAfter: loadavg(),
};
console.log(JSON.stringify(result, null, 1));
const file = opt('out', join(here, 'results', `fit-scale-${size}-${new Date().toISOString().slice(0, 10)}.json`));
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, JSON.stringify(result, null, 1));
