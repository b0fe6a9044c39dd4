// The write pass of a sharded purification: after the merge's selection and
// reasons, each shard reads its part of the input again and writes its part
// of the purified dataset, of the scores file and of the removed file as
// fragments in the work dir; the coordinator joins the fragments in shard
// order into the run's staged outputs (committed together with the report).
// What a shard needs from the merge (its records' rank, kept flag and
// training weight; the values and reasons of its removed records) travels
// as a small binary file, its write plan.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AbortError, InputError, IoError } from '../errors.js';
import { type AtomicWriter, commitAll, openAtomicWriter, openDataset, writeFileAtomic } from '../io/index.js';
import {
  type ColumnsTarget,
  type ColumnValue,
  type FilePart,
  weightFieldOf,
  weightFieldTaken,
  writeColumnsTo,
} from '../io/write.js';
import { removedFields, removedFieldTaken } from '../pipeline/removed.js';
import type { Selection } from '../selection.js';
import { SCORES_CSV_HEADER, writeScoreRows } from './score.js';
import { describeShard, pack, readShard, type ShardInput, type ShardPart, type ShardResult } from './shard.js';

/** One shard's write task: plain data, so it crosses a process or a queue as JSON. */
export interface WriteShardTask extends ShardInput, ShardPart {
  shard: number;
  /** Written last, once the fragments are: their sizes (`WriteDone`). */
  out: string;
  write: {
    /** The shard's write plan (`encodePlan`). */
    plan: string;
    /** The shard's scoring result (its scores, pulls, pushes and lines). */
    scored: string;
    /** The fragment of the scores file (its rows, no header). */
    scores: string;
    /** The fragment of the purified dataset, and which part of the file it is (absent: the coordinator writes it). */
    dataset?: { path: string; part: FilePart };
    /** The fragment of the removed file, likewise. */
    removed?: { path: string; part: FilePart };
    weightField?: string | null;
  };
}

/** What a write task leaves: the records it read and the bytes of each fragment. */
interface WriteDone {
  records: number;
  bytes: { scores: number; dataset?: number; removed?: number };
}

/** What a shard needs from the merge to write its part, its records indexed from 0. */
export interface WritePlan {
  /** The shard's first record's index in the whole run (the scores file numbers its rows from it). */
  from: number;
  rank: Uint32Array;
  kept: Uint8Array;
  trainWeight: Float64Array;
  /** The removed records' values (`removedFields`), in record order: the numbers, `numbers` a record, and the reasons. */
  removed: { numbers: number; values: Float64Array; reasons: string[] };
}

const PLAN_MAGIC = 'SOTWRIT1';

/**
 * A write plan: magic, u32 [records, from, removed, numbers a removed
 * record], the f64 training weights and removed values, the u32 ranks and
 * reasons' byte lengths, the u8 kept flags, the reasons (UTF-8).
 */
export function encodePlan(p: WritePlan): Uint8Array {
  const n = p.kept.length;
  const reasons = p.removed.reasons.map((r) => Buffer.from(r, 'utf8'));
  const head = new Uint32Array([n, p.from, reasons.length, p.removed.numbers]);
  const lengths = Uint32Array.from(reasons, (r) => r.length);
  return pack(PLAN_MAGIC, [head, p.trainWeight, p.removed.values, p.rank, lengths, p.kept, ...reasons]);
}

