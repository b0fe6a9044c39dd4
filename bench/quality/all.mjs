#!/usr/bin/env node
// `npm run bench:quality`: with no arguments, the runs behind BENCHMARKS.md's
// "Quality II" tables, each into its results file, then the tables
// (`npm run bench:quality:tables`). Hours on 2 cores: the llm embedder reads
// ~4 records/s on one thread. With arguments, one eval.mjs run with them
// (`npm run bench:quality -- --quick`, `-- --embedders builtin --tasks alpaca`).
//
// Needs `npm run build` and the data mirror (SOT_DATA_DIR or ../shared/data).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const results = join(here, 'results');
const args = process.argv.slice(2);

const BASELINES = 'push-only,pull-only,nearest-harmful,saft,random';
// [embedder, extra arguments, results file]: the files `bench:quality:tables` reads, in its order
const RUNS = [
  ['builtin', [], 'quality2-builtin.json'],
  ['minilm', ['--methods', BASELINES], 'quality2-minilm-baselines.json'],
  ['minilm', ['--methods', 'sot'], 'quality2-minilm-sot.json'],
  ['llm', ['--tasks', 'physical,heldout-malicious,heldout-identity'], 'quality2-llm-a.json'],
  ['llm', ['--tasks', 'alpaca'], 'quality2-llm-b.json'],
  ['llm-qwen', ['--tasks', 'physical,heldout-malicious,heldout-identity'], 'quality2-llm-qwen.json'],
];

function node(script, argv) {
  const r = spawnSync(process.execPath, [join(here, script), ...argv], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (args.length) node('eval.mjs', args);
else {
  for (const [embedder, extra, file] of RUNS) {
    const out = join(results, file);
    process.stderr.write(`bench:quality: ${embedder} ${extra.join(' ')} -> ${out}\n`);
    node('eval.mjs', ['--embedders', embedder, '--rates-only', ...extra, '--out', out]);
  }
  node(
    'table2.mjs',
    RUNS.map(([, , file]) => join(results, file)),
  );
}
