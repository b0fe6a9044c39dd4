// Parquet shards are runs of row groups: split from the footer, each read
// alone by skipping the other row groups undecoded, with true row numbers.
// `purify --shards` over them writes byte for byte what one shard writes, and
// the records, scores and removed records of the same data as JSON Lines.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { fit } from '../src/fit/fit.js';
import { describeShard, readShard, runShard, type ShardTask } from '../src/fit/shard.js';
import { purifySharded, type ShardedOptions } from '../src/fit/shards.js';
import { openDataset, rowGroupRanges, type RowGroupRange } from '../src/io/index.js';
import { splitRowGroups } from '../src/io/row-groups.js';
import { CLI, contaminated, readJsonl, withoutRunFigures, writeJsonl, type Contaminated } from './datasets.js';
import { readAll } from './io-helpers.js';

/** Row groups of 60, 1, 90, 45, 120 and 84 records (400 in all). */
const GROUPS = [60, 1, 90, 45, 120, 84];
const COLS = ['id', 'instruction', 'input', 'output', 'source'] as const;

type Row = Record<(typeof COLS)[number], unknown>;

function writeParquet(path: string, rows: Row[]): string {
  parquetWriteFile({
    filename: path,
    columnData: COLS.map((k) => ({ name: k, data: rows.map((r) => r[k]), type: k === 'id' ? 'INT32' : 'STRING' })),
    rowGroupSize: GROUPS,
  } as never);
  return path;
}

/** A copy of `path` with every column chunk of the row groups in `groups` overwritten with garbage. */
function corrupt(path: string, out: string, groups: (g: number) => boolean): string {
  const bytes = readFileSync(path);
  const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  meta.row_groups.forEach((g, i) => {
    if (!groups(i)) return;
    for (const c of g.columns) {
      const m = c.meta_data!;
      const start = Math.min(Number(m.dictionary_page_offset ?? m.data_page_offset), Number(m.data_page_offset));
      bytes.fill(0xab, start, start + Number(m.total_compressed_size));
    }
  });
  writeFileSync(out, bytes);
  return out;
}

describe('splitRowGroups', () => {
  const footer = (rows: number[]) => ({ row_groups: rows.map((n) => ({ num_rows: BigInt(n) })) });
  it('cuts at the row-group boundary nearest each share of the rows; empty row groups and runs are left out', () => {
    // boundaries at rows 0, 10, 10, 40, 41, 100: the shares of 3 parts are 33.3 and 66.7
    expect(splitRowGroups(footer([10, 0, 30, 1, 59]), 3)).toEqual([
      { group: 0, groups: 3, row: 0, rows: 40 },
      { group: 3, groups: 1, row: 40, rows: 1 },
      { group: 4, groups: 1, row: 41, rows: 59 },
    ]);
    // one large row group: one run, however many parts
    expect(splitRowGroups(footer([100]), 4)).toEqual([{ group: 0, groups: 1, row: 0, rows: 100 }]);
    expect(splitRowGroups(footer([0, 0]), 2)).toEqual([]);
    // against a brute force: every run starts at the boundary nearest its share
    let seed = 5;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let t = 0; t < 200; t++) {
      const rows = Array.from({ length: 1 + rand(12) }, () => (rand(4) === 0 ? 0 : rand(50)));
      const parts = 1 + rand(10);
      const runs = splitRowGroups(footer(rows), parts);
      const starts = [0];
      for (const n of rows) starts.push(starts.at(-1)! + n);
      const total = starts.at(-1)!;
      expect(runs.reduce((a, r) => a + r.rows, 0)).toBe(total);
      expect(runs.length).toBeLessThanOrEqual(Math.min(parts, rows.filter((n) => n > 0).length));
      const shares = Array.from({ length: parts - 1 }, (_, s) => ((s + 1) * total) / parts);
      const nearest = (row: number, share: number) => starts.every((b) => Math.abs(row - share) <= Math.abs(b - share));
      // each run after the first starts at the boundary nearest one of the shares
      for (const r of runs.slice(1)) expect(shares.some((share) => nearest(r.row, share))).toBe(true);
      expect(runs[0]?.row ?? 0).toBe(0);
    }
  });
  it('names a row-group shard by its row groups and rows', () => {
    const t = { rowGroups: { group: 2, groups: 2, row: 61, rows: 135 } } as ShardTask;
    expect(describeShard(t)).toBe('row groups 2 to 3, rows 62 to 196');
  });
});

