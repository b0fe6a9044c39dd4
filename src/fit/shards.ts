// `purify --shards N` on one machine: fit on a uniform sample, refine the
// model's reference potentials over all records (each shard sums its part of
// a column update; the parts merge exactly), score N contiguous shards in
// worker processes (a failed shard is retried alone), merge the shards'
// sorted top lists into the exact global top K (or keep every record at or
// above a threshold), and write one purified dataset, one scores file, the
// removed records with their reasons and the report, committed together.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PURIFY_DEFAULTS } from '../defaults.js';
import { InputError, OptionError, SotError } from '../errors.js';
import { HashingEmbedder } from '../embed/hashing.js';
import { assertNoCollision, RANGE_FORMATS, recordRanges, resolveFormat } from '../io/index.js';
import { cancellable } from '../cancellable.js';
import { native } from '../native.js';
import {
  auditOf,
  checkReasonOptions,
  DEFAULT_NEIGHBOURS,
  type NearestRows,
  type ReasonOptions,
} from '../pipeline/audit.js';
import { embedBatch, openEmbeddingCache } from '../pipeline/embedding.js';
import { PipelineInput } from '../pipeline/input.js';
import { learnerBudget, peakRss, resolveBudget } from '../pipeline/memory.js';
import type { PurifyOptions } from '../pipeline/options.js';
import { assembleReport, displayRows, writeOutputs } from '../pipeline/outputs.js';
import { outputPaths } from '../pipeline/paths.js';
import { autoKeepWarnings, checkOutputs } from '../pipeline/purify.js';
import type { ContaminationEstimate } from '../learner.js';
import { loadReferences } from '../pipeline/references.js';
import type { PurifyReport } from '../report/types.js';
import type { Keep, Selection } from '../selection.js';
import { fitWithPasses, type FitOptions, type FitResult } from './fit.js';
import { encodeModel, loadModel, modelEmbedder, saveModel, withRefit, type Model } from './model.js';
import { type AnyShardTask, describeShard, readColumns, readShard, type ShardResult, type ShardTask } from './shard.js';
import { shardedPasses } from './shard-fit.js';
import { refitPasses, selectScored, writeScoresCsv } from './score.js';
import { refitModel } from './scoring.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Default fit sample: every record up to this many, else this many (the fidelity measured in BENCHMARKS.md). */
export const DEFAULT_FIT_SAMPLE = 100_000;
/** Default column updates of the fitted potentials over all records (the fidelity measured in BENCHMARKS.md). */
export const DEFAULT_SHARD_REFIT = 1;

export interface ShardedOptions extends FitOptions {
  shards: number;
  /** Worker processes at once. Default: the shards, at most the cores. */
  workers?: number;
  /** Attempts after a shard's first failure. Default 2. */
  retries?: number;
  /**
   * Column updates of the fitted reference potentials over all records before
   * the scoring (each one more pass of the shards over the records). Default 1
   * when the fit sample is smaller than the records, else 0
   * (docs/model-file.md, "Refining over all records").
   */
  refit?: number;
  /**
   * Also write the final model (the fit's, refined by the refit passes; its
   * score quantiles are then those of every record) here, committed together
   * with the other outputs.
   */
  saveModel?: string;
  output?: string;
  scores?: string;
  /**
   * Records kept: a count or a fraction, or `auto`: the fit's automatic K on
   * its sample (from its contamination estimate), scaled to all records.
   */
  keep?: Keep | 'auto';
  threshold?: number;
  weightField?: string | null;
  /** JSON report. Default `<output stem>.report.json` (as `purify`). */
  report?: string;
  /** HTML page of the report; null: none. Default `<output stem>.report.html`. */
  html?: string | null;
  /** Every removed record with its score, rank, pull, push and reason, in the input's format; null: none. Default as `purify`. */
  removed?: string | null;
  /** Which records get their reasons (the removed ones, default, or all) and how many nearest harmful references. */
  reasons?: ReasonOptions;
  /** Field the report breaks the records down by. Default: the first of source, category, ... that the records have. */
  groupField?: string;
  /** Run the shards as jobs of this Redis (BullMQ) for `sot shard-worker` processes instead of local worker processes. */
  redis?: string;
  /** Folder for the model and the shards' results (temporary; removed at the end). With `redis` it must be shared by the workers. Default the system's temporary folder. */
  workDir?: string;
  /**
   * Called as shards start and end (pid: the worker process; pass: -2 for the
   * fit's counting pass, -1 for its sample pass, 0 to `refit` - 1 for the
   * refit passes, `refit` for the scoring).
   */
  onShard?: (e: {
    shard: number;
    pass: number;
    attempt: number;
    state: 'started' | 'done' | 'failed';
    pid?: number;
    error?: string;
  }) => void;
}

