// `purify --shards N` on one machine: fit on a uniform sample, refine the
// model's reference potentials over all records (each shard sums its part of
// a column update; the parts merge exactly), score N contiguous shards in
// worker processes (a failed shard is retried alone), select the exact global
// top K of all their scores in the core (or keep every record at or above a
// threshold), find the removed records' reasons in the shards that hold them,
// and write one purified dataset, one scores file, the removed records with
// their reasons and the report, committed together.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_FIT_SAMPLE, DEFAULT_SHARD_REFIT, DEFAULT_SHARD_RETRIES, PURIFY_DEFAULTS } from '../defaults.js';
import { InputError, IoError, OptionError, SotError } from '../errors.js';
import { HashingEmbedder } from '../embed/hashing.js';
import { checkParts } from '../io/parts.js';
import { count } from '../options.js';
import { weightFieldOf } from '../io/write.js';
import {
  openDataset,
  RANGE_FORMATS,
  recordRanges,
  resolveFormat,
  rowGroupRanges,
  writeFileAtomic,
  type FileFormat,
} from '../io/index.js';
import { checkReasonOptions, DEFAULT_NEIGHBOURS, type NearestRows, type ReasonOptions } from '../pipeline/audit.js';
import { embedBatch, openEmbeddingCache } from '../pipeline/embedding.js';
import { PipelineInput } from '../pipeline/input.js';
import { peakRss, resolveBudget } from '../pipeline/memory.js';
import type { DatasetSource, PurifyOptions } from '../pipeline/options.js';
import { assembleReport, displayRows, writeOutputs } from '../pipeline/outputs.js';
import { outputPaths } from '../pipeline/paths.js';
import { autoKeepCount, autoKeepWarnings, checkKeep, checkOutputs } from '../pipeline/purify.js';
import type { ContaminationEstimate } from '../learner.js';
import type { PurifyReport } from '../report/types.js';
import { keepCount, type Keep } from '../selection.js';
import { fitWithPasses, type FitOptions, type FitResult } from './fit.js';
import { encodeModel, harmfulReference, loadModel, modelEmbedder, saveModel, withRefit, type Model } from './model.js';
import {
  type AnyShardTask,
  encodeRows,
  readColumns,
  readNear,
  parseShardError,
  readShard,
  shardFailure,
  shardInput,
  type ShardError,
  type ShardResult,
  type ShardTask,
} from './shard.js';
import { modelAudit, type NearRows } from './explain.js';
import { shardedPasses, type ShardLayout } from './shard-fit.js';
import { writePass, type WritePassInput, type WriteShardTask } from './shard-write.js';
import { removedValues } from '../pipeline/removed.js';
import { wellFormedDeep } from '../text.js';
import { refitDone, refitPasses, selectScored, type Refit } from './score.js';
import { refitModel } from './scoring.js';
import { reasonsBound } from './reasons-bound.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export interface ShardedOptions extends FitOptions {
  shards: number;
  /** Worker processes at once. Default: the shards, at most the cores. */
  workers?: number;
  /** Attempts after a shard's first failure (a failure on the input is not retried). Default `DEFAULT_SHARD_RETRIES`. */
  retries?: number;
  /**
   * Column updates of the fitted reference potentials over all records before
   * the scoring (each one more pass of the shards over the records). Default 1
   * when the fit sample is smaller than the records, else 0
   * (docs/model-file.md, "Refining over all records"); `'auto'`: until the
   * marginal error is small (as `score`'s `refit`).
   */
  refit?: Refit;
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
   * refit passes, `refit` for the scoring, `refit` + 1 for the reasons pass).
   */
  onShard?: (e: {
    shard: number;
    pass: number;
    attempt: number;
    state: 'started' | 'done' | 'failed';
    pid?: number;
    error?: string;
  }) => void;
  /**
   * Called as the shards' write tasks start and end: the write pass, after
   * the selection and the reasons, in which each shard writes its part of
   * the outputs (docs/model-file.md, "How a sharded run writes its outputs").
   */
  onShardWrite?: (e: {
    shard: number;
    attempt: number;
    state: 'started' | 'done' | 'failed';
    pid?: number;
    error?: string;
  }) => void;
}

