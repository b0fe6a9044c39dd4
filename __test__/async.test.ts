import { describe, expect, it } from 'vitest';
import { AbortError, sinkhorn, sinkhornDivergence, type ProgressEvent, type SinkhornResult } from '../src/index.js';
import { randomMatrix, worstTimerDelay } from './helpers.js';

// Large enough that a solve runs for seconds: eps is tiny and the tolerance unreachable.
const big = { x: randomMatrix(3000, 32, 21), y: randomMatrix(2000, 32, 22) };
const endless = { eps: 1e-3, tol: 1e-15, maxIter: 1_000_000 };

describe('off the JS thread', () => {
  it('an AbortSignal stops a solve that is already running', async () => {
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 300);
    const err = await sinkhorn(big, { ...endless, signal: controller.signal }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).name).toBe('AbortError');
    expect((err as AbortError).code).toBe('ERR_ABORTED');
    expect(elapsed).toBeLessThan(5000);
  });

  it('an already aborted signal rejects at once', async () => {
    const err = await sinkhornDivergence(big, { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
  });

  it('keeps the event loop responsive and reports throttled progress', async () => {
    const events: ProgressEvent[] = [];
    const controller = new AbortController();
    const solve = sinkhorn(big, {
      ...endless,
      signal: controller.signal,
      progressIntervalMs: 50,
      onProgress: (e) => {
        events.push(e);
        if (events.length === 6) controller.abort();
      },
    }).catch((e: unknown) => e);
    const { result, worstMs, ticks } = await worstTimerDelay(solve);
    expect(result).toBeInstanceOf(AbortError);
    expect(ticks).toBeGreaterThan(10);
    expect(worstMs).toBeLessThan(200);
    expect(events.length).toBeGreaterThanOrEqual(6);
    for (let k = 1; k < events.length; k++) expect(events[k]!.iteration).toBeGreaterThan(events[k - 1]!.iteration);
    expect(events[0]).toMatchObject({ stage: 'sinkhorn', maxIterations: 1_000_000, eps: 1e-3 });
  });

  it('concurrent solves give the same results as serial ones', async () => {
    const problems = [0, 1, 2, 3].map((k) => ({
      x: randomMatrix(400, 16, 100 + k),
      y: randomMatrix(300, 16, 200 + k),
    }));
    const serial: SinkhornResult[] = [];
    for (const p of problems) serial.push(await sinkhorn(p, { eps: 0.02 }));
    const parallel = await Promise.all(problems.map((p) => sinkhorn(p, { eps: 0.02 })));
    parallel.forEach((r, k) => {
      expect(r.value).toBe(serial[k]!.value);
      expect(Array.from(r.f)).toEqual(Array.from(serial[k]!.f));
    });
  });
});
