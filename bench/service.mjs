#!/usr/bin/env node
// Throughput of the purification service on BullMQ: jobs per minute and
// records per second with 1, 2 and 4 `sot worker` processes (concurrency 1
// each) on 10k-record jobs, and the latency (submission to success) of small
// 1k-record jobs submitted while the big ones run.
//
//     npm run build && node bench/service.mjs                    # 10k-record jobs, 8 per round, workers 1,2,4
//     node bench/service.mjs --records 500 --jobs 2 --workers 1,2 --small 100 --probes 2   # smoke
//
// Needs `redis-server` on PATH (started here on a free loopback port, no
// persistence) and the data mirror (SOT_DATA_DIR). Every round has a fresh
// data root and Redis; jobs use the built-in embedder and the named set
// advbench, all from one tenant (its running limit raised to the worker
// count). Prints a table and writes bench/results/service.json (dated inside).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, sha256, Tokens } from '../dist/service/index.js';
import { opt } from './args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const records = Number(opt('records', 10_000));
const jobs = Number(opt('jobs', 8));
const workerCounts = opt('workers', '1,2,4').split(',').map(Number);
const smallRecords = Number(opt('small', 1000));
const probes = Number(opt('probes', 4));
const dataDir = process.env.SOT_DATA_DIR || resolve(root, '..', 'shared', 'data');
const outFile = opt('out', join(root, 'bench', 'results', 'service.json'));
const CLI = join(root, 'dist', 'cli.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((res, rej) => {
    const s = netServer()
      .once('error', rej)
      .listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => res(port));
      });
  });

/** Real records: alpaca-libre pairs, repeated with a suffix past the pool (distinct texts). */
function makeDataset(path, n) {
  const pool = readFileSync(join(dataDir, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.status === 'ok');
  const lines = [];
  for (let i = 0; i < n; i++) {
    const r = pool[i % pool.length];
    const round = Math.floor(i / pool.length);
    lines.push(
      JSON.stringify({
        instruction: round ? `${r.instruction} (${round})` : r.instruction,
        input: r.input,
        output: r.output,
      }),
    );
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function start(cmd, argv, ready) {
  const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((res, rej) => {
    const on = (d) => {
      out += d;
      if (ready.test(out)) res(p);
    };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
    p.once('exit', (code) => rej(new Error(`${cmd} exited (${code}):\n${out}`)));
  });
}

const stop = (p) => new Promise((res) => (p.exitCode !== null ? res() : (p.once('exit', res), p.kill('SIGTERM'))));

async function round(workers, big, small) {
  const tmp = mkdtempSync(join(tmpdir(), 'sot-bench-svc-'));
  const redisPort = await freePort();
  const redis = await start(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp],
    /Ready to accept/,
  );
  const url = `redis://127.0.0.1:${redisPort}`;
  const server = await createServer({
    dataRoot: join(tmp, 'root'),
    redis: url,
    tokens: new Tokens([{ tenant: 'bench', sha256: sha256('bench') }]),
    dataDir,
    offline: true,
    sweepMs: 3_600_000,
  });
  const base = await server.listen(0);
  const ws = await Promise.all(
    Array.from({ length: workers }, () =>
      start(
        process.execPath,
        [
          CLI,
          'worker',
          '--redis',
          url,
          '--data-root',
          join(tmp, 'root'),
          '--data-dir',
          dataDir,
          '--offline',
          '--max-running-per-tenant',
          String(workers),
        ],
        /ready/,
      ),
    ),
  );
  const auth = { authorization: 'Bearer bench' };
  const submit = async (file) => {
    const form = new FormData();
    form.append('options', JSON.stringify({ harmful: ['advbench'] }));
    form.append('dataset', new Blob([readFileSync(file)]), 'data.jsonl');
    const r = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: auth, body: form });
    if (r.status !== 202) throw new Error(`submit: ${r.status} ${await r.text()}`);
    return (await r.json()).id;
  };
  const final = async (id) => {
    for (;;) {
      const j = await (await fetch(`${base}/v1/jobs/${id}`, { headers: auth })).json();
      if (['succeeded', 'failed', 'cancelled'].includes(j.state)) {
        if (j.state !== 'succeeded') throw new Error(`job ${id} ${j.state}: ${JSON.stringify(j.error)}`);
        return j;
      }
      await sleep(50);
    }
  };

  const t0 = performance.now();
  const ids = await Promise.all(Array.from({ length: jobs }, () => submit(big)));
  // Small jobs while the big ones run: each waits behind what is queued (FIFO), as a user would.
  const latencies = [];
  const probing = (async () => {
    for (let i = 0; i < probes; i++) {
      await sleep(200);
      const s = performance.now();
      await final(await submit(small));
      latencies.push((performance.now() - s) / 1000);
    }
  })();
  await Promise.all(ids.map(final));
  const wall = (performance.now() - t0) / 1000;
  await probing;
  await Promise.all(ws.map(stop));
  await server.close(0);
  await stop(redis);
  rmSync(tmp, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    workers,
    jobs,
    records,
    wallSeconds: wall,
    jobsPerMinute: (jobs * 60) / wall,
    recordsPerSecond: (jobs * records) / wall,
    smallJob: { records: smallRecords, median: latencies[Math.floor(latencies.length / 2)], max: latencies.at(-1) },
  };
}

const data = mkdtempSync(join(tmpdir(), 'sot-bench-data-'));
const big = makeDataset(join(data, 'big.jsonl'), records);
const small = makeDataset(join(data, 'small.jsonl'), smallRecords);
const results = [];
console.log(
  `${jobs} jobs of ${records} records per round; ${probes} small jobs of ${smallRecords} records submitted during each; ${cpus().length} cores`,
);
console.log('| workers | wall s | jobs/min | records/s | small job latency median / max s |');
console.log('|---:|---:|---:|---:|---:|');
for (const w of workerCounts) {
  const r = await round(w, big, small);
  results.push(r);
  console.log(
    `| ${w} | ${r.wallSeconds.toFixed(1)} | ${r.jobsPerMinute.toFixed(1)} | ${r.recordsPerSecond.toFixed(0)} | ${r.smallJob.median?.toFixed(2)} / ${r.smallJob.max?.toFixed(2)} |`,
  );
}
rmSync(data, { recursive: true, force: true });
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(
  outFile,
  JSON.stringify({ date: new Date().toISOString(), cores: cpus().length, cpu: cpus()[0]?.model, results }, null, 1) +
    '\n',
);
console.log(`wrote ${outFile}`);
