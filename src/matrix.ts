import { EmptyInputError, NonFiniteError, OptionError, ShapeError } from './errors.js';
import { type ExternalObject, native } from './native.js';
import { uint32 } from './options.js';

/** A dense row-major f32 matrix: `data[i * cols + j]` is entry (i, j). */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/**
 * Rows held in native memory, filled batch by batch (`storedMatrix`,
 * `writeRows`): a native call shares them where it copies a `Float32Array`
 * (which may change under a running task), so a dataset's embeddings are
 * held once while the core learns on them.
 */
export interface StoredMatrix {
  data: ExternalObject<'Rows'>;
  rows: number;
  cols: number;
}

/** A matrix in JS or in native memory. */
export type AnyMatrix = Matrix | StoredMatrix;

/** The stores this module made: what `isStored` and `toPoints` recognise. */
const STORES = new WeakSet<object>();

/** A zeroed `rows x cols` stored matrix. */
export function storedMatrix(rows: number, cols: number): StoredMatrix {
  uint32('rows', rows, true);
  uint32('cols', cols, true);
  try {
    const data = native.rowsStore(rows, cols);
    STORES.add(data);
    return { data, rows, cols };
  } catch (err) {
    throw new OptionError('ERR_OPTION', `cannot hold ${rows} x ${cols} embeddings: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** A zeroed `rows x cols` matrix in a JS array. */
export function arrayMatrix(rows: number, cols: number): Matrix {
  return { data: new Float32Array(rows * cols), rows, cols };
}

/** Copies whole rows into `m` from row `row` on. */
export function writeRows(m: AnyMatrix, row: number, values: Float32Array): void {
  uint32('row', row, true);
  if (!(values instanceof Float32Array)) throw new OptionError('ERR_OPTION', 'values must be a Float32Array');
  const end = row + (values.length === 0 ? 0 : values.length / m.cols);
  if (!Number.isInteger(end) || end > m.rows)
    throw new ShapeError(
      'ERR_SHAPE',
      `${values.length} values from row ${row} are not whole rows of ${m.cols} within the matrix's ${m.rows} rows`,
    );
  if (isStored(m)) native.rowsWrite(m.data, row, values);
  else m.data.set(values, row * m.cols);
}

export function isStored(m: AnyMatrix | MatrixLike): m is StoredMatrix {
  return !Array.isArray(m) && typeof (m as StoredMatrix).data === 'object' && STORES.has((m as StoredMatrix).data);
}

/** `toMatrix`, or a stored matrix as it is (the core checks its shape). */
export function toPoints(m: MatrixLike | StoredMatrix, name: string): AnyMatrix {
  return isStored(m) ? m : toMatrix(m, name);
}

/**
 * Copies of rows `idx` of `m`, in that order, as one row-major array: `out`
 * when given (exactly `idx.length * m.cols` long, reused from batch to batch).
 */
export function rowsOf(m: AnyMatrix, idx: ArrayLike<number>, out?: Float32Array): Float32Array {
  if (out !== undefined && out.length !== idx.length * m.cols)
    throw new ShapeError(
      'ERR_SHAPE',
      `${idx.length} rows of ${m.cols} need ${idx.length * m.cols} values, the output holds ${out.length}`,
    );
  if (isStored(m)) {
    if (out === undefined) return native.rowsGather(m.data, Uint32Array.from(idx));
    native.rowsGatherInto(m.data, Uint32Array.from(idx), out);
    return out;
  }
  const into = out ?? new Float32Array(idx.length * m.cols);
  for (let i = 0; i < idx.length; i++) into.set(m.data.subarray(idx[i]! * m.cols, (idx[i]! + 1) * m.cols), i * m.cols);
  return into;
}

/** A `Matrix`, or rows as arrays of numbers (copied into a `Matrix`). */
export type MatrixLike = Matrix | ReadonlyArray<ArrayLike<number>>;

/** Weights, one per row; uniform when omitted. Normalised to sum 1. */
export type Weights = ArrayLike<number>;

/**
 * Checks the shape of a matrix argument and converts arrays of rows.
 * A `Matrix` is passed through as is; the native call copies its data when it
 * starts, so the caller may reuse the array at once.
 */
export function toMatrix(m: MatrixLike, name: string): Matrix {
  if (Array.isArray(m)) return fromRows(m, name);
  if (typeof m !== 'object' || m === null)
    throw new OptionError(
      'ERR_OPTION',
      `${name} must be a matrix ({ data, rows, cols }) or an array of rows, got ${String(m)}`,
    );
  const { data, rows, cols } = m as Matrix;
  if (!(data instanceof Float32Array)) {
    throw new OptionError('ERR_OPTION', `${name}.data must be a Float32Array`);
  }
  for (const [k, v] of [
    ['rows', rows],
    ['cols', cols],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new OptionError('ERR_OPTION', `${name}.${k} must be a non-negative integer, got ${v}`);
    }
  }
  if (data.length !== rows * cols) {
    throw new ShapeError(
      'ERR_SHAPE',
      `${name} holds ${data.length} values but its shape is ${rows} x ${cols} = ${rows * cols}`,
    );
  }
  return { data, rows, cols };
}

/**
 * The rows of `a`, then those of `b` (the same number of columns): in a new
 * array, or with `alloc` `storedMatrix` in native memory that the core reads
 * without a copy of its own.
 */
export function stackRows(a: AnyMatrix, b: AnyMatrix): Matrix;
export function stackRows<M extends AnyMatrix>(a: AnyMatrix, b: AnyMatrix, alloc: (rows: number, cols: number) => M): M;
export function stackRows(
  a: AnyMatrix,
  b: AnyMatrix,
  alloc: (rows: number, cols: number) => AnyMatrix = arrayMatrix,
): AnyMatrix {
  const out = alloc(a.rows + b.rows, a.cols);
  copyRows(a, out, 0);
  copyRows(b, out, a.rows);
  return out;
}

/** `m` as an array: a copy of its rows when it is stored. */
export function arrayOf(m: AnyMatrix): Matrix {
  if (!isStored(m)) return m;
  const out = arrayMatrix(m.rows, m.cols);
  copyRows(m, out, 0);
  return out;
}

/** Copies every row of `from` into `into` from row `at` on (stored rows 1 MiB at a time). */
function copyRows(from: AnyMatrix, into: AnyMatrix, at: number): void {
  if (!isStored(from)) {
    writeRows(into, at, from.data.subarray(0, from.rows * from.cols));
    return;
  }
  const step = Math.max(1, Math.floor(2 ** 20 / (4 * Math.max(from.cols, 1))));
  const buffer = new Float32Array(Math.min(step, from.rows) * from.cols);
  for (let r = 0; r < from.rows; r += step) {
    const k = Math.min(step, from.rows - r);
    const part = buffer.subarray(0, k * from.cols);
    rowsOf(
      from,
      Array.from({ length: k }, (_, i) => r + i),
      part,
    );
    writeRows(into, at + r, part);
  }
}

function fromRows(rows: ReadonlyArray<ArrayLike<number>>, name: string): Matrix {
  if (rows.length === 0) throw new EmptyInputError('ERR_EMPTY', `${name} has no rows`);
  const cols = rows[0]!.length;
  const data = new Float32Array(rows.length * cols);
  rows.forEach((row, i) => {
    if (row.length !== cols) {
      throw new ShapeError('ERR_SHAPE', `${name}[${i}] has ${row.length} values but ${name}[0] has ${cols}`, {
        index: i,
      });
    }
    for (let j = 0; j < cols; j++) {
      const v = row[j]!;
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new NonFiniteError(
          'ERR_NON_FINITE',
          `${name}[${i}][${j}] is ${String(v)} (values must be finite numbers)`,
          { index: i },
        );
      }
      data[i * cols + j] = v;
    }
  });
  return { data, rows: rows.length, cols };
}

/** Copies optional weights into a Float64Array (values are checked by the core). */
export function toWeights(w: Weights | undefined, name: string): Float64Array | undefined {
  if (w === undefined) return undefined;
  if (w instanceof Float64Array) return w;
  if (typeof w !== 'object' || w === null || !Number.isInteger(w.length) || w.length < 0 || w.length > 0xffff_ffff)
    throw new OptionError('ERR_OPTION', `${name} must be an array of numbers`);
  return Float64Array.from(w, (v) => (typeof v === 'number' ? v : Number.NaN));
}
