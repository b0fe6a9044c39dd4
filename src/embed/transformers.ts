// Local ONNX sentence-embedding models through transformers.js
// (@huggingface/transformers, an optional dependency loaded on first use).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { AbortError, OptionError, ShapeError } from '../errors.js';
import { count } from '../options.js';
import { resolveCacheDir } from '../refsets/index.js';
import { runPool } from './pool.js';
import type { EmbedCallOptions, Embedder } from './types.js';

export const TRANSFORMERS_PACKAGE = '@huggingface/transformers';

export interface TransformersEmbedderOptions {
  /**
   * Model: a folder (absolute or relative path holding config.json,
   * tokenizer.json and onnx/model*.onnx), or a name looked up under
   * `modelDir` (and, with `allowRemoteModels`, on the Hugging Face hub).
   */
  model: string;
  /** Folder of local models (`<modelDir>/<model>/...`; default `<SOT cache dir>/models`). */
  modelDir?: string;
  /** Where transformers.js caches downloaded files (default `<SOT cache dir>/transformers`). */
  cacheDir?: string;
  /** Let transformers.js download from the hub (default false: local files only). */
  allowRemoteModels?: boolean;
  /** Weights: fp32 (onnx/model.onnx, default), q8 (onnx/model_quantized.onnx), fp16, int8, uint8, q4, ... */
  dtype?: string;
  /** Pooling of the token vectors: mean over the attention mask (default) or the CLS token. */
  pooling?: 'mean' | 'cls';
  /** L2-normalise the vectors (default true). */
  normalize?: boolean;
  /** Tokens per text at most (longer texts are truncated; default the tokenizer's limit). */
  maxLength?: number;
  /** Texts per forward pass (default 32). */
  batchSize?: number;
  /** Forward passes in flight (default 1; ONNX Runtime already uses every core). */
  concurrency?: number;
}

interface Tensor {
  data: Float32Array | ArrayLike<number>;
  dims: number[];
}
type Extractor = ((texts: string[], o: { pooling: string; normalize: boolean }) => Promise<Tensor>) & {
  tokenizer?: { model_max_length?: number };
  dispose?: () => Promise<void>;
};
interface TransformersModule {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string; cacheDir: string };
  pipeline: (task: string, model: string, options: Record<string, unknown>) => Promise<Extractor>;
}

async function importTransformers(): Promise<TransformersModule> {
  const name = TRANSFORMERS_PACKAGE; // a variable: tsc does not load its (large) types
  try {
    return (await import(name)) as TransformersModule;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new OptionError('ERR_OPTION', `the transformers embedder needs the optional package ${TRANSFORMERS_PACKAGE}: npm install ${TRANSFORMERS_PACKAGE}@3`);
    }
    throw err;
  }
}

const ONNX_FILE: Record<string, string> = { fp32: 'model.onnx', q8: 'model_quantized.onnx', auto: 'model.onnx' };

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Sentence embeddings from a local ONNX model (BERT-like encoders:
 * all-MiniLM, bge, e5, gte, ...): tokenised with the model's tokenizer,
 * token vectors mean-pooled over the attention mask (or the CLS token) and
 * L2-normalised. Nothing is downloaded unless `allowRemoteModels` is set.
 * Create it with `await TransformersEmbedder.create(...)`: loading the model
 * tells its dimension. The id names the model, the options and a digest of
 * its ONNX and tokenizer files, so a changed model never reuses cached vectors.
 */
export class TransformersEmbedder implements Embedder {
  readonly model: string;
  readonly dtype: string;
  readonly pooling: 'mean' | 'cls';
  readonly normalize: boolean;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly dim: number;
  readonly id: string;
  readonly #extractor: Extractor;

  private constructor(fields: { model: string; dtype: string; pooling: 'mean' | 'cls'; normalize: boolean; batchSize: number; concurrency: number; dim: number; id: string; extractor: Extractor }) {
    this.model = fields.model;
    this.dtype = fields.dtype;
    this.pooling = fields.pooling;
    this.normalize = fields.normalize;
    this.batchSize = fields.batchSize;
    this.concurrency = fields.concurrency;
    this.dim = fields.dim;
    this.id = fields.id;
    this.#extractor = fields.extractor;
  }

