/**
 * SOT: Safety Optimal Transport. Optimal-transport numerics over embeddings
 * (Rust core, multithreaded, off the JS thread) for purifying fine-tuning data.
 */
export {
  costMatrix,
  sinkhorn,
  sinkhornDivergence,
  threadCount,
  type CostKind,
  type CostProblem,
  type DivergenceResult,
  type OperationOptions,
  type PointsProblem,
  type ProgressEvent,
  type SinkhornOptions,
  type SinkhornResult,
} from './ot.js';
export type { Matrix, MatrixLike, Weights } from './matrix.js';
export {
  AbortError,
  EmptyInputError,
  InternalError,
  NonFiniteError,
  NumericError,
  OptionError,
  ShapeError,
  SotError,
  WeightError,
  ZeroNormError,
  type ErrorCode,
} from './errors.js';
