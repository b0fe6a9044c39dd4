// What the file readers hand to the record layer: one parsed object per
// record, or the error that made it unreadable (so skipInvalid can go on).
import type { InputError } from '../errors.js';
import type { ParquetSource } from './parquet-write.js';

export interface RawItem {
  /** 1-based line (JSONL, CSV: where the record starts) or record number (JSON, Parquet). */
  line: number;
  value?: Record<string, unknown>;
  /** JSONL: the line's text, so the writer can keep the record byte for byte. CSV: the row's cells. */
  raw?: string | string[];
  error?: InputError;
}

/** What a reader learns about the file as a whole; the writer needs it to write the same shape. */
export interface FileShape {
  /** CSV/TSV: the header's cells and whether lines ended with CRLF. */
  header?: { cells: string[]; crlf: boolean };
  /** JSON: the wrapper object when the records sit in one of its properties. */
  container?: { key: string; rest: Record<string, unknown> };
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
