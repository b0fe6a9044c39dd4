// Atomic file writes, the one implementation every writer of SOT uses: write
// a temporary file in the destination's folder, (fsync it,) rename it over
// the destination. Readers see the old file or the new one, never a torn
// one; on any error or abort the temporary file is removed and the
// destination is left as it was. Several writers can be prepared first and
// committed together (`commitAll`), so a set of outputs changes as a unit.
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { fstat as fstatCb, type Stats } from 'node:fs';
import { type FileHandle, link, open, readdir, readlink, realpath, rename, rm, stat, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { basename, dirname, join, resolve } from 'node:path';
import { AbortError, IoError } from '../errors.js';

export type Chunk = string | Uint8Array;

export interface AtomicOptions {
  /** fsync the file before the rename and its folder after (default true). A cache that re-creates what a power cut loses can skip it. */
  durable?: boolean;
  /** Replace an existing destination (default true). With false, commit links the file into place and leaves an existing one (first writer wins). */
  replace?: boolean;
  /**
   * A destination that exists and is not a regular file (a pipe, a device,
   * `/dev/stdout`): 'refuse' it (the default: an IoError), or 'stream' to it
   * directly, with no temp file and no rename (it gets the bytes as they come).
   * A folder is always refused; a non-regular file is never renamed over.
   */
  nonRegular?: 'refuse' | 'stream';
  /** Compute the sha256 of what is written (`digest`). */
  hash?: boolean;
}

/** Size and sha256 of a written file. */
export interface FileDigest {
  bytes: number;
  sha256: string;
}

export interface AtomicWriter {
  /** The destination, as given. */
  readonly path: string;
  /** The temporary file being written (`.<name>.<pid>.<12 hex>.tmp` next to the destination); '' when streaming. */
  readonly tempPath: string;
  /** Appends data (buffered; strings are written as UTF-8). */
  write(data: Chunk): Promise<void>;
  /** Flushes, fsyncs and closes the temporary file: only the rename is left. Idempotent. */
  prepare(): Promise<void>;
  /** Prepares (if not done) and renames the temporary file over the destination. Resolves false when `replace: false` found one there. */
  commit(): Promise<boolean>;
  /** Closes and removes the temporary file; the destination is untouched. Safe to call twice, and after commit (then a no-op). */
  abort(): Promise<void>;
  /** Size and sha256 (with `hash: true`) of the bytes written; complete once prepared. */
  digest(): FileDigest;
}

const FLUSH_BYTES = 1 << 20;
const fstat = promisify(fstatCb);

/** `.<name>.<pid>.<12 hex>.tmp`: the temp files of this writer. */
const TEMP_NAME = /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/;
/** `.tmp-<pid>-<hex>`: the embedding and reference caches' temp files before they used this writer. */
const OLD_CACHE_TEMP_NAME = /^\.tmp-\d+-[0-9a-f]+$/;

/** Whether a file name is one of this writer's temporary files (or the older cache form), which a writer that died can leave. */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name) || OLD_CACHE_TEMP_NAME.test(name);
}

/** How old a temporary file must be before a sweep takes it for a dead writer's (a live write touches it far more often). */
export const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * Removes the temporary files of this writer in `dir` that were last touched
 * more than `olderThanMs` ago: what a writer killed mid-write leaves in a
 * cache. Never throws (a file already gone, or not ours to remove, is left);
 * resolves to the number removed.
 */
export async function removeStaleTemps(dir: string, olderThanMs = STALE_TEMP_MS): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!isTempName(name)) continue;
    const path = join(dir, name);
    try {
      const s = await stat(path);
      if (s.isFile() && Date.now() - s.mtimeMs > olderThanMs) {
        await unlink(path);
        removed++;
      }
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed;
}

function wrap(path: string, err: unknown, verb: string): unknown {
  if (err instanceof IoError || err instanceof AbortError) return err;
  return new IoError(`cannot ${verb} ${path}: ${reason(err)}`, { path, cause: err });
}

