// Worker processes that each own one ONNX Runtime session of a sentence
// encoder. onnxruntime-node runs a forward pass synchronously on the thread
// that calls it, so the passes run here, off the JS thread: the caller stays
// responsive (progress, cancellation, tokenising the next batches) and N
// workers with one intra-op thread each scale where one session's thread
// pool does not. Processes, not worker threads: onnxruntime-node keeps
// per-process state that a second JS environment (thread) in the same
// process corrupts (a fatal V8 error on the first run), and a worker that
// dies cannot take the caller with it.
import { spawn, type ChildProcess } from 'node:child_process';
import { AbortError, InternalError, OptionError } from '../errors.js';
import type { TokenBatch } from './token-batches.js';

/** What a worker needs to load the model through transformers.js. */
export interface EncoderSpec {
  /** file: URL of the transformers.js entry the parent resolved. */
  transformers: string;
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string; cacheDir: string };
  model: string;
  /** transformers.js pretrained options (dtype, device, local_files_only, session_options). */
  options: Record<string, unknown>;
  pooling: 'mean' | 'cls';
  normalize: boolean;
}

/** ONNX Runtime session options, as onnxruntime-node takes them. */
export function sessionOptions(o: {
  threads: number;
  spinning: boolean;
  graphOptimization: string;
}): Record<string, unknown> {
  return {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: o.graphOptimization,
    // Idle pool threads sleep instead of spin-waiting: a spinning pool burns
    // the cores other processes (or the other workers) need.
    extra: {
      session: {
        intra_op: { allow_spinning: o.spinning ? '1' : '0' },
        inter_op: { allow_spinning: o.spinning ? '1' : '0' },
      },
    },
  };
}

// Plain CommonJS run by each worker (node -e: the same source serves dist and
// the tests). Pooling and normalisation are transformers.js's own, as in its
// feature-extraction pipeline.
const WORKER_SOURCE = `
'use strict';
process.on('disconnect', () => process.exit(0));
const send = (m) => process.send(m);
(async () => {
  const spec = await new Promise((resolve) => process.once('message', resolve));
  let tf, ex;
  try {
    const mod = await import(spec.transformers);
    tf = mod.pipeline ? mod : mod.default;
    Object.assign(tf.env, spec.env);
    ex = await tf.pipeline('feature-extraction', spec.model, spec.options);
  } catch (err) {
    send({ failed: String((err && err.message) || err) });
    return;
  }
  process.on('message', async (m) => {
    try {
      const t = (data) => new tf.Tensor('int64', data, [m.rows, m.cols]);
      const inputs = { input_ids: t(m.input_ids), attention_mask: t(m.attention_mask) };
      if (m.token_type_ids) inputs.token_type_ids = t(m.token_type_ids);
      const out = await ex.model(inputs);
      let r = out.last_hidden_state ?? out.logits ?? out.token_embeddings;
      r = spec.pooling === 'cls' ? r.slice(null, 0) : tf.mean_pooling(r, inputs.attention_mask);
      if (spec.normalize) r = r.normalize(2, -1);
      send({ id: m.id, dims: r.dims, data: r.data instanceof Float32Array ? r.data : Float32Array.from(r.data) });
    } catch (err) {
      send({ id: m.id, error: String((err && err.message) || err) });
    }
  });
  send({ ready: true });
})();
`;

/** Bytes of a worker's stderr kept for error messages. */
const STDERR_TAIL = 2000;

interface Pending {
  resolve: (v: { data: Float32Array; dims: number[] }) => void;
  reject: (e: unknown) => void;
}

class EncoderWorker {
  readonly pending = new Map<number, Pending>();
  /** Passes sent and not answered yet (aborted ones included: the worker still runs them). */
  busy = 0;
  dead: Error | undefined;
  stderr = '';

