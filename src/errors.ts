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
  | 'ERR_INTERNAL';

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

const classes: Record<ErrorCode, new (code: ErrorCode, message: string, options?: { index?: number; cause?: unknown }) => SotError> = {
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
  return new Cls(code as ErrorCode, err.message, { index: typeof index === 'number' ? index : undefined, cause: err });
}