/**
 * A system error's reason without the paths Node puts in its message, which
 * name this writer's temporary file rather than the destination the user gave.
 */
function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return err.message;
  const what = /^E[A-Z]+: ([^,]+)/.exec(err.message)?.[1];
  return what === undefined ? code : `${what} (${code})`;
}

/**
 * Where a rename must land: the real path of the destination. A symlinked
 * output is written through its link, a dangling one too (its target is
 * created, as a shell's `>` does); links that loop are an IoError.
 */
async function renameTarget(dest: string): Promise<string> {
  const real = await realpath(dest).catch(() => undefined);
  if (real !== undefined) return real;
  let at = dest;
  for (let hops = 0; hops < MAX_LINK_HOPS; hops++) {
    const target = await readlink(at).catch(() => undefined);
    if (target === undefined) {
      // missing (the end of the links): its real folder, its name
      const dir = dirname(at);
      return join(await realpath(dir).catch(() => dir), basename(at));
    }
    at = resolve(dirname(at), target);
  }
  throw new IoError(`cannot write ${dest}: its symbolic links loop`, { path: dest });
}

/** Links followed before a chain counts as a loop (Linux's limit). */
const MAX_LINK_HOPS = 40;

/** Opens an atomic writer for `path`; nothing appears at `path` before `commit`. */
export async function openAtomicWriter(path: string, options: AtomicOptions = {}): Promise<AtomicWriter> {
  const { durable = true, replace = true, nonRegular = 'refuse' } = options;
  const given = resolve(path);
  const existing = await stat(given).catch(() => undefined);
  if (existing?.isDirectory()) throw new IoError(`cannot write ${path}: it is a folder`, { path });
  const streaming = existing !== undefined && !existing.isFile();
  if (streaming && nonRegular !== 'stream') {
    throw new IoError(
      `refusing to write ${path}: it is not a regular file (a pipe, a device or a socket), and outputs are written through a temporary file renamed into place; name a regular file`,
      { path },
    );
  }
  const dest = streaming ? given : await renameTarget(given);
  const tempPath = streaming
    ? ''
    : join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let file: Destination | undefined;
  try {
    file = streaming ? await openStream(given, existing) : await openTemp(tempPath, existing?.mode);
  } catch (err) {
    await file?.close().catch(() => undefined);
    if (!streaming) await rm(tempPath, { force: true }).catch(() => undefined);
    throw wrap(path, err, 'write');
  }
  const hash: Hash | undefined = options.hash ? createHash('sha256') : undefined;
  let bytesWritten = 0;
  let sha256 = '';
  let pending: Chunk[] = [];
  let pendingBytes = 0;
  let state: 'open' | 'prepared' | 'committed' | 'aborted' = 'open';

  const flush = async () => {
    if (pending.length === 0) return;
    // One write per flush: many small writes cost a thread-pool round trip each.
    const bytes = pending.every((c) => typeof c === 'string')
      ? Buffer.from(pending.join(''), 'utf8')
      : Buffer.concat(pending.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c)));
    pending = [];
    pendingBytes = 0;
    hash?.update(bytes);
    bytesWritten += bytes.byteLength;
    for (let off = 0; off < bytes.byteLength; ) off += await file.write(bytes, off, bytes.byteLength - off);
  };
  const abort = async () => {
    if (state === 'committed' || state === 'aborted') return;
    const wasOpen = state === 'open';
    state = 'aborted';
    pending = [];
    if (wasOpen) await file.close().catch(() => undefined);
    if (!streaming) await rm(tempPath, { force: true }).catch(() => undefined);
  };
  const prepare = async () => {
    if (state === 'prepared') return;
    if (state !== 'open') throw new IoError(`the writer of ${path} is already ${state}`, { path });
    try {
      await flush();
      if (durable && !streaming) await file.sync();
      await file.close();
      state = 'prepared';
      if (hash) sha256 = hash.digest('hex');
    } catch (err) {
      await abort();
      throw wrap(path, err, 'write');
    }
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
    prepare,
    async commit() {
      await prepare();
      let placed = true;
      try {
        if (!streaming && replace) await rename(tempPath, dest);
        else if (!streaming) {
          await link(tempPath, dest).catch((e: unknown) => {
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
            placed = false;
          });
          await rm(tempPath, { force: true });
        }
      } catch (err) {
        await abort();
        throw wrap(path, err, 'write');
      }
      state = 'committed';
      if (durable && !streaming) await syncDir(dirname(dest));
      return placed;
    },
    abort,
    digest: () => ({ bytes: bytesWritten, sha256 }),
  };
}

