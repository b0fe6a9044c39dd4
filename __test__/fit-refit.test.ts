// Refined potentials written back: fit({ refit }), score({ refit, saveModel })
// and purifySharded({ saveModel }) write model files whose potentials are
// those of the refit, committed with the other outputs or not at all.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AbortError, IoError, OptionError } from '../src/errors.js';
import { fit, type FitResult } from '../src/fit/fit.js';
import { decodeModel, encodeModel, loadModel, scoreQuantiles, type Model } from '../src/fit/model.js';
import { score } from '../src/fit/score.js';
import { purifySharded } from '../src/fit/shards.js';
import { CLI, contaminated, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];

/** The model's reference potentials, as plain arrays (bit-for-bit comparable with toEqual). */
const potentials = (m: Model) => [Array.from(m.anchor.potential), Array.from(m.harmful.potential)];

/** The raw JSON header of a model file. */
function rawHeader(path: string): Record<string, unknown> {
  const b = readFileSync(path);
  return JSON.parse(b.subarray(16, 16 + b.readUInt32LE(12)).toString('utf8')) as Record<string, unknown>;
}

describe('refined potentials written to model files', () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;
  let sampleModel: string;
  let refitModel: string;
  let refitFit: FitResult;

  beforeAll(async () => {
    c = contaminated(360, 40);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    const common = { input: data, harmful: HARMFUL, anchor: [anchor], embeddingCache: false as const, sample: 100 };
    sampleModel = join(c.dir, 'sample.sot-model');
    refitModel = join(c.dir, 'refit.sot-model');
    await fit({ ...common, model: sampleModel });
    refitFit = await fit({ ...common, model: refitModel, refit: 1 });
  }, 120_000);

  it('fit({ refit: 1 }) writes the potentials score({ refit: 1 }) computes from the sample model, bit for bit', async () => {
    const [plain, refined] = [await loadModel(sampleModel), await loadModel(refitModel)];
    expect(refitFit.refit).toBe(1);
    expect(refined.header.refit).toMatchObject({ passes: 1, records: 400, input: data, error: expect.any(Number) });
    expect(plain.header.refit).toBeUndefined();
    expect(refined.header.fit).toEqual(plain.header.fit);
    const out = (name: string) => join(c.dir, name);
    const once = await score({
      input: data,
      model: sampleModel,
      refit: 1,
      saveModel: out('saved.sot-model'),
      scores: out('once.csv'),
      embeddingCache: false,
    });
    expect(potentials(await loadModel(out('saved.sot-model')))).toEqual(potentials(refined));
    expect(potentials(refined)).not.toEqual(potentials(plain)); // the refit did move them
    const direct = await score({ input: data, model: refitModel, scores: out('direct.csv'), embeddingCache: false });
    expect(Array.from(direct.scores)).toEqual(Array.from(once.scores));
    // fit's sample scores and their quantiles are against the written, refined model
    refitFit.sampleIndices.forEach((i, k) => expect(refitFit.sampleScores[k]).toBe(direct.scores[i]));
    expect(refined.header.scoreQuantiles).toEqual(scoreQuantiles(refitFit.sampleScores));
  }, 60_000);

  it('score --save-model, then score with the saved model and no refit, equals score --refit 1', async () => {
    const saved = join(c.dir, 'save.sot-model');
    const one = await score({
      input: data,
      model: sampleModel,
      refit: 1,
      saveModel: saved,
      keep: { fraction: 0.8 },
      output: join(c.dir, 'save-kept.jsonl'),
      scores: join(c.dir, 'save.csv'),
      embeddingCache: false,
    });
    expect(one.outputs.model).toBe(saved);
    const again = await score({
      input: data,
      model: saved,
      keep: { fraction: 0.8 },
      output: join(c.dir, 'again-kept.jsonl'),
      scores: join(c.dir, 'again.csv'),
      embeddingCache: false,
    });
    expect(Array.from(again.scores)).toEqual(Array.from(one.scores));
    expect(readFileSync(join(c.dir, 'again-kept.jsonl'))).toEqual(readFileSync(join(c.dir, 'save-kept.jsonl')));
    const m = await loadModel(saved);
    expect(m.header.refit).toMatchObject({ passes: 1, records: 400, input: data, error: expect.any(Number) });
    // the quantiles of every scored record: a threshold at the 20% quantile keeps 80% of them
    const sorted = Float64Array.from(one.scores).sort();
    expect(m.header.scoreQuantiles['0']).toBe(sorted[0]);
    expect(m.header.scoreQuantiles['1']).toBe(sorted[399]);
    expect(m.header.scoreQuantiles['0.2']).toBe(sorted[80]);
    expect(m.header.fit).toEqual((await loadModel(sampleModel)).header.fit);
  }, 60_000);

  it('refines a model in place: replaced only at the commit, passes add up', async () => {
    const inPlace = join(c.dir, 'in-place.sot-model');
    copyFileSync(sampleModel, inPlace);
    const run = (model: string, refit: number, name: string, save?: string) =>
      score({ input: data, model, refit, saveModel: save, scores: join(c.dir, name), embeddingCache: false });
    await run(inPlace, 1, 'place-1.csv', inPlace);
    expect((await loadModel(inPlace)).header.refit).toMatchObject({
      passes: 1,
      records: 400,
      input: data,
      error: expect.any(Number),
    });
    await run(inPlace, 1, 'place-2.csv', inPlace);
    const twice = await loadModel(inPlace);
    expect(twice.header.refit).toMatchObject({ passes: 2, records: 400, input: data, error: expect.any(Number) });
    // two runs of one pass each refine exactly as one run of two passes
    const two = join(c.dir, 'two.sot-model');
    await run(sampleModel, 2, 'two.csv', two);
    expect(potentials(twice)).toEqual(potentials(await loadModel(two)));
  }, 90_000);

  it('an abort or a failing output leaves no model file and no other output', async () => {
    const dir = join(c.dir, 'atomic');
    mkdirSync(dir);
    const saved = join(dir, 'model.sot-model');
    const ac = new AbortController();
    await expect(
      score({
        input: data,
        model: sampleModel,
        refit: 1,
        saveModel: saved,
        keep: { count: 10 },
        output: join(dir, 'kept.jsonl'),
        scores: join(dir, 'scores.csv'),
        embeddingCache: false,
        signal: ac.signal,
        onProgress: (e) => e.stage === 'write' && ac.abort(),
      }),
    ).rejects.toBeInstanceOf(AbortError);
    expect(readdirSync(dir)).toEqual([]);
    // the scores output is a folder: refused when it is opened, after the model was staged
    mkdirSync(join(dir, 'scores.csv'));
    await expect(
      score({
        input: data,
        model: sampleModel,
        refit: 1,
        saveModel: saved,
        scores: join(dir, 'scores.csv'),
        embeddingCache: false,
      }),
    ).rejects.toBeInstanceOf(IoError);
    expect(readdirSync(dir)).toEqual(['scores.csv']);
    expect(readdirSync(join(dir, 'scores.csv'))).toEqual([]);
  }, 60_000);

  it('refuses a saveModel with nothing refined, colliding with an output or the input, or not a path', async () => {
    const base = { input: data, model: sampleModel, embeddingCache: false as const };
    const saved = join(c.dir, 'never.sot-model');
    await expect(score({ ...base, saveModel: saved })).rejects.toThrow(/saveModel needs refit >= 1/);
    await expect(score({ ...base, saveModel: saved, refit: 0 })).rejects.toBeInstanceOf(OptionError);
    await expect(score({ ...base, saveModel: '', refit: 1 })).rejects.toBeInstanceOf(OptionError);
    await expect(score({ ...base, saveModel: data, refit: 1 })).rejects.toMatchObject({ code: 'ERR_IO' });
    const csv = join(c.dir, 'clash.csv');
    await expect(score({ ...base, saveModel: csv, scores: csv, refit: 1 })).rejects.toThrow(
      /refusing to write .*it is also/,
    );
    await expect(
      fit({ input: data, harmful: HARMFUL, refit: -1, model: saved, embeddingCache: false }),
    ).rejects.toThrow(/refit must be 'auto' or an integer/);
    await expect(
      purifySharded({ input: data, harmful: HARMFUL, shards: 2, saveModel: data, embeddingCache: false }),
    ).rejects.toMatchObject({ code: 'ERR_IO' });
    expect(existsSync(saved)).toBe(false);
  });

  it('loads a model file written without the refit field (older writers) and refines it', async () => {
    const m = await loadModel(refitModel);
    const { refit: _, ...header } = m.header;
    const old = join(c.dir, 'old.sot-model');
    const bytes = encodeModel({ ...m, header });
    writeFileSync(old, bytes);
    expect('refit' in rawHeader(old)).toBe(false);
    expect('refit' in rawHeader(sampleModel)).toBe(false);
    const back = decodeModel(bytes, old);
    expect(back.header.refit).toBeUndefined();
    expect(potentials(back)).toEqual(potentials(m));
    const saved = join(c.dir, 'old-refined.sot-model');
    await score({
      input: data,
      model: old,
      refit: 1,
      saveModel: saved,
      scores: join(c.dir, 'old.csv'),
      embeddingCache: false,
    });
    expect((await loadModel(saved)).header.refit).toMatchObject({
      passes: 1,
      records: 400,
      input: data,
      error: expect.any(Number),
    });
  }, 60_000);

  it('purify --shards --save-model keeps the refined model: the potentials of fit({ refit: 1 })', async () => {
    const saved = join(c.dir, 'sharded.sot-model');
    const res = await purifySharded({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 3,
      workers: 2,
      sample: 100,
      keep: { count: 300 },
      output: join(c.dir, 'sharded.jsonl'),
      scores: join(c.dir, 'sharded.csv'),
      saveModel: saved,
    });
    expect(res.outputs.model).toBe(saved);
    const [m, want] = [await loadModel(saved), await loadModel(refitModel)];
    expect(m.header.refit).toMatchObject({ passes: 1, records: 400, input: data, error: expect.any(Number) });
    // the shards' parts merge in another order than one stream's batches: equal up to rounding
    const [got, exp] = [potentials(m).flat(), potentials(want).flat()];
    expect(got.length).toBe(exp.length);
    got.forEach((g, i) => expect(Math.abs(g - exp[i]!)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(exp[i]!))));
    // quantiles over every scored record
    const scores = readFileSync(res.outputs.scores, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[2]));
    expect(m.header.scoreQuantiles).toEqual(scoreQuantiles(Float64Array.from(scores)));
    // a failing output after the shards ran: nothing is written, the staged model neither
    const dir = join(c.dir, 'sharded-fail');
    mkdirSync(dir);
    mkdirSync(join(dir, 'scores.csv'));
    await expect(
      purifySharded({
        input: data,
        harmful: HARMFUL,
        anchor: [anchor],
        embeddingCache: false,
        shards: 2,
        sample: 100,
        keep: { count: 300 },
        output: join(dir, 'kept.jsonl'),
        scores: join(dir, 'scores.csv'),
        saveModel: join(dir, 'model.sot-model'),
      }),
    ).rejects.toBeInstanceOf(IoError);
    expect(readdirSync(dir)).toEqual(['scores.csv']);
  }, 180_000);

  it('sot fit --refit, sot score --save-model and sot purify --shards --save-model from the command line', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const model = join(c.dir, 'cli.sot-model');
    const f = run([
      'fit',
      data,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '--sample',
      '100',
      '--refit',
      '1',
      '--no-cache',
    ]);
    expect(f.status, f.stderr).toBe(0);
    expect(f.stdout).toMatch(/refined over all records in 1 pass/);
    const fj = run([
      'fit',
      data,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '--sample',
      '100',
      '--model-file',
      model,
      '--json',
      '--no-cache',
    ]);
    expect(fj.status, fj.stderr).toBe(0);
    expect(JSON.parse(fj.stdout)).toMatchObject({ ok: true, sample: 100, refit: 0 });
    const saved = join(c.dir, 'cli-saved.sot-model');
    const s = run([
      'score',
      data,
      '--model-file',
      model,
      '--refit',
      '1',
      '--save-model',
      saved,
      '--scores',
      join(c.dir, 'cli.csv'),
      '--json',
      '--no-cache',
    ]);
    expect(s.status, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout).outputs).toMatchObject({ model: saved });
    expect(rawHeader(saved).refit).toMatchObject({ passes: 1, records: 400, input: data, error: expect.any(Number) });
    const noRefit = run(['score', data, '--model-file', model, '--save-model', join(c.dir, 'x.sot-model'), '--json']);
    expect(noRefit.status).toBe(2);
    expect(JSON.parse(noRefit.stdout).error).toMatchObject({ code: 'ERR_OPTION' });
    const noShards = run(['purify', data, '--harmful', 'advbench', '--save-model', join(c.dir, 'y.sot-model')]);
    expect(noShards.status).toBe(2);
    expect(noShards.stderr).toMatch(/--save-model needs --shards/);
    const shardModel = join(c.dir, 'cli-shards.sot-model');
    const sh = run([
      'purify',
      data,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '--shards',
      '2',
      '--sample',
      '100',
      '--keep-count',
      '100',
      '-o',
      join(c.dir, 'cli-sharded.jsonl'),
      '--save-model',
      shardModel,
      '--json',
      '--no-cache',
    ]);
    expect(sh.status, sh.stderr).toBe(0);
    expect(JSON.parse(sh.stdout).outputs).toMatchObject({ model: shardModel });
    expect(rawHeader(shardModel).refit).toMatchObject({
      passes: 1,
      records: 400,
      input: data,
      error: expect.any(Number),
    });
  }, 240_000);
});
