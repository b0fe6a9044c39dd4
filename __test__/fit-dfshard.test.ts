// The fit's passes over every record in the shards of `purify --shards`:
// the shards' document-frequency tables add up to one fit over the whole file,
// bit for bit, the sample they embed is the one a fit in one process embeds,
// and the sharded run's model file is byte for byte `fit({ sample })`'s.
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { InputError } from '../src/errors.js';
import { embedRows, fit, uniformSample } from '../src/fit/fit.js';
import { arrayMatrix, isStored, rowsOf } from '../src/matrix.js';
import { runTask } from '../src/fit/shard.js';
import { COUNT_PASS, SAMPLE_PASS, shardedPasses, type FitShardTask, type ShardLayout } from '../src/fit/shard-fit.js';
import { purifySharded, shardLayout } from '../src/fit/shards.js';
import { PipelineInput } from '../src/pipeline/input.js';
import { alpacaOk, DATA_DIR, harmfulPairs, type Pair, shuffle, writeJsonl } from './datasets.js';

const HARMFUL = ['advbench'];
const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('the fit passes in the shards', () => {
  let dir: string;
  const files: Record<'jsonl' | 'csv' | 'json' | 'parquet', string> = { jsonl: '', csv: '', json: '', parquet: '' };
  let total = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sot-dfshard-'));
    // about 3,000 real records: Alpaca pairs, kept or not by its filter (multi-line outputs: quoted CSV fields over
    // several lines), and some harmful ones
    const alpaca = [1, 2].flatMap((v) =>
      readFileSync(join(DATA_DIR, `alpaca-libre/data/output/work/alpaca_libre_tasks_v${v}.jsonl`), 'utf8')
        .split('\n')
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Pair];
          } catch {
            return []; // a blank or cut line of the mirror
          }
        }),
    );
    const pairs = alpaca.slice(0, 2900).map(({ instruction, input, output }) => ({ instruction, input, output }));
    const records = shuffle([...pairs, ...harmfulPairs().slice(0, 100)], 5).map((r, id) => ({ id, ...r }));
    total = records.length;
    files.jsonl = writeJsonl(join(dir, 'train.jsonl'), records);
    const cols = ['id', 'instruction', 'input', 'output'] as const;
    const quote = (v: unknown) => `"${String(v).replace(/"/g, '""')}"`;
    files.csv = join(dir, 'train.csv');
    writeFileSync(
      files.csv,
      `${[cols.join(','), ...records.map((r) => cols.map((k) => quote(r[k])).join(','))].join('\n')}\n`,
    );
    files.json = join(dir, 'train.json');
    writeFileSync(files.json, JSON.stringify(records));
    files.parquet = join(dir, 'train.parquet');
    parquetWriteFile({
      filename: files.parquet,
      columnData: cols.map((k) => ({
        name: k,
        data: records.map((r) => r[k]),
        type: k === 'id' ? 'INT32' : 'STRING',
      })) as never,
      rowGroupSize: 700,
    });
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The layout purifySharded makes: byte ranges of JSON Lines and CSV, row groups of Parquet, record indices of JSON. */
  const layoutOf = (input: string, shards: number): Promise<ShardLayout> => shardLayout({ input }, shards);

  for (const format of ['jsonl', 'csv', 'json', 'parquet'] as const) {
    it(`merges the shards' tables into one fit's and embeds the same sample (${format}, 1, 3 and 7 shards)`, async () => {
      const input = files[format];
      // the reference: one HashingEmbedder.fit over the whole file, then the sample embedded in one read
      const whole = new HashingEmbedder();
      const one = await PipelineInput.open({ input });
      // a budget whose vectors' share holds 1024 dimensions of every record, not 2048
      const memoryBudget = 16 * total * 1024 * 4;
      const n = await one.count(whole, { memoryBudget });
      expect(n).toBe(total);
      expect(whole.dim).toBe(1024);
      const indices = uniformSample(n, 500, 3);
      const rows = await embedRows(
        one,
        indices,
        whole,
        null,
        undefined,
        () => {},
        arrayMatrix(indices.length, whole.dim),
      );
      for (const shards of [1, 3, 7]) {
        const work = mkdtempSync(join(dir, `work-${format}-${shards}-`));
        const passes: number[] = [];
        const ran: FitShardTask[] = [];
        // the tasks run as a worker runs them (runTask), here in this process
        const run = async (tasks: FitShardTask[], pass: number) => {
          passes.push(pass);
          for (const t of JSON.parse(JSON.stringify(tasks)) as FitShardTask[]) {
            ran.push(t);
            await runTask(t);
          }
        };
        const sharded = shardedPasses({ input }, await layoutOf(input, shards), work, run);
        const counted = await sharded.count(new HashingEmbedder(), () => {}, memoryBudget);
        expect(counted.records).toBe(n);
        const a = (counted.embedder as HashingEmbedder).docFreq!;
        const b = whole.docFreq!;
        expect(a.docCount).toBe(b.docCount);
        expect(bytes(a.counts).equals(bytes(b.counts))).toBe(true);
        expect(counted.embedder.id).toBe(whole.id);
        const got = await sharded.rows(indices, n, counted.embedder, null, () => {});
        expect(got.rows).toBe(indices.length);
        // rows embedded by the shards are gathered into native memory (held once), 256 at a time
        expect(isStored(got)).toBe(true);
        const every = Array.from({ length: got.rows }, (_, i) => i);
        expect(bytes(rowsOf(got, every)).equals(bytes(rows.data))).toBe(true);
        expect(passes).toEqual([COUNT_PASS, SAMPLE_PASS]);
        // every shard counted (index shards: every `shards`-th record), and each embedded only its part of the sample
        const counts = ran.filter((t) => t.fit === 'count');
        expect(counts.length).toBe((await layoutOf(input, shards)).shards); // Parquet: at most its row groups
        if (format === 'json') expect(counts.every((t) => t.stride === shards)).toBe(true);
        if (format === 'parquet') expect(counts.every((t) => t.rowGroups !== undefined && !t.stride)).toBe(true);
        const samples = ran.filter((t) => t.fit === 'sample');
        expect(samples.reduce((s, t) => s + t.sample!.count, 0)).toBe(indices.length);
        if (shards > 1) expect(samples.length).toBeGreaterThan(1);
      }
    }, 120_000);
  }

  it("names a shard's damaged result file (cut, too long, another's, no signature) and why", async () => {
    const input = files.jsonl;
    const layout = await layoutOf(input, 3);
    const indices = uniformSample(total, 300, 4);
    // each damage hits the second shard's result after it ran, as a full disk or a stray writer would
    const damages: [string, (f: string) => void, RegExp][] = [
      ['cut', (f) => truncateSync(f, statSync(f).size - 100), /ends at byte \d+, short of its data/],
      ['too long', (f) => appendFileSync(f, Buffer.alloc(4)), /has bytes past its \d+ values/],
      [
        'another',
        (f) => writeFileSync(f, readFileSync(f).fill(0, 8, 12)),
        /not the shard's \d+ sampled rows of dimension/,
      ],
    ];
    for (const [what, damage, message] of damages) {
      const work = mkdtempSync(join(dir, 'work-damaged-'));
      let damaged = '';
      const run = async (tasks: FitShardTask[], pass: number) => {
        for (const t of tasks) await runTask(t);
        if (pass === SAMPLE_PASS) damage((damaged = tasks[1]!.out));
      };
      const sharded = shardedPasses({ input }, layout, work, run);
      const counted = await sharded.count(new HashingEmbedder(), () => {}, 2 ** 30);
      const err = await sharded.rows(indices, total, counted.embedder, null, () => {}).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(InputError);
      expect((err as InputError).file, what).toBe(damaged);
      expect((err as Error).message, what).toMatch(message);
    }
    const work = mkdtempSync(join(dir, 'work-damaged-'));
    const run = async (tasks: FitShardTask[]) => {
      for (const t of tasks) await runTask(t);
      writeFileSync(tasks[2]!.out, 'not a table');
    };
    const err = await shardedPasses({ input }, layout, work, run)
      .count(new HashingEmbedder(), () => {}, 2 ** 30)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/fit-count-2\.bin: not a complete count result: no signature/);
  }, 60_000);

  it('writes the model fit({ sample }) writes, byte for byte, with a killed shard retried in each pass', async () => {
    const createdAt = '2026-01-01T00:00:00.000Z';
    const anchor = writeJsonl(join(dir, 'anchor.jsonl'), alpacaOk().slice(-50));
    const common = {
      input: files.jsonl,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false as const,
      createdAt,
    };
    const local = join(dir, 'local.sot-model');
    await fit({ ...common, model: local, sample: 400, seed: 9 });
    const saved = join(dir, 'sharded.sot-model');
    const killed: string[] = [];
    const res = await purifySharded({
      ...common,
      sample: 400,
      seed: 9,
      refit: 0,
      shards: 3,
      workers: 2,
      keep: { fraction: 0.9 },
      output: join(dir, 'sharded.jsonl'),
      saveModel: saved,
      onShard: (e) => {
        if (e.pass < 0 && e.shard === 1 && e.attempt === 1 && e.state === 'started') {
          process.kill(e.pid!, 'SIGKILL');
          killed.push(`${e.pass}`);
        }
      },
    });
    expect(killed).toEqual([`${COUNT_PASS}`, `${SAMPLE_PASS}`]);
    // count (shard 1 twice), sample (shard 1 twice), scoring
    expect(res.attempts).toEqual([3, 5, 3]);
    expect(readFileSync(saved).equals(readFileSync(local))).toBe(true);
  }, 180_000);

  it('names the file and line of a bad record in a later shard, and leaves nothing behind', async () => {
    const lines = readFileSync(files.jsonl, 'utf8').split('\n');
    lines[2500] = '{"instruction": "unterminated';
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, lines.join('\n'));
    const work = mkdtempSync(join(dir, 'work-bad-'));
    const err = await purifySharded({
      input: bad,
      harmful: HARMFUL,
      embeddingCache: false,
      shards: 3,
      output: join(dir, 'bad.purified.jsonl'),
      workDir: work,
    }).catch((e: unknown) => e as Error & { code: string });
    expect(err).toMatchObject({ code: 'ERR_INPUT' });
    expect((err as Error).message).toContain(`${bad}:2501`);
    expect(existsSync(join(dir, 'bad.purified.jsonl'))).toBe(false);
    expect(readdirSync(work)).toEqual([]);
  }, 60_000);

  it('stops at once when cancelled in the counting pass', async () => {
    const ac = new AbortController();
    const err = await purifySharded({
      input: files.csv,
      harmful: HARMFUL,
      embeddingCache: false,
      shards: 3,
      output: join(dir, 'cancelled.csv'),
      signal: ac.signal,
      onShard: (e) => e.pass === COUNT_PASS && e.state === 'started' && ac.abort(),
    }).catch((e: unknown) => e as { code: string });
    expect(err).toMatchObject({ code: 'ERR_ABORTED' });
    expect(existsSync(join(dir, 'cancelled.csv'))).toBe(false);
  }, 60_000);
});
