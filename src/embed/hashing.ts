import { createHash } from 'node:crypto';
import { cancellable } from '../cancellable.js';
import { AbortError, OptionError } from '../errors.js';
import { native, type ProgressEvent } from '../native.js';
import { count, num, progress } from '../options.js';
import { builtinDim } from './defaults.js';
import type { EmbedCallOptions, Embedder, EmbedderFitOptions } from './types.js';

/** Buckets of the document-frequency table (2^20). */
export const DOC_FREQ_BUCKETS = 1 << 20;

export interface HashingEmbedderOptions {
  /**
   * Vector length. Default: automatic, from the documents fitted on: 2048 up
   * to 65,536 records, 1024 up to 131,072, 512 above, and shorter where the
   * vectors would take over 1/16 of the memory budget (`BUILTIN_DEFAULTS`;
   * the budget is `fit`'s `memoryBudget`; 2048 before any fit).
   */
  dim?: number;
  /** Seed of the projection (which coordinate and sign each feature gets), an integer in [0, 2^32). Default 0. */
  seed?: number;
  /** Share of word features (unigrams, bigrams) against character n-grams in the cosine, in [0, 1]. Default 0.5. */
  wordWeight?: number;
  /**
   * Characters of each text the embedder reads (from its first letter or
   * digit), like a sentence encoder's token limit; 0 reads everything.
   * Default 400. Long texts share so many n-grams with everything that they
   * become hubs in a lexical space; reading the beginning of each text
   * avoids that (measured in BENCHMARKS.md, quality section).
   */
  maxChars?: number;
  /** A fitted document-frequency table to start from (see `docFreq`). */
  docFreq?: { counts: Uint32Array; docCount: number };
}

export interface HashingEmbedOptions extends EmbedCallOptions {
  onProgress?: (event: ProgressEvent) => void;
  progressIntervalMs?: number;
}

/**
 * The built-in embedder: nothing to download, deterministic, fast (native,
 * multithreaded). Lowercased words (Unicode alphanumeric runs) give word
 * unigrams and bigrams; each word padded as `<word>` gives character 3-, 4-
 * and 5-grams. Features are hashed, weighted by sublinear tf times idf (after
 * `fit`, from document frequencies of the dataset; 1 before), the word and
 * character blocks are normalised and mixed by `wordWeight`, and signed
 * feature hashing maps them to `dim` coordinates. Rows have unit length.
 *
 * A text without any word (empty, whitespace or punctuation only) is an
 * `EmptyInputError` whose `index` is its position in the batch.
 */
export class HashingEmbedder implements Embedder {
  /** The `dim` option given, or undefined when the length is automatic. */
  readonly dimOption: number | undefined;
  readonly seed: number;
  readonly wordWeight: number;
  readonly maxChars: number;
  /** Learner defaults measured for this embedder (BENCHMARKS.md, quality): its costs cluster near 1, so a smaller eps; a stronger push. */
  static readonly LEARNER_DEFAULTS = Object.freeze({ eps: 0.02, lambda: 2 } as const);
  readonly learnerDefaults = HashingEmbedder.LEARNER_DEFAULTS;
  #counts?: Uint32Array;
  #docCount = 0;
  #digest = 'none';
  #memoryBudget?: number;

  constructor(options: HashingEmbedderOptions = {}) {
    const dim = count('dim', options.dim);
    if (dim !== undefined && dim > DOC_FREQ_BUCKETS)
      throw new OptionError('ERR_OPTION', `dim must be at most ${DOC_FREQ_BUCKETS}, got ${dim}`);
    const seed = options.seed === 0 || options.seed === undefined ? 0 : count('seed', options.seed)!;
    const wordWeight = num('wordWeight', options.wordWeight) ?? 0.5;
    if (!(wordWeight >= 0 && wordWeight <= 1))
      throw new OptionError('ERR_OPTION', `wordWeight must be in [0, 1], got ${wordWeight}`);
    this.dimOption = dim;
    this.seed = seed;
    this.wordWeight = wordWeight;
    this.maxChars = options.maxChars === 0 ? 0 : (count('maxChars', options.maxChars) ?? 400);
    if (options.docFreq !== undefined) this.#setTable(options.docFreq.counts, options.docFreq.docCount);
  }

  /** Vector length: the `dim` option, else automatic from the fitted documents (`builtinDim`). */
  get dim(): number {
    return this.dimOption ?? builtinDim(this.#docCount, this.#memoryBudget);
  }

  /** `sot-hash-v1:dim=…:seed=…:words=…:idf=<digest of the fitted table, or none>`. */
  get id(): string {
    return `sot-hash-v1:dim=${this.dim}:seed=${this.seed}:words=${this.wordWeight}:chars=${this.maxChars}:idf=${this.#digest}`;
  }

  /** The fitted document-frequency table (a copy), or undefined before `fit`. */
  get docFreq(): { counts: Uint32Array; docCount: number } | undefined {
    return this.#counts === undefined ? undefined : { counts: this.#counts.slice(), docCount: this.#docCount };
  }

  /**
   * Counts document frequencies over all the batches (replacing any earlier
   * fit once every batch is read; an aborted fit changes nothing). The id
   * then names the table.
   */
  async fit(batches: AsyncIterable<string[]>, options: EmbedderFitOptions = {}): Promise<void> {
    const budget = num('memoryBudget', options.memoryBudget);
    if (budget !== undefined && !(budget > 0))
      throw new OptionError('ERR_OPTION', `memoryBudget must be a positive number of bytes, got ${budget}`);
    const counts = new Uint32Array(DOC_FREQ_BUCKETS);
    let docs = 0;
    for await (const texts of batches) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      checkTexts(texts);
      if (texts.length === 0) continue;
      const read = this.#clip(texts);
      const b = await cancellable(options.signal, (token) => native.docFreqBatch(read, token));
      addDocFreq(counts, b);
      docs += b.docs;
    }
    this.#setTable(counts, docs);
    this.#memoryBudget = budget;
  }

