// The memory budget of a purify, fit or embed run: what the embeddings and
// the learner's costs may take, given what the process already holds.
// (Accounting only; the core plans the costs.)
import { totalmem } from 'node:os';
import { coreDefaults } from '../defaults.js';
import { OptionError } from '../errors.js';
import { type AnyMatrix, isStored } from '../matrix.js';
import { native } from '../native.js';
import { parseBytes } from '../storage.js';

/** Default budget: 8 GiB, or half the machine's memory if that is less. */
export function defaultBudget(): number {
  return Math.min(8 * 1024 ** 3, Math.floor(totalmem() / 2));
}

export function resolveBudget(budget: number | string | undefined): number {
  return budget === undefined ? defaultBudget() : parseBytes('memoryBudget', budget);
}

/**
 * What the run holds besides the embeddings and the learner's costs, per
 * sample: the learner's vectors (weights, potentials and their updates,
 * scores), the selection, the record lines, the scores file's rows.
 */
const BYTES_PER_SAMPLE = 256;
/** And in all: thread buffers, the report, allocator slack. */
const FIXED_RESERVE = 96 * 1024 ** 2;

const mib = (b: number) => `${Math.round(b / 1024 ** 2)} MiB`;

/**
 * The embeddings of `n` samples must fit beside what the process holds now:
 * checked before they are read. They are held once, in native memory shared
 * with the core (`StoredMatrix`), or not learned on.
 */
export function checkEmbeddingsFit(budget: number, n: number, dim: number, input: string): void {
  const vectors = n * dim * 4;
  const need = process.memoryUsage.rss() + vectors + n * BYTES_PER_SAMPLE + FIXED_RESERVE;
  if (need > budget) {
    throw new OptionError(
      'ERR_OPTION',
      `the memory budget of ${mib(budget)} is too small for ${input}: its ${n} records take ${mib(vectors)} as ${dim}-d embeddings, ${mib(need)} with what the run holds besides; raise --memory-budget`,
    );
  }
}

/**
 * Bytes left for the learner's costs now (the embeddings are held), after
 * the core's copies of the sets it is given as JS arrays (none of a
 * `StoredMatrix`: the dataset's rows and the references are stored), its
 * working copies, and the reserve for the stages to come. The core computes
 * costs from the points in place; its working copies are the anchor's two
 * (the objective's and its costs') and, when there is an own-harm solve
 * (`ownHarmShare` above 0, the core's default unless given), its points,
 * held twice while they are formed, with the harmful reference joined to
 * them. `held` is what the process holds already: its resident set unless
 * given.
 */
export function learnerBudget(
  budget: number,
  sets: { downstream: AnyMatrix; anchor?: AnyMatrix; harmful: AnyMatrix },
  o: { ownHarmShare?: number; held?: number } = {},
): number {
  const n = sets.downstream.rows;
  const held = o.held ?? process.memoryUsage.rss();
  const copies = [sets.downstream, sets.anchor, sets.harmful]
    .filter((m): m is AnyMatrix => m !== undefined && !isStored(m))
    .reduce((bytes, m) => bytes + m.rows * m.cols * 4, 0);
  const [a, h] = [sets.anchor?.rows ?? 0, sets.harmful.rows];
  const own = native.ownHarmCount(n, o.ownHarmShare ?? coreDefaults().learner.ownHarmShare);
  const working = (2 * a + (own > 0 ? h + 2 * own : 0)) * sets.harmful.cols * 4;
  const left = budget - held - copies - working - n * BYTES_PER_SAMPLE - FIXED_RESERVE;
  if (left <= 0) {
    const parts = [
      `the process holds ${mib(held)}`,
      ...(copies > 0 ? [`the core's copies of the embeddings it is given as arrays take ${mib(copies)}`] : []),
      `its working copies of the references${own > 0 ? ` and of the data's ${own} own-harm points` : ''} take ${mib(working)}`,
    ];
    throw new OptionError(
      'ERR_OPTION',
      `the memory budget of ${mib(budget)} is used up before learning (${parts.join(', ')}); raise --memory-budget`,
    );
  }
  return left;
}

/** Peak resident memory of the process so far, in bytes. */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}
