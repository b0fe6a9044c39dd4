import { embedderOption, settledProgress, uint32 } from '../options.js';
import { createRequire } from 'node:module';
import { AbortError, OptionError } from '../errors.js';
import { PURIFY_DEFAULTS } from '../defaults.js';
import { assertWritable, type RolePath } from '../io/index.js';
import { HashingEmbedder } from '../embed/hashing.js';
import type { Embedder } from '../embed/types.js';
import { scoreSamples, type ContaminationEstimate, type Scores } from '../learner.js';
import { keepArgs, keepCount, selectTopK, type Selection } from '../selection.js';
import { embedDataset, embedSamples, openEmbeddingCache } from './embedding.js';
import { outputPaths, outputRoles, runReads } from './paths.js';
import { loadReferences } from './references.js';
import { buildReport, writeOutputs } from './outputs.js';
import { checkReasonOptions, explainRecords, ownHarmOf } from './audit.js';
import type { PurifyOptions, Stage } from './options.js';
import type { PurifyReport } from '../report/types.js';
import { PipelineInput } from './input.js';
import { checkEmbeddingsFit, learnerBudget, peakRss, resolveBudget } from './memory.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export interface PurifyResult {
  /** Files written (all together: see `purify`). */
  outputs: { dataset: string; scores: string; report: string; html: string | null; removed: string | null };
  /** Records read (after skipped invalid ones) and kept. */
  n: number;
  k: number;
  scores: Scores;
  selection: Selection;
  /** How contaminated the data look (method `sot`; absent for the baselines and the debiased objective). */
  contamination?: ContaminationEstimate;
  report: PurifyReport;
  warnings: string[];
}

/** The entries of `o` that are set (so unset CLI flags do not erase embedder defaults). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** What `keep: 'auto'` says when it cannot act on the estimate: none, or an inconclusive one (`autoKeep` null). */
export function autoKeepWarnings(c: ContaminationEstimate | undefined, autoKeep: number | null): string[] {
  if (!c)
    return [
      "keep 'auto': no contamination estimate (it needs two or more anchor and harmful samples), so every record was kept",
    ];
  if (autoKeep !== null) return [];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const d = PURIFY_DEFAULTS.keep;
  return [
    `keep 'auto': the contamination estimate is inconclusive (${pct(c.estimate)}, ${Math.round(100 * c.level)}% interval ${pct(c.low)}-${pct(c.high)}: too wide to call the data clean or contaminated), so the default keep (${'fraction' in d ? pct(d.fraction) : `${d.count} records`}) applies`,
  ];
}

/**
 * The count `keep: 'auto'` keeps of `n` records, from the learner's automatic
 * K (`autoKeep`) over the `of` samples it learned on: every record without an
 * estimate or when the data look clean; the default keep when the estimate is
 * inconclusive (`autoKeep` null); and on data that look contaminated the
 * smaller of the two, so that `'auto'` never drops fewer records than the
 * default there: with a ranking that is not perfect, dropping only the
 * estimated share keeps more of the harmful records (docs/learner-defaults.md).
 */
export function autoKeepCount(
  c: ContaminationEstimate | undefined,
  autoKeep: number | null,
  of: number,
  n: number,
): number {
  const fixed = keepCount(PURIFY_DEFAULTS.keep, n);
  if (autoKeep === null) return fixed;
  const k = autoKeep >= of ? n : Math.min(n, Math.max(1, Math.round((autoKeep * n) / of)));
  return c?.verdict === 'contaminated' ? Math.min(k, fixed) : k;
}

/**
 * The whole job: read -> embed -> learn weights -> select -> write. The input
 * is streamed (read twice: embed, then write) and never modified. Outputs
 * that would replace a file the run reads or each other are refused before
 * any work. The outputs commit as a unit (see writeOutputs): a failure or an
 * abort before the renames leaves every previous file as it was; once the
 * renames have begun an abort no longer stops them, and the run resolves.
 */
