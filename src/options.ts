// Type checks of option values at the API boundary; the core checks ranges.
import { OptionError } from './errors.js';
import type { Embedder } from './embed/types.js';

/** Ground cost between embeddings: `1 - cos(x, y)` (default) or `|x - y|^2`. */
export type CostKind = 'cosine' | 'sqeuclidean';

export function costKind(cost: unknown): CostKind {
  if (cost === undefined) return 'cosine';
  if (cost !== 'cosine' && cost !== 'sqeuclidean') {
    throw new OptionError('ERR_OPTION', `unknown cost '${String(cost)}' (expected 'cosine' or 'sqeuclidean')`);
  }
  return cost;
}

/** An optional number (any value, range checked by the core). */
export function num(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || Number.isNaN(v))
    throw new OptionError('ERR_OPTION', `${name} must be a number, got ${String(v)}`);
  return v;
}

/** An optional count: a whole number from 1 to 2^32 - 1. */
export function count(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xffff_ffff) {
    throw new OptionError('ERR_OPTION', `${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

/** A whole number from 0 to 2^32 - 1 (a seed, a size); optional unless `required`. */
export function uint32(name: string, v: unknown, required = false): number | undefined {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new OptionError('ERR_OPTION', `${name} must be an integer from 0 to 4294967295, got ${String(v)}`);
  }
  return v;
}

/** An argument that must be an object (options, a problem, sets): `{}` when omitted. */
export function objectArg<T extends object>(name: string, v: T | undefined): T {
  if (v === undefined) return {} as T;
  if (typeof v !== 'object' || v === null)
    throw new OptionError('ERR_OPTION', `${name} must be an object, got ${v === null ? 'null' : typeof v}`);
  return v;
}

export function bool(name: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean')
    throw new OptionError('ERR_OPTION', `${name} must be a boolean, got ${String(v)}`);
  return v;
}

/** Progress callback and its throttle interval in whole milliseconds. */
export function progress(onProgress: unknown, intervalMs: unknown): number | undefined {
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new OptionError('ERR_OPTION', 'onProgress must be a function');
  }
  const ms = num('progressIntervalMs', intervalMs);
  return ms === undefined ? undefined : Math.max(0, Math.round(ms));
}

/**
 * The caller's progress callback as a run calls it: a promise it returns is
 * not awaited, and if that promise rejects, the callback's next call throws
 * the error, so the run fails as if the callback had thrown it (a rejection
 * after the run's last call is dropped).
 */
export function settledProgress<E>(cb: ((event: E) => void) | undefined): ((event: E) => void) | undefined {
  if (cb === undefined) return undefined;
  if (typeof cb !== 'function') throw new OptionError('ERR_OPTION', 'onProgress must be a function');
  let failed: { error: unknown } | undefined;
  return (event) => {
    if (failed !== undefined) throw failed.error;
    const r: unknown = cb(event);
    if (isThenable(r))
      r.then(undefined, (error: unknown) => {
        failed ??= { error };
      });
  };
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === 'function';
}

/**
 * The `embedder` option as given, checked to be an `Embedder` (what
 * `createEmbedder` or `new HashingEmbedder()` returns: a string `id` and an
 * `embed` method), or undefined when absent.
 */
export function embedderOption(v: unknown): Embedder | undefined {
  if (v === undefined) return undefined;
  const e = v as Partial<Embedder> | null;
  if (typeof e !== 'object' || e === null || typeof e.id !== 'string' || typeof e.embed !== 'function') {
    throw new OptionError(
      'ERR_OPTION',
      `embedder must be an Embedder (from createEmbedder() or new HashingEmbedder()), got ${describe(v)}`,
    );
  }
  return e as Embedder;
}

function describe(v: unknown): string {
  if (v === null || typeof v !== 'object') return typeof v === 'string' ? JSON.stringify(v) : String(v);
  const keys = Object.keys(v).slice(0, 4);
  return keys.length ? `an object with ${keys.join(', ')}` : 'an object without an id or an embed method';
}
