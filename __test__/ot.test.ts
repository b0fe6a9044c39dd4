import { describe, expect, it } from 'vitest';
import { costMatrix, sinkhorn, sinkhornDivergence, threadCount } from '../src/index.js';
import { naiveCosine, naiveSinkhornValue, randomMatrix, rowsOf } from './helpers.js';

describe('costMatrix', () => {
  it('matches a pairwise f64 computation for both costs', async () => {
    const x = randomMatrix(37, 9, 1);
    const y = randomMatrix(300, 9, 2);
    const cos = await costMatrix(x, y);
    expect([cos.rows, cos.cols]).toEqual([37, 300]);
    const want = naiveCosine(x, y);
    for (let i = 0; i < 37; i++)
      for (let j = 0; j < 300; j++) expect(cos.data[i * 300 + j]).toBeCloseTo(want[i]![j]!, 5);

    const sq = await costMatrix(x, y, { cost: 'sqeuclidean' });
    const [xs, ys] = [rowsOf(x), rowsOf(y)];
    const d = xs[5]!.reduce((s, v, k) => s + (v - ys[77]![k]!) ** 2, 0);
    expect(sq.data[5 * 300 + 77]).toBeCloseTo(d, 4);
  });

  it('accepts arrays of rows', async () => {
    const c = await costMatrix(
      [
        [1, 0],
        [0, 1],
      ],
      [
        [1, 0],
        [-1, 0],
      ],
    );
    expect(Array.from(c.data)).toEqual([0, 2, 1, 1]);
  });
});

