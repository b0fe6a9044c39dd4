// On-disk embedding cache, keyed by embedder id + sha256 of the text.
//
// Layout: <root>/<sha256(embedderId)[0..32]>/meta.json (full id, dim) and
// immutable, content-addressed chunk files, one per `put` (cache-chunk.ts).
// A chunk is written atomically (io/atomic.ts: a temp file renamed into
// place), so concurrent writers never clash and a process killed at any point
// leaves either a whole chunk or a temp file that a later run removes. Readers index chunk headers and hashes
// lazily, and verify a chunk's checksum before returning any of its vectors.
// No fsync: after a power cut a recent chunk may be missing or damaged, and
// validation then ignores it (its texts are embedded again).
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AbortError, IoError, OptionError, ShapeError } from '../errors.js';
import { isTempName, removeStaleTemps, writeFileAtomic } from '../io/atomic.js';
import type { Embedder } from './types.js';
import { embedCall } from './call.js';
import {
  CHUNK_SUFFIX,
  encodeChunk,
  HEADER_BYTES,
  parseHeader,
  readVector,
  vectorsOf,
  verifyChunk,
  type ChunkHeader,
} from './cache-chunk.js';
import { HASH_BYTES, HashIndex } from './cache-index.js';
import { ensureDir, openRegularFile, readRegularFile } from '../io/files.js';

const META = 'meta.json';
/** Rows per chunk file at most (a larger `put` is split). */
const MAX_CHUNK_ROWS = 4096;
/** Misses trigger a directory rescan (other writers' chunks) at most this often. */
const RESCAN_MS = 1000;
const PARALLEL_READS = 4;

export interface EmbeddingCacheOptions {
  /** Bytes of verified chunk files kept in memory for repeated reads (default 64 MiB). */
  memoryBytes?: number;
}

export interface CacheLookup {
  /** Row-major `n x dim`; rows listed in `missing` are zero. */
  vectors: Float32Array;
  /** Indices (ascending) of the hashes not in the cache. */
  missing: number[];
}

interface Chunk {
  name: string;
  header: ChunkHeader;
  /** Failed verification or vanished: its entries count as misses. */
  dead: boolean;
}

// One-shot crypto.hash (Node >= 20.12) is about a third faster than createHash per short text.
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;

/** sha256 of a text's UTF-8 bytes: the cache key of a text. */
export function hashText(text: string): Buffer {
  return oneShot !== undefined ? oneShot('sha256', text, 'buffer') : createHash('sha256').update(text, 'utf8').digest();
}

/** The texts' hashes packed back to back (`n x 32` bytes). */
export function hashTexts(texts: readonly string[]): Buffer {
  const out = Buffer.alloc(texts.length * HASH_BYTES);
  texts.forEach((t, i) => hashText(t).copy(out, i * HASH_BYTES));
  return out;
}

function packHashes(hashes: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (hashes instanceof Uint8Array) {
    if (hashes.length % HASH_BYTES !== 0)
      throw new OptionError(
        'ERR_OPTION',
        `packed hashes must be a multiple of ${HASH_BYTES} bytes, got ${hashes.length}`,
      );
    return hashes;
  }
  const out = new Uint8Array(hashes.length * HASH_BYTES);
  hashes.forEach((h, i) => {
    if (h.length !== HASH_BYTES)
      throw new OptionError('ERR_OPTION', `hash ${i} has ${h.length} bytes, expected ${HASH_BYTES}`);
    out.set(h, i * HASH_BYTES);
  });
  return out;
}

