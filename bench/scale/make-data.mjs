#!/usr/bin/env node
// Datasets of the scaling benchmark, resampled from the data mirror:
//
//     node bench/scale/make-data.mjs [--out DIR] [--sizes 10000,100000,1000000] [--config FILE]
//
// Writes into DIR (default $SOT_SCALE_DIR or /tmp/sot-scale), as JSONL of
// { prompt, response } records:
//   train-<n>.jsonl     n records: benign pairs drawn with replacement from the
//                       benign sources, `contamination` of them injected harmful
//                       pairs (drawn with replacement too), shuffled;
//   injected-<n>.json   the indices of the injected records (for harmful recall);
//   anchor.jsonl        `anchor` benign pairs (distinct, drawn first);
//   harmful.jsonl       the harmful reference: the named sets and sources of the
//                       config, deduplicated by prompt and disjoint by prompt from
//                       the injected source, cycled up to `harmful` samples.
// Files that exist with the same config and seed are kept (a stamp records them).
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadReferenceSet } from '../../dist/index.js';
import { mulberry32, shuffle } from '../quality/stats.mjs';
import { dataDir, loadSource, norm } from '../sources.mjs';
import { opt } from '../args.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** Loads the pools of a scale config: benign, injected, harmful reference and anchor. */
export async function loadPools(cfg) {
  const data = dataDir();
  const benign = cfg.benign.flatMap((s) => loadSource(cfg.sources, s, data));
  const injected = loadSource(cfg.sources, cfg.injected, data);
  const excluded = new Set(injected.map((s) => norm(s.prompt)));
  const seen = new Set();
  const pool = [];
  let dropped = 0;
  const add = (s) => {
    const key = norm(s.prompt);
    if (excluded.has(key)) dropped++;
    else if (key && !seen.has(key)) seen.add(key), pool.push({ prompt: s.prompt, response: s.response ?? '' });
  };
  for (const name of cfg.harmfulReference.sets)
    (await loadReferenceSet(name, { dataDir: data, offline: true })).samples.forEach(add);
  for (const name of cfg.harmfulReference.sources) loadSource(cfg.sources, name, data).forEach(add);
  const harmful = Array.from({ length: cfg.harmful }, (_, i) => pool[i % pool.length]);
  return { benign, injected, harmful, distinctHarmful: pool.length, droppedHarmful: dropped };
}

async function writeJsonl(path, n, recordAt) {
  const tmp = `${path}.tmp`;
  const out = createWriteStream(tmp);
  let chunk = '';
  for (let i = 0; i < n; i++) {
    chunk += `${JSON.stringify(recordAt(i))}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
  const { renameSync } = await import('node:fs');
  renameSync(tmp, path);
}

/** Writes the benchmark files for `sizes` into `dir`; returns their paths per size. */
export async function makeData(cfg, dir, sizes) {
  mkdirSync(dir, { recursive: true });
  const stampPath = join(dir, 'stamp.json');
  const stamp = JSON.stringify({ cfg, version: 1 });
  const fresh = existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp;
  const pools = await loadPools(cfg);
  const r = mulberry32(cfg.seed);
  const benign = shuffle(pools.benign, r);
  const anchor = benign.slice(0, cfg.anchor);
  const rest = benign.slice(cfg.anchor);
  const files = { anchor: join(dir, 'anchor.jsonl'), harmful: join(dir, 'harmful.jsonl'), sizes: {} };
  if (!fresh || !existsSync(files.anchor)) await writeJsonl(files.anchor, anchor.length, (i) => anchor[i]);
  if (!fresh || !existsSync(files.harmful))
    await writeJsonl(files.harmful, pools.harmful.length, (i) => pools.harmful[i]);
  for (const n of sizes) {
    const train = join(dir, `train-${n}.jsonl`);
    const truth = join(dir, `injected-${n}.json`);
    files.sizes[n] = { train, truth };
    if (fresh && existsSync(train) && existsSync(truth)) continue;
    // Each size has its own seeded stream, so adding a size changes no other file.
    const rs = mulberry32(cfg.seed * 1_000_003 + n);
    const bad = new Uint8Array(n);
    const injected = [];
    for (let i = 0; i < n; i++) if (rs() < cfg.contamination) (bad[i] = 1), injected.push(i);
    await writeJsonl(train, n, (i) => {
      const pool = bad[i] ? pools.injected : rest;
      return pool[Math.floor(rs() * pool.length)];
    });
    writeFileSync(truth, JSON.stringify(injected));
  }
  writeFileSync(stampPath, stamp);
  return {
    files,
    pools: {
      benign: pools.benign.length,
      injected: pools.injected.length,
      harmful: pools.harmful.length,
      distinctHarmful: pools.distinctHarmful,
      droppedHarmful: pools.droppedHarmful,
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const cfg = JSON.parse(readFileSync(opt('config', join(here, 'config.json')), 'utf8'));
  const sizes = (opt('sizes') ?? cfg.sizes.join(',')).split(',').map(Number);
  const dir = opt('out', process.env.SOT_SCALE_DIR || '/tmp/sot-scale');
  const t0 = performance.now();
  const { files, pools } = await makeData(cfg, dir, sizes);
  console.log(JSON.stringify({ dir, pools, files, seconds: (performance.now() - t0) / 1000 }, null, 1));
}
