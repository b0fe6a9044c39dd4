import { cancellable } from './cancellable.js';
import { type MatrixLike, type StoredMatrix, toPoints } from './matrix.js';
import { native, type ProgressEvent } from './native.js';
import { progress } from './options.js';
import type { OperationOptions } from './ot.js';

export interface Project2dOptions extends OperationOptions {
  onProgress?: (event: ProgressEvent) => void;
  progressIntervalMs?: number;
}

/**
 * Coordinates of the rows of `points` (n x d) on their top two principal
 * components after centring, row-major n x 2 (`[x0, y0, x1, y1, ...]`), for
 * scatter plots. Deterministic: each component's largest loading is positive.
 * With d = 1 or a set of rank < 2 the missing coordinates are 0.
 */
export async function project2d(
  points: MatrixLike | StoredMatrix,
  options: Project2dOptions = {},
): Promise<Float32Array> {
  const m = toPoints(points, 'points');
  const interval = progress(options.onProgress, options.progressIntervalMs);
  return cancellable(
    options.signal,
    (token, onProgress) => native.project2d(m, token, onProgress, interval),
    options.onProgress,
  );
}
