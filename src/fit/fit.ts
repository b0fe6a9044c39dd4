// `fit()`: learn the reference potentials once (on all records or a uniform
// sample of them) and write them as a model file that `score()` applies to
// any records.
import { createRequire } from 'node:module';
import { HashingEmbedder } from '../embed/hashing.js';
import { PrecomputedEmbedder } from '../embed/precomputed.js';
import type { Embedder } from '../embed/types.js';
import { AbortError, OptionError } from '../errors.js';
import { assertWritable } from '../io/index.js';
import { coreDefaults } from '../defaults.js';
import { scoreSamples, type ContaminationEstimate } from '../learner.js';
import { type AnyMatrix, arrayOf, rowsOf, stackRows, storedMatrix } from '../matrix.js';
import { native } from '../native.js';
import { ownHarmOf, sampleExcerpt } from '../pipeline/audit.js';
import { embedDataset, embedInto, embedSamples, openEmbeddingCache } from '../pipeline/embedding.js';
import { BATCH, PipelineInput } from '../pipeline/input.js';
import { learnerBudget, resolveBudget, checkEmbeddingsFit } from '../pipeline/memory.js';
import type { DatasetSource, PurifyOptions, ReferenceSources } from '../pipeline/options.js';
import { embedderOption, settledProgress, uint32 } from '../options.js';
import { runReads } from '../pipeline/paths.js';
import { loadReferences } from '../pipeline/references.js';
import { describeEmbedder, saveModel, scoreQuantiles, type Model } from './model.js';
import { refitOver, refitPasses, type Refit } from './score.js';
import { scoreMatrix } from './scoring.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export type FitStage = 'read' | 'embed' | 'references' | 'learn' | 'refit' | 'write';

export interface FitOptions
  extends ReferenceSources,
    DatasetSource,
    Pick<
      PurifyOptions,
      | 'template'
      | 'embedder'
      | 'embeddingCache'
      | 'dataDir'
      | 'cacheDir'
      | 'offline'
      | 'learner'
      | 'memoryBudget'
      | 'createdAt'
      | 'signal'
    > {
  /** The model file to write. Default `<input stem>.sot-model` next to the input. */
  model?: string;
  /** Learn on this many records drawn uniformly (without replacement); default all. */
  sample?: number;
  /** Seed of the sample. Default 0. */
  seed?: number;
  /**
   * Column updates of the learned reference potentials over every record of
   * the input after learning on the sample, one more pass over the records
   * each; the model file holds the refined potentials (docs/model-file.md,
   * "Refining over all records"); `'auto'` until the marginal error is
   * small (as `score`'s `refit`). Default 0: a fit reads only its sample
   * (`purifySharded` runs its refit passes in its shard workers instead).
   */
  refit?: Refit;
  onProgress?: (event: { stage: FitStage; done: number; total?: number }) => void;
}

export interface FitResult {
  model: string;
  /** Records in the dataset, and in the sample learned on. */
  records: number;
  sample: number;
  /** Record indices of the sample, ascending. */
  sampleIndices: Uint32Array;
  /** Scores of the sample's records, by c-transform against the written model (what `score()` gives them). */
  sampleScores: Float64Array;
  /** Refit passes over every record that the written model went through (0: none). */
  refit: number;
  /** The last refit pass's L1 error of the reference marginals (null: no pass ran). */
  refitError: number | null;
  steps: number;
  converged: boolean;
  /** The learner's contamination estimate on the sample (absent when it gives none). */
  contamination?: ContaminationEstimate;
  /** Records of the sample that `keep: 'auto'` keeps (the learner's automatic K; all without a contamination estimate; `null` when the estimate is inconclusive). */
  autoKeep: number | null;
  /** Bytes the learner's costs were given: the memory budget less what the process held, the core's copies and working copies of the sets (`learnerBudget`) and the reserve. */
  learnerBudget: number;
  warnings: string[];
}

