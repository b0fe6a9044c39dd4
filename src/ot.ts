import { cancellable } from './cancellable.js';
import { OptionError } from './errors.js';
import { toMatrix, toWeights, type Matrix, type MatrixLike, type Weights } from './matrix.js';
import { native, type ProgressEvent, type SolveOptions } from './native.js';
import { bool, costKind, count, num, objectArg, progress, type CostKind } from './options.js';
import { storageInput, type StorageOptions, type StorageReport } from './storage.js';

export type { CostKind, ProgressEvent };

export interface OperationOptions {
  /** Cancels the operation, also while it runs; it then rejects with `AbortError`. */
  signal?: AbortSignal;
}

export interface SinkhornOptions extends OperationOptions {
  /** Entropic regularisation in cost units. Default 0.05 (cosine costs lie in [0, 2]). */
  eps?: number;
  /** Stop when the L1 marginal error falls below this (weights have mass 1). Default 1e-6. */
  tol?: number;
  /** Most iterations, eps-scaling included. Default 1000. */
  maxIter?: number;
  /** Test convergence every this many iterations. Default 1 (the test is free). */
  checkEvery?: number;
  /** Anneal eps from `start` (default: the largest cost) by `factor` per iteration down to `eps`. */
  epsScaling?: { factor: number; start?: number };
  /** Over-relax the updates once convergence turns slow, as at small eps. Default true. */
  overrelax?: boolean;
  /**
   * How the costs are held, within a memory budget. From points: dense,
   * truncated or blocked as planned; from a cost matrix, the kernel is stored
   * beside it when `storeKernel` and the budget allow.
   */
  storage?: StorageOptions;
  /**
   * Solves from points: finish on the exact costs, i.e. run the last passes
   * on the costs recomputed in float64 from the points (tile by tile, never
   * stored) until the marginal error on them meets `tol`; `marginalError` is
   * then the error on those costs. The f32 costs differ from them by about
   * 2^-23 times the largest cost, which moves each plan entry by that over
   * `eps`: `'auto'` (default) turns the finish on when `tol` is below that
   * (for the cosine cost, `tol < 2.4e-7 / eps`) and the costs are held
   * exactly (dense or blocked, not truncated). Solves from a cost matrix
   * have no points and solve the matrix as given.
   */
  exactCosts?: 'auto' | 'on' | 'off';
  /** Called at most every `progressIntervalMs` (default 100) while the solve runs, and at its end. */
  onProgress?: (event: ProgressEvent) => void;
  progressIntervalMs?: number;
}

export interface SinkhornResult {
  /** Entropic OT value `<a, f> + <b, g>` (= `<P, C> + eps KL(P | a x b)` at convergence). */
  value: number;
  /** Potential of each source point (row of the cost). */
  f: Float64Array;
  /** Potential of each target point (column of the cost). */
  g: Float64Array;
  /** Gradient of `value` with respect to the source weights, centred to sum zero. */
  gradA: Float64Array;
  /** Gradient of `value` with respect to the target weights, centred. */
  gradB: Float64Array;
  /**
   * L1 marginal error of the returned potentials, on the costs as held (a
   * stored kernel rounds each entry to f32: within about 1e-7 of the error on
   * the given costs). One marginal of their plan is exact: the columns when `g`
   * is the soft-min of `f` (this is then the rows' error), or the rows when `f`
   * is the soft-min of `g` (then the columns').
   */
  marginalError: number;
  /** Passes over the costs that updated the potentials. */
  iterations: number;
  /** Passes over the costs in all: `iterations`, plus one when the last pass only measured the error. */
  passes: number;
  /** False when `maxIter` ran out first: the result is usable but less accurate. */
  converged: boolean;
  eps: number;
  /** How the costs were held and, if truncated, how far off they were. */
  storage: StorageReport;
  /** Passes (within `passes`) on the costs recomputed in float64 from the points (`exactCosts`). */
  exactPasses: number;
}

export interface DivergenceResult {
  /** `S(a, b) = OT(a, b) - OT(a, a)/2 - OT(b, b)/2`, not clipped at zero. */
  value: number;
  gradA: Float64Array;
  gradB: Float64Array;
  /** All three solves converged. */
  converged: boolean;
  xy: SinkhornResult;
  xx: SinkhornResult;
  yy: SinkhornResult;
}

/** A problem given by its cost matrix (n x m) and optional weights. */
export interface CostProblem {
  cost: MatrixLike;
  a?: Weights;
  b?: Weights;
}

