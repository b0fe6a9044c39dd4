// Byte ranges of CSV and TSV (the shards of `purify --shards`): split at row
// starts found by the quoting scan, a file reads back as the same records
// with the same line numbers and errors as one pass of the reader, whatever
// the quoting, line ends, BOM or invalid rows, and at every split point.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, OptionError } from '../src/errors.js';
import { readCsv } from '../src/io/csv.js';
import { csvRanges } from '../src/io/ranges.js';
import { type ByteRange, type OpenDatasetOptions, openDataset, recordRanges } from '../src/io/index.js';
import { DATA, put, readAll, tempDir } from './io-helpers.js';

const dir = tempDir();

type Got = { index: number; line: number; prompt: string } | { error: string; line: number | undefined };

/** One pass (or one range): the records, then the error that stopped it, if any. */
async function read(path: string, options: OpenDatasetOptions = {}): Promise<Got[]> {
  const out: Got[] = [];
  try {
    for await (const r of await openDataset(path, options))
      out.push({ index: r.record.index, line: r.record.line, prompt: r.text.prompt });
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    out.push({ error: err.message, line: err.line });
  }
  return out;
}

/** The parts in order, as one list (global indices); stops at the first error, as one pass does. */
async function readParts(path: string, ranges: ByteRange[], options: OpenDatasetOptions = {}): Promise<Got[]> {
  const bytes = readFileSync(path);
  const out: Got[] = [];
  for (const [s, range] of ranges.entries()) {
    // contiguous, at line starts, to the end of the file
    if (s > 0) expect(range.start).toBe(ranges[s - 1]!.end);
    if (range.start < bytes.length) expect(bytes[range.start - 1]).toBe(0x0a);
    const before = out.length;
    const got = await read(path, { ...options, range });
    for (const g of got) out.push('index' in g ? { ...g, index: g.index + before } : g);
    if (got.some((g) => 'error' in g)) return out;
  }
  expect(ranges.at(-1)!.end).toBe(bytes.length);
  return out;
}

/** 1 to 6 parts, and one per byte (every split point): each reads as one pass. */
async function everySplit(path: string, options: OpenDatasetOptions = {}): Promise<Got[]> {
  const want = await read(path, options);
  const size = readFileSync(path).length;
  for (const parts of [1, 2, 3, 4, 5, 6, size]) {
    const ranges = await recordRanges(path, parts, options);
    expect(ranges.length).toBe(parts);
    expect(await readParts(path, ranges, options)).toEqual(want);
  }
  // one part per byte: every record starts a part
  const lines = new Set((await recordRanges(path, size, options)).map((r) => r.line));
  for (const g of want) if ('index' in g) expect(lines).toContain(g.line);
  return want;
}

const q = (v: string) => `"${v.replaceAll('"', '""')}"`;

