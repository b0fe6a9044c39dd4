#!/usr/bin/env node
// Quality against speed of the sentence encoder's token limit: harmful
// recall@K of SOT (and nearest-harmful) on the development tasks of
// bench/quality, with all-MiniLM-L6-v2 int8 truncating at 64, 128 and 256
// tokens. A small subset of bench/quality (its eval.mjs and config, a smaller
// downstream, the main cell only) to keep it affordable; speed comes from
// bench/embed-throughput.mjs (same texts, interleaved).
//
//   npm run build && node bench/embed-maxlength.mjs [--lengths 64,128,256] [--downstream 300]
//        [--seeds 0,1] [--tasks alpaca,gsm8k] [--out FILE]
//        [--models NAME=DIR,...]   (other model folders beside the test model, `int8`,
//                                   at each length: e.g. the fp32 and dynamic-int8
//                                   builds of bench/minilm_fp32.py)
//
// Each max length is its own cache identity (`max=` in the embedder id), so
// the runs never share vectors.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { opt } from './args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const lengths = opt('lengths', '64,128,256').split(',').map(Number);
const seeds = opt('seeds', '0,1');
const tasks = opt('tasks', 'alpaca,gsm8k');
const models = Object.fromEntries(
  opt('models', '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=')),
);
const weights = ['int8', ...Object.keys(models)];
const embedderName = (w, l) => (w === 'int8' ? `minilm-${l}` : `minilm-${w}-${l}`);
const out = resolve(opt('out', join(tmpdir(), `sot-embed-maxlength-${Date.now()}.json`)));

const cfg = JSON.parse(readFileSync(join(here, 'quality', 'config.json'), 'utf8'));
cfg.downstream = Number(opt('downstream', 300));
cfg.embedders = Object.fromEntries(
  weights.flatMap((w) =>
    lengths.map((l) => [
      embedderName(w, l),
      { type: 'transformers', options: { model: w === 'int8' ? '$TEST_MODEL' : resolve(models[w]), maxLength: l } },
    ]),
  ),
);
const dir = mkdtempSync(join(tmpdir(), 'sot-embed-maxlength-'));
const config = join(dir, 'config.json');
writeFileSync(config, JSON.stringify(cfg, null, 1));

const load0 = readFileSync('/proc/loadavg', 'utf8').trim();
const r = spawnSync(
  process.execPath,
  [
    join(here, 'quality', 'eval.mjs'),
    '--config',
    config,
    '--main-only',
    '--seeds',
    seeds,
    '--tasks',
    tasks,
    '--contaminations',
    'jbb',
    '--methods',
    'sot,nearest-harmful',
    '--embedders',
    Object.keys(cfg.embedders).join(','),
    '--out',
    out,
  ],
  { stdio: 'inherit' },
);
if (r.status !== 0) process.exit(r.status ?? 1);
const load1 = readFileSync('/proc/loadavg', 'utf8').trim();

const { results } = JSON.parse(readFileSync(out, 'utf8'));
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`\n| weights | max length | task | SOT recall@K | nearest-harmful recall@K | SOT AUROC | benign kept |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const w of weights)
  for (const l of lengths)
    for (const task of tasks.split(',')) {
      const g = (m) => results.filter((x) => x.embedder === embedderName(w, l) && x.task === task && x.method === m);
      const sot = g('sot');
      const nh = g('nearest-harmful');
      if (!sot.length) continue;
      console.log(
        `| ${w} | ${l} | ${task} | ${mean(sot.map((x) => x.recall)).toFixed(3)} | ${mean(nh.map((x) => x.recall)).toFixed(3)} | ${mean(sot.map((x) => x.auroc)).toFixed(3)} | ${mean(sot.map((x) => x.benign)).toFixed(3)} |`,
      );
    }
console.log(
  `\nseeds ${seeds}, downstream ${cfg.downstream}, 10% jbb-unsafe, 50 anchors; load ${load0} -> ${load1}; raw: ${out}`,
);
