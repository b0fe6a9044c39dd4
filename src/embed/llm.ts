// Hidden states of a local GGUF chat model through node-llama-cpp (an
// optional peer dependency, loaded on first use): each record rendered with
// the model's own chat template, the last token's state, unit length.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import { cancellable } from '../cancellable.js';
import { AbortError, BindingError, InputError, IoError, OptionError, ShapeError } from '../errors.js';
import type { SampleText } from '../io/types.js';
import { native } from '../native.js';
import { count } from '../options.js';
import { runPool } from './pool.js';
import type { EmbedCallOptions, Embedder } from './types.js';
import { LLM_DEFAULTS } from './defaults.js';

export const LLAMA_PACKAGE = 'node-llama-cpp';

/**
 * How one vector is taken from the token states. Only `last` exists:
 * node-llama-cpp returns one state per evaluation (the last token's, for a
 * chat model), never the per-token states a mean would need.
 */
export type LlmPooling = 'last';

export interface LlmEmbedderOptions {
  /** The model: a `.gguf` file of a chat (instruction-tuned) model. */
  model: string;
  /** A Jinja chat template to use instead of the one in the model file (`tokenizer.chat_template`). */
  template?: string;
  /** Tokens per record at most, chat template included (default 2048, at most the model's training context); longer records are cut, see `docs/embedders.md`. */
  contextSize?: number;
  /** CPU threads per evaluation (default: the cores less one, at least 1). */
  threads?: number;
  /** Records evaluated at once, each in its own llama.cpp context (default 1). */
  concurrency?: number;
  /** Token states to vector (default and only: `last`). */
  pooling?: LlmPooling;
  /** Offload to a GPU when node-llama-cpp finds one (default false: CPU, the same vectors everywhere). */
  gpu?: boolean;
  /** Aborts the loading. */
  signal?: AbortSignal;
}

/** Called with the records done so far within one `embed` call. */
export interface LlmEmbedCallOptions extends EmbedCallOptions {
  onProgress?: (done: number) => void;
}

// The parts of node-llama-cpp used here (its types are not loaded: it is optional).
type Token = number;
interface LlamaTextLike {
  tokenize(tokenizer: unknown): Token[];
  toJSON(): unknown;
}
interface ChatState {
  contextText: LlamaTextLike;
  stopGenerationTriggers: LlamaTextLike[];
}
interface ChatWrapperLike {
  generateContextState(o: { chatHistory: unknown[] }): ChatState;
}
interface EmbeddingContextLike {
  getEmbeddingFor(input: Token[]): Promise<{ vector: readonly number[] }>;
  dispose(): Promise<void>;
}
interface ModelLike {
  readonly tokenizer: unknown;
  readonly trainContextSize: number;
  readonly embeddingVectorSize: number;
  readonly fileInfo: {
    metadata: Record<string, unknown> & { general?: { architecture?: string }; tokenizer?: { chat_template?: string } };
  };
  tokenize(text: string, specialTokens?: boolean): Token[];
  detokenize(tokens: readonly Token[], specialTokens?: boolean): string;
  createEmbeddingContext(o: {
    contextSize: number;
    batchSize: number;
    threads: number;
    createSignal?: AbortSignal;
  }): Promise<EmbeddingContextLike>;
  dispose(): Promise<void>;
}
type JsonPart = string | { type: string; value: string };

/** A LlamaText's JSON parts without the whitespace at their end. */
function trimEndParts(parts: JsonPart[]): JsonPart[] {
  const out = parts.slice();
  while (out.length > 0) {
    const last = out[out.length - 1]!;
    const value = typeof last === 'string' ? last : last.type === 'specialToken' ? null : last.value;
    if (value === null) break;
    const trimmed = value.trimEnd();
    if (trimmed !== '') {
      out[out.length - 1] = typeof last === 'string' ? trimmed : { ...last, value: trimmed };
      break;
    }
    out.pop();
  }
  return out;
}

interface LlamaModule {
  getLlama(o: Record<string, unknown>): Promise<{
    gpu: string | false;
    loadModel(o: { modelPath: string; gpuLayers?: number; loadSignal?: AbortSignal }): Promise<ModelLike>;
  }>;
  JinjaTemplateChatWrapper: new (o: { template: string }) => ChatWrapperLike;
  LlamaText: ((...values: unknown[]) => LlamaTextLike) & { fromJSON(json: unknown): LlamaTextLike };
}

