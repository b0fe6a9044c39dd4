#!/usr/bin/env node
// Parquet shards by row group vs by record index, by command, not in CI:
//
//     npm run build && node bench/parquet-shards.mjs [--size 200000] [--group 5000]
//          [--shards 8,16] [--repeat 3] [--baseline /path/to/main/dist/cli.js] [--job-shards 8,16]
//
// Writes a Parquet file of `size` records (the clean alpaca-libre rows of
// the shared data, repeated, with an id) in row groups of `group` rows, with
// the project's test writer (hyparquet-writer), in a fresh temp folder.
// Then, per shard count, reads every shard of the file one after the other,
// (a) by row group: `openDataset(path, { range, layout })` over the runs of
// `rowGroupRanges`, and (b) by record index, as the record-index shards read:
// the file from its head up to the shard's end; interleaved, `repeat` times,
// the median. With --baseline (a build of the CLI that shards Parquet by
// record index), also the whole `sot purify --shards` job with each CLI,
// side by side. Prints a table and /proc/loadavg with each figure.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parquetWriteFile } from 'hyparquet-writer';
import { opt } from './args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const { openDataset, rowGroupRanges } = await import(join(root, 'dist', 'index.js'));
const size = Number(opt('size', '200000'));
const group = Number(opt('group', '5000'));
const counts = opt('shards', '8,16').split(',').filter(Boolean).map(Number); // '' for none
const repeat = Number(opt('repeat', '3'));
const baseline = opt('baseline');
const jobShards = opt('job-shards', '8,16');
const data = process.env.SOT_DATA_DIR || resolve(root, '..', 'shared', 'data');
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const clean = readFileSync(join(data, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l))
  .filter((r) => r.status === 'ok');
const dir = mkdtempSync(join(tmpdir(), 'sot-parquet-bench-'));
const file = join(dir, `train-${size}.parquet`);
const cols = ['instruction', 'input', 'output'];
parquetWriteFile({
  filename: file,
  columnData: [
    { name: 'id', data: Int32Array.from({ length: size }, (_, i) => i), type: 'INT32' },
    ...cols.map((k) => ({
      name: k,
      data: Array.from({ length: size }, (_, i) => clean[i % clean.length][k]),
      type: 'STRING',
    })),
  ],
  rowGroupSize: group,
});
const groups = Math.ceil(size / group);
console.log(`# ${size} records in ${groups} row groups of ${group} (${file}); load ${loadavg()}`);

const { layout } = await openDataset(file);

/** Every shard read one after the other: by its row groups. */
async function byRowGroup(n) {
  const t = performance.now();
  let rows = 0;
  for (const range of await rowGroupRanges(file, n))
    for await (const _ of await openDataset(file, { range, layout })) rows++;
  return { s: (performance.now() - t) / 1000, rows };
}

/** Every shard read one after the other: from the file's head to its end (as a record-index shard reads). */
async function byIndex(n) {
  const t = performance.now();
  let rows = 0;
  for (let s = 0; s < n; s++) {
    const [from, to] = [Math.floor((s * size) / n), Math.floor(((s + 1) * size) / n)];
    let i = 0;
    for await (const _ of await openDataset(file)) {
      if (i >= from) rows++;
      if (++i >= to) break;
    }
  }
  return { s: (performance.now() - t) / 1000, rows };
}

await byRowGroup(1); // warm up: the whole file once
const rowsOut = [];
for (const n of counts) {
  const a = [];
  const b = [];
  const loads = [];
  for (let r = 0; r < repeat; r++) {
    const x = await byRowGroup(n);
    const y = await byIndex(n);
    if (x.rows !== size || y.rows !== size) throw new Error(`read ${x.rows} / ${y.rows} of ${size} records`);
    a.push(x.s);
    b.push(y.s);
    loads.push(loadavg());
  }
  const runs = (await rowGroupRanges(file, n)).map((r) => r.rows);
  rowsOut.push(
    `| read all ${n} shards | ${runs.length} runs of ${Math.min(...runs)}-${Math.max(...runs)} rows | ${median(a).toFixed(2)} s | ${median(b).toFixed(2)} s | ${(median(b) / median(a)).toFixed(1)}x | ${loads.join('; ')} |`,
  );
  console.log(rowsOut.at(-1));
}

if (baseline) {
  const job = (cli, name, shards) => {
    const load = loadavg();
    const t = performance.now();
    const out = join(dir, `${name}-${shards}`);
    const r = spawnSync(
      process.execPath,
      [
        cli,
        'purify',
        file,
        '--harmful',
        'advbench',
        '--shards',
        shards,
        '--workers',
        '2',
        '--keep',
        '0.9',
        '--no-cache',
        '--no-html',
        '-o',
        `${out}.parquet`,
        '--scores',
        `${out}.csv`,
        '--report',
        `${out}.json`,
      ],
      { encoding: 'utf8', maxBuffer: 1 << 26 },
    );
    if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`);
    const { timings } = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    const scores = readFileSync(`${out}.csv`, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[2]));
    return { s: (performance.now() - t) / 1000, timings, scores, load: `${load} -> ${loadavg()}` };
  };
  const mine = join(root, 'dist', 'cli.js');
  for (const [i, shards] of jobShards.split(',').entries()) {
    // the order alternates, so that neither build always runs on the warmer machine
    const a = () => job(mine, 'row-group', shards);
    const b = () => job(resolve(baseline), 'record-index', shards);
    let x;
    let y;
    if (i % 2 === 0) {
      x = a();
      y = b();
    } else {
      y = b();
      x = a();
    }
    const stages = (v) => `refit ${v.timings.refit.toFixed(1)} s, score ${v.timings.score.toFixed(1)} s`;
    rowsOut.push(
      `| \`purify --shards ${shards} --workers 2\` | whole job (${stages(x)} / ${stages(y)}) | ${x.s.toFixed(1)} s | ${y.s.toFixed(1)} s | ${(y.s / x.s).toFixed(2)}x | ${x.load}; ${y.load} |`,
    );
    console.log(rowsOut.at(-1));
    const diff = x.scores.reduce((m, v, k) => Math.max(m, Math.abs(v - y.scores[k])), 0);
    console.log(`# ${shards} shards: ${x.scores.length} / ${y.scores.length} scores, largest difference ${diff}`);
  }
}
console.log(
  '\n| what | split | by row group | by record index | ratio | load (1/5/15 min) |\n|---|---|---|---|---|---|',
);
for (const r of rowsOut) console.log(r);
rmSync(dir, { recursive: true, force: true });