  static async create(options: TransformersEmbedderOptions): Promise<TransformersEmbedder> {
    if (typeof options?.model !== 'string' || options.model.trim() === '') {
      throw new OptionError('ERR_OPTION', 'the transformers embedder needs a model (--model: a folder, or a name under --model-dir)');
    }
    const pooling = options.pooling ?? 'mean';
    if (pooling !== 'mean' && pooling !== 'cls') throw new OptionError('ERR_OPTION', `pooling must be "mean" or "cls", got ${String(pooling)}`);
    const normalize = options.normalize ?? true;
    const batchSize = count('batchSize', options.batchSize) ?? 32;
    const concurrency = count('concurrency', options.concurrency) ?? 1;
    const maxLength = count('maxLength', options.maxLength);
    const dtype = options.dtype ?? 'fp32';
    const remote = options.allowRemoteModels === true;
    const sotCache = resolveCacheDir();

    // A path (absolute, ./relative, or an existing folder) is split into its parent and name.
    let modelDir = options.modelDir ?? join(sotCache, 'models');
    let model = options.model.trim();
    const asPath = isAbsolute(model) || model.startsWith('.') || (options.modelDir === undefined && existsSync(model));
    if (asPath) {
      const full = resolve(model);
      modelDir = dirname(full);
      model = basename(full);
    }
    const folder = join(modelDir, model);
    if (!remote && !existsSync(join(folder, 'config.json'))) {
      throw new OptionError(
        'ERR_OPTION',
        `no local model at ${folder} (expected config.json, tokenizer.json and onnx/${ONNX_FILE[dtype] ?? `model_${dtype}.onnx`}); give --model a model folder or --model-dir, or allow downloads with --allow-remote-models`,
      );
    }

    const tf = await importTransformers();
    tf.env.allowLocalModels = true;
    tf.env.allowRemoteModels = remote;
    tf.env.localModelPath = modelDir.endsWith('/') ? modelDir : `${modelDir}/`;
    tf.env.cacheDir = options.cacheDir ?? join(sotCache, 'transformers');
    let extractor: Extractor;
    try {
      extractor = await tf.pipeline('feature-extraction', model, { dtype, device: 'cpu', local_files_only: !remote });
    } catch (err) {
      throw new OptionError('ERR_OPTION', `cannot load the model ${model} from ${modelDir}${remote ? ' or the hub' : ''} (dtype ${dtype}): ${(err as Error).message}`, { cause: err });
    }
    if (maxLength !== undefined && extractor.tokenizer) extractor.tokenizer.model_max_length = maxLength;

    // Identity: the model's files, not only its name.
    const h = createHash('sha256');
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', join('onnx', ONNX_FILE[dtype] ?? `model_${dtype}.onnx`)]) {
      const p = join(folder, f);
      if (existsSync(p) && statSync(p).isFile()) h.update(`${f}:${await sha256File(p)}\n`);
    }
    const digest = existsSync(folder) ? h.digest('hex').slice(0, 16) : 'remote';
    const probe = await extractor(['dimension probe'], { pooling, normalize });
    const dim = probe.dims[probe.dims.length - 1]!;
    const id = `transformers-v1:${model}:files=${digest}:dtype=${dtype}:pool=${pooling}:norm=${normalize ? 1 : 0}:max=${maxLength ?? 'default'}:dim=${dim}`;
    return new TransformersEmbedder({ model, dtype, pooling, normalize, batchSize, concurrency, dim, id, extractor });
  }

  async embed(texts: string[], options: EmbedCallOptions = {}): Promise<Float32Array> {
    if (!Array.isArray(texts)) throw new OptionError('ERR_OPTION', 'texts must be an array of strings');
    const bad = texts.findIndex((t) => typeof t !== 'string');
    if (bad >= 0) throw new OptionError('ERR_OPTION', `texts[${bad}] is not a string`, { index: bad });
    const dim = this.dim;
    const out = new Float32Array(texts.length * dim);
    const batches = Math.ceil(texts.length / this.batchSize);
    await runPool(
      batches,
      this.concurrency,
      async (b, signal) => {
        if (signal.aborted) throw new AbortError(undefined, { cause: signal.reason });
        const part = texts.slice(b * this.batchSize, (b + 1) * this.batchSize);
        const t = await this.#extractor(part, { pooling: this.pooling, normalize: this.normalize });
        if (t.dims.length !== 2 || t.dims[0] !== part.length || t.dims[1] !== dim) {
          throw new ShapeError('ERR_SHAPE', `model ${this.model} returned a [${t.dims.join(', ')}] tensor for ${part.length} texts, expected [${part.length}, ${dim}]`);
        }
        out.set(t.data as ArrayLike<number>, b * this.batchSize * dim);
      },
      options.signal,
    );
    return out;
  }

  /** Frees the ONNX session. */
  async dispose(): Promise<void> {
    await this.#extractor.dispose?.();
  }
}
