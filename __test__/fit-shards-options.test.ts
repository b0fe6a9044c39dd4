// Sharded purification's run options: every option is checked before any
// work (a malformed one is a typed error, never a crash or a hang), and
// retries bounds how often a failing shard runs again.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { IoError, OptionError, SotError } from '../src/errors.js';
import { MAX_PARTS } from '../src/io/index.js';
import { DEFAULT_SHARD_RETRIES } from '../src/defaults.js';
import { purifySharded } from '../src/fit/shards.js';
import { CLI, contaminated, ROOT, writeJsonl, type Contaminated } from './datasets.js';
import { freePort } from './service-helpers.js';

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

describe('sharded run options checked before any work', () => {
  let c: Contaminated;
  let base: Parameters<typeof purifySharded>[0];

  beforeAll(() => {
    c = contaminated(60, 10);
    base = {
      input: writeJsonl(join(c.dir, 'train.jsonl'), c.records),
      harmful: HARMFUL,
      anchor: [writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor)],
      embeddingCache: false,
      shards: 2,
      output: join(c.dir, 'never.jsonl'),
    };
  });

  it('refuses malformed options with a typed error before any shard runs', async () => {
    const cases: Array<[Partial<Parameters<typeof purifySharded>[0]>, RegExp]> = [
      [{ shards: 1e9 }, /^shards must be an integer from 1 to 65536, got 1000000000/],
      [{ shards: MAX_PARTS + 1 }, /^shards must be an integer from 1 to 65536/],
      [{ keep: { count: Number.NaN } }, /^keep.count must be a non-negative integer/],
      [{ keep: { fraction: Number.NaN } }, /^keep fraction must lie in \(0, 1\]/],
      [{ keep: 'most' as never }, /^keep must be 'auto', \{ count \} or \{ fraction \}/],
      [{ threshold: Number.NaN }, /^threshold must be a finite number/],
      [{ threshold: '0.5' as never }, /^threshold must be a finite number/],
      [{ weightField: 42 as never }, /^weightField must be a non-empty string or null/],
      [{ seed: -1 }, /^seed must be an integer from 0 to 4294967295/],
      [{ seed: Number.NaN }, /^seed must be an integer from 0 to 4294967295/],
      [{ redis: 6379 as never }, /^redis must be a Redis URL/],
    ];
    for (const [bad, message] of cases) {
      let shards = 0;
      const err = await purifySharded({ ...base, ...bad, onShard: () => shards++ }).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).toBeInstanceOf(OptionError);
      expect((err as Error).message).toMatch(message);
      expect(shards).toBe(0);
    }
    expect(readdirSync(c.dir).filter((f) => f.startsWith('never'))).toEqual([]);
  });

  it('a missing work folder and an unreachable Redis are I/O errors naming them, before the fit', async () => {
    let shards = 0;
    const missing = join(c.dir, 'no-such-folder');
    const err = await purifySharded({ ...base, workDir: missing, onShard: () => shards++ }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).path).toBe(missing);
    expect((err as Error).message).toMatch(/cannot make the shards' work folder in .*no-such-folder: ENOENT/);
    const port = await freePort(); // released: nothing listens on it
    const url = `redis://127.0.0.1:${port}`;
    const down = await purifySharded({ ...base, redis: url, onShard: () => shards++ }).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(IoError);
    expect((down as Error).message).toMatch(new RegExp(`^cannot reach Redis at ${url}: connect ECONNREFUSED`));
    expect(shards).toBe(0);
    // a shard worker says so and exits (4: I/O), instead of waiting on a connection retried forever
    const w = spawnSync(process.execPath, [CLI, 'shard-worker', '--redis', url], { encoding: 'utf8', timeout: 30_000 });
    expect(w.status).toBe(4);
    expect(w.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    expect(readdirSync(c.dir).filter((f) => f.startsWith('never'))).toEqual([]);
  });

  it('splitting a file into a billion parts is refused, not a crash (child process)', () => {
    const file = base.input;
    const script = `
      const io = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
      for (const [name, f] of [['lineRanges', () => io.lineRanges(${JSON.stringify(file)}, 1e9)],
          ['recordRanges', () => io.recordRanges(${JSON.stringify(file)}, 1e9)],
          ['rowGroupRanges', () => io.rowGroupRanges(${JSON.stringify(file)}, 1e9)]])
        await f().then(() => console.log(name, 'accepted'), (e) => console.log(name, e.code, e.message));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    for (const name of ['lineRanges', 'recordRanges', 'rowGroupRanges'])
      expect(r.stdout).toContain(`${name} ERR_OPTION parts must be an integer from 1 to 65536, got 1000000000`);
  });
});
