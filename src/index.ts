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
export {
  METHODS,
  learnWeights,
  scoreSamples,
  type LearnResult,
  type LearnerOptions,
  type Method,
  type PurifySets,
  type ScoreOptions,
  type Scores,
} from './learner.js';
export { selectTopK, type Keep, type Selection } from './selection.js';
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
