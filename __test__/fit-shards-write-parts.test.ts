// The parts a sharded run's write tasks write (io/write.ts, FilePart), joined
// in order, are the bytes of the whole-file writer, whichever parts hold
// records: none, all, only a middle one, every other record; a JSON
// container's head and tail, a CSV header with CRLF, quoted fields that span
// lines. In-process and small: the byte-exact joins without workers.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openAtomicWriter } from '../src/io/atomic.js';
import { openDataset, recordRanges } from '../src/io/index.js';
import { type FilePart, type RecordColumns, writeColumns, writeColumnsTo } from '../src/io/write.js';

const dir = mkdtempSync(join(tmpdir(), 'sot-write-parts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N = 40;
const rows = Array.from({ length: N }, (_, i) => ({
  id: i,
  instruction: i % 3 === 0 ? `task ${i}, "quoted"\r\nsecond line` : `task ${i}`,
  output: `answer ${i}`,
}));
const q = (v: unknown) => `"${String(v).replaceAll('"', '""')}"`;
const files = {
  jsonl: `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`,
  csv: `id,instruction,output\r\n${rows.map((r) => [r.id, r.instruction, r.output].map(q).join(',')).join('\r\n')}\r\n`,
  tsv: `id\tinstruction\toutput\n${rows.map((r) => [r.id, r.instruction.replace(/\s+/g, ' '), r.output].join('\t')).join('\n')}\n`,
  json: JSON.stringify({ meta: { source: 'test' }, data: rows }),
};
const selections: Record<string, (i: number) => boolean> = {
  none: () => false,
  all: () => true,
  middle: (i) => i >= 15 && i < 25,
  alternate: (i) => i % 2 === 1,
  last: (i) => i === N - 1,
};

/** The added field (the weight) of the records `keep` takes, by whole-file index. */
const columns = (keep: (i: number) => boolean, offset = 0): RecordColumns => ({
  fields: [{ name: 'sot_weight', type: 'double' }],
  values: (i) => (keep(i + offset) ? [(i + offset) / 8] : undefined),
  taken: () => new Error('taken'),
});

async function written(path: string, fill: (out: Awaited<ReturnType<typeof openAtomicWriter>>) => Promise<unknown>) {
  const out = await openAtomicWriter(path);
  await fill(out);
  await out.commit();
  return readFileSync(path);
}

describe('a file written in parts', () => {
  for (const [format, text] of Object.entries(files)) {
    const input = join(dir, `train.${format}`);
    writeFileSync(input, text);
    it(`${format}: the parts joined are the whole file, whichever parts hold records`, async () => {
      const parts = 3;
      // byte ranges for the line formats, record indices for JSON (as the shards read them)
      const ranges = format === 'json' ? [] : await recordRanges(input, parts);
      const count = format === 'json' ? parts : ranges.length;
      expect(count).toBe(parts);
      for (const [name, keep] of Object.entries(selections)) {
        const whole = await written(join(dir, `${format}-${name}-whole`), async (out) =>
          writeColumns(await openDataset(input), out, columns(keep)),
        );
        const pieces: Buffer[] = [];
        let from = 0;
        const kept = (to: number) => Array.from({ length: to }, (_, i) => keep(i)).some(Boolean);
        for (let s = 0; s < count; s++) {
          const to = format === 'json' ? Math.floor(((s + 1) * N) / parts) : 0;
          const ds = await openDataset(input, format === 'json' ? {} : { range: ranges[s]! });
          const path = join(dir, `${format}-${name}-${s}`);
          const piece = await written(path, async (out) => {
            if (format === 'json') {
              const part: FilePart = { head: s === 0, tail: s === count - 1, after: kept(from) };
              await writeColumnsTo(ds, [{ out, columns: columns(keep), part }], { range: { from, to } });
              from = to;
            } else {
              const part: FilePart = { head: s === 0, tail: s === count - 1, after: kept(from) };
              const r = await writeColumnsTo(ds, [{ out, columns: columns(keep, from), part }]);
              from += r.read;
            }
          });
          pieces.push(piece);
        }
        expect(from).toBe(N);
        expect(Buffer.concat(pieces).toString('utf8'), `${format}, ${name}`).toBe(whole.toString('utf8'));
      }
    });
  }
});
