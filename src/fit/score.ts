// `score()`: records against a model file, streamed: each batch is embedded
// and scored alone (a record's score does not depend on the others), so
// memory holds one batch of vectors plus three numbers per record.
import { embedderOption, settledProgress } from '../options.js';
import { resolve } from 'node:path';
import { AbortError, InputError, OptionError } from '../errors.js';
import { REFIT_AUTO } from '../defaults.js';
import type { Embedder } from '../embed/types.js';
import {
  assertNoCollision,
  assertWritable,
  commitAll,
  openAtomicWriter,
  type AtomicWriter,
  type OpenDatasetOptions,
} from '../io/index.js';
import { writeRecords } from '../io/write.js';
import { embedBatch, openEmbeddingCache } from '../pipeline/embedding.js';
import { PipelineInput } from '../pipeline/input.js';
import { Column, rangeBatches } from './stream.js';
import type { DatasetSource, PurifyOptions } from '../pipeline/options.js';
import { autoKeepCount, autoKeepWarnings } from '../pipeline/purify.js';
import type { ContaminationEstimate } from '../learner.js';
import type { Matrix } from '../matrix.js';
import type { Keep, Selection } from '../selection.js';
import type { Audit } from '../pipeline/audit.js';
import { writeRemoved } from '../pipeline/removed.js';
import { outputPaths } from '../pipeline/paths.js';
import { modelAudit, nearestOf } from './explain.js';
import {
  harmfulForReasons,
  loadModel,
  ModelFileError,
  modelEmbedder,
  stageModel,
  withRefit,
  type Model,
} from './model.js';
import {
  columnSums,
  mergeColumnSums,
  refitModel,
  scoreMatrix,
  selectByScore,
  type ColumnSums,
  type Scored,
} from './scoring.js';

export type ScoreStage = 'refit' | 'score' | 'select' | 'reasons' | 'write';

export interface ScoreOptions
  extends DatasetSource,
    Pick<PurifyOptions, 'embeddingCache' | 'cacheDir' | 'weightField' | 'signal'> {
  /** Model file written by `fit()`. */
  model: string;
  /** Per-record scores CSV. Default `<input stem>.scores.csv`. */
  scores?: string;
  /** Purified dataset (the kept records, in the input's format). Written when `keep` or `threshold` is given. */
  output?: string;
  /**
   * Keep the top records by score: a count or a fraction, or `'auto'`: the
   * share of the fit sample that the fit's automatic K keeps (its
   * contamination estimate, in the model file), of these records; every
   * record when the sample looked clean or had no estimate, the default
   * fraction when the estimate was inconclusive, at most it when the sample
   * looked contaminated (as `purify`'s `keep: 'auto'`). The estimate
   * describes the fit's data: on other data a fixed keep says what it does.
   */
  keep?: Keep | 'auto';
  /** Keep the records whose score is at least this. */
  threshold?: number;
  /**
   * With `keep` or `threshold`: every dropped record, in the input's format,
   * with its score, rank, pull, push and the reason in words (its nearest
   * harmful point of the model; docs/audit.md), committed with the other
   * outputs; `null` for none. Default `<input stem>.removed.<ext>`, or
   * `<output stem>.removed.<ext>` when `output` is given (as `purify`'s).
   */
  removed?: string | null;
  /** Only an embedder the model cannot rebuild itself (the built-in one it can); its id must match the model's. */
  embedder?: Embedder;
  /**
   * Column updates of the model's reference potentials over the records
   * before scoring them (each one more pass over the records; the model file
   * is not changed): brings a model fitted on a sample closer to a fit on all
   * the records (docs/model-file.md, "Refining over all records"). `'auto'`:
   * passes until the reference marginals' L1 error is below
   * `REFIT_AUTO.tolerance`, at most `REFIT_AUTO.maxPasses`. Default 0.
   */
  refit?: Refit;
  /**
   * Write the refined model here, committed together with the other outputs
   * (its score quantiles are those of every scored record). Needs `refit >= 1`.
   * May be the `model` file itself: it is read whole before any work and
   * replaced only when every output commits.
   */
  saveModel?: string;
  onProgress?: (event: { stage: ScoreStage; done: number; total?: number }) => void;
}

