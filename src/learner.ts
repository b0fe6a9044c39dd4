import { cancellable } from './cancellable.js';
import { OptionError } from './errors.js';
import { type StoredMatrix, toPoints, toWeights, type MatrixLike, type Weights } from './matrix.js';
import { native, type FittedOutput, type LearnOptions as NativeLearnOptions, type LearnSets } from './native.js';
import { bool, costKind, count, num, objectArg, progress, type CostKind } from './options.js';
import type { OperationOptions, ProgressEvent } from './ot.js';
import { storageInput, type StorageOptions, type StorageReport } from './storage.js';

/** The sets SOT works with; all embeddings share one dimension. */
export interface PurifySets {
  /**
   * The fine-tuning data to weight (n x d). Each set may also be rows held
   * in native memory (`StoredMatrix`), shared with the core rather than copied.
   */
  downstream: MatrixLike | StoredMatrix;
  /** Trusted clean task samples. Without one, the downstream set itself is the pull target (a warning says so). */
  anchor?: MatrixLike | StoredMatrix;
  anchorWeights?: Weights;
  /** Harmful instruction/response pairs to push away from. */
  harmful: MatrixLike | StoredMatrix;
  harmfulWeights?: Weights;
}

export interface LearnerOptions extends OperationOptions {
  cost?: CostKind;
  /** Entropic regularisation of both OT terms, in cost units. Default 0.05. */
  eps?: number;
  /** Strength of the push away from the harmful reference. Default 1.5 (measured: docs/learner-defaults.md). */
  lambda?: number;
  /** Strength of the KL term that keeps weights spread; weights ∝ exp(-(pull - push) / tau). Default 0.2. */
  tau?: number;
  /** Largest fraction of the way to the Gibbs target per mirror-descent step, in (0, 1]. Default 0.5. */
  step?: number;
  /** Default 500. */
  maxSteps?: number;
  /** Stop when the objective changed by less than this, relatively, over 5 steps. Default 1e-5. */
  tol?: number;
  /** Debiased Sinkhorn divergences instead of OT (needs the n x n self cost). Default false. */
  debiased?: boolean;
  /** Without an anchor, at most this many (evenly spaced) downstream samples form the pull target. Default 50. */
  maxSelfAnchor?: number;
  /**
   * Share of the downstream samples that join the harmful reference for a
   * second solve: the lowest-weighted of a first one, the data's own harm in
   * the task's own form, each as the mean of the 3 others among them nearest
   * it (at most 1,000, evenly spaced among them), in [0, 0.5]; 0 solves once.
   * Default 0.05 (docs/learner-defaults.md, "The data's own harm").
   */
  ownHarmShare?: number;
  /** Their share of the joined harmful reference's mass, in (0, 1). Default 0.3. */
  ownHarmMass?: number;
  /** Inner Sinkhorn solves: tolerance (1e-5), iteration cap (300), over-relaxation (true). */
  inner?: { tol?: number; maxIter?: number; overrelax?: boolean };
  /**
   * How the costs to the anchor and to the harmful reference are held, both
   * within one memory budget (default 4 GiB): dense when they fit (with the
   * kernel stored when that fits too), else each sample's nearest references
   * (`neighbours`, default 256) with a mean-field cost for the rest, verified
   * at the end by one exact pass; the smaller term is stored first.
   */
  storage?: StorageOptions;
  onProgress?: (event: ProgressEvent) => void;
  progressIntervalMs?: number;
}

/**
 * How contaminated the downstream set looks: the share of samples whose
 * learned scores place them with the harmful reference rather than with the
 * anchor (a two-component mixture calibrated on both references; see
 * docs/learner-defaults.md), with its interval at `level`.
 */
export interface ContaminationEstimate {
  /** Estimated share of contaminated samples, in [0, 1]. */
  estimate: number;
  /** The interval at `level` (profile likelihood). */
  low: number;
  high: number;
  level: number;
  /** How it was estimated, in words. */
  method: string;
  /** No evidence of contamination, on an interval narrow enough to act on: `verdict === 'clean'`. */
  clean: boolean;
  /**
   * What the interval says (docs/learner-defaults.md): `clean` (lower end below 3%
   * and upper end below 10%), `contaminated` (lower end at 3% or above), or
   * `inconclusive` (lower end below 3%, upper end at 10% or above: no automatic K).
   */
  verdict: 'clean' | 'contaminated' | 'inconclusive';
}

