import { type AtomicOptions, writeFileAtomic } from './io/index.js';

/**
 * Writes a row-major float32 matrix as a NumPy `.npy` file (format 1.0,
 * little-endian '<f4'), atomically.
 */
export async function writeNpy(
  path: string,
  data: Float32Array,
  rows: number,
  cols: number,
  options?: AtomicOptions,
): Promise<void> {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  // Magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64.
  const pad = 64 - ((10 + header.length + 1) % 64);
  header = `${header}${' '.repeat(pad % 64)}\n`;
  const head = Buffer.alloc(10 + header.length);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  head.write(header, 10, 'latin1');
  const body = Buffer.from(data.buffer, data.byteOffset, rows * cols * 4);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian hosts are not supported');
  await writeFileAtomic(path, [head, body], options);
}
