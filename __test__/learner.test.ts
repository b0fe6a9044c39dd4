import { describe, expect, it } from 'vitest';
import {
  AbortError,
  METHODS,
  NonFiniteError,
  OptionError,
  ShapeError,
  gibbsWeights,
  learnWeights,
  scoreSamples,
  selectTopK,
  storedMatrix,
  writeRows,
  type ProgressEvent,
} from '../src/index.js';
import { type Matrix, toMatrix } from '../src/matrix.js';
import { plantedSets } from './helpers.js';

const { sets, clean } = plantedSets(180, 60, 16, 1);
const n = clean + 60;

describe('learnWeights', () => {
  it('ranks every planted harmful sample below every clean one', async () => {
    const r = await learnWeights(sets);
    expect(r.converged).toBe(true);
    expect(r.weights.length).toBe(n);
    expect(r.weights.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
    const sel = await selectTopK(r.weights, { fraction: 0.9 }, r.weights);
    expect(sel.k).toBe(clean);
    expect(Array.from(sel.kept.subarray(0, clean)).every((k) => k === 1)).toBe(true);
    expect(Array.from(sel.kept.subarray(clean)).every((k) => k === 0)).toBe(true);
    const kept = Array.from(sel.trainWeight).filter((_, i) => sel.kept[i] === 1);
    expect(kept.reduce((s, v) => s + v, 0) / kept.length).toBeCloseTo(1, 12);
    // explanation: dropped samples are far from the anchor or close to harm
    const why = (i: number) => r.pull[i]! - r.push[i]!;
    expect(why(sel.order[n - 1]!)).toBeGreaterThan(why(sel.order[0]!));
  });

  it('learns the same weights on references held in native rows as on arrays (shared, not copied)', async () => {
    const stored = (m: Matrix) => {
      const out = storedMatrix(m.rows, m.cols);
      writeRows(out, 0, m.data);
      return out;
    };
    const [downstream, anchor, harmful] = [sets.downstream, sets.anchor, sets.harmful].map((m) =>
      toMatrix(m, 'set'),
    ) as [Matrix, Matrix, Matrix];
    const arrays = await learnWeights({ downstream, anchor, harmful });
    const native = await learnWeights({ downstream, anchor: stored(anchor), harmful: stored(harmful) });
    expect(Array.from(native.weights)).toEqual(Array.from(arrays.weights));
    const nearest = await scoreSamples('nearest-harmful', { downstream, harmful: stored(harmful) });
    expect(Array.from(nearest.scores)).toEqual(
      Array.from((await scoreSamples('nearest-harmful', { downstream, harmful })).scores),
    );
  });

  it('warns and pulls towards the data when no anchor is given', async () => {
    const r = await learnWeights({ downstream: sets.downstream, harmful: sets.harmful });
    expect(r.anchorIsDownstream).toBe(true);
    expect(r.warnings.join(' ')).toMatch(/no safe anchor given/);
  });

  it('reports progress per step and can be aborted', async () => {
    const events: ProgressEvent[] = [];
    const controller = new AbortController();
    const err = await learnWeights(sets, {
      tol: 1e-15,
      maxSteps: 100_000,
      progressIntervalMs: 0,
      signal: controller.signal,
      onProgress: (e) => {
        events.push(e);
        if (events.length === 3) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(events[0]).toMatchObject({ stage: 'learner', iteration: 0 });
  });

  it('rejects bad parameters and inputs clearly', async () => {
    await expect(learnWeights(sets, { lambda: -1 })).rejects.toThrow(/lambda must be finite and >= 0/);
    await expect(learnWeights(sets, { step: 2 })).rejects.toBeInstanceOf(OptionError);
    await expect(learnWeights(sets, { tau: '1' as unknown as number })).rejects.toBeInstanceOf(OptionError);
    const wrong = { ...sets, harmful: [[1, 2, 3]] };
    await expect(learnWeights(wrong)).rejects.toThrow(ShapeError);
    await expect(learnWeights(wrong)).rejects.toThrow(/harmful has dimension 3/);
  });

  it('blames an extreme tau or lambda, not the weights, when the weights leave the range of f64', async () => {
    const cases = [
      { tau: 1e-300, lambda: 1.5, named: 'tau = 1e-300 is too small for lambda = 1.5 ' },
      { tau: 1e-6, lambda: 1.5, named: 'tau = 1e-6 is too small for lambda = 1.5 ' },
      { tau: 0.2, lambda: 1e300, named: 'tau = 0.2 is too small for lambda = 1e300 ' },
    ];
    for (const { tau, lambda, named } of cases) {
      const err = await learnWeights(sets, { tau, lambda, maxSteps: 5 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OptionError);
      expect((err as Error).message).toContain(named);
      expect((err as Error).message).toMatch(/use a larger tau or a smaller lambda$/);
    }
  });
});

describe('scoreSamples and selectTopK', () => {
  it('scores with SOT and every baseline behind one interface', async () => {
    for (const method of METHODS) {
      const s = await scoreSamples(method, sets, { seed: 7, components: 2 });
      expect(s.method).toBe(method);
      expect(s.scores.length).toBe(n);
      expect(s.scores.every(Number.isFinite)).toBe(true);
    }
    const a = await scoreSamples('random', sets, { seed: 1 });
    const b = await scoreSamples('random', sets, { seed: 1 });
    const c = await scoreSamples('random', sets, { seed: 2 });
    expect(Array.from(a.scores)).toEqual(Array.from(b.scores));
    expect(Array.from(a.scores)).not.toEqual(Array.from(c.scores));
    const near = await scoreSamples('nearest-harmful', sets);
    const sel = await selectTopK(near.scores, { count: clean });
    expect(Array.from(sel.kept.subarray(clean)).every((k) => k === 0)).toBe(true);
    await expect(scoreSamples('magic' as 'sot', sets)).rejects.toThrow(/unknown method 'magic'/);
  });

  it('validates K', async () => {
    const s = [0.3, 0.1, 0.2];
    expect(Array.from((await selectTopK(s, { count: 2 })).kept)).toEqual([1, 0, 1]);
    for (const keep of [{ count: 0 }, { count: 4 }, { fraction: 0 }, { fraction: 1.5 }]) {
      await expect(selectTopK(s, keep)).rejects.toBeInstanceOf(OptionError);
    }
    await expect(selectTopK(s, { count: 2.5 })).rejects.toThrow(/keep.count must be a non-negative integer/);
    await expect(selectTopK(s, {} as { count: number })).rejects.toThrow(/keep must be/);
  });

  it('gives each score its Gibbs weight over all of them, summing to 1', async () => {
    const s = [0.5, -3, 2, 2, -600, 40, 39.5];
    const w = await gibbsWeights(s);
    // log-sum-exp by hand, in f64
    const top = Math.max(...s);
    const lse = top + Math.log(s.reduce((a, v) => a + Math.exp(v - top), 0));
    s.forEach((v, i) =>
      expect(Math.abs(w[i]! - Math.exp(v - lse))).toBeLessThanOrEqual(1e-14 * Math.exp(v - lse) + 1e-300),
    );
    expect(w[2]).toBe(w[3]);
    expect(Math.abs(w.reduce((a, v) => a + v, 0) - 1)).toBeLessThan(1e-12);
    // a plain array and a Float64Array give the same weights
    expect(Array.from(await gibbsWeights(Float64Array.from(s)))).toEqual(Array.from(w));
    await expect(gibbsWeights([0, Number.NaN, 1])).rejects.toBeInstanceOf(NonFiniteError);
    await expect(gibbsWeights([0, Number.NaN, 1])).rejects.toThrow(/score\[1\]/);
    await expect(gibbsWeights([0, '1' as unknown as number])).rejects.toBeInstanceOf(NonFiniteError);
    await expect(gibbsWeights(42 as unknown as number[])).rejects.toBeInstanceOf(OptionError);
  });
});
