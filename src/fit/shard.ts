// One shard of a sharded purification: score records [from, to) against a
// model, and summarise them for the merge. Runs in a worker process (see
// shard-worker.ts) or a queue worker; writes one file, atomically.
import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../io/index.js';
import type { PurifyOptions } from '../pipeline/options.js';
import { selectTopK } from '../selection.js';
import { openScoring, scoreRecords, type ScoredRecords } from './score.js';

/** What a shard needs: plain data, so it crosses a process or a queue as JSON. */
export interface ShardTask
  extends Pick<
    PurifyOptions,
    'input' | 'format' | 'recordFormat' | 'fields' | 'skipInvalid' | 'maxLineBytes' | 'embeddingCache' | 'cacheDir'
  > {
  model: string;
  shard: number;
  from: number;
  to: number;
  /** Records of the shard's top list (the global K): its summary for an exact global top-K. */
  top: number;
  /** The shard's result file. */
  out: string;
}

/**
 * A shard's result: its records' scores (in record order) and its summary,
 * the indices (global) of its best `top` records, best first (ties: lower
 * index first, as `selectTopK`).
 */
export interface ShardResult extends ScoredRecords {
  from: number;
  top: Uint32Array;
}

const MAGIC = 'SOTSHRD1';

export async function runShard(t: ShardTask, signal?: AbortSignal): Promise<void> {
  const { model, embedder, input, cache } = await openScoring(t, false);
  const r = await scoreRecords(input, model, embedder, cache, { signal, range: { from: t.from, to: t.to } });
  if (r.score.length !== t.to - t.from) {
    throw new InputError(
      { file: t.input },
      `shard ${t.shard} expected records ${t.from} to ${t.to - 1}, the file has ${t.from + r.score.length} (it changed since the fit?)`,
    );
  }
  const k = Math.min(t.top, r.score.length);
  const top = k > 0 ? (await selectTopK(r.score, { count: k })).order.map((i) => i + t.from) : new Uint32Array(0);
  await writeFileAtomic(t.out, encodeShard({ ...r, from: t.from, top }));
}

function encodeShard(r: ShardResult): Uint8Array {
  const n = r.score.length;
  const head = new Uint32Array([n, r.from, r.top.length, 0]);
  const parts = [new TextEncoder().encode(MAGIC), head, r.score, r.pull, r.push, r.lines, r.top];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  return out;
}

export async function readShard(path: string): Promise<ShardResult> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete shard result: ${what}`);
  if (b.length < 24 || b.subarray(0, 8).toString('latin1') !== MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer; // aligned copy
  const [n, from, k] = new Uint32Array(buf, 8, 4);
  const need = 24 + n! * 28 + k! * 4;
  if (b.length !== need) throw bad(`${b.length} bytes, ${need} expected`);
  let at = 24;
  const f64 = () => {
    const v = new Float64Array(buf, at, n!);
    at += n! * 8;
    return v;
  };
  const score = f64();
  const pull = f64();
  const push = f64();
  const lines = new Uint32Array(buf, at, n!);
  at += n! * 4;
  return { score, pull, push, lines, from: from!, top: new Uint32Array(buf, at, k!) };
}
