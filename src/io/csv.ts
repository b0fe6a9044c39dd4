// RFC 4180 CSV (and TSV with the same quoting), parsed line by line so a file
// is streamed and every record knows the line it starts on. A quoted field may
// span lines; a quote inside an unquoted field is kept literally (common in the
// wild); blank lines between records are skipped.
import { InputError } from '../errors.js';
import { excerpt, readLines } from './lines.js';
import type { FileShape, RawItem } from './raw.js';

interface Row {
  line: number;
  cells: string[];
  /** The row's last line ended with CRLF. */
  crlf: boolean;
  error?: string;
}

/** Splits lines into rows; yields a row when its last line is complete. */
async function* readRows(path: string, file: string, delimiter: string, limit?: number): AsyncGenerator<Row> {
  let cells: string[] = [];
  let field = '';
  let quoted = false; // inside a quoted field that continues on the next line
  let start = 0; // line the current row started on
  let error: string | undefined;
  let text = '';
  let line = 0;

  const endField = () => {
    cells.push(field);
    field = '';
  };
  // Reads a quoted field's content from `from`; returns where the next field
  // starts (past the end when the line is done), or leaves `quoted` set when
  // the field runs past the line.
  const scanQuoted = (from: number): number => {
    for (let j = from; ; ) {
      const q = text.indexOf('"', j);
      if (q === -1) {
        field += text.slice(j);
        quoted = true;
        return text.length + 1;
      }
      field += text.slice(j, q);
      if (text[q + 1] === '"') {
        field += '"';
        j = q + 2;
        continue;
      }
      quoted = false;
      if (q + 1 === text.length || text[q + 1] === delimiter) {
        endField();
        return q + 2;
      }
      error ??= `unexpected text after a closing quote on line ${line}: ${excerpt(text.slice(q))}`;
      const next = text.indexOf(delimiter, q + 1);
      field += text.slice(q + 1, next === -1 ? text.length : next);
      endField();
      return next === -1 ? text.length + 1 : next + 1;
    }
  };

  for await (const l of readLines(path, file, limit)) {
    ({ text, line } = l);
    if (l.unreadable !== undefined) {
      // An unreadable line ends the row it is in: what follows cannot be trusted to continue a quoted field.
      yield { line: quoted ? start : line, cells, crlf: false, error: `line ${line}: ${l.unreadable}` };
      quoted = false;
      cells = [];
      field = '';
      error = undefined;
      continue;
    }
    if (!quoted) {
      if (text === '') continue;
      start = line;
      cells = [];
      field = '';
      error = undefined;
    }
    if (l.badUtf8) error ??= `line ${line} is not valid UTF-8 (bad bytes shown as U+FFFD)`;
    let i = quoted ? scanQuoted(0) : 0;
    while (!quoted && i <= text.length) {
      // at the start of a field
      if (text[i] === '"') {
        i = scanQuoted(i + 1);
        continue;
      }
      const end = text.indexOf(delimiter, i);
      field = text.slice(i, end === -1 ? text.length : end);
      endField();
      if (end === -1) break;
      i = end + 1;
    }
    if (quoted) field += l.crlf ? '\r\n' : '\n';
    else yield { line: start, cells, crlf: l.crlf, ...(error === undefined ? {} : { error }) };
  }
  if (quoted) yield { line: start, cells, crlf: false, error: `quoted field opened on line ${start} is never closed` };
}

export async function* readCsv(path: string, file: string, delimiter: string, shape: FileShape, limit?: number): AsyncGenerator<RawItem> {
  let header: string[] | undefined;
  for await (const row of readRows(path, file, delimiter, limit)) {
    const where = { file, line: row.line };
    if (header === undefined) {
      if (row.error !== undefined) throw new InputError(where, `bad header: ${row.error}`);
      const seen = new Set<string>();
      for (const name of row.cells) {
        if (seen.has(name)) throw new InputError({ ...where, field: name }, `header names the column "${name}" twice`);
        seen.add(name);
      }
      header = row.cells;
      shape.header = { cells: header, crlf: row.crlf };
      continue;
    }
    if (row.error !== undefined) {
      yield { line: row.line, error: new InputError(where, row.error) };
    } else if (row.cells.length !== header.length) {
      yield {
        line: row.line,
        error: new InputError(where, `row has ${row.cells.length} fields but the header has ${header.length}: ${excerpt(row.cells.join(delimiter))}`),
      };
    } else {
      const value: Record<string, unknown> = {};
      header.forEach((name, k) => (value[name] = row.cells[k]));
      yield { line: row.line, value, raw: row.cells };
    }
  }
}
