// One entry point for every embedder the CLI offers.
import { join } from 'node:path';
import { OptionError } from '../errors.js';
import { resolveCacheDir } from '../refsets/index.js';
import { HashingEmbedder } from './hashing.js';
import { OpenAIEmbedder } from './openai.js';
import { PrecomputedEmbedder } from './precomputed.js';
import type { Embedder } from './types.js';

export const EMBEDDERS = ['builtin', 'wink', 'transformers', 'openai', 'precomputed', 'llm'] as const;
export type EmbedderKind = (typeof EMBEDDERS)[number];

export interface EmbedderConfig {
  /** Which embedder; default `precomputed` when a vectors source is given, else `builtin`. */
  kind?: EmbedderKind;
  /** builtin: vector length (default 512). */
  dim?: number;
  /** transformers: model folder or name; openai: model name; llm: a .gguf file. */
  model?: string;
  /** transformers: folder of local models. */
  modelDir?: string;
  /** transformers: allow downloads from the hub. */
  allowRemoteModels?: boolean;
  /** transformers: weights variant (fp32, q8, fp16, ...). */
  dtype?: string;
  /** transformers: tokens per text at most. */
  maxLength?: number;
  /** openai: base URL (…/v1). */
  url?: string;
  /** openai: API key (better: env OPENAI_API_KEY / SOT_EMBEDDINGS_KEY). */
  apiKey?: string;
  /** openai: `dimensions` request parameter. */
  dimensions?: number;
  /** openai, transformers: texts per request / forward pass. */
  batchSize?: number;
  /** openai: requests in flight; transformers: passes queued per worker; llm: records evaluated at once. */
  concurrency?: number;
  /** transformers: worker processes, each with its own ONNX Runtime session. */
  workers?: number;
  /** transformers: ONNX Runtime intra-op threads per worker; llm: CPU threads per evaluation (default the cores less one). */
  threads?: number;
  /** transformers: padded tokens per forward pass. */
  maxBatchTokens?: number;
  /** transformers: let idle ONNX Runtime threads spin-wait. */
  spinning?: boolean;
  /** transformers: ONNX Runtime graph optimisation level. */
  graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** llm: tokens per record at most, chat template included (default 2048). */
  contextSize?: number;
  /** llm: a Jinja chat template instead of the model's own. */
  chatTemplate?: string;
  /** llm: offload to a GPU when one is found (default false). */
  gpu?: boolean;
  /** openai: per-request timeout (ms). */
  timeoutMs?: number;
  /** openai: retries per request. */
  maxRetries?: number;
  /** precomputed: field holding each record's vector. */
  vectorsField?: string;
  /** precomputed: the dataset's vectors as a .npy matrix. */
  vectorsNpy?: string;
  /** SOT cache dir (word-vector binary cache, transformers downloads). */
  cacheDir?: string;
  signal?: AbortSignal;
}

const ONLY: Array<[keyof EmbedderConfig, string, EmbedderKind[]]> = [
  ['dim', '--dim', ['builtin']],
  ['model', '--model', ['transformers', 'openai', 'llm']],
  ['modelDir', '--model-dir', ['transformers']],
  ['allowRemoteModels', '--allow-remote-models', ['transformers']],
  ['dtype', '--dtype', ['transformers']],
  ['maxLength', '--max-length', ['transformers']],
  ['url', '--embed-url', ['openai']],
  ['apiKey', '--embed-key', ['openai']],
  ['dimensions', '--embed-dimensions', ['openai']],
  ['batchSize', '--embed-batch', ['openai', 'transformers']],
  ['concurrency', '--embed-concurrency', ['openai', 'transformers', 'llm']],
  ['workers', '--embed-workers', ['transformers']],
  ['threads', '--embed-threads', ['transformers', 'llm']],
  ['maxBatchTokens', '--embed-max-tokens', ['transformers']],
  ['spinning', 'spinning', ['transformers']],
  ['graphOptimization', 'graphOptimization', ['transformers']],
  ['contextSize', '--context-size', ['llm']],
  ['chatTemplate', 'chatTemplate', ['llm']],
  ['gpu', 'gpu', ['llm']],
  ['timeoutMs', '--embed-timeout', ['openai']],
  ['maxRetries', '--embed-retries', ['openai']],
  ['vectorsField', '--vectors-field', ['precomputed']],
  ['vectorsNpy', '--vectors-npy', ['precomputed']],
];

/**
 * Builds (and, for models and servers, loads or probes) the embedder a
 * configuration names. An option of another embedder is an `OptionError`
 * rather than silently ignored.
 */
export async function createEmbedder(c: EmbedderConfig = {}): Promise<Embedder> {
  const kind: EmbedderKind =
    c.kind ?? (c.vectorsField !== undefined || c.vectorsNpy !== undefined ? 'precomputed' : 'builtin');
  if (!EMBEDDERS.includes(kind))
    throw new OptionError('ERR_OPTION', `unknown embedder ${JSON.stringify(kind)} (one of ${EMBEDDERS.join(', ')})`);
  for (const [key, flag, kinds] of ONLY) {
    if (c[key] !== undefined && c[key] !== false && !kinds.includes(kind)) {
      throw new OptionError('ERR_OPTION', `${flag} applies to --embedder ${kinds.join(' or ')}, not ${kind}`);
    }
  }
  switch (kind) {
    case 'builtin':
      return new HashingEmbedder({ dim: c.dim });
    case 'wink': {
      const { WinkEmbedder } = await import('./wink.js');
      const e = new WinkEmbedder({ cacheDir: join(resolveCacheDir(c.cacheDir), 'word-vectors') });
      await e.load(); // fail early when the package is missing
      return e;
    }
    case 'transformers': {
      const { TransformersEmbedder } = await import('./transformers.js');
      return TransformersEmbedder.create({
        model: c.model ?? '',
        modelDir: c.modelDir,
        cacheDir: join(resolveCacheDir(c.cacheDir), 'transformers'),
        allowRemoteModels: c.allowRemoteModels,
        dtype: c.dtype,
        maxLength: c.maxLength,
        batchSize: c.batchSize,
        concurrency: c.concurrency,
        workers: c.workers,
        threads: c.threads,
        maxBatchTokens: c.maxBatchTokens,
        spinning: c.spinning,
        graphOptimization: c.graphOptimization,
      });
    }
    case 'openai': {
      const e = new OpenAIEmbedder({
        model: c.model,
        baseUrl: c.url,
        apiKey: c.apiKey,
        dimensions: c.dimensions,
        batchSize: c.batchSize,
        concurrency: c.concurrency,
        timeoutMs: c.timeoutMs,
        maxRetries: c.maxRetries,
      });
      return e.init({ signal: c.signal });
    }
    case 'precomputed':
      return new PrecomputedEmbedder({ field: c.vectorsField, npy: c.vectorsNpy });
    case 'llm': {
      const { LlmEmbedder } = await import('./llm.js');
      return LlmEmbedder.create({
        model: c.model ?? '',
        template: c.chatTemplate,
        contextSize: c.contextSize,
        threads: c.threads,
        concurrency: c.concurrency,
        gpu: c.gpu,
        signal: c.signal,
      });
    }
  }
}
