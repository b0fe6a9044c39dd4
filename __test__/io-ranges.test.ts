// Byte-range reading of JSON Lines (the shards of `purify --shards`): a file
// split at line starts reads back as the same records, with their true lines.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, OptionError } from '../src/errors.js';
import { lineRanges, openDataset, recordRanges } from '../src/io/index.js';
import { DATA, put, readAll, tempDir } from './io-helpers.js';

const dir = tempDir();
const rec = (i: number) => JSON.stringify({ prompt: `question ${i} ${'é'.repeat(i % 7)}`, response: `answer ${i}` });

/** Every record of every part, in order: index within its part, line and prompt. */
async function readParts(path: string, parts: number, skipInvalid = false) {
  const ranges = await lineRanges(path, parts);
  expect(ranges.length).toBe(parts);
  const rows: { line: number; prompt: string }[] = [];
  for (const [s, range] of ranges.entries()) {
    // contiguous, at line starts, covering the file
    expect(range.start).toBe(s === 0 ? 0 : ranges[s - 1]!.end);
    const bytes = readFileSync(path);
    if (range.start > 0 && range.start < bytes.length) expect(bytes[range.start - 1]).toBe(0x0a);
    let index = 0;
    for (const row of await readAll(path, { range, skipInvalid })) {
      expect(row.record.index).toBe(index++);
      rows.push({ line: row.record.line, prompt: row.text.prompt });
    }
  }
  expect(ranges.at(-1)!.end).toBe(readFileSync(path).length);
  return rows;
}

async function whole(path: string, skipInvalid = false) {
  return (await readAll(path, { skipInvalid })).map((r) => ({ line: r.record.line, prompt: r.text.prompt }));
}

describe('byte ranges of JSON Lines', () => {
  it('parts at any count read the same records as one pass, with true line numbers', async () => {
    // LF and CRLF lines, blank lines, a BOM, multi-byte text, no final newline
    const lines = Array.from({ length: 40 }, (_, i) => rec(i));
    let text = '\ufeff';
    lines.forEach((l, i) => (text += `${l}${i % 3 === 0 ? '\r\n' : '\n'}${i % 11 === 5 ? '\n  \r\n' : ''}`));
    const path = put(dir, 'mixed.jsonl', text.replace(/\n$/, ''));
    const want = await whole(path);
    expect(want.length).toBe(40);
    for (const parts of [1, 2, 3, 7, 13, 40, 97]) expect(await readParts(path, parts)).toEqual(want);
  });

  it('a boundary inside a line, between CR and LF or on a line start goes to the line that starts after it', async () => {
    const path = put(dir, 'crlf.jsonl', `${rec(0)}\r\n${rec(1)}\r\n${rec(2)}\r\n`);
    const bytes = readFileSync(path);
    const size = bytes.length;
    const starts = [0, ...Array.from(bytes.entries()).flatMap(([i, b]) => (b === 0x0a ? [i + 1] : []))];
    // every split point of a 2-part file: the second part starts at a line start
    for (let parts = 2; parts <= size; parts += 3) {
      const ranges = await lineRanges(path, parts);
      for (const r of ranges) expect(starts).toContain(r.start);
    }
    expect(await readParts(path, size)).toEqual(await whole(path));
  });

  it('errors in a part name the line in the file', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => (i === 22 ? '{"prompt": "broken' : rec(i)));
    const path = put(dir, 'bad.jsonl', `${lines.join('\n')}\n`);
    const ranges = await lineRanges(path, 3);
    const last = ranges[2]!;
    expect(last.line).toBeLessThan(23);
    const err = await readAll(path, { range: last }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ line: 23, file: path });
    // skipping invalid records, the parts still agree with one pass
    expect(await readParts(path, 4, true)).toEqual(await whole(path, true));
  });

  it('a real file in 8 parts reads as one pass', async () => {
    const path = join(DATA, 'gsm8k/grade_school_math/data/train.jsonl');
    expect(await readParts(path, 8)).toEqual(await whole(path));
  }, 60_000);

  it('CSV is split at row starts, not line starts (a quoted field may hold a newline)', async () => {
    const path = put(dir, 'quoted.csv', 'prompt,response\n"line one\nline two",ok\nsecond,fine\n');
    // a line start in the middle is inside the quoted field; the second part starts at the next row
    expect((await lineRanges(path, 2))[1]!.line).toBe(3);
    const ranges = await recordRanges(path, 2);
    expect(ranges.map((r) => r.line)).toEqual([2, 4]);
    expect((await readAll(path, { range: ranges[0]! })).map((r) => r.text.prompt)).toEqual(['line one\nline two']);
    // lineRanges is for JSON Lines: its first part holds the header
    await expect(openDataset(path, { range: (await lineRanges(path, 2))[0]! })).rejects.toBeInstanceOf(OptionError);
  });
});
