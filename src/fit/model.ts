// The SOT model file: what scoring new records needs from a fit, in one
// versioned binary file with a checksum (layout: docs/model-file.md).
import { createHash } from 'node:crypto';
import { readRegularFile } from '../io/files.js';
import { HashingEmbedder, DOC_FREQ_BUCKETS } from '../embed/hashing.js';
import { sameVectors } from '../embed/llm.js';
import type { Embedder } from '../embed/types.js';
import { InputError, IoError, OptionError } from '../errors.js';
import { openAtomicWriter, writeFileAtomic, type AtomicWriter } from '../io/index.js';
import type { Matrix } from '../matrix.js';
import type { CitedReferences } from '../pipeline/audit.js';
import type { ReferenceSummary } from '../report/types.js';

export const MODEL_MAGIC = 'SOTMODEL';
export const MODEL_VERSION = 1;
/** magic (8) + version (u32) + header length (u32). */
const PREFIX = 16;
const CHECKSUM = 32;

/** A reference set with its fitted potential. */
export interface FittedSet {
  points: Matrix;
  /** Masses (normalised). */
  weights: Float64Array;
  /** Reference-side potential `g` of the fit. */
  potential: Float64Array;
}

/** `pull = pullScale f_S - pullOffset`, `push = pushScale f_H - pushOffset`, `score = (push - pull) / tau`. */
export interface ScoreScale {
  pullScale: number;
  pullOffset: number;
  pushScale: number;
  pushOffset: number;
  tau: number;
}

/** The built-in embedder's settings and fitted document frequencies: enough to rebuild it exactly. */
export interface BuiltinEmbedderSpec {
  kind: 'builtin';
  dim: number;
  seed: number;
  wordWeight: number;
  maxChars: number;
  docCount: number;
}

export interface ModelHeader {
  format: 'sot-model';
  version: number;
  /** sot-purify version that wrote it. */
  tool: string;
  createdAt: string;
  /** The embedder's id: loading refuses an embedder with another. */
  embedder: { id: string; dim: number; spec?: BuiltinEmbedderSpec };
  /** Template the texts were rendered with. */
  template: string | null;
  cost: 'cosine' | 'sqeuclidean';
  eps: number;
  lambda: number;
  tau: number;
  scale: ScoreScale;
  /** Where the references came from (set names with their pinned files' counts, or file paths). */
  references: {
    harmful: ReferenceSummary[];
    anchor: ReferenceSummary[];
    anchorIsSample: boolean;
    /**
     * How many points follow the reference's own in the harmful set: one per
     * fit-sample record the learner's first solve weighted lowest, each the
     * mean of 3 others among them (docs/learner-defaults.md, "The data's own
     * harm"). Absent in files written before them: none.
     */
    ownHarm?: number;
    /**
     * The records of `fit.input` each own-harm point is the mean of, nearest
     * its own first: what a sharded run's reasons cite. Absent in files
     * written before it: their reasons cite the reference's points only.
     */
    ownHarmRecords?: number[][];
    /**
     * The excerpt each of the harmful reference's own samples is cited by in
     * reasons (`citedExcerpt`), in the order of its points: what `score`
     * cites without the reference's texts. Absent in files written before
     * it: `score`'s reasons name the set and the index only.
     */
    excerpts?: string[];
  };
  /** The fit: records in the dataset, records it learned on, the sampling seed, the learner's outcome. */
  fit: { input: string; records: number; sample: number; seed: number; steps: number; converged: boolean };
  /** Scores of the fit sample (after a refit in `score`/`purify --shards`: of every scored record): their quantiles, to read a threshold against. */
  scoreQuantiles: Record<string, number>;
  /** The refinement of the reference potentials over all records, when there was one: passes over how many records of which file. */
  refit?: ModelRefit;
  /** The contamination estimate of the fit, when the learner gave one. */
  contamination?: unknown;
  /** With `contamination`: records of the fit sample that `keep: 'auto'` keeps (the learner's automatic K; null: the estimate was inconclusive). Absent in files written before it was recorded. */
  autoKeep?: number | null;
  sections: Section[];
}

