// Atomic writes and the writer's refusals: a failure midway leaves no temp
// file and the destination untouched; the input is never overwritten and a
// changed input is not written from.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  lstatSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortError, IoError, OptionError } from '../src/errors.js';
import {
  commitAll,
  isTempName,
  openAtomicWriter,
  openDataset,
  withAtomicWriter,
  writeDataset,
  writeFileAtomic,
} from '../src/io/index.js';
import { jsonl, put, tempDir } from './io-helpers.js';

const dir = tempDir();
const temps = (d: string) => readdirSync(d).filter((f) => f.endsWith('.tmp'));

describe('atomic writer', () => {
  it('writeFileAtomic replaces the file and leaves no temp file', async () => {
    const path = put(dir, 'a.txt', 'old');
    await writeFileAtomic(path, ['new ', Buffer.from('bytes')]);
    expect(readFileSync(path, 'utf8')).toBe('new bytes');
    expect(temps(dir)).toEqual([]);
  });

  it('names its temp file .<name>.<pid>.<random>.tmp in the same directory', async () => {
    const w = await openAtomicWriter(join(dir, 'b.txt'));
    expect(w.tempPath).toMatch(new RegExp(`/\\.b\\.txt\\.${process.pid}\\.[0-9a-f]+\\.tmp$`));
    await w.abort();
    expect(temps(dir)).toEqual([]);
  });

  it('a writer that fails midway leaves the destination untouched and no temp file', async () => {
    const path = put(dir, 'c.txt', 'precious');
    await expect(
      withAtomicWriter(path, async (w) => {
        await w.write('x'.repeat(3 << 20)); // past the buffer: really on disk
        expect(temps(dir)).toHaveLength(1);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(readFileSync(path, 'utf8')).toBe('precious');
    expect(temps(dir)).toEqual([]);
  });

  it('an unwritable destination is an IoError', async () => {
    await expect(writeFileAtomic(join(dir, 'no-such-dir', 'x.txt'), 'x')).rejects.toBeInstanceOf(IoError);
  });

  it('replace: false keeps an existing destination (first writer wins) and leaves no temp file', async () => {
    const path = join(dir, 'first.json');
    expect(await writeFileAtomic(path, 'one', { replace: false })).toBe(true);
    expect(await writeFileAtomic(path, 'two', { replace: false })).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('one');
    expect(temps(dir)).toEqual([]);
  });

  it('a symlinked destination is written through: the link stays, its target gets the new bytes', async () => {
    const target = put(dir, 'target.txt', 'old');
    symlinkSync(target, join(dir, 'via-link.txt'));
    await writeFileAtomic(join(dir, 'via-link.txt'), 'new');
    expect(lstatSync(join(dir, 'via-link.txt')).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('new');
  });

  it('a dangling link is written through too (its target created); links that loop are an IoError', async () => {
    symlinkSync('made-by-write.txt', join(dir, 'dangling.txt'));
    await writeFileAtomic(join(dir, 'dangling.txt'), 'new');
    expect(lstatSync(join(dir, 'dangling.txt')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'made-by-write.txt'), 'utf8')).toBe('new');
    symlinkSync('loop-b.txt', join(dir, 'loop-a.txt'));
    symlinkSync('loop-a.txt', join(dir, 'loop-b.txt'));
    await expect(writeFileAtomic(join(dir, 'loop-a.txt'), 'x')).rejects.toThrow(/loop-a\.txt: its symbolic links loop/);
    expect(lstatSync(join(dir, 'loop-a.txt')).isSymbolicLink()).toBe(true);
    expect(temps(dir)).toEqual([]);
  });

  it('never renames over a pipe or a folder: refused by default, streamed to with nonRegular: stream', async () => {
    const fifo = join(dir, 'w.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    await expect(writeFileAtomic(fifo, 'x')).rejects.toThrow(/refusing to write .*w\.fifo: it is not a regular file/);
    await expect(writeFileAtomic(dir, 'x', { nonRegular: 'stream' })).rejects.toThrow(/it is a folder/);
    expect(statSync(fifo).isFIFO()).toBe(true);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    let got = '';
    reader.stdout.on('data', (b: Buffer) => (got += b.toString()));
    const closed = new Promise((res) => reader.on('close', res));
    await writeFileAtomic(fifo, ['streamed ', 'bytes'], { nonRegular: 'stream' });
    await closed;
    expect(got).toBe('streamed bytes');
    expect(statSync(fifo).isFIFO()).toBe(true);
    expect(temps(dir)).toEqual([]);
  });

  it('commitAll renames prepared writers in order; an abort before it leaves every destination as it was', async () => {
    const [a, b] = [put(dir, 'set-a.txt', 'a0'), put(dir, 'set-b.txt', 'b0')];
    const open2 = async (x: string, y: string) => {
      const wa = await openAtomicWriter(a, { hash: true });
      const wb = await openAtomicWriter(b, { hash: true });
      await wa.write(x);
      await wb.write(y);
      await wa.prepare();
      await wb.prepare();
      return [wa, wb] as const;
    };
    const [xa, xb] = await open2('a1', 'b1');
    await Promise.all([xa.abort(), xb.abort()]);
    expect([readFileSync(a, 'utf8'), readFileSync(b, 'utf8')]).toEqual(['a0', 'b0']);
    expect(temps(dir)).toEqual([]);
    const [wa, wb] = await open2('a2', 'b2');
    expect(wa.digest()).toEqual({ bytes: 2, sha256: createHash('sha256').update('a2').digest('hex') });
    await commitAll([wa, wb]);
    expect([readFileSync(a, 'utf8'), readFileSync(b, 'utf8')]).toEqual(['a2', 'b2']);
    expect(temps(dir)).toEqual([]);
  });

  it("isTempName knows its own temp names and the caches' older .tmp-<pid>-<hex>", () => {
    expect(isTempName(`.out.jsonl.${process.pid}.0123456789ab.tmp`)).toBe(true);
    expect(isTempName('.tmp-123-abcdef012345')).toBe(true);
    expect(isTempName('out.jsonl')).toBe(false);
    expect(isTempName('0123.chunk')).toBe(false);
  });
});

describe('writeDataset', () => {
  const records = jsonl([1, 2, 3, 4, 5].map((n) => ({ prompt: `p${n}`, response: `r${n}` })));

  it('fails midway without touching the destination (a throwing keep function)', async () => {
    const input = put(dir, 'in1.jsonl', records);
    const out = put(dir, 'out1.jsonl', 'previous output\n');
    const keep = (i: number) => {
      if (i === 3) throw new Error('selection broke');
      return 1;
    };
    await expect(writeDataset(await openDataset(input), out, { keep })).rejects.toThrow('selection broke');
    expect(readFileSync(out, 'utf8')).toBe('previous output\n');
    expect(temps(dir)).toEqual([]);
  });

  it('an aborted write leaves nothing behind', async () => {
    const input = put(dir, 'in2.jsonl', records);
    const out = join(dir, 'out2.jsonl');
    const ctl = new AbortController();
    const keep = (i: number) => {
      if (i === 2) ctl.abort();
      return 1;
    };
    await expect(writeDataset(await openDataset(input), out, { keep, signal: ctl.signal })).rejects.toBeInstanceOf(
      AbortError,
    );
    expect(readdirSync(dir)).not.toContain('out2.jsonl');
    expect(temps(dir)).toEqual([]);
  });

  it('refuses to write onto the input, also through a symlink', async () => {
    const input = put(dir, 'in3.jsonl', records);
    const ds = await openDataset(input);
    await expect(writeDataset(ds, input, { keep: () => 1 })).rejects.toThrow(IoError);
    await expect(writeDataset(ds, join(dir, '.', 'in3.jsonl'), { keep: () => 1 })).rejects.toThrow(
      /it is the input file/,
    );
    symlinkSync(input, join(dir, 'link.jsonl'));
    await expect(writeDataset(ds, join(dir, 'link.jsonl'), { keep: () => 1 })).rejects.toThrow(/it is the input file/);
    expect(readFileSync(input, 'utf8')).toBe(records);
  });

  it('fails clearly when the input changed between the read and the write', async () => {
    const input = put(dir, 'in4.jsonl', records);
    const ds = await openDataset(input);
    for await (const _ of ds);
    appendFileSync(input, jsonl([{ prompt: 'p6', response: 'r6' }]));
    const out = join(dir, 'out4.jsonl');
    await expect(writeDataset(ds, out, { keep: () => 1 })).rejects.toThrow(/changed while SOT was using it/);
    expect(readdirSync(dir)).not.toContain('out4.jsonl');
    // same size, new modification time
    const other = put(dir, 'in5.jsonl', records);
    const ds5 = await openDataset(other);
    writeFileSync(other, records.replace('p1', 'q1'));
    utimesSync(other, new Date(), new Date(Date.now() + 5000));
    await expect(writeDataset(ds5, join(dir, 'out5.jsonl'), { keep: () => 1 })).rejects.toBeInstanceOf(IoError);
  });

  it('rejects bad weights, unknown indices and an output of another format', async () => {
    const ds = await openDataset(put(dir, 'in6.jsonl', records));
    await expect(writeDataset(ds, join(dir, 'o6.jsonl'), { keep: () => Number.NaN })).rejects.toBeInstanceOf(
      OptionError,
    );
    await expect(writeDataset(ds, join(dir, 'o6.jsonl'), { keep: new Map([[7, 1]]) })).rejects.toThrow(
      /keep names record 7 but .* has 5 records/,
    );
    await expect(writeDataset(ds, join(dir, 'o6.csv'), { keep: () => 1 })).rejects.toThrow(
      /names a csv file but the input is jsonl/,
    );
    await expect(writeDataset(ds, join(dir, 'o6.jsonl'), { keep: () => 1, weightField: '' })).rejects.toBeInstanceOf(
      OptionError,
    );
    expect(readdirSync(dir).filter((f) => f.startsWith('o6'))).toEqual([]);
    expect(temps(dir)).toEqual([]);
  });

  it('refuses a record that already has the weight field (InputError naming it and the line), writing nothing', async () => {
    const input = put(
      dir,
      'in7.jsonl',
      jsonl([
        { prompt: 'p', response: 'r' },
        { prompt: 'q', response: 's', score: 2 },
      ]),
    );
    const ds = await openDataset(input);
    const out = join(dir, 'o7.jsonl');
    await expect(writeDataset(ds, out, { keep: () => 1, weightField: 'score' })).rejects.toMatchObject({
      code: 'ERR_INPUT',
      line: 2,
      field: 'score',
    });
    expect(readdirSync(dir)).not.toContain('o7.jsonl');
    await writeDataset(ds, out, { keep: () => 1, weightField: 'w' });
    expect(readFileSync(out, 'utf8')).toBe(
      jsonl([
        { prompt: 'p', response: 'r', w: 1 },
        { prompt: 'q', response: 's', score: 2, w: 1 },
      ]),
    );
    expect(temps(dir)).toEqual([]);
  });

  it('a JSON file: each kept record as written (64-bit ids, 1e400, -0.0, layout), a weight field named __proto__ too', async () => {
    const text =
      '{"meta": {"n": 12345678901234567891, "dup": [1]},\n "data": [\n' +
      '  {"id": 1234567890123456789, "prompt": "p\\u00e9", "v": 1e400},\n' +
      '  {"id": 1234567890123456790,\n   "prompt": "q", "z": -0.0, "w": {"a": [1, "]}"]}},\n' +
      '  {"id": 1234567890123456791, "prompt": "r", "x": 1}\n ],\n "tail": 1.50}\n';
    const input = put(dir, 'ids.json', text);
    const ds = await openDataset(input);
    const out = join(dir, 'ids.out.json');
    await writeDataset(ds, out, { keep: (i) => (i === 1 ? undefined : i + 1) });
    expect(readFileSync(out, 'utf8')).toBe(
      '{"meta": {"n": 12345678901234567891, "dup": [1]},\n "data": [\n' +
        '{"id": 1234567890123456789, "prompt": "p\\u00e9", "v": 1e400,"sot_weight":1},\n' +
        '{"id": 1234567890123456791, "prompt": "r", "x": 1,"sot_weight":3}\n],\n "tail": 1.50}\n',
    );
    const proto = join(dir, 'ids.proto.json');
    await writeDataset(ds, proto, { keep: () => 0.5, weightField: '__proto__' });
    const parsed = JSON.parse(readFileSync(proto, 'utf8')) as { data: object[] };
    expect(parsed.data.map((r) => Object.hasOwn(r, '__proto__'))).toEqual([true, true, true]);
    expect(readFileSync(proto, 'utf8')).toContain('"z": -0.0, "w": {"a": [1, "]}"]},"__proto__":0.5}');
    const plain = put(dir, 'plain.json', '[{"text": "a", "id": 12345678901234567891}, {"text": "b", "id": 2}]');
    await writeDataset(await openDataset(plain), join(dir, 'plain.out.json'), { keep: () => 1 });
    expect(readFileSync(join(dir, 'plain.out.json'), 'utf8')).toBe(
      '[\n{"text": "a", "id": 12345678901234567891,"sot_weight":1},\n{"text": "b", "id": 2,"sot_weight":1}\n]\n',
    );
  });

  it('a JSONL line keeps the spaces around its object; a CSV column named __proto__ is a field like any other', async () => {
    const input = put(dir, 'ws.jsonl', '  {"prompt": "a", "response": "b"}\t \n{"prompt": "c", "response": "d"}\n');
    const ds = await openDataset(input);
    await writeDataset(ds, join(dir, 'ws.same.jsonl'), { keep: () => 1, weightField: null });
    expect(readFileSync(join(dir, 'ws.same.jsonl'), 'utf8')).toBe(readFileSync(input, 'utf8'));
    await writeDataset(ds, join(dir, 'ws.w.jsonl'), { keep: () => 2 });
    expect(readFileSync(join(dir, 'ws.w.jsonl'), 'utf8')).toBe(
      '  {"prompt": "a", "response": "b","sot_weight":2}\t \n{"prompt": "c", "response": "d","sot_weight":2}\n',
    );
    const csv = await openDataset(put(dir, 'proto.csv', 'prompt,response,__proto__\na,b,mine\n'));
    await expect(
      writeDataset(csv, join(dir, 'proto.out.csv'), { keep: () => 1, weightField: '__proto__' }),
    ).rejects.toMatchObject({
      code: 'ERR_INPUT',
      field: '__proto__',
    });
    await writeDataset(csv, join(dir, 'proto.out.csv'), { keep: () => 1 });
    expect(readFileSync(join(dir, 'proto.out.csv'), 'utf8')).toBe('prompt,response,__proto__,sot_weight\na,b,mine,1\n');
  });

  it('quotes CSV cells that need it and keeps CRLF line ends', async () => {
    const input = put(dir, 'q.csv', 'prompt,response\r\n"a, b","say ""hi""\r\nbye"\r\nplain,x\r\n');
    const out = join(dir, 'q.out.csv');
    await writeDataset(await openDataset(input), out, { keep: () => 1 });
    expect(readFileSync(out, 'utf8')).toBe(
      'prompt,response,sot_weight\r\n"a, b","say ""hi""\r\nbye",1\r\nplain,x,1\r\n',
    );
  });
});
