// The contamination estimate and `keep: 'auto'` on real data: alpaca-libre
// pairs, clean or with real harmful pairs injected (JailbreakBench answers of
// a refusal-ablated model), the built-in embedder, named harmful references.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { purify } from '../src/index.js';
import type { ContaminationEstimate } from '../src/learner.js';
import { autoKeepCount } from '../src/pipeline/purify.js';
import { OptionError } from '../src/errors.js';
import { CLI, DATA_DIR, contaminated, readJsonl, writeJsonl } from './datasets.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup(benign: number, harmful: number) {
  const c = contaminated(benign, harmful);
  dirs.push(c.dir);
  const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
  const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
  return { ...c, input, anchor };
}

const common = {
  harmful: ['advbench', 'harmbench'],
  dataDir: DATA_DIR,
  offline: true,
  embeddingCache: false as const,
  html: null,
};

describe("contamination estimate and keep: 'auto'", () => {
  it('says clean data are clean and drops at most 2% of them', async () => {
    const s = setup(400, 0);
    const res = await purify({ ...common, input: s.input, anchor: [s.anchor], keep: 'auto' });
    const c = res.contamination!;
    expect(c.level).toBe(0.9);
    expect(c.low).toBeLessThanOrEqual(c.estimate);
    expect(c.estimate).toBeLessThanOrEqual(c.high);
    expect(c.estimate).toBeLessThan(0.02);
    expect(c.clean).toBe(true);
    expect(c.verdict).toBe('clean');
    expect(res.n - res.k).toBeLessThanOrEqual(0.02 * res.n);
    // the same figures in the JSON report
    const report = JSON.parse(readFileSync(res.outputs.report, 'utf8'));
    expect(report.contamination).toEqual(c);
    expect(report.options.keep).toBe('auto');
  });

  it('estimates the injected share and drops the harmful samples', async () => {
    const s = setup(360, 40); // 10% contamination
    const res = await purify({ ...common, input: s.input, anchor: [s.anchor], keep: 'auto' });
    const c = res.contamination!;
    expect(c.clean).toBe(false);
    expect(c.verdict).toBe('contaminated');
    expect(c.estimate).toBeGreaterThan(0.03);
    expect(c.estimate).toBeLessThan(0.15);
    // the interval holds the injected 10% (it covers the 50-sample anchor's calibration error)
    expect(c.low).toBeLessThanOrEqual(0.1);
    expect(c.high).toBeGreaterThanOrEqual(0.1);
    const kept = readJsonl<{ source: string }>(res.outputs.dataset);
    expect(kept.length).toBe(res.k);
    const fixed = await purify({
      ...common,
      input: s.input,
      anchor: [s.anchor],
      keep: { fraction: 0.8 },
      output: join(s.dir, 'fixed.jsonl'),
    });
    const keptFixed = readJsonl<{ source: string }>(fixed.outputs.dataset);
    const harmful = (rows: { source: string }[]) => rows.filter((r) => r.source === 'harmful').length;
    // on data that look contaminated at least the default's 20% goes (the interval's upper end when it is more),
    // and no more injected pairs stay than with the fixed 80%
    expect(res.n - res.k).toBeGreaterThanOrEqual(Math.floor(c.estimate * res.n));
    expect(res.k).toBeLessThanOrEqual(fixed.k);
    // the learner's K drops the interval's upper end; purify keeps at most the default
    expect(res.k).toBe(Math.min(res.n - Math.round(c.high * res.n), Math.round(0.8 * res.n)));
    expect(harmful(kept)).toBeLessThanOrEqual(harmful(keptFixed));
    expect(harmful(keptFixed)).toBeLessThan(0.25 * 40);
    expect(fixed.contamination).toEqual(c); // the estimate does not depend on K
  });

  it("turns the learner's automatic K into the records kept: all when clean, the default when inconclusive, at most the default when contaminated", () => {
    const at = (verdict: ContaminationEstimate['verdict']) =>
      ({
        estimate: 0.1,
        low: 0.05,
        high: 0.15,
        level: 0.9,
        method: 'm',
        clean: verdict === 'clean',
        verdict,
      }) as ContaminationEstimate;
    // clean: the learner keeps all of its sample, and so every record
    expect(autoKeepCount(at('clean'), 300, 300, 1000)).toBe(1000);
    // no estimate (the learner keeps all) and inconclusive (no K: the default 80%)
    expect(autoKeepCount(undefined, 300, 300, 1000)).toBe(1000);
    expect(autoKeepCount(at('inconclusive'), null, 300, 1000)).toBe(800);
    // contaminated: the learner's K scaled to all records when it drops more than the default ...
    expect(autoKeepCount(at('contaminated'), 150, 300, 1000)).toBe(500);
    expect(autoKeepCount(at('contaminated'), 1, 300, 1000)).toBe(3);
    // ... else the default, never fewer dropped
    expect(autoKeepCount(at('contaminated'), 290, 300, 1000)).toBe(800);
    expect(autoKeepCount(at('contaminated'), 299, 300, 301)).toBe(241);
  });

  it('falls back to the default keep, and says why, when the interval is too wide for a verdict', async () => {
    // every harmful pair of the mirror (82 of 362, 23%): the estimate's lower end is near 0,
    // its upper end far up; the lower end alone would have called this clean and kept everything
    const s = setup(280, 120);
    const res = await purify({ ...common, input: s.input, anchor: [s.anchor], keep: 'auto' });
    const c = res.contamination!;
    expect(c.verdict).toBe('inconclusive');
    expect(c.clean).toBe(false);
    expect(c.low).toBeLessThan(0.03);
    expect(c.high).toBeGreaterThanOrEqual(0.1);
    expect(res.k).toBe(Math.round(0.8 * res.n));
    expect(res.warnings.join('\n')).toMatch(/inconclusive .* so the default keep \(80.0%\) applies/);
    expect(JSON.parse(readFileSync(res.outputs.report, 'utf8')).contamination).toEqual(c);
  });

  it('keeps every record, and says why, when a one-sample anchor allows no estimate', async () => {
    const s = setup(120, 12);
    const one = writeJsonl(join(s.dir, 'one.jsonl'), readJsonl(s.anchor).slice(0, 1));
    const res = await purify({
      ...common,
      input: s.input,
      anchor: [one],
      keep: 'auto',
      output: join(s.dir, 'one-out.jsonl'),
    });
    expect(res.contamination).toBeUndefined();
    expect(res.k).toBe(res.n);
    expect(res.warnings.join('\n')).toMatch(/no contamination estimate/);
    expect(JSON.parse(readFileSync(res.outputs.report, 'utf8')).contamination).toBeNull();
  });

  it('is refused for the baselines, and --keep auto works from the CLI with the estimate in --json', async () => {
    const s = setup(360, 40);
    await expect(
      purify({ ...common, input: s.input, anchor: [s.anchor], keep: 'auto', method: 'push-only' }),
    ).rejects.toThrow(OptionError);
    await expect(purify({ ...common, input: s.input, keep: 'sometimes' as unknown as 'auto' })).rejects.toThrow(
      /keep must be 'auto'/,
    );
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        s.input,
        '--harmful',
        'advbench,harmbench',
        '--anchor',
        s.anchor,
        '--keep',
        'auto',
        '--json',
        '--no-html',
        '--data-dir',
        DATA_DIR,
        '--offline',
      ],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, SOT_CACHE_DIR: join(s.dir, 'cache') } },
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.contamination).toMatchObject({ level: 0.9, clean: false });
    expect(out.contamination.estimate).toBeGreaterThan(0);
    expect(out.k).toBeLessThan(out.n);
    const text = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        s.input,
        '--harmful',
        'advbench',
        '--anchor',
        s.anchor,
        '--keep',
        'auto',
        '--no-html',
        '--data-dir',
        DATA_DIR,
        '--offline',
        '-o',
        join(s.dir, 'b.jsonl'),
      ],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, SOT_CACHE_DIR: join(s.dir, 'cache') } },
    );
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/contamination: \d+\.\d% \(90% interval/);
  });
});
