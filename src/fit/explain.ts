// Reasons against a model file: the nearest harmful points of chosen
// records (found by embedding only them again) and the audit of scored
// records, as `score` and a sharded run write them.
import { cancellable } from '../cancellable.js';
import type { Embedder } from '../embed/types.js';
import type { Matrix } from '../matrix.js';
import { native } from '../native.js';
import { auditOf, nearestHarmful, type Audit, type NearestRows } from '../pipeline/audit.js';
import { embedBatch, type openEmbeddingCache } from '../pipeline/embedding.js';
import type { PipelineInput } from '../pipeline/input.js';
import { gibbsWeights } from '../selection.js';
import { citedReferences, harmfulForReasons, type Model } from './model.js';
import type { ScoredRecords } from './score.js';
import { Column, rangeBatches } from './stream.js';

/** Records (indices, ascending) and their nearest harmful references, `rows x k`. */
export type NearRows = NearestRows & { rows: Uint32Array };

/** Texts embedded at once by the reasons pass. */
const EXPLAIN_BATCH = 1024;

/**
 * The nearest harmful references of the records `rows` (indices in the
 * range, ascending) of `input`: only they are embedded; the others are read
 * and counted.
 */
export async function nearestOf(
  input: PipelineInput,
  rows: Uint32Array,
  harmful: Matrix,
  embedder: Embedder,
  cache: Awaited<ReturnType<typeof openEmbeddingCache>>,
  o: { neighbours: number; cost: string | undefined; range?: { from: number; to: number }; signal?: AbortSignal },
): Promise<NearRows & { records: number }> {
  const index = new Column(new Uint32Array(0));
  const cost = new Column(new Float32Array(0));
  let pending: string[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    const x = { data: await embedBatch(pending, embedder, cache, o.signal), rows: pending.length, cols: embedder.dim };
    const all = Uint32Array.from(pending.keys());
    const near = await nearestHarmful(x, harmful, all, o.neighbours, o.cost, o.signal);
    index.push(near.index);
    cost.push(near.cost);
    pending = [];
  };
  let records = 0;
  let at = 0;
  for await (const b of rangeBatches(input, o.range, o.signal)) {
    for (; at < rows.length && rows[at]! < records + b.texts.length; at++) pending.push(b.texts[rows[at]! - records]!);
    records += b.texts.length;
    if (pending.length >= EXPLAIN_BATCH) await flush();
  }
  await flush();
  const k = rows.length === 0 ? 0 : Math.min(o.neighbours, harmful.rows);
  return { records, k, rows: rows.subarray(0, at), index: index.done(), cost: cost.done() };
}

/**
 * The audit of records scored against `model`: every record's split of its
 * log-weight into pull and push (the Gibbs weights of all the scores, the
 * model's tau) and the reasons of the records `near` holds, citing the
 * model's harmful points. `ownHarmFile`: the fit's input, when its records
 * (which the own-harm points are means of) are not the scored ones.
 */
export async function modelAudit(
  model: Model,
  r: Pick<ScoredRecords, 'score' | 'pull' | 'push'>,
  near: { rows: ArrayLike<number>; near: NearestRows },
  ownHarmFile?: string,
): Promise<{ audit: Audit; weights: Float64Array }> {
  const h = model.header;
  const weights = await gibbsWeights(r.score);
  const contributions = await cancellable(undefined, () => native.weightContributions(weights, r.pull, r.push, h.tau));
  const audit = auditOf({
    ...near,
    refs: citedReferences(model),
    ownHarm: harmfulForReasons(model).ownHarm,
    ...(ownHarmFile === undefined ? {} : { ownHarmFile }),
    contributions,
    anchorIsDownstream: h.references.anchorIsSample,
  });
  return { audit, weights };
}
