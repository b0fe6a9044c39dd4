// Reliability, part 2: property-based and fuzz tests (fast-check) of the
// dataset readers, the CSV/JSONL writers and the atomic writer. Each property
// runs a bounded number of cases from a fixed seed (a few seconds each), so CI
// is reproducible. Run longer with e.g.
//   SOT_FUZZ_RUNS=5000 SOT_FUZZ_SEED=$RANDOM npx vitest run __test__/reliability-fuzz.test.ts
// A failure prints the seed and the shrunk counter-example (fast-check's `path` replays it).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { type DatasetRow, openDataset, withAtomicWriter, writeDataset, writeFileAtomic } from '../src/io/index.js';

const RUNS = Number(process.env.SOT_FUZZ_RUNS ?? 150);
const SEED = Number(process.env.SOT_FUZZ_SEED ?? 20241129);
const params = (runs = RUNS): fc.Parameters<unknown> => ({ numRuns: runs, seed: SEED, endOnFailure: false });

const dir = mkdtempSync(join(tmpdir(), 'sot-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fresh = (ext: string) => join(dir, `f${++files}.${ext}`);

/** Reads a dataset whole; the outcome is the rows or the error thrown. */
async function outcome(path: string, options = {}): Promise<{ rows: DatasetRow[]; error?: unknown }> {
  const rows: DatasetRow[] = [];
  try {
    const ds = await openDataset(path, options);
    for await (const r of ds) rows.push(r);
    return { rows };
  } catch (error) {
    return { rows, error };
  }
}

/** A read either succeeds or throws an InputError that names the file and, when it has one, a line inside it. */
function expectInputErrorOrNothing(error: unknown, path: string, lines: number): void {
  if (error === undefined) return;
  if (!(error instanceof InputError))
    throw new Error(`expected an InputError, got ${String((error as Error)?.stack ?? error)}`);
  expect(error.file).toBe(path);
  expect(error.message.startsWith(path)).toBe(true);
  if (error.line !== undefined) {
    expect(error.line).toBeGreaterThanOrEqual(1);
    expect(error.line).toBeLessThanOrEqual(lines + 1);
  }
}

// Text that embedders can use (has a word) but is otherwise anything: quotes,
// delimiters, CR/LF, BOMs, line and paragraph separators, NULs, emoji, any script.
const nasty = fc.constantFrom(
  '"',
  "'",
  ',',
  ';',
  '\t',
  '\n',
  '\r',
  '\r\n',
  '\\',
  '{',
  '}',
  '[',
  ']',
  '\uFEFF',
  '\u2028',
  '\u2029',
  '\0',
  '😀',
  'é',
  '東京',
  ' ',
);
const anyText = fc
  .array(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), nasty), { maxLength: 12 })
  .map((xs) => xs.join(''));
const wordy = anyText.map((s) => `w ${s}`);
const record = fc.record({
  prompt: wordy,
  response: anyText,
  extra: fc.oneof(anyText, fc.integer(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })),
});

/** Lines that are certainly invalid records, each with the reason class. */
const badLine = fc
  .oneof(
    record.chain((r) => {
      const text = JSON.stringify(r);
      return fc.integer({ min: 1, max: text.length - 1 }).map((cut) => text.slice(0, cut)); // a truncated object never parses
    }),
    fc.constantFrom(
      '[1, 2]',
      '"a string"',
      '42',
      'null',
      'true',
      'not json at all',
      '{"response": "no prompt"}',
      '{"prompt": 3}',
      '{"prompt": "?!"}',
    ),
  )
  .filter((l) => l.trim() !== '' && !/[\r\n\u2028\u2029]/.test(l.replace(/\\./g, '')));

