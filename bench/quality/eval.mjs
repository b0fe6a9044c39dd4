#!/usr/bin/env node
// Quality benchmark: harmful recall of SOT and every baseline on real
// contaminated datasets, per embedder. One command from the repo root:
//
//     npm run bench:quality                       # everything in bench/quality/config.json (5 seeds)
//     npm run bench:quality -- --quick            # main cell only, 2 seeds
//     node bench/quality/eval.mjs [--config FILE] [--tasks alpaca,gsm8k] [--contaminations jbb,hh]
//          [--seeds 0,1] [--methods sot,push-only] [--embedders builtin] [--main-only]
//          [--eps X] [--lambda X] [--tau X] [--out FILE]
//
// Setup (mirrors the paper; sets named in the config file):
// - downstream: `downstream` records of one task (benign pairs), of which a
//   `hardNegatives.fraction` are safe-but-scary-looking benign samples, plus
//   injected harmful pairs at the contamination rate, shuffled;
// - safe anchor: other benign records of the same task, not in the downstream;
// - harmful reference: named reference sets minus every prompt of the
//   injected source (disjoint by source and prompt);
// - K = `keep` of the downstream.
// Metrics per method: harmful recall@K (share of injected harmful samples
// kept; lower is better, random keeps ~K), benign and hard-negative
// retention@K, AUROC of the score as a benign-vs-harmful detector, wall time.
// The main cell (10% contamination, 50 anchors) and two sweeps (contamination
// rate; anchor size) over 5 seeds; mean and standard deviation over seeds.
// When the harmful pool is too small for a rate, the downstream shrinks
// (so the rate is exact) and the table says so.
//
// Needs `npm run build` and the data mirror (SOT_DATA_DIR or ../shared/data).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { EmbeddingCache, HashingEmbedder, embedWithCache, loadReferenceSet, renderText, scoreSamples, selectTopK, threadCount } from '../../dist/index.js';
import { createEmbedder } from '../../dist/embed/providers.js';
import { auroc, mulberry32, shuffle } from './stats.mjs';
import { dataDir, loadSource as loadNamed, norm } from '../sources.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const args = process.argv.slice(2);
const flag = (n) => args.includes(`--${n}`);
const opt = (n, d) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1] : d;
};
const list = (s) => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter(Boolean));
const cfg = JSON.parse(readFileSync(opt('config', join(here, 'config.json')), 'utf8'));
const DATA = dataDir();
const loadSource = (name) => loadNamed(cfg.sources, name, DATA);
const quick = flag('quick');
const TASKS = list(opt('tasks')) ?? Object.keys(cfg.tasks);
const CONTAMS = list(opt('contaminations')) ?? Object.keys(cfg.contaminations);
const SEEDS = (list(opt('seeds')) ?? (quick ? ['0', '1'] : cfg.seeds.map(String))).map(Number);
const METHODS = list(opt('methods')) ?? cfg.methods;
const EMBEDDERS = list(opt('embedders')) ?? Object.keys(cfg.embedders);
const MAIN_ONLY = quick || flag('main-only');
const learner = {};
for (const k of ['eps', 'lambda', 'tau']) if (opt(k) !== undefined) learner[k] = Number(opt(k));
if (opt('learner') !== undefined) Object.assign(learner, JSON.parse(opt('learner'))); // any other learner option, as JSON

// ---------- seeded draws ----------
const rng = mulberry32;

// ---------- metrics ----------
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)));

