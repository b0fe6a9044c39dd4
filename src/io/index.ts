// Dataset IO: readers, record layouts, writers.
export type { FieldMapping, FileFormat, RecordFormat, SampleText, SourceRecord } from './types.js';
export { openDataset, Dataset, type OpenDatasetOptions, type DatasetRow, type SkipReport } from './dataset.js';
export { DEFAULT_MAX_LINE_BYTES, MAX_LINE_BYTES, lineRanges, type ByteRange } from './lines.js';
export { MAX_PARTS } from './parts.js';
export { recordRanges, RANGE_FORMATS, type RecordRangesOptions } from './ranges.js';
export { rowGroupRanges } from './parquet.js';
export type { RowGroupRange } from './row-groups.js';
export { resolveFormat, formatFromExtension, FILE_FORMATS } from './format.js';
export { renderText, checkTemplate, DEFAULT_TEMPLATE, RECORD_FORMATS } from './records.js';
export { writeDataset, type WriteDatasetOptions, type WriteDatasetResult } from './write.js';
export {
  writeFileAtomic,
  openAtomicWriter,
  withAtomicWriter,
  commitAll,
  isTempName,
  type AtomicOptions,
  type AtomicWriter,
  type Chunk,
  type FileDigest,
} from './atomic.js';
export {
  assertNotSameFile,
  assertNoCollision,
  assertWritable,
  identify,
  type FileIdentity,
  type RolePath,
} from './collisions.js';
