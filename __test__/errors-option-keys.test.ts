// The core names options by their keys (`max_iter`, `eps_scaling.factor`);
// the binding spells them as JS does (`maxIter`, `epsScaling.factor`). These
// calls go to the binding directly, past the TS checks, so that the messages
// seen are the core's as the binding renders them.
import { describe, expect, it } from 'vitest';
import { native } from '../src/native.js';

const cost = { data: Float32Array.from([0, 1, 1, 0]), rows: 2, cols: 2 };
const points = (rows: number, shift: number) => ({
  data: Float32Array.from({ length: rows * 4 }, (_, i) => Math.sin(i + shift) + 2),
  rows,
  cols: 4,
});

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { code: err.code, message: err.message };
  }
  throw new Error('the call resolved');
}

describe('core option errors reach JS in its spelling', () => {
  it.each([
    [{ maxIter: 0 }, 'maxIter must be at least 1'],
    [{ checkEvery: 0 }, 'checkEvery must be at least 1'],
    [{ epsScalingFactor: 2 }, 'epsScaling.factor must lie in (0, 1), got 2'],
    [{ epsScalingFactor: 0.5, epsScalingStart: -1 }, 'epsScaling.start must be finite and > 0, got -1'],
    [{ eps: 0 }, 'eps must be finite and > 0, got 0'],
    [{ storage: { neighbours: 0 } }, 'neighbours must be at least 1'],
  ])('sinkhornCost %j', async (options, message) => {
    expect(await rejection(native.sinkhornCost(cost, null, null, options))).toEqual({ code: 'ERR_OPTION', message });
  });

  it.each([
    [{ maxSteps: 0 }, 'maxSteps must be at least 1'],
    [{ maxSelfAnchor: 0 }, 'maxSelfAnchor must be at least 1'],
    [{ innerMaxIter: 0 }, 'maxIter must be at least 1'],
    [{ lambda: -1 }, 'lambda must be finite and >= 0, got -1'],
  ])('learnWeights %j', async (options, message) => {
    const sets = { downstream: points(6, 0), anchor: points(3, 1), harmful: points(3, 2) };
    expect(await rejection(native.learnWeights(sets, options))).toEqual({ code: 'ERR_OPTION', message });
  });
});
