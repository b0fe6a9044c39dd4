import { describe, expect, it } from 'vitest';
import {
  EmptyInputError,
  NonFiniteError,
  OptionError,
  ShapeError,
  SotError,
  WeightError,
  ZeroNormError,
  costMatrix,
  sinkhorn,
  sinkhornDivergence,
  type ErrorCode,
} from '../src/index.js';
import { randomMatrix } from './helpers.js';

const x = randomMatrix(6, 3, 1);
const y = randomMatrix(5, 3, 2);

async function failure(p: Promise<unknown>): Promise<SotError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SotError);
  return err as SotError;
}

function expectError(
  err: SotError,
  cls: new (...args: never[]) => SotError,
  code: ErrorCode,
  text: RegExp,
  index?: number,
) {
  expect(err).toBeInstanceOf(cls);
  expect(err.code).toBe(code);
  expect(err.message).toMatch(text);
  expect(err.index).toBe(index);
}

describe('typed errors', () => {
  it('shape mismatches name what disagrees', async () => {
    const z = randomMatrix(4, 7, 3);
    expectError(await failure(sinkhorn({ x, y: z })), ShapeError, 'ERR_SHAPE', /dimension 3 .* dimension 7/);
    expectError(
      await failure(sinkhorn({ x, y, a: [1, 2] })),
      ShapeError,
      'ERR_SHAPE',
      /a has 2 entries but there are 6 points/,
    );
    const short = { data: new Float32Array(5), rows: 2, cols: 3 };
    expectError(
      await failure(costMatrix(short, y)),
      ShapeError,
      'ERR_SHAPE',
      /x holds 5 values but its shape is 2 x 3/,
    );
    expectError(await failure(sinkhorn({ x: [[1, 2], [3]], y })), ShapeError, 'ERR_SHAPE', /x\[1\] has 1 values/, 1);
  });

  it('non-finite values are located', async () => {
    const bad = randomMatrix(5, 3, 4);
    bad.data[3 * 3 + 2] = Number.POSITIVE_INFINITY;
    expectError(await failure(sinkhorn({ x, y: bad })), NonFiniteError, 'ERR_NON_FINITE', /y\[3\]\[2\] is inf/, 3);
    expectError(
      await failure(costMatrix([[1, Number.NaN]], [[1, 2]])),
      NonFiniteError,
      'ERR_NON_FINITE',
      /x\[0\]\[1\] is NaN/,
      0,
    );
    const cost = { data: new Float32Array([0, 1, Number.NaN, 2]), rows: 2, cols: 2 };
    expectError(await failure(sinkhorn({ cost })), NonFiniteError, 'ERR_NON_FINITE', /cost\[1\]\[0\]/, 1);
  });

  it('empty sets are rejected', async () => {
    const none = { data: new Float32Array(0), rows: 0, cols: 3 };
    expectError(await failure(sinkhorn({ x: none, y })), EmptyInputError, 'ERR_EMPTY', /x has no points/);
    expectError(await failure(sinkhorn({ x: [], y })), EmptyInputError, 'ERR_EMPTY', /x has no rows/);
  });

  it('bad weights are located', async () => {
    expectError(await failure(sinkhorn({ x, y, a: [1, 1, 0, 1, 1, 1] })), WeightError, 'ERR_WEIGHT', /a\[2\] is 0/, 2);
    expectError(await failure(sinkhorn({ x, y, b: [1, -3, 1, 1, 1] })), WeightError, 'ERR_WEIGHT', /b\[1\] is -3/, 1);
    expectError(
      await failure(sinkhornDivergence({ x, y, b: [1, 1, 1, 1, Number.NaN] })),
      WeightError,
      'ERR_WEIGHT',
      /b\[4\] is NaN/,
      4,
    );
  });

  it('options out of range or of the wrong type', async () => {
    for (const opts of [{ eps: 0 }, { eps: -0.1 }, { tol: 0 }, { epsScaling: { factor: 1.5 } }]) {
      expectError(await failure(sinkhorn({ x, y }, opts)), OptionError, 'ERR_OPTION', /must/);
    }
    for (const opts of [{ maxIter: 0 }, { maxIter: 2.5 }, { checkEvery: -1 }, { eps: '0.1' as unknown as number }]) {
      expectError(await failure(sinkhorn({ x, y }, opts)), OptionError, 'ERR_OPTION', /must be/);
    }
    const bad = { cost: 'manhattan' as 'cosine' };
    expectError(await failure(costMatrix(x, y, bad)), OptionError, 'ERR_OPTION', /unknown cost 'manhattan'/);
  });

  it('zero vectors under the cosine cost, but not the Euclidean one', async () => {
    const z = [
      [1, 2, 3],
      [0, 0, 0],
    ];
    expectError(await failure(sinkhorn({ x: z, y })), ZeroNormError, 'ERR_ZERO_NORM', /x\[1\] is the zero vector/, 1);
    const ok = await sinkhorn({ x: z, y, cost: 'sqeuclidean' }, { eps: 1 });
    expect(Number.isFinite(ok.value)).toBe(true);
  });

  it('leaves the inputs untouched', async () => {
    const before = Array.from(x.data);
    const a = Float64Array.from([3, 1, 1, 1, 1, 1]);
    await sinkhorn({ x, y, a });
    expect(Array.from(x.data)).toEqual(before);
    expect(Array.from(a)).toEqual([3, 1, 1, 1, 1, 1]);
  });
});
