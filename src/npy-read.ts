import { readFile } from 'node:fs/promises';
import { InputError, IoError } from './errors.js';

export interface NpyMatrix {
  /** Row-major `rows x cols`, converted to float32 when the file holds float64. */
  data: Float32Array;
  rows: number;
  cols: number;
  /** The file's dtype: `<f4` or `<f8` (`>` forms are byte-swapped on read). */
  dtype: string;
}

/**
 * Reads a NumPy `.npy` file holding a 2-D (rows x dim) float32 or float64
 * matrix in C order, format version 1.x, 2.x or 3.x. Any
 * other dtype, Fortran order, a rank other than 2, a truncated body or a
 * non-finite value is an `InputError` naming the file; an unreadable file an
 * `IoError`.
 */
export async function readNpy(path: string): Promise<NpyMatrix> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new IoError(`cannot read ${path}: ${(err as Error).message}`, { path, cause: err });
  }
  return parseNpy(buf, path);
}

/** Parses the bytes of a `.npy` file (see `readNpy`); `path` names it in errors. */
export function parseNpy(buf: Uint8Array, path = '<npy>'): NpyMatrix {
  const bad = (what: string) => new InputError({ file: path }, `not a usable .npy matrix: ${what}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad('missing the \\x93NUMPY magic');
  const major = b[6]!;
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = b.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (b.length < 12) throw bad('truncated header');
    headerLen = b.readUInt32LE(8);
    start = 12;
  } else {
    throw bad(`unsupported format version ${major}.${b[7]}`);
  }
  if (start + headerLen > b.length) throw bad('truncated header');
  const header = b.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw bad(`unreadable header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') throw bad('Fortran (column-major) order; save it with np.ascontiguousarray(x) first');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`shape (${shapeText.trim()}) is not 2-D (rows, dim)`);
  }
  const [rows, cols] = shape as [number, number];
  const width = descr === '<f4' || descr === '>f4' ? 4 : descr === '<f8' || descr === '>f8' ? 8 : 0;
  if (width === 0) throw bad(`dtype ${descr} (only float32 and float64 are supported)`);
  const body = start + headerLen;
  const count = rows * cols;
  if (b.length - body < count * width)
    throw bad(`the body holds ${b.length - body} bytes, ${rows} x ${cols} ${descr} needs ${count * width}`);
  const little = descr[0] === '<';
  const data = new Float32Array(count);
  const view = new DataView(b.buffer, b.byteOffset + body, count * width);
  for (let i = 0; i < count; i++) {
    const v = width === 4 ? view.getFloat32(4 * i, little) : view.getFloat64(8 * i, little);
    if (!Number.isFinite(v)) {
      throw new InputError(
        { file: path },
        `row ${Math.floor(i / Math.max(cols, 1))}, column ${i % cols} is not finite (${v})`,
        { index: Math.floor(i / cols) },
      );
    }
    // float64 values beyond the float32 range become infinite: as bad as a NaN.
    data[i] = v;
    if (!Number.isFinite(data[i]!))
      throw new InputError({ file: path }, `row ${Math.floor(i / cols)}, column ${i % cols} (${v}) overflows float32`, {
        index: Math.floor(i / cols),
      });
  }
  return { data, rows, cols, dtype: descr };
}
