// The embedding cache's chunk file: one `put` batch, immutable once renamed
// into place. Little-endian layout:
//   0  magic "SOTEMBC\0"   8  version u32   12  dim u32   16  count u32   20  reserved u32
//   24 count x 32-byte text hashes
//      count x dim f32 vectors
//      32-byte sha256 of everything before it (also the file's name)
// The header and the file size tell a complete chunk from a truncated one
// without reading the vectors; the checksum is verified whenever vectors are read.
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { HASH_BYTES } from './cache-index.js';

export const CHUNK_MAGIC = Buffer.from('SOTEMBC\0', 'latin1');
export const CHUNK_VERSION = 1;
export const HEADER_BYTES = 24;
export const CHUNK_SUFFIX = '.chunk';

// Float32Array views read and write the file's little-endian floats directly on little-endian hosts.
const NATIVE_LE = endianness() === 'LE';

function floatView(bytes: Buffer, offset: number, length: number): Float32Array | undefined {
  const at = bytes.byteOffset + offset;
  return NATIVE_LE && at % 4 === 0 ? new Float32Array(bytes.buffer, at, length) : undefined;
}

export interface ChunkHeader {
  dim: number;
  count: number;
}

export function chunkBytes(dim: number, count: number): number {
  return HEADER_BYTES + count * HASH_BYTES + count * dim * 4 + HASH_BYTES;
}

export function vectorsOffset(count: number): number {
  return HEADER_BYTES + count * HASH_BYTES;
}

/** Serialises a batch; returns the bytes and their checksum (hex), which names the file. */
export function encodeChunk(hashes: Uint8Array, vectors: Float32Array, dim: number): { bytes: Buffer; name: string } {
  const count = hashes.length / HASH_BYTES;
  const total = chunkBytes(dim, count);
  const bytes = Buffer.alloc(total);
  CHUNK_MAGIC.copy(bytes, 0);
  bytes.writeUInt32LE(CHUNK_VERSION, 8);
  bytes.writeUInt32LE(dim, 12);
  bytes.writeUInt32LE(count, 16);
  bytes.set(hashes, HEADER_BYTES);
  const v = vectorsOffset(count);
  const view = floatView(bytes, v, vectors.length);
  if (view !== undefined) view.set(vectors);
  else for (let i = 0; i < vectors.length; i++) bytes.writeFloatLE(vectors[i]!, v + 4 * i);
  const digest = createHash('sha256')
    .update(bytes.subarray(0, total - HASH_BYTES))
    .digest();
  digest.copy(bytes, total - HASH_BYTES);
  return { bytes, name: digest.toString('hex') + CHUNK_SUFFIX };
}

/** The header of a chunk whose size matches it, or a reason why it is no chunk. */
export function parseHeader(head: Buffer, fileSize: number): ChunkHeader | string {
  if (head.length < HEADER_BYTES || !head.subarray(0, 8).equals(CHUNK_MAGIC)) return 'not a chunk file (bad magic)';
  const version = head.readUInt32LE(8);
  if (version !== CHUNK_VERSION) return `unsupported chunk version ${version}`;
  const dim = head.readUInt32LE(12);
  const count = head.readUInt32LE(16);
  if (dim === 0 || count === 0) return 'empty chunk header';
  const want = chunkBytes(dim, count);
  if (fileSize !== want) return `truncated or padded: ${fileSize} bytes, the header implies ${want}`;
  return { dim, count };
}

/** Whether a whole chunk's bytes match its trailing checksum. */
export function verifyChunk(bytes: Buffer): boolean {
  if (bytes.length < HEADER_BYTES + HASH_BYTES) return false;
  const end = bytes.length - HASH_BYTES;
  const digest = createHash('sha256').update(bytes.subarray(0, end)).digest();
  return digest.equals(bytes.subarray(end));
}

/** A verified chunk's vectors, as a view where the host allows one. */
export function vectorsOf(bytes: Buffer, header: ChunkHeader): Float32Array | undefined {
  return floatView(bytes, vectorsOffset(header.count), header.count * header.dim);
}

/** Copies row `row` of a verified chunk's vectors into `out` at `outOffset`. */
export function readVector(
  bytes: Buffer,
  floats: Float32Array | undefined,
  header: ChunkHeader,
  row: number,
  out: Float32Array,
  outOffset: number,
): void {
  const dim = header.dim;
  if (floats !== undefined) {
    const base = row * dim;
    for (let j = 0; j < dim; j++) out[outOffset + j] = floats[base + j]!;
    return;
  }
  const base = vectorsOffset(header.count) + row * dim * 4;
  for (let j = 0; j < dim; j++) out[outOffset + j] = bytes.readFloatLE(base + 4 * j);
}