  constructor(readonly child: ChildProcess) {
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-STDERR_TAIL);
    });
    child.on('message', (m: { id?: number; data?: Float32Array; dims?: number[]; error?: string }) => {
      if (typeof m.id !== 'number') return;
      if (--this.busy === 0) this.unref();
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (p === undefined) return; // aborted meanwhile
      if (m.error !== undefined)
        p.reject(new InternalError('ERR_INTERNAL', `the encoder failed on a batch: ${m.error}`));
      else p.resolve({ data: m.data!, dims: m.dims! });
    });
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    child.on('error', (err) =>
      die(new InternalError('ERR_INTERNAL', `an encoder worker failed: ${err.message}`, { cause: err })),
    );
    child.on('exit', (code, sig) =>
      die(
        new InternalError(
          'ERR_INTERNAL',
          `an encoder worker exited (${sig ?? `code ${code}`})${this.stderr ? `: ${this.stderr.trim()}` : ''}`,
        ),
      ),
    );
  }

  /** Referenced only while it has work: an idle encoder never keeps the process alive. */
  ref(): void {
    this.child.ref();
    (this.child.channel as { ref?: () => void } | undefined)?.ref?.();
    (this.child.stderr as { ref?: () => void } | null)?.ref?.();
  }

  unref(): void {
    this.child.unref();
    (this.child.channel as { unref?: () => void } | undefined)?.unref?.();
    (this.child.stderr as { unref?: () => void } | null)?.unref?.();
  }
}

/** A fixed set of encoder workers; `run` sends a batch to the least busy one. */
export class EncoderWorkers {
  #next = 0;
  private constructor(readonly workers: EncoderWorker[]) {}

  /** Starts `count` workers and waits until each has loaded the model. */
  static async start(spec: EncoderSpec, count: number): Promise<EncoderWorkers> {
    const children = Array.from({ length: count }, () =>
      spawn(process.execPath, ['-e', WORKER_SOURCE], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'advanced',
      }),
    );
    const pool = new EncoderWorkers(children.map((c) => new EncoderWorker(c)));
    try {
      await Promise.all(
        pool.workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (m: { ready?: boolean; failed?: string }) => {
                if (m.ready) resolve();
                else if (m.failed !== undefined) reject(new OptionError('ERR_OPTION', m.failed));
                else return;
                w.child.off('message', onMessage);
              };
              w.child.on('message', onMessage);
              w.child.once('error', reject);
              w.child.once('exit', (code, sig) =>
                reject(
                  new InternalError(
                    'ERR_INTERNAL',
                    `an encoder worker exited while loading the model (${sig ?? `code ${code}`})${w.stderr ? `: ${w.stderr.trim()}` : ''}`,
                  ),
                ),
              );
              w.child.send(spec);
            }),
        ),
      );
    } catch (err) {
      await pool.terminate();
      throw err;
    }
    for (const w of pool.workers) w.unref();
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** One forward pass; an abort rejects at once (the worker finishes the pass, its result is dropped). */
  run(batch: TokenBatch, signal?: AbortSignal): Promise<{ data: Float32Array; dims: number[] }> {
    if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }));
    const dead = this.workers.find((w) => w.dead !== undefined);
    if (dead !== undefined) return Promise.reject(dead.dead);
    const w = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        w.pending.delete(id);
        reject(new AbortError(undefined, { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          signal?.removeEventListener('abort', onAbort);
          f(v);
        };
      w.pending.set(id, { resolve: done(resolve), reject: done(reject) });
      if (w.busy++ === 0) w.ref();
      const { rows, cols, input_ids, attention_mask, token_type_ids } = batch;
      w.child.send({ id, rows: rows.length, cols, input_ids, attention_mask, token_type_ids });
    });
  }

  /** Stops the workers (and so frees their sessions). */
  async terminate(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            w.child.once('exit', () => resolve());
            w.ref(); // wait for the exit even when nothing else keeps the process alive
            w.child.kill();
          }),
      ),
    );
  }
}