/** A shard task started, ended or failed. */
type ShardEvent = Parameters<NonNullable<ShardedOptions['onShard']>>[0];

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
  /** Attempts each shard took, over all its passes (the fit's counting and sample passes, the refit passes, the scoring and the reasons pass). */
  attempts: number[];
  /** Attempts each shard's write task took. */
  writeAttempts: number[];
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
  checkParts(o.shards, 'shards');
  if (o.embedder !== undefined && !(o.embedder instanceof HashingEmbedder))
    throw new OptionError(
      'ERR_OPTION',
      'sharded purification runs the built-in embedder (the workers rebuild it from the model file)',
    );
  count('workers', o.workers);
  if (o.retries !== undefined && !(Number.isInteger(o.retries) && o.retries >= 0))
    throw new OptionError('ERR_OPTION', `retries must be an integer >= 0, got ${String(o.retries)}`);
  if (o.redis !== undefined && (typeof o.redis !== 'string' || o.redis === ''))
    throw new OptionError('ERR_OPTION', 'redis must be a Redis URL such as redis://127.0.0.1:6379');
  if (o.keep !== undefined && o.threshold !== undefined)
    throw new OptionError('ERR_OPTION', 'use keep or threshold, not both');
  // what can be checked before the records are counted: now, not after the fit
  checkKeep(o.keep, Number.POSITIVE_INFINITY, 'sot');
  if (o.threshold !== undefined && !(typeof o.threshold === 'number' && Number.isFinite(o.threshold)))
    throw new OptionError('ERR_OPTION', `threshold must be a finite number, got ${String(o.threshold)}`);
  weightFieldOf(o.weightField);
  refitPasses(o.refit, DEFAULT_SHARD_REFIT); // checked before any work
  checkReasonOptions(o.reasons);
  const paths = outputPaths(o);
  if (o.saveModel !== undefined && (typeof o.saveModel !== 'string' || o.saveModel === ''))
    throw new OptionError('ERR_OPTION', 'saveModel must be a file path');
  // a missing folder, an output onto a file read or another output: now, not after the work
  await checkOutputs(
    o as PurifyOptions,
    paths,
    o.embedder ?? new HashingEmbedder(),
    o.saveModel === undefined ? [] : [{ path: o.saveModel, what: 'the model output' }],
  );
  const timings: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (stage: string) => {
    const t = performance.now();
    timings[stage] = (timings[stage] ?? 0) + (t - t0) / 1000;
    t0 = t;
  };
  // A mistyped or unreachable Redis is said now, not after the fit.
  if (o.redis !== undefined) await (await import('../service/queue/shards.js')).assertReachable(o.redis);
  const workRoot = o.workDir ?? tmpdir();
  const work = await mkdtemp(join(workRoot, 'sot-shards-')).catch((err: NodeJS.ErrnoException) => {
    throw new IoError(`cannot make the shards' work folder in ${workRoot}: ${err.code ?? err.message}`, {
      path: workRoot,
      cause: err,
    });
  });
  try {
    const model = join(work, 'model.sot-model');
    const layout = await shardLayout(o, o.shards);
    const attempts: number[] = [];
    const writeAttempts: number[] = [];
    const runTasks = async (tasks: AnyShardTask[], pass: number | 'write', into: number[]) => {
      const a =
        o.redis === undefined
          ? await runAll(tasks, o, pass === 'write' ? -1 : pass, pass === 'write' ? writeEvents(o) : o.onShard)
          : await (await import('../service/queue/shards.js')).runShardsOnQueue(o.redis, tasks, {
              retries: o.retries ?? DEFAULT_SHARD_RETRIES,
              signal: o.signal,
              run: `${basename(work)}-${pass}`,
            });
      a.forEach((v, i) => (into[tasks[i]!.shard] = (into[tasks[i]!.shard] ?? 0) + v));
    };
    const runPass = (tasks: AnyShardTask[], pass: number) => runTasks(tasks, pass, attempts);
    // The fit's passes over every record (counting with the document
    // frequencies, embedding the sample) run in the shards; the refit passes
    // run in the shards after the fit, not in it.
    const f = await fitWithPasses(
      { ...o, model, sample: o.sample ?? DEFAULT_FIT_SAMPLE, refit: 0 },
      shardedPasses(o, layout, work, runPass),
    );
    lap('fit');
    const n = f.records;
    const keep =
      o.keep === 'auto'
        ? { count: autoKeepCount(f.contamination, f.autoKeep, f.sample, n) }
        : (o.keep ?? (o.threshold === undefined ? PURIFY_DEFAULTS.keep : undefined));
    const K = keep === undefined ? n : keepCount(keep, n);
    if (!(K >= 1 && K <= n))
      throw new OptionError('ERR_OPTION', `keep must be between 1 and the ${n} records, got ${K}`);
    // Fitted on every record, the potentials are already the column update's fixed point.
    const plan = refitPasses(o.refit, f.sample < n ? DEFAULT_SHARD_REFIT : 0);
    const shards = layout.shardsOf(n);
    // Reasons found in the scoring pass: every record's (reasons for all), or
    // those below a threshold (exactly the removed ones). Under a count the
    // removed records are known only after the merge: those below a bound
    // from the fit sample's scores, and the reasons pass finds any others'.
    const neighbours = o.reasons?.neighbours ?? DEFAULT_NEIGHBOURS;
    const reasons =
      o.reasons?.for === 'all'
        ? { neighbours }
        : o.threshold !== undefined
          ? { neighbours, below: o.threshold }
          : K < n
            ? below(neighbours, await reasonsBound(f.sampleScores, (n - K) / n))
            : undefined;
    const task = (s: number, pass: number, modelPath: string, stage: 'columns' | 'score' | 'reasons'): ShardTask => ({
      ...shardInput(o),
      model: modelPath,
      shard: s,
      ...layout.part(s, n),
      out: join(work, `shard-${pass}-${s}.bin`),
      ...(stage === 'columns' ? { columns: true } : stage === 'score' && reasons ? { reasons } : {}),
    });
    let current = model;
    let passes = 0;
    let refitError: number | null = null;
    while (!refitDone(plan, passes, refitError)) {
      const tasks = Array.from({ length: shards }, (_, s) => task(s, passes, current, 'columns'));
      await runPass(tasks, passes);
      const parts = await Promise.all(tasks.map((t) => readColumns(t.out)));
      const refined = await refitModel(await loadModel(current), parts);
      refitError = refined.error;
      passes++;
      current = join(work, `model-${passes}.sot-model`);
      await saveModel(current, refined.model);
    }
    lap('refit');
    const tasks = Array.from({ length: shards }, (_, s) => task(s, passes, current, 'score'));
    await runPass(tasks, passes);
    const results = placed(await Promise.all(tasks.map((t) => readShard(t.out))), n, o.input);
    lap('score');
    const final = await loadModel(current);
    const explain = (want: (i: number) => boolean) =>
      reasonsPass(
        results,
        want,
        neighbours,
        work,
        (s) => task(s, passes + 1, current, 'reasons'),
        (t) => runPass(t, passes + 1),
      );
    const write = {
      work,
      scored: tasks.map((t) => t.out),
      part: (s: number) => ({ ...shardInput(o), shard: s, ...layout.part(s, n) }),
      run: (t: WriteShardTask[]) => runTasks(t, 'write', writeAttempts),
    };
    const run = { model: final, fit: f, refit: passes, refitError, shards, attempts, timings, lap, explain, write };
    const merged = await writeMerged(o, paths, results, n, keep === undefined ? undefined : K, run);
    return { ...merged, sample: f.sample, attempts, writeAttempts };
  } finally {
    await rm(work, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** The runs of a Parquet input's row groups, each with the record layout the whole file has. */
async function rowGroupShards(o: LayoutOptions, format: FileFormat, parts: number) {
  const { recordFormat, fields, skipInvalid, maxLineBytes } = o;
  const { layout } = await openDataset(o.input, { format, recordFormat, fields, skipInvalid, maxLineBytes });
  return (await rowGroupRanges(o.input, parts)).map((rowGroups) => ({ rowGroups, layout }));
}

type LayoutOptions = DatasetSource;

/**
 * How the input splits into at most `shards` shards. JSON Lines, CSV and TSV
 * shards are byte ranges of the file and Parquet ones runs of its row
 * groups, each read alone (a Parquet shard with the record layout settled
 * here, so that it decodes only its row groups); JSON (one document, parsed
 * whole) shards by record index, each reading from its head.
 */
export async function shardLayout(o: LayoutOptions, shards: number): Promise<ShardLayout> {
  const format = await resolveFormat(o.input, o.format, o.maxLineBytes);
  const byBytes = RANGE_FORMATS.includes(format);
  const ranges = byBytes ? (await recordRanges(o.input, shards, { ...o, format })).filter((r) => r.end > r.start) : [];
  const runs = format === 'parquet' ? await rowGroupShards(o, format, shards) : undefined;
  const ranged = byBytes ? ranges.length : runs?.length;
  const shardsOf = (n: number) => ranged ?? Math.min(shards, n);
  return {
    byRange: ranged !== undefined,
    shards: ranged ?? shards,
    shardsOf,
    part: (s, n) =>
      byBytes
        ? { bytes: ranges[s]! }
        : (runs?.[s] ?? { from: Math.floor((s * n) / shardsOf(n)), to: Math.floor(((s + 1) * n) / shardsOf(n)) }),
  };
}

/** The scoring pass's reasons below a bound (a task crosses as JSON, which has no infinities). */
function below(neighbours: number, bound: number): ShardTask['reasons'] {
  if (bound === Number.NEGATIVE_INFINITY) return undefined;
  return bound === Number.POSITIVE_INFINITY ? { neighbours } : { neighbours, below: bound };
}

/** Byte-range shards number their records from 0: place them after the shards before (in file order). */
function placed(results: ShardResult[], n: number, input: string): ShardResult[] {
  let from = 0;
  const out = results.map((r) => {
    const shift = from - r.from;
    from += r.score.length;
    if (shift === 0) return r;
    const near = { ...r.near, rows: r.near.rows.map((i) => i + shift) };
    return { ...r, from: r.from + shift, near };
  });
  if (from !== n)
    throw new InputError(
      { file: input },
      `the shards read ${from} records, the fit counted ${n} (the file changed since the fit?)`,
    );
  return out;
}

/** The write pass's events, as `onShardWrite` takes them (no pass). */
function writeEvents(o: ShardedOptions): ((e: ShardEvent) => void) | undefined {
  const on = o.onShardWrite;
  return on && (({ shard, attempt, state, pid, error }) => on({ shard, attempt, state, pid, error }));
}

/** Runs the shards, `workers` at a time; a failed shard runs again alone, up to `retries` times. */
async function runAll(
  tasks: AnyShardTask[],
  o: ShardedOptions,
  pass: number,
  on: ((e: ShardEvent) => void) | undefined,
): Promise<number[]> {
  const script = workerScript();
  if (!existsSync(script))
    throw new SotError('ERR_INTERNAL', `the shard worker ${script} is missing (build with npm run build:ts)`);
  const workers = Math.max(1, Math.min(o.workers ?? Math.min(tasks.length, availableParallelism()), tasks.length));
  const retries = o.retries ?? DEFAULT_SHARD_RETRIES;
  const attempts = tasks.map(() => 0); // by task, as runShardsOnQueue
  // A shard that fails for good stops the others, and the run waits for them: none may still write into the work folder.
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  let failure: SotError | undefined;
  let next = 0;
  const one = async (j: number): Promise<void> => {
    const t = tasks[j]!;
    for (;;) {
      attempts[j]!++;
      const err = await runWorker(script, t, signal, pass, attempts[j]!, on);
      if (err === null || failure !== undefined) return;
      const permanent = ['ERR_INPUT', 'ERR_OPTION', 'ERR_ABORTED'].includes(err.code);
      if (permanent || attempts[j]! > retries) {
        failure = shardFailure(err, t, attempts[j]!);
        stop.abort();
        return;
      }
    }
  };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < tasks.length && failure === undefined) await one(next++);
    }),
  );
  if (failure !== undefined) throw failure;
  return attempts;
}

