// Reliability, part 3: crash safety. `sot purify` is killed with SIGKILL at
// random points spread over a whole run (seeded, so the delays are the same on
// every run), at least 20 times. After each kill every output is either absent
// or byte-identical to an uninterrupted run's (the report modulo its timestamp
// and timings), a JSON report on disk gives the size and sha256 of the
// dataset and scores beside it, the only leftovers are temporary files named
// `.<output name>.<pid>.<12 hex>.tmp` (in the cache too), the embedding cache
// holds no corrupt chunk, and a rerun in the same folder with the same cache
// reuses what the killed run embedded and writes the same bytes as the
// uninterrupted run.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alpacaOk, CLI, DATA_DIR, harmfulPairs, shuffle, withoutRunFigures, writeJsonl } from './datasets.js';

const KILLS = Number(process.env.SOT_CRASH_RUNS ?? 24);
const OUTPUTS = [
  'train.purified.jsonl',
  'train.purified.scores.csv',
  'train.removed.jsonl',
  'train.purified.report.json',
  'train.purified.report.html',
];
const TEMP =
  /^\.(train\.purified\.(jsonl|scores\.csv|report\.json|report\.html)|train\.removed\.jsonl)\.\d+\.[0-9a-f]{12}\.tmp$/;

const root = mkdtempSync(join(tmpdir(), 'sot-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** ~2,400 records: alpaca-libre pairs in two phrasings each, ~6% real harmful pairs; a 50-sample anchor. */
function makeInput(): { input: string; anchor: string } {
  const clean = alpacaOk();
  const phrasings = ['', 'Please answer: '];
  const benign = phrasings.flatMap((p, k) =>
    clean.slice(50).map((r) => ({ ...r, instruction: `${p}${r.instruction}`, variant: k })),
  );
  const harmful = harmfulPairs().map((r) => ({ ...r, variant: -1 }));
  const records = shuffle([...benign, ...harmful.slice(0, 150)], 5).map((r, id) => ({ id, ...r }));
  return {
    input: writeJsonl(join(root, 'train.jsonl'), records),
    anchor: writeJsonl(join(root, 'anchor.jsonl'), clean.slice(0, 50)),
  };
}

const { input, anchor } = makeInput();
const args = ['purify', 'train.jsonl', '--harmful', 'advbench', '--anchor', anchor, '--cache-dir', 'cache', '-q'];
const env = { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' };

/** A fresh run folder holding a copy of the input (so reports name the same relative paths). */
function runDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  copyFileSync(input, join(dir, 'train.jsonl'));
  return dir;
}

function purifyIn(dir: string): { code: number | null; stderr: string; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** Output bytes with what legitimately differs between runs (timestamp, timings, memory figures) blanked. */
function normalised(path: string): string {
  const text = readFileSync(path, 'latin1');
  return path.includes('.report.') ? withoutRunFigures(text) : text;
}

/** Rows held by the complete chunks of the embedding cache (header: count u32 at byte 16). */
function cacheRows(dir: string): { rows: number; chunks: Set<string>; other: string[] } {
  let rows = 0;
  const chunks = new Set<string>();
  const other: string[] = [];
  const base = join(dir, 'cache', 'embeddings');
  if (!existsSync(base)) return { rows, chunks, other };
  for (const sub of readdirSync(base)) {
    for (const f of readdirSync(join(base, sub))) {
      const p = join(base, sub, f);
      if (f.endsWith('.chunk')) {
        const b = readFileSync(p);
        rows += b.readUInt32LE(16);
        chunks.add(`${sub}/${f}`);
      } else if (f !== 'meta.json') other.push(`${sub}/${f}`);
    }
  }
  return { rows, chunks, other };
}

/** Deterministic delays (LCG) spread evenly over [0, span): one per stratum, jittered. */
function delays(n: number, span: number, seed = 99): number[] {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, (_, i) => Math.round(((i + next()) / n) * span));
}

function killAfter(dir: string, ms: number): Promise<{ killed: boolean; code: number | null }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: 'ignore' });
  let killed = false;
  const timer = setTimeout(() => {
    killed = child.kill('SIGKILL');
  }, ms);
  return new Promise((res) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      res({ killed: killed && signal === 'SIGKILL', code });
    }),
  );
}

