// One shard of a sharded purification: score records [from, to) against a
// model for the merge, or find the nearest harmful references of some of
// them (the reasons pass). Runs in a worker process (see shard-worker.ts) or
// a queue worker; writes one file, atomically.
import { readFile } from 'node:fs/promises';
import { InputError, SotError } from '../errors.js';
import { type ByteRange, type RowGroupRange, writeFileAtomic } from '../io/index.js';
import type { Layout } from '../io/records.js';
import type { DatasetSource, PurifyOptions } from '../pipeline/options.js';
import type { Matrix } from '../matrix.js';
import { nearestHarmful } from '../pipeline/audit.js';
import { nearestOf, type NearRows } from './explain.js';
import { harmfulForReasons } from './model.js';
import type { ColumnSums, Scored } from './scoring.js';
import { openScoring, scoreRecords, sumColumns, type ScoredRecords } from './score.js';
import { Column } from './stream.js';
import { type FitShardTask, runFitShard } from './shard-fit.js';
import { runWriteShard, type WriteShardTask } from './shard-write.js';

/** How every task of a sharded run reads its input (plain data). */
export type ShardInput = DatasetSource & Pick<PurifyOptions, 'embeddingCache' | 'cacheDir'>;

/** The input options of `o` and nothing else: what a task carries across a process or a queue. */
export function shardInput(o: ShardInput): ShardInput {
  const { input, format, recordFormat, fields, skipInvalid, maxLineBytes, embeddingCache, cacheDir } = o;
  return { input, format, recordFormat, fields, skipInvalid, maxLineBytes, embeddingCache, cacheDir };
}

/** Which records a shard reads: one of three ways (`shardLayout` picks it for the input's format). */
export interface ShardPart {
  /** The shard's records by index, `from <= index < to` (read from the file's head)... */
  from?: number;
  to?: number;
  /** ... or the records of this part of a JSON Lines, CSV or TSV file (from `recordRanges`, read alone; their indices are the coordinator's to assign). */
  bytes?: ByteRange;
  /** ... or the records of this run of a Parquet file's row groups (from `rowGroupRanges`, read alone; indexed likewise). */
  rowGroups?: RowGroupRange;
  /** The record layout the coordinator settled: a row-group shard then decodes only its own row groups. */
  layout?: Layout;
}

/** What a shard needs: plain data, so it crosses a process or a queue as JSON. */
export interface ShardTask extends ShardInput, ShardPart {
  model: string;
  shard: number;
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
  /**
   * The reasons pass instead of the scores: the `neighbours` nearest harmful
   * references of the shard's records listed in the file `rows` (written by
   * `encodeRows`, after the merge: the removed records that have none yet).
   */
  explain?: { neighbours: number; rows: string };
}

/**
 * A shard's result: its records' scores (in record order); the merge ranks
 * them all at once in the core.
 */
export interface ShardResult extends ScoredRecords {
  from: number;
  /** The records asked for reasons in the scoring pass (indices, global) and their nearest harmful references. */
  near: NearRows;
}

const MAGIC = 'SOTSHRD3';
const COLUMNS_MAGIC = 'SOTCOLS1';
const ROWS_MAGIC = 'SOTROWS1';
const NEAR_MAGIC = 'SOTNEAR1';

/** Any shard task: the fit's (counting, the sample), the model's (a refit pass, the scoring, the reasons) or the outputs' (the write pass). */
export type AnyShardTask = ShardTask | FitShardTask | WriteShardTask;

/** Runs a shard task of any kind. */
export function runTask(t: AnyShardTask, signal?: AbortSignal): Promise<void> {
  return 'fit' in t ? runFitShard(t, signal) : 'write' in t ? runWriteShard(t, signal) : runShard(t, signal);
}

/** A shard's error as it crosses a process or a queue: its code and message, and an input error's place. */
export interface ShardError {
  code: string;
  message: string;
  file?: string;
  line?: number;
  field?: string;
}

/** What a worker (a process, or a queue's worker) sends back of an error. */
export function shardError(err: unknown): ShardError {
  const where = err instanceof InputError ? { file: err.file, line: err.line, field: err.field } : {};
  const message = err instanceof Error ? err.message : String(err);
  return { code: err instanceof SotError ? err.code : 'ERR_INTERNAL', message, ...where };
}

/** A worker's error read back from the text it sent (`shardError` as JSON); null when the text is not one. */
export function parseShardError(text: string): ShardError | null {
  try {
    const e = JSON.parse(text) as ShardError;
    if (typeof e?.code === 'string' && typeof e.message === 'string') return e;
  } catch {
    // not JSON
  }
  return null;
}

/**
 * The coordinator's error for a shard that failed for good: an input error
 * again an `InputError` naming the file, line and field (and the shard), any
 * other the shard, its attempts and the worker's message.
 */
export function shardFailure(e: ShardError, t: AnyShardTask, attempts: number | string): SotError {
  if (e.code === 'ERR_INPUT' && e.file !== undefined) {
    const at = e.line === undefined ? e.file : `${e.file}:${e.line}`;
    const what = e.message.startsWith(`${at}: `) ? e.message.slice(at.length + 2) : e.message;
    return new InputError(
      { file: e.file, line: e.line, field: e.field },
      `${what} (shard ${t.shard}, ${describeShard(t)})`,
    );
  }
  return new SotError(
    e.code as SotError['code'],
    `shard ${t.shard} (${describeShard(t)}) failed after ${attempts} attempt(s): ${e.message}`,
  );
}

