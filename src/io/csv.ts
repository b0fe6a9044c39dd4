// The one CSV reader: RFC 4180 CSV (and TSV with the same quoting), split line
// by line so that a file is streamed and every record knows the line it
// starts on. Datasets stream from a file (`readCsv`, errors per record);
// the pinned reference files are parsed from their text (`parseCsv`, the
// first error throws). A quoted field may span lines; a quote inside an
// unquoted field is kept literally (common in the wild); text after a closing
// quote, an unclosed quote, a row whose field count differs from the header's
// and a header naming a column twice are errors; blank lines between records
// are skipped.
import { InputError } from '../errors.js';
import { type ByteRange, excerpt, readLines, type Line } from './lines.js';
import type { FileShape, RawItem } from './raw.js';

interface Row {
  line: number;
  /** The line it ends on. */
  end: number;
  cells: string[];
  /** The row's last line ended with CRLF. */
  crlf: boolean;
  error?: string;
}

/** Turns lines into rows: `push` returns a row when its last line is complete. */
class RowSplitter {
  private cells: string[] = [];
  private field = '';
  private quoted = false; // inside a quoted field that continues on the next line
  private start = 0; // line the current row started on
  private error: string | undefined;
  private text = '';
  private line = 0;

  constructor(private readonly delimiter: string) {}

  push(l: Line): Row | undefined {
    this.text = l.text;
    this.line = l.line;
    if (l.unreadable !== undefined) {
      // An unreadable line ends the row it is in: what follows cannot be trusted to continue a quoted field.
      const row = {
        line: this.quoted ? this.start : l.line,
        end: l.line,
        cells: this.cells,
        crlf: false,
        error: `line ${l.line}: ${l.unreadable}`,
      };
      this.reset();
      return row;
    }
    if (!this.quoted) {
      if (l.text === '') return undefined;
      this.start = l.line;
      this.reset();
    }
    if (l.badUtf8) this.error ??= `line ${l.line} is not valid UTF-8 (bad bytes shown as U+FFFD)`;
    const { text, delimiter } = this;
    let i = this.quoted ? this.scanQuoted(0) : 0;
    while (!this.quoted && i <= text.length) {
      // at the start of a field
      if (text[i] === '"') {
        i = this.scanQuoted(i + 1);
        continue;
      }
      const end = text.indexOf(delimiter, i);
      this.field = text.slice(i, end === -1 ? text.length : end);
      this.endField();
      if (end === -1) break;
      i = end + 1;
    }
    if (this.quoted) {
      this.field += l.crlf ? '\r\n' : '\n';
      return undefined;
    }
    return {
      line: this.start,
      end: l.line,
      cells: this.cells,
      crlf: l.crlf,
      ...(this.error === undefined ? {} : { error: this.error }),
    };
  }

  /** The row left open by a quoted field that never closed, if any. */
  end(): Row | undefined {
    if (!this.quoted) return undefined;
    return {
      line: this.start,
      end: this.line,
      cells: this.cells,
      crlf: false,
      error: `quoted field opened on line ${this.start} is never closed`,
    };
  }

  private reset(): void {
    this.quoted = false;
    this.cells = [];
    this.field = '';
    this.error = undefined;
  }

  private endField(): void {
    this.cells.push(this.field);
    this.field = '';
  }

  // Reads a quoted field's content from `from`; returns where the next field
  // starts (past the end when the line is done), or leaves `quoted` set when
  // the field runs past the line.
  private scanQuoted(from: number): number {
    const { text, delimiter } = this;
    for (let j = from; ; ) {
      const q = text.indexOf('"', j);
      if (q === -1) {
        this.field += text.slice(j);
        this.quoted = true;
        return text.length + 1;
      }
      this.field += text.slice(j, q);
      if (text[q + 1] === '"') {
        this.field += '"';
        j = q + 2;
        continue;
      }
      this.quoted = false;
      if (q + 1 === text.length || text[q + 1] === delimiter) {
        this.endField();
        return q + 2;
      }
      this.error ??= `unexpected text after a closing quote on line ${this.line}: ${excerpt(text.slice(q))}`;
      const next = text.indexOf(delimiter, q + 1);
      this.field += text.slice(q + 1, next === -1 ? text.length : next);
      this.endField();
      return next === -1 ? text.length + 1 : next + 1;
    }
  }
}

