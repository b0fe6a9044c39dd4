// The fit's passes over every record, run in shard workers (`purifySharded`):
// each shard counts its records and the built-in embedder's document
// frequencies over them; the coordinator adds the tables up (bit for bit what
// one `HashingEmbedder.fit` over the whole file counts), draws the sample as
// `fit()` does, and each shard embeds its sampled records with the merged
// embedder. The coordinator holds one 2^20-bucket table and the sample's
// rows; a worker, one table and its part of the sample.
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { builtinDim } from '../embed/defaults.js';
import { addDocFreq, DOC_FREQ_BUCKETS, HashingEmbedder, sparseDocFreq } from '../embed/hashing.js';
import type { Embedder } from '../embed/types.js';
import { InputError, OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/index.js';
import { type AnyMatrix, arrayMatrix, type Matrix, storedMatrix, writeRows } from '../matrix.js';
import { openEmbeddingCache } from '../pipeline/embedding.js';
import { PipelineInput } from '../pipeline/input.js';
import type { PurifyOptions } from '../pipeline/options.js';
import { embedRows, type RecordPasses } from './fit.js';
import { shardInput, type ShardInput, type ShardTask } from './shard.js';

/** The `pass` of `onShard` events and the file names of the fit's two passes (the refit passes count from 0). */
export const COUNT_PASS = -2;
export const SAMPLE_PASS = -1;

/** The built-in embedder's settings, its table aside. */
interface EmbedderSettings {
  /** Absent: automatic, from the merged table's documents, as in one process. */
  dim?: number;
  seed: number;
  wordWeight: number;
  maxChars: number;
}

/** A shard task of the fit: plain data, so it crosses a process or a queue as JSON. */
export interface FitShardTask
  extends ShardInput,
    Pick<ShardTask, 'shard' | 'from' | 'to' | 'bytes' | 'rowGroups' | 'layout' | 'out'> {
  /** `count`: the shard's records and their document frequencies; `sample`: its sampled records, embedded. */
  fit: 'count' | 'sample';
  template?: string;
  /** The built-in embedder's settings. */
  settings: EmbedderSettings;
  /** count, index shards (the records are not counted yet): the records whose index is `shard` modulo `stride`. */
  stride?: number;
  /** sample: the merged table (a count result file) and the id of the embedder it gives. */
  docFreq?: string;
  id?: string;
  /**
   * sample: entries `at` to `at + count - 1` of this file of u32 record
   * indices are the shard's sampled records; `first` is the index of the
   * first record the shard reads (a byte range's first record, or 0).
   */
  sample?: { file: string; at: number; count: number; first: number };
}

/** A count result: records, documents and the sparse table. */
interface Counted {
  records: number;
  docCount: number;
  buckets: Uint32Array;
  counts: Uint32Array;
}

const COUNT_MAGIC = 'SOTDFRQ1';
const ROWS_MAGIC = 'SOTROWS1';

export async function runFitShard(t: FitShardTask, signal?: AbortSignal): Promise<void> {
  const input = await PipelineInput.open({ ...t, range: t.bytes ?? t.rowGroups });
  if (t.fit === 'count') return countShard(t, input, signal);
  return sampleShard(t, input, signal);
}

async function countShard(t: FitShardTask, input: PipelineInput, signal?: AbortSignal): Promise<void> {
  const embedder = new HashingEmbedder(t.settings);
  const stride = t.stride ?? 1;
  const mine = t.shard % stride;
  let records = 0;
  let index = 0; // of the batch's first record
  const texts = async function* () {
    for await (const b of input.batches({ signal })) {
      const picked = stride === 1 ? b.texts : b.texts.filter((_, j) => (index + j) % stride === mine);
      index += b.texts.length;
      records += picked.length;
      yield picked;
    }
  };
  await embedder.fit(texts(), { signal });
  const table = embedder.docFreq!;
  await writeFileAtomic(t.out, encodeCounted({ records, docCount: table.docCount, ...sparseDocFreq(table.counts) }));
}

async function sampleShard(t: FitShardTask, input: PipelineInput, signal?: AbortSignal): Promise<void> {
  const s = t.sample!;
  const embedder = mergedEmbedder(await readCounted(t.docFreq!), t.settings);
  if (embedder.id !== t.id)
    throw new InputError({ file: t.docFreq! }, `the merged table gives the embedder ${embedder.id}, not ${t.id}`);
  const indices = await readIndices(s.file, s.at, s.count);
  for (let i = 0; i < indices.length; i++) indices[i]! -= s.first;
  const cache = await openEmbeddingCache(t, embedder);
  const rows = await embedRows(
    input,
    indices,
    embedder,
    cache,
    signal,
    () => {},
    arrayMatrix(indices.length, embedder.dim),
  );
  await writeFileAtomic(t.out, encodeRows(rows));
}

/** Where the shards of a sharded run are (shards.ts decides): what the fit's passes need of it. */
export interface ShardLayout {
  /** Byte-range and row-group shards count their own records; index shards (no record count yet) count every `shards`-th record. */
  byRange: boolean;
  /** Shards of the count pass. */
  shards: number;
  /** Shards, and the records of shard `s`, once the `n` records are counted. */
  shardsOf(n: number): number;
  part(s: number, n: number): Pick<ShardTask, 'bytes' | 'rowGroups' | 'layout' | 'from' | 'to'>;
}

/**
 * The fit's passes over the records as shard tasks, run by `run` (local
 * workers or the queue, with their retries); their files go in `work`.
 */
export function shardedPasses(
  o: ShardInput & Pick<PurifyOptions, 'template'>,
  layout: ShardLayout,
  work: string,
  run: (tasks: FitShardTask[], pass: number) => Promise<void>,
): RecordPasses {
  let settings: EmbedderSettings | undefined;
  let perShard: number[] = []; // records of each byte-range shard
  const docFreqFile = join(work, 'docfreq.bin');
  const base = (s: number, fit: FitShardTask['fit']) => ({
    ...shardInput(o),
    template: o.template,
    settings: settings!,
    shard: s,
    fit,
    out: join(work, `fit-${fit}-${s}.bin`),
  });
  return {
    async count(given, onProgress, memoryBudget) {
      if (!(given instanceof HashingEmbedder))
        throw new OptionError('ERR_OPTION', 'a sharded fit runs the built-in embedder');
      settings = { dim: given.dimOption, seed: given.seed, wordWeight: given.wordWeight, maxChars: given.maxChars };
      const tasks: FitShardTask[] = Array.from({ length: layout.shards }, (_, s) => ({
        ...base(s, 'count'),
        ...(layout.byRange ? layout.part(s, 0) : { stride: layout.shards }),
      }));
      await run(tasks, COUNT_PASS);
      // one shard's table at a time, added into the whole file's
      const counts = new Uint32Array(DOC_FREQ_BUCKETS);
      let docCount = 0;
      perShard = [];
      for (const t of tasks) {
        const part = await readCounted(t.out);
        addDocFreq(counts, part);
        docCount += part.docCount;
        perShard.push(part.records);
      }
      const records = perShard.reduce((a, v) => a + v, 0);
      await writeFileAtomic(docFreqFile, encodeCounted({ records, docCount, ...sparseDocFreq(counts) }));
      onProgress(records);
      // the length as one process under this budget sizes it, stated to the sample's shards
      settings = { ...settings!, dim: settings!.dim ?? builtinDim(docCount, memoryBudget) };
      return { records, embedder: new HashingEmbedder({ ...settings, docFreq: { counts, docCount } }) };
    },

    async rows(indices, n, embedder: Embedder, _cache, onProgress) {
      const dim = embedder.dim;
      const sampleFile = join(work, 'sample.u32');
      await writeFileAtomic(sampleFile, new Uint8Array(indices.buffer, indices.byteOffset, indices.byteLength));
      const shards = layout.byRange ? perShard.length : layout.shardsOf(n);
      const tasks: FitShardTask[] = [];
      const places: number[] = [];
      let first = 0; // the shard's first record
      let at = 0; // its first sampled record, in indices
      for (let s = 0; s < shards; s++) {
        const p = layout.part(s, n);
        const [lo, hi] = layout.byRange ? [first, first + perShard[s]!] : [p.from!, p.to!];
        first = hi;
        let end = at;
        while (end < indices.length && indices[end]! < hi) end++;
        if (end === at) continue; // nothing of the sample here
        tasks.push({
          ...base(s, 'sample'),
          ...p,
          docFreq: docFreqFile,
          id: embedder.id,
          sample: { file: sampleFile, at, count: end - at, first: layout.byRange ? lo : 0 },
        });
        places.push(at);
        at = end;
      }
      if (at !== indices.length)
        throw new InputError({ file: o.input }, `the shards hold ${at} of the ${indices.length} sampled records`);
      await run(tasks, SAMPLE_PASS);
      // held once, in native memory shared with the core
      const matrix = storedMatrix(indices.length, dim);
      for (let j = 0; j < tasks.length; j++) {
        const t = tasks[j]!;
        await readRowsInto(t.out, matrix, places[j]!, t.sample!.count, dim);
      }
      onProgress(indices.length);
      return matrix;
    },
  };
}

/** The built-in embedder with a count result's table. */
function mergedEmbedder(c: Counted, settings: EmbedderSettings): HashingEmbedder {
  const counts = new Uint32Array(DOC_FREQ_BUCKETS);
  addDocFreq(counts, c);
  return new HashingEmbedder({ ...settings, docFreq: { counts, docCount: c.docCount } });
}

/** A count result: magic, f64 [records, documents], u32 [non-zero buckets, 0], then the u32 buckets and counts. */
function encodeCounted(c: Counted): Uint8Array {
  const out = new Uint8Array(32 + c.buckets.length * 8);
  out.set(new TextEncoder().encode(COUNT_MAGIC));
  const view = new DataView(out.buffer);
  view.setFloat64(8, c.records, true);
  view.setFloat64(16, c.docCount, true);
  view.setUint32(24, c.buckets.length, true);
  new Uint32Array(out.buffer, 32, c.buckets.length).set(c.buckets);
  new Uint32Array(out.buffer, 32 + c.buckets.length * 4, c.buckets.length).set(c.counts);
  return out;
}

async function readCounted(path: string): Promise<Counted> {
  const b = await readFile(path);
  const bad = (what: string) => new InputError({ file: path }, `not a complete count result: ${what}`);
  if (b.length < 32 || b.subarray(0, 8).toString('latin1') !== COUNT_MAGIC) throw bad('no signature');
  const buf = new Uint8Array(b).buffer; // aligned copy
  const view = new DataView(buf);
  const [records, docCount, m] = [view.getFloat64(8, true), view.getFloat64(16, true), view.getUint32(24, true)];
  if (b.length !== 32 + m * 8) throw bad(`${b.length} bytes, ${32 + m * 8} expected`);
  const buckets = new Uint32Array(buf, 32, m);
  if (buckets.some((v) => v >= DOC_FREQ_BUCKETS)) throw bad('a bucket out of range');
  return { records, docCount, buckets, counts: new Uint32Array(buf, 32 + m * 4, m) };
}

async function readIndices(path: string, at: number, count: number): Promise<Uint32Array> {
  const out = new Uint32Array(count);
  await readExactly(path, new Uint8Array(out.buffer), at * 4);
  return out;
}

/** Rows: magic, u32 [rows, dim, 0, 0], then the f32 rows (written as they are, not copied). */
function encodeRows(m: Matrix): Uint8Array[] {
  const head = new Uint8Array(24);
  head.set(new TextEncoder().encode(ROWS_MAGIC));
  new Uint32Array(head.buffer, 8, 4).set([m.rows, m.cols, 0, 0]);
  return [head, new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength)];
}

