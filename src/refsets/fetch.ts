// Obtains one pinned reference file: from an offline mirror (data dir), from
// the content-addressed cache, or by download from its public home. Every
// path verifies the sha256, and a download only ever becomes visible in the
// cache complete and verified (io/atomic.ts: temp file + rename).
import { createHash } from 'node:crypto';
import { type FileHandle, unlink } from 'node:fs/promises';
import { ensureDir, openRegularFile } from '../io/files.js';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { AbortError, FetchError, IoError } from '../errors.js';
import { removeStaleTemps, writeFileAtomic } from '../io/atomic.js';
import { retryAfterMs, RetryableError as Retryable, withRetries } from '../retry.js';
import type { ReferenceFile } from './registry.js';

export const DEFAULT_BASE_URL = 'https://raw.githubusercontent.com';

export interface ReferenceFetchOptions {
  /** Offline mirror laid out as `<dataDir>/<file.path>` (env `SOT_DATA_DIR`). Checked first. */
  dataDir?: string;
  /** Cache root; files go to `<cacheDir>/refsets/<sha256>` (env `SOT_CACHE_DIR`, default `$XDG_CACHE_HOME/sot` or `~/.cache/sot`). */
  cacheDir?: string;
  /** Forbid downloads (env `SOT_OFFLINE=1`). */
  offline?: boolean;
  /** Where `<repo>/<commit>/<sourcePath>` is fetched from (env `SOT_REFSETS_BASE_URL`, default raw.githubusercontent.com). */
  baseUrl?: string;
  /** Per-attempt timeout of a download, in ms (default 60 000). */
  timeoutMs?: number;
  /** Further attempts after a failed download (network error, 5xx, 408, 429, short body); default 2. */
  retries?: number;
  /** Wait before the first retry, doubled each time (with jitter, or as long as a 429/503's retry-after asks), in ms (default 500). */
  retryDelayMs?: number;
  signal?: AbortSignal;
}

/** Where a file's bytes came from. */
export type FileOrigin = 'data-dir' | 'cache' | 'download';

export interface ObtainedFile {
  file: ReferenceFile;
  bytes: Buffer;
  origin: FileOrigin;
  /** The verified file on disk ('' when a download could not be cached). */
  localPath: string;
}

