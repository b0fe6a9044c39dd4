#!/usr/bin/env node
// Sentence-encoder throughput: SOT's embedding pipeline against main's (before
// issue 18) and against Python onnxruntime on the same ONNX file, the same
// alpaca-libre records and the same options; plus 1/2/4 encoder workers,
// shorter token limits, and a load test (two single-thread busy loops).
// Each figure comes from a fresh child process (model loaded and warmed up on
// 32 texts before the clock starts); the variants run interleaved, round
// after round, and each records /proc/loadavg before and after.
//
//   npm run build && node bench/embed-throughput.mjs [--records 2000] [--rounds 1]
//        [--variants main,sot,max256,max128,max64,w1t1,w2t1,w4t1,py-sorted,py-ordered,load-sot,load-main]
// (sot: the defaults; max256 and w*t1: the model's own 256-token limit, as main and Python)
//        [--main-dist /path/to/main/dist] [--python /path/to/venv/bin/python] [--out FILE]
//        [--models NAME=DIR,...]   (a variant NAME each: the defaults on another model
//                                   folder, e.g. the fp32 and dynamic-int8 builds of
//                                   bench/minilm_fp32.py; the test model is `sot`)
//
// main: without --main-dist, the loop main (abf2a8d) ran, copied here: the
// transformers.js feature-extraction pipeline with no session options, fed
// batches of 32 texts in input order. With it, main's own TransformersEmbedder.
// Python: a scratch venv with `pip install onnxruntime==1.21.0 tokenizers==0.21.1
// numpy==2.2.6` (onnxruntime 1.21.0 is what transformers.js 3.8.1 runs).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { args, opt } from './args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const cores = availableParallelism();

/** SOT variants: TransformersEmbedder options. */
// Main and Python truncate at the model's limit (256): compare them with max256.
const SOT = {
  sot: {},
  max256: { maxLength: 256 },
  max128: { maxLength: 128 },
  max64: { maxLength: 64 },
  w1t1: { maxLength: 256, workers: 1, threads: 1 },
  w2t1: { maxLength: 256, workers: 2, threads: 1 },
  w4t1: { maxLength: 256, workers: 4, threads: 1 },
  'load-sot': {},
};

// ---------- child: time one variant ----------
if (args[0] === '--child') {
  const [, variant, model, textsFile, mainDist] = args;
  const texts = JSON.parse(readFileSync(textsFile, 'utf8'));
  let embed;
  let close = async () => {};
  if (variant === 'main' || variant === 'load-main') {
    if (mainDist) {
      const { TransformersEmbedder } = await import(pathToFileURL(join(mainDist, 'embed', 'transformers.js')).href);
      const e = await TransformersEmbedder.create({ model });
      embed = (t) => e.embed(t);
    } else {
      const tf = await import('@huggingface/transformers');
      tf.env.allowRemoteModels = false;
      tf.env.localModelPath = `${dirname(model)}/`;
      const ex = await tf.pipeline('feature-extraction', model.split('/').pop(), {
        dtype: 'fp32',
        device: 'cpu',
        local_files_only: true,
      });
      embed = async (t) => {
        const out = new Float32Array(t.length * 384);
        for (let b = 0; b < t.length; b += 32)
          out.set((await ex(t.slice(b, b + 32), { pooling: 'mean', normalize: true })).data, b * 384);
        return out;
      };
    }
  } else {
    const { TransformersEmbedder } = await import(pathToFileURL(join(root, 'dist', 'embed', 'transformers.js')).href);
    const e = await TransformersEmbedder.create({ model, ...SOT[variant] });
    embed = (t) => e.embed(t);
    close = () => e.dispose();
  }
  await embed(texts.slice(0, 32));
  const before = loadavg();
  const t0 = performance.now();
  await embed(texts);
  const seconds = (performance.now() - t0) / 1000;
  await close();
  console.log(
    JSON.stringify({ recordsPerSec: texts.length / seconds, seconds, loadBefore: before, loadAfter: loadavg() }),
  );
  process.exit(0);
}

