// Sharded purification's run options: workers and retries are checked before
// any work, and retries bounds how often a failing shard runs again.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OptionError, SotError } from '../src/errors.js';
import { DEFAULT_SHARD_RETRIES, purifySharded } from '../src/fit/shards.js';
import { CLI, contaminated, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];

describe('sharded run options', () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;

  beforeAll(() => {
    c = contaminated(120, 20);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
  });

  it('refuses workers and retries that are not counts, before any work', async () => {
    const work = join(c.dir, 'work-refused');
    const base = {
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false as const,
      shards: 2,
      workDir: c.dir,
    };
    for (const bad of [{ workers: 0 }, { workers: 1.5 }, { workers: Number.NaN }, { workers: '2' as never }]) {
      const err = await purifySharded({ ...base, ...bad, output: work }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OptionError);
      expect((err as Error).message).toMatch(/^workers must be a positive integer/);
    }
    for (const bad of [{ retries: -1 }, { retries: 0.5 }, { retries: Number.NaN }, { retries: Infinity }]) {
      const err = await purifySharded({ ...base, ...bad, output: work }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OptionError);
      expect((err as Error).message).toMatch(/^retries must be an integer >= 0/);
    }
    // nothing written, no work folder left
    expect(existsSync(work)).toBe(false);
    expect(readdirSync(c.dir).filter((f) => f.startsWith('sot-shards-'))).toEqual([]);
  });

  it('with retries 0 a killed shard fails the run, which writes nothing', async () => {
    const out = join(c.dir, 'once.jsonl');
    let killed = 0;
    const err = await purifySharded({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 2,
      workers: 2,
      retries: 0,
      output: out,
      onShard: (e) => {
        if (e.pass >= 0 && e.shard === 1 && e.state === 'started') {
          killed++;
          process.kill(e.pid!, 'SIGKILL');
        }
      },
    }).catch((e: unknown) => e);
    expect(killed).toBe(1); // not run again
    expect(err).toBeInstanceOf(SotError);
    expect((err as Error).message).toMatch(
      /^shard 1 \(.*\) failed after 1 attempt\(s\): the worker was killed by SIGKILL/,
    );
    expect(readdirSync(c.dir).filter((f) => f.startsWith('once'))).toEqual([]);
    expect(DEFAULT_SHARD_RETRIES).toBe(2);
  }, 120_000);

  it('sot purify --retries: a count, checked by the command line', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const common = ['purify', data, '--harmful', 'advbench', '--anchor', anchor, '--shards', '2', '--no-cache'];
    for (const bad of ['-1', '1.5', 'x']) {
      const r = run([...common, '--retries', bad, '-o', join(c.dir, 'cli-bad.jsonl')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--retries must be an integer >= 0/);
    }
    expect(run(['purify', '--help']).stdout.replace(/\s+/g, ' ')).toMatch(
      /--retries <n> with --shards: attempts after a shard's first failure, each alone \(default 2;/,
    );
    const ok = run([...common, '--retries', '0', '--json', '-o', join(c.dir, 'cli-ok.jsonl')]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).attempts.every((a: number) => a >= 1)).toBe(true);
  }, 120_000);
});