export interface ShardedResult {
  n: number;
  k: number;
  sample: number;
  outputs: {
    dataset: string;
    scores: string;
    report: string;
    html: string | null;
    removed: string | null;
    model: string | null;
  };
  /** What the JSON report holds. */
  report: PurifyReport;
  /** Attempts each shard took, over all its passes (the fit's counting and sample passes, the refit passes, the scoring). */
  attempts: number[];
}

/** The worker script: the compiled one beside this module (from the sources, the build's). */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const built = here.endsWith('.ts')
    ? join(dirname(here), '..', '..', 'dist', 'fit', 'shard-worker.js')
    : join(dirname(here), 'shard-worker.js');
  return built;
}

export async function purifySharded(o: ShardedOptions): Promise<ShardedResult> {
  if (!(Number.isInteger(o.shards) && o.shards >= 1))
    throw new OptionError('ERR_OPTION', `shards must be a positive integer, got ${String(o.shards)}`);
  if (o.embedder !== undefined && !(o.embedder instanceof HashingEmbedder))
    throw new OptionError(
      'ERR_OPTION',
      'sharded purification runs the built-in embedder (the workers rebuild it from the model file)',
    );
  if (o.keep !== undefined && o.threshold !== undefined)
    throw new OptionError('ERR_OPTION', 'use keep or threshold, not both');
  refitPasses(o.refit, DEFAULT_SHARD_REFIT); // checked before any work
  checkReasonOptions(o.reasons);
  const paths = outputPaths(o);
  // a missing folder, an output onto a file read or another output: now, not after the work
  await checkOutputs(o as PurifyOptions, paths, o.embedder ?? new HashingEmbedder());
  if (o.saveModel !== undefined) {
    if (typeof o.saveModel !== 'string' || o.saveModel === '')
      throw new OptionError('ERR_OPTION', 'saveModel must be a file path');
    await assertNoCollision(
      [{ path: o.saveModel, what: 'the model output' }],
      [
        { path: o.input, what: 'the input file' },
        ...[paths.output, paths.scores, paths.report, paths.html, paths.removed]
          .filter((p): p is string => p !== null)
          .map((path) => ({ path, what: 'another output' })),
      ],
    );
  }
  const timings: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (stage: string) => {
    const t = performance.now();
    timings[stage] = (timings[stage] ?? 0) + (t - t0) / 1000;
    t0 = t;
  };
  const work = await mkdtemp(join(o.workDir ?? tmpdir(), 'sot-shards-'));
  try {
    const model = join(work, 'model.sot-model');
    // JSON Lines, CSV and TSV shards are byte ranges of the file, each read
    // alone; JSON (one document, parsed whole) and Parquet (which could split
    // by row group) shard by record index, each reading the file from its head.
    const format = await resolveFormat(o.input, o.format, o.maxLineBytes);
    const byBytes = RANGE_FORMATS.includes(format);
    const ranges = byBytes
      ? (await recordRanges(o.input, o.shards, { ...o, format })).filter((r) => r.end > r.start)
      : [];
    const shardsOf = (n: number) => (byBytes ? ranges.length : Math.min(o.shards, n));
    const part = (s: number, n: number) =>
      byBytes
        ? { bytes: ranges[s]! }
        : { from: Math.floor((s * n) / shardsOf(n)), to: Math.floor(((s + 1) * n) / shardsOf(n)) };
    const attempts: number[] = [];
    const runPass = async (tasks: AnyShardTask[], pass: number) => {
      const a =
        o.redis === undefined
          ? await runAll(tasks, o, pass)
          : await (await import('../service/queue/shards.js')).runShardsOnQueue(o.redis, tasks, {
              retries: o.retries,
              signal: o.signal,
              run: `${basename(work)}-${pass}`,
            });
      a.forEach((v, i) => (attempts[tasks[i]!.shard] = (attempts[tasks[i]!.shard] ?? 0) + v));
    };
    // The fit's passes over every record (counting with the document
    // frequencies, embedding the sample) run in the shards; the refit passes
    // run in the shards after the fit, not in it.
    const layout = { byBytes, shards: byBytes ? ranges.length : o.shards, shardsOf, part };
    const f = await fitWithPasses(
      { ...o, model, sample: o.sample ?? DEFAULT_FIT_SAMPLE, refit: 0 },
      shardedPasses(o, layout, work, runPass),
    );
    lap('fit');
    const n = f.records;
    const keep =
      o.keep === 'auto' ? autoKeep(f, n) : (o.keep ?? (o.threshold === undefined ? PURIFY_DEFAULTS.keep : undefined));
    const K = keep === undefined ? n : 'count' in keep ? keep.count : Math.max(1, Math.round(keep.fraction * n));
    if (!(K >= 1 && K <= n))
      throw new OptionError('ERR_OPTION', `keep must be between 1 and the ${n} records, got ${K}`);
    // Fitted on every record, the potentials are already the column update's fixed point.
    const passes = refitPasses(o.refit, f.sample < n ? DEFAULT_SHARD_REFIT : 0);
    const shards = shardsOf(n);
    // The removed records are known only after the merge: the scoring pass
    // finds the nearest references of every record that may be removed (below
    // the threshold, or any under a count), and the merge keeps the removed ones.
    const reasons = {
      neighbours: o.reasons?.neighbours ?? DEFAULT_NEIGHBOURS,
      ...(o.threshold !== undefined && o.reasons?.for !== 'all' ? { below: o.threshold } : {}),
    };
    const task = (s: number, pass: number, modelPath: string): ShardTask => ({
      input: o.input,
      format: o.format,
      recordFormat: o.recordFormat,
      fields: o.fields,
      skipInvalid: o.skipInvalid,
      maxLineBytes: o.maxLineBytes,
      embeddingCache: o.embeddingCache,
      cacheDir: o.cacheDir,
      model: modelPath,
      shard: s,
      ...part(s, n),
      top: keep === undefined ? 0 : K,
      out: join(work, `shard-${pass}-${s}.bin`),
      ...(pass < passes ? { columns: true } : { reasons }),
    });
    let current = model;
    for (let pass = 0; pass < passes; pass++) {
      const tasks = Array.from({ length: shards }, (_, s) => task(s, pass, current));
      await runPass(tasks, pass);
      const parts = await Promise.all(tasks.map((t) => readColumns(t.out)));
      const refined = await refitModel(await loadModel(current), parts);
      current = join(work, `model-${pass + 1}.sot-model`);
      await saveModel(current, refined);
    }
    lap('refit');
    const tasks = Array.from({ length: shards }, (_, s) => task(s, passes, current));
    await runPass(tasks, passes);
    const results = placed(await Promise.all(tasks.map((t) => readShard(t.out))), n, o.input);
    lap('score');
    const final = await loadModel(current);
    const run = { model: final, fit: f, refit: passes, shards, attempts, timings, lap };
    const merged = await writeMerged(o, paths, results, n, keep === undefined ? undefined : K, run);
    return { ...merged, sample: f.sample, attempts };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `keep: 'auto'`: the share of its sample the fit's automatic K keeps, of all `n` records (every one without an estimate; the default keep when the estimate is inconclusive). */
function autoKeep(f: FitResult, n: number): Keep {
  if (f.autoKeep === null) return PURIFY_DEFAULTS.keep;
  if (f.autoKeep >= f.sample) return { count: n };
  return { count: Math.min(n, Math.max(1, Math.round((f.autoKeep * n) / f.sample))) };
}

/** Byte-range shards number their records from 0: place them after the shards before (in file order). */
function placed(results: ShardResult[], n: number, input: string): ShardResult[] {
  let from = 0;
  const out = results.map((r) => {
    const shift = from - r.from;
    from += r.score.length;
    if (shift === 0) return r;
    const near = { ...r.near, rows: r.near.rows.map((i) => i + shift) };
    return { ...r, from: r.from + shift, top: r.top.map((i) => i + shift), near };
  });
  if (from !== n)
    throw new InputError(
      { file: input },
      `the shards read ${from} records, the fit counted ${n} (the file changed since the fit?)`,
    );
  return out;
}

/** Runs the shards, `workers` at a time; a failed shard runs again alone, up to `retries` times. */
async function runAll(tasks: AnyShardTask[], o: ShardedOptions, pass: number): Promise<number[]> {
  const script = workerScript();
  if (!existsSync(script))
    throw new SotError('ERR_INTERNAL', `the shard worker ${script} is missing (build with npm run build:ts)`);
  const workers = Math.max(1, Math.min(o.workers ?? Math.min(tasks.length, availableParallelism()), tasks.length));
  const retries = o.retries ?? 2;
  const attempts = tasks.map(() => 0);
  let next = 0;
  const one = async (i: number): Promise<void> => {
    const t = tasks[i]!;
    for (;;) {
      attempts[i]!++;
      const err = await runWorker(script, t, o, pass, attempts[i]!);
      if (err === null) return;
      const permanent = ['ERR_INPUT', 'ERR_OPTION', 'ERR_ABORTED'].includes(err.code);
      if (permanent || attempts[i]! > retries) {
        throw new SotError(
          err.code as SotError['code'],
          `shard ${t.shard} (${describeShard(t)}) failed after ${attempts[i]} attempt(s): ${err.message}`,
        );
      }
    }
  };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < tasks.length) await one(next++);
    }),
  );
  return attempts;
}

