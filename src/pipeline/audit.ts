// Why each record got its weight: the pull and push contributions to its
// log-weight and its nearest harmful points (both computed in the core), and
// the same in words for the scores file, the removed file and the report.
// The harmful points are the ones the learner pushed away from: the
// reference's samples, then the data's own harm of its second solve.
import { cancellable } from '../cancellable.js';
import { OptionError } from '../errors.js';
import type { Scores } from '../learner.js';
import { type AnyMatrix, type Matrix, stackRows, storedMatrix } from '../matrix.js';
import { native, type FittedOutput } from '../native.js';
import type { Selection } from '../selection.js';
import { flatExcerpt } from '../text.js';
import type { LoadedReferences } from './references.js';

/** Which records get their nearest harmful references: the dropped ones (default) or all. */
export type ReasonsFor = 'dropped' | 'all';

export interface ReasonOptions {
  /** Default `dropped`. */
  for?: ReasonsFor;
  /** Nearest harmful references per record. Default 3. */
  neighbours?: number;
}

export const DEFAULT_NEIGHBOURS = 3;

/** Refuses malformed reason options before any work. */
export function checkReasonOptions(o: ReasonOptions | undefined): void {
  if (o === undefined) return;
  if (typeof o !== 'object' || o === null)
    throw new OptionError('ERR_OPTION', 'reasons must be an object { for, neighbours }');
  if (o.for !== undefined && o.for !== 'dropped' && o.for !== 'all')
    throw new OptionError('ERR_OPTION', `reasons.for must be 'dropped' or 'all', got ${String(o.for)}`);
  const k = o.neighbours;
  if (k !== undefined && !(Number.isInteger(k) && k >= 1 && k <= 1000))
    throw new OptionError('ERR_OPTION', `reasons.neighbours must be an integer from 1 to 1000, got ${String(k)}`);
}

/**
 * The `set` of a nearest harmful point that is the data's own harm: a mean
 * of records the learner's first solve weighted lowest, which its second
 * solve pushed away from; `index` is the point's (the report's
 * `learner.ownHarmMembers[index]` are its records).
 */
export const OWN_HARM_SET = 'own-harm';

/** One of a record's nearest harmful reference samples (or own-harm points). */
export interface NearReference {
  /** The reference set (or file) it comes from, and its index there; or `OWN_HARM_SET` and the point's index. */
  set: string;
  index: number;
  /** An own-harm point's records, nearest its own first. */
  records?: number[];
  /** The learner's cost between the record and it (cosine: 0 = same direction). */
  cost: number;
  excerpt: string;
}

export interface Audit {
  /** Per record, in log-weight units: ln(n w) ≈ pull + push + offset (`sot` only). */
  contributions: {
    logWeight: Float64Array;
    pull: Float64Array;
    push: Float64Array;
    offset: number;
    maxResidual: number;
  } | null;
  /** The nearest harmful references of a record, when it was explained. */
  nearest(index: number): NearReference[] | undefined;
  /** The reason in words ('' for a record that was not explained). */
  reason(index: number): string;
  /** How many records were explained, and how many neighbours each got. */
  explained: number;
  neighbours: number;
  /** The pull target was the data itself (no anchor was given). */
  anchorIsDownstream: boolean;
}

const REF_EXCERPT = 80;

/** The excerpt a report gives of a cited harmful point's text. */
export function citedExcerpt(text: string): string {
  return flatExcerpt(text, REF_EXCERPT);
}

/** Computes the reasons of the dropped records (or of all) after selection. */
export async function explainRecords(r: {
  downstream: AnyMatrix;
  harmful: AnyMatrix;
  /** The learner's own-harm points and their records (`ownHarmOf`): pushed away from after `harmful`. */
  ownHarm?: OwnHarm;
  refs: LoadedReferences;
  scores: Scores;
  selection: Selection;
  cost?: string;
  tau?: number;
  options?: ReasonOptions;
  signal?: AbortSignal;
}): Promise<Audit> {
  const n = r.selection.kept.length;
  const all = r.options?.for === 'all';
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (all || !r.selection.kept[i]) rows.push(i);
  const learned = r.scores.learned;
  const contributions = learned
    ? await cancellable(undefined, () => native.weightContributions(learned.weights, learned.pull, learned.push, r.tau))
    : null;
  const k = r.options?.neighbours ?? DEFAULT_NEIGHBOURS;
  // what the learner pushed away from: the reference, then the data's own harm (one copy, read by the core as it is)
  const ownHarm = r.ownHarm?.members ?? [];
  const pushed = ownHarm.length ? stackRows(r.harmful, r.ownHarm!.points, storedMatrix) : r.harmful;
  const near = await nearestHarmful(r.downstream, pushed, Uint32Array.from(rows), k, r.cost, r.signal);
  return auditOf({
    rows,
    near,
    refs: { summary: r.refs.summary, excerpt: (g) => sampleExcerpt(r.refs.samples[g]!) },
    ownHarm,
    contributions,
    anchorIsDownstream: learned?.anchorIsDownstream ?? false,
  });
}

/** The `k` nearest rows of `harmful` to each of `rows` (indices into `x`) by the learner's cost, in the core. */
export async function nearestHarmful(
  x: AnyMatrix,
  harmful: AnyMatrix,
  rows: Uint32Array,
  k: number,
  cost: string | undefined,
  signal?: AbortSignal,
): Promise<NearestRows> {
  if (rows.length === 0) return { k: 0, index: new Uint32Array(0), cost: new Float32Array(0) };
  return cancellable(signal, (token) => native.nearestReferences(x, harmful, rows, k, cost ?? 'cosine', token));
}