/** Column updates of a model's reference potentials over every record of a file (docs/model-file.md, "Refining over all records"). */
export interface ModelRefit {
  passes: number;
  records: number;
  input: string;
  /** The last pass's L1 error of the reference marginals under the potentials it replaced (absent in files before it was recorded). */
  error?: number;
}

export interface Section {
  name: string;
  dtype: 'f32' | 'f64' | 'u32';
  length: number;
  /** Byte offset from the start of the data area (after the header, 8-aligned). */
  offset: number;
}

export interface Model {
  header: Omit<ModelHeader, 'sections'>;
  anchor: FittedSet;
  harmful: FittedSet;
  /** Built-in embedder only: its non-zero document-frequency buckets. */
  docFreq?: { buckets: Uint32Array; counts: Uint32Array };
}

/** The harmful reference's own points: the model's harmful set without the own-harm points that follow them. */
export function harmfulReference(m: Pick<Model, 'header' | 'harmful'>): Matrix {
  const { points } = m.harmful;
  const rows = points.rows - (m.header.references.ownHarm ?? 0);
  return { data: points.data.subarray(0, rows * points.cols), rows, cols: points.cols };
}

/**
 * The harmful points a sharded run's reasons look among, and the records of
 * each own-harm point among them: every point when the file says which
 * records those are, else the reference's own.
 */
export function harmfulForReasons(m: Pick<Model, 'header' | 'harmful'>): { points: Matrix; ownHarm: number[][] } {
  const own = m.header.references.ownHarmRecords;
  return own ? { points: m.harmful.points, ownHarm: own } : { points: harmfulReference(m), ownHarm: [] };
}

/** The harmful reference's sets and its samples' excerpts as the model file holds them (none in older files). */
export function citedReferences(m: Pick<Model, 'header'>): CitedReferences {
  const { harmful, excerpts } = m.header.references;
  return { summary: harmful, excerpt: (g) => excerpts?.[g] ?? '' };
}

/** Why a file is not a usable model. */
export type ModelFileProblem = 'foreign' | 'truncated' | 'corrupt' | 'version';

/** A model file that cannot be read: not a model, cut short, damaged, or of a newer version. */
export class ModelFileError extends InputError {
  readonly problem: ModelFileProblem;
  constructor(file: string, problem: ModelFileProblem, what: string) {
    super({ file }, what);
    this.problem = problem;
  }
}

const BYTES = { f32: 4, f64: 8, u32: 4 } as const;

/** The model as bytes: prefix, JSON header, 8-aligned sections, SHA-256 of all that precedes it. */
export function encodeModel(m: Model): Uint8Array {
  const arrays: Array<[string, Float32Array | Float64Array | Uint32Array]> = [
    ['anchor.points', m.anchor.points.data],
    ['anchor.weights', m.anchor.weights],
    ['anchor.potential', m.anchor.potential],
    ['harmful.points', m.harmful.points.data],
    ['harmful.weights', m.harmful.weights],
    ['harmful.potential', m.harmful.potential],
  ];
  if (m.docFreq)
    arrays.push(['embedder.docfreq.buckets', m.docFreq.buckets], ['embedder.docfreq.counts', m.docFreq.counts]);
  let offset = 0;
  const sections: Section[] = arrays.map(([name, a]) => {
    const dtype = a instanceof Float32Array ? 'f32' : a instanceof Float64Array ? 'f64' : 'u32';
    const s = { name, dtype, length: a.length, offset } as Section;
    offset = align8(offset + a.byteLength);
    return s;
  });
  const header = new TextEncoder().encode(JSON.stringify({ ...m.header, sections } satisfies ModelHeader));
  const dataStart = align8(PREFIX + header.length);
  const total = dataStart + offset + CHECKSUM;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(MODEL_MAGIC), 0);
  view.setUint32(8, MODEL_VERSION, true);
  view.setUint32(12, header.length, true);
  out.set(header, PREFIX);
  arrays.forEach(([, a], i) => writeLE(view, dataStart + sections[i]!.offset, a));
  out.set(
    createHash('sha256')
      .update(out.subarray(0, total - CHECKSUM))
      .digest(),
    total - CHECKSUM,
  );
  return out;
}

