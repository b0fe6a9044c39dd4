// Under a count, which records a sharded run removes is known only after the
// merge; the scoring pass finds the reasons of the records below this bound
// while their vectors are at hand, and the reasons pass those of any removed
// record above it (docs/model-file.md, "The sharded report").
import { selectTopK } from '../selection.js';

/** Share of the records added to the removed share, beyond the sample's own error: room for the refit's shift of the scores. */
export const REASONS_MARGIN = 0.02;

/**
 * The score below which the scoring pass finds reasons when a share
 * `removed` of the records goes: the fit sample's score at that share plus
 * the margin and three standard errors of a quantile of `sample.length`
 * records. `-Infinity` (none) when nothing is removed, `Infinity` (all) when
 * the share reaches every record.
 */
export async function reasonsBound(sample: Float64Array, removed: number): Promise<number> {
  const m = sample.length;
  if (removed <= 0 || m === 0) return removed <= 0 ? -Infinity : Infinity;
  const share = removed + REASONS_MARGIN + 3 * Math.sqrt((removed * (1 - removed)) / m);
  const below = Math.ceil(share * m);
  if (below >= m) return Infinity;
  // the sample ranked best first by the core: the record with `below` of the sample under it
  const { order } = await selectTopK(sample, { fraction: 1 });
  return sample[order[m - 1 - below]!]!;
}
