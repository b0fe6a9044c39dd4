import type { StorageReport } from '../storage.js';
import type { ContaminationEstimate } from '../learner.js';

/** What `purify` writes to its JSON report (and what the HTML page shows). */
export interface PurifyReport {
  tool: 'sot-purify';
  /** Report layout version; bumped on incompatible changes. */
  reportVersion: 1;
  version: string;
  createdAt: string;
  input: {
    path: string;
    format: string;
    recordFormat: string;
    records: number;
    skipped: number;
    skippedReasons: string[];
  };
  outputs: { dataset: string; scores: string; report: string; html: string | null };
  /**
   * Size and sha256 of the dataset and scores this run wrote. The JSON report
   * is renamed into place after them, so files that do not match are not
   * this report's (a run killed while its outputs were being renamed).
   * Absent from reports of older versions.
   */
  files?: { dataset: { bytes: number; sha256: string }; scores: { bytes: number; sha256: string } };
  embedder: { id: string; dim: number };
  references: { harmful: ReferenceSummary[]; anchor: ReferenceSummary[] };
  method: string;
  options: Record<string, unknown>;
  selection: { n: number; k: number };
  /** How contaminated the input looked (method `sot`): see `ContaminationEstimate`. */
  contamination: ContaminationEstimate | null;
  learner: {
    steps: number;
    converged: boolean;
    innerConverged: boolean;
    /** Passes over the costs of both terms, all steps together. */
    innerIterations: number;
    objective: number[];
    /** How the costs to the anchor and to the harmful reference were held. */
    storage: { anchor: StorageReport; harmful: StorageReport };
  } | null;
  /** Bytes: the run's budget, the part the learner's costs got, the peak resident set of the process. */
  memory: { budget: number; learnerBudget: number; peakRss: number };
  warnings: string[];
  /** Seconds per stage, in the order they ran. */
  timings: Record<string, number>;
  /** Counts of log10(n * weight) (1 = uniform weight) for kept and dropped samples. */
  histogram: { edges: number[]; kept: number[]; dropped: number[] };
  /** First two principal components of the embeddings; downstream subsampled for display. */
  projection: {
    downstream: Array<[x: number, y: number, kept: 0 | 1, index: number]>;
    downstreamTotal: number;
    anchor: Array<[x: number, y: number]>;
    harmful: Array<[x: number, y: number]>;
  };
  /** The samples with the lowest scores: what SOT pushed out first. */
  lowest: Array<{ index: number; line: number; weight: number; pull: number | null; push: number | null; excerpt: string }>;
}

/** Where a reference set came from and what it holds. */
export interface ReferenceSummary {
  /** A file path or a named set. */
  source: string;
  count: number;
  licence?: string;
}
