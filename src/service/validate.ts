import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { HttpError } from './errors.js';
import { jobOptionsSchema, pathSubmissionSchema } from './schemas.js';

// No coercion and no removal: a misspelt or mistyped option is an error, not a silent default.
const ajv = new Ajv2020({
  allErrors: false,
  strict: false,
  coerceTypes: false,
  removeAdditional: false,
  useDefaults: false,
});
const validators = { options: ajv.compile(jobOptionsSchema), pathSubmission: ajv.compile(pathSubmissionSchema) };

function describe(e: ErrorObject | undefined, what: string): string {
  if (!e) return `${what} is invalid`;
  const at = `${what}${e.instancePath}`;
  if (e.keyword === 'additionalProperties')
    return `${at}: unknown option '${(e.params as { additionalProperty: string }).additionalProperty}'`;
  if (e.keyword === 'enum')
    return `${at} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${at} ${e.message ?? 'is invalid'}`;
}

function check<T>(v: ValidateFunction, value: unknown, what: string): T {
  if (!v(value)) throw new HttpError(400, 'ERR_OPTION', describe(v.errors?.[0], what));
  return value as T;
}

export const checkOptions = <T>(value: unknown) => check<T>(validators.options, value, 'options');
export const checkPathSubmission = <T>(value: unknown) => check<T>(validators.pathSubmission, value, 'body');