/** Parses and checks a model file's bytes; `file` names it in errors. */
export function decodeModel(bytes: Uint8Array, file: string): Model {
  const fail = (problem: ModelFileProblem, what: string) => new ModelFileError(file, problem, what);
  if (bytes.length < MODEL_MAGIC.length || new TextDecoder().decode(bytes.subarray(0, 8)) !== MODEL_MAGIC) {
    throw fail('foreign', 'not a SOT model file (no SOTMODEL signature); write one with `sot fit`');
  }
  if (bytes.length < PREFIX + CHECKSUM) throw fail('truncated', `the model file is cut short (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== MODEL_VERSION)
    throw fail('version', `model file version ${version}; this sot-purify reads version ${MODEL_VERSION}`);
  const headerLength = view.getUint32(12, true);
  const dataStart = align8(PREFIX + headerLength);
  if (dataStart + CHECKSUM > bytes.length)
    throw fail(
      'truncated',
      `the model file is cut short: its header alone needs ${dataStart + CHECKSUM} bytes, it has ${bytes.length}`,
    );
  let header: ModelHeader;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + headerLength)),
    ) as ModelHeader;
  } catch (err) {
    throw checksumOrElse(
      bytes,
      file,
      fail('corrupt', `the model file's header is damaged (${(err as Error).message})`),
    );
  }
  if (typeof header !== 'object' || header === null || !Array.isArray(header.sections))
    throw checksumOrElse(bytes, file, fail('corrupt', "the model file's header is not a model header"));
  const sections = header.sections;
  const whole = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (
    sections.some(
      (s) => typeof s !== 'object' || s === null || !whole(s.offset) || !whole(s.length) || !(s.dtype in BYTES),
    )
  ) {
    throw checksumOrElse(bytes, file, fail('corrupt', "the model file's section table is malformed"));
  }
  const end = sections.reduce((e, s) => Math.max(e, dataStart + s.offset + s.length * BYTES[s.dtype]), dataStart);
  if (end + CHECKSUM > bytes.length)
    throw fail('truncated', `the model file is cut short: ${end + CHECKSUM} bytes expected, ${bytes.length} found`);
  const sum = createHash('sha256')
    .update(bytes.subarray(0, bytes.length - CHECKSUM))
    .digest();
  if (!sum.equals(bytes.subarray(bytes.length - CHECKSUM))) {
    throw fail('corrupt', 'the model file is damaged: its SHA-256 checksum does not match its contents');
  }
  if (header.format !== 'sot-model')
    throw fail('foreign', `the header names the format ${JSON.stringify(header.format)}, not sot-model`);
  const get = <T extends 'f32' | 'f64' | 'u32'>(name: string, dtype: T) => {
    const s = sections.find((x) => x.name === name);
    if (!s || s.dtype !== dtype) throw fail('corrupt', `the model file has no ${dtype} section ${name}`);
    return readLE(view, dataStart + s.offset, s.length, dtype) as T extends 'f32'
      ? Float32Array
      : T extends 'f64'
        ? Float64Array
        : Uint32Array;
  };
  const dim = header.embedder?.dim;
  if (
    typeof header.scale !== 'object' ||
    header.scale === null ||
    typeof header.eps !== 'number' ||
    typeof header.embedder?.id !== 'string'
  )
    throw fail('corrupt', 'the model header lacks its embedder, eps or score scale');
  const set = (name: 'anchor' | 'harmful'): FittedSet => {
    const data = get(`${name}.points`, 'f32');
    const weights = get(`${name}.weights`, 'f64');
    const potential = get(`${name}.potential`, 'f64');
    if (
      !Number.isInteger(dim) ||
      dim < 1 ||
      data.length !== weights.length * dim ||
      potential.length !== weights.length ||
      weights.length === 0
    ) {
      throw fail(
        'corrupt',
        `the ${name} section holds ${data.length} values for ${weights.length} points of dimension ${dim}`,
      );
    }
    return { points: { data, rows: weights.length, cols: dim }, weights, potential };
  };
  const model: Model = { header: withoutSections(header), anchor: set('anchor'), harmful: set('harmful') };
  const own = header.references?.ownHarm;
  if (own !== undefined && !(Number.isInteger(own) && own >= 0 && own < model.harmful.points.rows))
    throw fail(
      'corrupt',
      `the header's references.ownHarm (${JSON.stringify(own)}) is not a count below the ${model.harmful.points.rows} harmful points`,
    );
  const records = header.references?.ownHarmRecords;
  const record = (i: unknown) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < header.fit.records;
  if (
    records !== undefined &&
    !(
      Array.isArray(records) &&
      records.length === (own ?? 0) &&
      records.every((m) => Array.isArray(m) && m.length > 0 && m.every(record))
    )
  )
    throw fail(
      'corrupt',
      `the header's references.ownHarmRecords is not a list of ${own ?? 0} lists of record indices below ${header.fit.records}`,
    );
  const excerpts = header.references?.excerpts;
  const cited = model.harmful.points.rows - (own ?? 0);
  if (
    excerpts !== undefined &&
    !(Array.isArray(excerpts) && excerpts.length === cited && excerpts.every((e) => typeof e === 'string'))
  )
    throw fail(
      'corrupt',
      `the header's references.excerpts is not a list of ${cited} texts, one per harmful reference point`,
    );
  if (header.embedder.spec?.kind === 'builtin') {
    model.docFreq = { buckets: get('embedder.docfreq.buckets', 'u32'), counts: get('embedder.docfreq.counts', 'u32') };
  }
  return model;
}

