import { join } from 'node:path';
import { EmbeddingCache, embedWithCache } from '../embed/cache.js';
import { PrecomputedEmbedder } from '../embed/precomputed.js';
import type { Embedder } from '../embed/types.js';
import { InputError, ShapeError } from '../errors.js';
import { renderText } from '../io/index.js';
import type { SampleText } from '../io/types.js';
import type { Matrix } from '../matrix.js';
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
  if (o.embeddingCache === false) return null;
  const dir = o.embeddingCache ?? join(resolveCacheDir(o.cacheDir), 'embeddings');
  return EmbeddingCache.open(dir, embedder.id, embedder.dim);
}

export async function embedBatch(
  texts: string[],
  embedder: Embedder,
  cache: EmbeddingCache | null,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const v = cache ? await embedWithCache(embedder, texts, cache, { signal }) : await embedder.embed(texts, { signal });
  if (v.length !== texts.length * embedder.dim) {
    throw new ShapeError(
      'ERR_SHAPE',
      `embedder ${JSON.stringify(embedder.id)} returned ${v.length} values for ${texts.length} texts of dimension ${embedder.dim}`,
    );
  }
  return v;
}

/** Embeds the dataset batch by batch into one n x dim matrix; also returns each record's file line. */
export async function embedDataset(
  input: PipelineInput,
  n: number,
  embedder: Embedder,
  cache: EmbeddingCache | null,
  options: StreamOptions = {},
): Promise<{ matrix: Matrix; lines: Uint32Array }> {
  if (embedder instanceof PrecomputedEmbedder) {
    const skipped = input.skipped.count;
    return embedder.datasetMatrix(input.dataset.path, input.dataset, n, skipped, options);
  }
  const dim = embedder.dim;
  const data = new Float32Array(n * dim);
  const lineOf = new Uint32Array(n);
  let rows = 0;
  for await (const { texts, lines } of input.batches({ signal: options.signal })) {
    if (rows + texts.length > n) {
      rows += texts.length;
      break;
    }
    const v = await embedBatch(texts, embedder, cache, options.signal);
    data.set(v, rows * dim);
    lineOf.set(lines, rows);
    rows += texts.length;
    options.onProgress?.(rows);
  }
  if (rows !== n) {
    throw new InputError(
      { file: input.dataset.path },
      `the file changed while it was being read (${n} records at first, then ${rows > n ? 'more' : rows})`,
    );
  }
  return { matrix: { data, rows: n, cols: dim }, lines: lineOf };
}

/** Embeds reference samples with the dataset's template. */
export async function embedSamples(
  samples: SampleText[],
  template: string | undefined,
  embedder: Embedder,
  cache: EmbeddingCache | null,
  options: StreamOptions = {},
): Promise<Matrix> {
  const dim = embedder.dim;
  const data = new Float32Array(samples.length * dim);
  const render = embedderRender(embedder) ?? ((s: SampleText) => renderText(s, template));
  for (let i = 0; i < samples.length; i += BATCH) {
    const texts = samples.slice(i, i + BATCH).map(render);
    data.set(await embedBatch(texts, embedder, cache, options.signal), i * dim);
    options.onProgress?.(Math.min(samples.length, i + BATCH));
  }
  return { data, rows: samples.length, cols: dim };
}
