// Small deterministic problems and an independent f64 reference for the tests.
import type { Matrix } from '../src/index.js';

/** Mulberry32: a tiny seeded PRNG so every run sees the same data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const r = rng(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = r() * 2 - 1;
  return { data, rows, cols };
}

export function rowsOf(m: Matrix): number[][] {
  return Array.from({ length: m.rows }, (_, i) => Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));
}

export function naiveCosine(x: Matrix, y: Matrix): number[][] {
  const xs = rowsOf(x);
  const ys = rowsOf(y);
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, a) => s + a * a, 0));
  return xs.map((u) => ys.map((v) => 1 - u.reduce((s, a, k) => s + a * v[k]!, 0) / (norm(u) * norm(v))));
}

const lse = (v: number[]) => {
  const m = Math.max(...v);
  return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
};

/** Textbook log-domain Sinkhorn in f64 with uniform weights; returns the OT value. */
export function naiveSinkhornValue(c: number[][], eps: number, iters = 5000): number {
  const n = c.length;
  const m = c[0]!.length;
  let f = new Array<number>(n).fill(0);
  let g = new Array<number>(m).fill(0);
  for (let it = 0; it < iters; it++) {
    f = c.map((row) => -eps * lse(row.map((cij, j) => Math.log(1 / m) + (g[j]! - cij) / eps)));
    g = g.map((_, j) => -eps * lse(c.map((row, i) => Math.log(1 / n) + (f[i]! - row[j]!) / eps)));
  }
  return f.reduce((s, v) => s + v / n, 0) + g.reduce((s, v) => s + v / m, 0);
}

/** How long the event loop is kept from a 5 ms timer, at worst, while `work` runs. */
export async function worstTimerDelay<T>(work: Promise<T>): Promise<{ result: T; worstMs: number; ticks: number }> {
  let worst = 0;
  let ticks = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 5);
    last = now;
    ticks++;
  }, 5);
  try {
    const result = await work;
    return { result, worstMs: worst, ticks };
  } finally {
    clearInterval(timer);
  }
}

/** Gaussian points around `center` (Box-Muller on the seeded generator). */
export function cloud(n: number, center: number[], spread: number, seed: number): Matrix {
  const r = rng(seed);
  const d = center.length;
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) {
      const g = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      data[i * d + k] = center[k]! + spread * g;
    }
  }
  return { data, rows: n, cols: d };
}

export function stack(...parts: Matrix[]): Matrix {
  const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p.data, at);
    at += p.data.length;
  }
  return { data, rows: parts.reduce((s, p) => s + p.rows, 0), cols: parts[0]!.cols };
}

/**
 * A task of three clusters with `bad` planted harmful samples appended (rows
 * from `clean` on), a clean anchor and a harmful reference drawn separately.
 */
export function plantedSets(perCluster: number, bad: number, dim: number, seed: number) {
  const axis = (k: number, extra?: number) =>
    Array.from({ length: dim }, (_, j) => (j === k ? 1 : 0) + (j === 0 && extra ? extra : 0));
  const task = [axis(0), axis(1), axis(2)];
  const harm = axis(3, 0.5);
  const downstream = stack(
    ...task.map((c, k) => cloud(perCluster, c, 0.1, seed + k)),
    cloud(bad, harm, 0.1, seed + 10),
  );
  const anchor = stack(...task.map((c, k) => cloud(10, c, 0.1, seed + 20 + k)));
  const harmful = cloud(300, harm, 0.1, seed + 30);
  return { sets: { downstream, anchor, harmful }, clean: 3 * perCluster };
}