describe('byte ranges of CSV and TSV', () => {
  it('quoted newlines, "" escapes, CRLF, a BOM, blank and trailing lines: every split reads as one pass', async () => {
    const text =
      '\ufeffprompt,response\r\n' +
      `${q('one\nline two, "quoted"\n')},a\r\n` +
      '\r\n' +
      `plain,${q('b\r\n\r\nc')}\n` +
      `${q('say "hi"')},${q('')}\n` +
      '\n' +
      `${q('x\ny')},z\n` +
      'last,"no final newline\n\n"';
    const path = put(dir, 'quoted.csv', text);
    const want = await everySplit(path);
    expect(want.map((g) => ('index' in g ? [g.line, g.prompt] : g))).toEqual([
      [2, 'one\nline two, "quoted"\n'],
      [6, 'plain'],
      [9, 'say "hi"'],
      [11, 'x\ny'],
      [13, 'last'],
    ]);
  });

  it('trailing blank lines, a header split over lines, TSV', async () => {
    const csv = put(dir, 'header.csv', `\ufeff${q('prom\npt')},response\n${q('a\nb')},c\nd,e\n\n\r\n\n`);
    expect((await everySplit(csv, { fields: { prompt: 'prom\npt', response: 'response' } })).length).toBe(2);
    const tsv = put(dir, 'tabs.tsv', `prompt\tresponse\n${q('a\tb\nc')}\tx\ny, "z"\t${q('\n')}\nlast\tone`);
    expect(await everySplit(tsv)).toEqual([
      { index: 0, line: 2, prompt: 'a\tb\nc' },
      { index: 1, line: 4, prompt: 'y, "z"' },
      { index: 2, line: 6, prompt: 'last' },
    ]);
  });

  it('invalid rows: the same first error with its line, and the same records skipping them', async () => {
    const text = [
      'prompt,response',
      'ok,1',
      'a quote "inside" an unquoted field,2', // kept literally: it opens nothing
      '"closed" then text, and a "quote,3', // an error; its quotes open nothing either
      'too,many,fields',
      `${q('spans\nlines')},4`,
      '"unclosed,5',
      'and never,closed',
    ].join('\n');
    const path = put(dir, 'invalid.csv', text);
    const first = await everySplit(path);
    expect(first.at(-1)).toMatchObject({ line: 4, error: expect.stringMatching(/text after a closing quote/) });
    const skipped = await everySplit(path, { skipInvalid: true });
    expect(skipped.map((g) => ('index' in g ? g.line : g))).toEqual([2, 3, 6]);
  });

  it('lines the reader refuses (a NUL byte, over maxLineBytes) end a row, inside quotes too', async () => {
    const text = `prompt,response\nok,1\n"opens\nwith a \0 NUL,2\nnext,3\n"a long quoted ${'x'.repeat(40)}\nafter,5\n`;
    const path = put(dir, 'refused.csv', text);
    const options = { skipInvalid: true, maxLineBytes: 32 };
    expect((await everySplit(path, options)).map((g) => ('index' in g ? g.prompt : g))).toEqual([
      'ok',
      'next',
      'after',
    ]);
    expect((await everySplit(path, { maxLineBytes: 32 })).at(-1)).toMatchObject({ line: 3 });
  });

  it('random small files of quotes, delimiters and line ends: every split reads as one pass', async () => {
    // the reader is the reference: any disagreement of the scan with it shows as a difference
    let seed = 12345;
    const rand = (n: number) => {
      // xorshift32
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const alphabet = ['a', 'é', ',', '\t', '"', '"', '""', '\n', '\n', '\r\n', '\r', '\0'];
    for (let f = 0; f < 100; f++) {
      const delim = f % 2 === 0 ? ',' : '\t';
      let body = '';
      for (let k = 0, n = 8 + rand(30); k < n; k++) body += alphabet[rand(alphabet.length)];
      const path = put(
        dir,
        `random-${f}.${delim === ',' ? 'csv' : 'tsv'}`,
        `${f % 3 === 0 ? '\ufeff' : ''}${['', '\n', '\r\n'][rand(3)]}"a\n"${delim}b\n${body}`,
      );
      const bytes = readFileSync(path);
      const items = async (range?: ByteRange) => {
        const out: unknown[] = [];
        for await (const it of readCsv(path, path, delim, {}, 12, range))
          out.push(it.error ? { line: it.line, error: it.error.message } : { line: it.line, value: it.value });
        return out;
      };
      const want = await items();
      for (const [parts, chunk] of [
        [2, undefined],
        [3, 1],
        [bytes.length, 2],
        [bytes.length, 5],
      ] as const) {
        // reads of 1, 2 and 5 bytes carry the scan's state over every byte
        const ranges = await csvRanges(path, parts, delim, 12, undefined, chunk);
        if (chunk === undefined) expect(await recordRanges(path, parts, { maxLineBytes: 12 })).toEqual(ranges);
        const got: unknown[] = [];
        for (const r of ranges) got.push(...(await items(r)));
        expect(got, JSON.stringify(bytes.toString('latin1'))).toEqual(want);
      }
    }
  });

  it('a real dataset as CSV (answers span lines) reads as one pass in 8 parts', async () => {
    const src = readFileSync(join(DATA, 'gsm8k/grade_school_math/data/train.jsonl'), 'utf8');
    const rows = src
      .split('\n')
      .filter((l) => l !== '')
      .slice(0, 3000)
      .map((l) => JSON.parse(l) as { question: string; answer: string });
    const path = put(
      dir,
      'gsm8k.csv',
      `prompt,response\n${rows.map((r) => `${q(r.question)},${q(r.answer)}`).join('\n')}\n`,
    );
    const want = await read(path);
    expect(want.length).toBe(3000);
    expect(want.filter((g) => 'index' in g && g.line !== g.index + 2).length).toBeGreaterThan(0); // lines != records
    for (const parts of [2, 8, 41]) expect(await readParts(path, await recordRanges(path, parts))).toEqual(want);
  }, 60_000);

  it('typed refusals: JSON and Parquet, a range inside the header, a malformed range, bad parts', async () => {
    const json = put(dir, 'records.json', '[{"prompt": "a", "response": "b"}]');
    await expect(recordRanges(json, 2)).rejects.toThrow(OptionError);
    await expect(readAll(json, { range: { start: 0, end: 5, line: 1 } })).rejects.toThrow(/only jsonl, csv, tsv/);
    const csv = put(dir, 'small.csv', `${q('a\nb')},response\nx,y\n`);
    const fields = { prompt: 'a\nb', response: 'response' };
    await expect(openDataset(csv, { fields, range: { start: 0, end: 10, line: 2 } })).rejects.toThrow(
      /not after its header row \(which ends on line 2\)/,
    );
    await expect(readAll(csv, { range: { start: -1, end: 10, line: 3 } })).rejects.toThrow(OptionError);
    await expect(readAll(csv, { range: null as unknown as ByteRange })).rejects.toThrow(OptionError);
    await expect(recordRanges(csv, 0)).rejects.toThrow(/parts must be an integer from 1 to 65536, got 0/);
    // a file without a complete header row has no records: every part is empty
    const empty = put(dir, 'empty.csv', '\n\n"header never closed\n');
    expect(await recordRanges(empty, 3)).toEqual(Array.from({ length: 3 }, () => ({ start: 23, end: 23, line: 4 })));
  });
});
