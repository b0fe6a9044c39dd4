// Dataset readers on real public files (read in place) and on generated chat
// and Parquet files; record layouts; renderText; write -> read round trips.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.js';
import { openDataset, renderText, writeDataset, DEFAULT_TEMPLATE } from '../src/io/index.js';
import { DATA, jsonl, put, readAll, tempDir } from './io-helpers.js';

const ALPACA_V1 = join(DATA, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl');
const ADVBENCH = join(DATA, 'refusal-direction/dataset/raw/advbench.csv');
const HH = join(DATA, 'hh-rlhf/harmless-base/test.jsonl');
const GSM8K = join(DATA, 'gsm8k/grade_school_math/data/train.jsonl');
const HARMBENCH = join(DATA, 'harmbench/data/behavior_datasets/harmbench_behaviors_text_val.csv');
const COMPLETIONS = join(
  DATA,
  'refusal-direction/pipeline/runs/gemma-2b-it/completions/harmless_baseline_evaluations.json',
);
const AOA = join(DATA, 'llms-finetuning-safety/gpt-3.5/data/identity-shift-aoa.jsonl');

const dir = tempDir();

describe('readers on real files', () => {
  it('reads alpaca-libre v1 (JSONL, alpaca) with 1-based lines and input joined to the instruction', async () => {
    const ds = await openDataset(ALPACA_V1);
    expect(ds.format).toBe('jsonl');
    expect(ds.recordFormat).toBe('alpaca');
    const rows = [];
    for await (const row of ds) rows.push(row);
    expect(rows).toHaveLength(2375);
    expect(rows[0]!.record).toMatchObject({ index: 0, line: 1 });
    expect(rows[0]!.text).toEqual({ prompt: 'Generate a haiku poem about nature.', response: 'The wind in the trees' });
    const withInput = rows.find((r) => (r.record.value.input as string) !== '')!;
    expect(withInput.text.prompt).toBe(`${withInput.record.value.instruction}\n\n${withInput.record.value.input}`);
    expect(ds.count).toBe(2375);
  });

  it('reads gsm8k (question/answer) as prompt-response', async () => {
    const ds = await openDataset(GSM8K);
    expect(ds.recordFormat).toBe('prompt-response');
    expect(ds.fields).toEqual({ prompt: 'question', response: 'answer' });
    let n = 0;
    for await (const row of ds) if (n++ === 0) expect(row.text.prompt).toMatch(/^Natalia sold clips/);
    expect(n).toBe(7473);
  });

  it('reads AdvBench (CSV goal/target) and HarmBench (CSV Behavior, quoted fields)', async () => {
    const adv = await readAll(ADVBENCH);
    expect(adv).toHaveLength(520);
    expect(adv[0]!.record.line).toBe(2);
    expect(adv[0]!.text.response).toMatch(/^Sure, here is/);
    const hb = await openDataset(HARMBENCH);
    expect(hb.fields).toEqual({ prompt: 'Behavior' });
    const rows = await readAll(HARMBENCH);
    expect(rows).toHaveLength(80);
    expect(rows.some((r) => r.text.prompt.includes('"'))).toBe(true);
    expect(rows.every((r) => r.text.response === '')).toBe(true);
  });

  it('reads hh-rlhf with an explicit text field, and says how when the layout is unknown', async () => {
    await expect(openDataset(HH)).rejects.toThrow(
      /cannot tell the record format .*"chosen", "rejected".*fields option/,
    );
    const ds = await openDataset(HH, { fields: { text: 'rejected' } });
    expect(ds.recordFormat).toBe('text');
    let n = 0;
    for await (const row of ds) {
      if (n++ === 0) expect(row.text.text).toMatch(/^\n\nHuman: /);
    }
    expect(n).toBe(2312);
  });

  it('reads a JSON file whose records sit in an object property', async () => {
    const rows = await readAll(COMPLETIONS);
    expect(rows).toHaveLength(100);
    expect(rows[0]!.record.line).toBe(1);
    expect(rows[0]!.text.prompt).toBe('Name some benefits of eating healthy.');
  });

  it('reads OpenAI messages, ignoring system turns', async () => {
    const ds = await openDataset(AOA);
    expect(ds.recordFormat).toBe('messages');
    const rows = await readAll(AOA);
    expect(rows).toHaveLength(10);
    expect(rows[0]!.text.prompt).toMatch(/^Hey, AOA/);
    expect(rows[0]!.text.prompt).not.toMatch(/Absolutely Obedient Agent/);
  });

  it('streams the file again on every iteration', async () => {
    const ds = await openDataset(ADVBENCH);
    const first = [];
    for await (const r of ds) first.push(r.text.prompt);
    const second = [];
    for await (const r of ds) second.push(r.text.prompt);
    expect(second).toEqual(first);
  });
});

describe('generated formats', () => {
  it('reads sharegpt conversations: user turns joined as prompt, assistant turns as response', async () => {
    const path = put(
      dir,
      'chat.jsonl',
      jsonl([
        {
          conversations: [
            { from: 'system', value: 'be nice' },
            { from: 'human', value: 'hi' },
            { from: 'gpt', value: 'hello' },
            { from: 'human', value: 'how are you?' },
            { from: 'gpt', value: 'fine' },
          ],
        },
      ]),
    );
    const [row] = await readAll(path);
    expect(row!.text).toEqual({ prompt: 'hi\n\nhow are you?', response: 'hello\n\nfine' });
  });

  it('reads messages whose content is a list of text parts', async () => {
    const path = put(
      dir,
      'parts.jsonl',
      jsonl([
        {
          messages: [
            {
              role: 'user',
              content: [{ type: 'text', text: 'a' }, { type: 'image_url' }, { type: 'text', text: 'b' }],
            },
            { role: 'assistant', content: 'c' },
          ],
        },
      ]),
    );
    const [row] = await readAll(path);
    expect(row!.text).toEqual({ prompt: 'a\nb', response: 'c' });
  });

  it('sniffs a .json file that holds JSON Lines', async () => {
    const path = put(
      dir,
      'lines.json',
      jsonl([
        { prompt: 'p1', response: 'r1' },
        { prompt: 'p2', response: 'r2' },
      ]),
    );
    const ds = await openDataset(path);
    expect(ds.format).toBe('jsonl');
    expect((await readAll(path)).map((r) => r.text.prompt)).toEqual(['p1', 'p2']);
  });

  it('reads a TSV file', async () => {
    const path = put(dir, 'x.tsv', 'question\tanswer\nq1\t"a\tb"\n');
    const rows = await readAll(path);
    expect(rows[0]!.text).toEqual({ prompt: 'q1', response: 'a\tb' });
  });

  it('reads CSV quoted fields with embedded newlines and quotes, reporting the line a record starts on', async () => {
    const path = put(
      dir,
      'multi.csv',
      'prompt,response\r\n"line one\r\nline two","he said ""hi"""\r\nsecond,"x,y"\r\n',
    );
    const rows = await readAll(path);
    expect(rows.map((r) => r.record.line)).toEqual([2, 4]);
    expect(rows[0]!.text).toEqual({ prompt: 'line one\r\nline two', response: 'he said "hi"' });
    expect(rows[1]!.text.response).toBe('x,y');
  });

  it('reads Parquet row group by row group with 1-based row numbers', async () => {
    const path = join(dir, 'small.parquet');
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: 'instruction', data: ['i1', 'i2', 'i3', 'i4', 'i5'], type: 'STRING' },
        { name: 'input', data: ['', 'ctx', '', '', ''], type: 'STRING' },
        { name: 'output', data: ['o1', 'o2', 'o3', 'o4', 'o5'], type: 'STRING' },
        { name: 'id', data: [1, 2, 3, 4, 5], type: 'INT32' },
      ],
      rowGroupSize: 2,
    });
    const ds = await openDataset(path);
    expect(ds.format).toBe('parquet');
    expect(ds.recordFormat).toBe('alpaca');
    const rows = await readAll(path);
    expect(rows.map((r) => r.record.line)).toEqual([1, 2, 3, 4, 5]);
    expect(rows[1]!.text).toEqual({ prompt: 'i2\n\nctx', response: 'o2' });
    expect(rows[4]!.record.value).toEqual({ instruction: 'i5', input: '', output: 'o5', id: 5 });
  });
});

