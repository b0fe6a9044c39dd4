// Runs of a Parquet file's row groups, so that shards read only their part:
// the split comes from the footer's row counts alone (no data page is read),
// and a run is read by skipping the other row groups undecoded.
import { InputError, OptionError } from '../errors.js';

/** What the split needs of a Parquet footer: its row groups' row counts. */
interface Footer {
  row_groups: ReadonlyArray<{ num_rows: bigint | number }>;
}

/**
 * A run of consecutive row groups of a Parquet file (from `rowGroupRanges`),
 * readable alone with `openDataset(path, { range })`. `row` and `rows` are
 * what the footer said when the run was taken; reading checks them.
 */
export interface RowGroupRange {
  /** The run's first row group (from 0). */
  group: number;
  /** Row groups in the run (at least 1). */
  groups: number;
  /** The file row of the run's first record (from 0; its line is `row + 1`). */
  row: number;
  /** Rows in the run. */
  rows: number;
}

/** Whether a part of a file is a run of row groups (else a byte range). */
export function isRowGroupRange(r: object): r is RowGroupRange {
  return 'group' in r;
}

/**
 * At most `parts` runs of the file's row groups with about equal row counts,
 * in file order, covering every row: run `s` starts at the row-group boundary
 * nearest `s / parts` of the rows. Fewer row groups (with rows) than `parts`
 * give fewer runs; runs without rows are left out.
 */
export function splitRowGroups(metadata: Footer, parts: number): RowGroupRange[] {
  const starts = [0]; // the row each group starts at, then the total
  for (const g of metadata.row_groups) starts.push(starts.at(-1)! + Number(g.num_rows));
  const total = starts.at(-1)!;
  const groups = metadata.row_groups.length;
  // the boundary (a group index) of each part, nearest its share of the rows
  const cuts = [0];
  let g = 0;
  for (let s = 1; s < parts; s++) {
    const want = (s * total) / parts;
    while (g < groups && Math.abs(starts[g + 1]! - want) <= Math.abs(starts[g]! - want)) g++;
    cuts.push(Math.max(g, cuts.at(-1)!));
  }
  cuts.push(groups);
  const out: RowGroupRange[] = [];
  for (let s = 0; s < parts; s++) {
    const [a, b] = [cuts[s]!, cuts[s + 1]!];
    const rows = starts[b]! - starts[a]!;
    if (rows > 0) out.push({ group: a, groups: b - a, row: starts[a]!, rows });
  }
  return out;
}

/** Refuses (`OptionError`) a run that is not one `rowGroupRanges` could give. */
export function checkRowGroupShape(r: RowGroupRange): void {
  const whole = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
  if (!(whole(r.group, 0) && whole(r.groups, 1) && whole(r.row, 0) && whole(r.rows, 0)))
    throw new OptionError(
      'ERR_OPTION',
      'range must be { group, groups, row, rows }: whole numbers with groups >= 1 (from rowGroupRanges)',
    );
}

/** Refuses (`InputError`) a run that is not in the file's footer as it was taken (the file changed). */
export function checkRowGroupRange(r: RowGroupRange, metadata: Footer, file: string): void {
  const all = metadata.row_groups;
  let row = 0;
  for (let g = 0; g < r.group && g < all.length; g++) row += Number(all[g]!.num_rows);
  let rows = 0;
  for (let g = r.group; g < r.group + r.groups && g < all.length; g++) rows += Number(all[g]!.num_rows);
  if (r.group + r.groups > all.length || row !== r.row || rows !== r.rows)
    throw new InputError(
      { file },
      `row groups ${r.group} to ${r.group + r.groups - 1} (rows ${r.row + 1} to ${r.row + r.rows}) are not in the file's ${all.length} row groups (the file changed since the ranges were taken?)`,
    );
}