export interface LearnResult {
  /** One weight per downstream sample, summing to 1. Higher = keep. */
  weights: Float64Array;
  /** Per sample: how far from the anchor (centred gradient of the pull term). Higher = worse. */
  pull: Float64Array;
  /** Per sample: lambda × how far from harm (centred gradient of the push term). Higher = better. */
  push: Float64Array;
  /** J(w) at the start and after each step, of the last solve (the second when the data's own harm joined the reference). */
  objective: Float64Array;
  /** Mirror-descent steps of both solves. */
  steps: number;
  converged: boolean;
  /** Every inner Sinkhorn solve of the last step converged. */
  innerConverged: boolean;
  /** Sinkhorn iterations of all inner solves together: nearly the cost in passes over the cost matrices (a solve may add one pass that only measured its error, see `SinkhornResult.passes`). */
  innerIterations: number;
  anchorIsDownstream: boolean;
  /** How contaminated the downstream set looks; absent with the debiased objective. */
  contamination?: ContaminationEstimate;
  /** The estimate's own K: all samples when the data look clean (or there is no estimate); when they look contaminated, the lowest-scoring samples are dropped up to the interval's upper end (the estimated share and its margin; docs/learner-defaults.md); `null` when the verdict is inconclusive. `purify` with `keep: 'auto'` keeps its default fraction when it is `null`, and at most that fraction on contaminated data (`autoKeepCount`). */
  autoKeep: number | null;
  /** How the costs to the anchor and to the harmful reference were held (and, if truncated, how far off they were). */
  anchorStorage: StorageReport;
  harmfulStorage: StorageReport;
  /** The reference side of the last solves: what a model file holds to score new records (`fit`, `score`). */
  fitted: FittedOutput;
  warnings: string[];
}

/** The selection methods: SOT and the baselines it is compared with. */
export type Method = 'sot' | 'random' | 'pull-only' | 'push-only' | 'nearest-harmful' | 'saft';

export const METHODS: readonly Method[] = ['sot', 'random', 'pull-only', 'push-only', 'nearest-harmful', 'saft'];

export interface ScoreOptions extends LearnerOptions {
  /** Seed of the `random` baseline. Default 0. */
  seed?: number;
  /** Singular directions of the `saft` baseline. Default 1. */
  components?: number;
}

export interface Scores {
  method: Method;
  /** One score per downstream sample; higher = keep. For `sot`, the learned weights. */
  scores: Float64Array;
  /** Training weights to carry into selection (`sot` only). */
  weights?: Float64Array;
  /** The full learner result (`sot` only). */
  learned?: LearnResult;
  warnings: string[];
}

/** Learns one weight per downstream sample by push-pull optimal transport (SOT). */
export async function learnWeights(sets: PurifySets, options: LearnerOptions = {}): Promise<LearnResult> {
  options = objectArg('options', options);
  const native_sets = toSets(sets);
  const opts = learnOptions(options);
  const r = await cancellable(
    options.signal,
    (token, onProgress) => native.learnWeights(native_sets, opts, token, onProgress),
    options.onProgress,
  );
  // the binding leaves out a K it does not give; its verdict is one of the three the type names
  return { ...r, autoKeep: r.autoKeep ?? null } as LearnResult;
}

/** Scores the downstream samples with SOT or a baseline, behind one interface. */
export async function scoreSamples(method: Method, sets: PurifySets, options: ScoreOptions = {}): Promise<Scores> {
  if (!METHODS.includes(method)) {
    throw new OptionError('ERR_OPTION', `unknown method '${String(method)}' (expected ${METHODS.join(', ')})`);
  }
  options = objectArg('options', options);
  if (method === 'sot') {
    const learned = await learnWeights(sets, options);
    return { method, scores: learned.weights, weights: learned.weights, learned, warnings: learned.warnings };
  }
  const seed = options.seed === 0 ? 0 : count('seed', options.seed);
  const components = count('components', options.components);
  const native_sets = toSets(sets);
  const opts = learnOptions(options);
  const out = await cancellable(options.signal, (token) =>
    native.baselineScores(method, native_sets, opts, seed, components, token),
  );
  return { method, scores: out.scores, warnings: out.warnings };
}

function toSets(s: PurifySets): LearnSets {
  objectArg('sets', s);
  return {
    downstream: toPoints(s.downstream, 'downstream'),
    anchor: s.anchor === undefined ? undefined : toPoints(s.anchor, 'anchor'),
    anchorWeights: toWeights(s.anchorWeights, 'anchorWeights'),
    harmful: toPoints(s.harmful, 'harmful'),
    harmfulWeights: toWeights(s.harmfulWeights, 'harmfulWeights'),
  };
}

function learnOptions(o: LearnerOptions): NativeLearnOptions {
  return {
    cost: costKind(o.cost),
    eps: num('eps', o.eps),
    lambda: num('lambda', o.lambda),
    tau: num('tau', o.tau),
    step: num('step', o.step),
    maxSteps: count('maxSteps', o.maxSteps),
    tol: num('tol', o.tol),
    debiased: bool('debiased', o.debiased),
    maxSelfAnchor: count('maxSelfAnchor', o.maxSelfAnchor),
    ownHarmShare: num('ownHarmShare', o.ownHarmShare),
    ownHarmMass: num('ownHarmMass', o.ownHarmMass),
    innerTol: num('inner.tol', o.inner?.tol),
    innerMaxIter: count('inner.maxIter', o.inner?.maxIter),
    innerOverrelax: bool('inner.overrelax', o.inner?.overrelax),
    storage: storageInput(o.storage),
    progressIntervalMs: progress(o.onProgress, o.progressIntervalMs),
  };
}
