import { SotError } from '../errors.js';

/** Process exit codes of the `sot` CLI (documented in the README and `sot --help`). */
export const EXIT = {
  ok: 0,
  /** A bug: an unexpected error or a caught Rust panic. */
  internal: 1,
  /** Bad command line: unknown option, bad value, missing argument. */
  usage: 2,
  /** Bad input data: malformed record, missing field, empty text, bad vectors, dimension mismatch. */
  input: 3,
  /** File system: missing input, unwritable output, an output onto a file the run reads or another output, a pipe as a purify output; or a Redis that `--redis` names and that does not answer. */
  io: 4,
  /** A named reference set could not be downloaded or failed its checksum. */
  fetch: 5,
  /** The solver failed numerically. */
  numeric: 6,
  /** No native binary for this platform could be loaded (the message lists the fixes). */
  binding: 7,
  /** Interrupted (SIGINT/SIGTERM or abort); nothing partial was written. */
  aborted: 130,
} as const;

export const EXIT_HELP = `Exit codes:
  0    success
  1    internal error (a bug: please report it)
  2    bad command line (unknown option, bad value)
  3    bad input data (malformed record, missing field, bad vectors)
  4    file-system error (missing input, unwritable output, an output
       onto a file the run reads or onto another output), or the Redis
       of --redis does not answer
  5    reference set download or checksum failure
  6    numerical failure in the solver
  7    no native binary for this platform could be loaded (see the message)
  130  interrupted; no partial output was written`;

export function exitCodeOf(err: unknown): number {
  if (!(err instanceof SotError)) return EXIT.internal;
  switch (err.code) {
    case 'ERR_OPTION':
      return EXIT.usage;
    case 'ERR_INPUT':
    case 'ERR_SHAPE':
    case 'ERR_NON_FINITE':
    case 'ERR_EMPTY':
    case 'ERR_WEIGHT':
    case 'ERR_ZERO_NORM':
      return EXIT.input;
    case 'ERR_IO':
      return EXIT.io;
    case 'ERR_FETCH':
      return EXIT.fetch;
    case 'ERR_NUMERIC':
      return EXIT.numeric;
    case 'ERR_BINDING':
      return EXIT.binding;
    case 'ERR_ABORTED':
      return EXIT.aborted;
    default:
      return EXIT.internal;
  }
}
