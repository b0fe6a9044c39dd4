// `purify --shards N` on one machine: fit on a uniform sample, refine the
// model's reference potentials over all records (each shard sums its part of
// a column update; the parts merge exactly), score N contiguous shards in
// worker processes (a failed shard is retried alone), merge the shards'
// sorted top lists into the exact global top K (or keep every record at or
// above a threshold), and write one purified dataset and one scores file,
// committed together.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, InputError, OptionError, SotError } from '../errors.js';
import { HashingEmbedder } from '../embed/hashing.js';
import {
  assertNoCollision,
  commitAll,
  openAtomicWriter,
  RANGE_FORMATS,
  recordRanges,
  resolveFormat,
  type AtomicWriter,
} from '../io/index.js';
import { writeRecords } from '../io/write.js';
import { PipelineInput } from '../pipeline/input.js';
import { outputPaths } from '../pipeline/paths.js';
import type { Keep } from '../selection.js';
import { fit, type FitOptions } from './fit.js';
import { loadModel, saveModel, stageModel, withRefit } from './model.js';
import { describeShard, readColumns, readShard, type ShardResult, type ShardTask } from './shard.js';
import { refitPasses, selectScored, writeScoresCsv } from './score.js';
import { refitModel } from './scoring.js';

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
   * with the dataset and scores outputs.
   */
  saveModel?: string;
  output?: string;
  scores?: string;
  keep?: Keep;
  threshold?: number;
  weightField?: string | null;
  /** Run the shards as jobs of this Redis (BullMQ) for `sot shard-worker` processes instead of local worker processes. */
  redis?: string;
  /** Folder for the model and the shards' results (temporary; removed at the end). With `redis` it must be shared by the workers. Default the system's temporary folder. */
  workDir?: string;
  /** Called as shards start and end (pid: the worker process; pass: 0 to `refit` - 1 for the refit passes, `refit` for the scoring). */
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
  outputs: { dataset: string; scores: string; model: string | null };
  /** Attempts each shard took, over all its passes (refit passes and scoring). */
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
  if (o.saveModel !== undefined && (typeof o.saveModel !== 'string' || o.saveModel === ''))
    throw new OptionError('ERR_OPTION', 'saveModel must be a file path');
  const paths = outputPaths({ input: o.input, output: o.output, scores: o.scores, html: null });
  await assertNoCollision(
    [
      { path: paths.output, what: 'the dataset output' },
      { path: paths.scores, what: 'the scores output' },
      ...(o.saveModel === undefined ? [] : [{ path: o.saveModel, what: 'the model output' }]),
    ],
    [{ path: o.input, what: 'the input file' }],
  );
  const work = await mkdtemp(join(o.workDir ?? tmpdir(), 'sot-shards-'));
  try {
    const model = join(work, 'model.sot-model');
    // The refit passes run in the shards, not in the fit.
    const f = await fit({ ...o, model, sample: o.sample ?? DEFAULT_FIT_SAMPLE, refit: 0 });
    const n = f.records;
    const keep = o.keep ?? (o.threshold === undefined ? { fraction: 0.8 } : undefined);
    const K = keep === undefined ? n : 'count' in keep ? keep.count : Math.max(1, Math.round(keep.fraction * n));
    if (!(K >= 1 && K <= n))
      throw new OptionError('ERR_OPTION', `keep must be between 1 and the ${n} records, got ${K}`);
    // Fitted on every record, the potentials are already the column update's fixed point.
    const passes = refitPasses(o.refit, f.sample < n ? DEFAULT_SHARD_REFIT : 0);
    // JSON Lines, CSV and TSV shards are byte ranges of the file, each read
    // alone; JSON (one document, parsed whole) and Parquet (which could split
    // by row group) shard by record index, each reading the file from its head.
    const format = await resolveFormat(o.input, o.format, o.maxLineBytes);
    const byBytes = RANGE_FORMATS.includes(format);
    const ranges = byBytes
      ? (await recordRanges(o.input, Math.min(o.shards, n), { ...o, format })).filter((r) => r.end > r.start)
      : [];
    const shards = byBytes ? ranges.length : Math.min(o.shards, n);
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
      ...(byBytes
        ? { bytes: ranges[s]! }
        : { from: Math.floor((s * n) / shards), to: Math.floor(((s + 1) * n) / shards) }),
      top: keep === undefined ? 0 : K,
      out: join(work, `shard-${pass}-${s}.bin`),
      ...(pass < passes ? { columns: true } : {}),
    });
    const attempts = Array.from({ length: shards }, () => 0);
    const runPass = async (tasks: ShardTask[], pass: number) => {
      const a =
        o.redis === undefined
          ? await runAll(tasks, o, pass)
          : await (await import('../service/queue/shards.js')).runShardsOnQueue(o.redis, tasks, {
              retries: o.retries,
              signal: o.signal,
              run: `${basename(work)}-${pass}`,
            });
      a.forEach((v, s) => (attempts[s]! += v));
    };
    let current = model;
    for (let pass = 0; pass < passes; pass++) {
      const tasks = Array.from({ length: shards }, (_, s) => task(s, pass, current));
      await runPass(tasks, pass);
      const parts = await Promise.all(tasks.map((t) => readColumns(t.out)));
      const refined = await refitModel(await loadModel(current), parts);
      current = join(work, `model-${pass + 1}.sot-model`);
      await saveModel(current, refined);
    }
    const tasks = Array.from({ length: shards }, (_, s) => task(s, passes, current));
    await runPass(tasks, passes);
    const results = placed(await Promise.all(tasks.map((t) => readShard(t.out))), n, o.input);
    const refined = await stageFinalModel(o, current, passes, results, n);
    try {
      const merged = await writeMerged(o, paths, results, n, keep === undefined ? undefined : K, refined);
      return {
        ...merged,
        outputs: { ...merged.outputs, model: o.saveModel ?? null },
        sample: f.sample,
        attempts,
      };
    } finally {
      await Promise.all(refined.map((w) => w.abort())); // no-op once committed
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * `saveModel`: the final model staged for the merged outputs' commit, with
 * the refit it went through and the quantiles of every record's score.
 */
async function stageFinalModel(
  o: ShardedOptions,
  current: string,
  passes: number,
  results: ShardResult[],
  n: number,
): Promise<AtomicWriter[]> {
  if (o.saveModel === undefined) return [];
  let model = await loadModel(current);
  if (passes > 0) {
    const score = new Float64Array(n);
    for (const r of results) score.set(r.score, r.from);
    model = withRefit(model, { passes, records: n, input: o.input }, score);
  }
  return [await stageModel(o.saveModel, model)];
}

/** Byte-range shards number their records from 0: place them after the shards before (in file order). */
function placed(results: ShardResult[], n: number, input: string): ShardResult[] {
  let from = 0;
  const out = results.map((r) => {
    const shift = from - r.from;
    from += r.score.length;
    return shift === 0 ? r : { ...r, from: r.from + shift, top: r.top.map((i) => i + shift) };
  });
  if (from !== n)
    throw new InputError(
      { file: input },
      `the shards read ${from} records, the fit counted ${n} (the file changed since the fit?)`,
    );
  return out;
}

/** Runs the shards, `workers` at a time; a failed shard runs again alone, up to `retries` times. */
async function runAll(tasks: ShardTask[], o: ShardedOptions, pass: number): Promise<number[]> {
  const script = workerScript();
  if (!existsSync(script))
    throw new SotError('ERR_INTERNAL', `the shard worker ${script} is missing (build with npm run build:ts)`);
  const workers = Math.max(1, Math.min(o.workers ?? Math.min(tasks.length, availableParallelism()), tasks.length));
  const retries = o.retries ?? 2;
  const attempts = tasks.map(() => 0);
  let next = 0;
  const one = async (t: ShardTask): Promise<void> => {
    for (;;) {
      attempts[t.shard]!++;
      const err = await runWorker(script, t, o, pass, attempts[t.shard]!);
      if (err === null) return;
      const permanent = ['ERR_INPUT', 'ERR_OPTION', 'ERR_ABORTED'].includes(err.code);
      if (permanent || attempts[t.shard]! > retries) {
        throw new SotError(
          err.code as SotError['code'],
          `shard ${t.shard} (${describeShard(t)}) failed after ${attempts[t.shard]} attempt(s): ${err.message}`,
        );
      }
    }
  };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < tasks.length) await one(tasks[next++]!);
    }),
  );
  return attempts;
}