describe('JSONL reader', () => {
  it('arbitrary bytes: rows or an InputError with a line, never another error or a hang', async () => {
    const bytes = fc.array(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom('\n', '\r\n', '{', '}', '"', '\uFEFF', '{"prompt":"a b"}\n').map((s) => Buffer.from(s)),
      ),
      { maxLength: 24 },
    );
    await fc.assert(
      fc.asyncProperty(bytes, async (parts) => {
        const buf = Buffer.concat(parts);
        const path = fresh('jsonl');
        writeFileSync(path, buf);
        const { error } = await outcome(path);
        expectInputErrorOrNothing(error, path, buf.toString('latin1').split('\n').length);
      }),
      params(),
    );
  });

  it('valid records with arbitrary strings round-trip (values and line numbers); writing them back reproduces the lines', async () => {
    const file = fc.record({
      records: fc.array(record, { minLength: 1, maxLength: 12 }),
      blank: fc.array(fc.boolean(), { maxLength: 12 }),
      crlf: fc.boolean(),
      bom: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(file, async ({ records, blank, crlf, bom }) => {
        const eol = crlf ? '\r\n' : '\n';
        let text = bom ? '\uFEFF' : '';
        const lines: number[] = [];
        let line = 0;
        records.forEach((r, i) => {
          if (blank[i]) {
            text += `  ${eol}`;
            line++;
          }
          text += JSON.stringify(r) + eol;
          lines.push(++line);
        });
        const path = fresh('jsonl');
        writeFileSync(path, text);
        const { rows, error } = await outcome(path, { recordFormat: 'prompt-response' });
        expect(error).toBeUndefined();
        expect(rows.map((r) => r.record.value)).toEqual(records);
        expect(rows.map((r) => r.record.line)).toEqual(lines);
        expect(rows.map((r) => r.text.prompt)).toEqual(records.map((r) => r.prompt));
        const out = fresh('jsonl');
        const ds = await openDataset(path, { recordFormat: 'prompt-response' });
        await writeDataset(ds, out, { keep: () => 1, weightField: null });
        expect(readFileSync(out, 'utf8')).toBe(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      }),
      params(),
    );
  });

  it('with skipInvalid every bad line is counted and every good record comes through with its line', async () => {
    const lines = fc.array(
      fc.oneof(
        record.map((r) => ({ ok: true as const, text: JSON.stringify(r), r })),
        badLine.map((text) => ({ ok: false as const, text })),
      ),
      { minLength: 1, maxLength: 20 },
    );
    await fc.assert(
      fc.asyncProperty(lines, async (ls) => {
        fc.pre(ls.some((l) => l.ok));
        const path = fresh('jsonl');
        writeFileSync(path, ls.map((l) => `${l.text}\n`).join(''));
        const ds = await openDataset(path, { recordFormat: 'prompt-response', skipInvalid: true });
        const rows: DatasetRow[] = [];
        for await (const r of ds) rows.push(r);
        expect(rows.map((r) => r.record.line)).toEqual(ls.flatMap((l, i) => (l.ok ? [i + 1] : [])));
        expect(ds.skipped.count).toBe(ls.filter((l) => !l.ok).length);
        for (const e of ds.skipped.first) expect(e).toBeInstanceOf(InputError);
        // Without skipInvalid: the first bad line is the error.
        const firstBad = ls.findIndex((l) => !l.ok);
        const { error } = await outcome(path, { recordFormat: 'prompt-response' });
        if (firstBad === -1) expect(error).toBeUndefined();
        else expect((error as InputError).line).toBe(firstBad + 1);
      }),
      params(),
    );
  });
});

describe('CSV reader and writer', () => {
  /** RFC 4180 with every cell quoted: the reference encoding. */
  const quoteAll = (cells: string[], eol: string) => cells.map((c) => `"${c.replaceAll('"', '""')}"`).join(',') + eol;

  it('arbitrary cell strings round-trip: reference CSV -> reader -> writer -> reader', async () => {
    // A raw NUL byte makes a line invalid input (inputs-lines.test.ts); the cells hold every other character.
    const noNul = (s: string) => s.replaceAll('\0', '');
    const rowsArb = fc.array(fc.tuple(wordy.map(noNul), anyText.map(noNul), anyText.map(noNul)), {
      minLength: 1,
      maxLength: 10,
    });
    await fc.assert(
      fc.asyncProperty(rowsArb, fc.boolean(), async (rows, crlf) => {
        const eol = crlf ? '\r\n' : '\n';
        const path = fresh('csv');
        writeFileSync(path, quoteAll(['prompt', 'response', 'note'], eol) + rows.map((r) => quoteAll(r, eol)).join(''));
        const { rows: got, error } = await outcome(path, { recordFormat: 'prompt-response' });
        expect(error).toBeUndefined();
        expect(got.map((r) => [r.record.value.prompt, r.record.value.response, r.record.value.note])).toEqual(rows);
        const out = fresh('csv');
        await writeDataset(await openDataset(path, { recordFormat: 'prompt-response' }), out, { keep: (i) => i + 0.5 });
        const { rows: again, error: e2 } = await outcome(out, { recordFormat: 'prompt-response' });
        expect(e2).toBeUndefined();
        expect(again.map((r) => [r.record.value.prompt, r.record.value.response, r.record.value.note])).toEqual(rows);
        expect(again.map((r) => Number(r.record.value.sot_weight))).toEqual(rows.map((_, i) => i + 0.5));
      }),
      params(),
    );
  });

  it('arbitrary bytes: rows or an InputError with a line (CSV and TSV)', async () => {
    const bytes = fc.array(
      fc.oneof(
        fc.uint8Array({ maxLength: 32 }),
        fc.constantFrom('\n', '\r\n', '"', ',', '\t', '""', 'prompt,response\n', 'a b,c\n').map((s) => Buffer.from(s)),
      ),
      { maxLength: 24 },
    );
    await fc.assert(
      fc.asyncProperty(bytes, fc.boolean(), async (parts, tsv) => {
        const buf = Buffer.concat(parts);
        const path = fresh(tsv ? 'tsv' : 'csv');
        writeFileSync(path, buf);
        const { error } = await outcome(path, { format: tsv ? 'csv' : undefined });
        expectInputErrorOrNothing(error, path, buf.toString('latin1').split('\n').length);
      }),
      params(),
    );
  });
});

describe('JSON and Parquet readers', () => {
  it('JSON: arbitrary bytes and truncated arrays give rows or an InputError', async () => {
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.array(record, { maxLength: 6 }), fc.nat()).map(([rs, cut]) => {
        const text = JSON.stringify({ data: rs }, null, 1);
        return Buffer.from(text.slice(0, cut % (text.length + 1)));
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async (buf) => {
        const path = fresh('json');
        writeFileSync(path, buf);
        const { error } = await outcome(path);
        expectInputErrorOrNothing(error, path, buf.toString('latin1').split('\n').length);
      }),
      params(),
    );
  });

  /** A small valid Parquet file: 40 rows in row groups of 10. */
  const parquetBase = () => {
    const base = fresh('parquet');
    const n = 40;
    parquetWriteFile({
      filename: base,
      columnData: [
        {
          name: 'prompt',
          data: Array.from({ length: n }, (_, i) => `question number ${i} about something`),
          type: 'STRING',
        },
        { name: 'response', data: Array.from({ length: n }, (_, i) => `answer ${i}`), type: 'STRING' },
      ],
      rowGroupSize: 10,
    });
    return readFileSync(base);
  };

  it('Parquet: a valid file cut anywhere gives rows or an InputError, never a crash or a hang', async () => {
    const good = parquetBase();
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: good.length - 1 }), async (cut) => {
        const path = fresh('parquet');
        writeFileSync(path, good.subarray(0, cut));
        const { error } = await outcome(path);
        expectInputErrorOrNothing(error, path, 40);
      }),
      params(),
    );
  });

  // KNOWN ISSUE (upstream, hyparquet 1.31.5 and 1.33.0): some single-byte corruptions of
  // a page make hyparquet's readRleBitPackedHybrid loop forever, synchronously, so SOT
  // cannot even abort it. Found by this fuzzer (seed 20241129): byte 211 of the file
  // below set to 252. Opt in with SOT_FUZZ_PARQUET_FLIPS=1 once hyparquet is fixed.
  it.runIf(process.env.SOT_FUZZ_PARQUET_FLIPS === '1')(
    'Parquet: random byte flips give rows or an InputError',
    async () => {
      const good = parquetBase();
      const flips = fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      });
      await fc.assert(
        fc.asyncProperty(flips, async (fl) => {
          const b = Buffer.from(good);
          for (const [at, v] of fl) b[at] = v;
          const path = fresh('parquet');
          writeFileSync(path, b);
          const { error } = await outcome(path);
          expectInputErrorOrNothing(error, path, 40);
        }),
        params(),
      );
    },
  );
});