function envFlag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** The cache root an option (or the environment) selects. */
export function resolveCacheDir(cacheDir?: string): string {
  const explicit = nonEmpty(cacheDir) ?? nonEmpty(process.env.SOT_CACHE_DIR);
  if (explicit !== undefined) return explicit;
  return join(nonEmpty(process.env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'sot');
}

/** Options with the environment's defaults filled in. */
export function resolveFetchOptions(o: ReferenceFetchOptions = {}) {
  return {
    dataDir: nonEmpty(o.dataDir) ?? nonEmpty(process.env.SOT_DATA_DIR),
    cacheDir: resolveCacheDir(o.cacheDir),
    offline: o.offline ?? envFlag(process.env.SOT_OFFLINE),
    baseUrl: (nonEmpty(o.baseUrl) ?? nonEmpty(process.env.SOT_REFSETS_BASE_URL) ?? DEFAULT_BASE_URL).replace(
      /\/+$/,
      '',
    ),
    timeoutMs: o.timeoutMs ?? 60_000,
    retries: o.retries ?? 2,
    retryDelayMs: o.retryDelayMs ?? 500,
    signal: o.signal,
  };
}

type Resolved = ReturnType<typeof resolveFetchOptions>;

export function fileUrl(file: ReferenceFile, baseUrl = DEFAULT_BASE_URL): string {
  return `${baseUrl}/${file.repo}/${file.commit}/${file.sourcePath}`;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The cached copy's path: content-addressed, so every set and version shares one entry per file. */
export function cachedFilePath(file: ReferenceFile, cacheDir: string): string {
  return join(cacheDir, 'refsets', file.sha256);
}

const swept = new Set<string>();

/** Removes, once per process, what downloads killed mid-write left in a cache folder. */
async function sweepOnce(dir: string): Promise<void> {
  if (swept.has(dir)) return;
  swept.add(dir);
  await removeStaleTemps(dir);
}

/**
 * The bytes of a regular file if it holds `size` bytes (`bytes` null when it
 * holds another number: not the pinned file, and not worth reading), or
 * undefined when there is none. A FIFO, a device or a folder is an IoError:
 * it would block the read or never end it.
 */
async function readIfPresent(path: string, size: number): Promise<{ bytes: Buffer | null; size: number } | undefined> {
  let fh: FileHandle;
  try {
    fh = await openRegularFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (err instanceof IoError) throw err;
    throw new IoError(`cannot read ${path}: ${(err as Error).message}`, { path, cause: err });
  }
  try {
    const actual = (await fh.stat()).size;
    return { bytes: actual === size ? await fh.readFile() : null, size: actual };
  } catch (err) {
    throw new IoError(`cannot read ${path}: ${(err as Error).message}`, { path, cause: err });
  } finally {
    await fh.close();
  }
}

/** Gets one file's verified bytes: data dir, then cache, then download (unless offline). */
export async function obtainFile(
  file: ReferenceFile,
  options: ReferenceFetchOptions = {},
  setName = '',
): Promise<ObtainedFile> {
  const o = resolveFetchOptions(options);
  const what = setName === '' ? file.path : `reference set "${setName}": ${file.path}`;

  if (o.dataDir !== undefined) {
    const path = join(o.dataDir, file.path);
    const got = await readIfPresent(path, file.bytes);
    if (got !== undefined) {
      const { bytes, size } = got;
      const actual = bytes === null ? 'not read' : sha256Hex(bytes);
      if (bytes === null || actual !== file.sha256) {
        throw new FetchError(
          `${what}: the data-dir copy ${path} does not match the pinned file: sha256 expected ${file.sha256}, actual ${actual} (${size} bytes, expected ${file.bytes})`,
        );
      }
      return { file, bytes, origin: 'data-dir', localPath: path };
    }
  }

  const cached = cachedFilePath(file, o.cacheDir);
  await sweepOnce(dirname(cached));
  const hit = (await readIfPresent(cached, file.bytes))?.bytes;
  if (hit !== undefined) {
    if (hit !== null && sha256Hex(hit) === file.sha256) return { file, bytes: hit, origin: 'cache', localPath: cached };
    // Damaged after it was written (disk, a user's edit): drop it and fetch again.
    await unlink(cached).catch(() => undefined);
  }

  const url = fileUrl(file, o.baseUrl);
  if (o.offline) {
    throw new FetchError(
      `${what} is not available offline: it is neither in the data dir (${o.dataDir ?? 'none set'}) nor in the cache (${cached}), and downloads are off. ` +
        `Point --data-dir (or SOT_DATA_DIR) at a mirror holding <dataDir>/${file.path} (sha256 ${file.sha256}, from ${url}), or run once online to fill the cache.`,
      { url },
    );
  }

  const bytes = await download(file, url, o, what);
  const localPath = await storeAtomically(cached, bytes);
  return { file, bytes, origin: 'download', localPath };
}

async function download(file: ReferenceFile, url: string, o: Resolved, what: string): Promise<Buffer> {
  try {
    return await withRetries(() => downloadOnce(file, url, o, what), {
      retries: o.retries,
      baseMs: o.retryDelayMs,
      maxDelayMs: Math.max(o.retryDelayMs, 60_000),
      signal: o.signal,
      giveUp: (last, tries) =>
        new FetchError(`${what}: download from ${url} failed after ${tries} attempt(s): ${last.message}`, {
          url,
          cause: last,
        }),
    });
  } catch (err) {
    if (err instanceof AbortError) throw new AbortError('the reference-set download was aborted', { cause: err.cause });
    throw err;
  }
}

async function downloadOnce(file: ReferenceFile, url: string, o: Resolved, what: string): Promise<Buffer> {
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal === undefined ? timeout : AbortSignal.any([o.signal, timeout]);
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    throw new Retryable(timeout.aborted ? `timed out after ${o.timeoutMs} ms` : describe(err), undefined, {
      cause: err,
    });
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    const msg = `HTTP ${res.status} ${res.statusText}`.trim();
    if (res.status >= 500 || res.status === 408 || res.status === 429)
      throw new Retryable(msg, retryAfterMs(res.headers));
    throw new FetchError(`${what}: download from ${url} failed: ${msg}`, { url });
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared !== file.bytes && res.headers.get('content-encoding') === null) {
    await res.body?.cancel().catch(() => undefined);
    throw new FetchError(`${what}: ${url} announces ${declared} bytes, the pinned file has ${file.bytes}`, { url });
  }
  const parts: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of res.body ?? []) {
      received += chunk.byteLength;
      // Never buffer more than the pinned size: a wrong URL could serve anything.
      if (received > file.bytes)
        throw new FetchError(`${what}: ${url} sent more than the pinned ${file.bytes} bytes`, { url });
      parts.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof FetchError) throw err;
    throw new Retryable(
      `${timeout.aborted ? `timed out after ${o.timeoutMs} ms` : describe(err)} after ${received} of ${file.bytes} bytes`,
      undefined,
      { cause: err },
    );
  }
  if (received !== file.bytes) throw new Retryable(`truncated body: ${received} of ${file.bytes} bytes`);
  const bytes = Buffer.concat(parts, received);
  const actual = sha256Hex(bytes);
  if (actual !== file.sha256) {
    throw new FetchError(
      `${what}: the file downloaded from ${url} does not match the pinned file: sha256 expected ${file.sha256}, actual ${actual}`,
      { url },
    );
  }
  return bytes;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/**
 * Writes verified bytes to `path` atomically (io/atomic.ts), so no reader (or
 * a crash) ever sees a partial file there. A cache that cannot be written is
 * a warning, not a failure: the bytes are in hand.
 */
async function storeAtomically(path: string, bytes: Buffer): Promise<string> {
  try {
    await ensureDir(dirname(path));
    await writeFileAtomic(path, bytes);
    return path;
  } catch (err) {
    const cause = (err as Error).cause;
    process.emitWarning(
      `sot: could not cache ${path}: ${cause instanceof Error ? cause.message : (err as Error).message}`,
    );
    return '';
  }
}
