// How the costs of a solve are held, within a memory budget (the core plans it).
import { OptionError } from './errors.js';
import type { StorageInput } from './native.js';
import { bool, count } from './options.js';

/**
 * `auto` (default): dense when it fits the budget, else each row's nearest
 * references exactly and a mean-field cost for the rest (`truncated`), else
 * recomputed in blocks at every pass (`blocked`: exact, small, slow).
 */
export type StorageMode = 'auto' | 'dense' | 'truncated' | 'blocked';

export interface StorageOptions {
  mode?: StorageMode;
  /** Bytes the costs and stored kernels may hold, as a number or a size such as `"8GB"` or `"512MiB"`. Default 4 GiB. */
  budget?: number | string;
  /** Most nearest references a truncated row keeps. Default 256. */
  neighbours?: number;
  /** Keep the Gibbs kernel beside dense costs when the budget allows: passes then run at memory speed. Default true. */
  storeKernel?: boolean;
  /** After a solve on truncated costs, measure its error by one exact blocked pass. Default true. */
  verify?: boolean;
}

export interface StorageReport {
  /** `dense`, `dense+kernel`, `truncated` or `blocked`. */
  mode: string;
  /** Truncated: references kept per row (0 otherwise). */
  neighbours: number;
  /** Bytes the costs (and stored kernel) held. */
  bytes: number;
  /** Passes served by the stored kernel (and the seconds they took), and passes that built it. */
  kernelPasses: number;
  kernelSeconds: number;
  kernelBuilds: number;
  /** Truncated: bound on how far each row's truncated soft-min lies from the exact one at the returned potentials (0 when exact). */
  bound: number;
  /** Seconds spent building the costs (the matrix products, the truncation). */
  buildSeconds: number;
  /** Truncated, with `verify`: the solution checked against the exact costs. */
  verification?: {
    /** Largest and weighted mean difference between the returned and the exact source potential. */
    maxError: number;
    meanError: number;
    /** L1 marginal errors of the returned potentials (rows) and of the exact ones (columns) on the exact costs. */
    rowError: number;
    colError: number;
    /** Seconds the exact pass took. */
    seconds: number;
  };
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  tib: 1024 ** 4,
};

/** Bytes of a size such as `8GB`, `512MiB`, `1.5g` or `1000000` (decimal units; `i` for binary). */
export function parseBytes(name: string, v: number | string): number {
  if (typeof v === 'number') {
    if (!(Number.isFinite(v) && v > 0))
      throw new OptionError('ERR_OPTION', `${name} must be a positive number of bytes, got ${v}`);
    return Math.floor(v);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(v));
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || !(Number(m[1]) > 0)) {
    throw new OptionError(
      'ERR_OPTION',
      `${name} must be a size such as 8GB, 512MiB or a number of bytes, got ${JSON.stringify(v)}`,
    );
  }
  return Math.floor(Number(m[1]) * unit);
}

const MODES: readonly StorageMode[] = ['auto', 'dense', 'truncated', 'blocked'];

export function storageInput(o: StorageOptions | undefined): StorageInput | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw new OptionError('ERR_OPTION', 'storage must be an object');
  if (o.mode !== undefined && !MODES.includes(o.mode)) {
    throw new OptionError('ERR_OPTION', `unknown storage mode '${String(o.mode)}' (expected ${MODES.join(', ')})`);
  }
  return {
    mode: o.mode,
    budget: o.budget === undefined ? undefined : parseBytes('storage.budget', o.budget),
    neighbours: count('storage.neighbours', o.neighbours),
    storeKernel: bool('storage.storeKernel', o.storeKernel),
    verify: bool('storage.verify', o.verify),
  };
}