describe('atomic writer', () => {
  const chunks = fc.array(
    fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 50 }),
      fc.uint8Array({ maxLength: 50 }),
      fc.string({ minLength: 0, maxLength: 3 }).map((s) => s.repeat(200_000)),
    ),
    { maxLength: 12 },
  );

  it('commits exactly the bytes written, or on failure leaves the previous file and no temp file', async () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const dest = join(sub, 'out.bin');
    let previous: Buffer | undefined;
    await fc.assert(
      fc.asyncProperty(chunks, fc.option(fc.nat(), { nil: undefined }), async (cs, failAt) => {
        const want = Buffer.concat(cs.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : Buffer.from(c))));
        const fail = failAt !== undefined && cs.length > 0 ? failAt % (cs.length + 1) : -1;
        try {
          await withAtomicWriter(dest, async (w) => {
            for (let i = 0; i < cs.length; i++) {
              if (i === fail) throw new Error('injected');
              await w.write(cs[i]!);
            }
            if (fail === cs.length) throw new Error('injected');
          });
          expect(fail).toBe(-1);
          previous = want;
        } catch (err) {
          expect((err as Error).message).toBe('injected');
        }
        // Either the previous complete content or the new one; never anything else, never a temp file.
        if (previous === undefined) expect(existsSync(dest)).toBe(false);
        else expect(readFileSync(dest).equals(previous)).toBe(true);
        expect(readdirSync(sub).filter((f) => f !== 'out.bin')).toEqual([]);
      }),
      params(Math.min(RUNS, 100)),
    );
  });

  it('writeFileAtomic: concurrent writers to one path leave one complete version', async () => {
    const sub = mkdtempSync(join(dir, 'race-'));
    const dest = join(sub, 'out.txt');
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).map((s) => s.repeat(5000)),
          { minLength: 2, maxLength: 6 },
        ),
        async (versions) => {
          await Promise.all(versions.map((v) => writeFileAtomic(dest, v)));
          expect(versions).toContain(readFileSync(dest, 'utf8'));
          expect(readdirSync(sub)).toEqual(['out.txt']);
        },
      ),
      params(Math.min(RUNS, 50)),
    );
  });
});