function warn(message: string): void {
  process.emitWarning(message, { type: 'SotCacheWarning' });
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class EmbeddingCache {
  private readonly index = new HashIndex();
  private readonly chunks: Chunk[] = [];
  /** Chunk file names already looked at (valid or not). */
  private readonly seen = new Set<string>();
  private scannedAt = -Infinity;
  private scanning: Promise<void> | undefined;
  private cleanedTemps = false;
  /** A dimension mismatch found while scanning: it fails every later call too. */
  private fatal: Error | undefined;
  private readonly recent = new Map<number, Buffer>();
  private recentBytes = 0;
  private readonly memoryBytes: number;

  private constructor(
    /** The embedder's own folder. */
    readonly dir: string,
    readonly embedderId: string,
    readonly dim: number,
    options: EmbeddingCacheOptions,
  ) {
    this.memoryBytes = options.memoryBytes ?? 64 * 1024 * 1024;
  }

  /** Opens (creating it if needed) the cache of one embedder under `root`. */
  static async open(
    root: string,
    embedderId: string,
    dim: number,
    options: EmbeddingCacheOptions = {},
  ): Promise<EmbeddingCache> {
    if (!Number.isInteger(dim) || dim <= 0)
      throw new OptionError('ERR_OPTION', `embedding dimension must be a positive integer, got ${dim}`);
    const dir = join(root, createHash('sha256').update(embedderId, 'utf8').digest('hex').slice(0, 32));
    await ensureDir(dir).catch((err: unknown) => {
      throw new IoError(`embedding cache: ${(err as Error).message}`, { path: dir, cause: err });
    });
    await EmbeddingCache.claimMeta(dir, embedderId, dim);
    return new EmbeddingCache(dir, embedderId, dim, options);
  }

  /** Writes meta.json once (link fails if another process won the race), then checks it agrees. */
  private static async claimMeta(dir: string, embedderId: string, dim: number): Promise<void> {
    const path = join(dir, META);
    const mine = { format: 'sot-embedding-cache', version: 1, embedderId, dim };
    let text: string | undefined;
    try {
      text = (await readRegularFile(path)).toString('utf8');
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT')
        throw new IoError(`cannot read ${path}: ${(err as Error).message}`, { path, cause: err });
      try {
        // replace: false links the file into place, so a concurrent opener's meta.json wins if it came first.
        await writeFileAtomic(path, `${JSON.stringify(mine)}\n`, { durable: false, replace: false });
        text = (await readRegularFile(path)).toString('utf8');
      } catch (e) {
        throw e instanceof IoError
          ? e
          : new IoError(`cannot write ${path}: ${(e as Error).message}`, { path, cause: e });
      }
    }
    let meta: { embedderId?: unknown; dim?: unknown };
    try {
      meta = JSON.parse(text) as typeof meta;
    } catch (err) {
      throw new IoError(
        `${path} is damaged (${(err as Error).message}); delete ${dir} to rebuild this embedder's cache`,
        { path, cause: err },
      );
    }
    if (meta.embedderId !== embedderId) {
      throw new IoError(
        `${path} belongs to embedder ${JSON.stringify(meta.embedderId)}, not ${JSON.stringify(embedderId)}`,
        { path },
      );
    }
    if (meta.dim !== dim) {
      throw new ShapeError(
        'ERR_SHAPE',
        `embedding dimension mismatch: the cache ${dir} of embedder ${JSON.stringify(embedderId)} holds ${String(meta.dim)}-dimensional vectors, the embedder gives ${dim}; an embedder whose dimension changes must change its id (or delete ${dir})`,
      );
    }
  }

  /** Texts indexed so far (the cache is indexed lazily, on the first `get`). */
  get size(): number {
    return this.index.size;
  }

  /** Bytes the in-memory index holds (about 48 per cached text). */
  get indexBytes(): number {
    return this.index.byteLength;
  }

  /** Looks the hashes up; vectors come only from chunks whose checksum verifies. */
  async get(hashes: Uint8Array | readonly Uint8Array[]): Promise<CacheLookup> {
    const packed = packHashes(hashes);
    const n = packed.length / HASH_BYTES;
    const vectors = new Float32Array(n * this.dim);
    if (this.fatal !== undefined) throw this.fatal;
    if (this.scannedAt === -Infinity) await this.scan();
    let found = this.locate(packed, n);
    // Misses may sit in chunks other processes wrote since the last scan.
    if (found.missing.length > 0 && Date.now() - this.scannedAt > RESCAN_MS) {
      await this.scan();
      found = this.locate(packed, n);
    }
    const { missing, byChunk } = found;
    const work = [...byChunk];
    let next = 0;
    // A few reads in flight: one at a time leaves the disk (and the thread pool) idle between files.
    const reader = async () => {
      while (next < work.length) {
        const [c, pairs] = work[next++]!;
        const bytes = await this.chunkBytes(c);
        const chunk = this.chunks[c]!;
        const floats = bytes === undefined ? undefined : vectorsOf(bytes, chunk.header);
        for (let k = 0; k < pairs.length; k += 2) {
          const i = pairs[k]!;
          if (bytes === undefined) missing.push(i);
          else readVector(bytes, floats, chunk.header, pairs[k + 1]!, vectors, i * this.dim);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_READS, work.length) }, reader));
    missing.sort((a, b) => a - b);
    return { vectors, missing };
  }

  /** Splits rows into misses and, per chunk, (row in request, row in chunk) pairs. */
  private locate(packed: Uint8Array, n: number): { missing: number[]; byChunk: Map<number, number[]> } {
    const missing: number[] = [];
    const byChunk = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const e = this.index.find(packed, i * HASH_BYTES);
      const c = e < 0 ? -1 : this.index.chunk(e);
      if (c < 0 || this.chunks[c]!.dead) {
        missing.push(i);
        continue;
      }
      const pairs = byChunk.get(c);
      if (pairs === undefined) byChunk.set(c, [i, this.index.row(e)]);
      else pairs.push(i, this.index.row(e));
    }
    return { missing, byChunk };
  }

  /** Stores row-major `n x dim` vectors for the hashes, as one or more new chunk files. */
  async put(hashes: Uint8Array | readonly Uint8Array[], vectors: Float32Array): Promise<void> {
    if (this.fatal !== undefined) throw this.fatal;
    const packed = packHashes(hashes);
    const n = packed.length / HASH_BYTES;
    if (vectors.length !== n * this.dim) {
      throw new ShapeError(
        'ERR_SHAPE',
        `put: ${n} hashes need ${n * this.dim} values (dim ${this.dim}), got ${vectors.length}`,
      );
    }
    for (let start = 0; start < n; start += MAX_CHUNK_ROWS) {
      const end = Math.min(n, start + MAX_CHUNK_ROWS);
      await this.writeChunk(
        packed.subarray(start * HASH_BYTES, end * HASH_BYTES),
        vectors.subarray(start * this.dim, end * this.dim),
      );
    }
  }

  private async writeChunk(hashes: Uint8Array, vectors: Float32Array): Promise<void> {
    const { bytes, name } = encodeChunk(hashes, vectors, this.dim);
    const path = join(this.dir, name);
    try {
      // Same content, same name: a concurrent identical write replaces it with equal bytes.
      await writeFileAtomic(path, bytes, { durable: false });
    } catch (err) {
      const cause = (err as Error).cause;
      throw new IoError(
        `cannot write the embedding cache chunk ${path}: ${cause instanceof Error ? cause.message : (err as Error).message}`,
        { path, cause: err },
      );
    }
    if (this.seen.has(name)) return;
    this.seen.add(name);
    const c = this.register(name, { dim: this.dim, count: hashes.length / HASH_BYTES }, hashes);
    this.remember(c, bytes);
  }

  private register(name: string, header: ChunkHeader, hashes: Uint8Array): number {
    const c = this.chunks.length;
    this.chunks.push({ name, header, dead: false });
    for (let r = 0; r < header.count; r++) {
      const e = this.index.insert(hashes, r * HASH_BYTES, c, r);
      if (this.chunks[this.index.chunk(e)]!.dead) this.index.move(e, c, r);
    }
    return c;
  }

  /** Indexes chunk files not seen yet; reads headers and hashes only. */
  private scan(): Promise<void> {
    this.scanning ??= this.scanOnce().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw new IoError(`cannot list the embedding cache ${this.dir}: ${(err as Error).message}`, {
        path: this.dir,
        cause: err,
      });
    }
    this.scannedAt = Date.now();
    if (!this.cleanedTemps) await removeStaleTemps(this.dir);
    for (const name of names.sort()) {
      if (isTempName(name)) continue;
      if (!name.endsWith(CHUNK_SUFFIX) || this.seen.has(name)) continue;
      this.seen.add(name);
      await this.indexChunk(name);
    }
    this.cleanedTemps = true;
  }

  private async indexChunk(name: string): Promise<void> {
    const path = join(this.dir, name);
    let fh;
    try {
      fh = await openRegularFile(path);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return; // removed meanwhile (a cache clean)
      if (err instanceof IoError) return warn(`ignoring embedding cache chunk ${path}: ${err.message}`); // a FIFO or a folder
      throw new IoError(`cannot open ${path}: ${(err as Error).message}`, { path, cause: err });
    }
    try {
      const { size } = await fh.stat();
      const head = Buffer.alloc(HEADER_BYTES);
      await fh.read(head, 0, HEADER_BYTES, 0);
      const header = parseHeader(head, size);
      if (typeof header === 'string') {
        warn(`ignoring embedding cache chunk ${path}: ${header}`);
        return;
      }
      if (header.dim !== this.dim) {
        throw (this.fatal = new ShapeError(
          'ERR_SHAPE',
          `embedding dimension mismatch: the cache chunk ${path} holds ${header.dim}-dimensional vectors, the embedder ${JSON.stringify(this.embedderId)} gives ${this.dim}; delete ${this.dir} to rebuild`,
        ));
      }
      const hashes = Buffer.alloc(header.count * HASH_BYTES);
      await fh.read(hashes, 0, hashes.length, HEADER_BYTES);
      this.register(name, header, hashes);
    } finally {
      await fh.close();
    }
  }

  /** A chunk's whole, verified bytes; undefined (and the chunk marked dead) when it fails. */
  private async chunkBytes(c: number): Promise<Buffer | undefined> {
    const hit = this.recent.get(c);
    if (hit !== undefined) {
      this.recent.delete(c); // re-insert: most recently used last
      this.recent.set(c, hit);
      return hit;
    }
    const chunk = this.chunks[c]!;
    const path = join(this.dir, chunk.name);
    let bytes: Buffer | undefined;
    let reason = '';
    try {
      bytes = await readRegularFile(path);
      const header = parseHeader(bytes.subarray(0, HEADER_BYTES), bytes.length);
      if (typeof header === 'string') reason = header;
      else if (header.count !== chunk.header.count || header.dim !== chunk.header.dim)
        reason = 'header changed since it was indexed';
      else if (
        !verifyChunk(bytes) ||
        bytes.subarray(bytes.length - HASH_BYTES).toString('hex') + CHUNK_SUFFIX !== chunk.name
      )
        reason = 'checksum mismatch';
    } catch (err) {
      reason = (err as Error).message;
    }
    if (bytes === undefined || reason !== '') {
      chunk.dead = true;
      warn(`ignoring embedding cache chunk ${path}: ${reason}`);
      return undefined;
    }
    this.remember(c, bytes);
    return bytes;
  }

  private remember(c: number, bytes: Buffer): void {
    if (bytes.length > this.memoryBytes) return;
    this.recent.set(c, bytes);
    this.recentBytes += bytes.length;
    for (const [old, b] of this.recent) {
      if (this.recentBytes <= this.memoryBytes) break;
      this.recent.delete(old);
      this.recentBytes -= b.length;
    }
  }
}