function runWorker(
  script: string,
  t: AnyShardTask,
  o: ShardedOptions,
  pass: number,
  attempt: number,
): Promise<{ code: string; message: string } | null> {
  if (o.signal?.aborted) return Promise.resolve({ code: 'ERR_ABORTED', message: 'aborted' });
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, JSON.stringify(t)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const onAbort = () => child.kill('SIGTERM');
    o.signal?.addEventListener('abort', onAbort, { once: true });
    o.onShard?.({ shard: t.shard, pass, attempt, state: 'started', pid: child.pid });
    child.on('close', (code, sig) => {
      o.signal?.removeEventListener('abort', onAbort);
      if (o.signal?.aborted) return resolve({ code: 'ERR_ABORTED', message: 'aborted' });
      if (code === 0) {
        o.onShard?.({ shard: t.shard, pass, attempt, state: 'done' });
        return resolve(null);
      }
      const last = stderr.trim().split('\n').pop() ?? '';
      let e: { code: string; message: string };
      try {
        e = JSON.parse(last) as { code: string; message: string };
      } catch {
        e = {
          code: 'ERR_INTERNAL',
          message: sig ? `the worker was killed by ${sig}` : `the worker exited with code ${code}: ${last}`,
        };
      }
      o.onShard?.({ shard: t.shard, pass, attempt, state: 'failed', error: e.message });
      resolve(e);
    });
  });
}