export interface ScoreResult {
  records: number;
  kept: number | null;
  outputs: { scores: string; dataset: string | null; removed: string | null; model: string | null };
  scores: Float64Array;
  selection: Selection | null;
  /** The refit passes run before scoring and the last one's marginal error (null: none ran). */
  refit: { passes: number; error: number | null };
  /** What the run chose for the caller (`keep: 'auto'` without an estimate, or on an inconclusive one). */
  warnings: string[];
}

/** Scores, pulls, pushes and file lines of the records, in record order. */
export interface ScoredRecords {
  score: Float64Array;
  pull: Float64Array;
  push: Float64Array;
  lines: Uint32Array;
}

type Cache = Awaited<ReturnType<typeof openEmbeddingCache>>;

/**
 * Scores the records of `input` (optionally only records `from <= index <
 * to`) against `model`, batch by batch.
 */
export async function scoreRecords(
  input: PipelineInput,
  model: Model,
  embedder: Embedder,
  cache: Cache,
  o: {
    signal?: AbortSignal;
    range?: { from: number; to: number };
    onProgress?: (done: number) => void;
    /** Sees each batch's vectors and scores before they are dropped (a shard's reasons: shard.ts). */
    onBatch?: (samples: Matrix, scored: Scored) => Promise<void>;
  },
): Promise<ScoredRecords> {
  const cols = {
    score: new Column(new Float64Array(0)),
    pull: new Column(new Float64Array(0)),
    push: new Column(new Float64Array(0)),
    lines: new Column(new Uint32Array(0)),
  };
  for await (const { texts, lines } of rangeBatches(input, o.range, o.signal)) {
    const data = await embedBatch(texts, embedder, cache, o.signal);
    const samples = { data, rows: texts.length, cols: embedder.dim };
    const s = await scoreMatrix(model, samples, { signal: o.signal });
    await o.onBatch?.(samples, s);
    cols.score.push(s.score);
    cols.pull.push(s.pull);
    cols.push.push(s.push);
    cols.lines.push(lines);
    o.onProgress?.(cols.score.length);
  }
  return { score: cols.score.done(), pull: cols.pull.done(), push: cols.push.done(), lines: cols.lines.done() };
}

/**
 * What the records of `input` (optionally only `from <= index < to`)
 * contribute to one column update of the model's reference potentials, and
 * how many they are.
 */
export async function sumColumns(
  input: PipelineInput,
  model: Model,
  embedder: Embedder,
  cache: Cache,
  o: { signal?: AbortSignal; range?: { from: number; to: number }; onProgress?: (done: number) => void },
): Promise<{ sums: ColumnSums | null; records: number }> {
  let sums: ColumnSums | null = null;
  let records = 0;
  for await (const { texts } of rangeBatches(input, o.range, o.signal)) {
    const data = await embedBatch(texts, embedder, cache, o.signal);
    const part = await columnSums(model, { data, rows: texts.length, cols: embedder.dim }, o.signal);
    sums = sums === null ? part : await mergeColumnSums([sums, part]);
    records += texts.length;
    o.onProgress?.(records);
  }
  return { sums, records };
}

/** The `refit` option: a number of column passes, or `'auto'` (see `REFIT_AUTO`). */
export type Refit = number | 'auto';

/** Refit passes to run: at most `passes`, stopping early once a pass's marginal error is below `tolerance` (null: never). */
export interface RefitPlan {
  passes: number;
  tolerance: number | null;
}

/** What the refit passes did: the model they give, the passes run, the last pass's marginal error (null: none ran). */
export interface Refined {
  model: Model;
  passes: number;
  error: number | null;
}

/** Column updates of the model's reference potentials over all records of `input`, as `plan` says. */
export async function refitOver(
  input: PipelineInput,
  model: Model,
  embedder: Embedder,
  cache: Cache,
  plan: RefitPlan,
  o: { signal?: AbortSignal; onProgress?: (pass: number, done: number) => void } = {},
): Promise<Refined> {
  let error: number | null = null;
  let p = 0;
  while (!refitDone(plan, p, error)) {
    const { sums } = await sumColumns(input, model, embedder, cache, {
      signal: o.signal,
      onProgress: (d) => o.onProgress?.(p, d),
    });
    if (sums === null) throw new OptionError('ERR_OPTION', `${input.dataset.path}: no records to refit on`);
    ({ model, error } = await refitModel(model, [sums]));
    p++;
  }
  return { model, passes: p, error };
}

