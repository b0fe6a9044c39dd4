// Local ONNX sentence-embedding models through transformers.js
// (@huggingface/transformers, an optional dependency loaded on first use).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AbortError, OptionError, ShapeError } from '../errors.js';
import { bool, count } from '../options.js';
import { resolveCacheDir } from '../refsets/index.js';
import { TRANSFORMERS_DEFAULTS as D } from './defaults.js';
import { EncoderWorkers, sessionOptions } from './encoder-workers.js';
import { runPool } from './pool.js';
import { padBatch, planBatches, type Encoded } from './token-batches.js';
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
  /**
   * Tokens per text at most, special tokens included; longer texts are
   * truncated. Default 128 (or the tokenizer's limit when lower): chosen
   * from the harmful-recall and speed table in BENCHMARKS.md.
   */
  maxLength?: number;
  /** Texts per forward pass at most (default 64). */
  batchSize?: number;
  /**
   * Padded tokens per forward pass at most (texts x the longest one's
   * tokens; default 4096). Texts are sorted by length first, so a batch of
   * short texts holds more of them; a text longer than this goes alone.
   */
  maxBatchTokens?: number;
  /** Forward passes queued per worker (default 2: the next one is ready when a pass ends). */
  concurrency?: number;
  /**
   * Worker processes, each with its own ONNX Runtime session (default the
   * core count, at most 4). The forward passes always run off the JS thread.
   */
  workers?: number;
  /** ONNX Runtime intra-op threads per worker (default: the cores divided among the workers, at least 1). */
  threads?: number;
  /** Let idle ONNX Runtime threads spin-wait (default false: on a shared machine spinning steals the cores). */
  spinning?: boolean;
  /** ONNX Runtime graph optimisation level (default `all`). */
  graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

/** Texts sorted by length together: wide enough to bucket well, narrow enough to tokenise the next window during the passes. */
const SORT_WINDOW = 512;
const GRAPH_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
// Default token limit: BENCHMARKS.md, "Embedding pipeline" (recall as good as 256, faster).

type Tokenizer = ((
  texts: string[],
  o: { padding: boolean; truncation: boolean; return_tensor: boolean },
) => { input_ids: number[][]; attention_mask: number[][]; token_type_ids?: number[][] }) & {
  model_max_length?: number;
  pad_token_id?: number | null;
  padding_side?: string;
};
interface TransformersModule {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string; cacheDir: string };
  AutoTokenizer: { from_pretrained: (model: string, options: Record<string, unknown>) => Promise<Tokenizer> };
}

async function importTransformers(): Promise<TransformersModule> {
  const name = TRANSFORMERS_PACKAGE; // a variable: tsc does not load its (large) types
  try {
    return (await import(name)) as TransformersModule;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new OptionError(
        'ERR_OPTION',
        `the transformers embedder needs the optional package ${TRANSFORMERS_PACKAGE}: npm install ${TRANSFORMERS_PACKAGE}@3`,
      );
    }
    throw err;
  }
}

/** The transformers.js entry the workers import (the one this process resolves). */
function transformersUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve(TRANSFORMERS_PACKAGE)).href;
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
 * tells its dimension. The id names the model, the options that change the
 * vectors and a digest of its ONNX and tokenizer files, so a changed model
 * never reuses cached vectors; how the work is split (batches, workers,
 * threads) is not in it. Call `dispose()` to stop its workers (idle ones
 * never keep the process alive).
 *
 * The JS thread tokenises, sorts the texts by token count and cuts them into
 * batches by a padded-token budget; worker processes run the forward passes,
 * each on its own ONNX Runtime session, while the JS thread stays free.
 */
export class TransformersEmbedder implements Embedder {
  readonly model: string;
  readonly dtype: string;
  readonly pooling: 'mean' | 'cls';
  readonly normalize: boolean;
  /** Tokens per text at most (the option, or the default). */
  readonly maxLength: number;
  readonly batchSize: number;
  readonly maxBatchTokens: number;
  readonly concurrency: number;
  readonly workers: number;
  readonly threads: number;
  readonly dim: number;
  readonly id: string;
  /** Texts per `embed` call: several windows, so that tokenising overlaps the passes. */
  readonly preferredBatch = 4 * SORT_WINDOW;
  readonly #tokenizer: Tokenizer;
  readonly #pool: EncoderWorkers;

