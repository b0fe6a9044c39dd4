import { readFile } from 'node:fs/promises';
import type { Embedder } from '../embed/types.js';
import { InputError, IoError } from '../errors.js';
import { withAtomicWriter, writeDataset, writeFileAtomic } from '../io/index.js';
import type { Scores } from '../learner.js';
import type { Matrix } from '../matrix.js';
import { project2d } from '../project.js';
import { excerpt, spreadIndices, weightHistogram } from '../report/build.js';
import { renderReportHtml } from '../report/html.js';
import type { PurifyReport } from '../report/types.js';
import type { Selection } from '../selection.js';
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
  return {
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
  };
}

/** Per-sample scores as CSV, in record order. */
async function writeScores(path: string, r: { lines: Uint32Array; scores: Scores; selection: Selection }, signal?: AbortSignal): Promise<void> {
  const { scores, selection, lines } = r;
  const w = scores.weights ?? scores.scores;
  const pull = scores.learned?.pull;
  const push = scores.learned?.push;
  await withAtomicWriter(
    path,
    async (out) => {
      await out.write('index,line,score,weight,train_weight,rank,kept,pull,push\n');
      let chunk = '';
      for (let i = 0; i < w.length; i++) {
        chunk += `${i},${lines[i]},${scores.scores[i]},${w[i]},${selection.trainWeight[i]},${selection.rank[i]},${selection.kept[i]},${pull ? pull[i] : ''},${push ? push[i] : ''}\n`;
        if (chunk.length > 1 << 16) {
          await out.write(chunk);
          chunk = '';
        }
      }
      await out.write(chunk);
    },
    signal,
  );
}

/**
 * Writes the purified dataset, the scores and the reports. Each is written
 * to a temporary file and renamed into place; the report goes last, so a
 * report on disk always describes outputs that exist.
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
}): Promise<void> {
  const { selection } = r;
  await writeDataset(r.input.dataset, r.paths.output, {
    keep: (i: number) => (selection.kept[i] ? selection.trainWeight[i] : undefined),
    weightField: r.weightField === undefined ? 'sot_weight' : r.weightField,
    signal: r.signal,
  });
  await writeScores(r.paths.scores, r, r.signal);
}

export async function writeReports(report: PurifyReport, paths: Paths): Promise<void> {
  await writeFileAtomic(paths.report, `${JSON.stringify(report, null, 1)}\n`);
  if (paths.html) await writeFileAtomic(paths.html, renderReportHtml(report));
}

/** `sot report`: renders the HTML page of an existing JSON report. */
export async function rerenderReport(reportPath: string, htmlPath: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(reportPath, 'utf8');
  } catch (err) {
    throw new IoError(`cannot read ${reportPath}: ${(err as Error).message}`, { path: reportPath, cause: err });
  }
  let report: PurifyReport;
  try {
    report = JSON.parse(text) as PurifyReport;
  } catch (err) {
    throw new InputError({ file: reportPath }, `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (report?.tool !== 'sot-purify' || report.reportVersion !== 1) {
    throw new InputError({ file: reportPath }, 'not a report written by `sot purify` (expected tool "sot-purify", reportVersion 1)');
  }
  await writeFileAtomic(htmlPath, renderReportHtml(report));
}
