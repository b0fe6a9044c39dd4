import { PURIFY_DEFAULTS } from '../defaults.js';
import { readFile } from 'node:fs/promises';
import type { Embedder } from '../embed/types.js';
import { AbortError, InputError, IoError } from '../errors.js';
import { assertNoCollision, type AtomicWriter, commitAll, openAtomicWriter, writeFileAtomic } from '../io/index.js';
import { writeRecords } from '../io/write.js';
import { writeRemoved } from './removed.js';
import { renderText } from '../io/index.js';
import type { Scores } from '../learner.js';
import { type AnyMatrix, type Matrix, rowsOf, storedMatrix, writeRows } from '../matrix.js';
import { project2d } from '../project.js';
import { excerpt, spreadIndices, weightHistogram } from '../report/build.js';
import { renderReportHtml } from '../report/html.js';
import type { PurifyReport } from '../report/types.js';
import { checkReport } from '../report/validate.js';
import type { Selection } from '../selection.js';
import { wellFormedDeep } from '../text.js';
import type { PipelineInput } from './input.js';
import type { PurifyOptions } from './options.js';
import type { outputPaths } from './paths.js';
import type { LoadedReferences } from './references.js';
import { citedExcerpt, ownHarmMembers, type Audit } from './audit.js';

export { REMOVED_FIELDS } from './removed.js';

type Paths = ReturnType<typeof outputPaths>;

/** Points drawn in the report's scatter plot, at most. */
const MAX_PLOTTED = { downstream: 4000, reference: 1000 };
const LOWEST = 25;
/** Plotted records copied at a time. */
const GATHER_ROWS = 256;
/** Bytes of the rows the projection copies, at most (wide rows plot fewer points). */
const PLOT_BYTES = 64 * 1024 ** 2;
/**
 * Records in the report's table (the JSON report's and so the page's), at
 * most: beyond, the lowest ranked, so the dropped records come first. This
 * bounds the report's size; every record's figures are in the scores file,
 * and every dropped record whole in the removed file.
 */
export const MAX_TABLE_RECORDS = 20_000;
const TABLE_EXCERPT = 160;
/** Fields that name a record's source or category, looked for in this order (any case). */
const GROUP_FIELDS = ['source', 'category', 'subset', 'dataset', 'task', 'type'];
/** Distinct values a detected group field may have; more is not a category. */
const MAX_GROUPS = 50;

/**
 * The 2-D projection of a display sample of all three sets, fitted jointly.
 * `sets.downstream` holds every record (`records` absent) or only some,
 * whose record indices `records` gives.
 */
async function projection(
  sets: { downstream: AnyMatrix; records?: Uint32Array; anchor?: AnyMatrix; harmful: AnyMatrix },
  kept: Uint8Array,
  counts: { harmful: number[]; anchor: number[] },
): Promise<PurifyReport['projection']> {
  // wide rows plot fewer points, so that their copy stays within PLOT_BYTES
  const want = [
    Math.min(sets.downstream.rows, MAX_PLOTTED.downstream),
    Math.min(sets.anchor?.rows ?? 0, MAX_PLOTTED.reference),
    Math.min(sets.harmful.rows, MAX_PLOTTED.reference),
  ];
  const share = Math.min(1, PLOT_BYTES / (4 * sets.downstream.cols * (want[0]! + want[1]! + want[2]!)));
  const [nd, na, nh] = want.map((w) => Math.max(1, Math.floor(w * share)));
  const d = spreadIndices(sets.downstream.rows, nd!);
  const record = (row: number) => (sets.records ? sets.records[row]! : row);
  const a = sets.anchor ? spreadIndices(sets.anchor.rows, na!) : [];
  const h = spreadIndices(sets.harmful.rows, nh!);
  // gathered into native memory a few rows at a time: the core reads it without a copy
  const points = storedMatrix(d.length + a.length + h.length, sets.downstream.cols);
  const batch = new Float32Array(Math.min(GATHER_ROWS, d.length) * points.cols);
  for (let i = 0; i < d.length; i += GATHER_ROWS) {
    const idx = d.slice(i, i + GATHER_ROWS);
    writeRows(points, i, rowsOf(sets.downstream, idx, batch.subarray(0, idx.length * points.cols)));
  }
  if (sets.anchor) writeRows(points, d.length, rowsOf(sets.anchor, a));
  writeRows(points, d.length + a.length, rowsOf(sets.harmful, h));
  const xy = await project2d(points);
  const pt = (i: number): [number, number] => [round(xy[2 * i]!), round(xy[2 * i + 1]!)];
  return {
    downstream: d.map((row, i) => {
      const r = record(row);
      return [...pt(i), kept[r] ? 1 : 0, r] as [number, number, 0 | 1, number];
    }),
    downstreamTotal: kept.length,
    anchor: a.map((_, i) => pt(d.length + i)),
    harmful: h.map((_, i) => pt(d.length + a.length + i)),
    anchorSet: a.map((row) => setOf(row, counts.anchor)),
    harmfulSet: h.map((row) => setOf(row, counts.harmful)),
  };
}

