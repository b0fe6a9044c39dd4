// The write pass of purify --shards: each shard writes its part of the
// dataset, the scores and the removed file, and the coordinator joins the
// parts. Joined, they are byte for byte what one shard writes and what the
// whole-file writers write for the same selection, in every format the
// shards write (with skipped records and CSV fields that span lines); a
// shard killed in the write pass is retried alone; an abort or a failure in
// it leaves no output and every existing file as it was.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCORES_CSV_HEADER, writeScoreRows } from '../src/fit/score.js';
import { purifySharded, type ShardedOptions, type ShardedResult } from '../src/fit/shards.js';
import { type AtomicWriter, openAtomicWriter } from '../src/io/atomic.js';
import { openDataset } from '../src/io/index.js';
import { writeColumns, writeDataset, type ColumnValue } from '../src/io/write.js';
import { REMOVED_FIELDS, removedFields } from '../src/pipeline/removed.js';
import { contaminated, type Contaminated, writeJsonl } from './datasets.js';

const FORMATS = ['jsonl', 'csv', 'tsv', 'json'] as const;
type Format = (typeof FORMATS)[number];

describe('the write pass of a sharded run', () => {
  let c: Contaminated;
  let anchor: string;
  const inputs = {} as Record<Format, string>;
  let common: Omit<ShardedOptions, 'input' | 'shards'>;

  beforeAll(() => {
    c = contaminated(200, 20);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    // every fourth instruction spans lines and quotes a word: CSV records cross the shards' byte splits
    const rows = c.records.map((r, i) => ({
      ...r,
      instruction: i % 4 === 0 ? `${r.instruction}\r\nsecond line of "record" ${r.id}, here\n` : r.instruction,
    }));
    const jsonl = rows.map((r) => JSON.stringify(r));
    jsonl.splice(30, 0, '{"instruction": "unterminated'); // skipped: not JSON
    jsonl.splice(150, 0, '{"id": -1}'); // skipped: no text
    inputs.jsonl = join(c.dir, 'train.jsonl');
    writeFileSync(inputs.jsonl, `${jsonl.join('\n')}\n`);
    const cols = ['id', 'instruction', 'input', 'output', 'source'] as const;
    const q = (v: unknown) => `"${String(v).replaceAll('"', '""')}"`;
    const csv = rows.map((r) => cols.map((k) => q(r[k])).join(','));
    csv.splice(77, 0, '"-1","","","","benign"'); // skipped: no text
    inputs.csv = join(c.dir, 'train.csv');
    writeFileSync(inputs.csv, `${cols.join(',')}\r\n${csv.join('\r\n')}\r\n`);
    const t = (v: unknown) => String(v).replace(/[\t\r\n"]/g, ' ');
    inputs.tsv = join(c.dir, 'train.tsv');
    writeFileSync(
      inputs.tsv,
      `${cols.join('\t')}\n${rows.map((r) => cols.map((k) => t(r[k])).join('\t')).join('\n')}\n`,
    );
    inputs.json = join(c.dir, 'train.json');
    writeFileSync(inputs.json, JSON.stringify({ meta: { name: 'test' }, data: rows }, null, 1));
    common = {
      harmful: ['advbench'],
      anchor: [anchor],
      embeddingCache: false,
      workers: 2,
      sample: 150,
      refit: 0,
      keep: { count: 180 },
      skipInvalid: true,
      html: null,
      createdAt: '2026-01-01T00:00:00.000Z',
    };
  });
  afterAll(async () => (await import('./service-helpers.js')).removeTempDirs());

  const run = (format: Format, name: string, shards: number, extra: Partial<ShardedOptions> = {}) =>
    purifySharded({
      ...common,
      input: inputs[format],
      shards,
      output: join(c.dir, `${name}.${format}`),
      scores: join(c.dir, `${name}.scores.csv`),
      removed: join(c.dir, `${name}.removed.${format}`),
      report: join(c.dir, `${name}.report.json`),
      ...extra,
    });
  const bytes = (p: string | null) => readFileSync(p!);
  const written = (dir: string) => readdirSync(dir);

  /** The files the whole-file writers write for the selection in the run's scores file, and the removed values in its removed file. */
  async function reference(
    format: Format,
    r: ShardedResult,
  ): Promise<{ dataset: Buffer; scores: Buffer; removed: Buffer }> {
    const rows = readFileSync(r.outputs.scores, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(',').map(Number));
    const n = rows.length;
    const col = (k: number) => Float64Array.from(rows, (x) => x[k]!);
    const [score, pull, push, rank, kept, trainWeight] = [2, 3, 4, 5, 6, 7].map(col) as [
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
    ];
    expect(rows.map((x) => x[0])).toEqual(Array.from({ length: n }, (_, i) => i));
    const into = async (path: string, fill: (out: AtomicWriter) => Promise<unknown>) => {
      const out = await openAtomicWriter(path);
      await fill(out);
      await out.commit();
      return readFileSync(path);
    };
    const source = () => openDataset(inputs[format], { skipInvalid: true });
    const dir = mkdtempSync(join(c.dir, 'reference-'));
    await writeDataset(await source(), join(dir, `dataset.${format}`), {
      keep: (i) => (kept[i] ? trainWeight[i] : undefined),
    });
    const scores = await into(join(dir, 'scores.csv'), async (out) => {
      await out.write(SCORES_CSV_HEADER);
      const lines = Uint32Array.from(rows, (x) => x[1]!);
      await writeScoreRows(
        out,
        { score, pull, push, lines },
        { rank: Uint32Array.from(rank), kept: Uint8Array.from(kept), trainWeight },
        0,
      );
    });
    // the values of the removed records, in order, as the run's removed file holds them (CSV: as text)
    const values: ColumnValue[][] = [];
    for await (const { record } of await openDataset(r.outputs.removed!)) {
      const v = record.value;
      const F = REMOVED_FIELDS;
      values.push([...[F.score, F.rank, F.pull, F.push].map((f) => Number(v[f])), String(v[F.reason])]);
    }
    let j = 0;
    const removed = await into(join(dir, `removed.${format}`), (out) =>
      source().then((ds) =>
        writeColumns(ds, out, {
          fields: removedFields(true),
          values: (i) => (kept[i] ? undefined : values[j++]),
          taken: () => new Error('taken'),
        }),
      ),
    );
    expect(j).toBe(n - r.k);
    return { dataset: readFileSync(join(dir, `dataset.${format}`)), scores, removed };
  }

  for (const format of FORMATS) {
    it(`${format}: the joined parts of 3 shards are the bytes of 1 shard and of the whole-file writers`, async () => {
      const three = await run(format, `three-${format}`, 3);
      const one = await run(format, `one-${format}`, 1);
      expect(three.writeAttempts).toEqual([1, 1, 1]);
      expect(three.k).toBe(180);
      for (const k of ['dataset', 'scores', 'removed'] as const)
        expect(bytes(three.outputs[k]).equals(bytes(one.outputs[k])), k).toBe(true);
      const ref = await reference(format, three);
      expect(bytes(three.outputs.dataset).equals(ref.dataset)).toBe(true);
      expect(bytes(three.outputs.scores).equals(ref.scores)).toBe(true);
      expect(bytes(three.outputs.removed).equals(ref.removed)).toBe(true);
      // the report still counts what its pass over the input skipped, and hashes the joined files
      const skipped = { jsonl: 2, csv: 1, tsv: 0, json: 0 }[format];
      expect(three.report.input.skipped).toBe(skipped);
      expect(three.report.input.skippedReasons).toHaveLength(skipped);
      expect(three.report.files!.dataset.bytes).toBe(bytes(three.outputs.dataset).length);
    }, 120_000);
  }

  it('a shard killed in the write pass is retried alone; the outputs are unchanged', async () => {
    const before = await run('jsonl', 'before-kill', 3);
    const events: string[] = [];
    const killed = await run('jsonl', 'killed', 3, {
      onShardWrite: (e) => {
        events.push(`${e.shard}:${e.attempt}:${e.state}`);
        if (e.shard === 1 && e.attempt === 1 && e.state === 'started') process.kill(e.pid!, 'SIGKILL');
      },
    });
    expect(killed.writeAttempts).toEqual([1, 2, 1]);
    expect(killed.attempts).toEqual(before.attempts);
    expect(events.filter((e) => e.startsWith('1:')).sort()).toEqual([
      '1:1:failed',
      '1:1:started',
      '1:2:done',
      '1:2:started',
    ]);
    for (const k of ['dataset', 'scores', 'removed'] as const)
      expect(bytes(killed.outputs[k]).equals(bytes(before.outputs[k])), k).toBe(true);
  }, 120_000);

  it('an abort or a failure in the write pass writes nothing and leaves existing files as they were', async () => {
    const dir = mkdtempSync(join(c.dir, 'fail-'));
    const work = mkdtempSync(join(c.dir, 'work-'));
    const outputs = {
      output: join(dir, 'new.jsonl'),
      scores: join(dir, 'new.scores.csv'),
      removed: join(dir, 'new.removed.jsonl'),
      report: join(dir, 'new.report.json'),
    };
    writeFileSync(outputs.output, 'the previous purified file\n');
    const ac = new AbortController();
    const aborted = await run('jsonl', 'unused', 3, {
      ...outputs,
      workDir: work,
      signal: ac.signal,
      onShardWrite: (e) => e.state === 'started' && ac.abort(),
    }).catch((e: unknown) => e);
    expect(aborted).toMatchObject({ code: 'ERR_ABORTED' });
    expect(written(dir)).toEqual(['new.jsonl']);
    expect(readFileSync(outputs.output, 'utf8')).toBe('the previous purified file\n');
    expect(readdirSync(work)).toEqual([]);

    // A record holding a field the removed file adds: the write pass fails on it (not retried) and names it.
    const lines = readFileSync(inputs.jsonl, 'utf8').split('\n');
    const at = lines.length - 5; // in the last shard
    lines[at] = JSON.stringify({ ...JSON.parse(lines[at]!), sot_reason: 'mine' });
    const taken = join(c.dir, 'taken.jsonl');
    writeFileSync(taken, lines.join('\n'));
    const failed = await purifySharded({ ...common, ...outputs, input: taken, shards: 3, workDir: work }).catch(
      (e: unknown) => e,
    );
    expect(failed).toMatchObject({ code: 'ERR_INPUT', file: taken, line: at + 1, field: 'sot_reason' });
    expect((failed as Error).message).toContain(`${taken}:${at + 1}`);
    expect((failed as Error).message).toContain('sot_reason');
    expect(written(dir)).toEqual(['new.jsonl']);
    expect(readFileSync(outputs.output, 'utf8')).toBe('the previous purified file\n');
    expect(readdirSync(work)).toEqual([]);
    expect(existsSync(outputs.report)).toBe(false);
  }, 120_000);
});