async function importLlama(name = LLAMA_PACKAGE): Promise<LlamaModule> {
  try {
    return (await import(name)) as LlamaModule;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new OptionError(
        'ERR_OPTION',
        `the llm embedder needs the optional package ${LLAMA_PACKAGE}: npm install ${LLAMA_PACKAGE}@3`,
        { cause: err },
      );
    }
    throw err;
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** An LLM embedder's id names its model file too: the file's sha256, not its name, fixes the vectors. */
const MODEL_NAME = /^llm-v1:.*?:(sha256=[0-9a-f]{64}:)/;

/** Whether two embedder ids give the same vectors: the same id, or LLM ids that differ only in the model file's name. */
export function sameVectors(a: string, b: string): boolean {
  const fixed = (id: string) => id.replace(MODEL_NAME, 'llm-v1:$1');
  return a === b || fixed(a) === fixed(b);
}

/** llama.cpp's pooling types (llama_pooling_type) whose vector is the last token's state. */
const LAST_TOKEN_POOLING = new Set([0 /* none: the last output, read by node-llama-cpp */, 3 /* last */]);

// A record reaches `embed` as this tag and the JSON of [prompt, response]:
// the cache keys it, and `embed` splits it back into the two chat turns.
const CHAT_TAG = '\u001fsot-chat\u001f';

/**
 * Vectors from a local GGUF chat model: each record rendered with the
 * model's own chat template as a user turn (the prompt) and an assistant
 * turn (the response), evaluated by llama.cpp, and the hidden state of the
 * last token (after the final norm, before the output head) scaled to unit
 * length: the aligned model's own view of the exchange. A record without a
 * response ends with the template's generation prompt (the assistant's
 * header), so its last token is where the model would start to answer.
 * Create it with `await LlmEmbedder.create({ model })`; `dispose()` frees it.
 */
export class LlmEmbedder implements Embedder {
  readonly model: string;
  readonly modelSha256: string;
  readonly templateSha256: string;
  readonly pooling: LlmPooling = 'last';
  readonly contextSize: number;
  readonly threads: number;
  readonly concurrency: number;
  readonly dim: number;
  readonly id: string;
  /** Records per call the pipeline makes (and per cache chunk): a few seconds of work, so that progress moves. */
  readonly preferredBatch = 32;
  readonly #llama: LlamaModule;
  readonly #model: ModelLike;
  readonly #wrapper: ChatWrapperLike;
  readonly #free: EmbeddingContextLike[];
  readonly #all: EmbeddingContextLike[];

  private constructor(f: {
    model: string;
    modelSha256: string;
    templateSha256: string;
    contextSize: number;
    threads: number;
    dim: number;
    id: string;
    llama: LlamaModule;
    handle: ModelLike;
    wrapper: ChatWrapperLike;
    contexts: EmbeddingContextLike[];
  }) {
    this.model = f.model;
    this.modelSha256 = f.modelSha256;
    this.templateSha256 = f.templateSha256;
    this.contextSize = f.contextSize;
    this.threads = f.threads;
    this.concurrency = f.contexts.length;
    this.dim = f.dim;
    this.id = f.id;
    this.#llama = f.llama;
    this.#model = f.handle;
    this.#wrapper = f.wrapper;
    this.#all = f.contexts;
    this.#free = [...f.contexts];
  }

  static async create(options: LlmEmbedderOptions): Promise<LlmEmbedder> {
    if (typeof options?.model !== 'string' || options.model.trim() === '') {
      throw new OptionError('ERR_OPTION', 'the llm embedder needs a model (--model: a .gguf file)');
    }
    const pooling = options.pooling ?? 'last';
    if (pooling !== 'last')
      throw new OptionError(
        'ERR_OPTION',
        `pooling must be "last" (node-llama-cpp gives no per-token states), got ${String(pooling)}`,
      );
    if (options.template !== undefined && (typeof options.template !== 'string' || options.template.trim() === '')) {
      throw new OptionError('ERR_OPTION', 'template must be a non-empty Jinja chat template');
    }
    const wantContext = count('contextSize', options.contextSize);
    const threads = count('threads', options.threads) ?? Math.max(1, availableParallelism() - 1);
    const concurrency = count('concurrency', options.concurrency) ?? LLM_DEFAULTS.concurrency;
    const signal = options.signal;

    // The file first: a missing model is the user's most likely mistake.
    const path = resolve(options.model);
    const st = await stat(path).catch((err: unknown) => {
      throw new IoError(
        `cannot read the model ${path}: ${(err as { code?: string }).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
        { path, cause: err },
      );
    });
    if (!st.isFile()) throw new IoError(`cannot read the model ${path}: not a file`, { path });
    const magic = Buffer.alloc(4);
    try {
      const fh = await open(path, 'r');
      try {
        await fh.read(magic, 0, 4, 0);
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new IoError(`cannot read the model ${path}: ${(err as Error).message}`, { path, cause: err });
    }
    if (magic.toString('latin1') !== 'GGUF')
      throw new InputError({ file: path }, 'not a GGUF model file (it does not start with "GGUF")');

    const llama = await importLlama();
    if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
    let runtime: Awaited<ReturnType<LlamaModule['getLlama']>>;
    try {
      // build 'never': a missing prebuilt binary is an error, not a download and a compile.
      runtime = await llama.getLlama({
        gpu: options.gpu === true ? 'auto' : false,
        build: 'never',
        logLevel: 'error',
        progressLogs: false,
      });
    } catch (err) {
      throw new BindingError(`${LLAMA_PACKAGE} has no usable prebuilt binary here: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const backend = runtime.gpu === false ? 'cpu' : runtime.gpu;
    let handle: ModelLike;
    try {
      handle = await runtime.loadModel({
        modelPath: path,
        ...(options.gpu === true ? {} : { gpuLayers: 0 }),
        loadSignal: signal,
      });
    } catch (err) {
      if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
      throw new InputError({ file: path }, `${LLAMA_PACKAGE} cannot load this model: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const created: EmbeddingContextLike[] = [];
    try {
      const meta = handle.fileInfo.metadata;
      const arch = meta.general?.architecture ?? '';
      const declared = (meta[arch] as { pooling_type?: number } | undefined)?.pooling_type;
      if (declared !== undefined && !LAST_TOKEN_POOLING.has(declared)) {
        throw new OptionError(
          'ERR_OPTION',
          `${path} is an embedding model (its pooling type is ${declared}, not the last token): use --embedder transformers or openai for it; the llm embedder reads a chat model's last-token state`,
        );
      }
      const template = options.template ?? meta.tokenizer?.chat_template;
      if (typeof template !== 'string' || template.trim() === '') {
        throw new OptionError(
          'ERR_OPTION',
          `${path} has no chat template (tokenizer.chat_template): give one (template option), or use a chat model`,
        );
      }
      let wrapper: ChatWrapperLike;
      try {
        wrapper = new llama.JinjaTemplateChatWrapper({ template });
        wrapper.generateContextState({
          chatHistory: [
            { type: 'user', text: 'probe' },
            { type: 'model', response: ['probe'] },
          ],
        });
      } catch (err) {
        throw new OptionError(
          'ERR_OPTION',
          `the chat template of ${path} cannot render a user and an assistant turn: ${(err as Error).message}`,
          { cause: err },
        );
      }
      const contextSize = Math.min(wantContext ?? LLM_DEFAULTS.contextSize, handle.trainContextSize);
      // One decode per record (batch = context): node-llama-cpp reads the state of the last decode's last token.
      for (let i = 0; i < concurrency; i++)
        created.push(
          await handle.createEmbeddingContext({ contextSize, batchSize: contextSize, threads, createSignal: signal }),
        );
      const dim = handle.embeddingVectorSize;
      const modelSha256 = await sha256File(path);
      const templateSha256 = sha256(template);
      // Threads and concurrency do not change the vectors; the context size does (it cuts long records).
      const id = `llm-v1:${basename(path)}:sha256=${modelSha256}:template=${templateSha256.slice(0, 16)}:pool=${pooling}:ctx=${contextSize}:backend=${backend}:dim=${dim}`;
      return new LlmEmbedder({
        model: path,
        modelSha256,
        templateSha256,
        contextSize,
        threads,
        dim,
        id,
        llama,
        handle,
        wrapper,
        contexts: created,
      });
    } catch (err) {
      for (const c of created) await c.dispose();
      await handle.dispose();
      if (signal?.aborted && !(err instanceof OptionError)) throw new AbortError(undefined, { cause: signal.reason });
      throw err;
    }
  }

  /**
   * The text the pipeline embeds for a record: its prompt and response,
   * kept apart so that `embed` can give each its chat turn. (A `text`-layout
   * record is a user turn without a response.)
   */
  renderSample(sample: SampleText): string {
    return CHAT_TAG + JSON.stringify(sample.text !== undefined ? [sample.text, ''] : [sample.prompt, sample.response]);
  }

  /** The tokens of one record in the chat template; a text not made by `renderSample` is a user turn. */
  tokens(text: string): Token[] {
    let prompt = text;
    let response = '';
    if (text.startsWith(CHAT_TAG)) {
      let parts: unknown;
      try {
        parts = JSON.parse(text.slice(CHAT_TAG.length));
      } catch {
        parts = undefined;
      }
      if (Array.isArray(parts) && parts.length === 2 && typeof parts[0] === 'string' && typeof parts[1] === 'string')
        [prompt, response] = parts as [string, string];
    }
    // Room for the BOS/EOS tokens node-llama-cpp may add.
    const limit = this.contextSize - 2;
    let tokens = this.#chatTokens(prompt, response);
    if (tokens.length <= limit) return tokens;
    // Too long: keep the head of each turn, the response at least half of what the template leaves.
    const pt = this.#model.tokenize(prompt);
    const rt = this.#model.tokenize(response);
    const budget = limit - (tokens.length - pt.length - rt.length);
    if (budget < 2)
      throw new OptionError(
        'ERR_OPTION',
        `contextSize ${this.contextSize} leaves no room for a record in the chat template of ${this.model}`,
      );
    let r = Math.min(rt.length, Math.max(Math.ceil(budget / 2), budget - pt.length));
    let p = Math.min(pt.length, budget - r);
    for (let attempt = 0; attempt < 8; attempt++) {
      tokens = this.#chatTokens(this.#model.detokenize(pt.slice(0, p)), this.#model.detokenize(rt.slice(0, r)));
      if (tokens.length <= limit) return tokens;
      // Re-tokenising a cut text can give a few more tokens: cut the longer part further.
      const over = tokens.length - limit;
      if (r >= p) r = Math.max(0, r - over);
      else p = Math.max(0, p - over);
    }
    throw new ShapeError(
      'ERR_SHAPE',
      `a record does not fit in contextSize ${this.contextSize} of ${this.model} even when cut`,
    );
  }

  #chatTokens(prompt: string, response: string): Token[] {
    const state = this.#wrapper.generateContextState({
      chatHistory: [
        { type: 'user', text: prompt },
        { type: 'model', response: response === '' ? [] : [response] },
      ],
    });
    if (response === '') return state.contextText.tokenize(this.#model.tokenizer);
    // The wrapper stops after the last assistant message (to let the model go on); what the
    // template renders after it is the trigger that is not the bare EOS. Its end-of-turn
    // marker is kept and the whitespace after it dropped: the marker's state sums up the
    // turn, a trailing newline's much less (measured in docs/embedders.md).
    const tail = state.stopGenerationTriggers
      .map((t) => t.toJSON() as JsonPart[])
      .find((t) => JSON.stringify(t) !== '[{"type":"specialToken","value":"EOS"}]');
    return this.#llama
      .LlamaText(state.contextText, this.#llama.LlamaText.fromJSON(trimEndParts(tail ?? [])))
      .tokenize(this.#model.tokenizer);
  }

  async embed(texts: string[], options: LlmEmbedCallOptions = {}): Promise<Float32Array> {
    if (!Array.isArray(texts)) throw new OptionError('ERR_OPTION', 'texts must be an array of strings');
    const bad = texts.findIndex((t) => typeof t !== 'string');
    if (bad >= 0) throw new OptionError('ERR_OPTION', `texts[${bad}] is not a string`, { index: bad });
    if (this.#all.length === 0) throw new OptionError('ERR_OPTION', `the llm embedder of ${this.model} was disposed`);
    const dim = this.dim;
    const raw = new Float32Array(texts.length * dim);
    let done = 0;
    await runPool(
      texts.length,
      this.#all.length,
      async (i, signal) => {
        if (signal.aborted) throw new AbortError(undefined, { cause: signal.reason });
        const tokens = this.tokens(texts[i]!);
        const ctx = await this.#acquire();
        let vector: readonly number[];
        try {
          vector = (await ctx.getEmbeddingFor(tokens)).vector;
        } finally {
          this.#release(ctx);
        }
        if (vector.length !== dim)
          throw new ShapeError(
            'ERR_SHAPE',
            `${this.model} returned a ${vector.length}-d state for texts[${i}], expected ${dim}`,
            { index: i },
          );
        raw.set(vector, i * dim);
        options.onProgress?.(++done);
      },
      options.signal,
    );
    if (texts.length === 0) return raw;
    // Unit length in the core (a bag of one row each); a zero or non-finite state is an error naming the text.
    const rows = Uint32Array.from({ length: texts.length }, (_, i) => i);
    const offsets = Uint32Array.from({ length: texts.length + 1 }, (_, i) => i);
    return cancellable(options.signal, (token) =>
      native.poolRows({ data: raw, rows: texts.length, cols: dim }, rows, offsets, undefined, token),
    );
  }

  // A context evaluates one record at a time; concurrent `embed` calls share them.
  readonly #waiting: Array<(ctx: EmbeddingContextLike) => void> = [];

  #acquire(): Promise<EmbeddingContextLike> {
    const ctx = this.#free.pop();
    return ctx ? Promise.resolve(ctx) : new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(ctx: EmbeddingContextLike): void {
    const next = this.#waiting.shift();
    if (next) next(ctx);
    else this.#free.push(ctx);
  }

  /** Frees the contexts and the model. */
  async dispose(): Promise<void> {
    const all = this.#all.splice(0);
    this.#free.splice(0);
    for (const c of all) await c.dispose();
    await this.#model.dispose();
  }
}
