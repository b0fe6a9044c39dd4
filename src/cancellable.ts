import { AbortError, fromNative, OptionError } from './errors.js';
import { native, type CancelToken, type ProgressEvent } from './native.js';
import { isThenable } from './options.js';

type OnProgress = (event: ProgressEvent) => void;

/**
 * Runs a native operation with a cancel token tied to `signal`: aborting
 * stops it between iterations, even once it is running. Native errors come
 * out as their typed classes. The caller's progress callback reaches the
 * operation through `start`'s second argument, guarded: an error it throws
 * would escape from the native thread's call into JS and kill the process, so
 * it is kept instead, the operation cancelled, and the promise rejects with it;
 * so is the rejection of a promise the callback returns.
 * (Progress may still arrive just after the promise settled: an error the
 * callback throws then has no promise left to reject, and is dropped.)
 */
export async function cancellable<T>(
  signal: AbortSignal | undefined,
  start: (token: CancelToken, onProgress?: OnProgress) => Promise<T>,
  onProgress?: OnProgress,
): Promise<T> {
  // duck-typed: a signal of another realm or a polyfill is still a signal
  if (signal !== undefined && typeof (signal as Partial<AbortSignal> | null)?.addEventListener !== 'function')
    throw new OptionError('ERR_OPTION', 'signal must be an AbortSignal');
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  const token = new native.CancelToken();
  const onAbort = () => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let thrown: { error: unknown } | undefined;
  const guarded =
    onProgress &&
    ((event: ProgressEvent) => {
      if (thrown !== undefined) return;
      const fail = (error: unknown) => {
        thrown ??= { error };
        token.cancel();
      };
      try {
        const r: unknown = onProgress(event);
        if (isThenable(r)) r.then(undefined, fail);
      } catch (error) {
        fail(error);
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