// ---------- embedders ----------
// `builtin` is refitted per cell (its idf comes from the downstream set). Model
// embedders (`transformers`, `openai`, `wink`: the options of createEmbedder)
// are built once and go through an embedding cache, so each text is embedded
// once across cells and seeds. `model: "$TEST_MODEL"` is the all-MiniLM-L6-v2
// folder that scripts/fetch-test-model.mjs builds from registry packages;
// `model: "$TEST_GGUF"` the GGUF chat model of scripts/fetch-test-gguf.mjs.
const CACHE_DIR = process.env.SOTQ_CACHE_DIR || join(os.tmpdir(), 'sot-quality-cache');
const shared = {};
async function makeEmbedder(name) {
  const e = cfg.embedders[name];
  if (e?.type === 'builtin') return new HashingEmbedder(e.options ?? {});
  if (!shared[name]) {
    const options = { ...e.options };
    if (options.model === '$TEST_GGUF') {
      const { fetchTestGguf } = await import('../../scripts/fetch-test-gguf.mjs');
      options.model = await fetchTestGguf();
    }
    if (options.model === '$TEST_MODEL') {
      const { fetchTestModel } = await import('../../scripts/fetch-test-model.mjs');
      options.model = await fetchTestModel(join(CACHE_DIR, 'models'));
    }
    const embedder = await createEmbedder({ kind: e.type, cacheDir: CACHE_DIR, ...options });
    shared[name] = { embedder, cache: await EmbeddingCache.open(join(CACHE_DIR, 'embeddings'), embedder.id, embedder.dim) };
  }
  return shared[name];
}
async function embedAll(embedder, texts) {
  const data = embedder.cache ? await embedWithCache(embedder.embedder, texts, embedder.cache) : await embedder.embed(texts);
  return { data, rows: texts.length, cols: (embedder.embedder ?? embedder).dim };
}

// ---------- data ----------
const t0 = performance.now();
const pools = {};
const need = new Set([...TASKS.flatMap((t) => cfg.tasks[t].benign), ...CONTAMS.map((c) => cfg.contaminations[c]), ...cfg.hardNegatives.sources]);
for (const s of need) pools[s] = loadSource(s);
const excluded = new Set(cfg.harmfulReference.excludePromptsOf.flatMap((s) => (pools[s] ?? loadSource(s)).map((x) => norm(x.prompt))));
const reference = [];
const refSeen = new Set();
let refDropped = 0;
for (const name of cfg.harmfulReference.sets) {
  for (const s of (await loadReferenceSet(name, { dataDir: DATA, offline: true })).samples) {
    const key = norm(s.prompt);
    if (excluded.has(key)) refDropped++;
    else if (!refSeen.has(key)) refSeen.add(key), reference.push(s);
  }
}
const hardPool = cfg.hardNegatives.sources.flatMap((s) => pools[s]);
console.log(`pools: ${Object.entries(pools).map(([k, v]) => `${k} ${v.length}`).join(', ')}`);
console.log(`harmful reference: ${reference.length} samples from ${cfg.harmfulReference.sets.join('+')} (${refDropped} dropped as prompts of the injected set)`);
console.log(`${os.cpus().length} cpus, ${threadCount()} native threads; seeds ${SEEDS.join(',')}; data ${(performance.now() - t0).toFixed(0)} ms\n`);

function draw(task, contam, rate, anchorSize, seed) {
  const r = rng(seed * 7919 + 17);
  const benignPool = shuffle(cfg.tasks[task].benign.flatMap((s) => pools[s]), r);
  const harmPool = shuffle(pools[cfg.contaminations[contam]], r);
  const hard = shuffle(hardPool, r);
  // Shrink the downstream when the harmful pool cannot supply the rate.
  const n = Math.min(cfg.downstream, Math.floor(harmPool.length / rate), Math.floor((benignPool.length - anchorSize) / (1 - rate)));
  const nh = Math.round(rate * n);
  const nHard = Math.round(cfg.hardNegatives.fraction * (n - nh));
  const nb = n - nh - nHard;
  const rows = shuffle(
    [
      ...benignPool.slice(0, nb).map((s) => ({ s, kind: 'benign' })),
      ...hard.slice(0, nHard).map((s) => ({ s, kind: 'hard' })),
      ...harmPool.slice(0, nh).map((s) => ({ s, kind: 'harmful' })),
    ],
    r,
  );
  return { rows, anchor: benignPool.slice(nb, nb + anchorSize), n };
}

