// Atomic file writes: write a temporary file in the destination's directory,
// fsync it, rename it over the destination. Readers see the old file or the
// new one, never a torn one; on any error or abort the temporary file is
// removed and the destination is left as it was.
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { AbortError, IoError } from '../errors.js';

export type Chunk = string | Uint8Array;

export interface AtomicWriter {
  /** The destination. */
  readonly path: string;
  /** The temporary file being written (`.<name>.<pid>.<random>.tmp` next to the destination). */
  readonly tempPath: string;
  /** Appends data (buffered; strings are written as UTF-8). */
  write(data: Chunk): Promise<void>;
  /** Flushes, fsyncs and renames the temporary file over the destination. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file; the destination is untouched. Safe to call twice. */
  abort(): Promise<void>;
}

const FLUSH_BYTES = 1 << 20;

function wrap(path: string, err: unknown, verb: string): unknown {
  if (err instanceof IoError || err instanceof AbortError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new IoError(`cannot ${verb} ${path}: ${message}`, { path, cause: err });
}

/** Opens an atomic writer for `path`; nothing appears at `path` before `commit`. */
export async function openAtomicWriter(path: string): Promise<AtomicWriter> {
  const dest = resolve(path);
  const tempPath = join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tempPath, 'wx');
    // Keep an existing destination's permissions.
    const mode = await stat(dest).then((s) => s.mode & 0o7777, () => undefined);
    if (mode !== undefined) await handle.chmod(mode);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (handle) await rm(tempPath, { force: true }).catch(() => undefined);
    throw wrap(path, err, 'write');
  }
  const file = handle;
  let pending: Chunk[] = [];
  let pendingBytes = 0;
  let state: 'open' | 'committed' | 'aborted' = 'open';

  const flush = async () => {
    if (pending.length === 0) return;
    // One write per flush: many small writes cost a thread-pool round trip each.
    const bytes = pending.every((c) => typeof c === 'string')
      ? Buffer.from(pending.join(''), 'utf8')
      : Buffer.concat(pending.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c)));
    pending = [];
    pendingBytes = 0;
    for (let off = 0; off < bytes.byteLength; ) off += (await file.write(bytes, off, bytes.byteLength - off)).bytesWritten;
  };
  const abort = async () => {
    if (state !== 'open') return;
    state = 'aborted';
    pending = [];
    await file.close().catch(() => undefined);
    await rm(tempPath, { force: true }).catch(() => undefined);
  };

  return {
    path,
    tempPath,
    async write(data) {
      if (state !== 'open') throw new IoError(`the writer of ${path} is already ${state}`, { path });
      pending.push(data);
      pendingBytes += typeof data === 'string' ? data.length : data.byteLength;
      if (pendingBytes >= FLUSH_BYTES) {
        try {
          await flush();
        } catch (err) {
          await abort();
          throw wrap(path, err, 'write');
        }
      }
    },
    async commit() {
      if (state !== 'open') throw new IoError(`the writer of ${path} is already ${state}`, { path });
      try {
        await flush();
        await file.sync();
        await file.close();
        state = 'committed';
        await rename(tempPath, dest);
      } catch (err) {
        if (state === 'committed') await rm(tempPath, { force: true }).catch(() => undefined);
        else await abort();
        throw wrap(path, err, 'write');
      }
      await syncDir(dirname(dest));
    },
    abort,
  };
}

/** Makes a rename durable; not possible (nor needed) on every platform, so failures are ignored. */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r').catch(() => undefined);
  if (!d) return;
  await d.sync().catch(() => undefined);
  await d.close().catch(() => undefined);
}

/**
 * Runs `fn` with an atomic writer: commits when it resolves, removes the
 * temporary file when it throws (or `signal` aborts), and rethrows.
 */
export async function withAtomicWriter<T>(path: string, fn: (w: AtomicWriter) => Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal?.aborted) throw new AbortError();
  const w = await openAtomicWriter(path);
  try {
    const result = await fn(w);
    if (signal?.aborted) throw new AbortError();
    await w.commit();
    return result;
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/** Writes a whole file atomically. */
export async function writeFileAtomic(path: string, data: Chunk | readonly Chunk[]): Promise<void> {
  await withAtomicWriter(path, async (w) => {
    for (const c of typeof data === 'string' || data instanceof Uint8Array ? [data] : data) await w.write(c);
  });
}

/**
 * Throws `IoError` when `output` is the same file as `input` (by real path,
 * or by device and inode for hard links), so an input is never overwritten.
 */
export async function assertNotSameFile(input: string, output: string): Promise<void> {
  const real = async (p: string) => realpath(p).catch(async () => join(await realpath(dirname(resolve(p))).catch(() => dirname(resolve(p))), basename(p)));
  const [a, b] = await Promise.all([real(input), real(output)]);
  let same = a === b;
  if (!same) {
    const [sa, sb] = await Promise.all([stat(input).catch(() => undefined), stat(output).catch(() => undefined)]);
    same = sa !== undefined && sb !== undefined && sa.dev === sb.dev && sa.ino === sb.ino;
  }
  if (same) throw new IoError(`refusing to write ${output}: it is the input file ${input}`, { path: output });
}