/** Whether the passes are done after `passes` of them, the last with marginal error `error`. */
export function refitDone(plan: RefitPlan, passes: number, error: number | null): boolean {
  return passes >= plan.passes || (plan.tolerance !== null && error !== null && error < plan.tolerance);
}

/** Checks a `refit` option: a number of passes, or `'auto'`. */
export function refitPasses(refit: Refit | undefined, fallback: number): RefitPlan {
  if (refit === 'auto') return { passes: REFIT_AUTO.maxPasses, tolerance: REFIT_AUTO.tolerance };
  const r = refit ?? fallback;
  if (!(Number.isInteger(r) && r >= 0 && r <= 100))
    throw new OptionError('ERR_OPTION', `refit must be 'auto' or an integer from 0 to 100, got ${String(refit)}`);
  return { passes: r, tolerance: null };
}

/** Opens the model and the input and the embedder the model names (checked against it). */
export async function openScoring(
  o: DatasetSource &
    Pick<ScoreOptions, 'model' | 'embedder' | 'embeddingCache' | 'cacheDir' | 'weightField'> &
    Pick<OpenDatasetOptions, 'range' | 'layout'>,
  written: boolean,
) {
  if (typeof o?.model !== 'string' || o.model === '') throw new OptionError('ERR_OPTION', 'model must be a file path');
  if (typeof o.input !== 'string' || o.input === '') throw new OptionError('ERR_OPTION', 'input must be a file path');
  const given = embedderOption(o.embedder);
  const model = await loadModel(o.model);
  const embedder = modelEmbedder(model, o.model, given);
  const input = await PipelineInput.open(
    { ...o, template: model.header.template ?? undefined },
    written ? { weightField: o.weightField } : undefined,
  );
  const cache = await openEmbeddingCache(o, embedder);
  return { model, embedder, input, cache };
}

/** `keep: 'auto'` from the model's fit: its automatic K on its sample, scaled to `n` records (`autoKeepCount`). */
function autoKeep(model: Model, file: string): { keep: (n: number) => Keep; warnings: string[] } {
  const h = model.header;
  const c = h.contamination as ContaminationEstimate | undefined;
  if (c && h.autoKeep === undefined)
    throw new OptionError(
      'ERR_OPTION',
      `${file}: keep 'auto' needs the fit's automatic K, which this model file (written by an earlier version) does not record: fit again, or give a fixed keep`,
    );
  const k = c ? (h.autoKeep ?? null) : h.fit.sample;
  if (k !== null && !(Number.isInteger(k) && k >= 0 && k <= h.fit.sample))
    throw new ModelFileError(
      file,
      'corrupt',
      `autoKeep ${JSON.stringify(k)} is no count of the fit's ${h.fit.sample} samples`,
    );
  return { keep: (n) => ({ count: autoKeepCount(c, k, h.fit.sample, n) }), warnings: autoKeepWarnings(c, k) };
}

/** Records kept by count, fraction or threshold; training weights ∝ exp(score), the learner's Gibbs form. */
export async function selectScored(
  scores: Float64Array,
  keep: Keep | undefined,
  threshold: number | undefined,
): Promise<Selection> {
  let k: Keep;
  if (threshold !== undefined) {
    if (!Number.isFinite(threshold))
      throw new OptionError('ERR_OPTION', `threshold must be a finite number, got ${String(threshold)}`);
    if (keep !== undefined) throw new OptionError('ERR_OPTION', 'use keep or threshold, not both');
    let count = 0;
    for (const s of scores) if (s >= threshold) count++;
    k = { count };
  } else {
    k = keep ?? { fraction: 1 };
    // an explicit count of 0 is refused there like purify's; only a threshold may pass nothing
    if ('count' in k && k.count === 0) return selectByScore(scores, k);
  }
  if ('count' in k && k.count === 0) {
    // nothing passes: an empty selection (selectTopK refuses K = 0)
    const n = scores.length;
    return {
      order: new Uint32Array(0),
      rank: new Uint32Array(n).fill(n),
      kept: new Uint8Array(n),
      trainWeight: new Float64Array(n),
      k: 0,
    };
  }
  return selectByScore(scores, k);
}