/** A problem given by two embedding sets (n x d and m x d) and optional weights. */
export interface PointsProblem {
  x: MatrixLike;
  y: MatrixLike;
  cost?: CostKind;
  a?: Weights;
  b?: Weights;
}

/** The cost matrix between the rows of `x` and `y`, computed in parallel GEMM tiles. */
export async function costMatrix(
  x: MatrixLike,
  y: MatrixLike,
  options: OperationOptions & { cost?: CostKind } = {},
): Promise<Matrix> {
  options = objectArg('options', options);
  const [xm, ym] = [toMatrix(x, 'x'), toMatrix(y, 'y')];
  const data = await cancellable(options.signal, (token) => native.costMatrix(xm, ym, costKind(options.cost), token));
  return { data, rows: xm.rows, cols: ym.rows };
}

/**
 * Balanced entropic optimal transport by log-domain Sinkhorn, off the JS thread.
 * Weights are normalised to total mass 1. Non-convergence is reported in the
 * result (`converged: false`), never thrown.
 */
export async function sinkhorn(
  problem: CostProblem | PointsProblem,
  options: SinkhornOptions & { warmStart?: { f?: Float64Array; g?: Float64Array } } = {},
): Promise<SinkhornResult> {
  problem = objectArg('problem', problem);
  options = objectArg('options', options);
  const a = toWeights(problem.a, 'a');
  const b = toWeights(problem.b, 'b');
  const solve = solveOptions(options);
  const warm = warmStart(options.warmStart);
  const progress = options.onProgress;
  if ('cost' in problem && !('x' in problem)) {
    const c = toMatrix(problem.cost, 'cost');
    return cancellable(
      options.signal,
      (token, onProgress) => native.sinkhornCost(c, a, b, solve, warm, token, onProgress),
      progress,
    );
  }
  const p = problem as PointsProblem;
  const [x, y] = [toMatrix(p.x, 'x'), toMatrix(p.y, 'y')];
  return cancellable(
    options.signal,
    (token, onProgress) => native.sinkhornPoints(x, y, costKind(p.cost), a, b, solve, warm, token, onProgress),
    progress,
  );
}

/** Debiased Sinkhorn divergence between two embedding sets, with its gradients. */
export async function sinkhornDivergence(
  problem: PointsProblem,
  options: SinkhornOptions = {},
): Promise<DivergenceResult> {
  problem = objectArg('problem', problem);
  options = objectArg('options', options);
  const [x, y] = [toMatrix(problem.x, 'x'), toMatrix(problem.y, 'y')];
  const a = toWeights(problem.a, 'a');
  const b = toWeights(problem.b, 'b');
  const solve = solveOptions(options);
  return cancellable(
    options.signal,
    (token, onProgress) => native.sinkhornDivergence(x, y, costKind(problem.cost), a, b, solve, token, onProgress),
    options.onProgress,
  );
}

function warmStart(
  w: { f?: Float64Array; g?: Float64Array } | undefined,
): { f?: Float64Array; g?: Float64Array } | undefined {
  if (w === undefined) return undefined;
  objectArg('warmStart', w);
  for (const k of ['f', 'g'] as const)
    if (w[k] !== undefined && !(w[k] instanceof Float64Array))
      throw new OptionError('ERR_OPTION', `warmStart.${k} must be a Float64Array (a result's potentials)`);
  return w;
}

/** Threads of the shared native pool (`SOT_NUM_THREADS` sets it before first use; at most 4 per available core). */
export function threadCount(): number {
  return native.threadCount();
}

function solveOptions(o: SinkhornOptions): SolveOptions {
  return {
    eps: num('eps', o.eps),
    tol: num('tol', o.tol),
    maxIter: count('maxIter', o.maxIter),
    checkEvery: count('checkEvery', o.checkEvery),
    epsScalingFactor: num('epsScaling.factor', o.epsScaling?.factor),
    epsScalingStart: num('epsScaling.start', o.epsScaling?.start),
    overrelax: bool('overrelax', o.overrelax),
    storage: storageInput(o.storage),
    exactCosts: exactCosts(o.exactCosts),
    progressIntervalMs: progress(o.onProgress, o.progressIntervalMs),
  };
}

function exactCosts(v: unknown): 'auto' | 'on' | 'off' | undefined {
  if (v === undefined || v === 'auto' || v === 'on' || v === 'off') return v;
  throw new OptionError('ERR_OPTION', `exactCosts must be 'auto', 'on' or 'off', got ${String(v)}`);
}
