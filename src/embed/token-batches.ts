// Length-bucketed batches for a sentence encoder: texts (already tokenised)
// sorted by length, then cut into batches by a budget of padded tokens, so
// that a batch pads only to a length close to its own texts' and a batch of
// short texts holds more of them.
import { OptionError } from '../errors.js';

/** Token ids of one tokenised text (special tokens included, truncated). */
export interface Encoded {
  input_ids: readonly number[];
  attention_mask: readonly number[];
  token_type_ids?: readonly number[];
}

/** One forward pass: row `r` of the tensors is text `rows[r]` of the call. */
export interface TokenBatch {
  rows: number[];
  /** Padded length (the longest text of the batch). */
  cols: number;
  input_ids: BigInt64Array;
  attention_mask: BigInt64Array;
  token_type_ids?: BigInt64Array;
}

export interface BatchPlanOptions {
  /** Padded tokens (rows x longest) per batch at most; a longer text goes alone. */
  maxBatchTokens: number;
  /** Texts per batch at most. */
  maxBatchRows: number;
}

/**
 * Groups texts by length: sorted longest first (ties in input order, so the
 * plan is deterministic), each batch filled while rows x its first (longest)
 * length stays within the budget. Returns batches of indices into `lengths`.
 */
export function planBatches(lengths: readonly number[], o: BatchPlanOptions): number[][] {
  if (!(o.maxBatchTokens >= 1) || !(o.maxBatchRows >= 1))
    throw new OptionError('ERR_OPTION', 'maxBatchTokens and maxBatchRows must be at least 1');
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const out: number[][] = [];
  let cur: number[] = [];
  let width = 0;
  for (const i of order) {
    if (cur.length > 0 && (cur.length >= o.maxBatchRows || (cur.length + 1) * width > o.maxBatchTokens)) {
      out.push(cur);
      cur = [];
    }
    if (cur.length === 0) width = Math.max(1, lengths[i]!);
    cur.push(i);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * The padded int64 tensors of one batch, padded the way the tokenizer pads
 * (`pad` for input ids, 0 for the mask and token types, on `side`).
 */
export function padBatch(
  encoded: readonly Encoded[],
  rows: number[],
  pad: number,
  side: 'left' | 'right' = 'right',
): TokenBatch {
  const cols = Math.max(1, ...rows.map((i) => encoded[i]!.input_ids.length));
  const types = encoded[rows[0]!]?.token_type_ids !== undefined;
  const ids = new BigInt64Array(rows.length * cols).fill(BigInt(pad));
  const mask = new BigInt64Array(rows.length * cols);
  const tt = types ? new BigInt64Array(rows.length * cols) : undefined;
  rows.forEach((i, r) => {
    const e = encoded[i]!;
    const len = e.input_ids.length;
    const at = r * cols + (side === 'left' ? cols - len : 0);
    for (let k = 0; k < len; k++) {
      ids[at + k] = BigInt(e.input_ids[k]!);
      mask[at + k] = BigInt(e.attention_mask[k]!);
      if (tt !== undefined) tt[at + k] = BigInt(e.token_type_ids?.[k] ?? 0);
    }
  });
  return { rows, cols, input_ids: ids, attention_mask: mask, ...(tt !== undefined ? { token_type_ids: tt } : {}) };
}
