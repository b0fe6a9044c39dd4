// Parquet through hyparquet, one row group at a time so that only one group's
// rows are in memory. The records' values serve the record layer (text);
// the writer copies the columns themselves (parquet-write.ts).
import { checkParts } from './parts.js';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { InputError } from '../errors.js';
import { ioError } from './lines.js';
import { checkPassthrough } from './parquet-write.js';
import { type FileShape, type RawItem, isRecord } from './raw.js';
import { type RowGroupRange, checkRowGroupRange, splitRowGroups } from './row-groups.js';

async function metadataOf(path: string, file: string) {
  let buffer;
  try {
    buffer = await asyncBufferFromFile(path);
  } catch (err) {
    throw ioError(file, err);
  }
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new InputError({ file }, `not a readable Parquet file: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  return { buffer, metadata };
}

/**
 * Splits a Parquet file into at most `parts` runs of consecutive row groups
 * with about equal record counts, from its footer alone, each readable alone
 * with `openDataset(path, { range })`. A file with fewer row groups than
 * `parts` gives fewer runs.
 */
export async function rowGroupRanges(path: string, parts: number): Promise<RowGroupRange[]> {
  checkParts(parts);
  return splitRowGroups((await metadataOf(path, path)).metadata, parts);
}

/** The file's rows, or those of a run of its row groups (the others are skipped unread), with their file lines. */
export async function* readParquet(
  path: string,
  file: string,
  shape: FileShape,
  run?: RowGroupRange,
): AsyncGenerator<RawItem> {
  const { buffer, metadata } = await metadataOf(path, file);
  checkPassthrough(metadata, file); // refused at open, before any work
  if (run) checkRowGroupRange(run, metadata, file);
  shape.parquet = { file: buffer, metadata, name: file };
  const first = run?.group ?? 0;
  const end = run ? first + run.groups : metadata.row_groups.length;
  let rowStart = 0;
  for (let g = 0; g < first; g++) rowStart += Number(metadata.row_groups[g]!.num_rows);
  for (let g = first; g < end; g++) {
    const rowEnd = rowStart + Number(metadata.row_groups[g]!.num_rows);
    let rows: Record<string, unknown>[];
    try {
      // hyparquet reads only the row groups that overlap the rows asked for
      rows = await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, compressors });
    } catch (err) {
      const what = err instanceof Error ? err.message : String(err);
      throw new InputError(
        { file, line: rowStart + 1 },
        `cannot decode row group ${g} (rows ${rowStart + 1}-${rowEnd}): ${what}`,
        { cause: err },
      );
    }
    for (let i = 0; i < rows.length; i++) {
      const value = rows[i];
      if (isRecord(value)) yield { line: rowStart + i + 1, value };
    }
    rowStart = rowEnd;
  }
}
