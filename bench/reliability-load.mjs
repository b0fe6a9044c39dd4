// Load: 8 concurrent purify() calls in one process (from dist/index.js) against
// the same 8 run one after the other. Measures whether the results are
// identical, the event loop's delay while they run (perf_hooks
// monitorEventLoopDelay: p50/p99/max), the peak RSS, and how quickly an
// AbortSignal stops each of 8 concurrent runs (abort() -> rejection), with the
// aborts spread over the stages.
//
//   npm run build && node bench/reliability-load.mjs [--records 1500] [--runs 8]
// Writes bench/results/reliability-load-<runs>x<records>.json. The test
// __test__/reliability-load.test.ts runs the same code at a smaller size.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AbortError, purify, threadCount } from '../dist/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA_DIR = process.env.SOT_DATA_DIR || resolve(ROOT, '..', 'shared', 'data');

function shuffle(xs, seed) {
  const a = xs.slice();
  let s = seed >>> 0;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** `runs` different inputs of `records` alpaca-libre pairs with ~8% real harmful pairs, and an anchor. */
export function makeInputs(dir, runs, records) {
  const clean = readFileSync(join(DATA_DIR, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((r) => r.status === 'ok')
    .map(({ instruction, input, output }) => ({ instruction, input, output }));
  const harmful = JSON.parse(
    readFileSync(
      join(
        DATA_DIR,
        'refusal-direction/pipeline/runs/meta-llama-3-8b-instruct/completions/jailbreakbench_ablation_evaluations.json',
      ),
      'utf8',
    ),
  )
    .completions.filter((r) => r.is_jailbreak_llamaguard2 === 1)
    .map((r) => ({ instruction: r.prompt, input: '', output: r.response }));
  const anchor = join(dir, 'anchor.jsonl');
  writeFileSync(
    anchor,
    `${clean
      .slice(0, 50)
      .map((r) => JSON.stringify(r))
      .join('\n')}\n`,
  );
  const pool = clean.slice(50);
  const inputs = [];
  for (let k = 0; k < runs; k++) {
    const bad = Math.round(records * 0.08);
    const benign = Array.from({ length: records - bad }, (_, i) => {
      const r = pool[(i * 7 + k * 131) % pool.length];
      return { ...r, instruction: i >= pool.length ? `${r.instruction} (${k}.${i})` : r.instruction };
    });
    const rows = shuffle([...benign, ...shuffle(harmful, k + 1).slice(0, bad)], 100 + k).map((r, id) => ({ id, ...r }));
    const path = join(dir, `train-${k}.jsonl`);
    writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    inputs.push(path);
  }
  return { inputs, anchor };
}

const options = (input, anchor, out, cache, extra = {}) => ({
  input,
  harmful: ['advbench'],
  anchor: [anchor],
  output: join(out, 'purified.jsonl'),
  embeddingCache: cache,
  dataDir: DATA_DIR,
  offline: true,
  ...extra,
});

/** What must agree between two runs of the same input (timings and timestamps aside). */
export function fingerprint(res) {
  const files = ['dataset', 'scores'].map((k) => readFileSync(res.outputs[k], 'latin1'));
  return JSON.stringify({
    n: res.n,
    k: res.k,
    order: Array.from(res.selection.order),
    trainWeight: Array.from(res.selection.trainWeight),
    scores: Array.from(res.scores.scores),
    files,
  });
}

const pct = (h, p) => h.percentile(p) / 1e6;

/** Runs the whole measurement; returns the figures (and the fingerprints, for the test). */
export async function runLoad({ runs = 8, records = 1500, log = () => {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sot-load-'));
  try {
    const { inputs, anchor } = makeInputs(dir, runs, records);
    const out = (tag, k) => {
      const d = join(dir, `${tag}-${k}`);
      mkdirSync(d);
      return d;
    };

    // Serial, one fresh cache.
    let t0 = performance.now();
    const serial = [];
    for (let k = 0; k < runs; k++)
      serial.push(fingerprint(await purify(options(inputs[k], anchor, out('serial', k), join(dir, 'cache-serial')))));
    const serialSeconds = (performance.now() - t0) / 1000;
    log(`serial: ${runs} runs in ${serialSeconds.toFixed(2)} s`);

    // Concurrent, another fresh cache shared by all of them; event loop and RSS watched.
    const h = monitorEventLoopDelay({ resolution: 10 });
    let peakRss = process.memoryUsage.rss();
    const rssBefore = peakRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 25);
    h.enable();
    t0 = performance.now();
    const concurrentResults = await Promise.all(
      inputs.map((input, k) => purify(options(input, anchor, out('concurrent', k), join(dir, 'cache-concurrent')))),
    );
    const concurrentSeconds = (performance.now() - t0) / 1000;
    h.disable();
    clearInterval(sampler);
    const concurrent = concurrentResults.map(fingerprint);
    const identical = concurrent.map((c, k) => c === serial[k]);
    const loop = { p50: pct(h, 50), p99: pct(h, 99), max: h.max / 1e6, mean: h.mean / 1e6 };
    log(
      `concurrent: ${runs} runs in ${concurrentSeconds.toFixed(2)} s; identical to serial: ${identical.filter(Boolean).length}/${runs}; ` +
        `event-loop delay p50 ${loop.p50.toFixed(1)} ms, p99 ${loop.p99.toFixed(1)} ms, max ${loop.max.toFixed(1)} ms; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MB (before ${(rssBefore / 2 ** 20).toFixed(0)} MB)`,
    );

    // Aborts: run k aborts when its progress first reaches stage STAGES[k % 5] (uncached: a fresh cache each).
    const STAGES = ['read', 'embed', 'references', 'learn', 'write'];
    const aborts = await Promise.all(
      inputs.map(async (input, k) => {
        const ac = new AbortController();
        const stage = STAGES[k % STAGES.length];
        const o = out('abort', k);
        let abortedAt;
        const p = purify(
          options(input, anchor, o, join(dir, `cache-abort-${k}`), {
            signal: ac.signal,
            onProgress: (e) => {
              if (abortedAt === undefined && e.stage === stage) {
                abortedAt = performance.now();
                ac.abort(new Error('load test'));
              }
            },
          }),
        );
        try {
          await p;
          return { stage, rejected: false, ms: null };
        } catch (err) {
          const ms = abortedAt === undefined ? null : performance.now() - abortedAt;
          const written = [
            'purified.jsonl',
            'purified.scores.csv',
            'purified.report.json',
            'purified.report.html',
          ].filter((f) => {
            try {
              readFileSync(join(o, f));
              return true;
            } catch {
              return false;
            }
          });
          return { stage, rejected: true, abortError: err instanceof AbortError, name: err?.name, ms, written };
        }
      }),
    );
    log(
      `aborts (stage: ms abort->reject): ${aborts.map((a) => `${a.stage}: ${a.ms === null ? 'n/a' : a.ms.toFixed(0)}`).join(', ')}`,
    );

    return {
      runs,
      records,
      threads: threadCount(),
      cpus: cpus().length,
      loadavg: loadavg(),
      serialSeconds,
      concurrentSeconds,
      identical,
      eventLoopDelayMs: loop,
      peakRssMB: peakRss / 2 ** 20,
      rssBeforeMB: rssBefore / 2 ** 20,
      maxRssProcessMB: process.resourceUsage().maxRSS / 1024,
      aborts,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i < 0 ? dflt : Number(process.argv[i + 1]);
  };
  const r = await runLoad({ runs: arg('runs', 8), records: arg('records', 1500), log: (s) => console.log(s) });
  const path = join(ROOT, 'bench', 'results', `reliability-load-${r.runs}x${r.records}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, JSON.stringify({ date: new Date().toISOString(), ...r }, null, 1));
  renameSync(`${path}.tmp`, path);
  console.log(`wrote ${path}`);
}
