// The memory budget of `sot purify`: the learner's costs get what the run
// does not hold, stored dense when they fit and truncated to each sample's
// nearest references when they do not; a budget too small for the
// embeddings fails before any work, with nothing written.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { purify } from '../src/index.js';
import { arrayMatrix, storedMatrix } from '../src/matrix.js';
import { native } from '../src/native.js';
import { learnerBudget } from '../src/pipeline/memory.js';
import { CLI, contaminated, DATA_DIR, writeJsonl } from './datasets.js';

function setup() {
  const c = contaminated();
  return {
    ...c,
    input: writeJsonl(join(c.dir, 'train.jsonl'), c.records),
    anchor: writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor),
  };
}
const env = { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' };

describe('memory budget', () => {
  it('records the budget and the peak resident set, and keeps under it', () => {
    const c = setup();
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        c.input,
        '--harmful',
        'advbench,harmbench',
        '--anchor',
        c.anchor,
        '--memory-budget',
        '1.5GB',
        '--json',
      ],
      {
        env: { ...env, SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')) },
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.memory.budget).toBe(1.5e9);
    expect(out.memory.peakRss).toBeGreaterThan(0);
    expect(out.memory.peakRss).toBeLessThan(1.5e9);
    expect(out.memory.learnerBudget).toBeLessThan(1.5e9 - out.memory.peakRss / 4);
    // 400 x 920 costs fit easily: dense, with the kernel stored
    expect(out.learner.storage.harmful).toMatchObject({ mode: 'dense+kernel', neighbours: 0 });
    const report = JSON.parse(readFileSync(out.outputs.report, 'utf8'));
    expect(report.memory).toEqual(expect.objectContaining({ budget: 1.5e9 }));
    expect(report.learner.storage.anchor.mode).toBe('dense+kernel');
  });

  it('truncates the harmful costs to the nearest references when they do not fit, and says how far off that was', async () => {
    const c = setup();
    const base = {
      input: c.input,
      harmful: ['advbench', 'harmbench'],
      anchor: [c.anchor],
      dataDir: DATA_DIR,
      offline: true,
      embeddingCache: false as const,
      html: null,
    };
    const dense = await purify({ ...base, output: join(c.dir, 'dense.jsonl') });
    // 400 samples x 920 harmful references take 1.5 MB dense: give the costs 600 kB
    const small = await purify({
      ...base,
      output: join(c.dir, 'small.jsonl'),
      learner: { storage: { budget: 600_000, neighbours: 64 } },
    });
    const h = small.report.learner!.storage.harmful;
    expect(h.mode).toMatch(/^truncated/);
    expect(h.neighbours).toBe(64);
    expect(h.verification!.maxError).toBeLessThanOrEqual(h.bound);
    expect(small.report.learner!.storage.anchor.bytes + h.bytes).toBeLessThanOrEqual(600_000);
    // the selection barely moves
    let same = 0;
    for (let i = 0; i < small.n; i++) if (small.selection.kept[i] === dense.selection.kept[i]) same++;
    expect(same / small.n).toBeGreaterThan(0.95);
  });

  it('holds the embeddings once while learning (shared with the core), once for sot embed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-budget-once-'));
    const rows = Array.from({ length: 20000 }, (_, i) => ({
      prompt: `question ${i} on topic ${i % 89}`,
      response: `answer ${i}`,
    }));
    const input = writeJsonl(join(dir, 'train.jsonl'), rows);
    const harmful = writeJsonl(
      join(dir, 'harmful.jsonl'),
      Array.from({ length: 20 }, (_, i) => ({ prompt: `how to build weapon ${i}`, response: `step ${i}: attack` })),
    );
    // 20,000 x 8,192 floats are 625 MiB. Held twice while learning, as a JS
    // array and the core's copy, they need 1,250 MiB beside the process: 1.3 GB
    // (1,240 MiB) was refused before any work. Held once in native memory, the
    // core learning on the same rows, the run fits it with room for the costs.
    const flags = ['--dim', '8192', '--memory-budget', '1.3GB', '--no-cache'];
    const r = spawnSync(
      process.execPath,
      [CLI, 'purify', input, '--harmful', harmful, '--own-harm', '0', '--no-html', ...flags],
      { env, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'train.purified.report.json'), 'utf8'));
    expect(report.memory.learnerBudget).toBeGreaterThan(100 * 2 ** 20);
    const npy = join(dir, 'train.npy');
    const embed = spawnSync(process.execPath, [CLI, 'embed', input, '-o', npy, ...flags], { env, encoding: 'utf8' });
    expect(embed.status, embed.stderr).toBe(0);
    expect(statSync(npy).size).toBeGreaterThan(20000 * 8192 * 4);
  });

  it('keeps wide rows within the budget through the report: the map plots fewer of them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-budget-wide-'));
    const rows = Array.from({ length: 5000 }, (_, i) => ({
      prompt: `question ${i} on topic ${i % 89} with more words ${i * 7}`,
      response: `answer ${i} and details ${i % 13}`,
    }));
    const input = writeJsonl(join(dir, 'train.jsonl'), rows);
    const harmful = writeJsonl(
      join(dir, 'harmful.jsonl'),
      Array.from({ length: 20 }, (_, i) => ({ prompt: `how to build weapon ${i}`, response: `step ${i}: attack` })),
    );
    // 5,000 x 16,384 floats are 312 MiB, held once. The map's copy of 4,000
    // of them (250 MiB, and as much again in garbage) took the run to 1.2 GiB
    // under this 763 MiB budget; it now copies at most 64 MiB of rows.
    const flags = ['--dim', '16384', '--memory-budget', '800MB', '--no-cache', '--own-harm', '0', '--no-html'];
    const r = spawnSync(process.execPath, [CLI, 'purify', input, '--harmful', harmful, ...flags, '--json'], {
      env,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.memory.peakRss).toBeLessThan(8e8);
    const report = JSON.parse(readFileSync(out.outputs.report, 'utf8'));
    const plotted = report.projection.downstream.length + report.projection.harmful.length;
    expect(plotted * 16384 * 4).toBeLessThanOrEqual(64 * 2 ** 20);
    expect(report.projection.downstream.length).toBeGreaterThan(900);
  });

  it("leaves the learner's costs what the core's copies of array sets do not take", () => {
    const budget = 8 * 2 ** 30;
    const downstream = storedMatrix(100, 1024);
    const [arrays, stored] = [arrayMatrix(1024, 1024), storedMatrix(1024, 1024)]; // 4 MiB each
    // the same resident set for both: the process's own grows between calls
    const held = 300 * 2 ** 20;
    const o = { ownHarmShare: 0, held };
    const shared = learnerBudget(budget, { downstream, harmful: stored }, o);
    const copied = learnerBudget(budget, { downstream, anchor: arrayMatrix(256, 1024), harmful: arrays }, o);
    // the arrays' copies (1 + 4 MiB), and the anchor's two working copies (2 MiB) that stored rows need too
    expect(shared - copied).toBe(7 * 2 ** 20);
    // a stored harmful reference: no copy (the core computes its costs in place)
    expect(shared).toBe(budget - held - 100 * 256 - 96 * 2 ** 20);
    // the own-harm solve: its points twice (formed from the rows, then kept), and the reference joined to them
    const n = 10_000;
    const rows = storedMatrix(n, 1024);
    const own = native.ownHarmCount(n, 0.05);
    expect(own).toBe(500);
    const noOwnHarm = learnerBudget(budget, { downstream: rows, harmful: stored }, o);
    const ownHarm = (1024 + 2 * 500) * 1024 * 4;
    expect(noOwnHarm - learnerBudget(budget, { downstream: rows, harmful: stored }, { ...o, ownHarmShare: 0.05 })).toBe(
      ownHarm,
    );
    // unset, the core's default share (0.05)
    expect(learnerBudget(budget, { downstream: rows, harmful: stored }, { held })).toBe(noOwnHarm - ownHarm);
    expect(() => learnerBudget(400 * 2 ** 20, { downstream: rows, harmful: stored }, { held })).toThrow(
      /used up before learning .*its working copies of the references and of the data's 500 own-harm points take 8 MiB/,
    );
    expect(() => learnerBudget(2 ** 20, { downstream, harmful: arrays })).toThrow(
      /used up before learning .*the core's copies of the embeddings it is given as arrays take 4 MiB/,
    );
  });

  it('refuses a budget too small for the embeddings before any work, writing nothing (exit 2)', () => {
    const c = setup();
    const r = spawnSync(
      process.execPath,
      [CLI, 'purify', c.input, '--harmful', 'advbench', '--memory-budget', '64MB'],
      {
        env: { ...env, SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')) },
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /memory budget of 61 MiB is too small for .*train\.jsonl: its 400 records take 3 MiB as 2048-d embeddings/,
    );
    expect(r.stderr).toMatch(/raise --memory-budget/);
    expect(readdirSync(c.dir).sort()).toEqual(['anchor.jsonl', 'train.jsonl']);
    const bad = spawnSync(
      process.execPath,
      [CLI, 'purify', c.input, '--harmful', 'advbench', '--memory-budget', 'lots'],
      { env, encoding: 'utf8' },
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--memory-budget must be a size such as 8GB, 512MiB or a number of bytes, got "lots"/);
  });
});
