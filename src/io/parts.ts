import { OptionError } from '../errors.js';

/**
 * The most parts a file splits into (the shards of a run): far more than a
 * fleet runs at once, and small enough that the parts' boundaries are
 * always a small table.
 */
export const MAX_PARTS = 65_536;

/** `parts` as a count of parts, or an `OptionError` naming `name`. */
export function checkParts(parts: unknown, name = 'parts'): number {
  if (!(typeof parts === 'number' && Number.isInteger(parts) && parts >= 1 && parts <= MAX_PARTS))
    throw new OptionError('ERR_OPTION', `${name} must be an integer from 1 to ${MAX_PARTS}, got ${String(parts)}`);
  return parts;
}
