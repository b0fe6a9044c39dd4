import type { SampleText } from '../io/types.js';

/** Options every embedding call accepts. */
export interface EmbedCallOptions {
  signal?: AbortSignal;
}

/** Options of `fit`. */
export interface EmbedderFitOptions extends EmbedCallOptions {
  /** The run's memory budget, bytes: an embedder that sizes its vectors to the data keeps them within a share of it. */
  memoryBudget?: number;
}

/**
 * Turns texts into fixed-size vectors. The pipeline calls `fit` (when present)
 * once over all of the dataset's texts, then `embed` batch by batch.
 */
export interface Embedder {
  /**
   * Stable identity: name, version and every parameter that changes the
   * vectors (after `fit`, a digest of what was fitted). The embedding cache is
   * keyed by it, so two embedders with the same id must give the same vectors.
   */
  readonly id: string;
  /** Vector length: an integer from 1 to 2^20 (the pipeline checks it before any call). */
  readonly dim: number;
  /**
   * Learner options suited to this embedder's geometry (e.g. a smaller eps
   * when its costs cluster tightly); explicit options override them.
   */
  readonly learnerDefaults?: Readonly<{ eps?: number; lambda?: number; tau?: number }>;
  /**
   * Texts per `embed` call this embedder works best with (the cache hands
   * it its misses in calls of this many; default 256): a positive integer.
   */
  readonly preferredBatch?: number;
  /**
   * The text this embedder wants for a record, instead of the template's
   * (e.g. an LLM that renders prompt and response in its own chat template).
   */
  renderSample?(sample: SampleText): string;
  /** Optional pass over the dataset's texts before embedding (e.g. document frequencies). */
  fit?(batches: AsyncIterable<string[]>, options?: EmbedderFitOptions): Promise<void>;
  /**
   * Row-major `texts.length x dim` vectors (any other type or length fails
   * the run with an error naming the embedder). On abort the pipeline stops
   * without waiting for the answer; honouring `signal` frees what the call holds.
   */
  embed(texts: string[], options?: EmbedCallOptions): Promise<Float32Array>;
}