/** The lines of a text already in memory, as `readLines` gives those of a file (LF or CRLF; a BOM dropped). */
function* textLines(text: string): Generator<Line> {
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let line = 1; start <= text.length; line++) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl;
    if (nl === -1 && end === start) return; // no text after the last line break
    const crlf = end > start && text[end - 1] === '\r';
    const t = text.slice(start, crlf ? end - 1 : end);
    const nul = t.indexOf('\0');
    yield nul === -1
      ? { line, text: t, crlf, badUtf8: false }
      : { line, text: '', crlf, badUtf8: false, unreadable: `line holds a NUL byte at column ${nul + 1}: not text` };
    start = end + 1;
  }
}

/** Rows of the given lines, then the row an unclosed quote left open. */
function* rowsOf(lines: Iterable<Line>, delimiter: string): Generator<Row> {
  const splitter = new RowSplitter(delimiter);
  for (const l of lines) {
    const row = splitter.push(l);
    if (row !== undefined) yield row;
  }
  const last = splitter.end();
  if (last !== undefined) yield last;
}

async function* readRows(
  path: string,
  file: string,
  delimiter: string,
  limit?: number,
  range?: ByteRange,
): AsyncGenerator<Row> {
  const splitter = new RowSplitter(delimiter);
  for await (const l of readLines(path, file, limit, range)) {
    const row = splitter.push(l);
    if (row !== undefined) yield row;
  }
  const last = splitter.end();
  if (last !== undefined) yield last;
}

/** The header's column names; a bad or repeating header throws. */
function headerOf(row: Row, file: string): string[] {
  const where = { file, line: row.line };
  if (row.error !== undefined) throw new InputError(where, `bad header: ${row.error}`);
  const seen = new Set<string>();
  for (const name of row.cells) {
    if (seen.has(name)) throw new InputError({ ...where, field: name }, `header names the column "${name}" twice`);
    seen.add(name);
  }
  return row.cells;
}

/** A data row as a record keyed by the header, or the error that makes it none. */
function recordOf(row: Row, header: string[], file: string, delimiter: string): Record<string, string> | InputError {
  const where = { file, line: row.line };
  if (row.error !== undefined) return new InputError(where, row.error);
  if (row.cells.length !== header.length) {
    return new InputError(
      where,
      `row has ${row.cells.length} fields but the header has ${header.length}: ${excerpt(row.cells.join(delimiter))}`,
    );
  }
  const value: Record<string, string> = {};
  // defined, not assigned: a column named __proto__ is a field, not the prototype
  header.forEach((name, k) =>
    Object.defineProperty(value, name, { value: row.cells[k]!, enumerable: true, writable: true, configurable: true }),
  );
  return value;
}

/** The file's first row (the header), read from its start; undefined for a file without rows. */
async function firstRow(path: string, file: string, delimiter: string, limit?: number): Promise<Row | undefined> {
  for await (const row of readRows(path, file, delimiter, limit)) return row;
  return undefined;
}

/**
 * Streams a dataset file's records, or those of a `range` of it (from
 * `recordRanges`: it starts at a row start after the header, which is read
 * from the file's start); a bad record is an item with its error (the caller
 * skips or throws).
 */
export async function* readCsv(
  path: string,
  file: string,
  delimiter: string,
  shape: FileShape,
  limit?: number,
  range?: ByteRange,
): AsyncGenerator<RawItem> {
  let header: string[] | undefined;
  if (range !== undefined) {
    const row = await firstRow(path, file, delimiter, limit);
    if (row === undefined) return;
    header = headerOf(row, file);
    shape.header = { cells: header, crlf: row.crlf, end: row.end };
  }
  for await (const row of readRows(path, file, delimiter, limit, range)) {
    if (header === undefined) {
      header = headerOf(row, file);
      shape.header = { cells: header, crlf: row.crlf, end: row.end };
      continue;
    }
    const value = recordOf(row, header, file, delimiter);
    yield value instanceof InputError ? { line: row.line, error: value } : { line: row.line, value, raw: row.cells };
  }
}

/** A CSV text's records keyed by its header row, with the line each starts on; the first bad row throws. */
export function parseCsv(
  text: string,
  file: string,
  delimiter = ',',
): Array<{ line: number; record: Record<string, string> }> {
  let header: string[] | undefined;
  const out: Array<{ line: number; record: Record<string, string> }> = [];
  for (const row of rowsOf(textLines(text), delimiter)) {
    if (header === undefined) {
      header = headerOf(row, file);
      continue;
    }
    const record = recordOf(row, header, file, delimiter);
    if (record instanceof InputError) throw record;
    out.push({ line: row.line, record });
  }
  if (header === undefined) throw new InputError({ file, line: 1 }, 'empty CSV file: no header row');
  return out;
}
