// Runs one job: the library's purify() on the job's input, with its outputs
// in the job's folder, an AbortSignal for cancellation and shutdown, and the
// job's memory budget. Shared by the embedded queue and `sot worker`.
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { SotError } from '../errors.js';
import { purify } from '../pipeline/purify.js';
import type { PurifyOptions } from '../pipeline/options.js';
import { isReferenceSetName } from '../refsets/index.js';
import type { ServiceConfig } from './config.js';
import { HttpError } from './errors.js';
import { TERMINAL, type FileName, type JobRecord, type JobRef, type JobStore } from './jobs.js';
import type { Metrics } from './metrics.js';

/** Why a run was aborted: the client cancelled it, or the process is shutting down and hands it back. */
export type StopReason = 'cancel' | 'shutdown';

export type Outcome =
  | { kind: 'succeeded' | 'failed' | 'cancelled' | 'skipped' | 'handed-back' }
  | { kind: 'retry'; delayMs: number; message: string };

/** Codes of failures that running again may cure; everything else (bad input, bad options, a missing file) is final. */
const TRANSIENT = new Set(['ERR_FETCH', 'ERR_INTERNAL']);

export function isTransient(err: unknown): boolean {
  if (err instanceof SotError) return TRANSIENT.has(err.code);
  const code = (err as { code?: unknown })?.code;
  return code === 'ENOSPC' || code === 'EMFILE' || code === 'ENFILE' || code === 'EAGAIN' || code === 'ENOMEM';
}

/** The library options of a job: inputs resolved inside the tenant's folder again (they may have changed since submission). */
export async function purifyOptions(store: JobStore, rec: JobRecord, cfg: ServiceConfig): Promise<PurifyOptions> {
  const o = rec.options;
  const tenantFile = (s: string) =>
    isReferenceSetName(s) ? Promise.resolve(s) : store.resolveTenantPath(rec.tenant, s);
  const input =
    rec.input.source === 'upload'
      ? store.uploadPath(rec, rec.input.name)
      : await store.resolveTenantPath(rec.tenant, rec.input.name);
  const out = store.outputs(rec, rec.input.name);
  const { html, removed, harmful, anchor, ...rest } = o;
  return {
    ...(rest as Partial<PurifyOptions>),
    input,
    harmful: await Promise.all(harmful.map(tenantFile)),
    anchor: await Promise.all((anchor ?? []).map(tenantFile)),
    output: out.dataset,
    scores: out.scores,
    report: out.report,
    html: html === false ? null : out.html,
    removed: removed === false ? null : out.removed,
    memoryBudget: (o.memoryBudget as number | string | undefined) ?? cfg.jobMemoryBudget,
    embeddingCache: false,
    dataDir: cfg.dataDir,
    cacheDir: cfg.cacheDir,
    offline: cfg.offline,
    createdAt: rec.createdAt, // a retried job writes the same report
  };
}

/** A client sees messages about its own files, not where the server keeps them. */
function clientMessage(err: unknown, store: JobStore, tenant: string): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split(`${store.tenantDir(tenant)}/`).join('');
}

const now = () => new Date().toISOString();
/** Who runs a job: shown to its owner, so that operators can find the process. */
const WORKER = `${hostname()}:${process.pid}`;

/**
 * Runs a job to its end and records it. A job already final (cancelled while
 * it waited) is skipped. An abort for `shutdown` puts the job back to `queued`.
 */
export async function runJob(
  store: JobStore,
  ref: JobRef,
  cfg: ServiceConfig,
  signal: AbortSignal,
  metrics?: Metrics,
): Promise<Outcome> {
  const rec = await store.read(ref);
  if (!rec || TERMINAL.includes(rec.state)) return { kind: 'skipped' };
  // (a cancellation recorded since the read wins)
  const started = await store.update(ref, (r) =>
    TERMINAL.includes(r.state)
      ? undefined
      : {
          ...r,
          state: 'running',
          stage: null,
          progress: null,
          attempts: r.attempts + 1,
          startedAt: now(),
          worker: WORKER,
          error: undefined,
        },
  );
  if (started?.state !== 'running') return { kind: 'skipped' };
  metrics?.started();
  const t0 = performance.now();
  let stageStart = t0;
  let stage: string | null = null;
  let lastWrite = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const stageDone = (next: string | null) => {
    const t = performance.now();
    if (stage) metrics?.stage(stage, (t - stageStart) / 1000);
    stage = next;
    stageStart = t;
  };
  try {
    // A run taken over from a dead worker starts from a clean output folder (no stale temporary files).
    await rm(store.outDir(ref), { recursive: true, force: true });
    await mkdir(store.outDir(ref)); // not recursive: a job removed meanwhile stays removed
    const options = await purifyOptions(store, started, cfg);
    const res = await purify({
      ...options,
      signal,
      onProgress: (e) => {
        const t = Date.now();
        if (e.stage === stage && t - lastWrite < 500) return;
        if (e.stage !== stage) stageDone(e.stage);
        lastWrite = t;
        writing = writing.then(() =>
          store.update(ref, (r) =>
            r.state === 'running'
              ? {
                  ...r,
                  stage: e.stage,
                  progress: { done: e.done, ...(e.total === undefined ? {} : { total: e.total }) },
                }
              : undefined,
          ),
        );
      },
    });
    stageDone(null);
    await writing;
    const seconds = (performance.now() - t0) / 1000;
    const files: FileName[] = [
      'dataset',
      'scores',
      ...(res.outputs.removed ? (['removed'] as const) : []),
      'report',
      ...(res.outputs.html ? (['html'] as const) : []),
    ];
    await store.update(ref, (r) => ({
      ...r,
      state: 'succeeded',
      stage: null,
      progress: null,
      finishedAt: now(),
      result: {
        records: res.n,
        kept: res.k,
        removed: res.n - res.k,
        removedFraction: (res.n - res.k) / res.n,
        files,
        warnings: res.warnings,
        recordsPerSecond: res.n / seconds,
        contamination: res.contamination ?? null,
      },
    }));
    metrics?.finished('succeeded', res.n);
    return { kind: 'succeeded' };
  } catch (err) {
    await writing;
    if (signal.aborted) {
      const reason = signal.reason as StopReason;
      if (reason === 'shutdown') {
        await store.update(ref, (r) =>
          r.state === 'running' ? { ...r, state: 'queued', stage: null, progress: null } : undefined,
        );
        metrics?.finished('handed-back');
        return { kind: 'handed-back' };
      }
      await store.update(ref, (r) => ({ ...r, state: 'cancelled', stage: null, progress: null, finishedAt: now() }));
      metrics?.finished('cancelled');
      return { kind: 'cancelled' };
    }
    const code = err instanceof SotError ? err.code : err instanceof HttpError ? err.code : 'ERR_INTERNAL';
    const error = { code, message: clientMessage(err, store, ref.tenant) };
    if (isTransient(err) && started.attempts <= cfg.retries) {
      const delayMs = cfg.backoffMs * 2 ** (started.attempts - 1);
      await store.update(ref, (r) => ({ ...r, state: 'queued', stage: null, progress: null, error }));
      metrics?.finished('retried');
      return { kind: 'retry', delayMs, message: error.message };
    }
    await store.update(ref, (r) => ({ ...r, state: 'failed', stage: null, progress: null, finishedAt: now(), error }));
    metrics?.finished('failed');
    return { kind: 'failed' };
  }
}