/** The scores file's header line (`score`'s and a sharded run's). */
export const SCORES_CSV_HEADER = 'index,line,score,pull,push,rank,kept,train_weight\n';

export async function writeScoresCsv(
  out: AtomicWriter,
  r: ScoredRecords,
  selection: Selection | null,
  signal?: AbortSignal,
): Promise<void> {
  await out.write(SCORES_CSV_HEADER);
  await writeScoreRows(out, r, selection, 0, signal);
}

/**
 * The scores file's rows of the records `r` (and `selection`) hold, the
 * first numbered `from`: the whole file's after its header, or one shard's
 * part of it.
 */
export async function writeScoreRows(
  out: AtomicWriter,
  r: ScoredRecords,
  selection: Pick<Selection, 'rank' | 'kept' | 'trainWeight'> | null,
  from: number,
  signal?: AbortSignal,
): Promise<void> {
  let chunk = '';
  for (let i = 0; i < r.score.length; i++) {
    const sel = selection ? `${selection.rank[i]},${selection.kept[i]},${selection.trainWeight[i]}` : ',,';
    chunk += `${from + i},${r.lines[i]},${r.score[i]},${r.pull[i]},${r.push[i]},${sel}\n`;
    if (chunk.length > 1 << 16) {
      if (signal?.aborted) throw new AbortError();
      await out.write(chunk);
      chunk = '';
    }
  }
  await out.write(chunk);
}

/**
 * The reasons of the records `selection` drops, against `model`: their
 * nearest harmful points (only they are embedded again) and every record's
 * split into pull and push, as a sharded run gives them.
 */
async function explainDropped(
  input: PipelineInput,
  model: Model,
  r: ScoredRecords,
  selection: Selection,
  o: {
    embedder: Embedder;
    cache: Cache;
    file: string;
    signal?: AbortSignal;
    onProgress?: ScoreOptions['onProgress'];
  },
): Promise<Audit> {
  const n = r.score.length;
  const rows = new Uint32Array(n - selection.k);
  for (let i = 0, at = 0; i < n; i++) if (!selection.kept[i]) rows[at++] = i;
  o.onProgress?.({ stage: 'reasons', done: 0, total: rows.length });
  const near = await nearestOf(input, rows, harmfulForReasons(model).points, o.embedder, o.cache, {
    neighbours: 1,
    cost: model.header.cost,
    signal: o.signal,
  });
  if (near.records !== n)
    throw new InputError(
      { file: o.file },
      `has ${near.records} records now, ${n} when scored (it changed during the run?)`,
    );
  o.onProgress?.({ stage: 'reasons', done: rows.length, total: rows.length });
  // the own-harm points are means of the fit's records: named by their file when it is another
  const fitInput = model.header.fit.input;
  const other = resolve(fitInput) !== resolve(o.file);
  return (await modelAudit(model, r, { rows, near }, other ? fitInput : undefined)).audit;
}