  /** Row-major `texts.length x dim` unit vectors. */
  async embed(texts: string[], options: HashingEmbedOptions = {}): Promise<Float32Array> {
    checkTexts(texts);
    const interval = progress(options.onProgress, options.progressIntervalMs);
    const fitted = this.#counts !== undefined && this.#docCount > 0;
    const opts = {
      dim: this.dim,
      seed: this.seed,
      wordWeight: this.wordWeight,
      docFreq: fitted ? this.#counts : undefined,
      docCount: fitted ? this.#docCount : undefined,
      progressIntervalMs: interval,
    };
    const read = this.#clip(texts);
    return cancellable(
      options.signal,
      (token, onProgress) => native.embedTexts(read, opts, token, onProgress),
      options.onProgress,
    );
  }

  /** The part of each text that is read: `maxChars` code points from the first letter or digit. */
  #clip(texts: string[]): string[] {
    const max = this.maxChars;
    if (max === 0) return texts;
    return texts.map((t) => {
      if (t.length <= max) return t;
      const start = t.search(WORD_CHAR);
      const from = Math.max(start, 0);
      let end = from;
      // Count code points, never splitting a surrogate pair.
      for (let n = 0; n < max && end < t.length; n++) end += (t.codePointAt(end) ?? 0) > 0xffff ? 2 : 1;
      return from === 0 && end >= t.length ? t : t.slice(from, end);
    });
  }

  #setTable(counts: Uint32Array, docCount: number): void {
    if (!(counts instanceof Uint32Array) || counts.length !== DOC_FREQ_BUCKETS) {
      throw new OptionError('ERR_OPTION', `docFreq.counts must be a Uint32Array of ${DOC_FREQ_BUCKETS} entries`);
    }
    if (!Number.isSafeInteger(docCount) || docCount < 0) {
      throw new OptionError('ERR_OPTION', `docFreq.docCount must be a non-negative integer, got ${String(docCount)}`);
    }
    this.#counts = counts;
    this.#docCount = docCount;
    // no documents: every idf is 1, the same vectors as an unfitted embedder
    this.#digest = docCount === 0 ? 'none' : tableDigest(counts, docCount);
  }
}

/**
 * Adds a sparse document-frequency table (`counts[k]` documents have bucket
 * `buckets[k]`) into a dense one of `DOC_FREQ_BUCKETS` entries, saturating at
 * 2^32 - 1. Saturating sums of counts are associative: tables counted over
 * parts of a dataset (batches, shards) add up to the whole dataset's, bit for
 * bit, in any grouping.
 */
export function addDocFreq(into: Uint32Array, part: { buckets: Uint32Array; counts: Uint32Array }): void {
  const { buckets, counts } = part;
  for (let k = 0; k < buckets.length; k++) {
    const i = buckets[k]!;
    into[i] = Math.min(into[i]! + counts[k]!, 0xffff_ffff);
  }
}

/** The non-zero entries of a dense document-frequency table, by ascending bucket. */
export function sparseDocFreq(counts: Uint32Array): { buckets: Uint32Array; counts: Uint32Array } {
  let nonzero = 0;
  for (const c of counts) if (c) nonzero++;
  const buckets = new Uint32Array(nonzero);
  const values = new Uint32Array(nonzero);
  let at = 0;
  counts.forEach((c, i) => {
    if (c) (buckets[at] = i), (values[at++] = c);
  });
  return { buckets, counts: values };
}

/** First 16 hex digits of SHA-256 over the counts (little-endian u32) and the document count. */
function tableDigest(counts: Uint32Array, docCount: number): string {
  const h = createHash('sha256');
  const le = new Uint8Array(counts.buffer, counts.byteOffset, counts.byteLength);
  if (new Uint8Array(new Uint32Array([1]).buffer)[0] === 1) {
    h.update(le);
  } else {
    const copy = new DataView(new ArrayBuffer(counts.byteLength));
    counts.forEach((v, i) => copy.setUint32(4 * i, v, true));
    h.update(new Uint8Array(copy.buffer));
  }
  h.update(`:${docCount}`);
  return h.digest('hex').slice(0, 16);
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

function checkTexts(texts: unknown): asserts texts is string[] {
  if (!Array.isArray(texts)) throw new OptionError('ERR_OPTION', 'texts must be an array of strings');
  const bad = texts.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new OptionError('ERR_OPTION', `texts[${bad}] is not a string`, { index: bad });
}
