// One shard of a sharded purification: score records [from, to) against a
// model, and summarise them for the merge. Runs in a worker process (see
// shard-worker.ts) or a queue worker; writes one file, atomically.
import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { type ByteRange, writeFileAtomic } from '../io/index.js';
import type { PurifyOptions } from '../pipeline/options.js';
import { selectTopK } from '../selection.js';
import type { Matrix } from '../matrix.js';
import { nearestHarmful, type NearestRows } from '../pipeline/audit.js';
import type { ColumnSums, Scored } from './scoring.js';
import { Column, openScoring, scoreRecords, sumColumns, type ScoredRecords } from './score.js';
import { type FitShardTask, runFitShard } from './shard-fit.js';

/** What a shard needs: plain data, so it crosses a process or a queue as JSON. */
export interface ShardTask
  extends Pick<
    PurifyOptions,
    'input' | 'format' | 'recordFormat' | 'fields' | 'skipInvalid' | 'maxLineBytes' | 'embeddingCache' | 'cacheDir'
  > {
  model: string;
  shard: number;
  /** The shard's records by index, `from <= index < to` (read from the file's head)... */
  from?: number;
  to?: number;
  /** ... or the records of this part of a JSON Lines, CSV or TSV file (from `recordRanges`, read alone; their indices are the coordinator's to assign). */
  bytes?: ByteRange;
  /** Records of the shard's top list (the global K): its summary for an exact global top-K. */
  top: number;
  /** The shard's result file. */
  out: string;
  /** Write the shard's contribution to a column update of the model's reference potentials instead of its scores. */
  columns?: boolean;
  /**
   * Also find the `neighbours` nearest harmful references of the shard's
   * records whose score is below `below` (all of them when absent): the
   * reasons of the records the merge removes, found while their vectors are
   * at hand (docs/audit.md, "Sharded runs").
   */
  reasons?: { neighbours: number; below?: number };
}

/**
 * A shard's result: its records' scores (in record order) and its summary,
 * the indices (global) of its best `top` records, best first (ties: lower
 * index first, as `selectTopK`).
 */
export interface ShardResult extends ScoredRecords {
  from: number;
  top: Uint32Array;
  /** The records asked for reasons (indices, global, ascending) and their nearest harmful references, `rows x k`. */
  near: NearestRows & { rows: Uint32Array };
}

const MAGIC = 'SOTSHRD2';
const COLUMNS_MAGIC = 'SOTCOLS1';

/** Any shard task: the fit's (counting, the sample) or the model's (a refit pass, the scoring). */
export type AnyShardTask = ShardTask | FitShardTask;

/** Runs a shard task of any kind. */
export function runTask(t: AnyShardTask, signal?: AbortSignal): Promise<void> {
  return 'fit' in t ? runFitShard(t, signal) : runShard(t, signal);
}

/** The shard's records as messages name them. */
export function describeShard(t: Pick<AnyShardTask, 'bytes' | 'from' | 'to' | 'shard'> & { stride?: number }): string {
  if (t.bytes) return `bytes ${t.bytes.start} to ${t.bytes.end - 1}, from line ${t.bytes.line}`;
  if (t.stride) return `records ${t.shard}, ${t.shard + t.stride}, ${t.shard + 2 * t.stride} and so on`;
  return `records ${t.from} to ${t.to! - 1}`;
}

