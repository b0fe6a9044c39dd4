// What the file readers hand to the record layer: one parsed object per
// record, or the error that made it unreadable (so skipInvalid can go on).
import type { InputError } from '../errors.js';
import type { ParquetSource } from './parquet-write.js';

export interface RawItem {
  /** 1-based line (JSONL, CSV: where the record starts) or record number (JSON, Parquet). */
  line: number;
  value?: Record<string, unknown>;
  /** JSONL, JSON: the record's text, so the writer can keep it byte for byte. CSV: the row's cells. */
  raw?: string | string[];
  error?: InputError;
}

/** What a reader learns about the file as a whole; the writer needs it to write the same shape. */
export interface FileShape {
  /** CSV/TSV: the header's cells, whether lines ended with CRLF, and the line the header row ends on. */
  header?: { cells: string[]; crlf: boolean; end: number };
  /** JSON: the wrapper object's text before and after the records' array, when they sit in one of its properties. */
  container?: { head: string; tail: string };
  /** Parquet: the open file and its metadata, whose columns the writer copies. */
  parquet?: ParquetSource;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `a string`, `an array`, `null` ...: a value's JSON type for error messages. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (v === undefined) return 'missing';
  const t = typeof v === 'bigint' ? 'number' : typeof v;
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

/**
 * Deepest nesting of arrays and objects a JSON-file record may have: such
 * records are written back with JSON.stringify, which recurses once per level
 * and overflows the stack some thousands of levels down (JSONL records are
 * written back as their bytes). No real dataset nests anywhere near this deep.
 */
export const MAX_DEPTH = 1000;

/** The top-level field of a record that nests deeper than MAX_DEPTH, or undefined. Iterative: any depth is safe to check. */
export function tooDeep(record: Record<string, unknown>): string | undefined {
  for (const [field, top] of Object.entries(record)) {
    const stack: Array<[unknown, number]> = [[top, 2]];
    while (stack.length > 0) {
      const [v, depth] = stack.pop()!;
      if (typeof v !== 'object' || v === null) continue;
      if (depth > MAX_DEPTH) return field;
      for (const child of Array.isArray(v) ? v : Object.values(v)) {
        if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
      }
    }
  }
  return undefined;
}

export function tooDeepMessage(field: string): string {
  return `field "${field}" nests arrays or objects more than ${MAX_DEPTH} levels deep, which SOT cannot write back`;
}
