import { resolve } from 'node:path';
import { OptionError } from '../errors.js';
import { parseBytes } from '../storage.js';

/** Everything `sot serve` and `sot worker` can be told; every default is in `DEFAULTS`. */
export interface ServiceConfig {
  /** Folder holding every tenant's uploads and jobs: `<dataRoot>/<tenant>/jobs/<id>/`. Shared by the server and its workers. */
  dataRoot: string;
  /** BullMQ on Redis (`redis://host:port`); unset: the embedded in-process queue. */
  redis?: string;
  /** Jobs run at once by this process (embedded server or `sot worker`). */
  concurrency: number;
  /** Jobs of one tenant running at once: in the embedded queue, or on all BullMQ workers together (each worker checks). */
  maxRunningPerTenant: number;
  /** Jobs waiting, all tenants together, before submissions get 429. */
  maxQueued: number;
  /** Jobs of one tenant waiting before its submissions get 429. */
  maxQueuedPerTenant: number;
  /** Seconds a 429 answer asks the client to wait (`Retry-After`). */
  retryAfterS: number;
  /** Bytes one upload may take. */
  maxUploadBytes: number;
  /** Bytes one tenant's folder (uploads, jobs, outputs) may take. */
  quotaBytes: number;
  /** Memory budget of one job (`memoryBudget`); a job may ask for less, never more. */
  jobMemoryBudget: number;
  /** Milliseconds a finished job's files are kept. */
  retentionMs: number;
  /** How often the retention sweep runs (ms). */
  sweepMs: number;
  /** Retries of a job that failed for a transient reason (never for bad input). */
  retries: number;
  /** First retry delay (ms), doubled on each retry. */
  backoffMs: number;
  /** On SIGTERM, milliseconds running jobs get to finish before they are handed back. */
  graceMs: number;
  /** BullMQ: a job whose worker stops renewing its lock for this long (ms) is handed to another worker. */
  lockMs: number;
  /** Offline mirror of the named reference sets (env `SOT_DATA_DIR`). */
  dataDir?: string;
  /** Download cache of the named reference sets (env `SOT_CACHE_DIR`). */
  cacheDir?: string;
  /** Never download reference sets. */
  offline?: boolean;
}

export const DEFAULTS = {
  concurrency: 1,
  maxRunningPerTenant: 2,
  maxQueued: 1000,
  maxQueuedPerTenant: 100,
  retryAfterS: 5,
  maxUploadBytes: 1 << 30,
  quotaBytes: 20 * 2 ** 30,
  jobMemoryBudget: 4 * 2 ** 30,
  retentionMs: 7 * 24 * 3600 * 1000,
  sweepMs: 60_000,
  retries: 2,
  backoffMs: 5_000,
  graceMs: 30_000,
  lockMs: 30_000,
} as const satisfies Partial<ServiceConfig>;

export type Input = Partial<Omit<ServiceConfig, 'maxUploadBytes' | 'quotaBytes' | 'jobMemoryBudget'>> & {
  dataRoot: string;
  maxUploadBytes?: number | string;
  quotaBytes?: number | string;
  jobMemoryBudget?: number | string;
};

/** Fills in the defaults and checks every value (a bad one throws `OptionError` naming it). */
export function resolveConfig(input: Input): ServiceConfig {
  if (typeof input?.dataRoot !== 'string' || input.dataRoot === '')
    throw new OptionError('ERR_OPTION', 'dataRoot must be a folder path');
  const c = { ...DEFAULTS, ...defined(input) } as Record<string, unknown>;
  for (const k of ['maxUploadBytes', 'quotaBytes', 'jobMemoryBudget'] as const) {
    if (typeof c[k] === 'string') c[k] = parseBytes(k, c[k] as string);
  }
  const positive = [
    'concurrency',
    'maxRunningPerTenant',
    'maxQueued',
    'maxQueuedPerTenant',
    'maxUploadBytes',
    'quotaBytes',
    'jobMemoryBudget',
    'sweepMs',
    'lockMs',
  ];
  const nonNegative = ['retryAfterS', 'retentionMs', 'retries', 'backoffMs', 'graceMs'];
  for (const k of positive)
    if (!(Number.isSafeInteger(c[k]) && (c[k] as number) >= 1))
      throw new OptionError('ERR_OPTION', `${k} must be an integer >= 1, got ${String(c[k])}`);
  for (const k of nonNegative)
    if (!(Number.isSafeInteger(c[k]) && (c[k] as number) >= 0))
      throw new OptionError('ERR_OPTION', `${k} must be an integer >= 0, got ${String(c[k])}`);
  if (c.redis !== undefined && !/^rediss?:\/\//.test(String(c.redis)))
    throw new OptionError('ERR_OPTION', `redis must be a redis:// URL, got ${String(c.redis)}`);
  return { ...(c as unknown as ServiceConfig), dataRoot: resolve(input.dataRoot) };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