/**
 * The exact global top K from the shards' top lists (each best first, ties
 * to the lower index): a K-way merge by (score desc, index asc), which is
 * the order selectTopK gives over all records at once.
 */
export function mergeTop(
  results: Array<Pick<ShardResult, 'from' | 'score' | 'top'>>,
  n: number,
  K: number,
): Uint8Array {
  const kept = new Uint8Array(n);
  const pos = results.map(() => 0);
  const scoreOf = (r: (typeof results)[number], i: number) => r.score[i - r.from]!;
  for (let taken = 0; taken < K; taken++) {
    let best = -1;
    let bs = -Infinity;
    let bi = Infinity;
    results.forEach((r, s) => {
      if (pos[s]! >= r.top.length) return;
      const i = r.top[pos[s]!]!;
      const v = scoreOf(r, i);
      if (v > bs || (v === bs && i < bi)) [best, bs, bi] = [s, v, i];
    });
    if (best < 0) break;
    kept[bi] = 1;
    pos[best]!++;
  }
  return kept;
}

/** What the merge reports of the run before it. */
interface RunSoFar {
  model: Model;
  fit: FitResult;
  refit: number;
  shards: number;
  attempts: number[];
  timings: Record<string, number>;
  lap: (stage: string) => void;
}

/**
 * The purified dataset, the scores file, the removed records with their
 * reasons, the JSON report and its HTML page from the shards, committed
 * together (the whole-dataset run's writer, writeOutputs).
 */
