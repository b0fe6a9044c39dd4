// A minimal RFC 4180 reader for the pinned reference files (known shape, a
// few hundred kB): quoted fields, doubled quotes, CRLF or LF, newlines inside
// quotes. The general dataset readers live in src/io/.
import { InputError } from '../errors.js';

/** Parses CSV text into records keyed by the header row. */
export function parseCsv(text: string, file: string): Record<string, string>[] {
  const rows = parseRows(text, file);
  const header = rows.shift();
  if (header === undefined) throw new InputError({ file, line: 1 }, 'empty CSV file: no header row');
  return rows.map((row, r) => {
    if (row.cells.length !== header.cells.length) {
      throw new InputError({ file, line: row.line }, `expected ${header.cells.length} fields, found ${row.cells.length} (record ${r + 1})`);
    }
    const record: Record<string, string> = {};
    header.cells.forEach((name, i) => { record[name] = row.cells[i] ?? ''; });
    return record;
  });
}

interface Row { line: number; cells: string[] }

function parseRows(text: string, file: string): Row[] {
  const rows: Row[] = [];
  let cells: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // BOM
  let atFieldStart = true;
  const endRow = () => {
    cells.push(field);
    // A lone empty line (including the final newline) is no record.
    if (!(cells.length === 1 && cells[0] === '')) rows.push({ line: rowLine, cells });
    cells = [];
    field = '';
    atFieldStart = true;
  };
  while (i < text.length) {
    const c = text[i];
    if (atFieldStart && c === '"') {
      const openedAt = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new InputError({ file, line: openedAt }, 'unterminated quoted field');
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new InputError({ file, line }, 'unexpected character after a closing quote');
      }
      atFieldStart = false;
      continue;
    }
    atFieldStart = false;
    if (c === ',') { cells.push(field); field = ''; atFieldStart = true; i++; continue; }
    if (c === '\r' || c === '\n') {
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      rowLine = line;
      continue;
    }
    field += c;
    i++;
  }
  if (field !== '' || cells.length > 0) endRow();
  return rows;
}
