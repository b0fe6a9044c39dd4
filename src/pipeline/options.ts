import type { Embedder } from '../embed/types.js';
import type { FieldMapping, FileFormat, RecordFormat } from '../io/types.js';
import type { LearnerOptions, Method } from '../learner.js';
import type { Keep } from '../selection.js';
import type { ReasonOptions } from './audit.js';

/** Stages of a purify run, in order, as reported to `onProgress`. */
export type Stage = 'read' | 'embed' | 'references' | 'learn' | 'select' | 'write';

export interface StageProgress {
  stage: Stage;
  /** Units done so far (records, texts, learner steps). */
  done: number;
  /** Units in the stage, when known. */
  total?: number;
}

/** Where reference sets come from: files (any supported format) or named public sets. */
export interface ReferenceSources {
  /** Harmful reference: file paths and/or named sets (see `listReferenceSets`). */
  harmful: string[];
  /** Safe anchor: file paths and/or named sets; none makes SOT use the data itself (weak; warned). */
  anchor?: string[];
}

/** A dataset and how its records are read. */
export interface DatasetSource {
  /** The dataset (JSONL, JSON, CSV, TSV or Parquet). Never modified. */
  input: string;
  format?: FileFormat;
  recordFormat?: RecordFormat;
  fields?: FieldMapping;
  /** Skip (and count) invalid records instead of failing on the first. */
  skipInvalid?: boolean;
  /** Longest line (or whole JSON file) of the dataset and reference files, in bytes. Default 256 MiB (`DEFAULT_MAX_LINE_BYTES`), at most `MAX_LINE_BYTES`. */
  maxLineBytes?: number;
}

export interface PurifyOptions extends ReferenceSources, DatasetSource {
  /** Purified dataset, in the input's format. Default `<input stem>.purified.<ext>` next to the input. */
  output?: string;
  /** Per-sample scores CSV. Default `<output stem>.scores.csv`. */
  scores?: string;
  /** JSON report. Default `<output stem>.report.json`. */
  report?: string;
  /** HTML report; `null` for none. Default `<output stem>.report.html`. */
  html?: string | null;
  /** Every dropped record in the input's format, with its score, rank, pull, push and reason (`sot_reason`); `null` for none. Default `<output stem>.removed.<ext>`. */
  removed?: string | null;
  /** Which records get a reason (nearest harmful references) and how many neighbours. Default the dropped ones, 3. */
  reasons?: ReasonOptions;
  /** Field whose values group the records in the report's breakdown; `null` for none. Default the first of `source`, `category`, `subset`, `dataset`, `task`, `type` a record has. */
  groupField?: string | null;

  /** Embedding text template with `{prompt}` and `{response}`. */
  template?: string;
  /** Field added to kept records with their training weight; `null` for none. Default `sot_weight`. */
  weightField?: string | null;

  /** Embedder; default the built-in hashing embedder. */
  embedder?: Embedder;
  /** Embedding cache folder, or `false` to disable. Default `<cacheDir>/embeddings`. */
  embeddingCache?: string | false;
  /** Offline mirror laid out like the project's data folder (env `SOT_DATA_DIR`). */
  dataDir?: string;
  /** Download cache (env `SOT_CACHE_DIR`, default `~/.cache/sot`). */
  cacheDir?: string;
  /** Never download (env `SOT_OFFLINE=1`). */
  offline?: boolean;

  /** Scoring method; default `sot`. */
  method?: Method;
  /**
   * How many to keep; default `{ fraction: 0.8 }`. `'auto'` (method `sot`
   * only) drops nothing when the data look clean; when they look
   * contaminated, the lowest-scoring records up to the estimate's upper end
   * (the estimated share and its margin), and never fewer than the default
   * fraction drops (`autoKeepCount`); the default fraction when the estimate is
   * inconclusive (a warning says so; see `PurifyResult.contamination` and its
   * `verdict`).
   */
  keep?: Keep | 'auto';
  /**
   * Learner options (eps, lambda, tau, ...). Unset ones take the embedder's
   * `learnerDefaults` (the built-in embedder: eps 0.02, lambda 2), then the
   * core's defaults (`coreDefaults().learner`).
   */
  learner?: Omit<LearnerOptions, 'signal' | 'onProgress' | 'progressIntervalMs'>;
  /**
   * Memory the whole run may take (peak resident set), as bytes or a size
   * such as `"8GB"`. The learner's costs get what the embeddings (held
   * once, in native memory the core learns on; precomputed vectors twice, as
   * read and as the core's copy) and the other stages leave: stored dense
   * when they fit, else truncated to each
   * sample's nearest references (see `LearnerOptions.storage`). Default 8 GiB,
   * or half the machine's memory if less.
   */
  memoryBudget?: number | string;
  /** Seed of the random baseline. */
  seed?: number;
  /** The report's `createdAt` (ISO 8601); default now. A job queue passes its submission time so a retried job writes the same report. */
  createdAt?: string;

  signal?: AbortSignal;
  onProgress?: (event: StageProgress) => void;
}
