// One source of defaults. The core's (learner, Sinkhorn solves, cost storage,
// built-in embedder) are its Rust `Default`s, read through the binding; the
// pipeline's are defined here. The CLI help is built from these, and a test
// checks the TSDoc of the option types and the docs' tables against them.
import type { EmbedderKind } from './embed/providers.js';
import { HashingEmbedder } from './embed/hashing.js';
import { DEFAULT_MAX_LINE_BYTES } from './io/lines.js';
import { DEFAULT_TEMPLATE } from './io/records.js';
import { DEFAULT_WEIGHT_FIELD } from './io/write.js';
import type { Method } from './learner.js';
import { native, type CoreDefaults } from './native.js';
import type { Keep } from './selection.js';

export type { CoreDefaults, EmbedDefaults, LearnerDefaults, SinkhornDefaults, StorageDefaults } from './native.js';

let core: CoreDefaults | undefined;

/** The values the core gives options left unset (frozen; read from the native binding once). */
export function coreDefaults(): CoreDefaults {
  if (core === undefined) {
    const d = native.coreDefaults();
    for (const part of Object.values(d)) Object.freeze(part);
    core = Object.freeze(d);
  }
  return core;
}

/**
 * `refit: 'auto'`: column passes over every record until the reference
 * marginals' L1 error (Sinkhorn's stopping measure, docs/model-file.md) is
 * below `tolerance`, at most `maxPasses`.
 */
export const REFIT_AUTO: Readonly<{ maxPasses: number; tolerance: number }> = Object.freeze({
  maxPasses: 10,
  tolerance: 1e-3,
});

/** `purify --shards`' default fit sample: every record up to this many, else this many (the fidelity measured in BENCHMARKS.md). */
export const DEFAULT_FIT_SAMPLE = 100_000;
/** `purify --shards`' default column updates of the fitted potentials over all records (the fidelity measured in BENCHMARKS.md). */
export const DEFAULT_SHARD_REFIT = 1;
/** `purify --shards`' default attempts after a shard's first failure (a failure on its input or options is not retried). */
export const DEFAULT_SHARD_RETRIES = 2;

/** Defaults `purify` applies itself, before the core is called. */
export const PURIFY_DEFAULTS: Readonly<{
  keep: Keep;
  method: Method;
  weightField: string;
  template: string;
  maxLineBytes: number;
}> = Object.freeze({
  keep: Object.freeze({ fraction: 0.8 }),
  method: 'sot',
  weightField: DEFAULT_WEIGHT_FIELD,
  template: DEFAULT_TEMPLATE,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
});

/** Learner options an embedder sets for its geometry; explicit options override them, the core's defaults fill the rest. */
export type EmbedderLearnerDefaults = Readonly<{ eps?: number; lambda?: number; tau?: number }>;

/**
 * The learner defaults each embedder kind brings (`Embedder.learnerDefaults`),
 * known without building the embedder (a model load, a server probe): what
 * `sot purify --help` shows.
 */
export const EMBEDDER_LEARNER_DEFAULTS: Readonly<Partial<Record<EmbedderKind, EmbedderLearnerDefaults>>> =
  Object.freeze({
    builtin: HashingEmbedder.LEARNER_DEFAULTS,
  });