export interface EmbedWithCacheOptions {
  signal?: AbortSignal;
  /** Texts per `embedder.embed` call for the misses (default the embedder's `preferredBatch`, else 256). */
  batchSize?: number;
}

/**
 * Embeds `texts` (row-major `n x dim`), asking the embedder only for texts the
 * cache lacks (each distinct text once) and caching what it returns. Call
 * `fit` first: the cache is keyed by the embedder's id after fitting. A cache
 * that cannot be read or written is a warning (the run goes on uncached); a
 * dimension mismatch is a ShapeError.
 */
export async function embedWithCache(
  embedder: Embedder,
  texts: readonly string[],
  cache: EmbeddingCache,
  options: EmbedWithCacheOptions = {},
): Promise<Float32Array> {
  if (embedder.id !== cache.embedderId || embedder.dim !== cache.dim) {
    throw new OptionError(
      'ERR_OPTION',
      `the cache was opened for embedder ${JSON.stringify(cache.embedderId)} (dim ${cache.dim}), not ${JSON.stringify(embedder.id)} (dim ${embedder.dim})`,
    );
  }
  const { signal } = options;
  const batchSize = options.batchSize ?? embedder.preferredBatch ?? 256;
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new OptionError('ERR_OPTION', `batchSize must be a positive integer, got ${batchSize}`);
  const dim = cache.dim;
  const hashes = hashTexts(texts);
  let lookup: CacheLookup;
  try {
    lookup = await cache.get(hashes);
  } catch (err) {
    if (!(err instanceof IoError)) throw err; // a dimension mismatch (ShapeError) is never papered over
    warn(`${err.message}; embedding without the cache`);
    lookup = {
      vectors: new Float32Array(texts.length * dim),
      missing: Array.from({ length: texts.length }, (_, i) => i),
    };
  }
  const { vectors, missing } = lookup;

  // Distinct missing texts, each with every row it fills.
  const rowsOf = new Map<string, number[]>();
  for (const i of missing) {
    const key = hashes.toString('latin1', i * HASH_BYTES, (i + 1) * HASH_BYTES);
    const rows = rowsOf.get(key);
    if (rows === undefined) rowsOf.set(key, [i]);
    else rows.push(i);
  }
  const todo = [...rowsOf.values()];

  // New vectors go to the cache in chunks of up to MAX_CHUNK_ROWS texts: few
  // files, and a run killed midway loses at most one chunk's worth of work.
  let stored = 0;
  let cacheWritable = true;
  const flush = async (upTo: number) => {
    if (!cacheWritable || upTo <= stored) return;
    const part = todo.slice(stored, upTo);
    stored = upTo;
    const h = new Uint8Array(part.length * HASH_BYTES);
    const v = new Float32Array(part.length * dim);
    part.forEach((rows, b) => {
      const i = rows[0]!;
      h.set(hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES), b * HASH_BYTES);
      v.set(vectors.subarray(i * dim, (i + 1) * dim), b * dim);
    });
    try {
      await cache.put(h, v);
    } catch (err) {
      if (!(err instanceof IoError)) throw err;
      // The vectors are in hand: a cache that cannot be written slows later runs, it does not fail this one.
      cacheWritable = false;
      warn(`${err.message}; continuing without writing the embedding cache`);
    }
  };

  let embedded = 0; // texts of todo whose vectors are in hand
  try {
    for (let start = 0; start < todo.length; start += batchSize) {
      if (signal?.aborted) throw new AbortError();
      const batch = todo.slice(start, start + batchSize);
      const got = await embedCall(
        embedder,
        batch.map((rows) => texts[rows[0]!]!),
        signal,
      );
      batch.forEach((rows, b) => {
        for (const i of rows) vectors.set(got.subarray(b * dim, (b + 1) * dim), i * dim);
      });
      embedded = start + batch.length;
      if (embedded - stored >= MAX_CHUNK_ROWS || embedded === todo.length) await flush(embedded);
    }
  } catch (err) {
    // An embedder that fails midway (a server that gave up, an abort): keep the
    // batches already paid for, so that a rerun asks only for the rest.
    await flush(embedded).catch(() => undefined);
    throw err;
  }
  return vectors;
}