export async function runShard(t: ShardTask, signal?: AbortSignal): Promise<void> {
  const { model, embedder, input, cache } = await openScoring({ ...t, range: t.bytes }, false);
  const from = t.from ?? 0;
  const range = t.bytes ? undefined : { from, to: t.to! };
  const check = (records: number) => {
    if (range && records !== range.to - from)
      throw new InputError(
        { file: t.input },
        `shard ${t.shard} expected records ${from} to ${range.to - 1}, the file has ${from + records} (it changed since the fit?)`,
      );
  };
  if (t.columns) {
    const c = await sumColumns(input, model, embedder, cache, { signal, range });
    check(c.records);
    // a part of the file may hold no records (blank lines): it adds nothing
    const none = (m: number) => ({ max: new Float64Array(m).fill(-Infinity), sum: new Float64Array(m) });
    const sums = c.sums ?? {
      anchor: none(model.anchor.potential.length),
      harmful: none(model.harmful.potential.length),
      total: none(1),
    };
    await writeFileAtomic(t.out, encodeColumns(sums));
    return;
  }
  const rows = new Column(new Uint32Array(0));
  const index = new Column(new Uint32Array(0));
  const cost = new Column(new Float32Array(0));
  let seen = 0; // records of the shard before the batch
  let k = 0;
  const want = t.reasons;
  const onBatch = want
    ? async (samples: Matrix, scored: Scored) => {
        const below = want.below ?? Infinity;
        const asked: number[] = [];
        scored.score.forEach((v, i) => v < below && asked.push(i));
        const h = model.harmful.points;
        const near = await nearestHarmful(
          samples,
          h,
          Uint32Array.from(asked),
          want.neighbours,
          model.header.cost,
          signal,
        );
        k = Math.min(want.neighbours, h.rows);
        rows.push(asked.map((i) => from + seen + i));
        index.push(near.index);
        cost.push(near.cost);
        seen += samples.rows;
      }
    : undefined;
  const r = await scoreRecords(input, model, embedder, cache, { signal, range, onBatch });
  check(r.score.length);
  const top = Math.min(t.top, r.score.length);
  const order = top > 0 ? (await selectTopK(r.score, { count: top })).order.map((i) => i + from) : new Uint32Array(0);
  const near = { k, rows: rows.done(), index: index.done(), cost: cost.done() };
  await writeFileAtomic(t.out, encodeShard({ ...r, from, top: order, near }));
}

/**
 * A shard's result: magic, u32 [records, from, top, reasons' k, rows with
 * reasons, 0], the f64 scores, pulls and pushes, the u32 lines and top list,
 * then the rows with reasons (u32) and their nearest references (u32 index,
 * f32 cost; rows x k each).
 */
function encodeShard(r: ShardResult): Uint8Array {
  const n = r.score.length;
  const head = new Uint32Array([n, r.from, r.top.length, r.near.k, r.near.rows.length, 0]);
  const near = [r.near.rows, r.near.index, r.near.cost];
  const parts = [new TextEncoder().encode(MAGIC), head, r.score, r.pull, r.push, r.lines, r.top, ...near];
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
  if (b.length < 32 || b.subarray(0, 8).toString('latin1') !== MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer; // aligned copy
  const [n, from, k, nk, nr] = new Uint32Array(buf, 8, 6);
  const need = 32 + n! * 28 + k! * 4 + nr! * 4 * (1 + 2 * nk!);
  if (b.length !== need) throw bad(`${b.length} bytes, ${need} expected`);
  let at = 32;
  const f64 = () => {
    const v = new Float64Array(buf, at, n!);
    at += n! * 8;
    return v;
  };
  const score = f64();
  const pull = f64();
  const push = f64();
  const u32 = (length: number) => {
    const v = new Uint32Array(buf, at, length);
    at += length * 4;
    return v;
  };
  const lines = u32(n!);
  const top = u32(k!);
  const rows = u32(nr!);
  const index = u32(nr! * nk!);
  const near = { k: nk!, rows, index, cost: new Float32Array(buf, at, nr! * nk!) };
  return { score, pull, push, lines, from: from!, top, near };
}

/** A shard's column sums: magic, u32 [anchor length, harmful length, 0, 0], then the six f64 arrays. */
function encodeColumns(c: ColumnSums): Uint8Array {
  const arrays = [c.anchor.max, c.anchor.sum, c.harmful.max, c.harmful.sum, c.total.max, c.total.sum];
  const head = new Uint32Array([c.anchor.max.length, c.harmful.max.length, 0, 0]);
  const out = new Uint8Array(24 + arrays.reduce((a, v) => a + v.byteLength, 0));
  out.set(new TextEncoder().encode(COLUMNS_MAGIC));
  out.set(new Uint8Array(head.buffer), 8);
  let at = 24;
  for (const v of arrays) {
    out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
    at += v.byteLength;
  }
  return out;
}

export async function readColumns(path: string): Promise<ColumnSums> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete shard result: ${what}`);
  if (b.length < 24 || b.subarray(0, 8).toString('latin1') !== COLUMNS_MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer; // aligned copy
  const [ma, mh] = new Uint32Array(buf, 8, 2);
  const need = 24 + (ma! + mh! + 1) * 16;
  if (b.length !== need) throw bad(`${b.length} bytes, ${need} expected`);
  let at = 24;
  const f64 = (n: number) => {
    const v = new Float64Array(buf, at, n);
    at += n * 8;
    return v;
  };
  const sums = (n: number) => ({ max: f64(n), sum: f64(n) });
  return { anchor: sums(ma!), harmful: sums(mh!), total: sums(1) };
}
