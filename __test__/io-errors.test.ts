// One test per class of bad input: each names the file, the line and, where
// there is one, the field; skipInvalid counts and goes on.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, IoError } from '../src/errors.js';
import { openDataset } from '../src/io/index.js';
import { DATA, jsonl, put, readAll, tempDir } from './io-helpers.js';

const dir = tempDir();

/** The InputError that reading `path` whole throws. */
async function inputError(path: string, options = {}): Promise<InputError> {
  try {
    await readAll(path, options);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error(`${path} was read without error`);
}

describe('bad input', () => {
  it('truncated JSONL line: file:line, what went wrong and an excerpt', async () => {
    const path = put(dir, 'truncated.jsonl', `${jsonl([{ prompt: 'a', response: 'b' }])}{"prompt": "c", "resp`);
    const err = await inputError(path);
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/^.*truncated\.jsonl:2: invalid JSON: Unterminated string .*"resp/);
  });

  it('real malformed lines: alpaca-libre v2 line 2279', async () => {
    const err = await inputError(join(DATA, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v2.jsonl'));
    expect(err.line).toBe(2279);
    expect(err.message).toMatch(
      /:2279: invalid JSON: Expected ',' or '}' after property value at column 97, near .*input/,
    );
  });

  it('a JSONL line that is not an object', async () => {
    const path = put(dir, 'array-line.jsonl', `${jsonl([{ prompt: 'a' }])}[1, 2]\n`);
    const err = await inputError(path);
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/expected a JSON object, found an array/);
  });

  it('invalid UTF-8 names its line', async () => {
    const good = Buffer.from(jsonl([{ prompt: 'ok' }]));
    const bad = Buffer.concat([Buffer.from('{"prompt": "caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]);
    const path = put(dir, 'latin.jsonl', Buffer.concat([good, good, bad]));
    const err = await inputError(path);
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/:3: line is not valid UTF-8/);
    const csv = put(
      dir,
      'latin.csv',
      Buffer.concat([Buffer.from('prompt\nok\n'), Buffer.from([0xff]), Buffer.from('\n')]),
    );
    expect((await inputError(csv)).line).toBe(3);
    const json = put(
      dir,
      'latin.json',
      Buffer.concat([Buffer.from('[\n{"prompt": "ok"},\n{"prompt": "'), Buffer.from([0xff]), Buffer.from('"}\n]')]),
    );
    expect((await inputError(json)).line).toBe(3);
  });

  it('a UTF-8 BOM and CRLF line ends are fine', async () => {
    const bom = '\ufeff';
    const path = put(
      dir,
      'bom.jsonl',
      `${bom}{"prompt":"p1","response":"r1"}\r\n\r\n{"prompt":"p2","response":"r2"}\r\n`,
    );
    const rows = await readAll(path);
    expect(rows.map((r) => [r.record.line, r.text.prompt, r.text.response])).toEqual([
      [1, 'p1', 'r1'],
      [3, 'p2', 'r2'],
    ]);
    const csv = put(dir, 'bom.csv', `${bom}prompt,response\r\np,r\r\n`);
    expect((await readAll(csv))[0]!.record.value).toEqual({ prompt: 'p', response: 'r' });
  });

  it('an empty file (or only a header) has no records', async () => {
    for (const [name, content] of [
      ['empty.jsonl', ''],
      ['blank.jsonl', '\n\n  \n'],
      ['empty.json', '[]'],
      ['header.csv', 'prompt,response\n'],
    ]) {
      const err = await inputError(put(dir, name!, content!));
      expect(err.message).toMatch(/has no records/);
    }
  });

  it('a missing field names the field and the line', async () => {
    const path = put(
      dir,
      'missing.jsonl',
      jsonl([
        { instruction: 'i', output: 'o' },
        { instruction: 'i2', input: '' },
      ]),
    );
    const err = await inputError(path);
    expect([err.line, err.field]).toEqual([2, 'output']);
    expect(err.message).toMatch(/missing\.jsonl:2: missing field "output"/);
  });

  it('a mistyped field says what type it had', async () => {
    const path = put(
      dir,
      'mistyped.jsonl',
      jsonl([
        { question: 'q', answer: 'a' },
        { question: 'q2', answer: 42 },
      ]),
    );
    const err = await inputError(path);
    expect([err.line, err.field]).toEqual([2, 'answer']);
    expect(err.message).toMatch(/field "answer" is a number, expected a string/);
    const chat = put(
      dir,
      'mistyped-chat.jsonl',
      jsonl([
        {
          messages: [
            { role: 'user', content: 'hi' },
            { role: 'assistant', content: { text: 'x' } },
          ],
        },
      ]),
    );
    const e2 = await inputError(chat);
    expect(e2.field).toBe('messages[1].content');
    expect(e2.message).toMatch(/messages\[1\]\.content is an object, expected a string/);
    const role = put(dir, 'role.jsonl', jsonl([{ conversations: [{ from: 'alien', value: 'x' }] }]));
    expect((await inputError(role)).message).toMatch(/unknown role "alien"/);
  });

  it('mixed record formats are an error', async () => {
    const path = put(
      dir,
      'mixed.jsonl',
      jsonl([{ instruction: 'i', input: '', output: 'o' }, { messages: [{ role: 'user', content: 'hi' }] }]),
    );
    const err = await inputError(path);
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/looks like messages but the file's layout is alpaca: mixed record formats/);
  });

  it('a first record that is not in the requested format', async () => {
    const path = put(dir, 'not-sharegpt.jsonl', jsonl([{ prompt: 'p' }]));
    const err = await openDataset(path, { recordFormat: 'sharegpt' }).then(
      () => undefined,
      (e: unknown) => e as InputError,
    );
    expect(err).toBeInstanceOf(InputError);
    expect(err!.message).toMatch(
      /not-sharegpt\.jsonl:1: cannot tell the record format from the fields \{"prompt"\}: expected the sharegpt format/,
    );
  });

  it('a first record whose prompt is null: the message names the field and its type', async () => {
    const path = put(dir, 'null-prompt.jsonl', jsonl([{ prompt: null, response: 'r', n: 3 }]));
    const err = await inputError(path);
    expect(err.message).toMatch(
      /null-prompt\.jsonl:1: cannot tell the record format from the fields \{"prompt": null, "response", "n": a number\}/,
    );
  });

  it('a record with no text at all', async () => {
    const path = put(
      dir,
      'blank-text.jsonl',
      jsonl([
        { prompt: 'p', response: 'r' },
        { prompt: ' ', response: '' },
      ]),
    );
    expect((await inputError(path)).message).toMatch(/:2: record has no text/);
  });

  it('a record of punctuation only (nothing an embedder can use)', async () => {
    const path = put(
      dir,
      'no-words.jsonl',
      jsonl([
        { prompt: 'p', response: 'r' },
        { prompt: 'p2', response: 'r2' },
        { prompt: '?!', response: '…' },
      ]),
    );
    const err = await inputError(path);
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/:3: record has no words/);
    expect(
      (
        await inputError(
          put(
            dir,
            'cjk-ok.jsonl',
            jsonl([
              { prompt: '?!', response: '' },
              { prompt: '日本語', response: '' },
            ]),
          ),
        )
      ).line,
    ).toBe(1);
  });

  it('a ragged CSV row names the line the record starts on', async () => {
    const path = put(dir, 'ragged.csv', 'prompt,response\np1,r1\n"p2\nstill p2",r2,extra\n');
    const err = await inputError(path);
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/row has 3 fields but the header has 2/);
  });

  it('an unclosed CSV quote names the line where it opened', async () => {
    const path = put(dir, 'unclosed.csv', 'prompt,response\np1,r1\n"p2,r2\np3,r3\n');
    const err = await inputError(path);
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/never closed/);
  });

  it('invalid JSON file: the line of the parse error', async () => {
    const path = put(dir, 'bad.json', '[\n{"prompt": "a"},\n{"prompt": "b",}\n]');
    const err = await inputError(path);
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/invalid JSON/);
    const notRecords = put(dir, 'scalar.json', '[{"prompt": "a"}, 3]');
    expect((await inputError(notRecords)).message).toMatch(/:2: record 2 is a number, expected an object/);
  });

  it('a missing file or a directory is an IoError', async () => {
    await expect(openDataset(join(dir, 'nope.jsonl'))).rejects.toBeInstanceOf(IoError);
    await expect(openDataset(dir, { format: 'jsonl' })).rejects.toBeInstanceOf(IoError);
  });

  it('a file that is not Parquet', async () => {
    const path = put(dir, 'fake.parquet', 'not parquet at all');
    await expect(openDataset(path)).rejects.toThrow(/not a readable Parquet file/);
  });
});

