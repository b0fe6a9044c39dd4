// File format from the extension, with a look inside `.json` files because
// JSON Lines files are often named `.json`.
import { extname } from 'node:path';
import { OptionError } from '../errors.js';
import { readLines } from './lines.js';
import { isRecord } from './raw.js';
import { detectLayout } from './records.js';
import type { FileFormat } from './types.js';

export const FILE_FORMATS: readonly FileFormat[] = ['jsonl', 'json', 'csv', 'tsv', 'parquet'];

const EXTENSIONS: Record<string, FileFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.jsonlines': 'jsonl',
  '.json': 'json',
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.parquet': 'parquet',
  '.pq': 'parquet',
};

/** The format an extension names, or undefined. */
export function formatFromExtension(path: string): FileFormat | undefined {
  return EXTENSIONS[extname(path).toLowerCase()];
}

/**
 * A `.json` whose first non-blank line is a complete JSON object followed by
 * more content is JSON Lines; so is a one-line file whose object is a record
 * (rather than a wrapper like `{ "data": [...] }`).
 */
async function looksLikeJsonl(path: string, limit?: number): Promise<boolean> {
  let first: unknown;
  for await (const { text, unreadable } of readLines(path, path, limit)) {
    if (unreadable !== undefined) return false; // read as JSON, which reports it
    const t = text.trim();
    if (t === '') continue;
    if (first !== undefined) return true;
    if (!t.startsWith('{')) return false;
    try {
      first = JSON.parse(t);
    } catch {
      return false;
    }
    if (!isRecord(first)) return false;
  }
  return first !== undefined && detectLayout(first as Record<string, unknown>) !== undefined;
}

/** The file format: the option if given, else from the extension (sniffing `.json`). */
export async function resolveFormat(path: string, format?: FileFormat, maxLineBytes?: number): Promise<FileFormat> {
  if (format !== undefined) {
    if (!FILE_FORMATS.includes(format))
      throw new OptionError(
        'ERR_OPTION',
        `format must be one of ${FILE_FORMATS.join(', ')}, got ${JSON.stringify(format)}`,
      );
    return format;
  }
  const byName = formatFromExtension(path);
  if (byName === undefined) {
    throw new OptionError(
      'ERR_OPTION',
      `cannot tell the format of ${path} from its extension: use .jsonl, .json, .csv, .tsv or .parquet, or set the format`,
    );
  }
  if (byName === 'json' && (await looksLikeJsonl(path, maxLineBytes))) return 'jsonl';
  return byName;
}