describe('sinkhorn', () => {
  it('agrees with a naive f64 reference', async () => {
    const x = randomMatrix(12, 5, 3);
    const y = randomMatrix(9, 5, 4);
    const r = await sinkhorn({ x, y }, { eps: 0.1, tol: 1e-9 });
    expect(r.converged).toBe(true);
    expect(r.value).toBeCloseTo(naiveSinkhornValue(naiveCosine(x, y), 0.1), 6);
    expect(r.f).toBeInstanceOf(Float64Array);
    expect([r.f.length, r.g.length]).toEqual([12, 9]);
  });

  it('gives the same answer from points and from their cost matrix', async () => {
    const x = randomMatrix(200, 16, 5);
    const y = randomMatrix(150, 16, 6);
    const cost = await costMatrix(x, y);
    // without the float64 finish, which a cost matrix has no points for
    const [p, c] = await Promise.all([sinkhorn({ x, y }, { exactCosts: 'off' }), sinkhorn({ cost })]);
    expect(p.value).toBe(c.value);
    expect(p.iterations).toBe(c.iterations);
  });

  it('meets tol on the float64 costs from the points when asked, where f32 costs miss it', async () => {
    const x = randomMatrix(150, 12, 21);
    const y = randomMatrix(100, 12, 22);
    const c = naiveCosine(x, y);
    const eps = 0.01;
    const tol = 1e-8;
    /** L1 errors of the rows and the columns of the plan of (f, g) on the float64 costs, uniform weights. */
    const errors = (f: Float64Array, g: Float64Array) => {
      const rows = new Float64Array(150);
      const cols = new Float64Array(100);
      for (let i = 0; i < 150; i++)
        for (let j = 0; j < 100; j++) {
          const p = Math.exp((f[i]! + g[j]! - c[i]![j]!) / eps) / 15000;
          rows[i]! += p;
          cols[j]! += p;
        }
      const l1 = (v: Float64Array, w: number) => v.reduce((s, p) => s + Math.abs(p - w), 0);
      return [l1(rows, 1 / 150), l1(cols, 1 / 100)].sort((p, q) => p - q) as [number, number];
    };
    const held = await sinkhorn({ x, y }, { eps, tol, maxIter: 20000, exactCosts: 'off' });
    expect(held.exactPasses).toBe(0);
    expect(errors(held.f, held.g)[1]).toBeGreaterThan(tol);

    // 'auto' finishes on the exact costs here: tol is below what f32 costs vouch for
    for (const exactCosts of ['on', 'auto'] as const) {
      const r = await sinkhorn({ x, y }, { eps, tol, maxIter: 20000, exactCosts });
      expect(r.converged).toBe(true);
      expect(r.exactPasses).toBeGreaterThanOrEqual(1);
      const [exact, other] = errors(r.f, r.g);
      expect(exact).toBeLessThan(1e-10);
      expect(other).toBeLessThanOrEqual(tol);
      expect(Math.abs(other - r.marginalError)).toBeLessThan(1e-12);
    }
    await expect(sinkhorn({ x, y }, { exactCosts: 'yes' as 'on' })).rejects.toMatchObject({ code: 'ERR_OPTION' });
  });

  it('returns a centred gradient that predicts the change of the value', async () => {
    const x = randomMatrix(30, 6, 7);
    const y = randomMatrix(20, 6, 8);
    const a = new Float64Array(30).fill(1 / 30);
    const opts = { eps: 0.1, tol: 1e-10, maxIter: 20000 };
    const r = await sinkhorn({ x, y, a }, opts);
    expect(Math.abs(r.gradA.reduce((s, v) => s + v, 0))).toBeLessThan(1e-9);
    const h = 1e-5;
    const moved = (t: number) => {
      const w = Float64Array.from(a);
      w[3]! += t;
      w[11]! -= t;
      return sinkhorn({ x, y, a: w }, opts).then((res) => res.value);
    };
    const fd = ((await moved(h)) - (await moved(-h))) / (2 * h);
    expect(fd).toBeCloseTo(r.gradA[3]! - r.gradA[11]!, 4);
  });

  it('reports non-convergence instead of throwing, and warm starts resume', async () => {
    const x = randomMatrix(100, 8, 9);
    const y = randomMatrix(80, 8, 10);
    const short = await sinkhorn({ x, y }, { eps: 0.005, maxIter: 3 });
    expect(short.converged).toBe(false);
    expect(short.iterations).toBe(3);
    expect(short.passes).toBe(4); // the last pass measured the error of the third update
    // on one problem, the f32 costs (the float64 finish would make it two)
    const full = await sinkhorn({ x, y }, { eps: 0.005, maxIter: 5000, exactCosts: 'off' });
    const resumed = await sinkhorn(
      { x, y },
      { eps: 0.005, maxIter: 5000, exactCosts: 'off', warmStart: { f: full.f, g: full.g } },
    );
    expect(full.converged && resumed.converged).toBe(true);
    expect(resumed.iterations).toBeLessThanOrEqual(2);
    expect(resumed.value).toBeCloseTo(full.value, 8);
  });

  it('stays finite at eps = 1e-3 and with eps-scaling', async () => {
    const x = randomMatrix(80, 10, 11);
    const y = randomMatrix(60, 10, 12);
    const plain = await sinkhorn({ x, y }, { eps: 1e-3, maxIter: 50000 });
    const scaled = await sinkhorn({ x, y }, { eps: 1e-3, maxIter: 50000, epsScaling: { factor: 0.5 } });
    for (const r of [plain, scaled]) {
      expect(Number.isFinite(r.value)).toBe(true);
      expect(r.f.every(Number.isFinite) && r.g.every(Number.isFinite)).toBe(true);
      expect(r.converged).toBe(true);
    }
    expect(scaled.value).toBeCloseTo(plain.value, 5);
  });

  it('uses the shared native pool', () => {
    expect(threadCount()).toBeGreaterThanOrEqual(1);
  });
});

describe('sinkhornDivergence', () => {
  it('is zero on identical inputs, positive and symmetric otherwise', async () => {
    const x = randomMatrix(40, 6, 13);
    const y = randomMatrix(30, 6, 14);
    const same = await sinkhornDivergence({ x, y: x }, { eps: 0.1 });
    expect(Math.abs(same.value)).toBeLessThan(1e-8);
    const xy = await sinkhornDivergence({ x, y }, { eps: 0.1, tol: 1e-9 });
    const yx = await sinkhornDivergence({ x: y, y: x }, { eps: 0.1, tol: 1e-9 });
    expect(xy.value).toBeGreaterThan(1e-3);
    expect(xy.value).toBeCloseTo(yx.value, 9);
    expect(xy.gradA.length).toBe(40);
    expect(xy.converged).toBe(true);
  });
});