export async function purify(options: PurifyOptions): Promise<PurifyResult> {
  const o = { ...options, onProgress: settledProgress(options?.onProgress) };
  if (typeof o?.input !== 'string' || o.input === '') throw new OptionError('ERR_OPTION', 'input must be a file path');
  if (!Array.isArray(o.harmful) || o.harmful.length === 0) {
    throw new OptionError('ERR_OPTION', 'harmful must name at least one file or reference set');
  }
  const paths = outputPaths(o);
  checkReasonOptions(o.reasons);
  uint32('seed', o.seed); // the random baseline's, checked whatever the method
  const budget = resolveBudget(o.memoryBudget);
  const signal = o.signal;
  const timings: Record<string, number> = {};
  const warnings: string[] = [];
  let t0 = performance.now();
  const lap = (stage: Stage) => {
    const t = performance.now();
    timings[stage] = (timings[stage] ?? 0) + (t - t0) / 1000;
    t0 = t;
  };
  const check = () => {
    if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
  };
  const progress = (stage: Stage, done: number, total?: number) => o.onProgress?.({ stage, done, total });

  // Read (and fit the embedder on the dataset's texts, e.g. document frequencies).
  const embedder: Embedder = embedderOption(o.embedder) ?? new HashingEmbedder();
  const input = await PipelineInput.open(o, { weightField: o.weightField });
  await checkOutputs(o, paths, embedder); // a missing folder, an output onto a file read or another output: now, not after the work
  const n = await input.count(embedder, {
    signal,
    memoryBudget: budget,
    onProgress: (done) => progress('read', done),
  });
  if (n === 0) throw new OptionError('ERR_OPTION', `${o.input}: no records to purify`);
  checkKeep(o.keep, n, o.method ?? 'sot'); // before the embedding and the learning, not after
  lap('read');

  // Embed the dataset, streaming, through the cache.
  const cache = await openEmbeddingCache(o, embedder);
  const { matrix: downstream, lines } = await embedDataset(input, n, embedder, cache, {
    // held once: in native memory, shared with the core
    fits: (dim) => checkEmbeddingsFit(budget, n, dim, o.input),
    signal,
    onProgress: (done) => progress('embed', done, n),
  });
  lap('embed');

  // References, embedded with the same (fitted) embedder.
  check();
  progress('references', 0);
  const refs = await loadReferences(o);
  warnings.push(...refs.harmful.warnings, ...refs.anchor.warnings);
  const harmful = await embedSamples(refs.harmful.samples, o.template, embedder, cache, { signal });
  const anchor = refs.anchor.samples.length
    ? await embedSamples(refs.anchor.samples, o.template, embedder, cache, { signal })
    : undefined;
  progress('references', refs.harmful.samples.length + refs.anchor.samples.length);
  lap('references');

  // Learn the weights (or score with a baseline).
  const method = o.method ?? 'sot';
  const learner = { ...embedder.learnerDefaults, ...defined(o.learner ?? {}) };
  if (o.keep === 'auto' && learner.debiased === true) {
    throw new OptionError(
      'ERR_OPTION',
      "keep 'auto' needs the contamination estimate, which the debiased objective does not give; give a fraction or a count",
    );
  }
  // The costs get what the process does not hold yet (an explicit learner budget wins).
  const storage = {
    budget: learnerBudget(budget, { downstream, anchor, harmful }, { ownHarmShare: learner.ownHarmShare }),
    ...learner.storage,
  };
  const scores = await scoreSamples(
    method,
    { downstream, anchor, harmful },
    {
      ...learner,
      storage,
      seed: o.seed,
      signal,
      onProgress: (e) => progress('learn', e.iteration),
    },
  );
  for (const w of scores.warnings) if (!warnings.includes(w)) warnings.push(w);
  lap('learn');

  // Select the top K (training weights proportional to the learned weights).
  const learned = scores.learned;
  if (o.keep === 'auto') warnings.push(...autoKeepWarnings(learned?.contamination, learned!.autoKeep));
  const keep =
    o.keep !== 'auto'
      ? (o.keep ?? PURIFY_DEFAULTS.keep)
      : { count: autoKeepCount(learned?.contamination, learned!.autoKeep, n, n) };
  const selection = await selectTopK(scores.scores, keep, scores.weights);
  progress('select', selection.k, n);
  // Why: each dropped record's nearest harmful references and its pull/push split.
  const audit = await explainRecords({
    downstream,
    harmful,
    ownHarm: learned && ownHarmOf(learned.fitted, harmful.cols),
    refs: refs.harmful,
    scores,
    selection,
    cost: learner.cost,
    tau: learner.tau,
    options: o.reasons,
    signal,
  });
  lap('select');

  // Write everything as a unit: all temporary files first, then the renames (the report after what it describes).
  check();
  progress('write', 0, n);
  const report = await writeOutputs({
    input,
    paths,
    lines,
    selection,
    score: scores.scores,
    audit,
    weightField: o.weightField,
    signal,
    onProgress: (done) => progress('write', done, n),
    report: async () => {
      const r = await buildReport({
        version: pkg.version,
        options: o,
        paths,
        input,
        embedder,
        refs,
        sets: { downstream, anchor, harmful },
        lines,
        method,
        learnerOptions: learner,
        scores,
        selection,
        audit,
        warnings,
        timings,
        memory: { budget, learnerBudget: storage.budget as number, peakRss: peakRss() },
      });
      lap('write');
      r.timings = { ...timings };
      r.memory.peakRss = peakRss();
      return r;
    },
  });

  const contamination = scores.learned?.contamination;
  return {
    outputs: {
      dataset: paths.output,
      scores: paths.scores,
      report: paths.report,
      html: paths.html,
      removed: paths.removed,
    },
    n,
    k: selection.k,
    scores,
    selection,
    ...(contamination ? { contamination } : {}),
    report,
    warnings,
  };
}