  private constructor(fields: {
    model: string;
    dtype: string;
    pooling: 'mean' | 'cls';
    normalize: boolean;
    maxLength: number;
    batchSize: number;
    maxBatchTokens: number;
    concurrency: number;
    threads: number;
    dim: number;
    id: string;
    tokenizer: Tokenizer;
    pool: EncoderWorkers;
  }) {
    this.model = fields.model;
    this.dtype = fields.dtype;
    this.pooling = fields.pooling;
    this.normalize = fields.normalize;
    this.maxLength = fields.maxLength;
    this.batchSize = fields.batchSize;
    this.maxBatchTokens = fields.maxBatchTokens;
    this.concurrency = fields.concurrency;
    this.workers = fields.pool.size;
    this.threads = fields.threads;
    this.dim = fields.dim;
    this.id = fields.id;
    this.#tokenizer = fields.tokenizer;
    this.#pool = fields.pool;
  }

  static async create(options: TransformersEmbedderOptions): Promise<TransformersEmbedder> {
    if (typeof options?.model !== 'string' || options.model.trim() === '') {
      throw new OptionError(
        'ERR_OPTION',
        'the transformers embedder needs a model (--model: a folder, or a name under --model-dir)',
      );
    }
    const pooling = options.pooling ?? 'mean';
    if (pooling !== 'mean' && pooling !== 'cls')
      throw new OptionError('ERR_OPTION', `pooling must be "mean" or "cls", got ${String(pooling)}`);
    const normalize = options.normalize ?? true;
    const batchSize = count('batchSize', options.batchSize) ?? D.batchSize;
    const maxBatchTokens = count('maxBatchTokens', options.maxBatchTokens) ?? D.maxBatchTokens;
    const concurrency = count('concurrency', options.concurrency) ?? D.concurrency;
    // One single-threaded session per core beat one session with a thread per
    // core on a contended machine (no thread-pool barrier waiting on a
    // descheduled thread); at most D.maxWorkers copies of the model.
    const workers = count('workers', options.workers) ?? Math.min(D.maxWorkers, availableParallelism());
    const threads = count('threads', options.threads) ?? Math.max(1, Math.floor(availableParallelism() / workers));
    const spinning = bool('spinning', options.spinning) ?? false;
    const graphOptimization = options.graphOptimization ?? 'all';
    if (!GRAPH_LEVELS.includes(graphOptimization))
      throw new OptionError(
        'ERR_OPTION',
        `graphOptimization must be one of ${GRAPH_LEVELS.join(', ')}, got ${String(graphOptimization)}`,
      );
    const maxLengthOption = count('maxLength', options.maxLength);
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
    const env = {
      allowLocalModels: true,
      allowRemoteModels: remote,
      localModelPath: modelDir.endsWith('/') ? modelDir : `${modelDir}/`,
      cacheDir: options.cacheDir ?? join(sotCache, 'transformers'),
    };
    Object.assign(tf.env, env);
    const cannotLoad = (err: unknown) =>
      new OptionError(
        'ERR_OPTION',
        `cannot load the model ${model} from ${modelDir}${remote ? ' or the hub' : ''} (dtype ${dtype}): ${(err as Error).message}`,
        { cause: err },
      );
    let tokenizer: Tokenizer;
    let pool: EncoderWorkers;
    try {
      tokenizer = await tf.AutoTokenizer.from_pretrained(model, { local_files_only: !remote });
      pool = await EncoderWorkers.start(
        {
          transformers: transformersUrl(),
          env,
          model,
          options: {
            dtype,
            device: 'cpu',
            local_files_only: !remote,
            session_options: sessionOptions({ threads, spinning, graphOptimization }),
          },
          pooling,
          normalize,
        },
        workers,
      );
    } catch (err) {
      throw cannotLoad(err);
    }
    // An explicit limit may exceed the tokenizer's (up to the model's positions), as before; the default never does.
    const maxLength = maxLengthOption ?? Math.min(D.maxLength, tokenizer.model_max_length ?? D.maxLength);
    tokenizer.model_max_length = maxLength;

    // Identity: the model's files, not only its name.
    const h = createHash('sha256');
    for (const f of [
      'config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      join('onnx', ONNX_FILE[dtype] ?? `model_${dtype}.onnx`),
    ]) {
      const p = join(folder, f);
      if (existsSync(p) && statSync(p).isFile()) h.update(`${f}:${await sha256File(p)}\n`);
    }
    const digest = existsSync(folder) ? h.digest('hex').slice(0, 16) : 'remote';
    const fields = {
      model,
      dtype,
      pooling,
      normalize,
      maxLength,
      batchSize,
      maxBatchTokens,
      concurrency,
      threads,
      tokenizer,
      pool,
      dim: 0,
      id: '',
    };
    let probe: TransformersEmbedder;
    try {
      probe = new TransformersEmbedder(fields);
      fields.dim = (await probe.#forward(['dimension probe'])).dims[1]!;
    } catch (err) {
      await pool.terminate();
      throw err instanceof OptionError ? err : cannotLoad(err);
    }
    fields.id = `transformers-v1:${model}:files=${digest}:dtype=${dtype}:pool=${pooling}:norm=${normalize ? 1 : 0}:max=${maxLength}:dim=${fields.dim}`;
    return new TransformersEmbedder(fields);
  }

  /** Tokenised texts, truncated to the maximum length, unpadded. */
  #encode(texts: string[]): Encoded[] {
    const t = this.#tokenizer(texts, { padding: false, truncation: true, return_tensor: false });
    return texts.map((_, i) => ({
      input_ids: t.input_ids[i]!,
      attention_mask: t.attention_mask[i]!,
      ...(t.token_type_ids ? { token_type_ids: t.token_type_ids[i]! } : {}),
    }));
  }

