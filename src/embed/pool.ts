import { AbortError } from '../errors.js';

/**
 * Runs `work(i)` for i in [0, count) with at most `limit` in flight. The
 * first failure aborts the signal handed to the others and is what rejects
 * (later failures are dropped); an abort of `signal` rejects with AbortError.
 */
export async function runPool(
  count: number,
  limit: number,
  work: (i: number, signal: AbortSignal) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal?.reason);
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  signal?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < count) {
      const i = next++;
      try {
        await work(i, ac.signal);
      } catch (err) {
        if (failure === undefined) failure = { err };
        ac.abort(err);
        return;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  if (failure !== undefined) throw failure.err;
}