/** A damaged header usually fails the checksum too: say that, it is the cause. */
function checksumOrElse(bytes: Uint8Array, file: string, err: ModelFileError): ModelFileError {
  const sum = createHash('sha256')
    .update(bytes.subarray(0, bytes.length - CHECKSUM))
    .digest();
  return sum.equals(bytes.subarray(bytes.length - CHECKSUM))
    ? err
    : new ModelFileError(
        file,
        'corrupt',
        'the model file is damaged: its SHA-256 checksum does not match its contents',
      );
}

export async function saveModel(path: string, m: Model): Promise<void> {
  await writeFileAtomic(path, encodeModel(m));
}

/**
 * Opens an atomic writer holding the encoded model, prepared: commit it with
 * the run's other outputs (`commitAll`), or abort it.
 */
export async function stageModel(path: string, m: Model): Promise<AtomicWriter> {
  const w = await openAtomicWriter(path);
  try {
    await w.write(encodeModel(m));
    await w.prepare();
    return w;
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/**
 * The model refined by `refit` passes over `records` records of `input`,
 * with the score quantiles of `scores` (the scores against it of the records
 * it now describes). Passes add up when a model refined over the same file is
 * refined again.
 */
export function withRefit(m: Model, refit: ModelRefit, scores: Float64Array): Model {
  const before = m.header.refit;
  const again = before !== undefined && before.input === refit.input && before.records === refit.records;
  const passes = again ? before.passes + refit.passes : refit.passes;
  return { ...m, header: { ...m.header, refit: { ...refit, passes }, scoreQuantiles: scoreQuantiles(scores) } };
}

/** The score below which each share of the scores falls (nearest rank), for the header. */
export function scoreQuantiles(scores: Float64Array): Record<string, number> {
  const sorted = Float64Array.from(scores).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return Object.fromEntries(
    [0, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.99, 1].map((q) => [
      String(q),
      q === 1 ? sorted[sorted.length - 1]! : at(q),
    ]),
  );
}

export async function loadModel(path: string): Promise<Model> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path); // a FIFO or a device (/dev/zero) would block the read or never end it
  } catch (err) {
    throw new IoError(`cannot read the model file ${path}: ${(err as Error).message}`, { path, cause: err });
  }
  return decodeModel(bytes, path);
}

