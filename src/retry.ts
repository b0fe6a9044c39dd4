// One retry loop for every network client (embedding servers, reference-set
// downloads): exponential backoff with jitter, a server's retry-after
// honoured, and an AbortSignal that stops it between tries and during a wait.
import { AbortError } from './errors.js';

/** A failure worth another try; `waitMs` is what the server asked for (retry-after). */
export class RetryableError extends Error {
  constructor(
    message: string,
    readonly waitMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryableError';
  }
}

export interface RetryOptions {
  /** Further tries after the first (0: none). */
  retries: number;
  /** First backoff in ms, doubled each retry. */
  baseMs: number;
  /** Longest wait between two tries, also the cap on a server's retry-after (default: no cap). */
  maxDelayMs?: number;
  /**
   * Jitter: each backoff is scaled by a factor in [1 - jitter, 1] (default
   * 0.5), so that clients that failed together do not retry together.
   */
  jitter?: number;
  signal?: AbortSignal;
  /** Builds the error thrown when the last try failed too. Default: that try's error. */
  giveUp?: (last: RetryableError, tries: number) => Error;
  /** Source of randomness for the jitter (default Math.random). */
  random?: () => number;
}

/** The wait before retry number `retry` (0-based), with the server's request taken into account. */
export function retryDelay(
  retry: number,
  o: Pick<RetryOptions, 'baseMs' | 'maxDelayMs' | 'jitter' | 'random'>,
  serverWaitMs?: number,
): number {
  const cap = o.maxDelayMs ?? Infinity;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? 0.5));
  const backoff = Math.min(cap, o.baseMs * 2 ** retry) * (1 - jitter * (o.random ?? Math.random)());
  return Math.min(cap, Math.max(backoff, serverWaitMs ?? 0));
}

/**
 * Runs `attempt(try)` until it resolves, throws something other than a
 * `RetryableError`, or the retries are spent. An abort of `signal` (before a
 * try or during a wait) rejects with AbortError at once.
 */
export async function withRetries<T>(attempt: (tryIndex: number) => Promise<T>, o: RetryOptions): Promise<T> {
  if (!Number.isInteger(o.retries) || o.retries < 0)
    throw new RangeError(`retries must be a non-negative integer, got ${o.retries}`);
  for (let n = 0; ; n++) {
    if (o.signal?.aborted) throw new AbortError(undefined, { cause: o.signal.reason });
    try {
      return await attempt(n);
    } catch (err) {
      if (o.signal?.aborted && !(err instanceof AbortError))
        throw new AbortError(undefined, { cause: o.signal.reason });
      if (!(err instanceof RetryableError)) throw err;
      if (n >= o.retries) throw o.giveUp ? o.giveUp(err, n + 1) : err;
      await sleep(retryDelay(n, o, err.waitMs), o.signal);
    }
  }
}

/** Milliseconds a 429/503 asks to wait: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') !== null && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = headers.get('retry-after');
  if (ra === null) return undefined;
  const s = Number(ra);
  if (ra.trim() !== '' && Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Resolves after `ms`, or rejects with AbortError when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(undefined, { cause: signal.reason }));
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortError(undefined, { cause: signal?.reason }));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