/** The records the projection draws (a sharded run embeds only these): evenly spread, ascending. */
export function displayRows(n: number): Uint32Array {
  return Uint32Array.from(spreadIndices(n, MAX_PLOTTED.downstream));
}

/** Which of the concatenated sets (by their sizes) a row belongs to. */
function setOf(row: number, sizes: number[]): number {
  let end = 0;
  for (let j = 0; j < sizes.length; j++) {
    end += sizes[j]!;
    if (row < end) return j;
  }
  return sizes.length - 1;
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** The embeddings the report's projection draws from: the records' (`records`: which ones, when not all) and the references'. */
export interface ReportSets {
  /**
   * Every record's embedding, or which records to draw (ascending) and how to
   * embed their texts (taken in the report's pass over the input, so a run
   * that holds no embeddings reads the input no more often).
   */
  downstream: AnyMatrix | { records: Uint32Array; embed: (texts: string[]) => Promise<Matrix> };
  anchor?: AnyMatrix;
  harmful: AnyMatrix;
}

/** The options the report records and reads (`purify`'s, or the sharded run's). */
export type ReportOptions = Pick<
  PurifyOptions,
  'input' | 'keep' | 'template' | 'weightField' | 'seed' | 'groupField' | 'createdAt'
> & { threshold?: number };

export interface ReportInputs {
  version: string;
  options: PurifyOptions;
  paths: Paths;
  input: PipelineInput;
  embedder: Embedder;
  refs: { harmful: LoadedReferences; anchor: LoadedReferences };
  sets: { downstream: AnyMatrix; anchor?: AnyMatrix; harmful: AnyMatrix };
  lines: Uint32Array;
  method: string;
  /** Learner options in effect (embedder defaults, then the caller's). */
  learnerOptions: Record<string, unknown>;
  scores: Scores;
  selection: Selection;
  audit: Audit;
  warnings: string[];
  timings: Record<string, number>;
  /** The run's memory budget, the part of it the learner's costs got, and the peak resident set so far. */
  memory: PurifyReport['memory'];
}

/** `purify`'s report. */
export function buildReport(r: ReportInputs): Promise<PurifyReport> {
  const learned = r.scores.learned;
  return assembleReport({
    ...r,
    embedder: { id: r.embedder.id, dim: r.embedder.dim },
    references: { harmful: r.refs.harmful.summary, anchor: r.refs.anchor.summary },
    score: r.scores.scores,
    weights: r.scores.weights ?? r.scores.scores,
    raw: learned ? { pull: learned.pull, push: learned.push } : null,
    contamination: learned?.contamination ?? null,
    learner: learned
      ? {
          steps: learned.steps,
          converged: learned.converged,
          innerConverged: learned.innerConverged,
          innerIterations: learned.innerIterations,
          objective: Array.from(learned.objective),
          storage: { anchor: learned.anchorStorage, harmful: learned.harmfulStorage },
          ownHarm: Array.from(learned.fitted.ownHarmRows),
          ownHarmMembers: ownHarmMembers(learned.fitted),
        }
      : null,
  });
}

/** What a report is built from: the run's figures per record and its summary (the whole-dataset run's or the sharded one's). */
export interface ReportParts {
  version: string;
  options: ReportOptions;
  paths: Paths;
  input: PipelineInput;
  embedder: PurifyReport['embedder'];
  references: PurifyReport['references'];
  sets: ReportSets;
  lines: Uint32Array;
  method: string;
  learnerOptions: Record<string, unknown>;
  /** Per record: the score the selection ranked by, the weight (summing to 1), the learner's raw pull and push. */
  score: ArrayLike<number>;
  weights: ArrayLike<number>;
  raw: { pull: ArrayLike<number>; push: ArrayLike<number> } | null;
  selection: Selection;
  audit: Audit;
  contamination: PurifyReport['contamination'];
  learner: PurifyReport['learner'];
  /** Sharded runs: the fit and the shards. */
  sharded?: PurifyReport['sharded'];
  warnings: string[];
  timings: Record<string, number>;
  memory: PurifyReport['memory'];
  /** Stops the report's pass over the input (an AbortError). */
  signal?: AbortSignal;
}

/** The JSON report (bounded in size: see MAX_TABLE_RECORDS). */
export async function assembleReport(r: ReportParts): Promise<PurifyReport> {
  const o = r.options;
  const n = r.selection.order.length;
  const weights = r.weights;
  const lowestIdx = Array.from(r.selection.order.subarray(Math.max(0, n - LOWEST))).reverse();
  const given = 'records' in r.sets.downstream ? r.sets.downstream : undefined;
  const { table, texts, display } = await recordTable(r, new Set(lowestIdx), new Set(given?.records ?? []));
  const downstream = given
    ? await given.embed(Array.from(given.records, (i) => display.get(i) ?? ''))
    : (r.sets.downstream as AnyMatrix);
  const pull = r.raw?.pull;
  const push = r.raw?.push;
  const ds = r.input.dataset;
  // Paths, warnings and skipped reasons embed user text too: no string may carry a lone surrogate.
  return wellFormedDeep({
    tool: 'sot-purify',
    reportVersion: 1,
    version: r.version,
    createdAt: o.createdAt ?? new Date().toISOString(),
    input: {
      path: o.input,
      format: ds.format,
      recordFormat: ds.recordFormat,
      records: n,
      skipped: r.input.skipped.count,
      skippedReasons: r.input.skipped.reasons,
    },
    outputs: {
      dataset: r.paths.output,
      scores: r.paths.scores,
      report: r.paths.report,
      html: r.paths.html,
      removed: r.paths.removed,
    },
    embedder: r.embedder,
    references: r.references,
    method: r.method,
    options: {
      ...(o.threshold === undefined ? { keep: o.keep ?? PURIFY_DEFAULTS.keep } : { threshold: o.threshold }),
      template: o.template ?? null,
      weightField: o.weightField === undefined ? 'sot_weight' : o.weightField,
      learner: r.learnerOptions,
      seed: o.seed ?? null,
    },
    selection: { n, k: r.selection.k },
    contamination: r.contamination,
    learner: r.learner,
    ...(r.sharded ? { sharded: r.sharded } : {}),
    memory: { ...r.memory },
    warnings: r.warnings,
    timings: r.timings,
    histogram: weightHistogram(weights, r.selection.kept),
    cutoff: cutoff(weights, r.selection),
    contributions: r.audit.contributions
      ? { offset: r.audit.contributions.offset, maxResidual: r.audit.contributions.maxResidual }
      : null,
    ...table,
    projection: await projection({ ...r.sets, downstream, records: given?.records }, r.selection.kept, {
      harmful: r.references.harmful.map((x) => x.count),
      anchor: r.references.anchor.map((x) => x.count),
    }),
    lowest: lowestIdx.map((i) => ({
      index: i,
      line: r.lines[i]!,
      weight: weights[i]!,
      pull: pull ? pull[i]! : null,
      push: push ? push[i]! : null,
      excerpt: excerpt(texts.get(i) ?? ''),
    })),
  } satisfies PurifyReport);
}

/** The scores file's columns, in order (docs/audit.md explains each and its sign). */
export const SCORE_COLUMNS = [
  'index',
  'line',
  'score',
  'rank',
  'kept',
  'train_weight',
  'log_weight',
  'pull',
  'push',
  'nearest_set',
  'nearest_index',
  'nearest_cost',
  'reason',
] as const;

function csvText(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** Per-sample scores as CSV, in record order. */
async function writeScores(
  out: AtomicWriter,
  r: { lines: Uint32Array; score: ArrayLike<number>; selection: Selection; audit: Audit },
  signal?: AbortSignal,
): Promise<void> {
  const { score, selection, lines, audit } = r;
  const c = audit.contributions;
  await out.write(`${SCORE_COLUMNS.join(',')}\n`);
  let chunk = '';
  for (let i = 0; i < score.length; i++) {
    const near = audit.nearest(i)?.[0];
    const nearCells = near ? `${csvText(near.set)},${near.index},${near.cost}` : ',,';
    const cCells = c ? `${c.logWeight[i]},${c.pull[i]},${c.push[i]}` : ',,';
    chunk += `${i},${lines[i]},${score[i]},${selection.rank[i]},${selection.kept[i]},${selection.trainWeight[i]},${cCells},${nearCells},${csvText(audit.reason(i))}\n`;
    if (chunk.length > 1 << 16) {
      if (signal?.aborted) throw new AbortError();
      await out.write(chunk);
      chunk = '';
    }
  }
  await out.write(chunk);
}

/** The lowest kept score on the histogram's axis, log10(n * w): the cut-off. */
function cutoff(weights: ArrayLike<number>, selection: Selection): number | null {
  const n = weights.length;
  if (selection.k === 0 || selection.k === n) return null;
  const last = selection.order[selection.k - 1]!;
  return Math.log10(Math.max(n * weights[last]!, 1e-12));
}

/** The group field a record set has: the caller's, or the first of GROUP_FIELDS with string values. */
function groupFieldOf(value: Record<string, unknown>, given: string | null | undefined): string | null {
  if (given !== undefined) return given;
  const keys = Object.keys(value);
  for (const want of GROUP_FIELDS) {
    const k = keys.find((key) => key.toLowerCase() === want);
    if (k !== undefined && (typeof value[k] === 'string' || typeof value[k] === 'number')) return k;
  }
  return null;
}

/** The records of the report's table, in input order: every one up to `max`, else the `max` lowest ranked. */
function tableRows(order: Uint32Array, max = MAX_TABLE_RECORDS): number[] {
  const n = order.length;
  return n <= max ? Array.from({ length: n }, (_, i) => i) : Array.from(order.subarray(n - max)).sort((a, b) => a - b);
}

/**
 * The report's table of records (with excerpts and groups, from one more
 * pass over the input) and the breakdown by group; on the way, the texts of
 * the records `lowest` (as the template renders them) and `display` (as the
 * embedder gets them).
 */
async function recordTable(
  r: ReportParts,
  lowest: Set<number>,
  display: Set<number>,
): Promise<{
  table: Pick<PurifyReport, 'records' | 'groups'>;
  texts: Map<number, string>;
  display: Map<number, string>;
}> {
  const n = r.selection.order.length;
  const texts = new Map<number, string>();
  const shown = new Map<number, string>();
  const rows = tableRows(r.selection.order);
  const slot = new Map<number, number>();
  rows.forEach((i, s) => slot.set(i, s));
  const excerpts: string[] = new Array<string>(rows.length).fill('');
  // the own-harm points the table cites, by the record nearest each: cited from the input
  const ownCited = new Map<number, string>();
  for (const i of rows) {
    for (const x of r.audit.nearest(i) ?? []) if (x.records) ownCited.set(x.records[0]!, '');
  }
  const groupOf: string[] = new Array<string>(n).fill('');
  let field: string | null | undefined;
  for await (const { record, text } of r.input.dataset) {
    if (r.signal?.aborted) throw new AbortError();
    if (field === undefined) field = groupFieldOf(record.value, r.options.groupField);
    if (field !== null) {
      const g = record.value[field];
      groupOf[record.index] =
        g === undefined || g === null ? '' : typeof g === 'object' ? JSON.stringify(g) : String(g);
    }
    const s = slot.get(record.index);
    const cited = ownCited.has(record.index);
    // rendered once for whichever of the table, the citations and the lowest records want it
    const rendered = s !== undefined || cited || lowest.has(record.index) ? renderText(text, r.options.template) : '';
    if (s !== undefined) excerpts[s] = excerpt(rendered, TABLE_EXCERPT);
    if (cited) ownCited.set(record.index, citedExcerpt(rendered));
    if (lowest.has(record.index)) texts.set(record.index, rendered);
    if (display.has(record.index)) shown.set(record.index, r.input.rendered(text));
  }
  let groups: PurifyReport['groups'] = null;
  if (field) {
    const by = new Map<string, { total: number; dropped: number }>();
    for (let i = 0; i < n; i++) {
      const e = by.get(groupOf[i]!) ?? { total: 0, dropped: 0 };
      e.total++;
      if (!r.selection.kept[i]) e.dropped++;
      by.set(groupOf[i]!, e);
    }
    // A detected field with many distinct values is not a category; a named one is always broken down.
    if (by.size <= MAX_GROUPS || r.options.groupField) {
      groups = {
        field,
        rows: [...by]
          .map(([value, e]) => ({ value, ...e }))
          .sort((a, b) => b.dropped / b.total - a.dropped / a.total || b.total - a.total),
      };
    }
  }
  const c = r.audit.contributions;
  const cited = new Map<string, string>();
  const nearest = rows.map((i) => {
    const near = r.audit.nearest(i);
    if (near === undefined) return null;
    return near.map((x) => {
      cited.set(
        `${x.set} #${x.index}`,
        x.records ? `records ${x.records.join(', ')}: ${ownCited.get(x.records[0]!)}` : x.excerpt,
      );
      return [x.set, x.index, round(x.cost)] as [string, number, number];
    });
  });
  const table = {
    records: {
      total: n,
      index: rows,
      line: rows.map((i) => r.lines[i]!),
      score: rows.map((i) => r.score[i]!),
      rank: rows.map((i) => r.selection.rank[i]!),
      kept: rows.map((i) => r.selection.kept[i]!),
      logWeight: c ? rows.map((i) => round(c.logWeight[i]!)) : null,
      pull: c ? rows.map((i) => round(c.pull[i]!)) : null,
      push: c ? rows.map((i) => round(c.push[i]!)) : null,
      reason: rows.map((i) => r.audit.reason(i)),
      excerpt: excerpts,
      group: groups ? rows.map((i) => groupOf[i]!) : null,
      nearest,
      cited: Object.fromEntries(cited),
    },
    groups,
  };
  return { table, texts, display: shown };
}

/**
 * Writes the purified dataset, the scores and the reports as a unit: each to
 * a temporary file (fsynced), then, once all exist, renamed into place in a
 * fixed order: dataset, scores, removed records, JSON report, HTML page. The JSON report holds
 * the size and sha256 of the dataset and the scores, so one left by a run
 * killed among the renames is told apart. An abort (or an error) before the
 * renames removes every temporary file and changes nothing; once they have
 * begun, an abort no longer stops them and the run completes.
 * `report` builds the report once the dataset and scores are staged;
 * `scoresFile` writes the scores file (default: `purify`'s columns, SCORE_COLUMNS);
 * `datasetFile` and `removedFile`, when given, fill the dataset and the
 * removed file instead of the pass over the input (a sharded run joins its
 * shards' fragments).
 */
export async function writeOutputs(r: {
  input: PipelineInput;
  paths: Paths;
  lines: Uint32Array;
  selection: Selection;
  score: ArrayLike<number>;
  audit: Audit;
  scoresFile?: (out: AtomicWriter) => Promise<void>;
  datasetFile?: (out: AtomicWriter) => Promise<void>;
  removedFile?: (out: AtomicWriter) => Promise<void>;
  weightField?: string | null;
  signal?: AbortSignal;
  onProgress?: (done: number) => void;
  report: () => Promise<PurifyReport>;
  /** More files committed with the outputs, after them (a refined model file). */
  extra?: Array<{ path: string; bytes: Uint8Array }>;
}): Promise<PurifyReport> {
  const { selection, paths, signal } = r;
  const staged: AtomicWriter[] = [];
  // Non-regular outputs were refused before the run, the null device aside: that one is written directly.
  const stage = async (path: string, fill: (out: AtomicWriter) => Promise<unknown>) => {
    if (signal?.aborted) throw new AbortError();
    const out = await openAtomicWriter(path, { hash: true, nonRegular: 'stream' });
    staged.push(out);
    await fill(out);
    await out.prepare();
    return out.digest();
  };
  let report: PurifyReport;
  try {
    const dataset = await stage(paths.output, (out) =>
      r.datasetFile
        ? r.datasetFile(out)
        : writeRecords(r.input.dataset, out, {
            keep: (i: number) => (selection.kept[i] ? selection.trainWeight[i] : undefined),
            weightField: r.weightField,
            signal,
            onProgress: r.onProgress,
          }),
    );
    const scores = await stage(paths.scores, (out) => (r.scoresFile ? r.scoresFile(out) : writeScores(out, r, signal)));
    const removed =
      paths.removed === null
        ? undefined
        : await stage(paths.removed, (out) => (r.removedFile ? r.removedFile(out) : writeRemoved(out, r)));
    report = await r.report();
    report.files = { dataset, scores, ...(removed ? { removed } : {}) };
    const json = `${JSON.stringify(report, null, 1)}\n`;
    await stage(paths.report, (out) => out.write(json));
    if (paths.html) await stage(paths.html, (out) => out.write(renderReportHtml(report)));
    for (const e of r.extra ?? []) await stage(e.path, (out) => out.write(e.bytes));
    // The last point at which an abort leaves everything as it was.
    if (signal?.aborted) throw new AbortError();
  } catch (err) {
    await Promise.all(staged.map((w) => w.abort()));
    if (err instanceof AbortError)
      throw new AbortError('aborted before the outputs were committed; no output was written', {
        cause: signal?.reason ?? err,
      });
    throw err;
  }
  await commitAll(staged);
  return report;
}

/** `sot report`: renders the HTML page of an existing JSON report (to a file, or streamed to a pipe or device such as /dev/stdout). */
export async function rerenderReport(reportPath: string, htmlPath: string): Promise<void> {
  await assertNoCollision(
    [{ path: htmlPath, what: 'the HTML page' }],
    [{ path: reportPath, what: 'the report it renders' }],
  );
  let text: string;
  try {
    text = await readFile(reportPath, 'utf8');
  } catch (err) {
    throw new IoError(`cannot read ${reportPath}: ${(err as Error).message}`, { path: reportPath, cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InputError({ file: reportPath }, `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  await writeFileAtomic(htmlPath, renderReportHtml(checkReport(parsed, reportPath)), { nonRegular: 'stream' });
}