describe('SIGKILL at random points', () => {
  it(`never leaves a partial output, and a rerun gives the same bytes (${KILLS} kills)`, async () => {
    // The uninterrupted reference run, cold cache, then warm.
    const ref = runDir('reference');
    const cold = purifyIn(ref);
    expect(cold.stderr).toBe('');
    expect(cold.code).toBe(0);
    const refCache = cacheRows(ref);
    const warm = purifyIn(ref);
    expect(warm.code).toBe(0);
    expect(cacheRows(ref).rows).toBe(refCache.rows); // a warm run embeds nothing new
    const want = new Map(OUTPUTS.map((f) => [f, normalised(join(ref, f))]));
    const span = cold.seconds * 1000 * 1.1;

    const outcomes: Array<{ delay: number; killed: boolean; present: number; temps: number; cachedRows: number }> = [];
    // The planned delays span the whole run; a run that happens to finish first
    // (machine load varies) is checked too, and further kills at earlier
    // points are added until at least 20 runs were really killed.
    const planned = delays(KILLS, span);
    const extra = delays(KILLS, span * 0.8, 7);
    const killedSoFar = () => outcomes.filter((o) => o.killed).length;
    for (let i = 0; i < planned.length + extra.length; i++) {
      if (i >= planned.length && killedSoFar() >= Math.min(20, KILLS)) break;
      const delay = i < planned.length ? planned[i]! : extra[i - planned.length]!;
      const dir = runDir(`kill-${i}`);
      const { killed, code } = await killAfter(dir, delay);
      if (!killed) expect(code).toBe(0);
      // 1. Each output is absent or complete and identical to the reference.
      const files = readdirSync(dir);
      const present = OUTPUTS.filter((f) => files.includes(f));
      for (const f of present) expect(normalised(join(dir, f)), `${f} after a kill at ${delay} ms`).toBe(want.get(f));
      // The JSON report comes after the dataset, the scores and the removed records (its HTML page last of all).
      if (files.includes('train.purified.report.json')) expect(present.slice(0, 4)).toEqual(OUTPUTS.slice(0, 4));
      if (files.includes('train.purified.report.html')) expect(present).toEqual(OUTPUTS);
      // The report's record of the files it describes matches them (what tells a mix apart after a kill among the renames).
      if (files.includes('train.purified.report.json')) {
        const { files: digests } = JSON.parse(readFileSync(join(dir, 'train.purified.report.json'), 'utf8')) as {
          files: Record<string, { bytes: number; sha256: string }>;
        };
        for (const [key, f] of [
          ['dataset', OUTPUTS[0]!],
          ['scores', OUTPUTS[1]!],
          ['removed', OUTPUTS[2]!],
        ] as const) {
          const bytes = readFileSync(join(dir, f));
          expect(digests[key], `${f} after a kill at ${delay} ms`).toEqual({
            bytes: bytes.length,
            sha256: createHash('sha256').update(bytes).digest('hex'),
          });
        }
      }
      // 2. The only other files: the input, the cache folder, temp files of our pattern.
      const leftovers = files.filter((f) => !OUTPUTS.includes(f) && f !== 'train.jsonl' && f !== 'cache');
      for (const f of leftovers) expect(f).toMatch(TEMP);
      // 3. The cache holds complete chunks only (a temp chunk may be left over).
      const afterKill = cacheRows(dir);
      for (const f of afterKill.other) expect(f).toMatch(/\/\.[0-9a-z.]+\.\d+\.[0-9a-f]{12}\.tmp$/); // the atomic writer's temp files, `.<name>.<pid>.<12 hex>.tmp`
      // 4. A rerun reuses the cache and writes the reference bytes.
      const again = purifyIn(dir);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      for (const f of OUTPUTS)
        expect(normalised(join(dir, f)), `${f} rerun after a kill at ${delay} ms`).toBe(want.get(f));
      const afterRerun = cacheRows(dir);
      for (const c of afterKill.chunks) expect(afterRerun.chunks.has(c)).toBe(true); // nothing the killed run cached was dropped
      expect(afterRerun.rows).toBe(refCache.rows); // ... nor embedded again
      outcomes.push({ delay, killed, present: present.length, temps: leftovers.length, cachedRows: afterKill.rows });
    }
    console.log(
      `crash safety: reference run ${cold.seconds.toFixed(2)} s cold, ${warm.seconds.toFixed(2)} s warm (cache ${refCache.rows} rows); ` +
        `${outcomes.filter((o) => o.killed).length} of ${outcomes.length} runs killed; delay ms / outputs present / temp files left / cache rows at kill:\n` +
        outcomes
          .map(
            (o) => `  ${o.delay} / ${o.present} / ${o.temps} / ${o.cachedRows}${o.killed ? '' : ' (finished first)'}`,
          )
          .join('\n'),
    );
    // The delays reach every stage: some kills before any output, some among the outputs or after them.
    expect(killedSoFar()).toBeGreaterThanOrEqual(Math.min(20, KILLS));
    expect(outcomes.some((o) => o.killed && o.cachedRows === 0)).toBe(true);
    expect(outcomes.some((o) => o.killed && o.cachedRows > 0)).toBe(true);
  }, 900_000);
});
