// File-system steps that must end: creating a folder one component at a time
// (Node's recursive mkdir loops forever where a parent exists but refuses
// children, as under /proc), and opening only regular files (opening a FIFO
// blocks until a writer comes, which may be never).
import { constants } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { join, parse, relative, resolve, sep } from 'node:path';
import { IoError } from '../errors.js';

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Creates a folder and its missing parents; at most one mkdir per path component, each checked. */
export async function ensureDir(dir: string): Promise<void> {
  const full = resolve(dir);
  if ((await stat(full).catch(() => undefined))?.isDirectory()) return;
  let at = parse(full).root;
  for (const part of relative(at, full).split(sep)) {
    at = join(at, part);
    try {
      await mkdir(at);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST')
        throw new IoError(`cannot create the folder ${dir}: ${(err as Error).message}`, { path: dir, cause: err });
    }
    const s = await stat(at).catch((err: unknown) => {
      throw new IoError(`cannot create the folder ${dir}: ${(err as Error).message}`, { path: dir, cause: err });
    });
    if (!s.isDirectory())
      throw new IoError(`cannot create the folder ${dir}: ${at} exists and is not a folder`, { path: dir });
  }
}

/**
 * Opens a file for reading if it is a regular file; throws `IoError` for
 * anything else (a FIFO, a device, a folder) without blocking on it.
 * File-system errors (ENOENT ...) are thrown as they are.
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; regular files ignore it.
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw new IoError(`${path} is not a regular file`, { path });
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The bytes of a regular file (see `openRegularFile`). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const fh = await openRegularFile(path);
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}