function runWorker(
  script: string,
  t: AnyShardTask,
  signal: AbortSignal | undefined,
  pass: number,
  attempt: number,
  on: ((e: ShardEvent) => void) | undefined,
): Promise<ShardError | null> {
  if (signal?.aborted) return Promise.resolve({ code: 'ERR_ABORTED', message: 'aborted' });
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, JSON.stringify(t)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const onAbort = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', onAbort, { once: true });
    on?.({ shard: t.shard, pass, attempt, state: 'started', pid: child.pid });
    child.on('close', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) return resolve({ code: 'ERR_ABORTED', message: 'aborted' });
      if (code === 0) {
        on?.({ shard: t.shard, pass, attempt, state: 'done' });
        return resolve(null);
      }
      const last = stderr.trim().split('\n').pop() ?? '';
      const e: ShardError = parseShardError(last) ?? {
        code: 'ERR_INTERNAL',
        message: sig ? `the worker was killed by ${sig}` : `the worker exited with code ${code}: ${last}`,
      };
      on?.({ shard: t.shard, pass, attempt, state: 'failed', error: e.message });
      resolve(e);
    });
  });
}

/** What the merge reports of the run before it. */
interface RunSoFar {
  model: Model;
  fit: FitResult;
  refit: number;
  refitError: number | null;
  shards: number;
  attempts: number[];
  timings: Record<string, number>;
  lap: (stage: string) => void;
  /** Runs the reasons pass for the records `want` accepts that the scoring pass found no reasons for. */
  explain: (want: (i: number) => boolean) => Promise<NearRows[]>;
  /** What the write pass needs of the run: the work dir, the scoring results' files, the shards' parts, how to run its tasks. */
  write: Pick<WritePassInput, 'work' | 'scored' | 'part' | 'run'>;
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
  // The exact global K (or threshold) over all the shards' scores at once: the one ranking.
  const selection = await selectScored(score, K === undefined ? undefined : { count: K }, o.threshold);
  run.lap('select');
  const all = o.reasons?.for === 'all';
  const want = (i: number) => all || !selection.kept[i];
  const found = await run.explain(want);
  run.lap('reasons');
  const { model } = run;
  const h = model.header;
  const reference = harmfulReference(model);
  // Every record's Gibbs weight over all records (summing to 1), and its split into pull and push, from the core.
  const { audit, weights } = await modelAudit(
    model,
    { score, pull, push },
    explained([...results.map((r) => r.near), ...found], want, n),
  );
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
  // The report's own pass over the input (its own reader) runs while the shards write their parts: it needs only
  // the selection and the reasons. An abort, or a failed write pass, stops it.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const reportInput = await PipelineInput.open({ ...o, template });
    const building = assembleReport({
      version: pkg.version,
      options: {
        ...o,
        template,
        keep: o.threshold === undefined ? o.keep : undefined,
      },
      paths,
      input: reportInput,
      embedder: { id: embedder.id, dim: embedder.dim },
      references: { harmful: h.references.harmful, anchor: h.references.anchor },
      sets: {
        downstream: display,
        anchor: h.references.anchorIsSample ? undefined : model.anchor.points,
        harmful: reference,
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
        refitError: run.refitError,
        model: { cost: h.cost, eps: h.eps, lambda: h.lambda, tau: h.tau },
      },
      warnings: [
        ...run.fit.warnings,
        ...(o.keep === 'auto'
          ? autoKeepWarnings(h.contamination as ContaminationEstimate | undefined, run.fit.autoKeep)
          : []),
      ],
      timings: run.timings,
      memory: { budget, learnerBudget: run.fit.learnerBudget, peakRss: peakRss() },
      signal: stop.signal,
    });
    building.catch(() => {}); // awaited below, after the write pass
    // Each shard writes its part of the dataset, the scores and the removed file; the commit below joins them.
    let fills: Awaited<ReturnType<typeof writePass>>;
    try {
      fills = await writePass({
        ...run.write,
        results,
        selection,
        removed:
          paths.removed === null
            ? null
            : { values: removedValues({ score, selection, audit }), contributions: audit.contributions !== null },
        records: input.dataset.format !== 'parquet',
        weightField: o.weightField,
        signal: o.signal,
      });
    } catch (err) {
      stop.abort();
      await building.catch(() => {});
      throw err;
    }
    // saveModel: the final model, with the refit it went through and the quantiles of every record's score
    const saved =
      o.saveModel === undefined
        ? []
        : [
            {
              path: o.saveModel,
              bytes: encodeModel(
                run.refit > 0
                  ? withRefit(
                      model,
                      {
                        passes: run.refit,
                        records: n,
                        input: o.input,
                        ...(run.refitError === null ? {} : { error: run.refitError }),
                      },
                      score,
                    )
                  : model,
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
      scoresFile: fills.scores,
      datasetFile: fills.dataset,
      removedFile: fills.removed,
      report: async () => {
        const r = await building;
        // The records skipped as invalid: those of the report's pass over the input (the coordinator's only one).
        const ds = reportInput.dataset;
        r.input.skipped = ds.skipped.count;
        r.input.skippedReasons = wellFormedDeep(ds.skipped.first.map((e) => e.message));
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
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The reasons pass: each shard that holds records `want` accepts and has no
 * reasons for (from its scoring pass) reads its part again and finds theirs,
 * embedding only them. Returns what it found, the rows as record indices.
 */
async function reasonsPass(
  results: ShardResult[],
  want: (i: number) => boolean,
  neighbours: number,
  work: string,
  task: (s: number) => ShardTask,
  runPass: (tasks: ShardTask[]) => Promise<void>,
): Promise<NearRows[]> {
  const tasks: ShardTask[] = [];
  const from: number[] = [];
  for (const [s, r] of results.entries()) {
    const have = r.near.rows; // ascending
    const need: number[] = [];
    for (let i = r.from, j = 0; i < r.from + r.score.length; i++) {
      if (!want(i)) continue;
      while (j < have.length && have[j]! < i) j++;
      if (have[j] !== i) need.push(i - r.from);
    }
    if (need.length === 0) continue;
    const rows = join(work, `reasons-${s}.rows`);
    await writeFileAtomic(rows, encodeRows(r.score.length, Uint32Array.from(need)));
    tasks.push({ ...task(s), explain: { neighbours, rows } });
    from.push(r.from);
  }
  if (tasks.length === 0) return [];
  await runPass(tasks);
  return Promise.all(
    tasks.map(async (t, j) => {
      const near = await readNear(t.out);
      return { ...near, rows: near.rows.map((i) => i + from[j]!) };
    }),
  );
}

/**
 * The records that get reasons (those `want` accepts: the removed ones, or
 * all), ascending, and their nearest references, gathered from what the
 * passes found (together, a superset).
 */
function explained(
  found: NearRows[],
  want: (i: number) => boolean,
  n: number,
): { rows: Uint32Array; near: NearestRows } {
  const slot = new Int32Array(n).fill(-1);
  let count = 0;
  for (let i = 0; i < n; i++) if (want(i)) slot[i] = count++;
  const k = Math.max(0, ...found.map((f) => (f.rows.length ? f.k : 0)));
  const rows = new Uint32Array(count);
  const index = new Uint32Array(count * k);
  const cost = new Float32Array(count * k);
  const done = new Uint8Array(count);
  for (const f of found) {
    if (f.rows.length && f.k !== k)
      throw new SotError('ERR_INTERNAL', `the shards found ${f.k} and ${k} nearest references per record`);
    for (let j = 0; j < f.rows.length; j++) {
      const at = slot[f.rows[j]!]!;
      if (at < 0) continue;
      rows[at] = f.rows[j]!;
      index.set(f.index.subarray(j * k, (j + 1) * k), at * k);
      cost.set(f.cost.subarray(j * k, (j + 1) * k), at * k);
      done[at] = 1;
    }
  }
  const missing = done.indexOf(0);
  if (missing >= 0)
    throw new SotError(
      'ERR_INTERNAL',
      `the shards found no reasons for record ${slot.indexOf(missing)}, which needs them`,
    );
  return { rows, near: { k, index, cost } };
}

/** The whole run's warning when `keep: 'auto'` had no estimate to go by. */
function definedEntries<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