async function writeMerged(
  o: ShardedOptions,
  paths: ReturnType<typeof outputPaths>,
  results: ShardResult[],
  n: number,
  K: number | undefined,
  run: RunSoFar,
) {
  const concat = (pick: (r: ShardResult) => Float64Array) => {
    const out = new Float64Array(n);
    for (const r of results) out.set(pick(r), r.from);
    return out;
  };
  const score = concat((r) => r.score);
  const pull = concat((r) => r.pull);
  const push = concat((r) => r.push);
  const lines = new Uint32Array(n);
  for (const r of results) lines.set(r.lines, r.from);
  // Ranks and training weights from the core, as score() gives them over all records at once.
  const selection = await selectScored(score, K === undefined ? undefined : { count: K }, o.threshold);
  const { kept } = selection;
  if (K !== undefined && !mergeTop(results, n, K).every((v, i) => v === kept[i]))
    throw new SotError('ERR_INTERNAL', "the shards' merged top lists disagree with the ranking of their scores");
  const { model } = run;
  const h = model.header;
  // Every record's Gibbs weight over all records (summing to 1), and its split into pull and push, from the core.
  const gibbs = (await selectScored(score, { fraction: 1 }, undefined)).trainWeight;
  const weights = gibbs.map((w) => w / n);
  const contributions = await cancellable(undefined, () => native.weightContributions(weights, pull, push, h.tau));
  const refs = await loadReferences({ ...o, output: undefined } as PurifyOptions);
  if (refs.harmful.samples.length !== model.harmful.points.rows)
    throw new InputError(
      { file: o.harmful.join(', ') },
      `the harmful reference has ${refs.harmful.samples.length} samples now, ${model.harmful.points.rows} at the fit (it changed during the run?)`,
    );
  const audit = auditOf({
    ...explained(results, selection, o.reasons?.for === 'all'),
    refs: refs.harmful,
    contributions,
    anchorIsDownstream: h.references.anchorIsSample,
  });
  const template = h.template ?? undefined;
  const input = await PipelineInput.open({ ...o, template }, { weightField: o.weightField });
  const embedder = modelEmbedder(model, 'the fitted model');
  const cache = await openEmbeddingCache(o, embedder);
  // The map's sample of records, embedded from the texts the report's pass over the input takes.
  const display = {
    records: displayRows(n),
    embed: async (texts: string[]) => ({
      data: await embedBatch(texts, embedder, cache, o.signal),
      rows: texts.length,
      cols: embedder.dim,
    }),
  };
  run.lap('select');
  const budget = resolveBudget(o.memoryBudget);
  // saveModel: the final model, with the refit it went through and the quantiles of every record's score
  const saved =
    o.saveModel === undefined
      ? []
      : [
          {
            path: o.saveModel,
            bytes: encodeModel(
              run.refit > 0 ? withRefit(model, { passes: run.refit, records: n, input: o.input }, score) : model,
            ),
          },
        ];
  const report = await writeOutputs({
    extra: saved,
    input,
    paths,
    lines,
    selection,
    score,
    audit,
    weightField: o.weightField,
    signal: o.signal,
    scoresFile: (out) => writeScoresCsv(out, { score, pull, push, lines }, selection, o.signal),
    report: async () => {
      const ds = input.dataset;
      input.skipped = { count: ds.skipped.count, reasons: ds.skipped.first.map((e) => e.message) };
      const r = await assembleReport({
        version: pkg.version,
        options: {
          ...o,
          template,
          keep: o.threshold === undefined ? o.keep : undefined,
        },
        paths,
        input,
        embedder: { id: embedder.id, dim: embedder.dim },
        references: { harmful: h.references.harmful, anchor: h.references.anchor },
        sets: {
          downstream: display,
          anchor: h.references.anchorIsSample ? undefined : model.anchor.points,
          harmful: model.harmful.points,
        },
        lines,
        method: 'sot',
        learnerOptions: { ...embedder.learnerDefaults, ...definedEntries(o.learner ?? {}) },
        score,
        weights,
        raw: { pull, push },
        selection,
        audit,
        contamination: (h.contamination as PurifyReport['contamination'] | undefined) ?? null,
        learner: null,
        sharded: {
          shards: run.shards,
          attempts: run.attempts,
          fit: { records: n, sample: h.fit.sample, seed: h.fit.seed, steps: h.fit.steps, converged: h.fit.converged },
          refit: run.refit,
          model: { cost: h.cost, eps: h.eps, lambda: h.lambda, tau: h.tau },
        },
        warnings: [
          ...run.fit.warnings,
          ...(o.keep === 'auto'
            ? autoKeepWarnings(h.contamination as ContaminationEstimate | undefined, run.fit.autoKeep)
            : []),
        ],
        timings: run.timings,
        memory: { budget, learnerBudget: learnerBudget(budget, run.fit.sample), peakRss: peakRss() },
      });
      run.lap('write');
      r.timings = { ...run.timings };
      r.memory.peakRss = peakRss();
      return r;
    },
  });
  return {
    n,
    k: selection.k,
    outputs: {
      dataset: paths.output,
      scores: paths.scores,
      report: paths.report,
      html: paths.html,
      removed: paths.removed,
      model: o.saveModel ?? null,
    },
    report,
  };
}

