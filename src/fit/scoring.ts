// Scores embedded samples against a model (the c-transform runs in Rust).
import { cancellable } from '../cancellable.js';
import type { Matrix } from '../matrix.js';
import { native, type ProgressEvent } from '../native.js';
import type { Model } from './model.js';

export interface Scored {
  /** Per sample: distance from the anchor through the model's scale (high = far). */
  pull: Float64Array;
  /** Per sample: distance from harm through the model's scale (high = far from harm). */
  push: Float64Array;
  /** `(push - pull) / tau`: the log of the learner's Gibbs weight, up to a constant. Higher = keep. */
  score: Float64Array;
}

/** Scores each row of `samples` alone: the same in any batch, shard or order. */
export function scoreMatrix(
  model: Model,
  samples: Matrix,
  options: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void } = {},
): Promise<Scored> {
  const h = model.header;
  const ref = (s: Model['anchor']) => ({ points: s.points, weights: s.weights, potential: s.potential });
  const m = { cost: h.cost, eps: h.eps, anchor: ref(model.anchor), harmful: ref(model.harmful), scale: h.scale };
  return cancellable(
    options.signal,
    (token, onProgress) => native.scoreWithModel(samples, m, token, onProgress, onProgress ? 100 : undefined),
    options.onProgress,
  );
}
