#!/usr/bin/env node
// Scale of sharded purification (`sot purify --shards`), by command, not in CI:
//
//     npm run build && node bench/fit-scale.mjs [--size 10000000] [--shards 8] [--workers 2]
//          [--sample 100000] [--budget 8GB] [--dir /tmp/sot-scale] [--out FILE]
//          [--redis-workers 1,2,4] [--refit N|auto]
//
// With --redis-workers, the same job once per listed count of `sot
// shard-worker` processes through a Redis (redis-server started here, on a
// loopback port, per run) instead of local worker processes; --workers is
// then unused, and the peak resident set is the coordinator's (the fit).
//
// Makes the dataset like the scale benchmark (bench/scale/make-data.mjs: the
// same config, seed and files), then runs the CLI under /usr/bin/time and
// records wall time, records/s, the peak resident set of the largest process
// (coordinator or worker: wait4's ru_maxrss covers the waited-for children),
// harmful recall of the injected records, the report's stage timings and
// refit error, and /proc/loadavg before and after.
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { args, opt } from './args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const size = Number(opt('size', '10000000'));
const shards = opt('shards', '8');
const workers = opt('workers', '2');
const sample = opt('sample', '100000');
const budget = opt('budget', '8GB');
const refit = opt('refit'); // passes of the refit; default purify's
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
const cli = join(root, 'dist', 'cli.js');

/** One run of the job: `purify --shards` (extra: the flags that place the shards), timed. */
async function runJob(extra, label) {
  const before = loadavg();
  const t0 = performance.now();
  const run = spawnSync(
    '/usr/bin/time',
    [
      '-f',
      '%e %M %U %S',
      process.execPath,
      cli,
      'purify',
      train,
      '--harmful',
      join(dir, 'harmful.jsonl'),
      '--anchor',
      join(dir, 'anchor.jsonl'),
      '--shards',
      shards,
      ...extra,
      ...(refit === undefined ? [] : ['--refit', refit]),
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
  const [, peakKiB, userS, sysS] = run.stderr.trim().split('\n').pop().split(' ').map(Number);
  const injected = new Set(JSON.parse(readFileSync(join(dir, `injected-${size}.json`), 'utf8')));
  // harmful recall: injected records among the kept (the scores file's kept column, by record index),
  // read line by line: at 10M records the file is past the longest string V8 makes
  let kept = 0;
  let header = true;
  for await (const line of createInterface({
    input: createReadStream(join(dir, `train-${size}.sharded.scores.csv`)),
  })) {
    if (header) {
      header = false;
      continue;
    }
    const cols = line.split(',');
    if (cols[6] === '1' && injected.has(Number(cols[0]))) kept++;
  }
  // the run's per-stage seconds and the refit's marginal error, from the report purify wrote beside the output
  const report = JSON.parse(readFileSync(out.replace(/\.jsonl$/, '.report.json'), 'utf8'));
  const result = {
    size,
    shards: Number(shards),
    ...label,
    ...(refit === undefined ? {} : { refit: refit === 'auto' ? refit : Number(refit) }),
    sample: Number(sample),
    budget,
    cpus: cpus().length,
    wallSeconds: wall,
    recordsPerSecond: size / wall,
    // user + system CPU of the coordinator and the waited-for local workers (not Redis-run workers)
    cpuSeconds: userS + sysS,
    peakRssLargestProcessBytes: peakKiB * 1024,
    k: summary.k,
    attempts: summary.attempts,
    harmfulRecall: kept / injected.size,
    stageSeconds: report.timings,
    refitPasses: report.sharded?.refit ?? null,
    refitError: report.sharded?.refitError ?? null,
    loadBefore: before,
    loadAfter: loadavg(),
  };
  console.log(JSON.stringify(result, null, 1));
  return result;
}

const freePort = () =>
  new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

/** Waits for `pattern` on a child's stderr. */
const waitFor = (child, pattern, what) =>
  new Promise((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => reject(new Error(`${what} did not start: ${text}`)), 30_000);
    const on = (d) => {
      text += d;
      if (pattern.test(text)) clearTimeout(t), resolve();
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
  });

/** The job through Redis with `n` shard-worker processes (all started here, stopped after). */
async function runOnRedis(n) {
  const port = await freePort();
  const redisDir = mkdtempSync(join(tmpdir(), 'sot-bench-redis-'));
  const work = mkdtempSync(join(tmpdir(), 'sot-bench-work-'));
  const redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  const workers = [];
  try {
    await waitFor(redis, /Ready to accept connections/, 'redis-server');
    for (let i = 0; i < n; i++) {
      const w = spawn(process.execPath, [cli, 'shard-worker', '--redis', url], { stdio: ['ignore', 'ignore', 'pipe'] });
      workers.push(w);
      await waitFor(w, /waiting for shards/, 'sot shard-worker');
    }
    // spawnSync would block this loop, which drains the workers' stderr: run the job in a child of its own
    return await new Promise((resolve, reject) => {
      const job = spawn(
        process.execPath,
        [fileURLToPath(import.meta.url), ...args, '--redis-url', url, '--work-dir', work, '--label-workers', String(n)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let text = '';
      job.stdout.on('data', (d) => (text += d));
      job.on('close', (code) =>
        code === 0 ? resolve(JSON.parse(text.slice(text.indexOf('{')))) : reject(new Error(`job failed (${code})`)),
      );
    });
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    redis.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
    rmSync(redisDir, { recursive: true, force: true });
  }
}

const redisUrl = opt('redis-url');
const redisWorkers = opt('redis-workers');
if (redisUrl !== undefined) {
  // a run of runOnRedis: one job against the given Redis
  await runJob(['--redis', redisUrl, '--work-dir', opt('work-dir')], { redisWorkers: Number(opt('label-workers')) });
  process.exit(0);
}
const results = [];
if (redisWorkers !== undefined) {
  for (const n of redisWorkers.split(',').map(Number)) results.push(await runOnRedis(n));
} else {
  results.push(await runJob(['--workers', workers], { workers: Number(workers) }));
}
const result = results.length === 1 ? results[0] : results;
const file = opt(
  'out',
  join(
    here,
    'results',
    `fit-scale-${size}${redisWorkers ? '-redis' : ''}-${new Date().toISOString().slice(0, 10)}.json`,
  ),
);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, JSON.stringify(result, null, 1));
