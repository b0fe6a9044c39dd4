// The one CSV reader, both ways in: streamed from a dataset file (errors per
// record) and parsed from a reference file's text (the first error throws).
// Both must read the same records from the same bytes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { parseCsv } from '../src/io/csv.js';
import { DATA, put, readAll, tempDir } from './io-helpers.js';

const HARMBENCH = join(DATA, 'harmbench/data/behavior_datasets/harmbench_behaviors_text_val.csv');
const dir = tempDir();

function thrown(f: () => unknown): InputError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

describe('parseCsv (reference files) and readCsv (datasets) are one reader', () => {
  it('read the same records, with the same lines, from a real file with multi-line quoted fields', async () => {
    const text = readFileSync(HARMBENCH, 'utf8');
    const parsed = parseCsv(text, HARMBENCH);
    const streamed = await readAll(HARMBENCH, { fields: { prompt: 'Behavior' } });
    expect(parsed.length).toBe(streamed.length);
    expect(parsed.length).toBeGreaterThan(50);
    for (let i = 0; i < parsed.length; i++) {
      expect(parsed[i]!.line).toBe(streamed[i]!.record.line);
      expect(parsed[i]!.record).toEqual(streamed[i]!.record.value);
    }
    // Some record spans lines, so its line is not its index + 2.
    expect(parsed.some((r, i) => r.line !== i + 2)).toBe(true);
  });

  it('accepts a BOM, CRLF, doubled quotes, newlines in quotes, blank lines and no final newline', () => {
    const text = '\ufeffa,b\r\n"x ""y""","1\r\n2"\r\n\r\nplain,"q"';
    expect(parseCsv(text, 'f.csv')).toEqual([
      { line: 2, record: { a: 'x "y"', b: '1\r\n2' } },
      { line: 5, record: { a: 'plain', b: 'q' } },
    ]);
    expect(parseCsv('a\tb\n1\t"2\t3"\n', 'f.tsv', '\t')).toEqual([{ line: 2, record: { a: '1', b: '2\t3' } }]);
  });

  it('refuses, naming file and line: text after a closing quote, an unclosed quote, a short row, a repeated column, no header', () => {
    let e = thrown(() => parseCsv('a,b\n1,2\n"x"y,3\n', 'r.csv'));
    expect(e).toMatchObject({ file: 'r.csv', line: 3 });
    expect(e.message).toMatch(/after a closing quote/);
    e = thrown(() => parseCsv('a,b\n1,"open\n2,3\n', 'r.csv'));
    expect(e).toMatchObject({ line: 2 });
    expect(e.message).toMatch(/never closed/);
    e = thrown(() => parseCsv('a,b\n1,2\n3\n', 'r.csv'));
    expect(e).toMatchObject({ line: 3 });
    expect(e.message).toMatch(/1 fields but the header has 2/);
    e = thrown(() => parseCsv('a,a\n1,2\n', 'r.csv'));
    expect(e).toMatchObject({ line: 1, field: 'a' });
    e = thrown(() => parseCsv('', 'r.csv'));
    expect(e.message).toMatch(/no header/);
    e = thrown(() => parseCsv('a,b\n1,\0\n', 'r.csv'));
    expect(e).toMatchObject({ line: 2 });
    expect(e.message).toMatch(/NUL/);
  });

  it('the streamed reader reports the same faults per record, and reads the good ones around them', async () => {
    const path = put(dir, 'faults.csv', 'prompt,response\np1,r1\n"x"y,3\np2,r2\nonly-one\np3,"open\n');
    const rows = await readAll(path, { skipInvalid: true });
    expect(rows.map((r) => r.text.prompt)).toEqual(['p1', 'p2']);
    await expect(readAll(path)).rejects.toMatchObject({
      line: 3,
      message: expect.stringMatching(/after a closing quote/),
    });
  });
});
