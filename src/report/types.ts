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
  outputs: { dataset: string; scores: string; report: string; html: string | null; removed?: string | null };
  /**
   * Size and sha256 of the dataset and scores this run wrote. The JSON report
   * is renamed into place after them, so files that do not match are not
   * this report's (a run killed while its outputs were being renamed).
   * Absent from reports of older versions.
   */
  files?: {
    dataset: { bytes: number; sha256: string };
    scores: { bytes: number; sha256: string };
    removed?: { bytes: number; sha256: string };
  };
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
    /**
     * The records (indices) the first solve weighted lowest, whose points joined the harmful reference
     * for the second (docs/learner-defaults.md, "The data's own harm"); empty when it solved once.
     */
    ownHarm: number[];
    /** The records each own-harm point is the mean of, nearest its own record first: `own-harm #j` in `records.nearest` is point j. */
    ownHarmMembers: number[][];
  } | null;
  /**
   * A sharded run (`purify --shards`): the fit on a sample, the column
   * updates over all records, the shards. Its `learner` is null (the fit's
   * per-step trace is not kept), its contamination estimate is the fit
   * sample's, and its memory figures are the coordinating process's.
   * Absent from whole-dataset runs.
   */
  sharded?: ShardedSummary;
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
    /** For each anchor and harmful point, its set: an index into `references.anchor` / `references.harmful`. */
    anchorSet?: number[];
    harmfulSet?: number[];
  };
  /** The cut-off on the histogram's axis: log10(n * w) of the lowest kept record; null when all or none are kept. */
  cutoff?: number | null;
  /** ln(n w) ≈ pull + push + offset for every record; `maxResidual` is the largest deviation (`sot` only). */
  contributions?: { offset: number; maxResidual: number } | null;
  /** Every record (or, past 20,000, the 20,000 lowest ranked: the dropped ones first), column by column, for the report's table. */
  records?: RecordTable;
  /** Records and dropped records per value of a source/category field, when the input has one. */
  groups?: { field: string; rows: Array<{ value: string; total: number; dropped: number }> } | null;
  /** The samples with the lowest scores: what SOT pushed out first. */
  lowest: Array<{
    index: number;
    line: number;
    weight: number;
    pull: number | null;
    push: number | null;
    excerpt: string;
  }>;
}

/** Where a reference set came from and what it holds. */
export interface ReferenceSummary {
  /** A file path or a named set. */
  source: string;
  count: number;
  licence?: string;
}

/** The records of the report's table, one array per column (same length, same order). */
export interface RecordTable {
  /** Records in the run (the table may hold fewer). */
  total: number;
  index: number[];
  line: number[];
  score: number[];
  /** 0 = the best. */
  rank: number[];
  kept: number[];
  /** ln(n w), and the pull and push contributions to it (`sot` only). */
  logWeight: number[] | null;
  pull: number[] | null;
  push: number[] | null;
  /** The reason in words ('' when the record was not explained). */
  reason: string[];
  excerpt: string[];
  /** The group field's value per record, when there is one. */
  group: string[] | null;
  /** The nearest harmful references of an explained record: [set, index in it, cost]. */
  nearest: Array<Array<[set: string, index: number, cost: number]> | null>;
  /** Excerpts of the cited references, by "set #index". */
  cited: Record<string, string>;
}

/** How a sharded run got its scores. */
export interface ShardedSummary {
  shards: number;
  /** Attempts each shard took, all passes together (1 = no retry). */
  attempts: number[];
  /** The fit: records in the dataset, records it learned on (a uniform sample) and their seed, the learner's steps. */
  fit: { records: number; sample: number; seed: number; steps: number; converged: boolean };
  /** Column updates of the fitted reference potentials over all records before the scoring. */
  refit: number;
  /** The last refit pass's L1 error of the reference marginals, Sinkhorn's stopping measure (null: no pass). */
  refitError: number | null;
  /** The model the records were scored against. */
  model: { cost: string; eps: number; lambda: number; tau: number };
}
