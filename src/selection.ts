import { cancellable } from './cancellable.js';
import { OptionError } from './errors.js';
import { toWeights, type Weights } from './matrix.js';
import { native } from './native.js';

/** How many samples to keep: a count, or a fraction in (0, 1] (rounded, at least 1). */
export type Keep = { count: number } | { fraction: number };

export interface Selection {
  /** Sample indices from best to worst score. */
  order: Uint32Array;
  /** Rank of each sample (0 = best). */
  rank: Uint32Array;
  /** 1 for kept samples, 0 for dropped ones. */
  kept: Uint8Array;
  /** Training-loss weight: mean 1 over the kept samples, 0 for the dropped. */
  trainWeight: Float64Array;
  /** How many were kept. */
  k: number;
}

/**
 * Keeps the top samples by score (higher is better; ties go to the lower
 * index). Training weights are proportional to `weights` over the kept
 * samples (uniform when absent), normalised to mean 1.
 */
export async function selectTopK(scores: Weights, keep: Keep, weights?: Weights): Promise<Selection> {
  const s = toWeights(scores, 'scores')!;
  const w = toWeights(weights, 'weights');
  const [count, fraction] = keepArgs(keep);
  return cancellable(undefined, () => native.selectTopK(s, count, fraction, w));
}

/** The count `keep` resolves to over `n` samples, as the core resolves it (a fraction rounded to the nearest count, at least 1). */
export function keepCount(keep: Keep, n: number): number {
  return 'count' in keep ? keep.count : Math.max(1, Math.round(keep.fraction * n));
}

/** `keep` as the binding takes it: `[count, fraction]`, one of them given. */
export function keepArgs(keep: Keep): [number | undefined, number | undefined] {
  let count: number | undefined;
  let fraction: number | undefined;
  if (typeof keep !== 'object' || keep === null) {
    throw new OptionError('ERR_OPTION', `keep must be { count } or { fraction }, got ${String(keep)}`);
  } else if ('count' in keep) {
    if (!Number.isInteger(keep.count) || keep.count < 0 || keep.count > 0xffff_ffff) {
      throw new OptionError('ERR_OPTION', `keep.count must be a non-negative integer, got ${String(keep.count)}`);
    }
    count = keep.count;
  } else if ('fraction' in keep && typeof keep.fraction === 'number') {
    fraction = keep.fraction;
  } else {
    throw new OptionError('ERR_OPTION', 'keep must be { count } or { fraction }');
  }
  return [count, fraction];
}

/**
 * Every sample's Gibbs weight over all samples, `∝ exp(score)`, summing to 1:
 * the learner's weights from the scores `score()` or `scoreSamples` give, for
 * example to merge scores computed apart. A non-finite score is a
 * `NonFiniteError` naming its index.
 */
export async function gibbsWeights(scores: Weights): Promise<Float64Array> {
  const s = toWeights(scores, 'scores')!;
  return cancellable(undefined, () => native.gibbsWeights(s));
}
