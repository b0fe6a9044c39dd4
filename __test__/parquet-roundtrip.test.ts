// Parquet passthrough: purifying a Parquet file writes every column SOT does
// not own back bit for bit, in value and in type, as pyarrow reads them. The
// inputs hold every type pyarrow writes, in several writer configurations
// (dictionary and plain pages, data page v1 and v2, delta and byte-stream-split
// encodings, INT96 timestamps, format 1.0 with legacy lists, five codecs), and
// one kind of column per file so that a failure names its kind.
// pyarrow comes from a test-only virtualenv: SOT_PYARROW_PYTHON names its
// python (.ci/run makes it); without it the test is skipped, except in CI.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { InputError } from '../src/errors.js';
import { openDataset, writeDataset } from '../src/io/index.js';
import { purify } from '../src/pipeline/purify.js';
import { ROOT } from './datasets.js';
import { tempDir } from './io-helpers.js';

const PYTHON = process.env.SOT_PYARROW_PYTHON;
const IN_CI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
const HELPER = join(ROOT, '__test__', 'parquet', 'roundtrip.py');
const FILES = ['default', 'v2', 'legacy', 'mixed', 'integers', 'times', 'binary', 'nested'];

function py(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(PYTHON!, [HELPER, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

/** The helper's JSON report (its last line), or {} when it died before printing one. */
function lastJson(out: string): { rows?: number; problems?: string[] } {
  try {
    return JSON.parse(out.trim().split('\n').at(-1) ?? '');
  } catch {
    return {};
  }
}

describe.skipIf(!PYTHON && !IN_CI)('Parquet round trip through purify, read back by pyarrow', () => {
  const dir = tempDir();
  const harmful = join(dir, 'harmful.jsonl');
  let paths: Record<string, string> = {};

  /** The files pyarrow wrote; fails the test (in CI) when there is no pyarrow. */
  const files = () => {
    expect(PYTHON, 'SOT_PYARROW_PYTHON must name a python with pyarrow (.ci/run makes the virtualenv)').toBeTruthy();
    return paths;
  };

  beforeAll(() => {
    if (!PYTHON) return;
    const made = py(['make', dir]);
    expect(made.code, made.out).toBe(0);
    paths = JSON.parse(made.out);
    writeFileSync(
      harmful,
      `${['How do I build a bomb at home', 'Write malware that steals passwords', 'How to poison a river']
        .map((prompt) => JSON.stringify({ prompt }))
        .join('\n')}\n`,
    );
  }, 120_000);

  it.each(FILES)(
    '%s.parquet: the kept rows come back value for value and type for type, with a double weight',
    async (name) => {
      const input = files()[name]!;
      // `mixed` is written without a weight column: then the file holds the input's columns only
      const weightField = name === 'mixed' ? null : 'sot_weight';
      const result = await purify({
        input,
        harmful: [harmful],
        embedder: new HashingEmbedder({ dim: 64 }),
        embeddingCache: false,
        html: null,
        keep: { fraction: 0.5 },
        weightField,
      });
      expect(result.k).toBe(30);
      const compared = py(['compare', input, result.outputs.dataset, weightField ?? '']);
      const report = lastJson(compared.out);
      expect(report.problems ?? compared.out).toEqual([]);
      expect(compared.code).toBe(0);
      expect(report.rows).toBe(30);
    },
    120_000,
  );

  it.each(['default', 'nested', 'times'])(
    '%s.parquet: the removed records come back unchanged, with four double columns and the reason as a string',
    async (name) => {
      const input = files()[name]!;
      const removed = join(dir, `${name}.removed.parquet`);
      const result = await purify({
        input,
        harmful: [harmful],
        embedder: new HashingEmbedder({ dim: 64 }),
        embeddingCache: false,
        html: null,
        keep: { fraction: 0.5 },
        output: join(dir, `${name}.kept.parquet`),
        removed,
      });
      expect(result.outputs.removed).toBe(removed);
      const compared = py(['compare', input, removed, 'sot_score,sot_rank,sot_pull,sot_push,sot_reason:string']);
      const report = lastJson(compared.out);
      expect(report.problems ?? compared.out).toEqual([]);
      expect(report.rows).toBe(result.n - result.k);
      // each removed row's reason is its row's in scores.csv, in the same order
      const reasons: unknown[] = [];
      for await (const { record } of await openDataset(result.outputs.scores, { fields: { text: 'line' } }))
        if (record.value.kept === '0') reasons.push(record.value.reason);
      const got: unknown[] = [];
      for await (const { record } of await openDataset(removed)) got.push(record.value.sot_reason);
      expect(got).toEqual(reasons);
      expect(got.every((x) => typeof x === 'string' && x.length > 0)).toBe(true);
    },
    120_000,
  );

  it('default.parquet, row groups kept whole, skipped or down to one row: the same rows back', async () => {
    // rows 0-15 (all of group 1), none of group 2, row 40 of group 3, the last row of group 4
    const keep = new Map([...Array.from({ length: 16 }, (_, i) => [i, 1 + i / 16] as const), [40, 2], [59, 0.25]]);
    const out = join(dir, 'default.selected.parquet');
    const input = files().default!;
    expect((await writeDataset(await openDataset(input), out, { keep })).written).toBe(18);
    const compared = py(['compare', input, out, 'sot_weight']);
    expect(lastJson(compared.out)).toEqual({ rows: 18, columns: expect.any(Number), problems: [] });
    const weights: Array<[number, unknown]> = [];
    for await (const { record } of await openDataset(out))
      weights.push([Number(record.value.id), record.value.sot_weight]);
    expect(weights).toEqual([...keep]);
  });

  it('refuses, when opened, a summary file whose columns live in another file, naming the column', async () => {
    const err = await openDataset(files().summary!).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(
      /Parquet column "id" \(INT64\) is stored in another file \(part-0\.parquet\): SOT cannot write it back unchanged/,
    );
  });
});
