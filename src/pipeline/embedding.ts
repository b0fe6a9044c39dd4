import { join } from 'node:path';
import { EmbeddingCache, embedWithCache } from '../embed/cache.js';
import { checkEmbedder, embedCall } from '../embed/call.js';
import { PrecomputedEmbedder } from '../embed/precomputed.js';
import type { Embedder } from '../embed/types.js';
import { InputError } from '../errors.js';
import { renderText } from '../io/index.js';
import type { SampleText } from '../io/types.js';
import { type AnyMatrix, arrayMatrix, type Matrix, type StoredMatrix, storedMatrix, writeRows } from '../matrix.js';
import { resolveCacheDir } from '../refsets/index.js';
import { BATCH, embedderRender, type PipelineInput, type StreamOptions } from './input.js';
import type { PurifyOptions } from './options.js';

/**
 * The embedding cache for this (fitted) embedder, or null when disabled.
 * Precomputed vectors are read here instead (their reference files; the
 * dataset's in `embedDataset`) and never cached.
 */
export async function openEmbeddingCache(
  o: Pick<PurifyOptions, 'embeddingCache' | 'cacheDir'> &
    Partial<Pick<PurifyOptions, 'input' | 'template' | 'skipInvalid' | 'harmful' | 'anchor' | 'signal'>>,
  embedder: Embedder,
): Promise<EmbeddingCache | null> {
  if (embedder instanceof PrecomputedEmbedder) {
    await embedder.bind(o, o.signal);
    return null;
  }
  checkEmbedder(embedder);
  if (o.embeddingCache === false) return null;
  const dir = o.embeddingCache ?? join(resolveCacheDir(o.cacheDir), 'embeddings');
  return EmbeddingCache.open(dir, embedder.id, embedder.dim);
}

/** Most bytes of vectors one embedder call returns: the arrays it returns are garbage once copied. */
const CALL_BYTES = 8 * 1024 ** 2;

/**
 * Embeds `texts` through the cache into rows `row` on of `into`, in calls of
 * the embedder's preferred batch (and at most `CALL_BYTES` of vectors), and
 * reports the texts done after each call: a slow embedder (an LLM) shows
 * progress long before a pipeline batch of texts is done.
 */
export async function embedInto(
  texts: string[],
  embedder: Embedder,
  cache: EmbeddingCache | null,
  into: AnyMatrix,
  row: number,
  signal?: AbortSignal,
  onProgress?: (done: number) => void,
): Promise<void> {
  const dim = embedder.dim;
  const rows = Math.max(1, Math.floor(CALL_BYTES / (4 * dim)));
  const step = Math.max(1, Math.min(texts.length, embedder.preferredBatch ?? texts.length, rows));
  for (let i = 0; i < texts.length; i += step) {
    const part = texts.slice(i, i + step);
    const v = cache ? await embedWithCache(embedder, part, cache, { signal }) : await embedCall(embedder, part, signal);
    writeRows(into, row + i, v);
    onProgress?.(i + part.length);
  }
}

/** `embedInto` a new array of `texts.length` rows. */
export async function embedBatch(
  texts: string[],
  embedder: Embedder,
  cache: EmbeddingCache | null,
  signal?: AbortSignal,
  onProgress?: (done: number) => void,
): Promise<Float32Array> {
  const out = arrayMatrix(texts.length, embedder.dim);
  await embedInto(texts, embedder, cache, out, 0, signal, onProgress);
  return out.data;
}

export interface DatasetOptions extends StreamOptions {
  /** Sees the dimension before the matrix is allocated (a memory check); throws to refuse. */
  fits?: (dim: number) => void;
}

/**
 * Embeds the dataset batch by batch into one n x dim matrix, held in native
 * memory (shared with the learner, not copied) unless `stored` is false;
 * also returns each record's file line.
 */
export async function embedDataset(
  input: PipelineInput,
  n: number,
  embedder: Embedder,
  cache: EmbeddingCache | null,
  options: DatasetOptions & { stored: false },
): Promise<{ matrix: Matrix; lines: Uint32Array }>;
export async function embedDataset(
  input: PipelineInput,
  n: number,
  embedder: Embedder,
  cache: EmbeddingCache | null,
  options?: DatasetOptions,
): Promise<{ matrix: AnyMatrix; lines: Uint32Array }>;
export async function embedDataset(
  input: PipelineInput,
  n: number,
  embedder: Embedder,
  cache: EmbeddingCache | null,
  options: DatasetOptions & { stored?: boolean } = {},
): Promise<{ matrix: AnyMatrix; lines: Uint32Array }> {
  const alloc: (rows: number, cols: number) => AnyMatrix = options.stored === false ? arrayMatrix : storedMatrix;
  if (embedder instanceof PrecomputedEmbedder) {
    const skipped = input.skipped.count;
    return embedder.datasetMatrix(input.dataset.path, input.dataset, n, skipped, alloc, options);
  }
  const dim = embedder.dim;
  options.fits?.(dim);
  const matrix = alloc(n, dim);
  const lineOf = new Uint32Array(n);
  let rows = 0;
  for await (const { texts, lines } of input.batches({ signal: options.signal })) {
    if (rows + texts.length > n) {
      rows += texts.length;
      break;
    }
    const before = rows;
    await embedInto(texts, embedder, cache, matrix, rows, options.signal, (done) =>
      options.onProgress?.(before + done),
    );
    lineOf.set(lines, rows);
    rows += texts.length;
  }
  if (rows !== n) {
    throw new InputError(
      { file: input.dataset.path },
      `the file changed while it was being read (${n} records at first, then ${rows > n ? 'more' : rows})`,
    );
  }
  return { matrix, lines: lineOf };
}

/**
 * Embeds reference samples with the dataset's template, into native rows
 * the core reads without a copy.
 */
export async function embedSamples(
  samples: SampleText[],
  template: string | undefined,
  embedder: Embedder,
  cache: EmbeddingCache | null,
  options: StreamOptions = {},
): Promise<StoredMatrix> {
  const out = storedMatrix(samples.length, embedder.dim);
  const render = embedderRender(embedder) ?? ((s: SampleText) => renderText(s, template));
  for (let i = 0; i < samples.length; i += BATCH) {
    const texts = samples.slice(i, i + BATCH).map(render);
    await embedInto(texts, embedder, cache, out, i, options.signal, (done) => options.onProgress?.(i + done));
  }
  return out;
}
