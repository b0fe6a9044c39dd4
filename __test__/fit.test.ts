// fit() / score(): model files, out-of-sample scores, and their agreement
// with the unsharded learner, on real data (alpaca-libre + JailbreakBench).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { PrecomputedEmbedder } from '../src/embed/precomputed.js';
import type { Embedder } from '../src/embed/types.js';
import { InputError, OptionError } from '../src/errors.js';
import { fit, uniformSample, type FitResult } from '../src/fit/fit.js';
import { decodeModel, loadModel, ModelFileError, modelEmbedder } from '../src/fit/model.js';
import { score } from '../src/fit/score.js';
import { refitModel, scoreMatrix } from '../src/fit/scoring.js';
import { purify, type PurifyResult } from '../src/pipeline/purify.js';
import { contaminated, readJsonl, shuffle, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];

describe('fit and score', () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;
  let fitted: FitResult;
  let full: PurifyResult;

  beforeAll(async () => {
    c = contaminated(360, 40);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    fitted = await fit({ input: data, harmful: HARMFUL, anchor: [anchor], embeddingCache: false });
    full = await whole();
  }, 120_000);

  /** purify() on the whole file, keeping 80%. */
  const whole = (o: Partial<Parameters<typeof purify>[0]> = {}) =>
    purify({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      html: null,
      keep: { fraction: 0.8 },
      ...o,
    });

  it('scoring the fit data reproduces the learner: same pull and push, weights in the Gibbs form of the score', async () => {
    expect(fitted.sample).toBe(400);
    const s = await score({ input: data, model: fitted.model, embeddingCache: false });
    const learned = full.scores.learned!;
    // score() on the fit data equals what fit() computed for its sample, exactly
    expect(Array.from(s.scores)).toEqual(Array.from(fitted.sampleScores));
    const csv = readFileSync(s.outputs.scores, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    let worst = 0;
    csv.forEach((row, i) => {
      worst = Math.max(worst, Math.abs(Number(row[3]) - learned.pull[i]!), Math.abs(Number(row[4]) - learned.push[i]!));
    });
    // the learner's last solve leaves f the soft-min of g up to its inner tolerance
    expect(worst).toBeLessThan(1e-4);
    // log w = score + const where the learner converged; what the damped steps leave is measured here
    const d = Array.from(learned.weights, (w, i) => Math.log(w) - s.scores[i]!);
    expect(Math.max(...d) - Math.min(...d)).toBeLessThan(0.05);
  });

  it('keeps the same records as the unsharded learner when fitted on all of them', async () => {
    const out = join(c.dir, 'kept.jsonl');
    const s = await score({
      input: data,
      model: fitted.model,
      keep: { fraction: 0.8 },
      output: out,
      embeddingCache: false,
    });
    let both = 0;
    for (let i = 0; i < s.records; i++) if (s.selection!.kept[i] && full.selection.kept[i]) both++;
    expect(both / full.k).toBeGreaterThanOrEqual(0.99);
    const kept = readJsonl<{ id: number; sot_weight: number }>(out);
    expect(kept.length).toBe(320);
    // training weights: mean 1 over the kept records
    expect(kept.reduce((a, r) => a + r.sot_weight, 0) / kept.length).toBeCloseTo(1, 9);
  });

  it('a record scores the same in any batch and order', async () => {
    const shuffled = writeJsonl(join(c.dir, 'shuffled.jsonl'), shuffle(c.records, 99));
    const a = await score({ input: data, model: fitted.model, embeddingCache: false });
    const b = await score({
      input: shuffled,
      model: fitted.model,
      embeddingCache: false,
      scores: join(c.dir, 'shuffled.scores.csv'),
    });
    const ids = readJsonl<{ id: number }>(shuffled).map((r) => r.id);
    ids.forEach((id, k) => expect(b.scores[k]).toBe(a.scores[id]));
    // alone in a file of one
    const one = writeJsonl(join(c.dir, 'one.jsonl'), [c.records[123]]);
    const o = await score({ input: one, model: fitted.model, embeddingCache: false });
    expect(o.scores[0]).toBe(a.scores[123]);
  });

  it('threshold keeps exactly the records at or above it', async () => {
    const a = await score({ input: data, model: fitted.model, embeddingCache: false });
    const t = [...a.scores].sort((x, y) => x - y)[100]!;
    const out = join(c.dir, 'thr.jsonl');
    const s = await score({
      input: data,
      model: fitted.model,
      threshold: t,
      output: out,
      embeddingCache: false,
      scores: join(c.dir, 'thr.csv'),
    });
    const want = c.records.filter((_, i) => a.scores[i]! >= t).map((r) => r.id);
    expect(readJsonl<{ id: number }>(out).map((r) => r.id)).toEqual(want);
    expect(s.kept).toBe(want.length);
  });

  it('fits on a uniform sample and scores the rest', async () => {
    const model = join(c.dir, 'half.sot-model');
    const f = await fit({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      sample: 200,
      seed: 3,
      model,
    });
    expect(f.sample).toBe(200);
    expect(f.sampleIndices.length).toBe(200);
    const m = await loadModel(model);
    expect(m.header.fit).toMatchObject({ records: 400, sample: 200, seed: 3 });
    expect(m.header.references.harmful[0]!.source).toBe('advbench');
    // 5% of 200 records give 10 own-harm points where all 400 give 20: the fit says so
    expect(m.header.references.ownHarm).toBe(10);
    expect(f.warnings.join('\n')).toMatch(
      /own harm came from the 200-record sample: 10 points, where all 400 records give 20/,
    );
    expect(fitted.warnings.join('\n')).not.toMatch(/own harm came from/);
    const s = await score({ input: data, model, embeddingCache: false, scores: join(c.dir, 'half.csv') });
    // the sample's records score as fit() scored them
    f.sampleIndices.forEach((i, k) => expect(s.scores[i]).toBe(f.sampleScores[k]));
  }, 60_000);

  it('refit: a column update over all records brings a sample fit closer to the learner on all of them', async () => {
    const model = join(c.dir, 'fifth.sot-model');
    // One solve, here and below: the refit updates the potentials of the points a model holds, and a fit on 80
    // records joins other records to its harmful set (the data's own harm) than the learner on all 400.
    const learner = { ownHarmShare: 0 };
    await fit({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      sample: 80,
      seed: 1,
      model,
      learner,
    });
    const before = readFileSync(model);
    const run = (refit: number) =>
      score({
        input: data,
        model,
        refit,
        keep: { fraction: 0.8 },
        embeddingCache: false,
        output: join(c.dir, `fifth-${refit}.jsonl`),
        scores: join(c.dir, `fifth-${refit}.csv`),
      });
    const [s0, s1, s2] = [await run(0), await run(1), await run(2)];
    // the model file stays as fitted
    expect(readFileSync(model).equals(before)).toBe(true);
    const once = await whole({ learner, output: join(c.dir, 'once.jsonl') });
    // scores are the learner's log-weights up to a constant: the spread of the difference
    const learned = once.scores.learned!;
    const rms = (s: Float64Array) => {
      const d = Array.from(s, (v, i) => v - Math.log(learned.weights[i]!));
      const mean = d.reduce((a, v) => a + v, 0) / d.length;
      return Math.sqrt(d.reduce((a, v) => a + (v - mean) ** 2, 0) / d.length);
    };
    // each pass moves the potentials towards the fit on all records (the update's fixed point)
    expect(rms(s1.scores)).toBeLessThan(0.95 * rms(s0.scores));
    expect(rms(s2.scores)).toBeLessThan(0.95 * rms(s1.scores));
    const overlap = (s: typeof s0) => {
      let both = 0;
      for (let i = 0; i < s.records; i++) if (s.selection!.kept[i] && once.selection.kept[i]) both++;
      return both / once.k;
    };
    expect(overlap(s1)).toBeGreaterThanOrEqual(overlap(s0));
    // training weights of the kept records: exp(score), mean 1 over them (f64 reference)
    const sel = s1.selection!;
    const top = Math.max(...s1.scores);
    let sum = 0;
    for (let i = 0; i < s1.records; i++) if (sel.kept[i]) sum += Math.exp(s1.scores[i]! - top);
    for (let i = 0; i < s1.records; i++) {
      const want = sel.kept[i] ? (Math.exp(s1.scores[i]! - top) * sel.k) / sum : 0;
      expect(Math.abs(sel.trainWeight[i]! - want)).toBeLessThanOrEqual(1e-12 * Math.max(1, want));
    }
  }, 60_000);

  it('refit: bad passes and mismatched parts are typed errors', async () => {
    await expect(score({ input: data, model: fitted.model, refit: -1, embeddingCache: false })).rejects.toBeInstanceOf(
      OptionError,
    );
    await expect(score({ input: data, model: fitted.model, refit: 1.5 })).rejects.toThrow(
      /refit must be 'auto' or an integer/,
    );
    const m = await loadModel(fitted.model);
    const part = (a: number, h: number) => {
      const sums = (k: number) => ({ max: new Float64Array(k), sum: new Float64Array(k).fill(1) });
      return { anchor: sums(a), harmful: sums(h), total: sums(1) };
    };
    const a = m.anchor.potential.length;
    const h = m.harmful.potential.length;
    await expect(refitModel(m, [part(a, h), part(a, h + 1)])).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(refitModel(m, [])).rejects.toMatchObject({ code: 'ERR_OPTION' });
  });

  it('refuses precomputed vectors with the reason, before reading anything', async () => {
    const npy = join(dirname(data), 'vectors.npy');
    await expect(
      fit({ input: data, harmful: HARMFUL, embedder: new PrecomputedEmbedder({ npy }), embeddingCache: false }),
    ).rejects.toThrow(/cannot be fitted on precomputed vectors: it must embed the records it scores/);
  });

  it('uniformSample: k distinct sorted indices, reproducible', () => {
    const a = uniformSample(1000, 100, 5);
    expect(new Set(a).size).toBe(100);
    expect(Array.from(a)).toEqual(Array.from(a).sort((x, y) => x - y));
    expect(Array.from(uniformSample(1000, 100, 5))).toEqual(Array.from(a));
    expect(Array.from(uniformSample(1000, 100, 6))).not.toEqual(Array.from(a));
    expect(uniformSample(5, 9, 0).length).toBe(5);
    // a NaN seed was taken as 0, a fractional or negative size gave a wrong sample, and one past 2^32 wrapped
    const bad: [number, number, number][] = [
      [1000, 100, Number.NaN],
      [1000, 100, -1],
      [1000, 2.5, 1],
      [1000, -3, 1],
      [2 ** 32 + 10, 3, 1],
      [1000, 100, undefined as unknown as number],
    ];
    for (const [n, k, seed] of bad)
      expect(() => uniformSample(n, k, seed), `${n} ${k} ${seed}`).toThrow(
        /^(n|k|seed) must be an integer from 0 to 4294967295, got /,
      );
  });

  it('the model rebuilds the built-in embedder exactly and refuses another', async () => {
    const m = await loadModel(fitted.model);
    const e = modelEmbedder(m, fitted.model);
    expect(e.dim).toBe(m.header.embedder.dim);
    expect(e.dim).toBe(2048); // the automatic length of a small dataset
    const v = await e.embed([c.records[5]!.instruction]);
    const s1 = await scoreMatrix(m, { data: v, rows: 1, cols: e.dim });
    expect(Number.isFinite(s1.score[0])).toBe(true);
    expect(() => modelEmbedder(m, fitted.model, new HashingEmbedder({ dim: 256 }))).toThrow(OptionError);
    expect(() => modelEmbedder(m, fitted.model, new HashingEmbedder({ dim: 256 }))).toThrow(
      /fitted with the embedder "sot-hash-v1:dim=2048/,
    );
  });

  it("takes an LLM embedder whose model file was renamed, not one whose file's bytes differ", async () => {
    const m = await loadModel(fitted.model);
    const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
    const id = (file: string, sha: string) =>
      `llm-v1:${file}:sha256=${sha}:template=0123:pool=last:ctx=512:backend=cpu:dim=8`;
    const header = { ...m.header, embedder: { id: id('qwen.gguf', a), dim: 8 } };
    const llm = (embedderId: string): Embedder => ({ id: embedderId, dim: 8, embed: async () => new Float32Array(8) });
    const renamed = llm(id('models:qwen-0.5b (copy).gguf', a));
    expect(modelEmbedder({ ...m, header }, fitted.model, renamed)).toBe(renamed);
    expect(() => modelEmbedder({ ...m, header }, fitted.model, llm(id('qwen.gguf', b)))).toThrow(
      /fitted with the embedder "llm-v1:qwen.gguf:sha256=a{64}.*another embedder's vectors/,
    );
    // the same name and bytes but another setting (the context size) is another embedder
    const otherContext = llm(id('qwen.gguf', a).replace('ctx=512', 'ctx=1024'));
    expect(() => modelEmbedder({ ...m, header }, fitted.model, otherContext)).toThrow(OptionError);
  });

  it('corrupt, truncated and foreign model files are typed errors naming the file', async () => {
    const bytes = readFileSync(fitted.model);
    const cases: Array<[string, Uint8Array, string]> = [];
    const flipped = Uint8Array.from(bytes);
    flipped[bytes.length - 100]! ^= 0xff;
    cases.push(['flipped.sot-model', flipped, 'corrupt']);
    const header = Uint8Array.from(bytes);
    header[20]! ^= 0x01;
    cases.push(['header.sot-model', header, 'corrupt']);
    cases.push(['cut.sot-model', bytes.subarray(0, bytes.length - 1000), 'truncated']);
    cases.push(['cut-early.sot-model', bytes.subarray(0, 12), 'truncated']);
    cases.push(['foreign.sot-model', readFileSync(data), 'foreign']);
    cases.push(['empty.sot-model', new Uint8Array(0), 'foreign']);
    const newer = Uint8Array.from(bytes);
    newer[8] = 9;
    cases.push(['newer.sot-model', newer, 'version']);
    for (const [name, b, problem] of cases) {
      const path = join(c.dir, name);
      writeFileSync(path, b);
      const err = await loadModel(path).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(ModelFileError);
      expect(err).toBeInstanceOf(InputError);
      expect((err as ModelFileError).problem, name).toBe(problem);
      expect((err as ModelFileError).file).toBe(path);
      expect((err as Error).message.startsWith(`${path}: `)).toBe(true);
      // score() reports it before writing anything
      await expect(
        score({ input: data, model: path, scores: join(c.dir, `${name}.csv`), embeddingCache: false }),
      ).rejects.toBeInstanceOf(ModelFileError);
    }
    expect(() => decodeModel(bytes, 'x')).not.toThrow();
    // a header that passes the checksum but lies about its sections: still a typed error, never a RangeError
    const headerLength = bytes.readUInt32LE(12);
    const parsed = JSON.parse(bytes.subarray(16, 16 + headerLength).toString('utf8')) as { sections: object[] };
    const dataStart = Math.ceil((16 + headerLength) / 8) * 8;
    for (const lie of [{ offset: -8 }, { offset: 1e12 }, { dtype: 'f16' }, { length: 1.5 }]) {
      const h = Buffer.from(
        JSON.stringify({ ...parsed, sections: parsed.sections.map((x, i) => (i === 0 ? { ...x, ...lie } : x)) }),
      );
      const start = Math.ceil((16 + h.length) / 8) * 8;
      const body = Buffer.concat([
        bytes.subarray(0, 12),
        Buffer.from(Uint32Array.of(h.length).buffer),
        h,
        Buffer.alloc(start - 16 - h.length),
        bytes.subarray(dataStart, bytes.length - 32),
      ]);
      const forged = Buffer.concat([body, createHash('sha256').update(body).digest()]);
      expect(() => decodeModel(forged, 'forged'), JSON.stringify(lie)).toThrow(ModelFileError);
    }
    await expect(loadModel(join(c.dir, 'missing.sot-model'))).rejects.toMatchObject({ code: 'ERR_IO' });
  });

  it('refuses bad options before any work', async () => {
    await expect(fit({ input: data, harmful: HARMFUL, sample: 0 })).rejects.toBeInstanceOf(OptionError);
    await expect(fit({ input: data, harmful: HARMFUL, learner: { debiased: true } })).rejects.toThrow(/debiased/);
    await expect(score({ input: data, model: fitted.model, keep: { count: 3 }, threshold: 0 })).rejects.toBeInstanceOf(
      OptionError,
    );
    await expect(score({ input: data, model: fitted.model, output: join(c.dir, 'x.jsonl') })).rejects.toThrow(
      /keep or threshold/,
    );
    await expect(score({ input: data, model: fitted.model, scores: data })).rejects.toMatchObject({ code: 'ERR_IO' });
  });
});
