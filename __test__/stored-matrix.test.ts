// Embeddings held in native memory (`StoredMatrix`): the pipeline fills one
// batch by batch and the core learns on it without a copy. It must give what
// the same values in a Float32Array give, and a running task must never see
// it change.
import { describe, expect, it } from 'vitest';
import {
  learnWeights,
  METHODS,
  type Matrix,
  OptionError,
  ShapeError,
  scoreSamples,
  storedMatrix,
  writeRows,
} from '../src/index.js';
import { isStored, rowsOf } from '../src/matrix.js';
import { native } from '../src/native.js';
import { nearestHarmful } from '../src/pipeline/audit.js';
import { plantedSets } from './helpers.js';

const { sets } = plantedSets(180, 60, 16, 1);
const x = sets.downstream as Matrix;

/** `x` copied into a store in uneven batches, as the pipeline fills it. */
function stored(m: Matrix) {
  const s = storedMatrix(m.rows, m.cols);
  for (let r = 0; r < m.rows; r += 37) {
    const end = Math.min(m.rows, r + 37);
    writeRows(s, r, m.data.slice(r * m.cols, end * m.cols));
  }
  return s;
}

describe('stored matrices', () => {
  it('give the learner and every baseline exactly what the same array gives', async () => {
    const s = stored(x);
    expect(isStored(s)).toBe(true);
    expect(isStored(x)).toBe(false);
    const a = await learnWeights(sets);
    const b = await learnWeights({ ...sets, downstream: s });
    expect(b.weights).toEqual(a.weights);
    expect(b.fitted.ownHarmPoints).toEqual(a.fitted.ownHarmPoints);
    expect(b.contamination).toEqual(a.contamination);
    for (const method of METHODS.filter((m) => m !== 'sot')) {
      const p = await scoreSamples(method, sets, { seed: 3 });
      const q = await scoreSamples(method, { ...sets, downstream: s }, { seed: 3 });
      expect(q.scores, method).toEqual(p.scores);
    }
    const rows = Uint32Array.from([5, 0, 200, 7]);
    const harmful = sets.harmful as Matrix;
    expect(await nearestHarmful(s, harmful, rows, 3, 'cosine')).toEqual(
      await nearestHarmful(x, harmful, rows, 3, 'cosine'),
    );
    expect(rowsOf(s, [3, 1, 3])).toEqual(rowsOf(x, [3, 1, 3]));
    expect(rowsOf(s, [2])).toEqual(x.data.slice(2 * x.cols, 3 * x.cols));
  });

  it('refuse writes while a task reads them, and take them again after', async () => {
    const s = stored(x);
    const running = learnWeights({ ...sets, downstream: s });
    expect(() => writeRows(s, 0, new Float32Array(x.cols))).toThrow(/in use by a running task/);
    const before = await running;
    writeRows(s, 0, x.data.slice(0, x.cols));
    expect((await learnWeights({ ...sets, downstream: s })).weights).toEqual(before.weights);
  });

  it('refuse writes that are not whole rows within them, and rows they do not hold', () => {
    const s = storedMatrix(4, 3);
    expect(() => writeRows(s, 0, new Float32Array(4))).toThrow(/not whole rows of 3/);
    expect(() => writeRows(s, 3, new Float32Array(6))).toThrow(/within the matrix's 4 rows/);
    expect(() => writeRows(s, 2 ** 32 - 1, new Float32Array(3))).toThrow(ShapeError);
    // typed errors naming the argument, as for arrays (a -1 row once read as row 4294967295)
    for (const m of [s, { data: new Float32Array(12), rows: 4, cols: 3 }]) {
      expect(() => writeRows(m, 5, new Float32Array(3))).toThrow(ShapeError);
      expect(() => writeRows(m, -1, new Float32Array(3))).toThrow(
        /row must be an integer from 0 to 4294967295, got -1/,
      );
      expect(() => writeRows(m, Number.NaN, new Float32Array(3))).toThrow(OptionError);
      expect(() => writeRows(m, 0, [1, 2, 3] as never)).toThrow(/values must be a Float32Array/);
    }
    for (const [rows, cols] of [
      [-1, 1],
      [1.5, 2],
      [Number.NaN, 2],
      [2, -3],
    ])
      expect(() => storedMatrix(rows!, cols!)).toThrow(OptionError);
    expect(() => rowsOf(s, [4])).toThrow(/row 4 is not below the store's 4 rows/);
    writeRows(s, 1, Float32Array.from([1, 2, 3, 4, 5, 6]));
    expect(Array.from(rowsOf(s, [2, 0, 1]))).toEqual([4, 5, 6, 0, 0, 0, 1, 2, 3]);
    // into a reused buffer, which must hold exactly the rows
    const out = new Float32Array(6);
    expect(rowsOf(s, [2, 1], out)).toBe(out);
    expect(Array.from(out)).toEqual([4, 5, 6, 1, 2, 3]);
    expect(Array.from(rowsOf({ data: Float32Array.from([1, 2, 3, 4, 5, 6]), rows: 2, cols: 3 }, [1, 0], out))).toEqual([
      4, 5, 6, 1, 2, 3,
    ]);
    expect(() => rowsOf(s, [2], out)).toThrow(/1 rows of 3 need 3 values, the output holds 6/);
    expect(() => native.rowsGatherInto(s.data, Uint32Array.from([2]), out)).toThrow(/the output holds 6/);
    expect(() => rowsOf(s, [0, 9], out)).toThrow(/row 9 is not below the store's 4 rows/);
    expect(() => storedMatrix(2 ** 32 - 1, 2 ** 32 - 1)).toThrow(/cannot hold/);
  });

  it('are checked like arrays: a wrong shape is a typed error, a foreign object is refused', async () => {
    const s = stored(x);
    await expect(learnWeights({ ...sets, downstream: { ...s, rows: x.rows + 1 } })).rejects.toMatchObject({
      code: 'ERR_SHAPE',
    });
    // not a store this module made: the facade checks it as an array
    await expect(learnWeights({ ...sets, downstream: { data: {}, rows: 1, cols: 16 } as never })).rejects.toThrow(
      /downstream.data must be a Float32Array/,
    );
    // the binding itself refuses what is neither an array nor a store
    const y = native.rowsStore(1, 1);
    expect(() => native.rowsWrite({} as never, 0, new Float32Array(1))).toThrow();
    expect(() => native.rowsGather(y, Uint32Array.from([0]))).not.toThrow();
  });
});
