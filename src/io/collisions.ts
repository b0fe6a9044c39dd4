// Output paths that would overwrite a file the run reads or another of its
// outputs. Paths are compared after symlinks and `..` (real paths), and by
// device and inode, so a hard link is caught too.
import { realpath, stat } from 'node:fs/promises';
import { devNull } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { IoError } from '../errors.js';

/** A path and what it is to the run, for messages: `{ path: 'a.csv', what: 'the scores output' }`. */
export interface RolePath {
  path: string;
  what: string;
}

/** What a path names on disk now. */
export interface FileIdentity extends RolePath {
  /** Real path (the file's, or its real folder's plus its name when it does not exist yet). */
  real: string;
  /** 'missing', a regular 'file', a 'folder', or 'other' (a pipe, a device, a socket). */
  kind: 'missing' | 'file' | 'folder' | 'other';
  /** The null device (`/dev/null`): writing to it keeps nothing and harms nothing. */
  nullDevice: boolean;
  dev?: number;
  ino?: number;
}

export async function identify(p: RolePath): Promise<FileIdentity> {
  const abs = resolve(p.path);
  const s = await stat(abs).catch(() => undefined);
  const real =
    (s?.isFile() ? await realpath(abs).catch(() => undefined) : undefined) ??
    join(await realpath(dirname(abs)).catch(() => dirname(abs)), basename(abs));
  const kind = s === undefined ? 'missing' : s.isFile() ? 'file' : s.isDirectory() ? 'folder' : 'other';
  const nul = kind === 'other' ? await stat(devNull).catch(() => undefined) : undefined;
  const nullDevice = s !== undefined && nul !== undefined && s.isCharacterDevice() && s.rdev === nul.rdev;
  return { ...p, real, kind, nullDevice, ...(s ? { dev: s.dev, ino: s.ino } : {}) };
}

/** Same file: same real path, or (both existing) same device and inode. */
export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  if (a.real === b.real) return true;
  return a.ino !== undefined && b.ino !== undefined && a.dev === b.dev && a.ino === b.ino;
}

/**
 * Throws `IoError` naming both paths when an output is one of `reads` or
 * another output (the null device aside: any number of outputs may discard
 * to it). Resolves to the outputs' identities, for checks of their kind.
 */
export async function assertNoCollision(
  outputs: readonly RolePath[],
  reads: readonly RolePath[],
): Promise<FileIdentity[]> {
  const outs = await Promise.all(outputs.map(identify));
  const ins = await Promise.all(reads.map(identify));
  for (const [i, o] of outs.entries()) {
    for (const r of ins) {
      if (sameFile(o, r))
        throw new IoError(`refusing to write ${o.what} ${o.path}: it is ${r.what} ${r.path}`, { path: o.path });
    }
    for (const other of outs.slice(0, i)) {
      if (!o.nullDevice && sameFile(o, other))
        throw new IoError(`refusing to write ${o.what} ${o.path}: it is also ${other.what} ${other.path}`, {
          path: o.path,
        });
    }
  }
  return outs;
}

/**
 * Checks, before any work, that each output can be committed through a
 * temporary file renamed into place: its folder exists, it is a regular file
 * or missing (or the null device, to discard it), and it is neither a file
 * the run reads nor another output. Throws `IoError` naming the path.
 */
export async function assertWritable(outputs: readonly RolePath[], reads: readonly RolePath[]): Promise<void> {
  for (const { path } of outputs) {
    const dir = dirname(resolve(path));
    const s = await stat(dir).catch(() => undefined);
    if (!s?.isDirectory()) throw new IoError(`cannot write ${path}: the folder ${dir} does not exist`, { path });
  }
  for (const out of await assertNoCollision(outputs, reads)) {
    if (out.kind === 'folder')
      throw new IoError(`cannot write ${out.what} ${out.path}: it is a folder`, { path: out.path });
    if (out.kind === 'other' && !out.nullDevice) {
      throw new IoError(
        `refusing to write ${out.what} ${out.path}: it is not a regular file (a pipe, a device or a socket); outputs are committed together through temporary files renamed into place, so each must name a regular file (or ${devNull}, to discard it)`,
        { path: out.path },
      );
    }
  }
}

/**
 * Throws `IoError` when `output` is the same file as `input` (by real path,
 * or by device and inode for hard links), so an input is never overwritten.
 */
export async function assertNotSameFile(input: string, output: string): Promise<void> {
  await assertNoCollision([{ path: output, what: 'the output' }], [{ path: input, what: 'the input file' }]);
}
