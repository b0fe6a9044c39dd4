// Precomputed vectors: the user's own embeddings, from a field of every
// record or from a .npy matrix aligned with the records by row.
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { AbortError, InputError, OptionError, ShapeError } from '../errors.js';
import { openDataset, renderText } from '../io/index.js';
import { type AnyMatrix, type Matrix, writeRows } from '../matrix.js';
import { type NpyLayout, readNpy, readNpyRows } from '../npy-read.js';
import { isReferenceSetName } from '../refsets/index.js';
import { hashText } from './cache.js';
import type { Embedder } from './types.js';

export interface PrecomputedEmbedderOptions {
  /** Field of every record (dataset and reference files) holding its vector: an array of numbers, or a JSON array in a string (CSV). */
  field?: string;
  /** `.npy` matrix of the dataset's vectors (float32/float64, C order), row i for record i. Reference files then need a sibling `.npy` (`refs.jsonl` -> `refs.npy`). */
  npy?: string;
}

/** What the pipeline tells a precomputed embedder about the run (see `bind`). */
export interface PrecomputedBinding {
  input?: string;
  template?: string;
  skipInvalid?: boolean;
  harmful?: string[];
  anchor?: string[];
}

/** Bytes of field vectors gathered before they go into the matrix. */
const CHUNK_BYTES = 1024 ** 2;

const TEXT_MODELS = 'an embedder that embeds text (--embedder builtin, wink, transformers or openai)';

/** The `.npy` next to a reference file: same folder and stem. */
export function siblingNpy(path: string): string {
  return join(dirname(path), `${basename(path, extname(path))}.npy`);
}

/**
 * Vectors the user computed: nothing is embedded. The dataset's rows come
 * from `field` or `npy` in record order (`datasetMatrix`); reference files
 * must carry the same field, or (with `npy`) have a `.npy` of the same stem
 * beside them, and `embed` returns their vectors by text. Named reference
 * sets hold texts only and are refused. Every vector must be finite and of
 * one dimension across dataset and references (`InputError` / `ShapeError`).
 * The embedding cache is not used (there is nothing to save).
 */
export class PrecomputedEmbedder implements Embedder {
  readonly field?: string;
  readonly npy?: string;
  readonly cacheable = false;
  #dim?: number;
  /** Reference vectors by sha256 of the rendered text (latin1 key). */
  #refs = new Map<string, { v: Float32Array; source: string }>();

  constructor(options: PrecomputedEmbedderOptions) {
    const field = options?.field?.trim() || undefined;
    const npy = options?.npy?.trim() || undefined;
    if ((field === undefined) === (npy === undefined)) {
      throw new OptionError(
        'ERR_OPTION',
        'precomputed vectors need exactly one source: a vectors field (--vectors-field) or a .npy file (--vectors-npy)',
      );
    }
    this.field = field;
    this.npy = npy;
  }

  get id(): string {
    return `precomputed:${this.field !== undefined ? `field=${this.field}` : `npy=${this.npy}`}:dim=${this.#dim ?? '?'}`;
  }

