// How the pipeline calls an embedder. A custom embedder is the caller's
// code: its dimension, batch and answers are checked here, and an abort
// stops the run even while it is still answering.
import { AbortError, OptionError, ShapeError } from '../errors.js';
import type { Embedder } from './types.js';

/** Longest vector an embedder may give (the built-in embedder's longest). */
export const MAX_DIM = 1 << 20;

/** Throws `OptionError` unless `dim` is a whole number in 1..MAX_DIM and `preferredBatch` (if given) a positive one. */
export function checkEmbedder(embedder: Embedder): void {
  const { dim, preferredBatch } = embedder;
  const name = `embedder ${JSON.stringify(embedder.id)}`;
  if (!(Number.isInteger(dim) && dim >= 1 && dim <= MAX_DIM))
    throw new OptionError('ERR_OPTION', `${name}: dim must be an integer from 1 to ${MAX_DIM}, got ${String(dim)}`);
  if (preferredBatch !== undefined && !(Number.isInteger(preferredBatch) && preferredBatch >= 1))
    throw new OptionError(
      'ERR_OPTION',
      `${name}: preferredBatch must be a positive integer, got ${String(preferredBatch)}`,
    );
}

/**
 * `embedder.embed(texts)`, checked to be `texts.length` rows of `dim`
 * float32 values. On abort it rejects with `AbortError` at once, whether or
 * not the embedder heeds the signal (an answer that comes later is dropped).
 */
export async function embedCall(embedder: Embedder, texts: string[], signal?: AbortSignal): Promise<Float32Array> {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  const answer = Promise.resolve(embedder.embed(texts, { signal }));
  const got: unknown = signal === undefined ? await answer : await untilAborted(answer, signal);
  const name = `embedder ${JSON.stringify(embedder.id)}`;
  if (!(got instanceof Float32Array))
    throw new OptionError('ERR_OPTION', `${name} returned ${typeOf(got)}, not a Float32Array`);
  const dim = embedder.dim;
  if (got.length !== texts.length * dim)
    throw new ShapeError(
      'ERR_SHAPE',
      `${name} returned ${got.length} values for ${texts.length} texts of dimension ${dim}`,
    );
  return got;
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortError(undefined, { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    // handled either way: a rejection after the abort is not left unhandled
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** `null`, `a string`, `an Array`, `a Float64Array`: what an answer was, for the message. */
function typeOf(v: unknown): string {
  if (v === null) return 'null';
  const name = typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
  return `${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name}`;
}