export async function readPlan(path: string): Promise<WritePlan> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete write plan: ${what}`);
  if (b.length < 24 || b.subarray(0, 8).toString('latin1') !== PLAN_MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer; // aligned copy
  const [n, from, r, m] = new Uint32Array(buf, 8, 4) as unknown as number[];
  let at = 24;
  const take = <T>(make: new (b: ArrayBuffer, at: number, n: number) => T, count: number, size: number): T => {
    if (at + count * size > b.length) throw bad(`${b.length} bytes, more expected`);
    const v = new make(buf, at, count);
    at += count * size;
    return v;
  };
  const trainWeight = take(Float64Array, n!, 8);
  const values = take(Float64Array, r! * m!, 8);
  const rank = take(Uint32Array, n!, 4);
  const lengths = take(Uint32Array, r!, 4);
  const kept = take(Uint8Array, n!, 1);
  const reasons = Array.from(lengths, (len) => b.toString('utf8', at, (at += len)));
  if (at !== b.length) throw bad(`${b.length} bytes, ${at} expected`);
  return { from: from!, rank, kept, trainWeight, removed: { numbers: m!, values, reasons } };
}

/** Runs a write task: the shard's fragments, committed together, then its `out`. */
export async function runWriteShard(t: WriteShardTask, signal?: AbortSignal): Promise<void> {
  const plan = await readPlan(t.write.plan);
  const scored = await readShard(t.write.scored);
  const records = plan.kept.length;
  const changed = (what: string) =>
    new InputError(
      { file: t.input },
      `shard ${t.shard} (${describeShard(t)}) has ${what} now, ${records} records when scored (the file changed during the run?)`,
    );
  if (scored.score.length !== records) throw changed(`${scored.score.length} scores`);
  // Index shards read from the file's head and see whole-file indices; range shards index from 0.
  const range = t.bytes || t.rowGroups ? undefined : { from: t.from ?? 0, to: t.to! };
  const local = range ? (i: number) => i - range.from : (i: number) => i;
  const writers: AtomicWriter[] = [];
  // The fragments live in the work dir, which the run removes: a crash loses nothing a rerun does not rewrite.
  const open = async (path: string) => {
    const w = await openAtomicWriter(path, { durable: false });
    writers.push(w);
    return w;
  };
  try {
    const targets: Array<ColumnsTarget & { name: 'dataset' | 'removed' }> = [];
    if (t.write.dataset) {
      const field = weightFieldOf(t.write.weightField);
      targets.push({
        name: 'dataset',
        out: await open(t.write.dataset.path),
        part: t.write.dataset.part,
        columns: {
          fields: field === null ? [] : [{ name: field, type: 'double' }],
          values: (i) => (plan.kept[local(i)] ? (field === null ? [] : [plan.trainWeight[local(i)]!]) : undefined),
          taken: (line, f) => weightFieldTaken(t.input, line, f),
        },
      });
    }
    if (t.write.removed) {
      const { numbers, values, reasons } = plan.removed;
      const slot = new Int32Array(records).fill(-1);
      for (let i = 0, s = 0; i < records; i++) if (!plan.kept[i]) slot[i] = s++;
      targets.push({
        name: 'removed',
        out: await open(t.write.removed.path),
        part: t.write.removed.part,
        columns: {
          fields: removedFields(numbers === removedFields(true).length - 1),
          values: (i) => {
            const s = slot[local(i)]!;
            if (s < 0) return undefined;
            const v: ColumnValue[] = Array.from(values.subarray(s * numbers, (s + 1) * numbers));
            v.push(reasons[s]!);
            return v;
          },
          taken: (line, f) => removedFieldTaken(t.input, line, f),
        },
      });
    }
    if (targets.length) {
      const dataset = await openDataset(t.input, {
        format: t.format,
        recordFormat: t.recordFormat,
        fields: t.fields,
        skipInvalid: t.skipInvalid,
        maxLineBytes: t.maxLineBytes,
        range: t.bytes ?? t.rowGroups,
        layout: t.layout,
      });
      const { read } = await writeColumnsTo(dataset, targets, { signal, range });
      if (read !== records) throw changed(`${read} records`);
    }
    const scores = await open(t.write.scores);
    await writeScoreRows(scores, scored, plan, plan.from, signal);
    if (signal?.aborted) throw new AbortError();
    await commitAll(writers);
    const bytes: WriteDone['bytes'] = { scores: scores.digest().bytes };
    for (const x of targets) bytes[x.name] = x.out.digest().bytes;
    await writeFileAtomic(t.out, JSON.stringify({ records, bytes } satisfies WriteDone), { durable: false });
  } catch (err) {
    await Promise.all(writers.map((w) => w.abort()));
    throw err;
  }
}

/** What the coordinator gives the write pass. */
export interface WritePassInput {
  /** The shards' scoring results, placed (their `from` the whole run's). */
  results: ShardResult[];
  /** The scoring result files, by shard. */
  scored: string[];
  /** A shard's records and how it reads them, as its scoring task had them. */
  part: (s: number) => Omit<WriteShardTask, 'out' | 'write'>;
  selection: Selection;
  /**
   * The removed file's values of a record (`removedValues`) and whether they
   * hold the contributions (`removedFields`), or null when no removed file is written.
   */
  removed: { values: (i: number) => ColumnValue[] | undefined; contributions: boolean } | null;
  /** Whether the dataset and the removed file are written by the shards (not a Parquet one, which does not join). */
  records: boolean;
  weightField?: string | null;
  work: string;
  run: (tasks: WriteShardTask[]) => Promise<void>;
  signal?: AbortSignal;
}

/** Fills an output from the shards' fragments. */
export type Fill = (out: AtomicWriter) => Promise<void>;

/**
 * Runs the write pass and returns how to fill the outputs from its
 * fragments: the scores file always; the dataset and the removed file when
 * the shards wrote them.
 */
export async function writePass(w: WritePassInput): Promise<{ scores: Fill; dataset?: Fill; removed?: Fill }> {
  const { results, selection } = w;
  const shards = results.length;
  const last = shards - 1;
  // Whether records precede shard s in a file that holds those `has` accepts.
  const before = (has: (i: number) => boolean) => {
    const after: boolean[] = [];
    let any = false;
    for (const r of results) {
      after.push(any);
      for (let i = r.from; i < r.from + r.score.length && !any; i++) any = has(i);
    }
    return after;
  };
  const keptBefore = before((i) => selection.kept[i] === 1);
  const removedBefore = before((i) => selection.kept[i] === 0);
  const tasks: WriteShardTask[] = [];
  for (const [s, r] of results.entries()) {
    const n = r.score.length;
    const end = r.from + n;
    const values: number[] = [];
    const reasons: string[] = [];
    const numbers = removedFields(w.removed?.contributions ?? false).length - 1; // the reason last
    if (w.removed && w.records)
      for (let i = r.from; i < end; i++) {
        const v = w.removed.values(i);
        if (v === undefined) continue;
        for (let j = 0; j < numbers; j++) values.push(v[j] as number);
        reasons.push(v[numbers] as string);
      }
    const plan = join(w.work, `write-${s}.plan`);
    await writeFileAtomic(
      plan,
      encodePlan({
        from: r.from,
        rank: selection.rank.subarray(r.from, end),
        kept: selection.kept.subarray(r.from, end),
        trainWeight: selection.trainWeight.subarray(r.from, end),
        removed: { numbers, values: Float64Array.from(values), reasons },
      }),
      { durable: false },
    );
    const fragment = (what: string) => join(w.work, `write-${s}.${what}`);
    const part = (after: boolean[]) => ({ head: s === 0, tail: s === last, after: after[s]! });
    tasks.push({
      ...w.part(s),
      out: fragment('done'),
      write: {
        plan,
        scored: w.scored[s]!,
        scores: fragment('scores'),
        ...(w.records ? { dataset: { path: fragment('dataset'), part: part(keptBefore) } } : {}),
        ...(w.records && w.removed ? { removed: { path: fragment('removed'), part: part(removedBefore) } } : {}),
        ...(w.weightField === undefined ? {} : { weightField: w.weightField }),
      },
    });
  }
  await w.run(tasks);
  const done = await Promise.all(
    tasks.map(async (t) => {
      const d = JSON.parse(await readFile(t.out, 'utf8')) as WriteDone;
      if (d.records !== results[t.shard]!.score.length)
        throw new InputError(
          { file: t.input },
          `shard ${t.shard} wrote ${d.records} records, it scored ${results[t.shard]!.score.length}`,
        );
      return d;
    }),
  );
  const joined =
    (which: 'scores' | 'dataset' | 'removed', head = ''): Fill =>
    async (out) => {
      if (head) await out.write(head);
      for (const [s, t] of tasks.entries()) {
        const path = which === 'scores' ? t.write.scores : t.write[which]!.path;
        await copyFragment(out, path, done[s]!.bytes[which]!, w.signal);
      }
    };
  return {
    scores: joined('scores', SCORES_CSV_HEADER),
    ...(w.records ? { dataset: joined('dataset') } : {}),
    ...(w.records && w.removed ? { removed: joined('removed') } : {}),
  };
}

/** Appends a fragment to an output, streamed; it must have the size its shard wrote. */
async function copyFragment(out: AtomicWriter, path: string, bytes: number, signal?: AbortSignal): Promise<void> {
  const size = (await stat(path)).size;
  if (size !== bytes)
    throw new IoError(`${path}: a fragment of ${size} bytes, its shard wrote ${bytes} (written twice at once?)`, {
      path,
    });
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    if (signal?.aborted) throw new AbortError();
    await out.write(chunk as Buffer);
  }
}
