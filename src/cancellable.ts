import { AbortError, fromNative } from './errors.js';
import { native, type CancelToken, type ProgressEvent } from './native.js';

type OnProgress = (event: ProgressEvent) => void;

/**
 * Runs a native operation with a cancel token tied to `signal`: aborting
 * stops it between iterations, even once it is running. Native errors come
 * out as their typed classes. The caller's progress callback reaches the
 * operation through `start`'s second argument, guarded: an error it throws
 * would escape from the native thread's call into JS and kill the process, so
 * it is kept instead, the operation cancelled, and the promise rejects with it.
 * (Progress may still arrive just after the promise settled: an error the
 * callback throws then has no promise left to reject, and is dropped.)
 */
export async function cancellable<T>(
  signal: AbortSignal | undefined,
  start: (token: CancelToken, onProgress?: OnProgress) => Promise<T>,
  onProgress?: OnProgress,
): Promise<T> {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  const token = new native.CancelToken();
  const onAbort = () => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let thrown: { error: unknown } | undefined;
  const guarded =
    onProgress &&
    ((event: ProgressEvent) => {
      if (thrown !== undefined) return;
      try {
        onProgress(event);
      } catch (error) {
        thrown = { error };
        token.cancel();
      }
    });
  try {
    const out = await start(token, guarded);
    if (thrown !== undefined) throw thrown.error;
    return out;
  } catch (err) {
    throw thrown !== undefined ? thrown.error : fromNative(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
