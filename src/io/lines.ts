// Byte-level line splitting, so that invalid UTF-8 is caught per line (a
// stream decoder would silently turn it into U+FFFD) and reported with its line.
import { checkParts } from './parts.js';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { constants } from 'node:buffer';
import { IoError, OptionError } from '../errors.js';
import { flatExcerpt } from '../text.js';

/** One line of a text file, without its line break. */
export interface Line {
  /** 1-based line number. */
  line: number;
  /** The decoded text; invalid bytes (when `badUtf8`) are replaced by U+FFFD; '' when `unreadable`. */
  text: string;
  /** The line ended with CRLF (the CR is not part of `text`). */
  crlf: boolean;
  /** The line's bytes are not valid UTF-8. */
  badUtf8: boolean;
  /** Why the line cannot be a record at all: longer than the limit, or a NUL byte (binary data). */
  unreadable?: string;
}

/**
 * Longest line (and whole JSON file) read by default. A line is decoded into
 * one string: V8 refuses strings past MAX_LINE_BYTES, and its decoder kills
 * the process on inputs of 2 GiB, so a line must be refused before that.
 */
export const DEFAULT_MAX_LINE_BYTES = 256 * 1024 * 1024;
/** The most `maxLineBytes` may be raised to: V8's longest string, which a line decodes into. */
export const MAX_LINE_BYTES = constants.MAX_STRING_LENGTH;

/** The `maxLineBytes` option, checked; the default when unset. */
export function maxLineBytes(v: unknown): number {
  if (v === undefined) return DEFAULT_MAX_LINE_BYTES;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_LINE_BYTES) {
    throw new OptionError(
      'ERR_OPTION',
      `maxLineBytes must be a whole number of bytes from 1 to ${MAX_LINE_BYTES} (the longest string V8 holds), got ${String(v)}`,
    );
  }
  return v;
}

/** The message for a line (or JSON file) over the limit. */
export function tooLongMessage(what: string, limit: number): string {
  return `${what} is longer than ${limit} bytes, the maxLineBytes limit${limit < MAX_LINE_BYTES ? ` (raise it with maxLineBytes / --max-line-bytes, up to ${MAX_LINE_BYTES})` : ''}`;
}

const LF = 0x0a;
const CR = 0x0d;
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenient = new TextDecoder('utf-8', { ignoreBOM: true });

function decode(bytes: Buffer, line: number): Line {
  if (line === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  const crlf = bytes.length > 0 && bytes[bytes.length - 1] === CR;
  if (crlf) bytes = bytes.subarray(0, bytes.length - 1);
  // No text format holds a raw NUL: it is binary data (or a file with a hole), never a blank line.
  const nul = bytes.indexOf(0);
  if (nul !== -1)
    return {
      line,
      text: '',
      crlf,
      badUtf8: false,
      unreadable: `line holds a NUL byte at column ${nul + 1} (byte ${nul + 1} of the line): not text`,
    };
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

/** A part of a file that starts and ends at line starts: bytes `start <= b < end`, the first line numbered `line`. */
export interface ByteRange {
  start: number;
  end: number;
  line: number;
}

/**
 * Streams the lines of a file (LF or CRLF; a UTF-8 BOM on line 1 is dropped),
 * or of a `range` of it (only its bytes are read; lines keep their numbers in
 * the file). Only the current line is held in memory, and at most `limit`
 * bytes of it: a longer line is reported (`unreadable`) as soon as it passes
 * the limit, and the rest of it is skipped unread into memory.
 */
export async function* readLines(
  path: string,
  file = path,
  limit = DEFAULT_MAX_LINE_BYTES,
  range?: ByteRange,
): AsyncGenerator<Line> {
  let pending: Buffer[] = [];
  let held = 0; // bytes in pending
  let skipping = false; // inside a line already reported as too long
  let line = range ? range.line - 1 : 0;
  if (range && range.end <= range.start) return;
  const stream = range
    ? createReadStream(path, { highWaterMark: 1 << 20, start: range.start, end: range.end - 1 })
    : createReadStream(path, { highWaterMark: 1 << 20 });
  const tooLong = (): Line => {
    pending = [];
    held = 0;
    return { line: ++line, text: '', crlf: false, badUtf8: false, unreadable: tooLongMessage('line', limit) };
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(LF); nl !== -1; nl = chunk.indexOf(LF, start)) {
        const piece = chunk.subarray(start, nl);
        start = nl + 1;
        if (skipping) {
          skipping = false;
          continue;
        }
        if (held + piece.length > limit) {
          yield tooLong();
          continue;
        }
        const bytes = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        held = 0;
        yield decode(bytes, ++line);
      }
      if (start < chunk.length && !skipping) {
        const rest = chunk.subarray(start);
        if (held + rest.length > limit) {
          skipping = true;
          yield tooLong();
        } else {
          pending.push(rest);
          held += rest.length;
        }
      }
    }
  } catch (err) {
    throw ioError(file, err);
  }
  if (pending.length > 0) yield decode(Buffer.concat(pending), ++line);
}

/**
 * Splits a file into `parts` byte ranges at line starts: part `s` begins at
 * the first line that starts at or after byte `s * size / parts` (a line is in
 * the part where its first byte lies), with its true line number. One raw
 * pass over the bytes (counting line feeds, nothing decoded). Parts may be
 * empty (`start === end`) when lines are longer than a part. For JSON Lines:
 * a CSV line may continue a quoted field (split those with `recordRanges`).
 */
export async function lineRanges(path: string, parts: number, file = path): Promise<ByteRange[]> {
  checkParts(parts);
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw ioError(file, err);
  }
  const want = Array.from({ length: parts }, (_, s) => Math.floor((s * size) / parts));
  // Each boundary b > 0 resyncs to just after the first LF at or after b - 1.
  const starts: { byte: number; line: number }[] = [{ byte: 0, line: 1 }];
  let next = 1; // the boundary sought
  let lfs = 0; // line feeds before the chunk
  let at = 0; // the chunk's offset in the file
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      let from = 0;
      while (next < parts) {
        const b = want[next]!;
        if (b === 0) {
          starts[next++] = { byte: 0, line: 1 };
          continue;
        }
        if (b - 1 >= at + chunk.length) break; // in a later chunk
        const nl = chunk.indexOf(LF, Math.max(from, b - 1 - at));
        if (nl === -1) break;
        // count the line feeds up to and including nl
        for (let i = chunk.indexOf(LF, from); i !== -1 && i <= nl; i = chunk.indexOf(LF, i + 1)) lfs++;
        from = nl + 1;
        const byte = at + nl + 1;
        while (next < parts && want[next]! - 1 <= at + nl) starts[next++] = { byte, line: lfs + 1 };
      }
      for (let i = chunk.indexOf(LF, from); i !== -1; i = chunk.indexOf(LF, i + 1)) lfs++;
      at += chunk.length;
    }
  } catch (err) {
    throw ioError(file, err);
  }
  while (next < parts) starts[next++] = { byte: size, line: lfs + 1 };
  return starts.map((s, i) => ({
    start: s.byte,
    end: i + 1 < parts ? starts[i + 1]!.byte : size,
    line: s.line,
  }));
}

/** A short, single-line excerpt of a text for error messages. */
export function excerpt(text: string, max = 60): string {
  return JSON.stringify(flatExcerpt(text, max + 1));
}
