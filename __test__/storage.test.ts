import { describe, expect, it } from 'vitest';
import { OptionError, learnWeights, parseBytes, selectTopK, sinkhorn } from '../src/index.js';
import { plantedSets, randomMatrix } from './helpers.js';

describe('storage of the costs', () => {
  it('stores the kernel beside the costs by default, and reports it', async () => {
    const x = randomMatrix(300, 16, 11);
    const y = randomMatrix(200, 16, 12);
    const stored = await sinkhorn({ x, y }, { eps: 0.02 });
    const formed = await sinkhorn({ x, y }, { eps: 0.02, storage: { storeKernel: false } });
    expect(stored.storage).toMatchObject({ mode: 'dense+kernel', neighbours: 0, bound: 0 });
    expect(stored.storage.kernelPasses).toBeGreaterThan(stored.storage.kernelBuilds);
    expect(formed.storage).toMatchObject({ mode: 'dense', kernelPasses: 0 });
    expect(stored.value).toBeCloseTo(formed.value, 8);
  });

  it('truncates to the nearest references within a budget, with a bound and an exact check', async () => {
    const x = randomMatrix(2000, 8, 13);
    const y = randomMatrix(400, 8, 14);
    const dense = await sinkhorn({ x, y }, { eps: 0.05 });
    // 2000 x 400 dense costs take 3.2 MB: a 1 MiB budget leaves room for 63 neighbours (8 bytes each, 16 per row)
    const r = await sinkhorn({ x, y }, { eps: 0.05, storage: { budget: '1MiB' } });
    expect(r.storage.mode).toMatch(/^truncated/);
    expect(r.storage.neighbours).toBe(63);
    expect(r.storage.bytes).toBeLessThanOrEqual(1 << 20);
    const v = r.storage.verification!;
    expect(v.maxError).toBeLessThanOrEqual(r.storage.bound);
    expect(v.maxError).toBeGreaterThan(0);
    expect(Math.abs(r.value - dense.value)).toBeLessThan(1e-3);
    const off = await sinkhorn({ x, y }, { eps: 0.05, storage: { mode: 'truncated', neighbours: 16, verify: false } });
    expect(off.storage.neighbours).toBe(16);
    expect(off.storage.verification).toBeUndefined();
  });

  it('recomputes the costs in blocks when asked, with the dense answer', async () => {
    const x = randomMatrix(500, 8, 15);
    const y = randomMatrix(100, 8, 16);
    const [b, d] = await Promise.all([
      sinkhorn({ x, y }, { storage: { mode: 'blocked' } }),
      sinkhorn({ x, y }, { storage: { mode: 'dense', storeKernel: false } }),
    ]);
    expect(b.storage.mode).toBe('blocked');
    expect(Array.from(b.f)).toEqual(Array.from(d.f));
  });

  it('learns under a budget too small for the dense harmful costs', async () => {
    // 660 samples: the harmful costs take 792 kB dense, the anchor's 79 kB
    const { sets, clean } = plantedSets(200, 60, 16, 3);
    const r = await learnWeights(sets, { storage: { budget: 300_000, neighbours: 24 } });
    expect(r.anchorStorage.mode).toMatch(/^dense/);
    expect(r.harmfulStorage).toMatchObject({ neighbours: 24 });
    expect(r.harmfulStorage.mode).toMatch(/^truncated/);
    expect(r.anchorStorage.bytes + r.harmfulStorage.bytes).toBeLessThanOrEqual(300_000);
    expect(r.harmfulStorage.verification!.maxError).toBeLessThanOrEqual(r.harmfulStorage.bound);
    const sel = await selectTopK(r.weights, { count: clean });
    expect(Array.from(sel.kept.subarray(clean)).every((k) => k === 0)).toBe(true);
  });

  it('rejects bad storage options with clear errors', async () => {
    const x = randomMatrix(50, 4, 17);
    await expect(sinkhorn({ x, y: x }, { storage: { mode: 'sparse' as 'auto' } })).rejects.toThrow(
      /unknown storage mode 'sparse'/,
    );
    await expect(sinkhorn({ x, y: x }, { storage: { budget: '8 parsecs' } })).rejects.toBeInstanceOf(OptionError);
    await expect(sinkhorn({ x, y: x }, { storage: { neighbours: 0 } })).rejects.toThrow(
      /storage.neighbours must be a positive integer/,
    );
    await expect(sinkhorn({ x, y: x }, { storage: { mode: 'dense', budget: 1000 } })).rejects.toThrow(
      /dense storage of the 50 x 50 costs needs 0 MiB, over the memory budget/,
    );
  });

  it('parses sizes with decimal and binary units', () => {
    expect(parseBytes('b', '8GB')).toBe(8e9);
    expect(parseBytes('b', '512MiB')).toBe(512 * 1024 ** 2);
    expect(parseBytes('b', '1.5g')).toBe(1.5e9);
    expect(parseBytes('b', ' 2 TiB ')).toBe(2 * 1024 ** 4);
    expect(parseBytes('b', 4096)).toBe(4096);
    for (const bad of ['', 'GB', '-1GB', '0', '1.2.3MB', 'lots'])
      expect(() => parseBytes('b', bad)).toThrow(OptionError);
    expect(() => parseBytes('b', -5)).toThrow(/must be a positive number of bytes/);
  });
});
