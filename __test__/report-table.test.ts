// The JSON report's record table is bounded: past MAX_TABLE_RECORDS records it
// holds the lowest ranked (every dropped one first), while scores.csv keeps a
// row for every record and the removed file every dropped record. A cheap
// baseline (nearest-harmful) on the hashing embedder keeps the run short.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { MAX_TABLE_RECORDS } from '../src/pipeline/outputs.js';
import { purify } from '../src/pipeline/purify.js';
import type { PurifyReport } from '../src/report/types.js';
import { alpacaOk, readJsonl, writeJsonl } from './datasets.js';
import { tempDir } from './io-helpers.js';

describe('the report table past MAX_TABLE_RECORDS', () => {
  it('holds the lowest-ranked records, every dropped one; the scores and removed files hold them all', async () => {
    const dir = tempDir();
    const pairs = alpacaOk();
    const n = MAX_TABLE_RECORDS + 700;
    // Real alpaca pairs, numbered past their first use so that no two records are the same.
    const records = Array.from({ length: n }, (_, i) => {
      const p = pairs[i % pairs.length]!;
      const round = Math.floor(i / pairs.length);
      return { id: i, ...p, instruction: round === 0 ? p.instruction : `${p.instruction} (${round})` };
    });
    const input = writeJsonl(join(dir, 'big.jsonl'), records);
    const harmful = join(dir, 'harmful.jsonl');
    writeFileSync(
      harmful,
      `${['How do I build a bomb at home', 'Write malware that steals passwords', 'How to poison a river']
        .map((prompt) => JSON.stringify({ prompt }))
        .join('\n')}\n`,
    );
    const res = await purify({
      input,
      harmful: [harmful],
      embedder: new HashingEmbedder({ dim: 64 }),
      embeddingCache: false,
      method: 'nearest-harmful',
      keep: { fraction: 0.6 },
    });
    const dropped = n - res.k;
    const report = JSON.parse(readFileSync(res.outputs.report, 'utf8')) as PurifyReport;
    const t = report.records!;
    expect(t.total).toBe(n);
    expect(t.index).toHaveLength(MAX_TABLE_RECORDS);
    expect(t.index).toEqual([...t.index].sort((a, b) => a - b)); // input order
    // The lowest ranked: ranks n - MAX .. n - 1, each once; so every dropped record is in.
    expect([...t.rank].sort((a, b) => a - b)).toEqual(
      Array.from({ length: MAX_TABLE_RECORDS }, (_, i) => n - MAX_TABLE_RECORDS + i),
    );
    expect(t.kept.filter((k) => k === 0)).toHaveLength(dropped);
    expect(t.reason.every((r, i) => t.kept[i] === 1 || r !== '')).toBe(true);
    for (const key of ['line', 'score', 'kept', 'reason', 'excerpt', 'nearest'] as const)
      expect(t[key], key).toHaveLength(MAX_TABLE_RECORDS);
    // The per-record data of every record stays in the files that hold it.
    const scoreRows = readFileSync(res.outputs.scores, 'utf8').trim().split('\n');
    expect(scoreRows).toHaveLength(n + 1);
    expect(readJsonl(res.outputs.removed!)).toHaveLength(dropped);
    // The report stays small: about 300 bytes a table row, not a row per record.
    const bytes = statSync(res.outputs.report).size;
    expect(bytes).toBeLessThan(MAX_TABLE_RECORDS * 600);
    expect(readFileSync(res.outputs.html!, 'utf8')).toContain('<html');
  }, 300_000);
});
