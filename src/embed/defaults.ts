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
