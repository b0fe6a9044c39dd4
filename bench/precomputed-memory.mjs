#!/usr/bin/env node
// Peak memory of `sot purify` on precomputed vectors (--vectors-npy) against
// the size of the vectors themselves: the .npy is streamed into native rows
// that the learner shares, so the vectors should be held about once.
//
//     npm run build && node bench/precomputed-memory.mjs                 # 300,000 x 768
//     node bench/precomputed-memory.mjs --n 100000 --dim 384 --harmful 2000 --budget 8GB
//     node bench/precomputed-memory.mjs --cli /tmp/old/dist/cli.js       # another build, same files
//
// The vectors are seeded random unit vectors (what is measured is memory and
// time, not what is kept): records "record i" with vectors.npy row i, a
// harmful reference and an anchor with .npy files of the same stem. Each run
// is a fresh process timed by GNU time (maximum resident set). Results are
// appended to bench/results/precomputed-memory.json (--out to change).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNpy } from '../dist/npy.js';
import { opt } from './args.mjs';
import { runNode } from './timed.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const n = Number(opt('n', 300000));
const dim = Number(opt('dim', 768));
const harmfulN = Number(opt('harmful', 2000));
const anchorN = 50;
const budget = opt('budget', '8GB');
const cli = resolve(opt('cli', join(root, 'dist', 'cli.js')));
const label = opt('label', cli === join(root, 'dist', 'cli.js') ? 'this build' : cli);
const outFile = opt('out', join(root, 'bench', 'results', 'precomputed-memory.json'));
const dir = opt('data', join(tmpdir(), `sot-precomputed-${n}x${dim}`));

/** Seeded unit vectors (xorshift32 + Box-Muller), `rows x dim` float32. */
function unitVectors(rows, seed) {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let norm = 0;
    for (let j = 0; j < dim; j++) {
      const g = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
      out[i * dim + j] = g;
      norm += g * g;
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < dim; j++) out[i * dim + j] /= norm;
  }
  return out;
}

async function makeSet(name, rows, seed) {
  const jsonl = join(dir, `${name}.jsonl`);
  const npy = join(dir, `${name}.npy`);
  if (!existsSync(npy)) {
    const lines = [];
    for (let i = 0; i < rows; i++) lines.push(JSON.stringify({ text: `${name} record ${i}` }));
    writeFileSync(jsonl, `${lines.join('\n')}\n`);
    await writeNpy(npy, unitVectors(rows, seed), rows, dim);
  }
  return { jsonl, npy };
}

mkdirSync(dir, { recursive: true });
console.log(`data in ${dir} ...`);
const train = await makeSet('train', n, 1);
const harmful = await makeSet('harmful', harmfulN, 2);
const anchor = await makeSet('anchor', anchorN, 3);
const vectorBytes = n * dim * 4;

const argv = [
  cli,
  'purify',
  train.jsonl,
  '--vectors-npy',
  train.npy,
  '--harmful',
  harmful.jsonl,
  '--anchor',
  anchor.jsonl,
  '-o',
  join(dir, 'out.jsonl'),
  '--no-html',
  '--memory-budget',
  budget,
  '--json',
];
console.log(
  `${label}: purify ${n} x ${dim} precomputed vectors (${(vectorBytes / 2 ** 30).toFixed(2)} GiB), budget ${budget} ...`,
);
const r = runNode(argv, { env: { ...process.env, SOT_CACHE_DIR: join(dir, 'cache'), SOT_OFFLINE: '1' } });
if (r.status !== 0 || r.peakRss === null) {
  console.log(r.stdout, r.stderr.slice(-3000));
  process.exit(1);
}
const out = JSON.parse(r.stdout.trim().split('\n').pop());
const peak = r.peakRss;
const res = {
  date: new Date().toISOString().slice(0, 10),
  build: label,
  n,
  dim,
  harmful: harmfulN,
  anchor: anchorN,
  budget,
  vectorBytes,
  wall: r.wall,
  peakRss: peak,
  peakOverVectors: peak / vectorBytes,
  timings: out.timings,
  storage: out.learner?.storage,
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, totalmem: totalmem(), node: process.version },
};
console.log(
  `  ${res.wall.toFixed(1)} s, peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB = ${res.peakOverVectors.toFixed(2)} x the vectors; stages ${Object.entries(
    out.timings,
  )
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ')}`,
);
const all = existsSync(outFile) ? JSON.parse(readFileSync(outFile, 'utf8')) : [];
all.push(res);
writeFileSync(outFile, `${JSON.stringify(all, null, 1)}\n`);
