import { AbortError, fromNative } from './errors.js';
import { native, type CancelToken } from './native.js';

/**
 * Runs a native operation with a cancel token tied to `signal`: aborting
 * stops it between iterations, even once it is running. Native errors come
 * out as their typed classes.
 */
export async function cancellable<T>(signal: AbortSignal | undefined, start: (token: CancelToken) => Promise<T>): Promise<T> {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  const token = new native.CancelToken();
  const onAbort = () => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await start(token);
  } catch (err) {
    throw fromNative(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
