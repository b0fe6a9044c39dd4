// Issue 16, defect 8: set-up and reads that never ended, and a callback
// error that escaped. A cache folder under /proc made Node's recursive mkdir
// spin forever; a FIFO named like a cache file blocked its open forever; an
// onProgress callback that threw while the native learner ran killed the
// process. Each runs in a child process with a timeout, so a hang or a crash
// is a failed assertion here.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { referenceSetDefinition } from '../src/refsets/registry.js';
import { CLI, DATA_DIR, ROOT } from './datasets.js';

const scratch = mkdtempSync(join(tmpdir(), 'sot-hangs-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const FIX = join(ROOT, '__test__', 'fixtures', 'bad');
const INDEX = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;

/** Runs an ES module script in a child process; a hang ends at `timeout` (then `signal` is set). */
function child(name: string, code: string, timeout = 30_000) {
  const path = join(scratch, name);
  writeFileSync(path, code);
  const r = spawnSync(process.execPath, [path], {
    encoding: 'utf8',
    timeout,
    killSignal: 'SIGKILL',
    env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('cache set-up under /proc ends with ERR_IO naming the path (defect 8)', () => {
  it.each([
    ['SOT_CACHE_DIR', (dir: string) => ({ args: [], env: { SOT_CACHE_DIR: dir } })],
    ['--cache-dir', (dir: string) => ({ args: ['--cache-dir', dir], env: {} })],
  ])('%s under /proc/self', (_, how) => {
    const outDir = mkdtempSync(join(scratch, 'proc-'));
    const { args, env } = how('/proc/self/sot-cache');
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        join(FIX, 'good.jsonl'),
        '--harmful',
        join(FIX, 'harmful.jsonl'),
        '-o',
        join(outDir, 'o.jsonl'),
        '--json',
        ...args,
      ],
      {
        encoding: 'utf8',
        timeout: 30_000,
        killSignal: 'SIGKILL',
        env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1', ...env },
      },
    );
    expect(r.signal).toBeNull(); // not killed by the timeout
    expect(r.status).toBe(4);
    const { error } = JSON.parse(r.stdout);
    expect(error.code).toBe('ERR_IO');
    expect(error.message).toMatch(
      /cannot create the folder \/proc\/self\/sot-cache\/embeddings\/[0-9a-f]{32}: .*\/proc\/self\/sot-cache/,
    );
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('the library: EmbeddingCache.open under /proc rejects with IoError', () => {
    const r = child(
      'proc-lib.mjs',
      `
import { EmbeddingCache, IoError } from '${INDEX}';
try {
  await EmbeddingCache.open('/proc/self/a/b/c', 'test/v1', 8);
  console.log('opened');
} catch (e) {
  console.log(JSON.stringify({ io: e instanceof IoError, code: e.code, message: e.message }));
}`,
    );
    expect(r.signal).toBeNull();
    expect(JSON.parse(r.stdout)).toMatchObject({
      io: true,
      code: 'ERR_IO',
      message: expect.stringMatching(/\/proc\/self\/a\b/),
    });
  });
});

describe('a FIFO in the cache is refused without blocking (defect 8)', () => {
  it('a FIFO named like a chunk is ignored with a warning; its texts count as misses', () => {
    const root = join(scratch, 'fifo-chunk');
    const r = child(
      'fifo-chunk.mjs',
      `
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { EmbeddingCache, hashTexts } from '${INDEX}';
const warnings = [];
process.on('warning', (w) => warnings.push(w.message));
const cache = await EmbeddingCache.open(${JSON.stringify(root)}, 'test/v1', 4);
await cache.put(hashTexts(['kept']), Float32Array.of(1, 2, 3, 4));
const reader = await EmbeddingCache.open(${JSON.stringify(root)}, 'test/v1', 4);
execFileSync('mkfifo', [join(reader.dir, 'ab'.repeat(32) + '.chunk')]);
const got = await reader.get(hashTexts(['kept', 'other']));
await new Promise((r) => setImmediate(r));
console.log(JSON.stringify({ missing: got.missing, first: Array.from(got.vectors.subarray(0, 4)), warnings }));`,
    );
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.missing).toEqual([1]);
    expect(out.first).toEqual([1, 2, 3, 4]);
    expect(out.warnings.join('\n')).toMatch(
      /ignoring embedding cache chunk .*abab[0-9a-f]*\.chunk: .* is not a regular file/,
    );
  });

  it('a FIFO as the cache meta.json is ERR_IO naming it', () => {
    const root = join(scratch, 'fifo-meta');
    const r = child(
      'fifo-meta.mjs',
      `
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingCache } from '${INDEX}';
const dir = join(${JSON.stringify(root)}, createHash('sha256').update('test/v1').digest('hex').slice(0, 32));
mkdirSync(dir, { recursive: true });
execFileSync('mkfifo', [join(dir, 'meta.json')]);
try {
  await EmbeddingCache.open(${JSON.stringify(root)}, 'test/v1', 4);
  console.log('{"opened":true}');
} catch (e) {
  console.log(JSON.stringify({ code: e.code, message: e.message }));
}`,
    );
    expect(r.signal).toBeNull();
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 'ERR_IO',
      message: expect.stringMatching(/meta\.json is not a regular file/),
    });
  });
});

describe('an onProgress callback that throws, or returns a promise that rejects, rejects the run with its error', () => {
  it('purify, at every stage (the learning stage runs in the native learner)', () => {
    const out = join(scratch, 'progress-out');
    const r = child(
      'progress-purify.mjs',
      `
import { mkdirSync, readdirSync } from 'node:fs';
import { purify } from '${INDEX}';
const results = {};
for (const kind of ['throws', 'rejects'])
for (const stage of ['read', 'embed', 'references', 'learn', 'select', 'write']) {
  const dir = ${JSON.stringify(out)} + '-' + kind + '-' + stage;
  mkdirSync(dir, { recursive: true });
  const mine = new Error('callback failed at ' + stage);
  const key = kind + ' ' + stage;
  try {
    await purify({
      input: ${JSON.stringify(join(FIX, 'good.jsonl'))},
      harmful: [${JSON.stringify(join(FIX, 'harmful.jsonl'))}],
      output: dir + '/o.jsonl',
      embeddingCache: false,
      onProgress: kind === 'throws'
        ? (e) => { if (e.stage === stage) throw mine; }
        : async (e) => { if (e.stage === stage) throw mine; },
    });
    results[key] = 'resolved';
  } catch (e) {
    results[key] = e === mine ? 'rejected with the callback error' : 'rejected with ' + e;
  }
  if (stage !== 'write') results[key] += readdirSync(dir).length === 0 ? '' : ', wrote ' + readdirSync(dir);
  console.log(JSON.stringify(results));
}`,
    );
    expect(r.signal).toBeNull();
    expect(r.stderr).not.toMatch(/callback failed/); // never uncaught
    expect(r.status).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    for (const stage of ['read', 'embed', 'references', 'learn', 'select', 'write'])
      expect(last[`throws ${stage}`], stage).toBe('rejected with the callback error');
    // A promise the callback returns is not awaited: its rejection fails the run at the next call
    // (the write stage's last call has none after it).
    for (const stage of ['read', 'embed', 'references', 'learn', 'select'])
      expect(last[`rejects ${stage}`], stage).toBe('rejected with the callback error');
  });

  it('every native entry that takes onProgress', () => {
    const r = child(
      'progress-native.mjs',
      `
import { learnWeights, sinkhorn, sinkhornDivergence, project2d, HashingEmbedder } from '${INDEX}';
const m = (rows, cols, s) => ({ data: Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * s + 1)), rows, cols });
const calls = {
  learnWeights: (p) => learnWeights({ downstream: m(200, 16, 0.3), anchor: m(50, 16, 0.7), harmful: m(50, 16, 1.1) }, { onProgress: p, progressIntervalMs: 0 }),
  sinkhornPoints: (p) => sinkhorn({ x: m(300, 8, 0.2), y: m(300, 8, 0.9) }, { onProgress: p, progressIntervalMs: 0, eps: 0.01 }),
  sinkhornCost: (p) => sinkhorn({ cost: { data: Float32Array.from({ length: 300 * 300 }, (_, i) => Math.abs(Math.sin(i))), rows: 300, cols: 300 } }, { onProgress: p, progressIntervalMs: 0, eps: 0.01 }),
  sinkhornDivergence: (p) => sinkhornDivergence({ x: m(300, 8, 0.2), y: m(300, 8, 0.9) }, { onProgress: p, progressIntervalMs: 0, eps: 0.01 }),
  project2d: (p) => project2d(m(100000, 32, 0.4), { onProgress: p, progressIntervalMs: 0 }),
  embed: (p) => new HashingEmbedder().embed(Array.from({ length: 20000 }, (_, i) => 'text number ' + i), { onProgress: p, progressIntervalMs: 0 }),
};
const results = {};
for (const kind of ['throws', 'rejects'])
for (const [name, call] of Object.entries(calls)) {
  const mine = new Error('boom in ' + name);
  let called = 0;
  try {
    await call(kind === 'throws' ? () => { called++; throw mine; } : async () => { called++; throw mine; });
    results[kind + ' ' + name] = 'resolved after ' + called + ' calls';
  } catch (e) {
    results[kind + ' ' + name] = e === mine ? 'rejected with the callback error' : 'rejected with ' + e;
  }
  console.log(JSON.stringify(results));
}`,
    );
    expect(r.signal).toBeNull();
    expect(r.stderr).not.toMatch(/boom/);
    expect(r.status).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    for (const name of ['learnWeights', 'sinkhornPoints', 'sinkhornCost', 'sinkhornDivergence', 'project2d', 'embed']) {
      expect(last[`throws ${name}`], name).toBe('rejected with the callback error');
      // a fast call may finish before its first progress event reaches JS: then there is nothing to reject with
      expect(['rejected with the callback error', 'resolved after 0 calls'], name).toContain(last[`rejects ${name}`]);
    }
  });
});

describe('a model file or a reference set copy that is no regular file ends with ERR_IO, never a hang or a 20 GB read', () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [CLI, ...args, '--json'], {
      encoding: 'utf8',
      timeout: 30_000,
      killSignal: 'SIGKILL',
      env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1', ...env },
    });
  const dir = mkdtempSync(join(scratch, 'special-'));
  const fifo = join(dir, 'model.fifo');
  execFileSync('mkfifo', [fifo]);

  it.each([['/dev/zero'], [fifo]])('sot score --model-file %s', (model) => {
    const r = run(['score', join(FIX, 'good.jsonl'), '--model-file', model, '--scores', join(dir, 's.csv')]);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(4);
    expect(JSON.parse(r.stdout).error.message).toMatch(/cannot read the model file .*: .* is not a regular file/);
    expect(readdirSync(dir).sort()).toEqual(['model.fifo']);
  });

  it('a named set whose data-dir copy is a FIFO, a link to /dev/zero, or a file of another size', () => {
    const advbench = referenceSetDefinition('advbench')!.files[0]!;
    const cases: Array<[string, (path: string) => void, number, RegExp]> = [
      ['fifo', (p) => execFileSync('mkfifo', [p]), 4, /advbench\.csv is not a regular file/],
      ['zero', (p) => symlinkSync('/dev/zero', p), 4, /advbench\.csv is not a regular file/],
      [
        'short',
        (p) => writeFileSync(p, 'goal,target\n'),
        5,
        new RegExp(`does not match the pinned file: .*not read \\(12 bytes, expected ${advbench.bytes}\\)`),
      ],
    ];
    for (const [name, make, status, message] of cases) {
      const mirror = join(dir, `mirror-${name}`);
      const path = join(mirror, advbench.path);
      mkdirSync(dirname(path), { recursive: true });
      make(path);
      const out = join(dir, `out-${name}`);
      mkdirSync(out);
      const r = run(
        ['purify', join(FIX, 'good.jsonl'), '--harmful', 'advbench', '-o', join(out, 'o.jsonl'), '--no-cache'],
        { SOT_DATA_DIR: mirror, SOT_CACHE_DIR: join(dir, `cache-${name}`) },
      );
      expect(r.signal, name).toBeNull();
      expect(r.status, name).toBe(status);
      expect(JSON.parse(r.stdout).error.message, name).toMatch(message);
      expect(readdirSync(out)).toEqual([]);
    }
  });
});
