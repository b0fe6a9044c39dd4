// Byte ranges of a dataset file at record starts, so that shards read only
// their part. In JSON Lines every line start is one (`lineRanges`); in CSV and
// TSV a line may continue a quoted field, and whether it does depends on every
// byte before it, so the split points come from one sequential scan of the
// quoting from the file's start: raw bytes, nothing decoded or parsed.
import { checkParts } from './parts.js';
import { open } from 'node:fs/promises';
import { AbortError, OptionError } from '../errors.js';
import { resolveFormat } from './format.js';
import { type ByteRange, ioError, lineRanges, maxLineBytes } from './lines.js';
import type { FileFormat } from './types.js';

/** The formats a dataset can be split into by byte range. */
export const RANGE_FORMATS: readonly FileFormat[] = ['jsonl', 'csv', 'tsv'];

export interface RecordRangesOptions {
  /** File format; default from the extension, as `openDataset` settles it. */
  format?: FileFormat;
  /** The `maxLineBytes` the ranges will be read with (a longer line ends a CSV row, so it moves boundaries). Default 256 MiB. */
  maxLineBytes?: number;
  /** Cancels the scan. */
  signal?: AbortSignal;
}

/**
 * Splits a JSON Lines, CSV or TSV file into `parts` byte ranges that start at
 * record starts, each readable alone with `openDataset(path, { range })`:
 * part `s` begins at the first record that starts at or after `s / parts` of
 * the way through the records' bytes, with its true line number. CSV and TSV
 * ranges cover the rows after the header (a range read parses the header from
 * the file's start). Parts may be empty (`start === end`). JSON and Parquet
 * files are refused (`OptionError`): read them by record index.
 */
export async function recordRanges(
  path: string,
  parts: number,
  options: RecordRangesOptions = {},
): Promise<ByteRange[]> {
  checkParts(parts);
  const limit = maxLineBytes(options.maxLineBytes);
  const format = await resolveFormat(path, options.format, limit);
  switch (format) {
    case 'jsonl':
      return lineRanges(path, parts);
    case 'csv':
      return csvRanges(path, parts, ',', limit, options.signal);
    case 'tsv':
      return csvRanges(path, parts, '\t', limit, options.signal);
    default:
      throw new OptionError(
        'ERR_OPTION',
        `byte ranges split ${RANGE_FORMATS.join(', ')} files only, ${path} is ${format} (read it by record index)`,
      );
  }
}

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const CHUNK = 1 << 20;

/**
 * The CSV reader's row boundaries (src/io/csv.ts), found from bytes alone. A
 * quote opens a quoted field only at a field's start (a line's start, after
 * the BOM on line 1, or after a delimiter outside quotes); elsewhere it is
 * literal. Inside a quoted field `""` is a quote and any other quote closes
 * the field; whatever follows up to the next delimiter is unquoted text. A
 * row ends at a line feed outside quotes, and at the end of any line the
 * reader refuses (a NUL byte, longer than `limit`), since the reader ends the
 * row there too. All the bytes that matter are ASCII, which UTF-8 (even
 * invalid UTF-8, decoded leniently) never hides inside another character.
 */
export async function csvRanges(
  path: string,
  parts: number,
  delimiter: ',' | '\t',
  limit: number,
  signal?: AbortSignal,
  chunk = CHUNK, // smaller in tests, to put a read boundary at every byte
): Promise<ByteRange[]> {
  const delim = delimiter.charCodeAt(0);
  const starts: { byte: number; line: number }[] = [];
  let want: number[] = [];
  let size = 0;
  // A record starts at `byte`: it opens every part whose target it reaches.
  const recordStart = (byte: number, line: number) => {
    while (starts.length < parts && want[starts.length]! <= byte) starts.push({ byte, line });
  };
  let file: Awaited<ReturnType<typeof open>> | undefined;
  try {
    file = await open(path, 'r');
    size = (await file.stat()).size;
    const buf = Buffer.alloc(Math.max(chunk, 3));
    let at = 0; // the chunk's offset in the file
    let line = 1;
    let lineStart = 0;
    let fieldStart = 0; // where the current line's first field starts (after a BOM on line 1)
    let began = false; // the current line began inside a quoted field
    let quoted = false;
    let pendingQuote = false; // a quote inside a quoted field ended the last chunk
    let nul = false; // the current line holds a NUL byte
    let prev = -1; // the byte before the chunk
    let header = false; // the header row has ended
    await file.read(buf, 0, 3, 0);
    if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) fieldStart = 3;
    for (;;) {
      if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
      const { bytesRead } = await file.read(buf, 0, chunk, at);
      if (bytesRead === 0) break;
      const b = buf.subarray(0, bytesRead);
      let i = 0;
      if (pendingQuote) {
        pendingQuote = false;
        if (b[0] === QUOTE)
          i = 1; // `""`: still inside
        else quoted = false;
      }
      let nq = -2; // the next quote at or after i, -1 for none in the chunk
      let nn = -2; // the next NUL likewise
      for (;;) {
        const nl = b.indexOf(LF, i);
        const end = nl === -1 ? b.length : nl;
        if (!nul && nn !== -1) {
          if (nn < i) nn = b.indexOf(0, i);
          if (nn !== -1 && nn < end) nul = true;
        }
        for (;;) {
          if (nq !== -1 && nq < i) nq = b.indexOf(QUOTE, i);
          if (nq === -1 || nq >= end) break;
          const q = nq;
          if (quoted) {
            if (q + 1 === b.length) {
              pendingQuote = true; // the next byte decides
              i = b.length;
              break;
            }
            if (b[q + 1] === QUOTE)
              i = q + 2; // `""`
            else {
              quoted = false;
              i = q + 1;
            }
          } else {
            const before = q === 0 ? prev : b[q - 1];
            if (at + q === fieldStart || before === delim) quoted = true;
            i = q + 1;
          }
        }
        if (nl === -1) break;
        // the line [lineStart, at + nl) ends
        const e = at + nl;
        const unreadable = nul || e - lineStart > limit;
        if (unreadable) quoted = false;
        if (!quoted) {
          const last = nl === 0 ? prev : b[nl - 1];
          const blank = !began && !unreadable && e - (last === CR ? 1 : 0) <= fieldStart;
          if (header) recordStart(e + 1, line + 1);
          else if (!blank) {
            header = true;
            const data = e + 1;
            want = Array.from({ length: parts }, (_, s) => data + Math.floor((s * (size - data)) / parts));
            recordStart(data, line + 1);
          }
        }
        line++;
        lineStart = fieldStart = e + 1;
        began = quoted;
        nul = false;
        i = nl + 1;
      }
      prev = b[b.length - 1]!;
      at += b.length;
    }
    // the parts not yet started (all of them without a complete header row) start at the end
    while (starts.length < parts) starts.push({ byte: size, line });
  } catch (err) {
    throw ioError(path, err);
  } finally {
    await file?.close();
  }
  return starts.map((s, i) => ({ start: s.byte, end: i + 1 < parts ? starts[i + 1]!.byte : size, line: s.line }));
}
