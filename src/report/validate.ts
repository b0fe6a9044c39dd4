// Checks a report read back from disk (`sot report`) before the page is
// built from it: a hand-edited or foreign file gets an InputError naming the
// field, not a TypeError from deep inside the renderer or the browser.
import { InputError } from '../errors.js';
import { MAX_DEPTH, tooDeep, typeName } from '../io/raw.js';
import type { PurifyReport } from './types.js';

/** Returns what is wrong with `v` (at `path`), or undefined. */
type Check = (v: unknown, path: string) => string | undefined;

const expect =
  (ok: (v: unknown) => boolean, what: string): Check =>
  (v, path) =>
    ok(v) ? undefined : `${path} is ${typeName(v)}, expected ${what}`;
const str = expect((v) => typeof v === 'string', 'a string');
const num = expect((v) => typeof v === 'number' && Number.isFinite(v), 'a number');
const bool = expect((v) => typeof v === 'boolean', 'a boolean');
const maybe =
  (check: Check): Check =>
  (v, path) =>
    v === undefined || v === null ? undefined : check(v, path);

function obj(fields: Record<string, Check>): Check {
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${path} is ${typeName(v)}, expected an object`;
    for (const [k, check] of Object.entries(fields)) {
      const bad = check((v as Record<string, unknown>)[k], `${path}.${k}`);
      if (bad !== undefined) return bad;
    }
    return undefined;
  };
}

function arr(item: Check, length?: number): Check {
  return (v, path) => {
    if (!Array.isArray(v)) return `${path} is ${typeName(v)}, expected an array`;
    if (length !== undefined && v.length < length) return `${path} has ${v.length} entries, expected ${length}`;
    for (let i = 0; i < v.length; i++) {
      const bad = item(v[i], `${path}[${i}]`);
      if (bad !== undefined) return bad;
    }
    return undefined;
  };
}

const values =
  (check: Check): Check =>
  (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${path} is ${typeName(v)}, expected an object`;
    for (const [k, x] of Object.entries(v)) {
      const bad = check(x, `${path}.${k}`);
      if (bad !== undefined) return bad;
    }
    return undefined;
  };

const near: Check = (v, path) =>
  Array.isArray(v) && v.length === 3 && typeof v[0] === 'string' && Number.isFinite(v[1]) && Number.isFinite(v[2])
    ? undefined
    : `${path} is ${typeName(v)}, expected [set, index, cost]`;
const reference = obj({ source: str, count: num, licence: maybe(str) });
const storage = obj({
  mode: str,
  bytes: num,
  neighbours: maybe(num),
  bound: maybe(num),
  verification: maybe(obj({ maxError: num })),
});

/** What the page reads: every field it shows, with its type. */
const REPORT = obj({
  version: str,
  createdAt: str,
  input: obj({
    path: str,
    format: str,
    recordFormat: str,
    records: num,
    skipped: num,
    skippedReasons: maybe(arr(str)),
  }),
  outputs: obj({ dataset: str, scores: str }),
  embedder: obj({ id: str, dim: num }),
  references: obj({ harmful: arr(reference), anchor: arr(reference) }),
  method: str,
  selection: obj({ n: num, k: num }),
  learner: maybe(obj({ steps: num, converged: bool, storage: maybe(obj({ anchor: storage, harmful: storage })) })),
  memory: maybe(obj({ budget: num, peakRss: num })),
  warnings: arr(str),
  timings: values(num),
  histogram: obj({ edges: arr(num), kept: arr(num), dropped: arr(num) }),
  projection: obj({
    downstream: arr(arr(num, 3)),
    downstreamTotal: num,
    anchor: arr(arr(num, 2)),
    harmful: arr(arr(num, 2)),
    anchorSet: maybe(arr(num)),
    harmfulSet: maybe(arr(num)),
  }),
  lowest: arr(obj({ index: num, line: num, weight: num, excerpt: str })),
  cutoff: maybe(num),
  contamination: maybe(
    obj({ estimate: num, low: num, high: num, level: num, method: str, clean: bool, verdict: maybe(str) }),
  ),
  contributions: maybe(obj({ offset: num, maxResidual: num })),
  sharded: maybe(
    obj({
      shards: num,
      attempts: arr(num),
      fit: obj({ records: num, sample: num, seed: num, steps: num, converged: bool }),
      refit: num,
      refitError: maybe(num),
      model: obj({ cost: str, eps: num, lambda: num, tau: num }),
    }),
  ),
  groups: maybe(obj({ field: str, rows: arr(obj({ value: str, total: num, dropped: num })) })),
  records: maybe(
    obj({
      total: num,
      index: arr(num),
      line: arr(num),
      score: arr(num),
      rank: arr(num),
      kept: arr(num),
      logWeight: maybe(arr(num)),
      pull: maybe(arr(num)),
      push: maybe(arr(num)),
      reason: arr(str),
      excerpt: arr(str),
      group: maybe(arr(str)),
      nearest: arr(maybe(arr(near))),
      cited: values(str),
    }),
  ),
});

/** The record table's columns must be as long as its index (the page reads them side by side). */
function tableProblem(t: PurifyReport['records']): string | undefined {
  if (!t) return undefined;
  const n = t.index.length;
  for (const [k, v] of Object.entries(t)) {
    if (Array.isArray(v) && v.length !== n)
      return `report.records.${k} has ${v.length} entries, expected ${n} (as many as report.records.index)`;
  }
  return undefined;
}

/** The parsed report if it has the shape the page needs; else an InputError naming the field. */
export function checkReport(value: unknown, file: string): PurifyReport {
  const r = value as Partial<PurifyReport> | null;
  if (typeof r !== 'object' || r === null || r.tool !== 'sot-purify' || r.reportVersion !== 1) {
    throw new InputError(
      { file },
      'not a report written by `sot purify` (expected tool "sot-purify", reportVersion 1)',
    );
  }
  const deep = tooDeep(r as Record<string, unknown>);
  if (deep !== undefined)
    throw new InputError(
      { file, field: deep },
      `not a valid report: report.${deep} nests more than ${MAX_DEPTH} levels deep`,
    );
  const bad = REPORT(r, 'report');
  const h = r.histogram;
  const problem =
    bad ??
    (h && (h.dropped.length !== h.kept.length || (h.kept.length > 0 && h.edges.length !== h.kept.length + 1))
      ? 'report.histogram needs as many dropped as kept counts, and one edge more than counts'
      : tableProblem(r.records));
  if (problem !== undefined) {
    const field = /^report\.([^ ]+)/.exec(problem)?.[1];
    throw new InputError({ file, ...(field === undefined ? {} : { field }) }, `not a valid report: ${problem}`);
  }
  return r as PurifyReport;
}
