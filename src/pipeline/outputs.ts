import { readFile } from 'node:fs/promises';
import type { Embedder } from '../embed/types.js';
import { AbortError, InputError, IoError } from '../errors.js';
import { assertNoCollision, type AtomicWriter, commitAll, openAtomicWriter, writeFileAtomic } from '../io/index.js';
import { writeRecords } from '../io/write.js';
import type { Scores } from '../learner.js';
import type { Matrix } from '../matrix.js';
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

type Paths = ReturnType<typeof outputPaths>;

/** Points drawn in the report's scatter plot, at most. */
const MAX_PLOTTED = { downstream: 4000, reference: 1000 };
const LOWEST = 25;

function rowsOf(m: Matrix, idx: number[]): Float32Array {
  const out = new Float32Array(idx.length * m.cols);
  idx.forEach((r, i) => out.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return out;
}

/** The 2-D projection of a display sample of all three sets, fitted jointly. */
async function projection(sets: { downstream: Matrix; anchor?: Matrix; harmful: Matrix }, kept: Uint8Array): Promise<PurifyReport['projection']> {
  const d = spreadIndices(sets.downstream.rows, MAX_PLOTTED.downstream);
  const a = sets.anchor ? spreadIndices(sets.anchor.rows, MAX_PLOTTED.reference) : [];
  const h = spreadIndices(sets.harmful.rows, MAX_PLOTTED.reference);
  const cols = sets.downstream.cols;
  const data = new Float32Array((d.length + a.length + h.length) * cols);
  data.set(rowsOf(sets.downstream, d), 0);
  if (sets.anchor) data.set(rowsOf(sets.anchor, a), d.length * cols);
  data.set(rowsOf(sets.harmful, h), (d.length + a.length) * cols);
  const xy = await project2d({ data, rows: d.length + a.length + h.length, cols });
  const pt = (i: number): [number, number] => [round(xy[2 * i]!), round(xy[2 * i + 1]!)];
  return {
    downstream: d.map((row, i) => [...pt(i), kept[row] ? 1 : 0, row] as [number, number, 0 | 1, number]),
    downstreamTotal: sets.downstream.rows,
    anchor: a.map((_, i) => pt(d.length + i)),
    harmful: h.map((_, i) => pt(d.length + a.length + i)),
  };
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

export interface ReportInputs {
  version: string;
  options: PurifyOptions;
  paths: Paths;
  input: PipelineInput;
  embedder: Embedder;
  refs: { harmful: LoadedReferences; anchor: LoadedReferences };
  sets: { downstream: Matrix; anchor?: Matrix; harmful: Matrix };
  lines: Uint32Array;
  method: string;
  /** Learner options in effect (embedder defaults, then the caller's). */
  learnerOptions: Record<string, unknown>;
  scores: Scores;
  selection: Selection;
  warnings: string[];
  timings: Record<string, number>;
  /** The run's memory budget, the part of it the learner's costs got, and the peak resident set so far. */
  memory: PurifyReport['memory'];
}

export async function buildReport(r: ReportInputs): Promise<PurifyReport> {
  const o = r.options;
  const n = r.selection.order.length;
  const weights = r.scores.weights ?? r.scores.scores;
  const lowestIdx = Array.from(r.selection.order.subarray(Math.max(0, n - LOWEST))).reverse();
  const texts = await r.input.textsAt(lowestIdx);
  const pull = r.scores.learned?.pull;
  const push = r.scores.learned?.push;
  const learned = r.scores.learned;
  const ds = r.input.dataset;
  // Paths, warnings and skipped reasons embed user text too: no string may carry a lone surrogate.
  return wellFormedDeep({
    tool: 'sot-purify',
    reportVersion: 1,
    version: r.version,
    createdAt: o.createdAt ?? new Date().toISOString(),
    input: { path: o.input, format: ds.format, recordFormat: ds.recordFormat, records: n, skipped: r.input.skipped.count, skippedReasons: r.input.skipped.reasons },
    outputs: { dataset: r.paths.output, scores: r.paths.scores, report: r.paths.report, html: r.paths.html },
    embedder: { id: r.embedder.id, dim: r.embedder.dim },
    references: { harmful: r.refs.harmful.summary, anchor: r.refs.anchor.summary },
    method: r.method,
    options: {
      keep: o.keep ?? { fraction: 0.8 },
      template: o.template ?? null,
      weightField: o.weightField === undefined ? 'sot_weight' : o.weightField,
      learner: r.learnerOptions,
      seed: o.seed ?? null,
    },
    selection: { n, k: r.selection.k },
    contamination: learned?.contamination ?? null,
    learner: learned
      ? {
          steps: learned.steps,
          converged: learned.converged,
          innerConverged: learned.innerConverged,
          innerIterations: learned.innerIterations,
          objective: Array.from(learned.objective),
          storage: { anchor: learned.anchorStorage, harmful: learned.harmfulStorage },
        }
      : null,
    memory: { ...r.memory },
    warnings: r.warnings,
    timings: r.timings,
    histogram: weightHistogram(weights, r.selection.kept),
    projection: await projection(r.sets, r.selection.kept),
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

/** Per-sample scores as CSV, in record order. */
async function writeScores(out: AtomicWriter, r: { lines: Uint32Array; scores: Scores; selection: Selection }, signal?: AbortSignal): Promise<void> {
  const { scores, selection, lines } = r;
  const w = scores.weights ?? scores.scores;
  const pull = scores.learned?.pull;
  const push = scores.learned?.push;
  await out.write('index,line,score,weight,train_weight,rank,kept,pull,push\n');
  let chunk = '';
  for (let i = 0; i < w.length; i++) {
    chunk += `${i},${lines[i]},${scores.scores[i]},${w[i]},${selection.trainWeight[i]},${selection.rank[i]},${selection.kept[i]},${pull ? pull[i] : ''},${push ? push[i] : ''}\n`;
    if (chunk.length > 1 << 16) {
      if (signal?.aborted) throw new AbortError();
      await out.write(chunk);
      chunk = '';
    }
  }
  await out.write(chunk);
}

/**
 * Writes the purified dataset, the scores and the reports as a unit: each to
 * a temporary file (fsynced), then, once all exist, renamed into place in a
 * fixed order: dataset, scores, JSON report, HTML page. The JSON report holds
 * the size and sha256 of the dataset and the scores, so one left by a run
 * killed among the renames is told apart. An abort (or an error) before the
 * renames removes every temporary file and changes nothing; once they have
 * begun, an abort no longer stops them and the run completes.
 * `report` builds the report once the dataset and scores are staged.
 */
export async function writeOutputs(r: {
  input: PipelineInput;
  paths: Paths;
  lines: Uint32Array;
  selection: Selection;
  scores: Scores;
  weightField?: string | null;
  signal?: AbortSignal;
  onProgress?: (done: number) => void;
  report: () => Promise<PurifyReport>;
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
      writeRecords(r.input.dataset, out, {
        keep: (i: number) => (selection.kept[i] ? selection.trainWeight[i] : undefined),
        weightField: r.weightField,
        signal,
        onProgress: r.onProgress,
      }),
    );
    const scores = await stage(paths.scores, (out) => writeScores(out, r, signal));
    report = await r.report();
    report.files = { dataset, scores };
    const json = `${JSON.stringify(report, null, 1)}\n`;
    await stage(paths.report, (out) => out.write(json));
    if (paths.html) await stage(paths.html, (out) => out.write(renderReportHtml(report)));
    // The last point at which an abort leaves everything as it was.
    if (signal?.aborted) throw new AbortError();
  } catch (err) {
    await Promise.all(staged.map((w) => w.abort()));
    if (err instanceof AbortError) throw new AbortError('aborted before the outputs were committed; no output was written', { cause: signal?.reason ?? err });
    throw err;
  }
  await commitAll(staged);
  return report;
}

/** `sot report`: renders the HTML page of an existing JSON report (to a file, or streamed to a pipe or device such as /dev/stdout). */
export async function rerenderReport(reportPath: string, htmlPath: string): Promise<void> {
  await assertNoCollision([{ path: htmlPath, what: 'the HTML page' }], [{ path: reportPath, what: 'the report it renders' }]);
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