/** The built-in embedder's spec and document frequencies, for the model file. */
export function describeEmbedder(embedder: Embedder): Pick<Model, 'docFreq'> & { embedder: ModelHeader['embedder'] } {
  if (!(embedder instanceof HashingEmbedder)) return { embedder: { id: embedder.id, dim: embedder.dim } };
  const table = embedder.docFreq ?? { counts: new Uint32Array(DOC_FREQ_BUCKETS), docCount: 0 };
  const nonzero: number[] = [];
  table.counts.forEach((c, i) => c && nonzero.push(i));
  const buckets = Uint32Array.from(nonzero);
  return {
    embedder: {
      id: embedder.id,
      dim: embedder.dim,
      spec: {
        kind: 'builtin',
        dim: embedder.dim,
        seed: embedder.seed,
        wordWeight: embedder.wordWeight,
        maxChars: embedder.maxChars,
        docCount: table.docCount,
      },
    },
    docFreq: { buckets, counts: Uint32Array.from(buckets, (i) => table.counts[i]!) },
  };
}

/**
 * The embedder a model was fitted with: the built-in one rebuilt from the
 * file, or the caller's, which must have the same id (vectors of another
 * embedder would be scored against references they were never compared with;
 * an LLM embedder's model file may have another name, not other bytes).
 */
export function modelEmbedder(m: Model, file: string, given?: Embedder): Embedder {
  const want = m.header.embedder;
  if (given === undefined && want.spec?.kind === 'builtin' && m.docFreq) {
    const counts = new Uint32Array(DOC_FREQ_BUCKETS);
    const { buckets, counts: c } = m.docFreq;
    if (buckets.length !== c.length || buckets.some((b) => b >= DOC_FREQ_BUCKETS))
      throw new ModelFileError(file, 'corrupt', 'the document-frequency section is malformed');
    buckets.forEach((b, k) => (counts[b] = c[k]!));
    const s = want.spec;
    given = new HashingEmbedder({
      dim: s.dim,
      seed: s.seed,
      wordWeight: s.wordWeight,
      maxChars: s.maxChars,
      docFreq: { counts, docCount: s.docCount },
    });
  }
  if (given === undefined) {
    throw new OptionError(
      'ERR_OPTION',
      `${file} was fitted with the embedder ${JSON.stringify(want.id)}, which it cannot rebuild: pass the same embedder`,
    );
  }
  if (!sameVectors(given.id, want.id)) {
    throw new OptionError(
      'ERR_OPTION',
      `${file} was fitted with the embedder ${JSON.stringify(want.id)}, not ${JSON.stringify(given.id)}: scores of another embedder's vectors are meaningless`,
    );
  }
  return given;
}

function withoutSections(h: ModelHeader): Model['header'] {
  const { sections: _, ...rest } = h;
  return rest;
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function writeLE(view: DataView, at: number, a: Float32Array | Float64Array | Uint32Array): void {
  if (a instanceof Float64Array) a.forEach((v, i) => view.setFloat64(at + 8 * i, v, true));
  else if (a instanceof Float32Array) a.forEach((v, i) => view.setFloat32(at + 4 * i, v, true));
  else a.forEach((v, i) => view.setUint32(at + 4 * i, v, true));
}

function readLE(
  view: DataView,
  at: number,
  length: number,
  dtype: 'f32' | 'f64' | 'u32',
): Float32Array | Float64Array | Uint32Array {
  if (dtype === 'f64') return Float64Array.from({ length }, (_, i) => view.getFloat64(at + 8 * i, true));
  if (dtype === 'f32') return Float32Array.from({ length }, (_, i) => view.getFloat32(at + 4 * i, true));
  return Uint32Array.from({ length }, (_, i) => view.getUint32(at + 4 * i, true));
}
