// The outputs of a run commit as a unit (issue 16, defect 4). An abort at any
// step of the write stage either changes nothing (the previous run's outputs
// stay byte for byte, no temp file is left, and the message says no output
// was written) or, once the renames have begun, lets them finish: every
// output is then the new run's, and the JSON report's sizes and sha256 match
// the dataset and scores beside it. The aborts are timed by the output
// folder's own file events (each temp file created, written, renamed), so
// they land on every step in turn.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AbortError } from '../src/errors.js';
import { purify } from '../src/pipeline/purify.js';
import type { PurifyOptions } from '../src/pipeline/options.js';
import type { PurifyReport } from '../src/report/types.js';
import { alpacaOk, CLI, harmfulPairs, shuffle, writeJsonl } from './datasets.js';

const root = mkdtempSync(join(tmpdir(), 'sot-commit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const NAMES = {
  output: 'train.purified.jsonl',
  scores: 'train.purified.scores.csv',
  removed: 'train.purified.removed.jsonl',
  report: 'train.purified.report.json',
  html: 'train.purified.report.html',
};
const FILES = Object.values(NAMES);

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const snapshot = (dir: string) => new Map(FILES.map((f) => [f, readFileSync(join(dir, f))]));
const temps = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

/** Inputs in one folder, outputs in another (only the write stage touches it). */
function makeInputs(records: number): { input: string; harmful: string } {
  const clean = shuffle(alpacaOk(), 3);
  const rows = Array.from({ length: records }, (_, i) => ({
    id: i,
    ...clean[i % clean.length]!,
    ...(i >= clean.length ? { instruction: `${clean[i % clean.length]!.instruction} (${i})` } : {}),
  }));
  const dir = join(root, `inputs-${records}`);
  mkdirSync(dir);
  return {
    input: writeJsonl(join(dir, 'train.jsonl'), rows),
    harmful: writeJsonl(join(dir, 'harmful.jsonl'), harmfulPairs().slice(0, 30)),
  };
}

/** The files of a run are the new run's: dataset and scores as in the reference, the report describing them. */
function expectNewRun(dir: string, want: Map<string, Buffer>, k: number, why: string): void {
  const got = snapshot(dir);
  expect(got.get(NAMES.output)!.equals(want.get(NAMES.output)!), `dataset ${why}`).toBe(true);
  expect(got.get(NAMES.scores)!.equals(want.get(NAMES.scores)!), `scores ${why}`).toBe(true);
  expect(got.get(NAMES.removed)!.equals(want.get(NAMES.removed)!), `removed ${why}`).toBe(true);
  const report = JSON.parse(got.get(NAMES.report)!.toString('utf8')) as PurifyReport;
  expect(report.selection.k, why).toBe(k);
  for (const [key, name] of [
    ['dataset', NAMES.output],
    ['scores', NAMES.scores],
    ['removed', NAMES.removed],
  ] as const) {
    const bytes = got.get(name)!;
    expect(report.files![key], `${name} ${why}`).toEqual({ bytes: bytes.length, sha256: sha256(bytes) });
  }
  expect(got.get(NAMES.html)!.toString('utf8'), why).toContain(report.createdAt);
}

function expectUnchanged(dir: string, before: Map<string, Buffer>, why: string): void {
  const got = snapshot(dir);
  for (const f of FILES) expect(got.get(f)!.equals(before.get(f)!), `${f} ${why}`).toBe(true);
  expect(temps(dir), why).toEqual([]);
}

describe('purify(): an AbortSignal fired during the write stage', () => {
  const { input, harmful } = makeInputs(1500);
  const options = (dir: string, fraction: number): PurifyOptions => ({
    input,
    harmful: [harmful],
    output: join(dir, NAMES.output),
    scores: join(dir, NAMES.scores),
    removed: join(dir, NAMES.removed),
    report: join(dir, NAMES.report),
    html: join(dir, NAMES.html),
    keep: { fraction },
    embeddingCache: false,
  });

  it('at each file event of the output folder: nothing changes, or (renames begun) every output is the new one', async () => {
    const ref = join(root, 'lib-ref');
    mkdirSync(ref);
    const newRun = await purify(options(ref, 0.8));
    const want = snapshot(ref);
    const dir = join(root, 'lib-run');
    mkdirSync(dir);
    await purify(options(dir, 0.5));
    let before = snapshot(dir);

    const outcomes: string[] = [];
    for (let k = 1; k <= 200; k++) {
      const ac = new AbortController();
      let events = 0;
      const watcher = watch(dir, () => {
        if (++events === k) ac.abort();
      });
      const result = await purify({ ...options(dir, 0.8), signal: ac.signal }).then(
        (r) => r,
        (e: unknown) => e as Error,
      );
      watcher.close();
      const why = `after an abort at file event ${k}`;
      if (result instanceof Error) {
        expectUnchanged(dir, before, why);
        expect(result, why).toBeInstanceOf(AbortError);
        expect(result.message, why).toBe('aborted before the outputs were committed; no output was written');
        outcomes.push(`${k}: aborted`);
        continue;
      }
      expectNewRun(dir, want, newRun.k, why);
      expect(temps(dir), why).toEqual([]);
      outcomes.push(`${k}: ${ac.signal.aborted ? 'committed (abort during the renames)' : 'committed'}`);
      if (!ac.signal.aborted) break; // the run had fewer events than k: every step was hit
      // Put the previous run's outputs back for the next abort point.
      for (const [f, bytes] of before) writeFileSync(join(dir, f), bytes);
      before = snapshot(dir);
    }
    console.log(`write-stage aborts: ${outcomes.join('; ')}`);
    expect(outcomes.filter((o) => o.endsWith('aborted')).length).toBeGreaterThan(3);
    expect(outcomes.at(-1)).toMatch(/committed$/);
  }, 300_000);

  it('fired from onProgress while the dataset is being written: AbortError, previous outputs intact', async () => {
    const dir = join(root, 'lib-progress');
    mkdirSync(dir);
    await purify(options(dir, 0.5));
    const before = snapshot(dir);
    const ac = new AbortController();
    const seen: number[] = [];
    const err = await purify({
      ...options(dir, 0.8),
      signal: ac.signal,
      onProgress: (e) => {
        if (e.stage !== 'write') return;
        seen.push(e.done);
        if (e.done >= 1000) ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(seen).toEqual([0, 1000]);
    expectUnchanged(dir, before, 'after an abort from onProgress');
  });
});

describe('sot purify: SIGINT during the write stage', () => {
  const { input, harmful } = makeInputs(12000);
  const args = ['purify', input, '--harmful', harmful, '-o', NAMES.output, '--no-cache', '-q'];

  const run = (dir: string, keep: string) =>
    new Promise<number | null>((res) => {
      const c = spawn(process.execPath, [CLI, ...args, '--keep', keep], { cwd: dir, stdio: 'ignore' });
      c.on('exit', (code) => res(code));
    });

  /** Runs into `dir` and sends SIGINT at the first file event whose name `when` accepts. */
  function interrupted(dir: string, keep: string, when: (name: string) => boolean) {
    return new Promise<{ code: number | null; stderr: string; sent: boolean }>((res) => {
      const c = spawn(process.execPath, [CLI, ...args, '--keep', keep], {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      let sent = false;
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const watcher = watch(dir, (_, name) => {
        if (!sent && name !== null && when(name)) sent = c.kill('SIGINT');
      });
      c.on('close', (code) => {
        watcher.close();
        res({ code, stderr, sent });
      });
    });
  }

  it('before the renames: exit 130, "no output was written", and it is true; once they began: exit 0, every output new', async () => {
    const ref = join(root, 'cli-ref');
    mkdirSync(ref);
    expect(await run(ref, '0.8')).toBe(0);
    const want = snapshot(ref);
    const k = (JSON.parse(want.get(NAMES.report)!.toString('utf8')) as PurifyReport).selection.k;

    const prepare = async (name: string) => {
      const dir = join(root, name);
      mkdirSync(dir);
      expect(await run(dir, '0.5')).toBe(0);
      return { dir, before: snapshot(dir) };
    };

    // 1. At the first temp file (the dataset's): the write stage has just begun.
    const a = await prepare('cli-temp');
    const early = await interrupted(a.dir, '0.8', (name) => name.endsWith('.tmp'));
    expect(early.sent).toBe(true);
    expectUnchanged(a.dir, a.before, 'after SIGINT at the first temp file');
    expect(early.code).toBe(130);
    expect(early.stderr).toBe('sot: interrupted by SIGINT; no output was written\n');

    // 2. At the first rename into place (the dataset's): the renames are under way and finish.
    const b = await prepare('cli-rename');
    const late = await interrupted(b.dir, '0.8', (name) => name === NAMES.output);
    expect(late.sent).toBe(true);
    // The message may say "no output was written" only if that is true.
    if (late.stderr.includes('no output was written'))
      expectUnchanged(b.dir, b.before, 'after SIGINT at the first rename, as the message says');
    expect(late.code).toBe(0);
    expectNewRun(b.dir, want, k, 'after SIGINT at the first rename');
    expect(temps(b.dir)).toEqual([]);
    // The signal lands during the renames or after the last: either way the message is true.
    const said = late.stderr
      .split('\n')
      .filter((l) => !l.startsWith('warning: no safe anchor'))
      .join('\n');
    expect([
      '',
      'sot: SIGINT came while the outputs were being committed, which is not interrupted: the run completed and every output was written\n',
    ]).toContain(said);
  }, 300_000);
});