  /** One forward pass over texts padded together (their given order). */
  #forward(texts: string[], signal?: AbortSignal): Promise<{ data: Float32Array; dims: number[] }> {
    const enc = this.#encode(texts);
    return this.#pool.run(
      padBatch(
        enc,
        enc.map((_, i) => i),
        this.#tokenizer.pad_token_id ?? 0,
        this.#tokenizer.padding_side === 'left' ? 'left' : 'right',
      ),
      signal,
    );
  }

  async embed(texts: string[], options: EmbedCallOptions = {}): Promise<Float32Array> {
    if (!Array.isArray(texts)) throw new OptionError('ERR_OPTION', 'texts must be an array of strings');
    const bad = texts.findIndex((t) => typeof t !== 'string');
    if (bad >= 0) throw new OptionError('ERR_OPTION', `texts[${bad}] is not a string`, { index: bad });
    const dim = this.dim;
    const out = new Float32Array(texts.length * dim);
    const pad = this.#tokenizer.pad_token_id ?? 0;
    const side = this.#tokenizer.padding_side === 'left' ? 'left' : 'right';
    // Sorted by length within windows; the next window is tokenised (on this
    // thread) while the workers run the current one's passes.
    const windowOf = (w0: number) => this.#encode(texts.slice(w0, w0 + SORT_WINDOW));
    let enc = texts.length > 0 ? windowOf(0) : [];
    for (let w0 = 0; w0 < texts.length; w0 += SORT_WINDOW) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      const current = enc;
      const plan = planBatches(
        current.map((e) => e.input_ids.length),
        { maxBatchTokens: this.maxBatchTokens, maxBatchRows: this.batchSize },
      );
      const running = runPool(
        plan.length,
        this.concurrency * this.workers,
        async (b, signal) => {
          const batch = padBatch(current, plan[b]!, pad, side);
          const t = await this.#pool.run(batch, signal);
          if (t.dims.length !== 2 || t.dims[0] !== batch.rows.length || t.dims[1] !== dim) {
            throw new ShapeError(
              'ERR_SHAPE',
              `model ${this.model} returned a [${t.dims.join(', ')}] tensor for ${batch.rows.length} texts, expected [${batch.rows.length}, ${dim}]`,
            );
          }
          batch.rows.forEach((i, r) => out.set(t.data.subarray(r * dim, (r + 1) * dim), (w0 + i) * dim));
        },
        options.signal,
      );
      try {
        if (w0 + SORT_WINDOW < texts.length) enc = windowOf(w0 + SORT_WINDOW);
      } finally {
        await running;
      }
    }
    return out;
  }

  /** Stops the workers (and frees their ONNX sessions). */
  async dispose(): Promise<void> {
    await this.#pool.terminate();
  }
}
