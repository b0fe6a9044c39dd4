// The one retry loop behind the embedding client and the reference-set downloads.
import { describe, expect, it } from 'vitest';
import { AbortError } from '../src/errors.js';
import { retryAfterMs, retryDelay, RetryableError, withRetries } from '../src/retry.js';

describe('withRetries', () => {
  it('retries retryable failures, then resolves with the first success', async () => {
    const tries: number[] = [];
    const out = await withRetries(
      async (n) => {
        tries.push(n);
        if (n < 2) throw new RetryableError(`fail ${n}`);
        return 'ok';
      },
      { retries: 5, baseMs: 1 },
    );
    expect(out).toBe('ok');
    expect(tries).toEqual([0, 1, 2]);
  });

  it('gives up after retries + 1 tries with giveUp, and never retries other errors', async () => {
    let tries = 0;
    const err = await withRetries(
      async () => {
        tries++;
        throw new RetryableError('busy');
      },
      { retries: 2, baseMs: 1, giveUp: (last, n) => new Error(`${last.message} after ${n}`) },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('busy after 3');
    expect(tries).toBe(3);

    tries = 0;
    const fatal = new TypeError('bad request');
    await expect(
      withRetries(
        async () => {
          tries++;
          throw fatal;
        },
        { retries: 5, baseMs: 1 },
      ),
    ).rejects.toBe(fatal);
    expect(tries).toBe(1);
  });

  it('waits at least what the server asked for (retry-after), capped by maxDelayMs', async () => {
    let t0 = 0;
    const gaps: number[] = [];
    await withRetries(
      async (n) => {
        if (n > 0) gaps.push(performance.now() - t0);
        t0 = performance.now();
        if (n === 0) throw new RetryableError('429', 120);
        if (n === 1) throw new RetryableError('429', 10_000);
        return 1;
      },
      { retries: 3, baseMs: 1, maxDelayMs: 200 },
    );
    expect(gaps[0]).toBeGreaterThanOrEqual(115);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[1]).toBeLessThan(2000);
  });

  it('backs off exponentially with jitter in [1 - jitter, 1] of the step', () => {
    const o = { baseMs: 100, maxDelayMs: 1000, jitter: 0.5 };
    expect(retryDelay(0, { ...o, random: () => 0 })).toBe(100);
    expect(retryDelay(0, { ...o, random: () => 1 })).toBe(50);
    expect(retryDelay(3, { ...o, random: () => 0 })).toBe(800);
    expect(retryDelay(4, { ...o, random: () => 0 })).toBe(1000);
    expect(retryDelay(1, { ...o, random: () => 0.5 }, 30)).toBe(150);
    expect(retryDelay(1, { ...o, random: () => 0.5 }, 700)).toBe(700);
    for (let k = 0; k < 100; k++) {
      const d = retryDelay(2, o);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });

  it('an abort during a wait rejects at once with AbortError, and no further try runs', async () => {
    const ac = new AbortController();
    let tries = 0;
    const t0 = performance.now();
    const p = withRetries(
      async () => {
        tries++;
        throw new RetryableError('down', 30_000);
      },
      { retries: 3, baseMs: 30_000, signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(tries).toBe(1);
    await expect(withRetries(async () => 1, { retries: 0, baseMs: 1, signal: ac.signal })).rejects.toBeInstanceOf(
      AbortError,
    );
  });

  it('refuses a negative or fractional retry count', async () => {
    await expect(withRetries(async () => 1, { retries: -1, baseMs: 1 })).rejects.toThrow(RangeError);
    await expect(withRetries(async () => 1, { retries: 1.5, baseMs: 1 })).rejects.toThrow(RangeError);
  });
});

describe('retryAfterMs', () => {
  it('reads retry-after-ms, retry-after seconds and HTTP dates', () => {
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250' }))).toBe(250);
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }))).toBe(2000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(new Headers({}))).toBeUndefined();
  });
});
