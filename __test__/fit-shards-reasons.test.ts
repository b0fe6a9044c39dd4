// Under a count, a sharded run's scoring pass finds the reasons of the
// records below a bound from the fit sample's scores; a removed record above
// it gets its reasons in the reasons pass. With the bound forced wrong (none
// below it, or half the removed records above it), the outputs are byte for
// byte those of the run whose bound held, locally and over Redis, and a shard
// killed in the reasons pass is retried alone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { purifySharded, type ShardedOptions } from '../src/fit/shards.js';
import { contaminated, writeJsonl } from './datasets.js';

const forced = vi.hoisted(() => ({ bound: undefined as number | undefined }));
vi.mock('../src/fit/reasons-bound.js', async (original) => {
  const real = await original<typeof import('../src/fit/reasons-bound.js')>();
  return {
    ...real,
    reasonsBound: (sample: Float64Array, removed: number) =>
      forced.bound === undefined ? real.reasonsBound(sample, removed) : Promise.resolve(forced.bound),
  };
});

describe('reasonsBound', () => {
  it("the fit sample's score with the removed share, a margin and three standard errors below it", async () => {
    const { reasonsBound, REASONS_MARGIN } =
      await vi.importActual<typeof import('../src/fit/reasons-bound.js')>('../src/fit/reasons-bound.js');
    // 0 .. 999 in a scrambled order
    const sample = Float64Array.from({ length: 1000 }, (_, i) => (i * 389) % 1000);
    for (const removed of [0.01, 0.2, 0.5]) {
      const share = removed + REASONS_MARGIN + 3 * Math.sqrt((removed * (1 - removed)) / 1000);
      const bound = await reasonsBound(sample, removed);
      expect(sample.filter((s) => s < bound).length).toBe(Math.ceil(share * 1000));
    }
    expect(await reasonsBound(sample, 0)).toBe(-Infinity);
    expect(await reasonsBound(sample, 0.99)).toBe(Infinity);
  });
});

describe('the reasons pass: the fallback of a wrong bound', () => {
  let common: ShardedOptions;
  let dir: string;
  const runs: Record<string, { removed: string; report: unknown; passes: number[]; attempts: number[] }> = {};

  beforeAll(() => {
    const c = contaminated(180, 20);
    dir = c.dir;
    common = {
      input: writeJsonl(join(dir, 'train.jsonl'), c.records),
      harmful: ['advbench'],
      anchor: [writeJsonl(join(dir, 'anchor.jsonl'), c.anchor)],
      embeddingCache: false,
      shards: 3,
      workers: 2,
      sample: 120,
      keep: { count: 150 },
      html: null,
      createdAt: '2026-01-01T00:00:00.000Z',
    };
  });
  afterAll(async () => {
    forced.bound = undefined;
    await (await import('./service-helpers.js')).removeTempDirs();
  });

  const run = async (name: string, bound: number | undefined, extra: Partial<ShardedOptions> = {}) => {
    forced.bound = bound;
    const passes: number[] = [];
    const r = await purifySharded({
      ...common,
      output: join(dir, `${name}.jsonl`),
      ...extra,
      onShard: (e) => {
        if (e.state === 'done') passes.push(e.pass);
        extra.onShard?.(e);
      },
    });
    forced.bound = undefined;
    runs[name] = {
      removed: readFileSync(r.outputs.removed!, 'utf8'),
      report: { records: r.report.records, selection: r.report.selection },
      passes: passes.sort(),
      attempts: r.attempts,
    };
    return r;
  };

  it('the bound holds: no reasons pass; none below the bound: every removed record from the reasons pass', async () => {
    await run('held', undefined);
    // a refit pass (0), the scoring (1), no reasons pass (2)
    expect(runs.held!.passes.filter((p) => p >= 0)).toEqual([0, 0, 0, 1, 1, 1]); // after the fit's passes (-2, -1)
    const removed = runs.held!.removed.trim().split('\n');
    expect(removed).toHaveLength(50);
    expect(removed.every((l) => /"sot_reason":"[^"]*(advbench #\d+|the data's own harm)/.test(l))).toBe(true);

    // the scoring pass finds no reasons; every shard holding removed records runs the reasons pass, one killed once
    const killed: number[] = [];
    await run('none', -Infinity, {
      onShard: (e) => {
        if (e.pass === 2 && e.shard === 1 && e.attempt === 1 && e.state === 'started') {
          process.kill(e.pid!, 'SIGKILL');
          killed.push(e.shard);
        }
      },
    });
    expect(killed).toEqual([1]);
    expect(runs.none!.passes.filter((p) => p >= 0)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(runs.none!.attempts).toEqual([5, 6, 5]); // the fit's two passes; shard 1's reasons pass retried alone
    expect(runs.none!.removed).toBe(runs.held!.removed);
    expect(runs.none!.report).toEqual(runs.held!.report);
  }, 180_000);

  it('half the removed records above the bound: the reasons pass finds theirs; the same outputs, also over Redis', async () => {
    // the median score of the removed records: half of them below it
    const scores = runs
      .held!.removed.trim()
      .split('\n')
      .map((l) => JSON.parse(l).sot_score as number);
    const median = scores.sort((a, b) => a - b)[25]!;
    await run('half', median);
    expect(runs.half!.passes.filter((p) => p === 2).length).toBeGreaterThan(0);
    expect(runs.half!.removed).toBe(runs.held!.removed);
    expect(runs.half!.report).toEqual(runs.held!.report);

    const { startRedis, spawnCli, stopProcess, tempDir } = await import('./service-helpers.js');
    const redis = await startRedis();
    const workers = [spawnCli(['shard-worker', '--redis', redis.url])];
    try {
      await workers[0]!.waitFor(/waiting for shards/);
      await run('redis', median, { redis: redis.url, workDir: tempDir('sot-shards-reasons-') });
      expect(runs.redis!.attempts).toEqual(runs.half!.attempts);
      expect(runs.redis!.removed).toBe(runs.held!.removed);
      expect(runs.redis!.report).toEqual(runs.held!.report);
    } finally {
      await Promise.all(workers.map((w) => stopProcess(w.proc)));
      await redis.stop();
    }
  }, 180_000);
});
