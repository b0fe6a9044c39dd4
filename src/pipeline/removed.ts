// The removed-records file's added fields and their values: shared by the
// whole-dataset writer (outputs.ts), `score` and a sharded run's write pass
// (fit/shard-write.ts), which must write the same bytes.
import { InputError } from '../errors.js';
import type { AtomicWriter } from '../io/index.js';
import { writeColumns, type AddedField, type ColumnValue } from '../io/write.js';
import type { PipelineInput } from './input.js';
import type { Selection } from '../selection.js';
import type { Audit } from './audit.js';

/** Fields the removed file adds to each dropped record. */
export const REMOVED_FIELDS = {
  score: 'sot_score',
  rank: 'sot_rank',
  pull: 'sot_pull',
  push: 'sot_push',
  reason: 'sot_reason',
} as const;

/**
 * The fields the removed file adds to each dropped record: its score, rank,
 * (with the learner's contributions, for `sot`) pull and push, and the reason.
 */
export function removedFields(contributions: boolean): AddedField[] {
  const F = REMOVED_FIELDS;
  const numbers = contributions ? [F.score, F.rank, F.pull, F.push] : [F.score, F.rank];
  return [...numbers.map((name) => ({ name, type: 'double' as const })), { name: F.reason, type: 'string' }];
}

/** The error for a record that already has a field the removed file adds. */
export function removedFieldTaken(file: string, line: number, field: string): InputError {
  return new InputError(
    { file, line, field },
    `the record already has the field "${field}", which the removed-records file adds; write no removed file with --no-removed (removed: null)`,
  );
}

/** The values `removedFields` names of record `i`, or undefined for a kept record. */
export function removedValues(r: {
  score: ArrayLike<number>;
  selection: Selection;
  audit: Audit;
}): (i: number) => ColumnValue[] | undefined {
  const c = r.audit.contributions;
  return (i) =>
    r.selection.kept[i]
      ? undefined
      : c
        ? [r.score[i]!, r.selection.rank[i]!, c.pull[i]!, c.push[i]!, r.audit.reason(i)]
        : [r.score[i]!, r.selection.rank[i]!, r.audit.reason(i)];
}

/**
 * Every dropped record, in the input's format, with its score, rank, (for
 * `sot`) pull and push contributions, and the reason in words.
 */
export async function writeRemoved(
  out: AtomicWriter,
  r: { input: PipelineInput; score: ArrayLike<number>; selection: Selection; audit: Audit; signal?: AbortSignal },
): Promise<void> {
  const file = r.input.dataset.path;
  await writeColumns(
    r.input.dataset,
    out,
    {
      fields: removedFields(r.audit.contributions !== null),
      values: removedValues(r),
      taken: (line, field) => removedFieldTaken(file, line, field),
    },
    { signal: r.signal },
  );
}