  get dim(): number {
    if (this.#dim === undefined)
      throw new OptionError(
        'ERR_OPTION',
        'the precomputed embedder does not know its dimension before the dataset is read',
      );
    return this.#dim;
  }

  /** Reads the reference files' vectors; refuses named sets. Called by the pipeline before embedding. */
  async bind(o: PrecomputedBinding, signal?: AbortSignal): Promise<void> {
    this.#refs.clear();
    const roles: Array<[string, string[]]> = [
      ['harmful', o.harmful ?? []],
      ['anchor', o.anchor ?? []],
    ];
    for (const [role, sources] of roles) {
      for (const source of sources) {
        if (!existsSync(source)) {
          const named = isReferenceSetName(source) ? `is a named set of texts` : 'is not an existing file';
          throw new OptionError(
            'ERR_OPTION',
            `${role} reference "${source}" ${named}; precomputed vectors cannot embed text. Pass a reference file ${this.field !== undefined ? `whose records carry "${this.field}" vectors` : 'with a .npy of the same stem beside it (refs.jsonl + refs.npy)'} from the same model, or use ${TEXT_MODELS}`,
          );
        }
        await this.#readReference(source, o, signal);
      }
    }
  }

  async #readReference(source: string, o: PrecomputedBinding, signal?: AbortSignal): Promise<void> {
    const ds = await openDataset(source, { skipInvalid: o.skipInvalid });
    let npy: Matrix | undefined;
    if (this.npy !== undefined) {
      const path = siblingNpy(source);
      if (!existsSync(path)) {
        throw new OptionError(
          'ERR_OPTION',
          `reference file ${source} needs its vectors in ${path} (one row per record, same model as ${this.npy}), or use ${TEXT_MODELS}`,
        );
      }
      const m = await readNpy(path);
      npy = { data: m.data, rows: m.rows, cols: m.cols };
      this.#checkDim(m.cols, path);
    }
    let i = 0;
    for await (const { record, text } of ds) {
      if (signal?.aborted) break;
      let v: Float32Array;
      if (npy !== undefined) {
        if (i >= npy.rows)
          throw new ShapeError(
            'ERR_SHAPE',
            `${siblingNpy(source)} has ${npy.rows} rows but ${source} has more records`,
          );
        v = npy.data.subarray(i * npy.cols, (i + 1) * npy.cols);
      } else {
        v = this.#vectorOf(record.value, source, record.line);
      }
      const key = hashText(renderText(text, o.template)).toString('latin1');
      if (!this.#refs.has(key)) this.#refs.set(key, { v, source });
      i++;
    }
    if (npy !== undefined) {
      if (ds.skipped.count > 0)
        throw new InputError(
          { file: source },
          `${ds.skipped.count} invalid records were skipped, so the rows of ${siblingNpy(source)} cannot be matched to records`,
        );
      if (i !== npy.rows)
        throw new ShapeError('ERR_SHAPE', `${siblingNpy(source)} has ${npy.rows} rows but ${source} has ${i} records`);
    }
  }

  #checkDim(d: number, where: string): void {
    if (this.#dim === undefined) this.#dim = d;
    else if (d !== this.#dim) {
      throw new ShapeError(
        'ERR_SHAPE',
        `embedding dimension mismatch: ${where} holds ${d}-dimensional vectors, earlier vectors are ${this.#dim}-dimensional`,
      );
    }
  }

  #vectorOf(value: Record<string, unknown>, file: string, line: number): Float32Array {
    const field = this.field!;
    let raw = value[field];
    const where = { file, line, field };
    if (raw === undefined || raw === null) throw new InputError(where, `no "${field}" vector in this record`);
    if (typeof raw === 'string') {
      try {
        raw = JSON.parse(raw);
      } catch {
        throw new InputError(where, `"${field}" is a string but not a JSON array of numbers`);
      }
    }
    if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) raw = Array.from(raw as unknown as ArrayLike<number>);
    if (!Array.isArray(raw) || raw.length === 0)
      throw new InputError(where, `"${field}" must be a non-empty array of numbers`);
    const v = new Float32Array(raw.length);
    for (let j = 0; j < raw.length; j++) {
      const x = raw[j];
      const f = typeof x === 'bigint' ? Number(x) : x;
      if (typeof f !== 'number' || !Number.isFinite(f) || !Number.isFinite(Math.fround(f))) {
        throw new InputError(
          where,
          `"${field}"[${j}] is ${typeof x === 'number' ? String(x) : JSON.stringify(x)}, not a finite number`,
        );
      }
      v[j] = f;
    }
    if (this.#dim === undefined) this.#dim = v.length;
    else if (v.length !== this.#dim) {
      throw new ShapeError(
        'ERR_SHAPE',
        `${file}:${line}: embedding dimension mismatch: "${field}" has ${v.length} numbers, earlier vectors have ${this.#dim}`,
      );
    }
    return v;
  }

