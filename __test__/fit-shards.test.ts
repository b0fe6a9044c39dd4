// purify --shards on one machine: worker processes, the exact global top K,
// a killed shard retried alone; and the fit / score CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { score } from '../src/fit/score.js';
import { purifySharded } from '../src/fit/shards.js';
import { CLI, contaminated, readJsonl, withoutRunFigures, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];

describe('sharded purification', () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;

  beforeAll(() => {
    c = contaminated(360, 40);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
  });

  it('keeps the global top K of fit + score over 3 shards, one killed and retried alone', async () => {
    const killed: number[] = [];
    const events: string[] = [];
    const out = join(c.dir, 'sharded.jsonl');
    const res = await purifySharded({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 3,
      workers: 3,
      keep: { count: 300 },
      output: out,
      onShard: (e) => {
        if (e.pass < 0) return; // the fit's passes (fit-dfshard.test.ts)
        events.push(`${e.shard}:${e.attempt}:${e.state}`);
        if (e.shard === 1 && e.attempt === 1 && e.state === 'started') {
          process.kill(e.pid!, 'SIGKILL');
          killed.push(e.pid!);
        }
      },
    });
    expect(killed.length).toBe(1);
    // fitted on every record (the default sample here), the scoring pass found every removed record's reasons: no
    // reasons pass; and one attempt each in the fit's two passes
    expect(res.attempts).toEqual([3, 4, 3]);
    expect(events.filter((e) => e.startsWith('1:')).sort()).toEqual([
      '1:1:failed',
      '1:1:started',
      '1:2:done',
      '1:2:started',
    ]);
    expect(res.k).toBe(300);
    // the same records as one score() over the whole file with the same model (fit on all 400: the default sample)
    const model = join(c.dir, 'all.sot-model');
    const { fit } = await import('../src/fit/fit.js');
    await fit({ input: data, harmful: HARMFUL, anchor: [anchor], embeddingCache: false, model });
    const whole = await score({
      input: data,
      model,
      keep: { count: 300 },
      output: join(c.dir, 'whole.jsonl'),
      scores: join(c.dir, 'whole.csv'),
      embeddingCache: false,
    });
    // byte for byte: the merge ranks and weights the shards' scores in the core, as score() does
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(c.dir, 'whole.jsonl'), 'utf8'));
    expect(readFileSync(res.outputs.scores, 'utf8')).toBe(readFileSync(join(c.dir, 'whole.csv'), 'utf8'));
    const csv = readFileSync(res.outputs.scores, 'utf8').trim().split('\n');
    expect(csv.length).toBe(401);
    expect(Number(csv[1]!.split(',')[2])).toBe(whole.scores[0]);
  }, 120_000);

  it('fitted on a sample, refines the potentials over all shards first: as score() with refit', async () => {
    const passes: number[] = [];
    const res = await purifySharded({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 3,
      workers: 2,
      sample: 100,
      keep: { count: 300 },
      output: join(c.dir, 'refit-sharded.jsonl'),
      scores: join(c.dir, 'refit-sharded.csv'),
      onShard: (e) => e.state === 'done' && e.pass >= 0 && passes.push(e.pass),
    });
    // one refit pass (the default when the sample is smaller than the records), then the scoring
    // (which found the removed records' reasons below the bound: no reasons pass)
    expect(passes.sort()).toEqual([0, 0, 0, 1, 1, 1]);
    expect(res.attempts).toEqual([4, 4, 4]); // and the fit's two passes
    const { fit } = await import('../src/fit/fit.js');
    const model = join(c.dir, 'sample100.sot-model');
    await fit({ input: data, harmful: HARMFUL, anchor: [anchor], embeddingCache: false, model, sample: 100 });
    const one = await score({
      input: data,
      model,
      refit: 1,
      keep: { count: 300 },
      output: join(c.dir, 'refit-one.jsonl'),
      scores: join(c.dir, 'refit-one.csv'),
      embeddingCache: false,
    });
    const plain = await score({ input: data, model, embeddingCache: false, scores: join(c.dir, 'plain.csv') });
    const ids = (p: string) => readJsonl<{ id: number }>(p).map((r) => r.id);
    expect(ids(join(c.dir, 'refit-sharded.jsonl'))).toEqual(ids(join(c.dir, 'refit-one.jsonl')));
    // the shards' parts merge to the one pass's sums up to rounding
    const sharded = readFileSync(res.outputs.scores, 'utf8').trim().split('\n').slice(1);
    let worst = 0;
    let moved = 0;
    sharded.forEach((l, i) => {
      const v = Number(l.split(',')[2]);
      worst = Math.max(worst, Math.abs(v - one.scores[i]!));
      moved = Math.max(moved, Math.abs(one.scores[i]! - plain.scores[i]!));
    });
    expect(worst).toBeLessThan(1e-9);
    expect(moved).toBeGreaterThan(1e-3); // and the refit did change the scores
  }, 120_000);

  it('CSV shards by byte range (a quoted field may span lines): the same records as JSON Lines', async () => {
    // one prompt with a newline inside, as a quoted CSV field
    const rows = c.records.map(({ id, instruction, input, output }, i) => ({
      id,
      instruction: i === 7 ? `${instruction}\nand a second line` : instruction,
      input,
      output,
    }));
    const q = (v: unknown) => `"${String(v).replaceAll('"', '""')}"`;
    const csvPath = join(c.dir, 'train.csv');
    const body = rows.map((r) => [r.id, r.instruction, r.input, r.output].map(q).join(',')).join('\n');
    writeFileSync(csvPath, `id,instruction,input,output\n${body}\n`);
    const jsonlPath = writeJsonl(join(c.dir, 'train-nl.jsonl'), rows);
    const run = (input: string, ext: string) =>
      purifySharded({
        input,
        harmful: HARMFUL,
        anchor: [anchor],
        embeddingCache: false,
        shards: 3,
        workers: 3,
        sample: 150,
        keep: { count: 300 },
        output: join(c.dir, `by-format.${ext}`),
        scores: join(c.dir, `by-format-${ext}.csv`),
      });
    await run(csvPath, 'csv');
    await run(jsonlPath, 'jsonl');
    const col = (p: string, k: number) =>
      readFileSync(p, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',')[k]);
    // the same scores (up to the rounding of the refit's parts, split differently) and selection;
    // lines differ (the CSV header, the field's newline)
    const [a, b] = [col(join(c.dir, 'by-format-csv.csv'), 2), col(join(c.dir, 'by-format-jsonl.csv'), 2)];
    a.forEach((v, i) => expect(Math.abs(Number(v) - Number(b[i]))).toBeLessThan(1e-9));
    expect(col(join(c.dir, 'by-format-csv.csv'), 6)).toEqual(col(join(c.dir, 'by-format-jsonl.csv'), 6));
    expect(col(join(c.dir, 'by-format-csv.csv'), 1).slice(7, 9)).toEqual(['9', '11']);
    // the removed records in the input's format, each with its reason: the same in both
    const { readAll } = await import('./io-helpers.js');
    const removed = async (ext: string) =>
      (await readAll(join(c.dir, `by-format.removed.${ext}`))).map((r) => [
        r.record.value.id,
        r.record.value.sot_reason,
      ]);
    const csvRemoved = await removed('csv');
    expect(csvRemoved).toHaveLength(100);
    expect(
      csvRemoved.every(([, reason]) => typeof reason === 'string' && /advbench #|the data's own harm/.test(reason)),
    ).toBe(true);
    expect(csvRemoved.map(([id, reason]) => [Number(id), reason])).toEqual(await removed('jsonl'));
  }, 120_000);

  it('a keep beyond the records is refused after the fit, before any shard', async () => {
    const bad = writeJsonl(join(c.dir, 'bad.jsonl'), c.records);
    await expect(
      purifySharded({
        input: bad,
        harmful: HARMFUL,
        anchor: [anchor],
        embeddingCache: false,
        shards: 2,
        sample: 10,
        keep: { count: 500 },
      }),
    ).rejects.toThrow(/keep must be between 1 and the 400/);
  }, 60_000);

  it('sot fit, sot score and sot purify --shards from the command line', () => {
    const model = join(c.dir, 'cli.sot-model');
    const env = { ...process.env };
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
    const f = run([
      'fit',
      data,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '--model-file',
      model,
      '--sample',
      '300',
      '--json',
      '--no-cache',
    ]);
    expect(f.status, f.stderr).toBe(0);
    expect(JSON.parse(f.stdout)).toMatchObject({ ok: true, records: 400, sample: 300 });
    const out = join(c.dir, 'cli.purified.jsonl');
    const s = run([
      'score',
      data,
      '--model-file',
      model,
      '--keep-count',
      '100',
      '-o',
      out,
      '--scores',
      join(c.dir, 'cli.csv'),
      '--json',
      '--no-cache',
    ]);
    expect(s.status, s.stderr).toBe(0);
    const removed = join(c.dir, 'cli.purified.removed.jsonl');
    expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, records: 400, kept: 100, outputs: { removed } });
    expect(readJsonl(out).length).toBe(100);
    expect(readJsonl<{ sot_reason: string }>(removed).filter((r) => r.sot_reason !== '').length).toBe(300);
    const none = run([
      'score',
      data,
      '--model-file',
      model,
      '--keep-count',
      '100',
      '--no-removed',
      '--json',
      '--no-cache',
    ]);
    expect(JSON.parse(none.stdout)).toMatchObject({ ok: true, outputs: { removed: null } });
    const both = run(['score', data, '--model-file', model, '--keep', '0.5', '--threshold', '0']);
    expect(both.status).toBe(2);
    const refitted = run([
      'score',
      data,
      '--model-file',
      model,
      '--refit',
      '1',
      '--scores',
      join(c.dir, 'cli-refit.csv'),
    ]);
    expect(refitted.status, refitted.stderr).toBe(0);
    expect(readFileSync(join(c.dir, 'cli-refit.csv'), 'utf8')).not.toBe(readFileSync(join(c.dir, 'cli.csv'), 'utf8'));
    expect(run(['score', data, '--model-file', model, '--refit', '-1']).status).toBe(2);
    const corrupt = join(c.dir, 'cli-bad.sot-model');
    const bytes = readFileSync(model);
    bytes[bytes.length - 40]! ^= 1;
    writeFileSync(corrupt, bytes);
    const bad = run(['score', data, '--model-file', corrupt, '--json']);
    expect(bad.status).toBe(3);
    expect(JSON.parse(bad.stdout).error).toMatchObject({ code: 'ERR_INPUT', file: corrupt });
    const sh = run([
      'purify',
      data,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '--shards',
      '2',
      '--keep-count',
      '100',
      '-o',
      join(c.dir, 'cli-sharded.jsonl'),
      '--json',
      '--no-cache',
    ]);
    expect(sh.status, sh.stderr).toBe(0);
    // the fit's two passes, then the scoring
    expect(JSON.parse(sh.stdout)).toMatchObject({ ok: true, n: 400, k: 100, attempts: [3, 3] });
    // fitted on a sample, with two refit passes: five rounds of shards
    const sh2 = run([
      'purify',
      data,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '--shards',
      '2',
      '--sample',
      '200',
      '--refit',
      '2',
      '--keep-count',
      '100',
      '-o',
      join(c.dir, 'cli-sharded-refit.jsonl'),
      '--json',
      '--no-cache',
    ]);
    expect(sh2.status, sh2.stderr).toBe(0);
    expect(JSON.parse(sh2.stdout)).toMatchObject({ ok: true, n: 400, k: 100, sample: 200, attempts: [5, 5] });
  }, 180_000);
});