describe('record layout options', () => {
  it('overrides detection with fields (prompt list joined by a blank line)', async () => {
    const path = put(dir, 'fields.jsonl', jsonl([{ a: 'x', b: 'y', c: 'z', instruction: 'i', output: 'o' }]));
    const [row] = await readAll(path, { fields: { prompt: ['a', 'b'], response: 'c' } });
    expect(row!.text).toEqual({ prompt: 'x\n\ny', response: 'z' });
  });

  it('takes an explicit record format', async () => {
    const path = put(dir, 'explicit.jsonl', jsonl([{ text: 't', prompt: 'p', response: 'r' }]));
    expect((await openDataset(path)).recordFormat).toBe('prompt-response');
    const [row] = await readAll(path, { recordFormat: 'text' });
    expect(row!.text).toEqual({ prompt: 't', response: '', text: 't' });
  });

  it('rejects bad options with OptionError', async () => {
    const path = put(dir, 'opt.jsonl', jsonl([{ prompt: 'p' }]));
    await expect(openDataset(path, { recordFormat: 'nope' as never })).rejects.toBeInstanceOf(OptionError);
    await expect(openDataset(path, { fields: { text: 't', prompt: 'p' } })).rejects.toBeInstanceOf(OptionError);
    await expect(openDataset(path, { recordFormat: 'alpaca', fields: { prompt: 'p' } })).rejects.toBeInstanceOf(
      OptionError,
    );
    await expect(openDataset(path, { format: 'xml' as never })).rejects.toBeInstanceOf(OptionError);
    await expect(openDataset(put(dir, 'data.txt', 'x'))).rejects.toThrow(/cannot tell the format/);
  });
});

