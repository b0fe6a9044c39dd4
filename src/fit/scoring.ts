// Scores embedded samples against a model, and refines a model's reference
// potentials over all records (the numerics run in Rust: sot_core::score,
// sot_core::refit).
import { cancellable } from '../cancellable.js';
import type { AnyMatrix, Matrix } from '../matrix.js';
import { native, type ColumnSumsOutput, type ProgressEvent } from '../native.js';
import { keepArgs, type Keep, type Selection } from '../selection.js';
import type { Model } from './model.js';

export interface Scored {
  /** Per sample: distance from the anchor through the model's scale (high = far). */
  pull: Float64Array;
  /** Per sample: distance from harm through the model's scale (high = far from harm). */
  push: Float64Array;
  /** `(push - pull) / tau`: the log of the learner's Gibbs weight, up to a constant. Higher = keep. */
  score: Float64Array;
}

/** What a part of the records contributes to the update of a model's reference potentials; parts of disjoint records merge. */
export type ColumnSums = ColumnSumsOutput;

function nativeModel(model: Model) {
  const h = model.header;
  const ref = (s: Model['anchor']) => ({ points: s.points, weights: s.weights, potential: s.potential });
  return { cost: h.cost, eps: h.eps, anchor: ref(model.anchor), harmful: ref(model.harmful), scale: h.scale };
}

/** Scores each row of `samples` alone: the same in any batch, shard or order. */
export function scoreMatrix(
  model: Model,
  samples: AnyMatrix,
  options: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void } = {},
): Promise<Scored> {
  const m = nativeModel(model);
  return cancellable(
    options.signal,
    (token, onProgress) => native.scoreWithModel(samples, m, token, onProgress, onProgress ? 100 : undefined),
    options.onProgress,
  );
}

/** The rows' contribution to one column update of the model's reference potentials. */
export function columnSums(model: Model, samples: Matrix, signal?: AbortSignal): Promise<ColumnSums> {
  const m = nativeModel(model);
  return cancellable(signal, (token) => native.columnSums(samples, m, token));
}

/** Merges parts of disjoint records into one. */
export function mergeColumnSums(parts: ColumnSums[]): Promise<ColumnSums> {
  return cancellable(undefined, () => native.mergeColumnSums(parts));
}

/**
 * The model with its reference potentials updated over the records whose
 * parts are given (all of them, disjoint, summed under `model`): one
 * Sinkhorn column update with the learner's Gibbs weights, and the L1 error
 * of the reference marginals under the potentials it replaced
 * (docs/model-file.md, "Refining over all records").
 */
export async function refitModel(model: Model, parts: ColumnSums[]): Promise<{ model: Model; error: number }> {
  const previous = {
    anchorWeights: model.anchor.weights,
    anchorPotential: model.anchor.potential,
    harmfulWeights: model.harmful.weights,
    harmfulPotential: model.harmful.potential,
  };
  const g = await cancellable(undefined, () => native.refitPotentials(parts, model.header.eps, previous));
  return {
    model: {
      ...model,
      anchor: { ...model.anchor, potential: g.anchor },
      harmful: { ...model.harmful, potential: g.harmful },
    },
    error: g.error,
  };
}

/** Keeps the top records by score; training weights in the learner's Gibbs form, `∝ exp(score)`, mean 1 over the kept. */
export function selectByScore(scores: Float64Array, keep: Keep): Promise<Selection> {
  const [count, fraction] = keepArgs(keep);
  return cancellable(undefined, () => native.selectScored(scores, count, fraction));
}