function runWorker(
  script: string,
  t: ShardTask,
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
export function mergeTop(results: ShardResult[], n: number, K: number): Uint8Array {
  const kept = new Uint8Array(n);
  const pos = results.map(() => 0);
  const scoreOf = (r: ShardResult, i: number) => r.score[i - r.from]!;
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

/** One purified dataset and one scores file from the shards, committed together (with `extra`, the caller's staged outputs). */
async function writeMerged(
  o: ShardedOptions,
  paths: ReturnType<typeof outputPaths>,
  results: ShardResult[],
  n: number,
  K: number | undefined,
  extra: AtomicWriter[] = [],
) {
  const concat = (pick: (r: ShardResult) => Float64Array) => {
    const out = new Float64Array(n);
    for (const r of results) out.set(pick(r), r.from);
    return out;
  };
  const score = concat((r) => r.score);
  const lines = new Uint32Array(n);
  for (const r of results) lines.set(r.lines, r.from);
  // Ranks and training weights from the core, as score() gives them over all records at once.
  const selection = await selectScored(score, K === undefined ? undefined : { count: K }, o.threshold);
  const { kept, trainWeight } = selection;
  if (K !== undefined && !mergeTop(results, n, K).every((v, i) => v === kept[i]))
    throw new SotError('ERR_INTERNAL', "the shards' merged top lists disagree with the ranking of their scores");
  const input = await PipelineInput.open({ ...o, template: undefined }, { weightField: o.weightField });
  const staged: AtomicWriter[] = [];
  try {
    const d = await openAtomicWriter(paths.output, { nonRegular: 'stream' });
    staged.push(d);
    await writeRecords(input.dataset, d, {
      keep: (i) => (kept[i] ? trainWeight[i] : undefined),
      weightField: o.weightField,
      signal: o.signal,
    });
    await d.prepare();
    const s = await openAtomicWriter(paths.scores, { nonRegular: 'stream' });
    staged.push(s);
    await writeScoresCsv(
      s,
      { score, pull: concat((r) => r.pull), push: concat((r) => r.push), lines },
      selection,
      o.signal,
    );
    await s.prepare();
    if (o.signal?.aborted) throw new AbortError();
  } catch (err) {
    await Promise.all(staged.map((w) => w.abort()));
    throw err;
  }
  await commitAll([...staged, ...extra]);
  return { n, k: selection.k, outputs: { dataset: paths.output, scores: paths.scores } };
}