/** Where the bytes go: the temp file, or a non-regular destination itself. */
interface Destination {
  write(bytes: Buffer, offset: number, length: number): Promise<number>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

function fromHandle(h: FileHandle): Destination {
  return {
    write: async (b, o, l) => (await h.write(b, o, l)).bytesWritten,
    sync: () => h.sync(),
    close: () => h.close(),
  };
}

async function openTemp(tempPath: string, keepMode: number | undefined): Promise<Destination> {
  const h = await open(tempPath, 'wx');
  // Keep an existing destination's permissions.
  if (keepMode !== undefined)
    await h.chmod(keepMode & 0o7777).catch(async (err: unknown) => {
      await h.close();
      throw err;
    });
  return fromHandle(h);
}

/**
 * A pipe or device, opened for writing as it is. This process's own standard
 * output is written through process.stdout: it may be a socket, which cannot
 * be opened by path.
 */
async function openStream(path: string, s: Stats): Promise<Destination> {
  const out = await fstat(1).catch(() => undefined);
  if (out !== undefined && out.dev === s.dev && out.ino === s.ino) {
    const write = (b: Buffer, o: number, l: number) =>
      new Promise<number>((res, rej) => process.stdout.write(b.subarray(o, o + l), (err) => (err ? rej(err) : res(l))));
    return { write, sync: async () => {}, close: async () => {} };
  }
  return fromHandle(await open(path, 'w'));
}

/** Makes a rename durable; not possible (nor needed) on every platform, so failures are ignored. */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r').catch(() => undefined);
  if (!d) return;
  await d.sync().catch(() => undefined);
  await d.close().catch(() => undefined);
}

/**
 * Commits prepared writers as a unit, in the order given (put the one that
 * describes the others last). The renames take no time worth cancelling, so
 * this takes no signal. If one fails, the writers after it are aborted and
 * the IoError says which destinations were already replaced.
 */
export async function commitAll(writers: readonly AtomicWriter[]): Promise<void> {
  for (const w of writers) await w.prepare();
  const done: string[] = [];
  for (const [i, w] of writers.entries()) {
    try {
      await w.commit();
      done.push(w.path);
    } catch (err) {
      await Promise.all(writers.slice(i + 1).map((x) => x.abort()));
      const e = err as Error;
      const already =
        done.length === 0
          ? 'no output was replaced'
          : `${done.join(', ')} had already been replaced, the others were left as they were`;
      throw new IoError(`${e.message}; ${already}`, { path: w.path, cause: err });
    }
  }
}

/**
 * Runs `fn` with an atomic writer: commits when it resolves, removes the
 * temporary file when it throws (or `signal` aborts), and rethrows.
 */
export async function withAtomicWriter<T>(
  path: string,
  fn: (w: AtomicWriter) => Promise<T>,
  signal?: AbortSignal,
  options?: AtomicOptions,
): Promise<T> {
  if (signal?.aborted) throw new AbortError();
  const w = await openAtomicWriter(path, options);
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

/** Writes a whole file atomically; resolves false when `replace: false` left an existing file. */
export async function writeFileAtomic(
  path: string,
  data: Chunk | readonly Chunk[],
  options?: AtomicOptions,
): Promise<boolean> {
  const w = await openAtomicWriter(path, options);
  try {
    for (const c of typeof data === 'string' || data instanceof Uint8Array ? [data] : data) await w.write(c);
    return await w.commit();
  } catch (err) {
    await w.abort();
    throw err;
  }
}
