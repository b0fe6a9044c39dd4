import { embedderOption, settledProgress } from '../options.js';
import { HashingEmbedder } from '../embed/hashing.js';
import type { Embedder } from '../embed/types.js';
import { PrecomputedEmbedder } from '../embed/precomputed.js';
import { IoError, OptionError } from '../errors.js';
import { assertNoCollision, type RolePath } from '../io/index.js';
import { writeNpy } from '../npy.js';
import { embedDataset, openEmbeddingCache } from './embedding.js';
import { PipelineInput } from './input.js';
import { checkEmbeddingsFit, resolveBudget } from './memory.js';
import type { DatasetSource, PurifyOptions, StageProgress } from './options.js';

export interface EmbedFileOptions
  extends DatasetSource,
    Pick<PurifyOptions, 'template' | 'embedder' | 'embeddingCache' | 'cacheDir' | 'memoryBudget' | 'signal'> {
  /** The `.npy` file to write (float32, rows x dim), atomically; a pipe or device (`/dev/stdout`) is streamed to. */
  output: string;
  onProgress?: (event: StageProgress) => void;
}

/**
 * `sot embed`: the dataset's vectors as a `.npy` matrix, one row per record
 * in file order, through the embedding cache (which a later `purify` reuses).
 */
export async function embedFile(
  options: EmbedFileOptions,
): Promise<{ output: string; rows: number; dim: number; embedder: string }> {
  const o = { ...options, onProgress: settledProgress(options?.onProgress) };
  if (typeof o.output !== 'string' || o.output === '')
    throw new OptionError('ERR_OPTION', 'output must be a file path');
  const embedder: Embedder = embedderOption(o.embedder) ?? new HashingEmbedder();
  const reads: RolePath[] = [{ path: o.input, what: 'the input file' }];
  if (embedder instanceof PrecomputedEmbedder && embedder.npy !== undefined)
    reads.push({ path: embedder.npy, what: 'the vectors file (--vectors-npy)' });
  // Before any work: the output must not replace a file this command reads.
  const [out] = await assertNoCollision([{ path: o.output, what: 'the output' }], reads);
  if (out!.kind === 'folder') throw new IoError(`cannot write ${o.output}: it is a folder`, { path: o.output });
  // As purify's: the same budget gives the built-in embedder the same length, so purify reuses these vectors.
  const budget = resolveBudget(o.memoryBudget);
  const input = await PipelineInput.open(o);
  const n = await input.count(embedder, {
    signal: o.signal,
    memoryBudget: budget,
    onProgress: (done) => o.onProgress?.({ stage: 'read', done }),
  });
  if (n === 0) throw new OptionError('ERR_OPTION', `${o.input}: no records to embed`);
  const cache = await openEmbeddingCache(o, embedder);
  const { matrix } = await embedDataset(input, n, embedder, cache, {
    stored: false,
    fits: (dim) => checkEmbeddingsFit(budget, n, dim, o.input),
    signal: o.signal,
    onProgress: (done) => o.onProgress?.({ stage: 'embed', done, total: n }),
  });
  await writeNpy(o.output, matrix.data, matrix.rows, matrix.cols, { nonRegular: 'stream' });
  return { output: o.output, rows: n, dim: matrix.cols, embedder: embedder.id };
}