  /**
   * The dataset's `n x dim` matrix, in the matrix `alloc` makes, and each
   * record's line, in record order. `records` is the dataset stream (the
   * pipeline's input); `skipped` how many invalid records it dropped (rows of
   * a .npy cannot be matched then). `fits` sees the dimension before the
   * matrix is allocated and may refuse it by throwing. The vectors are copied
   * in a few MiB at a time: the matrix is the only whole copy.
   */
  async datasetMatrix<M extends AnyMatrix>(
    file: string,
    records: AsyncIterable<{ record: { line: number; value: Record<string, unknown> } }>,
    n: number,
    skipped: number,
    alloc: (rows: number, cols: number) => M,
    options: { signal?: AbortSignal; onProgress?: (done: number) => void; fits?: (dim: number) => void } = {},
  ): Promise<{ matrix: M; lines: Uint32Array }> {
    const lines = new Uint32Array(n);
    let matrix: M | undefined;
    if (this.npy !== undefined) {
      const npy = this.npy;
      const check = ({ rows, cols }: NpyLayout) => {
        if (rows !== n) {
          throw new ShapeError(
            'ERR_SHAPE',
            `${npy} has ${rows} rows but ${file} has ${n} records${skipped ? ` (after ${skipped} invalid ones were skipped)` : ''}; row i must hold record i's vector`,
          );
        }
        if (skipped > 0)
          throw new InputError(
            { file },
            `${skipped} invalid records were skipped, so the rows of ${npy} cannot be matched to records; fix them or drop --skip-invalid`,
          );
        this.#checkDim(cols, npy);
        options.fits?.(cols);
      };
      matrix = (await readNpyRows(npy, alloc, { check, signal: options.signal })).matrix;
    }
    // Field vectors gather here, then go into the matrix a chunk at a time.
    let chunk: Float32Array | undefined;
    let held = 0;
    let i = 0;
    for await (const { record } of records) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      if (i >= n) {
        i++;
        break;
      }
      if (this.field !== undefined) {
        const v = this.#vectorOf(record.value, file, record.line);
        if (matrix === undefined || chunk === undefined) {
          options.fits?.(v.length);
          matrix = alloc(n, v.length);
          chunk = new Float32Array(Math.min(n, Math.max(1, Math.floor(CHUNK_BYTES / (4 * v.length)))) * v.length);
        }
        chunk.set(v, held * v.length);
        if (++held * v.length === chunk.length) {
          writeRows(matrix, i + 1 - held, chunk);
          held = 0;
        }
      }
      lines[i] = record.line;
      i++;
      if (i % 2048 === 0) options.onProgress?.(i);
    }
    if (i !== n)
      throw new InputError(
        { file },
        `the file changed while it was being read (${n} records at first, then ${i > n ? 'more' : i})`,
      );
    if (held > 0) writeRows(matrix!, n - held, chunk!.subarray(0, held * this.dim));
    options.onProgress?.(n);
    return { matrix: matrix ?? alloc(n, this.dim), lines };
  }

  /** Reference vectors by text (only texts of the bound reference files). */
  async embed(texts: string[]): Promise<Float32Array> {
    const dim = this.dim;
    const out = new Float32Array(texts.length * dim);
    texts.forEach((t, i) => {
      const hit = this.#refs.get(hashText(t).toString('latin1'));
      if (hit === undefined) {
        throw new OptionError(
          'ERR_OPTION',
          `no precomputed vector for text ${i} (${JSON.stringify(t.slice(0, 60))}...): precomputed vectors cannot embed new text; use ${TEXT_MODELS}`,
          { index: i },
        );
      }
      if (hit.v.length !== dim) {
        throw new ShapeError(
          'ERR_SHAPE',
          `embedding dimension mismatch: the reference ${hit.source} has ${hit.v.length}-dimensional vectors, the dataset ${dim}-dimensional`,
        );
      }
      out.set(hit.v, i * dim);
    });
    return out;
  }
}