describe('sharded purification over BullMQ', () => {
  afterAll(async () => (await import('./service-helpers.js')).removeTempDirs());
  it('queues the shards for sot shard-worker processes and merges the same records as local workers', async () => {
    const { startRedis, spawnCli, stopProcess, tempDir } = await import('./service-helpers.js');
    const c = contaminated(200, 20);
    const data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    const redis = await startRedis();
    const workers = [
      spawnCli(['shard-worker', '--redis', redis.url]),
      spawnCli(['shard-worker', '--redis', redis.url]),
    ];
    try {
      await Promise.all(workers.map((w) => w.waitFor(/waiting for shards/)));
      const common = {
        input: data,
        harmful: HARMFUL,
        anchor: [anchor],
        embeddingCache: false as const,
        shards: 4,
        sample: 100, // the fit's two passes, a refit pass, then the scoring: four rounds of jobs
        keep: { count: 150 },
        createdAt: '2026-01-01T00:00:00.000Z',
      };
      const queued = await purifySharded({
        ...common,
        redis: redis.url,
        workDir: tempDir('sot-shards-shared-'),
        output: join(c.dir, 'queued.jsonl'),
        scores: join(c.dir, 'queued.csv'),
      });
      expect(queued.attempts).toEqual([4, 4, 4, 4]);
      const local = await purifySharded({
        ...common,
        output: join(c.dir, 'local.jsonl'),
        scores: join(c.dir, 'local.csv'),
      });
      expect(queued.k).toBe(150);
      expect(readFileSync(join(c.dir, 'queued.jsonl'), 'utf8')).toBe(readFileSync(join(c.dir, 'local.jsonl'), 'utf8'));
      expect(readFileSync(join(c.dir, 'queued.csv'), 'utf8')).toBe(readFileSync(join(c.dir, 'local.csv'), 'utf8'));
      // the same removed records with the same reasons, and the same report but for the paths and the run's figures
      expect(readFileSync(queued.outputs.removed!, 'utf8')).toBe(readFileSync(local.outputs.removed!, 'utf8'));
      const report = (r: typeof queued) =>
        withoutRunFigures(
          readFileSync(r.outputs.report, 'utf8').replaceAll(`${c.dir}/${r === queued ? 'queued' : 'local'}`, '<out>'),
        );
      expect(report(queued)).toBe(report(local));
      expect(queued.report.sharded!.attempts).toEqual([4, 4, 4, 4]);
      // A shard that fails on a system error is retried (alone) up to the limit; one that fails on its input is not.
      const { runShardsOnQueue } = await import('../src/service/queue/shards.js');
      const task = {
        input: data,
        model: join(c.dir, 'absent.sot-model'),
        shard: 0,
        from: 0,
        to: 10,
        out: join(c.dir, 'never.bin'),
      };
      await expect(runShardsOnQueue(redis.url, [task], { retries: 1, run: 'missing' })).rejects.toThrow(
        /shard 0 \(records 0 to 9\) failed after 2 attempt\(s\): cannot read the model file/,
      );
      const corrupt = join(c.dir, 'corrupt.sot-model');
      writeFileSync(corrupt, 'not a model');
      const err = await runShardsOnQueue(redis.url, [{ ...task, model: corrupt }], {
        retries: 1,
        run: 'corrupt',
      }).catch((e: unknown) => e);
      // the input error's place crosses the queue: an InputError naming the file (and the shard), tried once, as with local workers
      expect(err).toBeInstanceOf(InputError);
      expect(err).toMatchObject({ code: 'ERR_INPUT', file: corrupt });
      expect((err as Error).message).toMatch(/not a SOT model file.*\(shard 0, records 0 to 9\)$/);
      // A shard that fails for good cancels the run's shards running on other workers: none runs on once the run
      // has ended (the caller then removes the folder they write into). The slow one scores 110,000 records.
      const { fit } = await import('../src/fit/fit.js');
      const model = join(c.dir, 'slow.sot-model');
      await fit({ input: data, harmful: HARMFUL, anchor: [anchor], embeddingCache: false, model });
      const big = join(c.dir, 'big.jsonl');
      writeFileSync(big, readFileSync(data, 'utf8').repeat(500));
      const slow = { input: big, model, shard: 1, from: 0, to: 110_000, out: join(c.dir, 'slow.bin') };
      const both = await runShardsOnQueue(redis.url, [slow, { ...task, model: corrupt }], {
        retries: 1,
        run: 'cancel',
      }).catch((e: unknown) => e);
      expect(both).toMatchObject({ code: 'ERR_INPUT', file: corrupt });
      const { Queue } = await import('bullmq');
      const { connect } = await import('../src/service/queue/redis.js');
      const conn = connect(redis.url);
      const queue = new Queue('shards', { connection: conn, prefix: 'sot' });
      try {
        expect(await queue.getActiveCount()).toBe(0);
        expect(await queue.getJob('cancel-1')).toBeUndefined(); // cancelled, so it could be removed
      } finally {
        await queue.close();
        conn.disconnect();
      }
      expect(existsSync(slow.out)).toBe(false);
    } finally {
      await Promise.all(workers.map((w) => stopProcess(w.proc)));
      await redis.stop();
    }
  }, 180_000);
});
