// `purify --shards` over a CSV whose quoted fields span lines: the shards are
// byte ranges at row starts, and the outputs are those of one shard, and hold
// the records and scores of the same data sharded as JSON Lines.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purifySharded } from '../src/fit/shards.js';
import { parseCsv } from '../src/io/csv.js';
import { lineRanges, recordRanges } from '../src/io/index.js';
import { contaminated, readJsonl, writeJsonl, type Contaminated } from './datasets.js';

describe('sharded purification of CSV by byte range', () => {
  let c: Contaminated;
  let csv: string;
  let jsonl: string;
  let anchor: string;

  beforeAll(() => {
    c = contaminated(360, 40);
    // every third instruction spans lines (and quotes a word): naive line splits land inside fields
    const rows = c.records.map((r, i) => ({
      ...r,
      instruction: i % 3 === 0 ? `${r.instruction}\r\nsecond line of "record" ${r.id}\n` : r.instruction,
    }));
    const q = (v: unknown) => `"${String(v).replaceAll('"', '""')}"`;
    const lines = rows.map((r) => [r.id, r.instruction, r.input, r.output].map(q).join(','));
    csv = join(c.dir, 'train.csv');
    writeFileSync(csv, `\ufeffid,instruction,input,output\r\n${lines.join('\r\n')}\r\n`);
    jsonl = writeJsonl(join(c.dir, 'train.jsonl'), rows);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
  });
  afterAll(() => rmSync(c.dir, { recursive: true, force: true }));

  const run = (input: string, name: string, shards: number) =>
    purifySharded({
      input,
      harmful: ['advbench'],
      anchor: [anchor],
      embeddingCache: false,
      shards,
      workers: 2,
      sample: 150,
      refit: 0,
      keep: { count: 300 },
      output: join(c.dir, `${name}.${input.endsWith('.csv') ? 'csv' : 'jsonl'}`),
      scores: join(c.dir, `${name}-scores.csv`),
    });

  it('4 shards write byte for byte what 1 does, and the records and scores of JSON Lines shards', async () => {
    // the case at hand: some line starts near the split points are inside quoted fields
    const starts = new Set(parseCsv(readFileSync(csv, 'utf8'), csv).map((r) => r.line));
    const naive = (await lineRanges(csv, 4)).slice(1).map((r) => r.line);
    expect(naive.some((l) => !starts.has(l))).toBe(true);
    const ranges = await recordRanges(csv, 4);
    for (const r of ranges) expect(starts).toContain(r.line);

    const four = await run(csv, 'four', 4);
    const one = await run(csv, 'one', 1);
    expect(four.attempts.length).toBe(4);
    const bytes = (p: string) => readFileSync(p);
    expect(bytes(four.outputs.dataset).equals(bytes(one.outputs.dataset))).toBe(true);
    expect(bytes(four.outputs.scores).equals(bytes(one.outputs.scores))).toBe(true);

    const asJsonl = await run(jsonl, 'jsonl', 4);
    const kept = parseCsv(readFileSync(four.outputs.dataset, 'utf8'), four.outputs.dataset).map((r) => [
      Number(r.record.id),
      r.record.instruction,
    ]);
    expect(kept.length).toBe(300);
    expect(kept).toEqual(
      readJsonl<{ id: number; instruction: string }>(asJsonl.outputs.dataset).map((r) => [r.id, r.instruction]),
    );
    // scores.csv: the same records, scores and ranks; only the line column differs
    const cols = (p: string) =>
      readFileSync(p, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(',').filter((_, k) => k !== 1));
    expect(cols(four.outputs.scores)).toEqual(cols(asJsonl.outputs.scores));
  }, 180_000);
});
