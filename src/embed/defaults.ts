// The model embedders' defaults, defined once: each embedder reads its own
// entry, and the CLI help and docs quote them from here.

/** Defaults of the sentence-encoder embedder (`kind: 'transformers'`). */
export const TRANSFORMERS_DEFAULTS = Object.freeze({
  /** Texts per forward pass at most. */
  batchSize: 64,
  /** Padded tokens per forward pass at most (texts x longest). */
  maxBatchTokens: 4096,
  /** Forward passes queued per worker. */
  concurrency: 2,
  /** Worker processes at most (one per core below that). */
  maxWorkers: 4,
  /** Tokens per text at most, or the model's limit when lower. */
  maxLength: 128,
});

/** Defaults of the OpenAI-compatible client (`kind: 'openai'`). */
export const OPENAI_DEFAULTS = Object.freeze({
  /** Texts per request at most. */
  batchSize: 64,
  /** Estimated tokens per request at most. */
  maxBatchTokens: 32768,
  /** Requests in flight. */
  concurrency: 4,
  /** Retries per request on 429, 5xx, timeouts and network errors. */
  maxRetries: 5,
  /** Per-request timeout, ms. */
  timeoutMs: 60_000,
  /** First retry delay, ms (doubled each retry, with jitter). */
  retryBaseMs: 500,
  /** Longest retry delay, ms. */
  maxRetryDelayMs: 60_000,
});

/** Defaults of the LLM hidden-state embedder (`kind: 'llm'`). */
export const LLM_DEFAULTS = Object.freeze({
  /** Records evaluated at once. */
  concurrency: 1,
  /** Tokens per record at most, chat template included (capped at the model's training context). */
  contextSize: 2048,
});

/**
 * The built-in embedder's automatic length (`dim` not given): the longest of
 * `dims` whose vectors for the fitted documents take at most `vectorBytes`,
 * and at most `budgetShare` of the run's memory budget when the fit is given
 * one, else the shortest. Longer vectors hash fewer n-grams onto one
 * coordinate, which separates harm better (BENCHMARKS.md, "Quality II: the
 * built-in embedder's length"); the caps keep big datasets and small budgets
 * at the old memory (a run holds several times its vectors' bytes).
 */
export const BUILTIN_DEFAULTS = Object.freeze({
  dims: Object.freeze([2048, 1024, 512] as const),
  vectorBytes: 512 * 1024 ** 2,
  budgetShare: 1 / 16,
});

/** The built-in embedder's automatic length for `docs` fitted documents, under a memory budget (bytes) if given. */
export function builtinDim(docs: number, memoryBudget?: number): number {
  const { dims, vectorBytes, budgetShare } = BUILTIN_DEFAULTS;
  const cap = Math.min(vectorBytes, memoryBudget === undefined ? Number.POSITIVE_INFINITY : memoryBudget * budgetShare);
  return dims.find((d) => docs * d * 4 <= cap) ?? dims[dims.length - 1]!;
}

/** The automatic length in words: "2048 up to 65,536 records, 1024 up to 131,072, 512 above, and shorter where ...". */
export const BUILTIN_DIM_HELP = (() => {
  const { dims, vectorBytes } = BUILTIN_DEFAULTS;
  const upTo = dims
    .slice(0, -1)
    .map((d, i) => `${d} up to ${(vectorBytes / (4 * d)).toLocaleString('en-US')}${i ? '' : ' records'}`);
  const share = `1/${1 / BUILTIN_DEFAULTS.budgetShare}`;
  return `${upTo.join(', ')}, ${dims[dims.length - 1]} above, and shorter where the vectors would take over ${share} of the memory budget`;
})();