/**
 * The records that get reasons (the removed ones, or all) and their nearest
 * references, gathered from the shards (each found them for a superset).
 */
function explained(
  results: ShardResult[],
  selection: Selection,
  all: boolean,
): { rows: Uint32Array; near: NearestRows } {
  const want = (i: number) => all || !selection.kept[i];
  let count = 0;
  for (let i = 0; i < selection.kept.length; i++) if (want(i)) count++;
  const k = Math.max(0, ...results.map((r) => (r.near.rows.length ? r.near.k : 0)));
  const rows = new Uint32Array(count);
  const index = new Uint32Array(count * k);
  const cost = new Float32Array(count * k);
  let at = 0;
  for (const r of results) {
    const nr = r.near;
    for (let j = 0; j < nr.rows.length; j++) {
      if (!want(nr.rows[j]!)) continue;
      rows[at] = nr.rows[j]!;
      index.set(nr.index.subarray(j * k, (j + 1) * k), at * k);
      cost.set(nr.cost.subarray(j * k, (j + 1) * k), at * k);
      at++;
    }
  }
  if (at !== count)
    throw new SotError('ERR_INTERNAL', `the shards found the reasons of ${at} of the ${count} records that need them`);
  return { rows, near: { k, index, cost } };
}

/** The whole run's warning when `keep: 'auto'` had no estimate to go by. */
function definedEntries<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