/** The data's own harm of a learner's second solve: its points, and the records each is the mean of. */
export interface OwnHarm {
  points: Matrix;
  /** Per point, nearest its own record first. */
  members: number[][];
}

/** The own harm of a learner result (none when it solved once). */
export function ownHarmOf(f: FittedOutput, cols: number): OwnHarm {
  return { points: { data: f.ownHarmPoints, rows: f.ownHarmRows.length, cols }, members: ownHarmMembers(f) };
}

/** The records each own-harm point of a learner result is the mean of, nearest its own first. */
export function ownHarmMembers(f: Pick<FittedOutput, 'ownHarmRows' | 'ownHarmMembers'>): number[][] {
  const n = f.ownHarmRows.length;
  const per = n ? f.ownHarmMembers.length / n : 0;
  return Array.from({ length: n }, (_, j) => Array.from(f.ownHarmMembers.subarray(j * per, (j + 1) * per)));
}

/** The `k` nearest harmful references of some records (from the core's `nearestReferences`), row by row. */
export interface NearestRows {
  k: number;
  index: Uint32Array;
  cost: Float32Array;
}

/** The excerpt a reference sample is cited by (`citedExcerpt` of its prompt and response). */
export function sampleExcerpt(t: LoadedReferences['samples'][number]): string {
  return citedExcerpt(t.response ? `${t.prompt} ${t.response}` : t.prompt);
}

/** The harmful reference's sets and the excerpt of each of its samples (by index over the sets in order). */
export interface CitedReferences {
  summary: LoadedReferences['summary'];
  excerpt: (g: number) => string;
}

/**
 * The audit of the records `rows` (record indices, in the order of `near`'s
 * rows) from their nearest harmful points and every record's contributions:
 * what the whole-dataset run, the sharded one and `score` share. `near`
 * indexes the references' samples, then the own-harm points (`ownHarm`:
 * their records, of the file `ownHarmFile` names when they are not records
 * of the run's input).
 */
export function auditOf(a: {
  rows: ArrayLike<number>;
  near: NearestRows;
  refs: CitedReferences;
  ownHarm?: number[][];
  ownHarmFile?: string;
  contributions: Audit['contributions'];
  anchorIsDownstream: boolean;
}): Audit {
  const { near, refs, contributions, anchorIsDownstream } = a;
  const slot = new Map<number, number>();
  for (let s = 0; s < a.rows.length; s++) slot.set(a.rows[s]!, s);

  // A harmful row's set and index in it: the sets are concatenated in order.
  const starts: number[] = [];
  let at = 0;
  for (const s of refs.summary) {
    starts.push(at);
    at += s.count;
  }
  const locate = (g: number) => {
    if (g >= at) return { set: OWN_HARM_SET, index: g - at, records: a.ownHarm![g - at]! };
    let j = starts.length - 1;
    while (j > 0 && starts[j]! > g) j--;
    return { set: refs.summary[j]!.source, index: g - starts[j]! };
  };
  const excerpts = new Map<number, string>();
  const refExcerpt = (g: number) => {
    if (g >= at) return ''; // records of the data: the report cites them from the input
    let e = excerpts.get(g);
    if (e === undefined) {
      e = refs.excerpt(g);
      excerpts.set(g, e);
    }
    return e;
  };
  const nearest = (i: number): NearReference[] | undefined => {
    const s = slot.get(i);
    if (s === undefined) return undefined;
    return Array.from({ length: near.k }, (_, j) => {
      const g = near.index[s * near.k + j]!;
      return { ...locate(g), cost: near.cost[s * near.k + j]!, excerpt: refExcerpt(g) };
    });
  };
  const reason = (i: number): string => {
    const near = nearest(i);
    if (near === undefined) return '';
    return reasonInWords(
      near[0],
      contributions ? { pull: contributions.pull[i]!, push: contributions.push[i]! } : undefined,
      anchorIsDownstream,
      a.ownHarmFile,
    );
  };
  return { contributions, nearest, reason, explained: a.rows.length, neighbours: near.k, anchorIsDownstream };
}

/**
 * A record's reason as a person would say it: the part that lowered its
 * weight most first. `c` holds its pull and push contributions to the
 * log-weight (absent for the baselines, which have none).
 */
export function reasonInWords(
  nearest: NearReference | undefined,
  c: { pull: number; push: number } | undefined,
  anchorIsDownstream: boolean,
  ownHarmFile?: string,
): string {
  const anchor = anchorIsDownstream ? 'the rest of the data' : 'the anchor';
  const of = ownHarmFile === undefined ? '' : ` of ${ownHarmFile}`;
  const ref = !nearest
    ? ''
    : nearest.set === OWN_HARM_SET
      ? `the data's own harm (cost ${nearest.cost.toFixed(3)}): records ${listed(nearest.records ?? [])}${of}, among those a first solve weighted lowest`
      : `${nearest.set} #${nearest.index} (cost ${nearest.cost.toFixed(3)})${nearest.excerpt && `: "${nearest.excerpt}"`}`;
  if (c === undefined) return ref && `nearest harmful: ${ref}`;
  const pull = c.pull < 0 ? `far from ${anchor} (pull ${fmt(c.pull)})` : `near ${anchor} (pull ${fmt(c.pull)})`;
  const push =
    c.push < 0 ? `close to ${ref} (push ${fmt(c.push)})` : `far from harm (push ${fmt(c.push)}; nearest ${ref})`;
  // The more negative contribution is what held the record back most.
  return c.push <= c.pull ? `${push}; ${pull}` : `${pull}; ${push}`;
}

const fmt = (v: number) => (v >= 0 ? `+${v.toFixed(2)}` : v.toFixed(2));
const listed = (a: number[]) => (a.length < 2 ? a.join('') : `${a.slice(0, -1).join(', ')} and ${a.at(-1)}`);
