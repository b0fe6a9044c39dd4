// Byte-level line splitting, so that invalid UTF-8 is caught per line (a
// stream decoder would silently turn it into U+FFFD) and reported with its line.
import { createReadStream } from 'node:fs';
import { IoError } from '../errors.js';

/** One line of a text file, without its line break. */
export interface Line {
  /** 1-based line number. */
  line: number;
  /** The decoded text; invalid bytes (when `badUtf8`) are replaced by U+FFFD. */
  text: string;
  /** The line ended with CRLF (the CR is not part of `text`). */
  crlf: boolean;
  /** The line's bytes are not valid UTF-8. */
  badUtf8: boolean;
}

const LF = 0x0a;
const CR = 0x0d;
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenient = new TextDecoder('utf-8', { ignoreBOM: true });

function decode(bytes: Uint8Array, line: number): Line {
  if (line === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  const crlf = bytes.length > 0 && bytes[bytes.length - 1] === CR;
  if (crlf) bytes = bytes.subarray(0, bytes.length - 1);
  try {
    return { line, text: strict.decode(bytes), crlf, badUtf8: false };
  } catch {
    return { line, text: lenient.decode(bytes), crlf, badUtf8: true };
  }
}

/** Wraps a file-system error (missing file, directory, permissions) as an `IoError`. */
export function ioError(file: string, err: unknown, verb = 'read'): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // System errors (ENOENT, EACCES, EISDIR ...) are about the file, not its content.
  if (err instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    return new IoError(`cannot ${verb} ${file}: ${err.message}`, { path: file, cause: err });
  }
  return err;
}

/**
 * Streams the lines of a file (LF or CRLF; a UTF-8 BOM on line 1 is dropped).
 * Only the current line is held in memory.
 */
export async function* readLines(path: string, file = path): AsyncGenerator<Line> {
  let pending: Uint8Array[] = [];
  let line = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(LF); nl !== -1; nl = chunk.indexOf(LF, start)) {
        const piece = chunk.subarray(start, nl);
        const bytes = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        start = nl + 1;
        yield decode(bytes, ++line);
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
  } catch (err) {
    throw ioError(file, err);
  }
  if (pending.length > 0) yield decode(Buffer.concat(pending), ++line);
}

/** A short, single-line excerpt of a text for error messages. */
export function excerpt(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max)}…` : flat);
}
