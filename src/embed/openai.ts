// A small fetch-based client for OpenAI-compatible `POST /v1/embeddings`
// endpoints (OpenAI, vLLM, TEI, Ollama, llama.cpp server, ...): batching by
// count and estimated tokens, bounded concurrency, retries with exponential
// backoff and jitter (honouring retry-after / retry-after-ms), per-request
// timeouts and strict response validation. No SDK.
import { AbortError, FetchError, OptionError, ShapeError } from '../errors.js';
import { count, num } from '../options.js';
import { retryAfterMs, RetryableError as Retryable, withRetries } from '../retry.js';
import { runPool } from './pool.js';
import type { EmbedCallOptions, Embedder } from './types.js';
import { OPENAI_DEFAULTS } from './defaults.js';

export interface OpenAIEmbedderOptions {
  /** Model name sent with every request (env `SOT_EMBEDDINGS_MODEL`). Required. */
  model?: string;
  /**
   * Base URL up to and including `/v1` (the client posts to `<baseUrl>/embeddings`).
   * Env `SOT_EMBEDDINGS_URL`, then `OPENAI_BASE_URL`; default `https://api.openai.com/v1`.
   */
  baseUrl?: string;
  /** Bearer token (env `SOT_EMBEDDINGS_KEY`, then `OPENAI_API_KEY`); none for servers that need none. */
  apiKey?: string;
  /** Expected vector length. Unknown: `init()` asks the server once and remembers it. */
  dim?: number;
  /** Sent as `dimensions` (models that can shorten their vectors, e.g. text-embedding-3-*). */
  dimensions?: number;
  /** Texts per request at most (default 64). */
  batchSize?: number;
  /** Estimated tokens per request at most (about 4 UTF-8 bytes per token; default 32768). A longer text goes alone. */
  maxBatchTokens?: number;
  /** Requests in flight at most (default 4). */
  concurrency?: number;
  /** Retries of a request after a 408/429/5xx answer, a timeout or a network error (default 5). */
  maxRetries?: number;
  /** Per-request timeout in ms (default 60000). */
  timeoutMs?: number;
  /** First backoff in ms (default 500); doubled each retry, with jitter, at most `maxRetryDelayMs`. */
  retryBaseMs?: number;
  /** Longest wait between two tries, also the cap on a server's retry-after (default 60000). */
  maxRetryDelayMs?: number;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Environment to read the defaults from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** fetch implementation (default the global one). */
  fetch?: typeof fetch;
}

const RETRY_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);
/** Cap on the error body quoted in messages. */
const BODY_EXCERPT = 300;

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s.trim();
}

/** Estimated tokens of a text: UTF-8 bytes / 4, at least 1. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text, 'utf8') / 4));
}

/** Splits [0, n) into consecutive request ranges by count and estimated tokens. */
export function planRequests(
  texts: readonly string[],
  batchSize: number,
  maxBatchTokens: number,
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  let tokens = 0;
  for (let i = 0; i < texts.length; i++) {
    const t = estimateTokens(texts[i]!);
    if (i > start && (i - start >= batchSize || tokens + t > maxBatchTokens)) {
      out.push([start, i]);
      start = i;
      tokens = 0;
    }
    tokens += t;
  }
  if (start < texts.length) out.push([start, texts.length]);
  return out;
}

export { retryAfterMs } from '../retry.js';

/** AbortSignal.any (Node >= 20.3), or the same by hand. */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const ac = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) ac.abort(s.reason);
    else s.addEventListener('abort', () => ac.abort(s.reason), { once: true });
  }
  return ac.signal;
}

/**
 * Embeddings from an OpenAI-compatible server. Call `init()` (or give `dim`)
 * before use: it checks the options and, without `dim`, asks the server for
 * one vector to learn its length. Every response is checked: one finite
 * vector per text, indices 0..n-1 each once, the expected length. A server
 * that breaks the protocol is a `FetchError`, a vector of the wrong length a
 * `ShapeError`; nothing wrong is ever returned.
 */
