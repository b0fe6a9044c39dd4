// Shared by the quality benchmarks: seeded draws, the detector AUROC, means
// with their standard errors, and the dumps of `eval.mjs --dump --dump-emb`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
/** Standard error of the mean (0 for fewer than two values). */
export const se = (a) =>
  a.length < 2 ? 0 : Math.sqrt(a.reduce((s, x) => s + (x - mean(a)) ** 2, 0) / (a.length - 1) / a.length);

/** The cells of a dump file, one parsed line each. */
export const readDump = (file) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

/** The path of one set's vectors (`downstream`, `anchor` or `harmful`) of a dumped cell. */
export const cellFile = (dir, l, set) =>
  join(dir, `${l.embedder}-${l.task}-${l.contam}-${l.rate}-a${l.anchor}-${l.seed}-${set}.f32`);

/** Those vectors, row-major. */
export const cellVectors = (dir, l, set) => new Float32Array(readFileSync(cellFile(dir, l, set)).buffer.slice(0));

/** Seeded uniform [0, 1) generator (mulberry32). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `xs` in the order of a Fisher-Yates shuffle drawn from `r`. */
export function shuffle(xs, r) {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * AUROC of `scores` as a benign-vs-harmful detector: P(score of a benign
 * sample > score of a harmful one), ties counted half (rank-sum form).
 * `harmful[i]` is truthy for harmful samples.
 */
export function auroc(scores, harmful) {
  const idx = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b]);
  let rankSum = 0;
  let nb = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (!harmful[idx[k]]) (rankSum += avg), nb++;
    i = j + 1;
  }
  const nh = idx.length - nb;
  return (rankSum - (nb * (nb + 1)) / 2) / (nb * nh);
}

/**
 * Retention of each kind of row among the top `keep` share by score (ties
 * to the lower index): `recall` for the harmful rows, `benign`, `hard`
 * (hard negatives); null for a kind with no rows.
 */
export function retention(scores, kinds, keep = 0.8) {
  const K = Math.round(keep * scores.length);
  const kept = new Set([...scores.keys()].sort((a, b) => scores[b] - scores[a] || a - b).slice(0, K));
  const c = { benign: [0, 0], hard: [0, 0], harmful: [0, 0] };
  kinds.forEach((k, i) => {
    c[k][1]++;
    if (kept.has(i)) c[k][0]++;
  });
  const r = (k) => (c[k][1] ? c[k][0] / c[k][1] : null);
  return { recall: r('harmful'), benign: r('benign'), hard: r('hard') };
}
