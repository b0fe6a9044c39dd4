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
  type ContaminationEstimate,
  type LearnResult,
  type LearnerOptions,
  type Method,
  type PurifySets,
  type ScoreOptions,
  type Scores,
} from './learner.js';
export { parseBytes, type StorageMode, type StorageOptions, type StorageReport } from './storage.js';
export {
  coreDefaults,
  EMBEDDER_LEARNER_DEFAULTS,
  PURIFY_DEFAULTS,
  REFIT_AUTO,
  type CoreDefaults,
  type EmbedDefaults,
  type EmbedderLearnerDefaults,
  type LearnerDefaults,
  type SinkhornDefaults,
  type StorageDefaults,
} from './defaults.js';
export {
  BUILTIN_DEFAULTS,
  builtinDim,
  LLM_DEFAULTS,
  OPENAI_DEFAULTS,
  TRANSFORMERS_DEFAULTS,
} from './embed/defaults.js';
export { gibbsWeights, selectTopK, type Keep, type Selection } from './selection.js';
export type { AnyMatrix, Matrix, MatrixLike, StoredMatrix, Weights } from './matrix.js';
/** The opaque handle of rows held in native memory (`StoredMatrix.data`). */
export type { ExternalObject } from './native.js';
export { storedMatrix, writeRows } from './matrix.js';
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
export {
  BindingError,
  FetchError,
  InputError,
  IoError,
  type InputLocation,
} from './errors.js';

// The purify pipeline: datasets in, built-in embedder, reference sets, files out.
export { autoKeepCount, purify, type PurifyResult } from './pipeline/purify.js';
export { embedFile, type EmbedFileOptions } from './pipeline/embed-file.js';
export type { DatasetSource, PurifyOptions, ReferenceSources, Stage, StageProgress } from './pipeline/options.js';
export type { PurifyReport, RecordTable, ReferenceSummary, ShardedSummary } from './report/types.js';
export { renderReportHtml } from './report/html.js';

// Embedders and the embedding cache.
export type { Embedder, EmbedCallOptions, EmbedderFitOptions } from './embed/types.js';
export { HashingEmbedder, type HashingEmbedderOptions, type HashingEmbedOptions } from './embed/hashing.js';
export {
  EmbeddingCache,
  embedWithCache,
  hashText,
  hashTexts,
  type EmbeddingCacheOptions,
  type EmbedWithCacheOptions,
} from './embed/cache.js';
export { project2d, type Project2dOptions } from './project.js';
// Embedding providers (optional packages are loaded on first use).
export { createEmbedder, EMBEDDERS, type EmbedderConfig, type EmbedderKind } from './embed/providers.js';
export { OpenAIEmbedder, type OpenAIEmbedderOptions } from './embed/openai.js';
export { PrecomputedEmbedder, type PrecomputedEmbedderOptions } from './embed/precomputed.js';
export { WinkEmbedder, loadWordTable, type WinkEmbedderOptions, type WordTable } from './embed/wink.js';
export { TransformersEmbedder, type TransformersEmbedderOptions } from './embed/transformers.js';
export {
  LlmEmbedder,
  LLAMA_PACKAGE,
  type LlmEmbedderOptions,
  type LlmEmbedCallOptions,
  type LlmPooling,
} from './embed/llm.js';
export { readNpy, readNpyRows, parseNpy, type NpyMatrix, type NpyLayout } from './npy-read.js';

// Dataset IO.
export {
  openDataset,
  writeDataset,
  renderText,
  checkTemplate,
  writeFileAtomic,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_TEMPLATE,
  FILE_FORMATS,
  MAX_LINE_BYTES,
  MAX_PARTS,
  RECORD_FORMATS,
  lineRanges,
  recordRanges,
  rowGroupRanges,
  type ByteRange,
  type RecordRangesOptions,
  type RowGroupRange,
  type Dataset,
  type DatasetRow,
  type FieldMapping,
  type FileFormat,
  type OpenDatasetOptions,
  type RecordFormat,
  type SampleText,
  type SourceRecord,
  type WriteDatasetOptions,
} from './io/index.js';

// Named reference sets.
export {
  listReferenceSets,
  loadReferenceSet,
  fetchReferenceSet,
  isReferenceSetName,
  type ReferenceFetchOptions,
  type ReferenceLicence,
  type ReferenceRole,
  type ReferenceSet,
  type ReferenceSetInfo,
} from './refsets/index.js';

// Types that appear in the signatures above, exported so that callers can name them.
export type { AtomicOptions, Chunk as AtomicChunk } from './io/atomic.js';
export type { CacheLookup } from './embed/cache.js';
export type { PrecomputedBinding } from './embed/precomputed.js';
export type { SkipReport } from './io/dataset.js';
export type { WordIndex } from './embed/wink.js';
export type { WriteDatasetResult } from './io/write.js';
export type { LoadedReferenceFile } from './refsets/load.js';
export type { FileOrigin } from './refsets/fetch.js';
export type { ReferenceFile } from './refsets/registry.js';
// Fit once, score anywhere: model files, out-of-sample scores, sharded purification (docs/model-file.md).
export { fit, uniformSample, type FitOptions, type FitResult, type FitStage } from './fit/fit.js';
export {
  score,
  type ScoreOptions as ModelScoreOptions,
  type ScoreResult as ModelScoreResult,
  type Refit,
  type ScoreStage,
} from './fit/score.js';
export {
  loadModel,
  ModelFileError,
  MODEL_VERSION,
  type Model,
  type ModelHeader,
  type ModelRefit,
  type ModelFileProblem,
  type FittedSet,
  type ScoreScale,
  type Section as ModelSection,
  type BuiltinEmbedderSpec,
} from './fit/model.js';
export type { FittedOutput, ScoreScaleInput } from './native.js';
export type { ReasonOptions, ReasonsFor } from './pipeline/audit.js';
export { DEFAULT_FIT_SAMPLE, DEFAULT_SHARD_REFIT, DEFAULT_SHARD_RETRIES } from './defaults.js';
export { purifySharded, type ShardedOptions, type ShardedResult } from './fit/shards.js';
