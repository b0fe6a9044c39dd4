// Issue 16, defect 7 (and the 600 MB line of defect 9): a line is decoded
// into one string, so a line past V8's string limit killed the process (a
// 2 GiB line inside TextDecoder) or failed with ERR_INTERNAL. Lines longer
// than maxLineBytes (default 256 MiB) are now invalid input naming the file
// and line, found as soon as the reader has read past the limit; NUL bytes
// are invalid input naming line and column.
import { constants } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError, OptionError } from '../src/errors.js';
import { openDataset } from '../src/io/index.js';
import { purify } from '../src/pipeline/purify.js';
import { CLI, DATA_DIR, ROOT } from './datasets.js';

const scratch = mkdtempSync(join(tmpdir(), 'sot-lines-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const HARMFUL = join(ROOT, '__test__', 'fixtures', 'bad', 'harmful.jsonl');

/** The most maxLineBytes may be: V8's longest string, which a line decodes into. */
const MAX_LINE_BYTES = constants.MAX_STRING_LENGTH;
const record = (i: number) =>
  JSON.stringify({ prompt: `How do I bake bread, try ${i}?`, response: `Mix flour and water, then bake it (${i}).` });

/** A JSONL file: records, with `middle` (raw text) as line 3. */
function jsonl(name: string, middle: string): string {
  const path = join(scratch, name);
  writeFileSync(path, `${record(1)}\n${record(2)}\n${middle}\n${record(4)}\n${record(5)}\n`);
  return path;
}

async function rows(path: string, options: Parameters<typeof openDataset>[1] = {}): Promise<number> {
  let n = 0;
  for await (const _ of await openDataset(path, options)) n++;
  return n;
}

async function inputError(p: Promise<unknown>): Promise<InputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

describe('line length limit (maxLineBytes)', () => {
  const long = JSON.stringify({ prompt: 'p'.repeat(5000), response: 'ok' });

  it('a JSONL line over the limit is ERR_INPUT naming the file and line; the limit can be raised', async () => {
    const path = jsonl('long.jsonl', long);
    const err = await inputError(rows(path, { maxLineBytes: 4096 }));
    expect(err).toMatchObject({ code: 'ERR_INPUT', file: path, line: 3 });
    expect(err.message).toMatch(
      /long\.jsonl:3: line is longer than 4096 bytes, the maxLineBytes limit \(raise it with maxLineBytes \/ --max-line-bytes/,
    );
    // skipInvalid skips the long line (and only it) and reads on.
    const ds = await openDataset(path, { maxLineBytes: 4096, skipInvalid: true });
    let n = 0;
    for await (const _ of ds) n++;
    expect(n).toBe(4);
    expect(ds.skipped.count).toBe(1);
    expect(await rows(path, { maxLineBytes: 8192 })).toBe(5);
    expect(await rows(path)).toBe(5); // the default (256 MiB) is far above
  });

  it('the same for CSV rows and a whole .json file (the file is one string)', async () => {
    const csv = join(scratch, 'long.csv');
    writeFileSync(csv, `prompt,response\nhello there,general\n${'q'.repeat(5000)},answer\nlast one,here\n`);
    const err = await inputError(rows(csv, { maxLineBytes: 4096 }));
    expect(err).toMatchObject({ line: 3 });
    expect(err.message).toMatch(/long\.csv:3: line 3: line is longer than 4096 bytes/);

    const json = join(scratch, 'big.json');
    writeFileSync(json, `[${record(1)},\n${long}]\n`);
    const jerr = await inputError(rows(json, { maxLineBytes: 4096 }));
    expect(jerr.message).toMatch(/big\.json: the JSON file is longer than 4096 bytes, the maxLineBytes limit/);
    expect(await rows(json, { maxLineBytes: 1 << 20 })).toBe(2);
  });

  it('maxLineBytes is checked: a whole number from 1 to the longest string V8 holds', async () => {
    const path = jsonl('ok.jsonl', record(3));
    for (const bad of [0, -1, 1.5, MAX_LINE_BYTES + 1, 2 ** 31, '100' as unknown as number]) {
      await expect(rows(path, { maxLineBytes: bad })).rejects.toBeInstanceOf(OptionError);
    }
    expect(await rows(path, { maxLineBytes: MAX_LINE_BYTES })).toBe(5);
  });

  it('purify and the CLI pass the limit on (dataset and reference files)', async () => {
    const path = jsonl('long-purify.jsonl', long);
    const err = await inputError(
      purify({
        input: path,
        harmful: [HARMFUL],
        output: join(scratch, 'p-out.jsonl'),
        maxLineBytes: 4096,
        embeddingCache: false,
      }),
    );
    expect(err.line).toBe(3);
    const ref = jsonl('long-ref.jsonl', long);
    const rerr = await inputError(
      purify({
        input: jsonl('fine.jsonl', record(3)),
        harmful: [ref],
        output: join(scratch, 'r-out.jsonl'),
        maxLineBytes: 4096,
        embeddingCache: false,
      }),
    );
    expect(rerr).toMatchObject({ file: ref, line: 3 });

    const outDir = mkdtempSync(join(scratch, 'cli-'));
    const cli = (extra: string[]) =>
      spawnSync(
        process.execPath,
        [CLI, 'purify', path, '--harmful', HARMFUL, '-o', join(outDir, 'o.jsonl'), '--json', '--no-cache', ...extra],
        {
          encoding: 'utf8',
          env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' },
        },
      );
    const r = cli(['--max-line-bytes', '4KiB']);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'ERR_INPUT', line: 3 });
    expect(readdirSync(outDir)).toEqual([]);
    expect(cli(['--max-line-bytes', '1MiB']).status).toBe(0);
  });
});

describe('lines longer than V8 can hold, in a child process', () => {
  const head = `${record(1)}\n${record(2)}\n{"prompt": "`;

  // A 600 MB line of real text (it failed with ERR_INTERNAL), written in chunks: 600 MB of disk for a moment.
  function written(name: string, size: number): string {
    const path = join(scratch, name);
    const fd = openSync(path, 'w');
    writeSync(fd, head);
    const chunk = Buffer.alloc(1 << 24, 'a');
    for (let left = size - head.length; left > 0; left -= chunk.length)
      writeSync(fd, chunk, 0, Math.min(left, chunk.length));
    closeSync(fd);
    return path;
  }

  // Past 2 GiB, a sparse file (no disk used): the hole reads as NUL bytes, but
  // the length check comes first whatever the content, so the reader stops
  // after the limit's worth of this line.
  function sparse(name: string, size: number): string {
    const path = join(scratch, name);
    writeFileSync(path, head);
    truncateSync(path, size);
    return path;
  }

  it.each([
    ['a 600 MB line of text', () => written('huge-600MB.jsonl', 600e6)],
    ['a 2.5 GiB line', () => sparse('huge-2.5GiB.jsonl', 2.5 * 2 ** 30)],
  ])(
    '%s is ERR_INPUT naming the line (no crash, no ERR_INTERNAL)',
    (_, make) => {
      const path = make();
      const outDir = mkdtempSync(join(scratch, 'huge-'));
      const r = spawnSync(
        process.execPath,
        [CLI, 'purify', path, '--harmful', HARMFUL, '-o', join(outDir, 'o.jsonl'), '--json', '--no-cache'],
        {
          encoding: 'utf8',
          env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' },
          timeout: 120_000,
        },
      );
      expect(r.signal).toBeNull();
      expect(r.status).toBe(3);
      const { error } = JSON.parse(r.stdout);
      expect(error).toMatchObject({ code: 'ERR_INPUT', line: 3 });
      expect(error.message).toMatch(/:3: line is longer than 268435456 bytes, the maxLineBytes limit/);
      expect(readdirSync(outDir)).toEqual([]);
      rmSync(path);
    },
    150_000,
  );

  it('raising the limit past what V8 holds is refused up front (ERR_OPTION, exit 2)', () => {
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        jsonl('x.jsonl', record(3)),
        '--harmful',
        HARMFUL,
        '--json',
        '--no-cache',
        '--max-line-bytes',
        '1GiB',
        '-o',
        join(scratch, 'x-out.jsonl'),
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' },
      },
    );
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout).error.message).toMatch(/maxLineBytes must be a whole number of bytes from 1 to \d+/);
  });
});

