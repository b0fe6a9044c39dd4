import { open } from 'node:fs/promises';
import { AbortError, InputError, IoError } from './errors.js';
import { type AnyMatrix, arrayMatrix, writeRows } from './matrix.js';

export interface NpyMatrix {
  /** Row-major `rows x cols`, converted to float32 when the file holds float64. */
  data: Float32Array;
  rows: number;
  cols: number;
  /** The file's dtype: `<f4` or `<f8` (`>` forms are byte-swapped on read). */
  dtype: string;
}

/** Where a `.npy` file's matrix sits and how it is encoded. */
export interface NpyLayout {
  rows: number;
  cols: number;
  /** `<f4`, `>f4`, `<f8` or `>f8`. */
  dtype: string;
  /** Byte offset of the body (row 0, column 0). */
  body: number;
}

/** Bytes of the body read and converted at a time when streaming. */
const CHUNK_BYTES = 8 * 1024 ** 2;

/**
 * Reads a NumPy `.npy` file holding a 2-D (rows x dim) float32 or float64
 * matrix in C order, format version 1.x, 2.x or 3.x. Any
 * other dtype, Fortran order, a rank other than 2, a truncated body or a
 * non-finite value is an `InputError` naming the file; an unreadable file an
 * `IoError`.
 */
export async function readNpy(path: string): Promise<NpyMatrix> {
  const { matrix, layout } = await readNpyRows(path, arrayMatrix);
  return { ...matrix, dtype: layout.dtype };
}

/**
 * Streams a `.npy` matrix (as `readNpy` reads it) into the matrix `alloc`
 * makes for its shape, a few MiB at a time: the file is never held whole, so
 * a matrix in native memory (`storedMatrix`) is the only copy. `check` sees
 * the layout before anything is allocated and may refuse it by throwing.
 */
export async function readNpyRows<M extends AnyMatrix>(
  path: string,
  alloc: (rows: number, cols: number) => M,
  options: { check?: (layout: NpyLayout) => void; signal?: AbortSignal } = {},
): Promise<{ matrix: M; layout: NpyLayout }> {
  const guard = <T>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      throw new IoError(`cannot read ${path}: ${(err as Error).message}`, { path, cause: err });
    });
  const file = await guard(open(path, 'r'));
  try {
    const read = async (buf: Buffer, at: number): Promise<Buffer> =>
      buf.subarray(0, (await guard(file.read(buf, 0, buf.length, at))).bytesRead);
    const { size } = await guard(file.stat());
    // The fixed part names the header's length; then the header itself.
    const fixed = await read(Buffer.alloc(12), 0);
    const headerEnd = npyHeaderEnd(fixed, path);
    const layout = parseNpyHeader(await read(Buffer.alloc(Math.min(headerEnd, size)), 0), path, size);
    options.check?.(layout);
    const matrix = alloc(layout.rows, layout.cols);
    const rowBytes = layout.cols * widthOf(layout.dtype);
    const chunkRows = rowBytes === 0 ? layout.rows : Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
    const bytes = Buffer.alloc(Math.min(chunkRows, layout.rows) * rowBytes);
    const values = new Float32Array(Math.min(chunkRows, layout.rows) * layout.cols);
    for (let row = 0; row < layout.rows && rowBytes > 0; row += chunkRows) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      const k = Math.min(chunkRows, layout.rows - row);
      const got = await read(bytes.subarray(0, k * rowBytes), layout.body + row * rowBytes);
      // The file shrank since its size was read.
      if (got.length < k * rowBytes) throw new InputError({ file: path }, 'the file changed while it was being read');
      decodeNpy(got, layout, row, values.subarray(0, k * layout.cols), path);
      writeRows(matrix, row, values.subarray(0, k * layout.cols));
    }
    return { matrix, layout };
  } finally {
    await file.close().catch(() => undefined);
  }
}

/** Parses the bytes of a `.npy` file (see `readNpy`); `path` names it in errors. */
export function parseNpy(buf: Uint8Array, path = '<npy>'): NpyMatrix {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const layout = parseNpyHeader(b, path, b.length);
  const data = new Float32Array(layout.rows * layout.cols);
  decodeNpy(b.subarray(layout.body), layout, 0, data, path);
  return { data, rows: layout.rows, cols: layout.cols, dtype: layout.dtype };
}

const bad = (path: string, what: string) => new InputError({ file: path }, `not a usable .npy matrix: ${what}`);

/** Bytes per value of a supported dtype (`<f4`, `>f4`, `<f8`, `>f8`); 0 for any other. */
function widthOf(dtype: string): 0 | 4 | 8 {
  return /^[<>]f4$/.test(dtype) ? 4 : /^[<>]f8$/.test(dtype) ? 8 : 0;
}

/** From the first 12 bytes (fewer if the file is shorter): where the header ends. */
function npyHeaderEnd(b: Buffer, path: string): number {
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad(path, 'missing the \\x93NUMPY magic');
  const major = b[6]!;
  if (major === 1) return 10 + b.readUInt16LE(8);
  if (major === 2 || major === 3) {
    if (b.length < 12) throw bad(path, 'truncated header');
    return 12 + b.readUInt32LE(8);
  }
  throw bad(path, `unsupported format version ${major}.${b[7]}`);
}

/** The layout from the file's first bytes (through the header); `size` is the file's length. */
function parseNpyHeader(b: Buffer, path: string, size: number): NpyLayout {
  const end = npyHeaderEnd(b, path);
  if (end > b.length) throw bad(path, 'truncated header');
  const major = b[6]!;
  const header = b.toString(major === 3 ? 'utf8' : 'latin1', major === 1 ? 10 : 12, end);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw bad(path, `unreadable header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') throw bad(path, 'Fortran (column-major) order; save it with np.ascontiguousarray(x) first');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(path, `shape (${shapeText.trim()}) is not 2-D (rows, dim)`);
  }
  const [rows, cols] = shape as [number, number];
  const width = widthOf(descr);
  if (width === 0) throw bad(path, `dtype ${descr} (only float32 and float64 are supported)`);
  const need = rows * cols * width;
  if (size - end < need)
    throw bad(path, `the body holds ${size - end} bytes, ${rows} x ${cols} ${descr} needs ${need}`);
  return { rows, cols, dtype: descr, body: end };
}

/** Converts whole rows from `bytes` (row `firstRow` on) into `out`, refusing non-finite values. */
function decodeNpy(bytes: Buffer, layout: NpyLayout, firstRow: number, out: Float32Array, path: string): void {
  const { cols, dtype } = layout;
  const width = widthOf(dtype);
  const little = dtype[0] === '<';
  const view = new DataView(bytes.buffer, bytes.byteOffset, out.length * width);
  for (let i = 0; i < out.length; i++) {
    const v = width === 4 ? view.getFloat32(4 * i, little) : view.getFloat64(8 * i, little);
    const row = firstRow + Math.floor(i / cols);
    if (!Number.isFinite(v))
      throw new InputError({ file: path }, `row ${row}, column ${i % cols} is not finite (${v})`, { index: row });
    // float64 values beyond the float32 range become infinite: as bad as a NaN.
    out[i] = v;
    if (!Number.isFinite(out[i]!))
      throw new InputError({ file: path }, `row ${row}, column ${i % cols} (${v}) overflows float32`, { index: row });
  }
}