describe('skipInvalid', () => {
  it('counts the invalid records, keeps the first reasons and goes on (alpaca-libre v2: 14 malformed lines)', async () => {
    const ds = await openDataset(join(DATA, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v2.jsonl'), {
      skipInvalid: true,
    });
    let n = 0;
    let last = -1;
    for await (const { record } of ds) {
      expect(record.index).toBe(last + 1);
      last = record.index;
      n++;
    }
    expect(ds.skipped.count).toBe(14);
    expect(ds.skipped.first).toHaveLength(5);
    expect(ds.skipped.first[0]!.line).toBe(2279);
    expect(n).toBe(2280);
    expect(ds.count).toBe(2280);
  });

  it('skips invalid records before the first valid one when detecting the layout', async () => {
    const path = put(
      dir,
      'skip-first.jsonl',
      `not json\n{"foo": 1}\n${jsonl([{ goal: 'g', target: 't' }])}{"goal": 5, "target": "t"}\n`,
    );
    await expect(openDataset(path)).rejects.toThrow(/skip-first\.jsonl:1: invalid JSON/);
    const ds = await openDataset(path, { skipInvalid: true });
    expect(ds.fields).toEqual({ prompt: 'goal', response: 'target' });
    const rows = await readAll(path, { skipInvalid: true });
    expect(rows.map((r) => [r.record.index, r.record.line])).toEqual([[0, 3]]);
    expect(ds.skipped.count).toBe(0); // counters belong to a pass; none ran yet
    for await (const _ of ds);
    expect(ds.skipped.count).toBe(3);
    expect(ds.skipped.first.map((e) => e.line)).toEqual([1, 2, 4]);
  });

  it('a ragged CSV row is skipped and the rest read', async () => {
    const path = put(dir, 'ragged-skip.csv', 'prompt,response\np1,r1\np2\np3,r3\n');
    const ds = await openDataset(path, { skipInvalid: true });
    const rows = [];
    for await (const row of ds) rows.push(row.text.prompt);
    expect(rows).toEqual(['p1', 'p3']);
    expect(ds.skipped.count).toBe(1);
  });

  it('no valid record at all is still an error', async () => {
    const path = put(dir, 'all-bad.jsonl', 'x\ny\n');
    await expect(openDataset(path, { skipInvalid: true })).rejects.toThrow(
      /no valid records \(2 invalid; the first: .*:1: invalid JSON/,
    );
  });
});
