/** Stable error codes, shared with the Rust core. */
export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_NON_FINITE'
  | 'ERR_EMPTY'
  | 'ERR_WEIGHT'
  | 'ERR_OPTION'
  | 'ERR_ZERO_NORM'
  | 'ERR_ABORTED'
  | 'ERR_NUMERIC'
  | 'ERR_INTERNAL'
  | 'ERR_INPUT'
  | 'ERR_IO'
  | 'ERR_FETCH'
  | 'ERR_BINDING';

/** Base class of every error SOT throws; branch on `code` or on the subclass. */
export class SotError extends Error {
  readonly code: ErrorCode;
  /** Row (or element) index of the offending input, when there is one. */
  readonly index?: number;

  constructor(code: ErrorCode, message: string, options?: { index?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options?.index !== undefined) this.index = options.index;
  }
}

/** Dimensions that do not agree (rows, columns, weight lengths). */
export class ShapeError extends SotError {}
/** A NaN or infinite input value. */
export class NonFiniteError extends SotError {}
/** A set with no points, or points of dimension 0. */
export class EmptyInputError extends SotError {}
/** A weight that is zero, negative or not finite. */
export class WeightError extends SotError {}
/** An option out of its range or of the wrong type. */
export class OptionError extends SotError {}
/** A zero vector under the cosine cost. */
export class ZeroNormError extends SotError {}
/** The solver produced a non-finite value despite its safeguards. */
export class NumericError extends SotError {}
/** A bug in SOT (a caught Rust panic): please report it. */
export class InternalError extends SotError {}
/** The operation was cancelled through its `AbortSignal`. */
export class AbortError extends SotError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ERR_ABORTED', message, options);
    this.name = 'AbortError';
  }
}

/** Where in an input file a problem sits. */
export interface InputLocation {
  /** The file as the user named it. */
  file: string;
  /** 1-based line (JSONL, CSV) or 1-based record number (JSON arrays, Parquet rows). */
  line?: number;
  /** The field that was missing or of the wrong type. */
  field?: string;
}

/**
 * Bad dataset or reference content: a malformed line, a missing or mistyped
 * field, an unknown record format. The message starts with `file:line:`.
 */
export class InputError extends SotError {
  readonly file: string;
  readonly line?: number;
  readonly field?: string;

  constructor(where: InputLocation, what: string, options?: { index?: number; cause?: unknown }) {
    const at = where.line === undefined ? where.file : `${where.file}:${where.line}`;
    super('ERR_INPUT', `${at}: ${what}`, options);
    this.file = where.file;
    if (where.line !== undefined) this.line = where.line;
    if (where.field !== undefined) this.field = where.field;
  }
}

/** A file-system failure: a missing input, an unwritable output, an output that would overwrite the input. */
export class IoError extends SotError {
  readonly path?: string;
  constructor(message: string, options?: { path?: string; cause?: unknown }) {
    super('ERR_IO', message, options);
    if (options?.path !== undefined) this.path = options.path;
  }
}

/** A named reference set could not be obtained: network failure, HTTP error or checksum mismatch. */
export class FetchError extends SotError {
  readonly url?: string;
  constructor(message: string, options?: { url?: string; cause?: unknown }) {
    super('ERR_FETCH', message, options);
    if (options?.url !== undefined) this.url = options.url;
  }
}

/** No native addon (nor the WebAssembly build) loads on this platform; the message says why and what to install. */
export class BindingError extends SotError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_BINDING', message, options);
  }
}

/** Native codes and their classes (the TS-only codes never come from the binding). */
const classes: Partial<
  Record<ErrorCode, new (code: ErrorCode, message: string, options?: { index?: number; cause?: unknown }) => SotError>
> = {
  ERR_SHAPE: ShapeError,
  ERR_NON_FINITE: NonFiniteError,
  ERR_EMPTY: EmptyInputError,
  ERR_WEIGHT: WeightError,
  ERR_OPTION: OptionError,
  ERR_ZERO_NORM: ZeroNormError,
  ERR_ABORTED: SotError,
  ERR_NUMERIC: NumericError,
  ERR_INTERNAL: InternalError,
};

/** Turns an error thrown by the native binding into its typed class; other values pass through. */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof SotError) return err;
  const { code, index } = err as Error & { code?: unknown; index?: unknown };
  if (code === 'ERR_ABORTED') return new AbortError(err.message, { cause: err });
  if (typeof code !== 'string' || !(code in classes)) return err;
  const Cls = classes[code as ErrorCode];
  if (Cls === undefined) return err;
  return new Cls(code as ErrorCode, err.message, { index: typeof index === 'number' ? index : undefined, cause: err });
}
