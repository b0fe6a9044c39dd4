// refit: 'auto': column passes until the reference marginals' L1 error is
// below REFIT_AUTO.tolerance, at most REFIT_AUTO.maxPasses; every pass
// reports its error, and the model file, the results and the sharded report
// carry the last one.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REFIT_AUTO } from '../src/defaults.js';
import { OptionError } from '../src/errors.js';
import { fit } from '../src/fit/fit.js';
import { loadModel } from '../src/fit/model.js';
import { score } from '../src/fit/score.js';
import { purifySharded } from '../src/fit/shards.js';
import { CLI, contaminated, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];

describe("refit: 'auto' and the marginal error", () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;
  let model: string;
  const out = (name: string) => join(c.dir, name);

  beforeAll(async () => {
    c = contaminated(360, 40);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    model = join(c.dir, 'sample.sot-model');
    await fit({ input: data, harmful: HARMFUL, anchor: [anchor], embeddingCache: false, sample: 80, model });
  }, 120_000);

  it('each pass reports its error; auto stops at the first below the tolerance and equals that many fixed passes', async () => {
    const base = { input: data, model, embeddingCache: false as const };
    const errors: number[] = [];
    for (const refit of [1, 2, 3]) {
      const r = await score({ ...base, refit, scores: out(`fixed-${refit}.csv`) });
      expect(r.refit.passes).toBe(refit);
      errors.push(r.refit.error!);
    }
    // a fifth of the records fitted: the first pass moves the potentials, the later ones less
    expect(errors[0]).toBeGreaterThan(REFIT_AUTO.tolerance);
    expect(errors[2]).toBeLessThan(errors[0]!);
    const auto = await score({ ...base, refit: 'auto', scores: out('auto.csv'), saveModel: out('auto.sot-model') });
    const p = auto.refit.passes;
    expect(p).toBeGreaterThanOrEqual(2);
    expect(p).toBeLessThanOrEqual(REFIT_AUTO.maxPasses);
    if (p < REFIT_AUTO.maxPasses) expect(auto.refit.error!).toBeLessThan(REFIT_AUTO.tolerance);
    // the passes before the last were all above it (else auto would have stopped there)
    errors.slice(0, Math.min(3, p - 1)).forEach((e) => expect(e).toBeGreaterThanOrEqual(REFIT_AUTO.tolerance));
    const fixed = await score({ ...base, refit: p, scores: out('fixed-p.csv') });
    expect(Array.from(auto.scores)).toEqual(Array.from(fixed.scores));
    expect(fixed.refit.error).toBe(auto.refit.error);
    const saved = await loadModel(out('auto.sot-model'));
    expect(saved.header.refit).toEqual({ passes: p, records: 400, input: data, error: auto.refit.error });
    // no pass, no error
    const none = await score({ ...base, scores: out('none.csv') });
    expect(none.refit).toEqual({ passes: 0, error: null });
  }, 180_000);

  it('fit and purify --shards take auto too; the sharded report gives the passes and the error', async () => {
    const f = await fit({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      sample: 80,
      refit: 'auto',
      model: out('fit-auto.sot-model'),
    });
    const viaScore = await score({ input: data, model, embeddingCache: false, refit: 'auto', scores: out('s.csv') });
    expect(f.refit).toBe(viaScore.refit.passes);
    expect(f.refitError).toBe(viaScore.refit.error);
    const res = await purifySharded({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 2,
      workers: 2,
      sample: 80,
      refit: 'auto',
      keep: { count: 300 },
      output: out('sharded.jsonl'),
      scores: out('sharded.csv'),
      report: out('sharded.report.json'),
      html: null,
    });
    const sh = JSON.parse(readFileSync(res.outputs.report!, 'utf8')).sharded;
    // the shards' parts merge in another order: the same passes, the error equal up to rounding
    expect(sh.refit).toBe(f.refit);
    expect(Math.abs(sh.refitError - f.refitError!)).toBeLessThanOrEqual(1e-9 * f.refitError!);
  }, 240_000);

  it('refuses other words, on the command line too', async () => {
    await expect(
      score({ input: data, model, refit: 'often' as never, scores: out('x.csv'), embeddingCache: false }),
    ).rejects.toBeInstanceOf(OptionError);
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const bad = run(['score', data, '--model-file', model, '--refit', 'often']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--refit must be an integer >= 0 or auto/);
    const ok = run([
      'score',
      data,
      '--model-file',
      model,
      '--refit',
      'auto',
      '--scores',
      out('cli.csv'),
      '--json',
      '--no-cache',
    ]);
    expect(ok.status, ok.stderr).toBe(0);
    const j = JSON.parse(ok.stdout);
    expect(j.refit.passes).toBeGreaterThanOrEqual(1);
    expect(typeof j.refit.error).toBe('number');
  }, 120_000);
});
