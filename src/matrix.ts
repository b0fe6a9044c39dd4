import { EmptyInputError, NonFiniteError, OptionError, ShapeError } from './errors.js';

/** A dense row-major f32 matrix: `data[i * cols + j]` is entry (i, j). */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
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

/** The rows of `a`, then those of `b` (the same number of columns). */
export function stackRows(a: Matrix, b: Matrix): Matrix {
  const data = new Float32Array((a.rows + b.rows) * a.cols);
  data.set(a.data.subarray(0, a.rows * a.cols));
  data.set(b.data.subarray(0, b.rows * b.cols), a.rows * a.cols);
  return { data, rows: a.rows + b.rows, cols: a.cols };
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
  if (typeof w.length !== 'number') throw new OptionError('ERR_OPTION', `${name} must be an array of numbers`);
  return Float64Array.from(w, (v) => (typeof v === 'number' ? v : Number.NaN));
}