/** Rows of a shard's result read at a time. */
const CHUNK_BYTES = 1024 ** 2;

/** Reads a shard's rows into rows `at` on of `into`, a chunk at a time, through one open file. */
async function readRowsInto(path: string, into: AnyMatrix, at: number, rows: number, dim: number): Promise<void> {
  await reading(path, async (fill, size) => {
    const head = new Uint8Array(24);
    await fill(head, 0);
    const [r, d] = new Uint32Array(head.buffer, 8, 2);
    if (Buffer.from(head.subarray(0, 8)).toString('latin1') !== ROWS_MAGIC || r !== rows || d !== dim)
      throw new InputError({ file: path }, `not the shard's ${rows} sampled rows of dimension ${dim}`);
    const step = Math.max(1, Math.floor(CHUNK_BYTES / (4 * Math.max(dim, 1))));
    const chunk = new Float32Array(Math.min(step, rows) * dim);
    for (let row = 0; row < rows; row += step) {
      const values = chunk.subarray(0, Math.min(step, rows - row) * dim);
      await fill(new Uint8Array(values.buffer, 0, values.byteLength), 24 + row * dim * 4);
      writeRows(into, at + row, values);
    }
    if ((await size()) !== 24 + rows * dim * 4)
      throw new InputError({ file: path }, `has bytes past its ${rows * dim} values`);
  });
}

/** Fills `into` from `path` at byte `position`. */
async function readExactly(path: string, into: Uint8Array, position: number): Promise<void> {
  await reading(path, (fill) => fill(into, position));
}

/** Opens `path` for `use`, which fills arrays from it at byte positions (each whole, or an InputError). */
async function reading<T>(
  path: string,
  use: (fill: (into: Uint8Array, position: number) => Promise<void>, size: () => Promise<number>) => Promise<T>,
): Promise<T> {
  const fh = await open(path, 'r');
  try {
    return await use(
      async (into, position) => {
        let done = 0;
        while (done < into.length) {
          const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
          if (bytesRead === 0)
            throw new InputError({ file: path }, `ends at byte ${position + done}, short of its data`);
          done += bytesRead;
        }
      },
      async () => (await fh.stat()).size,
    );
  } finally {
    await fh.close();
  }
}