/** The default model path: `dir/stem.sot-model`. */
export function defaultModelPath(input: string): string {
  return input.replace(/(\.[^./\\]+)?$/, '.sot-model');
}

/** `k` distinct indices of `[0, n)`, uniform, ascending (Floyd's algorithm, seeded); each argument an integer from 0 to 2^32 - 1. */
export function uniformSample(n: number, k: number, seed: number): Uint32Array {
  for (const [name, v] of [
    ['n', n],
    ['k', k],
    ['seed', seed],
  ] as const)
    uint32(name, v, true);
  if (k >= n) return Uint32Array.from({ length: n }, (_, i) => i);
  let s = (seed >>> 0) ^ 0x9e3779b9;
  const rand = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const chosen = new Set<number>();
  for (let j = n - k; j < n; j++) {
    const t = Math.floor(rand() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return Uint32Array.from(chosen).sort();
}

/**
 * A fit's passes over every record of its input: in this process (`fit()`),
 * or in shard workers (`purifySharded`, shard-fit.ts), which must give the
 * same count, embedder and rows, so that both write the same model file.
 * Internal: not part of the public API.
 */
export interface RecordPasses {
  /** Counts the records, fitting the embedder on their texts on the way when it wants that; gives the embedder to use from then on. */
  count(
    embedder: Embedder,
    onProgress: (done: number) => void,
    memoryBudget: number,
  ): Promise<{ records: number; embedder: Embedder }>;
  /** The records at `indices` (ascending, of the `records` counted), embedded, in index order. */
  rows(
    indices: Uint32Array,
    records: number,
    embedder: Embedder,
    cache: Cache,
    onProgress: (done: number) => void,
  ): Promise<AnyMatrix>;
}

type Cache = Awaited<ReturnType<typeof openEmbeddingCache>>;

/** The passes over the records in this process: a streaming count, then a read that embeds the sample. */
function localPasses(input: PipelineInput, signal: AbortSignal | undefined): RecordPasses {
  return {
    count: async (embedder, onProgress, memoryBudget) => ({
      records: await input.count(embedder, { signal, onProgress, memoryBudget }),
      embedder,
    }),
    rows: async (indices, records, embedder, cache, onProgress) =>
      indices.length === records
        ? (await embedDataset(input, records, embedder, cache, { signal, onProgress })).matrix
        : embedRows(input, indices, embedder, cache, signal, onProgress, storedMatrix(indices.length, embedder.dim)),
  };
}

export function fit(options: FitOptions): Promise<FitResult> {
  return fitWithPasses(options);
}

/**
 * `fit()`, its passes over every record run by `recordPasses` (default: in this
 * process). Internal: `purifySharded` runs them in its shard workers.
 */
export async function fitWithPasses(options: FitOptions, recordPasses?: RecordPasses): Promise<FitResult> {
  const o = { ...options, onProgress: settledProgress(options?.onProgress) };
  if (typeof o?.input !== 'string' || o.input === '') throw new OptionError('ERR_OPTION', 'input must be a file path');
  if (!Array.isArray(o.harmful) || o.harmful.length === 0)
    throw new OptionError('ERR_OPTION', 'harmful must name at least one file or reference set');
  if (o.sample !== undefined && !(Number.isInteger(o.sample) && o.sample >= 1))
    throw new OptionError('ERR_OPTION', `sample must be a positive integer, got ${String(o.sample)}`);
  uint32('seed', o.seed);
  if (o.learner?.debiased)
    throw new OptionError(
      'ERR_OPTION',
      'a model cannot be fitted with debiased = true: the self term has no c-transform for new records',
    );
  const given: Embedder = embedderOption(o.embedder) ?? new HashingEmbedder();
  // A model embeds the records it scores; precomputed vectors belong to one file and cannot.
  if (given instanceof PrecomputedEmbedder)
    throw new OptionError(
      'ERR_OPTION',
      'a model cannot be fitted on precomputed vectors: it must embed the records it scores later (use the built-in embedder or a model embedder: wink, transformers, openai, llm)',
    );
  const plan = refitPasses(o.refit, 0);
  const modelPath = o.model ?? defaultModelPath(o.input);
  // the model file must not replace a file the fit reads: checked now, not after the work
  await assertWritable([{ path: modelPath, what: 'the model file' }], runReads(o, given));
  const seed = o.seed ?? 0;
  const signal = o.signal;
  const progress = (stage: FitStage, done: number, total?: number) => o.onProgress?.({ stage, done, total });
  const budget = resolveBudget(o.memoryBudget);

  // Count (the built-in embedder fits its document frequencies on every record: a streaming pass, here or in shards).
  const input = await PipelineInput.open(o);
  const run = recordPasses ?? localPasses(input, signal);
  const { records: n, embedder } = await run.count(given, (d) => progress('read', d), budget);
  if (n === 0) throw new OptionError('ERR_OPTION', `${o.input}: no records to fit on`);
  const take = Math.min(n, o.sample ?? n);
  // the rows are held once, in native memory shared with the core (here or gathered from shard workers)
  checkEmbeddingsFit(budget, take, embedder.dim, o.input);
  const cache = await openEmbeddingCache(o, embedder);
  const indices = uniformSample(n, take, seed);
  const downstream = await run.rows(indices, n, embedder, cache, (d) => progress('embed', d, take));

  progress('references', 0);
  const refs = await loadReferences({ ...o, output: undefined } as PurifyOptions);
  const harmful = await embedSamples(refs.harmful.samples, o.template, embedder, cache, { signal });
  const anchor = refs.anchor.samples.length
    ? await embedSamples(refs.anchor.samples, o.template, embedder, cache, { signal })
    : undefined;

  const learner = { ...(embedder as Embedder).learnerDefaults, ...defined(o.learner ?? {}) };
  const storage = {
    budget: learnerBudget(budget, { downstream, anchor, harmful }, { ownHarmShare: learner.ownHarmShare }),
    ...learner.storage,
  };
  const scores = await scoreSamples(
    'sot',
    { downstream, anchor, harmful },
    { ...learner, storage, signal, onProgress: (e) => progress('learn', e.iteration) },
  );
  const learned = scores.learned!;
  const fitted = learned.fitted;
  // the model file holds the points as arrays
  const anchorPoints = (anchor && arrayOf(anchor)) ?? {
    data: rowsOf(downstream, fitted.anchorRows!),
    rows: fitted.anchorRows!.length,
    cols: downstream.cols,
  };
  // The harmful set the potentials describe: the reference's points, then the data's own harm.
  const own = ownHarmOf(fitted, harmful.cols);
  const warnings = [...scores.warnings, ...ownHarmWarning(own.points.rows, take, n, learner.ownHarmShare)];
  const harmfulPoints = stackRows(harmful, own.points);
  const described = describeEmbedder(embedder);
  let model: Model = {
    header: {
      format: 'sot-model',
      version: 1,
      tool: pkg.version,
      createdAt: o.createdAt ?? new Date().toISOString(),
      embedder: described.embedder,
      template: o.template ?? null,
      cost: (learner.cost ?? 'cosine') as 'cosine' | 'sqeuclidean',
      eps: fitted.eps,
      lambda: learner.lambda ?? fitted.scale.pushScale,
      tau: fitted.scale.tau,
      scale: fitted.scale,
      references: {
        harmful: refs.harmful.summary,
        anchor: refs.anchor.summary,
        anchorIsSample: anchor === undefined,
        ownHarm: own.points.rows,
        // the sample's rows as the file's records
        ownHarmRecords: own.members.map((m) => m.map((r) => indices[r]!)),
        excerpts: refs.harmful.samples.map(sampleExcerpt),
      },
      fit: { input: o.input, records: n, sample: take, seed, steps: learned.steps, converged: learned.converged },
      scoreQuantiles: {},
      ...contaminationOf(learned),
    },
    anchor: { points: anchorPoints, weights: fitted.anchorWeights, potential: fitted.anchorPotential },
    harmful: { points: harmfulPoints, weights: fitted.harmfulWeights, potential: fitted.harmfulPotential },
    ...(described.docFreq ? { docFreq: described.docFreq } : {}),
  };
  let passes = 0;
  let refitError: number | null = null;
  if (plan.passes > 0) {
    const r = await refitOver(input, model, embedder, cache, plan, {
      signal,
      onProgress: (_p, d) => progress('refit', d, n),
    });
    ({ passes, error: refitError } = r);
    model = r.model;
    model.header = { ...model.header, refit: { passes, records: n, input: o.input, error: refitError! } };
  }
  // The sample's scores as score() gives them: their quantiles go in the file, to read a threshold against.
  const sampleScores = (await scoreMatrix(model, downstream, { signal })).score;
  model.header.scoreQuantiles = scoreQuantiles(sampleScores);
  progress('write', 0);
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  await saveModel(modelPath, model);
  return {
    model: modelPath,
    records: n,
    sample: take,
    sampleIndices: indices,
    sampleScores,
    refit: passes,
    refitError,
    steps: learned.steps,
    converged: learned.converged,
    ...(learned.contamination ? { contamination: learned.contamination } : {}),
    autoKeep: learned.contamination ? learned.autoKeep : take,
    learnerBudget: storage.budget as number,
    warnings,
  };
}

/**
 * A sample with fewer own-harm points than its whole dataset would give:
 * a refit does not draw them again, so the scores stay further from a fit
 * on every record than its marginal error says (docs/model-file.md).
 */
function ownHarmWarning(points: number, sample: number, records: number, share: number | undefined): string[] {
  const whole = native.ownHarmCount(records, share ?? coreDefaults().learner.ownHarmShare);
  if (sample >= records || points >= whole) return [];
  return [
    `the data's own harm came from the ${sample}-record sample: ${points} points, where all ${records} records give ${whole}, and a refit does not draw them again, so the kept set can differ from a fit on every record (docs/model-file.md); a larger sample or --own-harm 0 reproduces one`,
  ];
}

/**
 * Embeds the records at `indices` (ascending) into the rows of `out`,
 * streaming the file up to the last of them: a `StoredMatrix` in this
 * process, an array where the rows cross to a shard worker's parent.
 */
export async function embedRows<M extends AnyMatrix>(
  input: PipelineInput,
  indices: Uint32Array,
  embedder: Embedder,
  cache: Cache,
  signal: AbortSignal | undefined,
  onProgress: (done: number) => void,
  out: M,
): Promise<M> {
  let at = 0; // next position in indices
  let index = 0; // record index of the batch's first text
  let rows = 0;
  let pending: string[] = [];
  const flush = async () => {
    if (!pending.length) return;
    await embedInto(pending, embedder, cache, out, rows, signal);
    rows += pending.length;
    pending = [];
    onProgress(rows);
  };
  for await (const { texts } of input.batches({ signal })) {
    while (at < indices.length && indices[at]! < index + texts.length) pending.push(texts[indices[at++]! - index]!);
    index += texts.length;
    if (pending.length >= BATCH) await flush();
    if (at === indices.length) break;
  }
  await flush();
  if (rows !== indices.length)
    throw new OptionError('ERR_OPTION', `${input.dataset.path}: the file changed while it was being read`);
  return out;
}

/** The learner's contamination estimate and its automatic K, on builds whose learner gives one. */
function contaminationOf(learned: object): { contamination?: unknown; autoKeep?: number | null } {
  const { contamination: c, autoKeep } = learned as { contamination?: unknown; autoKeep?: number | null };
  return c === undefined || c === null ? {} : { contamination: c, autoKeep: autoKeep ?? null };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