/** Scores records against a model file; with `keep` or `threshold` also writes the purified dataset and the removed records. Outputs commit together. */
export async function score(options: ScoreOptions): Promise<ScoreResult> {
  const o = { ...options, onProgress: settledProgress(options?.onProgress) };
  const purified = o.keep !== undefined || o.threshold !== undefined;
  const scoresPath = o.scores ?? o.input.replace(/(\.[^./\\]+)?$/, '.scores.csv');
  const output = purified ? (o.output ?? o.input.replace(/(\.[^./\\]+)?$/, (ext) => `.purified${ext}`)) : null;
  if (!purified && o.output !== undefined) throw new OptionError('ERR_OPTION', 'output needs keep or threshold');
  if (!purified && typeof o.removed === 'string')
    throw new OptionError('ERR_OPTION', 'removed needs keep or threshold');
  if (o.removed !== undefined && o.removed !== null && (typeof o.removed !== 'string' || o.removed === ''))
    throw new OptionError('ERR_OPTION', 'removed must be a file path or null');
  const removedPath = purified ? outputPaths({ input: o.input, output: o.output, removed: o.removed }).removed : null;
  if (o.threshold !== undefined && o.keep !== undefined)
    throw new OptionError('ERR_OPTION', 'use keep or threshold, not both');
  const plan = refitPasses(o.refit, 0);
  const saveModel = o.saveModel ?? null;
  if (saveModel !== null && (typeof saveModel !== 'string' || saveModel === ''))
    throw new OptionError('ERR_OPTION', 'saveModel must be a file path');
  if (saveModel !== null && plan.passes < 1)
    throw new OptionError('ERR_OPTION', 'saveModel needs refit >= 1: without a refit the model is unchanged');
  const outs = [
    { path: scoresPath, what: 'the scores output' },
    ...(output ? [{ path: output, what: 'the dataset output' }] : []),
    ...(removedPath ? [{ path: removedPath, what: 'the removed records' }] : []),
  ];
  const modelOut = saveModel === null ? [] : [{ path: saveModel, what: 'the model output' }];
  // a missing folder, an output onto the input or another output: now, not after the work
  await assertWritable([...outs, ...modelOut], [{ path: o.input, what: 'the input file' }]);
  // The refined model may replace the loaded one (refining in place): it is read whole first.
  await assertNoCollision(outs, [{ path: o.model, what: 'the model file' }]);
  const opened = await openScoring(o, purified);
  const { embedder, input, cache } = opened;
  // before any work: an older model file without the fit's automatic K is refused here
  const auto = o.keep === 'auto' ? autoKeep(opened.model, o.model) : null;
  const { model, passes, error } = await refitOver(input, opened.model, embedder, cache, plan, {
    signal: o.signal,
    onProgress: (_p, d) => o.onProgress?.({ stage: 'refit', done: d }),
  });
  const r = await scoreRecords(input, model, embedder, cache, {
    signal: o.signal,
    onProgress: (d) => o.onProgress?.({ stage: 'score', done: d }),
  });
  const n = r.score.length;
  if (n === 0) throw new OptionError('ERR_OPTION', `${o.input}: no records to score`);
  const keep = auto ? auto.keep(n) : (o.keep as Keep | undefined);
  const selection = purified ? await selectScored(r.score, keep, o.threshold) : null;
  o.onProgress?.({ stage: 'select', done: selection?.k ?? n, total: n });
  const audit =
    removedPath && selection
      ? await explainDropped(input, model, r, selection, {
          embedder,
          cache,
          file: o.input,
          signal: o.signal,
          onProgress: o.onProgress,
        })
      : null;
  const staged: AtomicWriter[] = [];
  // The refined model: staged first, committed last (after the outputs it describes).
  let refined: AtomicWriter | null = null;
  try {
    if (saveModel !== null)
      refined = await stageModel(
        saveModel,
        withRefit(model, { passes, records: n, input: o.input, ...(error === null ? {} : { error }) }, r.score),
      );
    if (output && selection) {
      const w = await openAtomicWriter(output, { nonRegular: 'stream' });
      staged.push(w);
      await writeRecords(input.dataset, w, {
        keep: (i: number) => (selection.kept[i] ? selection.trainWeight[i] : undefined),
        weightField: o.weightField,
        signal: o.signal,
        onProgress: (d) => o.onProgress?.({ stage: 'write', done: d, total: n }),
      });
      await w.prepare();
    }
    if (removedPath && selection && audit) {
      const w = await openAtomicWriter(removedPath, { nonRegular: 'stream' });
      staged.push(w);
      await writeRemoved(w, { input, score: r.score, selection, audit, signal: o.signal });
      await w.prepare();
    }
    const w = await openAtomicWriter(scoresPath, { nonRegular: 'stream' });
    staged.push(w);
    await writeScoresCsv(w, r, selection, o.signal);
    await w.prepare();
    if (refined) staged.push(refined);
    if (o.signal?.aborted) throw new AbortError();
  } catch (err) {
    await Promise.all([...staged, ...(refined ? [refined] : [])].map((w) => w.abort()));
    throw err;
  }
  await commitAll(staged);
  return {
    records: n,
    kept: selection?.k ?? null,
    outputs: { scores: scoresPath, dataset: output, removed: removedPath, model: saveModel },
    scores: r.score,
    selection,
    refit: { passes, error },
    warnings: auto?.warnings ?? [],
  };
}