export class OpenAIEmbedder implements Embedder {
  readonly model: string;
  readonly baseUrl: string;
  readonly url: string;
  readonly batchSize: number;
  readonly maxBatchTokens: number;
  readonly concurrency: number;
  readonly maxRetries: number;
  readonly timeoutMs: number;
  readonly dimensions?: number;
  /** Requests sent (including retries), for diagnostics and tests. */
  requests = 0;
  #dim?: number;
  readonly #apiKey?: string;
  readonly #headers: Record<string, string>;
  readonly #retryBaseMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: OpenAIEmbedderOptions = {}) {
    const env = options.env ?? process.env;
    const model = nonEmpty(options.model) ?? nonEmpty(env.SOT_EMBEDDINGS_MODEL);
    if (model === undefined)
      throw new OptionError(
        'ERR_OPTION',
        'the openai embedder needs a model name (--model, or env SOT_EMBEDDINGS_MODEL)',
      );
    const base =
      nonEmpty(options.baseUrl) ??
      nonEmpty(env.SOT_EMBEDDINGS_URL) ??
      nonEmpty(env.OPENAI_BASE_URL) ??
      'https://api.openai.com/v1';
    let parsed: URL;
    try {
      parsed = new URL(base);
    } catch {
      throw new OptionError('ERR_OPTION', `embeddings base URL ${JSON.stringify(base)} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new OptionError('ERR_OPTION', `embeddings base URL must be http(s), got ${base}`);
    if (parsed.username || parsed.password)
      throw new OptionError('ERR_OPTION', 'put the API key in --embed-key / OPENAI_API_KEY, not in the URL');
    this.model = model;
    // Accept `.../v1`, `.../v1/` and `.../v1/embeddings`.
    this.baseUrl = parsed.href.replace(/\/+$/, '').replace(/\/embeddings$/, '');
    this.url = `${this.baseUrl}/embeddings`;
    this.#apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env.SOT_EMBEDDINGS_KEY) ?? nonEmpty(env.OPENAI_API_KEY);
    this.#dim = count('dim', options.dim);
    this.dimensions = count('dimensions', options.dimensions);
    if (this.#dim !== undefined && this.dimensions !== undefined && this.#dim !== this.dimensions) {
      throw new OptionError('ERR_OPTION', `dim (${this.#dim}) and dimensions (${this.dimensions}) disagree`);
    }
    this.#dim ??= this.dimensions;
    this.batchSize = count('batchSize', options.batchSize) ?? OPENAI_DEFAULTS.batchSize;
    this.maxBatchTokens = count('maxBatchTokens', options.maxBatchTokens) ?? OPENAI_DEFAULTS.maxBatchTokens;
    this.concurrency = count('concurrency', options.concurrency) ?? OPENAI_DEFAULTS.concurrency;
    const retries = num('maxRetries', options.maxRetries) ?? OPENAI_DEFAULTS.maxRetries;
    if (!Number.isInteger(retries) || retries < 0)
      throw new OptionError('ERR_OPTION', `maxRetries must be a non-negative integer, got ${retries}`);
    this.maxRetries = retries;
    this.timeoutMs = count('timeoutMs', options.timeoutMs) ?? OPENAI_DEFAULTS.timeoutMs;
    const rb = num('retryBaseMs', options.retryBaseMs) ?? OPENAI_DEFAULTS.retryBaseMs;
    const rm = num('maxRetryDelayMs', options.maxRetryDelayMs) ?? OPENAI_DEFAULTS.maxRetryDelayMs;
    if (!(rb >= 0) || !(rm >= 0)) throw new OptionError('ERR_OPTION', 'retry delays must be non-negative numbers');
    this.#retryBaseMs = rb;
    this.#maxRetryDelayMs = rm;
    this.#headers = { ...(options.headers ?? {}) };
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** `openai:<base URL>:<model>:dim=<n>` (the dimension is part of it once known). */
  get id(): string {
    return `openai-v1:${this.baseUrl}:${this.model}:dim=${this.dim}${this.dimensions !== undefined ? ':shortened' : ''}`;
  }

  get dim(): number {
    if (this.#dim === undefined)
      throw new OptionError(
        'ERR_OPTION',
        'the openai embedder does not know its dimension yet: call init() or give dim',
      );
    return this.#dim;
  }

  /** Learns the dimension from the server (one short request) unless it was given. */
  async init(options: EmbedCallOptions = {}): Promise<this> {
    if (this.#dim === undefined) {
      const v = await this.#request(['dimension probe'], options.signal);
      this.#dim = v.length;
    }
    return this;
  }

  async embed(texts: string[], options: EmbedCallOptions = {}): Promise<Float32Array> {
    if (!Array.isArray(texts)) throw new OptionError('ERR_OPTION', 'texts must be an array of strings');
    const bad = texts.findIndex((t) => typeof t !== 'string' || t === '');
    if (bad >= 0)
      throw new OptionError(
        'ERR_OPTION',
        `texts[${bad}] is ${typeof texts[bad] === 'string' ? 'empty' : 'not a string'}`,
        { index: bad },
      );
    const dim = this.dim;
    const out = new Float32Array(texts.length * dim);
    const plan = planRequests(texts, this.batchSize, this.maxBatchTokens);
    await runPool(
      plan.length,
      this.concurrency,
      async (r, signal) => {
        const [a, b] = plan[r]!;
        out.set(await this.#request(texts.slice(a, b), signal), a * dim);
      },
      options.signal,
    );
    return out;
  }

  /** One logical request with its retries; resolves to `texts.length x dim` values. */
  #request(texts: string[], signal?: AbortSignal): Promise<Float32Array> {
    return withRetries(() => this.#once(texts, signal), {
      retries: this.maxRetries,
      baseMs: this.#retryBaseMs,
      maxDelayMs: this.#maxRetryDelayMs,
      signal,
      giveUp: (err, tries) =>
        new FetchError(`${this.url}: ${err.message} (gave up after ${tries} tries)`, {
          url: this.url,
          cause: err.cause ?? err,
        }),
    });
  }

  async #once(texts: string[], signal?: AbortSignal): Promise<Float32Array> {
    this.requests++;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const both = signal ? anySignal(signal, timeout) : timeout;
    const body: Record<string, unknown> = { model: this.model, input: texts, encoding_format: 'float' };
    if (this.dimensions !== undefined) body.dimensions = this.dimensions;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...this.#headers,
    };
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(this.url, { method: 'POST', headers, body: JSON.stringify(body), signal: both });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
      if (timeout.aborted) throw new Retryable(`no answer within ${this.timeoutMs} ms`, undefined, { cause: err });
      const cause = (err as Error & { cause?: Error }).cause;
      throw new Retryable(
        `network error: ${(err as Error).message}${cause?.message ? ` (${cause.message})` : ''}`,
        undefined,
        { cause: err },
      );
    }
    if (!res.ok) {
      const excerpt = text.length > BODY_EXCERPT ? `${text.slice(0, BODY_EXCERPT)}...` : text;
      const what = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${excerpt ? `: ${excerpt.trim()}` : ''}`;
      if (RETRY_STATUS.has(res.status)) throw new Retryable(what, retryAfterMs(res.headers));
      const hint =
        res.status === 401 || res.status === 403
          ? ' (check the API key: --embed-key or OPENAI_API_KEY)'
          : res.status === 404
            ? ' (check the base URL and the model name)'
            : '';
      throw new FetchError(`${this.url}: ${what}${hint}`, { url: this.url });
    }
    return this.#parse(text, texts.length);
  }

  /** Strict check of a 200 answer. */
  #parse(text: string, n: number): Float32Array {
    const fail = (what: string) =>
      new FetchError(`${this.url}: malformed embeddings response: ${what}`, { url: this.url });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw fail(`not JSON (${(err as Error).message})`);
    }
    const data = (json as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw fail('no "data" array');
    if (data.length !== n) throw fail(`${data.length} embeddings for ${n} inputs`);
    const expected = this.#dim;
    let dim = expected;
    let out: Float32Array | undefined;
    const seen = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const item = data[k] as { index?: unknown; embedding?: unknown } | null;
      const index = item?.index ?? k;
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= n || seen[index]) {
        throw fail(`data[${k}].index is ${JSON.stringify(index)}; expected each of 0..${n - 1} once`);
      }
      seen[index] = 1;
      const v = item?.embedding;
      if (!Array.isArray(v)) {
        throw fail(
          typeof v === 'string'
            ? `data[${k}].embedding is a string (base64?); the server ignored encoding_format "float"`
            : `data[${k}].embedding is not an array`,
        );
      }
      if (dim === undefined) dim = v.length;
      if (v.length !== dim || v.length === 0) {
        throw new ShapeError(
          'ERR_SHAPE',
          `${this.url}: model ${this.model} returned a ${v.length}-dimensional embedding for input ${index}, expected ${dim}${expected === undefined ? ' (as the others)' : ''}`,
          { index },
        );
      }
      out ??= new Float32Array(n * dim);
      for (let j = 0; j < dim; j++) {
        const x = v[j];
        if (typeof x !== 'number' || !Number.isFinite(x))
          throw fail(`data[${k}].embedding[${j}] is ${JSON.stringify(x)}, not a finite number`);
        out[index * dim + j] = x;
      }
    }
    return out ?? new Float32Array(0);
  }
}
