/**
 * Small summaries for the report: binning and deterministic subsampling for
 * display. (Only counting and indexing; the numerics stay in the Rust core.)
 */
import { flatExcerpt } from '../text.js';

/** Histogram of log10(n * w) (0 = uniform weight), split by kept / dropped. */
export function weightHistogram(
  weights: ArrayLike<number>,
  kept: ArrayLike<number>,
  bins = 40,
): { edges: number[]; kept: number[]; dropped: number[] } {
  const n = weights.length;
  const logs = new Float64Array(n);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    // Weights can underflow to 0 for far-pushed samples: clamp at 1e-12 of uniform.
    const v = Math.log10(Math.max(n * weights[i]!, 1e-12));
    logs[i] = v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (n === 0) return { edges: [], kept: [], dropped: [] };
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, b) => lo + b * width);
  const k = new Array<number>(bins).fill(0);
  const d = new Array<number>(bins).fill(0);
  for (let i = 0; i < n; i++) {
    const b = Math.min(bins - 1, Math.floor((logs[i]! - lo) / width));
    if (kept[i]) k[b]!++;
    else d[b]!++;
  }
  return { edges, kept: k, dropped: d };
}

/** Up to `max` indices of 0..n-1, evenly spaced, in increasing order. */
export function spreadIndices(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: max }, (_, i) => Math.floor((i * n) / max));
}

/** The start of a text on one line, at most `max` UTF-16 units, cut between characters, for tables. */
export function excerpt(text: string, max = 240): string {
  return flatExcerpt(text, max);
}