describe('Parquet shards by row group', () => {
  let c: Contaminated;
  let rows: Row[];
  let parquet: string;
  let jsonl: string;
  let anchor: string;
  let common: Omit<ShardedOptions, 'shards'>;

  beforeAll(() => {
    c = contaminated(360, 40);
    // nullable text: every 7th input is null (an optional field); two records
    // have no instruction (null in Parquet; null, then missing, in JSON Lines):
    // invalid, skipped
    rows = c.records.map((r, i) => ({
      ...r,
      input: i % 7 === 0 ? null : r.input,
      instruction: i === 61 || i === 250 ? null : r.instruction,
    }));
    parquet = writeParquet(join(c.dir, 'train.parquet'), rows);
    jsonl = writeJsonl(
      join(c.dir, 'train.jsonl'),
      rows.map((r, i) => {
        if (i !== 250) return r;
        const { instruction: _, ...rest } = r;
        return rest;
      }),
    );
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    common = {
      input: parquet,
      harmful: ['advbench'],
      anchor: [anchor],
      embeddingCache: false,
      skipInvalid: true,
      workers: 2,
      sample: 150,
      keep: { count: 300 },
      createdAt: '2026-01-01T00:00:00.000Z',
    };
  });
  afterAll(async () => (await import('node:fs')).rmSync(c.dir, { recursive: true, force: true }));

  it('splits the row groups into runs of about equal rows, from the footer; each run reads alone with its file rows', async () => {
    const meta = parquetMetadata(new Uint8Array(readFileSync(parquet)).buffer);
    expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual(GROUPS);
    const whole = await readAll(parquet, { skipInvalid: true });
    expect(whole).toHaveLength(398);
    for (const parts of [1, 2, 3, 4, 6, 8, 50]) {
      const runs = await rowGroupRanges(parquet, parts);
      // contiguous, in file order, every row group and row once; no more runs than row groups
      expect(runs.length).toBeLessThanOrEqual(Math.min(parts, GROUPS.length));
      let group = 0;
      let row = 0;
      for (const r of runs) {
        expect(r).toEqual({ group, groups: r.groups, row, rows: r.rows });
        expect(r.rows).toBe(GROUPS.slice(r.group, r.group + r.groups).reduce((a, b) => a + b, 0));
        group += r.groups;
        row += r.rows;
        // no run is further from its share of the rows than the largest row group
        expect(Math.abs(r.rows - 400 / parts)).toBeLessThanOrEqual(parts === 1 ? 0 : 400 / parts + 120);
      }
      expect([group, row]).toEqual([GROUPS.length, 400]);
      // read alone, the runs hold the file's records in order, with their rows as lines
      const read: unknown[] = [];
      for (const r of runs) {
        const got = await readAll(parquet, { skipInvalid: true, range: r });
        for (const { record } of got) expect(record.line).toBeGreaterThan(r.row);
        read.push(...got.map(({ record, text }) => [record.line, record.value, text]));
      }
      expect(read).toEqual(whole.map(({ record, text }) => [record.line, record.value, text]));
    }
    // the row group of 1 record alone, and the runs of 8 parts: one per row group
    expect((await rowGroupRanges(parquet, 8)).map((r) => r.rows)).toEqual(GROUPS);
    const single = await readAll(parquet, { range: { group: 1, groups: 1, row: 60, rows: 1 } });
    expect(single.map((r) => [r.record.index, r.record.line, r.record.value.id])).toEqual([[0, 61, 60]]);
  });

  it("refuses runs that are not the file's, and row-group ranges of other formats", async () => {
    const range = { group: 1, groups: 2, row: 61, rows: 91 }; // group 1 starts at row 60
    await expect(readAll(parquet, { range })).rejects.toThrow(InputError);
    await expect(readAll(parquet, { range })).rejects.toThrow(
      /row groups 1 to 2 .* changed since the ranges were taken/,
    );
    await expect(readAll(parquet, { range: { group: 5, groups: 2, row: 316, rows: 84 } })).rejects.toThrow(
      /not in the file's 6 row groups/,
    );
    await expect(openDataset(parquet, { range: { group: 0, groups: 0, row: 0, rows: 0 } })).rejects.toMatchObject({
      code: 'ERR_OPTION',
    });
    await expect(
      openDataset(jsonl, { range: { group: 0, groups: 1, row: 0, rows: 60 } as RowGroupRange }),
    ).rejects.toThrow(/only Parquet files are read by row group/);
    await expect(openDataset(parquet, { range: { start: 0, end: 10, line: 1 } })).rejects.toThrow(
      /can be read by byte range/,
    );
    await expect(rowGroupRanges(parquet, 0)).rejects.toMatchObject({ code: 'ERR_OPTION' });
  });

  it('a shard decodes only its row groups: garbage in all the others leaves its result unchanged', async () => {
    const model = join(c.dir, 'model.sot-model');
    await fit({ ...common, model, refit: 0 });
    const { layout } = await openDataset(parquet, { skipInvalid: true });
    const runs = await rowGroupRanges(parquet, 4);
    expect(runs[1]).toEqual({ group: 2, groups: 2, row: 61, rows: 135 });
    const task = (input: string, s: number, out: string): ShardTask => ({
      input,
      skipInvalid: true,
      embeddingCache: false,
      model,
      shard: s,
      rowGroups: runs[s]!,
      layout,
      out: join(c.dir, out),
    });
    await runShard(task(parquet, 1, 'intact.bin'));
    const intact = await readShard(join(c.dir, 'intact.bin'));
    expect(intact.score.length).toBe(134); // row 62 (the record at index 61) has no instruction
    expect(Array.from(intact.lines.subarray(0, 3))).toEqual([63, 64, 65]);
    // every row group outside the run is garbage: the shard reads what it read from the intact file
    const elsewhere = corrupt(parquet, join(c.dir, 'elsewhere.parquet'), (g) => g < 2 || g > 3);
    await runShard(task(elsewhere, 1, 'elsewhere.bin'));
    expect(await readShard(join(c.dir, 'elsewhere.bin'))).toEqual(intact);
    // the garbage is there: the shards that hold it fail on it, naming the file and the row group
    const err = await runShard(task(elsewhere, 2, 'never.bin')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ code: 'ERR_INPUT', file: elsewhere, line: 197 });
    expect((err as Error).message).toMatch(/cannot decode row group 4 \(rows 197-316\)/);
  }, 120_000);

  it('a corrupt row group: `sot purify --shards` fails with an input error naming the file and the row group', () => {
    const bad = corrupt(parquet, join(c.dir, 'bad.parquet'), (g) => g === 3);
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        bad,
        '--harmful',
        'advbench',
        '--anchor',
        anchor,
        '--shards',
        '3',
        '--keep-count',
        '100',
        '--skip-invalid',
        '--no-cache',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.signal).toBeNull();
    expect(r.status, r.stderr).toBe(3); // EXIT.input
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toMatch(/bad\.parquet:152: cannot decode row group 3 \(rows 152-196\)/);
  }, 120_000);

  it('purify --shards: more shards than row groups, byte for byte what 1 shard writes, and what JSON Lines gives', async () => {
    const run = (input: string, name: string, shards: number, refit = 0) => {
      const ext = input.endsWith('.parquet') ? 'parquet' : 'jsonl';
      return purifySharded({
        ...common,
        input,
        shards,
        refit,
        output: join(c.dir, `${name}.${ext}`),
        scores: join(c.dir, `${name}-scores.csv`),
        removed: join(c.dir, `${name}-removed.${ext}`),
        report: join(c.dir, `${name}-report.json`),
        html: null,
      });
    };
    const many = await run(parquet, 'many', 8);
    expect(many.attempts).toHaveLength(6); // one shard per row group
    const one = await run(parquet, 'one', 1);
    const bytes = (p: string | null) => readFileSync(p!);
    for (const k of ['dataset', 'scores', 'removed'] as const)
      expect(bytes(many.outputs[k]).equals(bytes(one.outputs[k])), k).toBe(true);
    const report = (r: typeof many, name: string) => {
      const text = readFileSync(r.outputs.report, 'utf8').replaceAll(`${c.dir}/${name}`, '<out>');
      const j = JSON.parse(withoutRunFigures(text));
      delete j.sharded.shards;
      delete j.sharded.attempts;
      return j;
    };
    expect(report(many, 'many')).toEqual(report(one, 'one'));
    expect(many.report.input).toMatchObject({ format: 'parquet', records: 398, skipped: 2 });

    // The same data in JSON Lines (records on lines 1 to 400, as the rows): the same scores file, records and reasons.
    const lines = await run(jsonl, 'lines', 3);
    expect(bytes(many.outputs.scores).equals(bytes(lines.outputs.scores))).toBe(true);
    const ids = async (p: string) => {
      const out: unknown[] = [];
      for await (const { record } of await openDataset(p)) out.push(record.value);
      return out;
    };
    expect(await ids(many.outputs.dataset)).toEqual(readJsonl(lines.outputs.dataset));
    const removed = await ids(many.outputs.removed!);
    expect(removed).toHaveLength(98);
    expect(removed).toEqual(readJsonl(lines.outputs.removed!));
    const asLines = JSON.parse(readFileSync(lines.outputs.report, 'utf8').replaceAll(`${c.dir}/lines`, '<out>'));
    const asRows = report(many, 'many');
    for (const j of [asLines, asRows]) {
      // the file names and the reasons' wording (a missing field here) aside
      j.input.path = j.input.format = j.input.skippedReasons = j.outputs = j.sharded = null;
      j.files.dataset = j.files.removed = null;
    }
    expect(JSON.parse(withoutRunFigures(JSON.stringify(asLines)))).toEqual(asRows);

    // A column pass over the row groups: the potentials' sums add up per shard,
    // so the scores agree with one shard's to rounding, and the kept records are the same.
    const refit = await run(parquet, 'refit-many', 8, 1);
    const refitOne = await run(parquet, 'refit-one', 1, 1);
    expect(refit.report.sharded).toMatchObject({ shards: 6, refit: 1, attempts: [4, 3, 4, 4, 4, 4] }); // the fit's two passes (the 1-row group, skipped, has no sampled record), a refit pass, the scoring
    const scores = (r: typeof many) =>
      readFileSync(r.outputs.scores, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(','));
    const [a, b] = [scores(refit), scores(refitOne)];
    expect(a.map((r) => r[0])).toEqual(b.map((r) => r[0]));
    a.forEach((r, i) => expect(Number(r[2])).toBeCloseTo(Number(b[i]![2]), 9));
    expect(await ids(refit.outputs.dataset)).toHaveLength(300);
    expect((await ids(refit.outputs.removed!)).map((v) => (v as { id: number }).id)).toEqual(
      (await ids(refitOne.outputs.removed!)).map((v) => (v as { id: number }).id),
    );
  }, 300_000);

  it('through Redis: the tasks cross the queue as plain data and merge the same records', async () => {
    const { startRedis, spawnCli, stopProcess, tempDir, removeTempDirs } = await import('./service-helpers.js');
    const redis = await startRedis();
    const worker = spawnCli(['shard-worker', '--redis', redis.url]);
    try {
      await worker.waitFor(/waiting for shards/);
      const o = { ...common, shards: 3, refit: 0, html: null, removed: null };
      const queued = await purifySharded({
        ...o,
        redis: redis.url,
        workDir: tempDir('sot-parquet-shared-'),
        output: join(c.dir, 'queued.parquet'),
        scores: join(c.dir, 'queued.csv'),
      });
      const local = await purifySharded({
        ...o,
        output: join(c.dir, 'local.parquet'),
        scores: join(c.dir, 'local.csv'),
      });
      expect(queued.attempts).toEqual([3, 3, 3]); // the fit's two passes and the scoring
      expect(readFileSync(queued.outputs.dataset).equals(readFileSync(local.outputs.dataset))).toBe(true);
      expect(readFileSync(queued.outputs.scores, 'utf8')).toBe(readFileSync(local.outputs.scores, 'utf8'));
    } finally {
      await stopProcess(worker.proc);
      await redis.stop();
      removeTempDirs();
    }
  }, 180_000);
});