// ---------- parent ----------
const records = Number(opt('records', 2000));
const rounds = Number(opt('rounds', 1));
/** Other model folders, each a variant with the defaults. */
const models = Object.fromEntries(
  opt('models', '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=')),
);
const variants = [
  ...opt('variants', 'main,sot,max256,max128,max64,w1t1,w2t1,w4t1,py-sorted,py-ordered,load-sot,load-main').split(','),
  ...Object.keys(models),
];
const mainDist = opt('main-dist', '');
const python = opt('python', '');
const dataDir = process.env.SOT_DATA_DIR || resolve(root, '..', 'shared', 'data');
const texts = readFileSync(join(dataDir, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l))
  .filter((r) => r.status === 'ok')
  .slice(0, records)
  .map((r) => `${r.instruction}${r.input ? `\n\n${r.input}` : ''}\n\n${r.output}`);
const dir = mkdtempSync(join(tmpdir(), 'sot-embed-bench-'));
const textsFile = join(dir, 'texts.json');
writeFileSync(textsFile, JSON.stringify(texts));
const { fetchTestModel } = await import(pathToFileURL(join(root, 'scripts', 'fetch-test-model.mjs')).href);
const model = await fetchTestModel();

/** Two single-thread busy loops (the load test); returns a stopper. */
function busyLoops() {
  const kids = [0, 1].map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  return () => kids.forEach((k) => k.kill());
}

function runOne(variant) {
  const stop = variant.startsWith('load-') ? busyLoops() : () => {};
  try {
    let r;
    if (variant.startsWith('py-')) {
      if (!python) return { skipped: 'no --python' };
      const before = loadavg();
      r = spawnSync(
        python,
        [join(here, 'embed_ort.py'), model, textsFile, '--threads', String(cores), '--mode', variant.slice(3)],
        { encoding: 'utf8' },
      );
      if (r.status === 0) {
        return { ...JSON.parse(r.stdout.trim().split('\n').pop()), loadBefore: before, loadAfter: loadavg() };
      }
    } else {
      r = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), '--child', variant, models[variant] ?? model, textsFile, mainDist],
        { encoding: 'utf8' },
      );
      if (r.status === 0) return JSON.parse(r.stdout.trim().split('\n').pop());
    }
    return { failed: (r.stderr || r.error?.message || '').slice(-500) };
  } finally {
    stop();
  }
}

const results = [];
console.log(
  `${records} alpaca-libre records, all-MiniLM-L6-v2 int8 (${model}), ${cores} cores, ${rounds} round(s); main: ${mainDist || 'copy of its loop'}`,
);
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? variants : [...variants].reverse();
  for (const v of order) {
    const r = { variant: v, round, ...runOne(v) };
    results.push(r);
    console.log(JSON.stringify(r));
  }
}
const out = opt('out', join(dir, 'results.json'));
writeFileSync(out, JSON.stringify({ records, cores, rounds, model, mainDist, results }, null, 1));

const mean = (v) => {
  const xs = results.filter((r) => r.variant === v && r.recordsPerSec).map((r) => r.recordsPerSec);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
};
const loads = (v) =>
  results
    .filter((r) => r.variant === v)
    .map((r) => r.loadBefore)
    .join('; ');
const base = mean('main');
console.log(`\n| variant | records/s | vs main | load (1/5/15 min) before each run |`);
console.log(`|---|---|---|---|`);
for (const v of variants)
  console.log(`| ${v} | ${mean(v).toFixed(1)} | ${(mean(v) / base).toFixed(2)}x | ${loads(v)} |`);
console.log(
  `\nw2t1 / w1t1: ${(mean('w2t1') / mean('w1t1')).toFixed(2)}x; w4t1 / w1t1: ${(mean('w4t1') / mean('w1t1')).toFixed(2)}x; load-sot / sot: ${(mean('load-sot') / mean('sot')).toFixed(2)}x; load-main / main: ${(mean('load-main') / base).toFixed(2)}x; max256 / main: ${(mean('max256') / base).toFixed(2)}x; max256 / py-sorted: ${(mean('max256') / mean('py-sorted')).toFixed(2)}x${Object.keys(
    models,
  )
    .map((m) => `; ${m} / sot: ${(mean(m) / mean('sot')).toFixed(2)}x`)
    .join('')}`,
);
console.log(`raw: ${out}`);
