// Parquet through hyparquet, one row group at a time so that only one group's
// rows are in memory. The records' values serve the record layer (text);
// the writer copies the columns themselves (parquet-write.ts).
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { InputError } from '../errors.js';
import { ioError } from './lines.js';
import { checkPassthrough } from './parquet-write.js';
import { type FileShape, type RawItem, isRecord } from './raw.js';

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

export async function* readParquet(path: string, file: string, shape: FileShape): AsyncGenerator<RawItem> {
  const { buffer, metadata } = await metadataOf(path, file);
  checkPassthrough(metadata, file); // refused at open, before any work
  shape.parquet = { file: buffer, metadata, name: file };
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, compressors });
    } catch (err) {
      const what = err instanceof Error ? err.message : String(err);
      throw new InputError(
        { file, line: rowStart + 1 },
        `cannot decode the row group of rows ${rowStart + 1}-${rowEnd}: ${what}`,
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