describe('NUL bytes', () => {
  it('a run of NUL bytes is invalid input naming line and column, not a blank line', async () => {
    const path = jsonl('nul.jsonl', '\0'.repeat(1 << 16));
    const err = await inputError(rows(path));
    expect(err).toMatchObject({ line: 3 });
    expect(err.message).toMatch(/nul\.jsonl:3: line holds a NUL byte at column 1/);
    const inside = jsonl('nul-inside.jsonl', `{"prompt": "abc\0def", "response": "x"}`);
    expect((await inputError(rows(inside))).message).toMatch(/nul-inside\.jsonl:3: line holds a NUL byte at column 16/);
    // A file that ends in a run of NULs (a hole left by a crash) fails too.
    const tail = join(scratch, 'nul-tail.jsonl');
    writeFileSync(tail, `${record(1)}\n${record(2)}\n${'\0'.repeat(4096)}`);
    expect(await inputError(rows(tail))).toMatchObject({ line: 3 });
    // With skipInvalid, the line is skipped and counted, not dropped silently.
    const ds = await openDataset(path, { skipInvalid: true });
    for await (const _ of ds);
    expect(ds.skipped.count).toBe(1);
    expect(ds.skipped.first[0]!.message).toMatch(/NUL byte/);
  });

  it('in CSV too', async () => {
    const csv = join(scratch, 'nul.csv');
    writeFileSync(csv, `prompt,response\nhello there,general\n\0\0\0\0,x\nlast one,here\n`);
    const err = await inputError(rows(csv));
    expect(err.message).toMatch(/nul\.csv:3: line 3: line holds a NUL byte at column 1/);
  });
});
