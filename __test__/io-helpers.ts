// Shared helpers of the io tests: temp dirs and reading a dataset whole.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { type DatasetRow, type OpenDatasetOptions, openDataset } from '../src/io/index.js';

/** The shared data folder, read in place (never copied into the repository). */
export { DATA_DIR as DATA } from './datasets.js';

/** A fresh temp dir removed after the file's tests. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sot-io-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `content` to `dir/name` and returns the path. */
export function put(dir: string, name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

export async function readAll(path: string, options?: OpenDatasetOptions): Promise<DatasetRow[]> {
  const ds = await openDataset(path, options);
  const rows: DatasetRow[] = [];
  for await (const row of ds) rows.push(row);
  return rows;
}

export const jsonl = (records: unknown[]) => `${records.map((r) => JSON.stringify(r)).join('\n')}\n`;