/**
 * A malformed keep, K = 0, K > n or a fraction outside (0, 1]: the same
 * errors selectTopK gives, but as soon as n is known (before the records are
 * counted, with `n` infinite, for all but K > n).
 */
export function checkKeep(keep: PurifyOptions['keep'], n: number, method: string): void {
  if (keep === 'auto') {
    if (method !== 'sot')
      throw new OptionError(
        'ERR_OPTION',
        `keep 'auto' needs the contamination estimate of method 'sot', not '${method}'; give a fraction or a count`,
      );
    return;
  }
  if (typeof keep === 'string')
    throw new OptionError('ERR_OPTION', `keep must be 'auto', { count } or { fraction }, got ${JSON.stringify(keep)}`);
  if (keep === undefined || keep === null) return; // the default
  keepArgs(keep); // the shape, and an integer count
  if ('count' in keep && typeof keep.count === 'number' && (keep.count < 1 || keep.count > n)) {
    throw new OptionError(
      'ERR_OPTION',
      Number.isFinite(n)
        ? `keep must be between 1 and the ${n} samples, got ${keep.count}`
        : `keep count must be at least 1, got ${keep.count}`,
    );
  }
  if ('fraction' in keep && typeof keep.fraction === 'number' && !(keep.fraction > 0 && keep.fraction <= 1)) {
    throw new OptionError('ERR_OPTION', `keep fraction must lie in (0, 1], got ${keep.fraction}`);
  }
}

/**
 * Before any work, `assertWritable` over the run's outputs (and `more`, such
 * as a model file to save) and the files it reads. (The sharded run checks
 * its outputs with it too.)
 */
export async function checkOutputs(
  o: PurifyOptions,
  paths: ReturnType<typeof outputPaths>,
  embedder: Embedder,
  more: readonly RolePath[] = [],
): Promise<void> {
  await assertWritable([...outputRoles(paths), ...more], runReads(o, embedder));
}