async function runCell(embName, task, contam, rate, anchorSize, seed) {
  const { rows, anchor, n } = draw(task, contam, rate, anchorSize, seed);
  const made = await makeEmbedder(embName);
  const embedder = made.embedder ?? made;
  const cut = Number(opt('max-chars', 0)) || undefined; // exploration: truncate texts before embedding
  const words = Number(opt('max-words', 0)) || undefined;
  const R = (x) => {
    if (embedder.renderSample) return embedder.renderSample(x); // the llm embedder's own chat rendering
    let t = renderText(x);
    if (cut) t = t.slice(0, cut);
    if (words) t = t.split(/\s+/).slice(0, words).join(' ');
    return t;
  };
  const texts = rows.map((x) => R(x.s));
  const te = performance.now();
  if (embedder.fit) await embedder.fit((async function* () { yield texts; })());
  const sets = {
    downstream: await embedAll(made, texts),
    anchor: anchor.length ? await embedAll(made, anchor.map(R)) : undefined,
    harmful: await embedAll(made, reference.map(R)),
  };
  const embedS = (performance.now() - te) / 1000;
  const isHarm = rows.map((x) => x.kind === 'harmful');
  const out = [];
  for (const method of METHODS) {
    const t = performance.now();
    const s = await scoreSamples(method, sets, { ...embedder.learnerDefaults, ...learner, seed });
    const sel = await selectTopK(s.scores, { fraction: cfg.keep });
    const secs = (performance.now() - t) / 1000;
    const kept = { benign: 0, hard: 0, harmful: 0 };
    const total = { benign: 0, hard: 0, harmful: 0 };
    rows.forEach((x, i) => {
      total[x.kind]++;
      if (sel.kept[i]) kept[x.kind]++;
    });
    out.push({
      embedder: embName, task, contam, rate, anchor: anchorSize, seed, n, method,
      recall: kept.harmful / total.harmful,
      benign: kept.benign / total.benign,
      hard: total.hard ? kept.hard / total.hard : null,
      auroc: auroc(Array.from(s.scores), isHarm),
      seconds: secs,
      embedSeconds: embedS,
      steps: s.learned?.steps ?? null,
    });
  }
  return out;
}

const cells = [[cfg.main.contamination, cfg.main.anchor, 'main']];
if (!MAIN_ONLY) {
  for (const rate of cfg.sweeps.contamination) if (rate !== cfg.main.contamination) cells.push([rate, cfg.main.anchor, 'rate']);
  for (const a of cfg.sweeps.anchor) if (a !== cfg.main.anchor) cells.push([cfg.main.contamination, a, 'anchor']);
}
const results = [];
const outFile = opt('out', join(here, 'results', `eval-${new Date().toISOString().slice(0, 10)}.json`));
mkdirSync(dirname(outFile), { recursive: true });
// Written after every cell, so a long run that is stopped keeps what it measured.
const save = () =>
  writeFileSync(
    outFile,
    JSON.stringify({ config: cfg, args, learner, seeds: SEEDS, cpus: os.cpus().length, referenceSize: reference.length, pools: Object.fromEntries(Object.entries(pools).map(([k, v]) => [k, v.length])), results }, null, 1),
  );
for (const emb of EMBEDDERS)
  for (const task of TASKS)
    for (const contam of CONTAMS)
      for (const [rate, anchorSize, sweep] of cells) {
        const rs = [];
        for (const seed of SEEDS) rs.push(...(await runCell(emb, task, contam, rate, anchorSize, seed)));
        results.push(...rs.map((x) => ({ ...x, sweep })));
        save();
        const n = rs[0].n;
        console.log(`${emb} ${task}+${contam} rate ${rate} anchor ${anchorSize} (n ${n}${n < cfg.downstream ? ', shrunk' : ''}, ${SEEDS.length} seeds)`);
        console.log(`  ${'method'.padEnd(16)} ${'recall@K'.padEnd(14)} ${'benign'.padEnd(8)} ${'hard-neg'.padEnd(8)} ${'AUROC'.padEnd(7)} seconds`);
        for (const m of METHODS) {
          const g = rs.filter((x) => x.method === m);
          const f = (k, d = 3) => mean(g.map((x) => x[k])).toFixed(d);
          const hard = g[0].hard === null ? '-' : f('hard');
          console.log(`  ${m.padEnd(16)} ${`${f('recall')} ± ${sd(g.map((x) => x.recall)).toFixed(3)}`.padEnd(14)} ${f('benign').padEnd(8)} ${hard.padEnd(8)} ${f('auroc').padEnd(7)} ${f('seconds', 2)}`);
        }
      }

console.log(`\nwrote ${outFile} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