/** The shard's records as messages name them. */
export function describeShard(
  t: Pick<AnyShardTask, 'bytes' | 'rowGroups' | 'from' | 'to' | 'shard'> & { stride?: number },
): string {
  const g = t.rowGroups;
  if (g) return `row groups ${g.group} to ${g.group + g.groups - 1}, rows ${g.row + 1} to ${g.row + g.rows}`;
  if (t.bytes) return `bytes ${t.bytes.start} to ${t.bytes.end - 1}, from line ${t.bytes.line}`;
  if (t.stride) return `records ${t.shard}, ${t.shard + t.stride}, ${t.shard + 2 * t.stride} and so on`;
  return `records ${t.from} to ${t.to! - 1}`;
}

export async function runShard(t: ShardTask, signal?: AbortSignal): Promise<void> {
  const { model, embedder, input, cache } = await openScoring({ ...t, range: t.bytes ?? t.rowGroups }, false);
  const from = t.from ?? 0;
  const range = t.bytes || t.rowGroups ? undefined : { from, to: t.to! };
  const check = (records: number) => {
    if (range && records !== range.to - from)
      throw new InputError(
        { file: t.input },
        `shard ${t.shard} expected records ${from} to ${range.to - 1}, the file has ${from + records} (it changed since the fit?)`,
      );
  };
  if (t.explain) {
    const { records, rows } = await readRows(t.explain.rows);
    const near = await nearestOf(input, rows, harmfulForReasons(model).points, embedder, cache, {
      neighbours: t.explain.neighbours,
      cost: model.header.cost,
      range,
      signal,
    });
    if (near.records !== records)
      throw new InputError(
        { file: t.input },
        `shard ${t.shard} (${describeShard(t)}) has ${near.records} records now, ${records} when scored (the file changed during the run?)`,
      );
    await writeFileAtomic(t.out, encodeNear(near));
    return;
  }
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
        const h = harmfulForReasons(model).points;
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
  const near = { k, rows: rows.done(), index: index.done(), cost: cost.done() };
  await writeFileAtomic(t.out, encodeShard({ ...r, from, near }));
}

/** Concatenates typed arrays' bytes after a magic. */
export function pack(magic: string, parts: ArrayBufferView[]): Uint8Array {
  const all = [new TextEncoder().encode(magic), ...parts];
  const out = new Uint8Array(all.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of all) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  return out;
}

/**
 * A shard's result: magic, u32 [records, from, reasons' k, rows with
 * reasons, 0, 0], the f64 scores, pulls and pushes, the u32 lines, then the
 * rows with reasons (u32) and their nearest references (u32 index, f32 cost;
 * rows x k each).
 */
export function encodeShard(r: ShardResult): Uint8Array {
  const n = r.score.length;
  const head = new Uint32Array([n, r.from, r.near.k, r.near.rows.length, 0, 0]);
  return pack(MAGIC, [head, r.score, r.pull, r.push, r.lines, r.near.rows, r.near.index, r.near.cost]);
}

export async function readShard(path: string): Promise<ShardResult> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete shard result: ${what}`);
  if (b.length < 32 || b.subarray(0, 8).toString('latin1') !== MAGIC)
    throw bad(
      b.subarray(0, 7).toString('latin1') === MAGIC.slice(0, 7)
        ? `format ${b.subarray(0, 8).toString('latin1')}, this version reads ${MAGIC} (a worker of another version?)`
        : 'no signature',
    );
  const buf = new Uint8Array(b).buffer; // aligned copy
  const [n, from, nk, nr] = new Uint32Array(buf, 8, 4);
  const need = 32 + n! * 28 + nr! * 4 * (1 + 2 * nk!);
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
  const rows = u32(nr!);
  const index = u32(nr! * nk!);
  const near = { k: nk!, rows, index, cost: new Float32Array(buf, at, nr! * nk!) };
  return { score, pull, push, lines, from: from!, near };
}

/** The rows of a shard (indices in it, ascending) for a reasons pass: magic, u32 [the shard's records, rows], the u32 rows. */
export function encodeRows(records: number, rows: Uint32Array): Uint8Array {
  return pack(ROWS_MAGIC, [new Uint32Array([records, rows.length]), rows]);
}

async function readRows(path: string): Promise<{ records: number; rows: Uint32Array }> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete list of rows: ${what}`);
  if (b.length < 16 || b.subarray(0, 8).toString('latin1') !== ROWS_MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer;
  const [records, count] = new Uint32Array(buf, 8, 2);
  if (b.length !== 16 + count! * 4) throw bad(`${b.length} bytes, ${16 + count! * 4} expected`);
  const rows = new Uint32Array(buf, 16, count!);
  if (rows.some((r, i) => r >= records! || (i > 0 && r <= rows[i - 1]!)))
    throw bad(`the rows must ascend and lie below the shard's ${records} records`);
  return { records: records!, rows };
}

/** A reasons pass's result: magic, u32 [rows, k], the u32 rows (in the shard), u32 index and f32 cost (rows x k each). */
function encodeNear(r: NearRows): Uint8Array {
  return pack(NEAR_MAGIC, [new Uint32Array([r.rows.length, r.k]), r.rows, r.index, r.cost]);
}

/** A reasons pass's result: the rows as indices in the shard. */
export async function readNear(path: string): Promise<NearRows> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete reasons result: ${what}`);
  if (b.length < 16 || b.subarray(0, 8).toString('latin1') !== NEAR_MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer;
  const [nr, k] = new Uint32Array(buf, 8, 2);
  const need = 16 + nr! * 4 * (1 + 2 * k!);
  if (b.length !== need) throw bad(`${b.length} bytes, ${need} expected`);
  const rows = new Uint32Array(buf, 16, nr!);
  const index = new Uint32Array(buf, 16 + nr! * 4, nr! * k!);
  const cost = new Float32Array(buf, 16 + nr! * 4 * (1 + k!), nr! * k!);
  return { k: k!, rows, index, cost };
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