describe('renderText', () => {
  it('fills the default template and trims it when the response is empty', () => {
    expect(DEFAULT_TEMPLATE).toBe('{prompt}\n\n{response}');
    expect(renderText({ prompt: 'p', response: 'r' })).toBe('p\n\nr');
    expect(renderText({ prompt: 'p', response: '' })).toBe('p');
  });

  it('fills custom templates once, leaving braces inside the texts alone', () => {
    expect(renderText({ prompt: 'say {response}', response: 'ok' }, 'User: {prompt}\nBot: {response} ({prompt})')).toBe(
      'User: say {response}\nBot: ok (say {response})',
    );
  });

  it('returns text records as they are', () => {
    expect(renderText({ prompt: 'whole', response: '', text: 'whole' }, 'Q: {prompt}')).toBe('whole');
  });

  it('rejects a template without placeholders', () => {
    expect(() => renderText({ prompt: 'p', response: 'r' }, 'no placeholders')).toThrow(OptionError);
  });
});

describe('write -> read round trips', () => {
  const all = (i: number) => i + 0.5;

  it.each([
    ['JSONL', ALPACA_V1, 'alpaca.jsonl'],
    ['CSV', ADVBENCH, 'advbench.csv'],
    ['CSV with quotes', HARMBENCH, 'harmbench.csv'],
    ['JSON in a wrapper object', COMPLETIONS, 'completions.json'],
  ])('%s: all kept gives the same records plus the weight', async (_, input, name) => {
    // CSV cells read back as strings
    const weight = (i: number) => (name.endsWith('.csv') ? String(i + 0.5) : i + 0.5);
    const source = await openDataset(input);
    const out = join(dir, name);
    const result = await writeDataset(source, out, { keep: all });
    const before = await readAll(input);
    const after = await readAll(out);
    expect(result.written).toBe(before.length);
    expect(after).toHaveLength(before.length);
    after.forEach((row, i) => {
      expect(row.record.value).toEqual({ ...before[i]!.record.value, sot_weight: weight(i) });
      expect(row.text).toEqual(before[i]!.text);
    });
  });

  it('JSONL keeps every original line byte for byte apart from the spliced weight', async () => {
    const source = await openDataset(GSM8K);
    const out = join(dir, 'gsm8k.jsonl');
    await writeDataset(source, out, { keep: () => 1, weightField: null });
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(GSM8K, 'utf8'));
  });

  it('writes only the kept records, in input order, with their weights', async () => {
    const path = put(dir, 'five.jsonl', jsonl([1, 2, 3, 4, 5].map((n) => ({ prompt: `p${n}`, response: `r${n}` }))));
    const out = join(dir, 'five.out.jsonl');
    const keep = new Map([
      [3, 0.25],
      [0, 2],
      [4, 1],
    ]);
    const r = await writeDataset(await openDataset(path), out, { keep, weightField: 'w' });
    expect(r.written).toBe(3);
    expect(readFileSync(out, 'utf8')).toBe(
      '{"prompt":"p1","response":"r1","w":2}\n{"prompt":"p4","response":"r4","w":0.25}\n{"prompt":"p5","response":"r5","w":1}\n',
    );
  });

  it("refuses to replace an existing weight field (the user's value): an InputError naming it and the line", async () => {
    const path = put(dir, 'weighted.csv', 'prompt,sot_weight,response\np,0.1,r\n');
    const out = join(dir, 'weighted.out.csv');
    await expect(writeDataset(await openDataset(path), out, { keep: () => 3 })).rejects.toMatchObject({
      code: 'ERR_INPUT',
      line: 2,
      field: 'sot_weight',
    });
    expect(existsSync(out)).toBe(false);
  });

  it('Parquet: keeps the schema and adds a DOUBLE weight column', async () => {
    const path = join(dir, 'rt.parquet');
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: 'prompt', data: ['a', 'b', 'c'], type: 'STRING' },
        { name: 'response', data: ['x', 'y', 'z'], type: 'STRING' },
        { name: 'big', data: [1n, 2n, 3n], type: 'INT64' },
      ],
      rowGroupSize: 2,
    });
    const out = join(dir, 'rt.out.parquet');
    await writeDataset(await openDataset(path), out, { keep: all });
    const after = await readAll(out);
    expect(after.map((r) => r.record.value)).toEqual([
      { prompt: 'a', response: 'x', big: 1n, sot_weight: 0.5 },
      { prompt: 'b', response: 'y', big: 2n, sot_weight: 1.5 },
      { prompt: 'c', response: 'z', big: 3n, sot_weight: 2.5 },
    ]);
  });

  it('Parquet: a nested LIST<STRUCT> messages column reads as chat and survives the round trip', async () => {
    const path = join(dir, 'chat.parquet');
    const messages = [
      [
        { role: 'system', content: 's' },
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'yo' },
      ],
      [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
      ],
    ];
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: 'messages', data: messages },
        { name: 'id', data: [1n, 2n] },
      ],
      schema: [
        { name: 'root', num_children: 2 },
        { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
        { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'content', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'id', type: 'INT64', repetition_type: 'OPTIONAL' },
      ],
    });
    const source = await openDataset(path);
    expect(source.recordFormat).toBe('messages');
    const out = join(dir, 'chat.out.parquet');
    await writeDataset(source, out, { keep: new Map([[1, 0.75]]) });
    const after = await readAll(out);
    expect(after.map((r) => r.record.value)).toEqual([{ messages: messages[1], id: 2n, sot_weight: 0.75 }]);
    expect(after[0]!.text).toEqual({ prompt: 'a', response: 'b' });
  });

  it('writes a valid empty file when nothing is kept', async () => {
    const out = join(dir, 'none.csv');
    expect((await writeDataset(await openDataset(ADVBENCH), out, { keep: new Map() })).written).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe('goal,target,sot_weight\n');
    const outJson = join(dir, 'none.json');
    await writeDataset(await openDataset(COMPLETIONS), outJson, { keep: new Map() });
    expect(JSON.parse(readFileSync(outJson, 'utf8')).completions).toEqual([]);
  });
});
