// writeDataset: re-reads the source and writes the kept records, in input
// order and in the input's format, each unchanged apart from the weight field.
import { AbortError, InputError, OptionError } from '../errors.js';
import { type AtomicWriter, withAtomicWriter } from './atomic.js';
import { assertNotSameFile } from './collisions.js';
import type { Dataset, RawRow } from './dataset.js';
import { formatFromExtension } from './format.js';
import { parquetSink } from './parquet-write.js';
import type { FileShape } from './raw.js';
import type { FileFormat } from './types.js';

export { writeFileAtomic, openAtomicWriter, withAtomicWriter, type AtomicWriter } from './atomic.js';
export { assertNotSameFile } from './collisions.js';

/** The weight field when none is given. */
export const DEFAULT_WEIGHT_FIELD = 'sot_weight';

export interface WriteDatasetOptions {
  /** Records to write, by `SourceRecord.index`, with their training weight. */
  keep: Map<number, number> | ((index: number) => number | undefined);
  /** Field that receives the weight; `null` writes the records without one. Default `sot_weight`. */
  weightField?: string | null;
  signal?: AbortSignal;
  /** Called with the number of source records read so far (every 1000 and at the end). */
  onProgress?: (done: number) => void;
}

export interface WriteDatasetResult {
  path: string;
  format: FileFormat;
  /** Records written. */
  written: number;
}

interface Sink {
  /** Adds one kept record. */
  add(row: RawRow, weight: number | undefined): Promise<void>;
  /** Writes whatever the format needs after the last record. */
  end(): Promise<void>;
}

/**
 * The error for a record that already has the weight field: writing the
 * weight would replace the user's value without a word.
 */
export function weightFieldTaken(file: string, line: number, field: string): InputError {
  const how = field === DEFAULT_WEIGHT_FIELD ? `the default weight field "${field}" (was it purified before?)` : `the weight field "${field}"`;
  return new InputError(
    { file, line, field },
    `the record already has ${how}, and writing the training weight there would replace its value; pick another --weight-field (weightField), or write no weights with --no-weight-field (weightField: null)`,
  );
}

/** The weight field an option names: the default for undefined, null for none; OptionError for anything else. */
export function weightFieldOf(option: string | null | undefined): string | null {
  const field = option === undefined ? DEFAULT_WEIGHT_FIELD : option;
  if (field !== null && (typeof field !== 'string' || field === '')) throw new OptionError('ERR_OPTION', 'weightField must be a non-empty string or null');
  return field;
}

/**
 * Writes the records of `source` that `keep` names to `outPath`, atomically
 * (an error or abort leaves no partial file and an existing file untouched).
 * Throws `IoError` when `outPath` is the input itself, is not a regular file,
 * or the input changed since it was opened; `OptionError` for bad options (a
 * weight that is not a finite number, an output extension of another
 * format); `InputError` for a record that already has the weight field.
 * JSON records are re-serialised with `JSON.stringify`; JSONL and CSV records
 * keep their original text. Parquet output keeps the input's schema.
 */
export async function writeDataset(source: Dataset, outPath: string, options: WriteDatasetOptions): Promise<WriteDatasetResult> {
  checkOutputFormat(source, outPath);
  weightFieldOf(options.weightField);
  await assertNotSameFile(source.path, outPath);
  const written = await withAtomicWriter(outPath, (out) => writeRecords(source, out, options), options.signal);
  return { path: outPath, format: source.format, written };
}

/** An output extension of another format is refused: the output is written in the input's format. */
export function checkOutputFormat(source: Dataset, outPath: string): void {
  const outFormat = formatFromExtension(outPath);
  if (outFormat !== undefined && outFormat !== source.format && outFormat !== formatFromExtension(source.path)) {
    throw new OptionError('ERR_OPTION', `${outPath} names a ${outFormat} file but the input is ${source.format}: the output is written in the input's format`);
  }
}

/** @internal Writes the kept records to an open (uncommitted) writer; resolves to the number written. */
export async function writeRecords(source: Dataset, out: AtomicWriter, options: WriteDatasetOptions): Promise<number> {
  const { keep, signal, onProgress } = options;
  const weightField = weightFieldOf(options.weightField);
  if (!(keep instanceof Map) && typeof keep !== 'function') throw new OptionError('ERR_OPTION', 'keep must be a Map or a function of the record index');

  const weightOf = (index: number): number | undefined => {
    const w = keep instanceof Map ? keep.get(index) : keep(index);
    if (w !== undefined && (typeof w !== 'number' || !Number.isFinite(w))) {
      throw new OptionError('ERR_OPTION', `keep gives record ${index} the weight ${String(w)}; weights must be finite numbers`);
    }
    return w;
  };

  let written = 0;
  const shape: FileShape = {};
  const sink = sinkFor(source.format, out, shape, weightField);
  let read = 0;
  let maxIndex = -1;
  for await (const row of source.rows(shape)) {
    if (signal?.aborted) throw new AbortError();
    if (weightField !== null && Object.hasOwn(row.record.value, weightField)) throw weightFieldTaken(source.path, row.record.line, weightField);
    read++;
    maxIndex = row.record.index;
    const w = weightOf(row.record.index);
    if (w !== undefined) {
      await sink.add(row, w);
      written++;
    }
    if (read % 1000 === 0) onProgress?.(read);
  }
  if (keep instanceof Map) {
    for (const index of keep.keys()) {
      if (!Number.isInteger(index) || index < 0 || index > maxIndex) {
        throw new OptionError('ERR_OPTION', `keep names record ${index} but ${source.path} has ${maxIndex + 1} records`);
      }
    }
  }
  await sink.end();
  onProgress?.(read);
  return written;
}

function sinkFor(format: FileFormat, out: AtomicWriter, shape: FileShape, weightField: string | null): Sink {
  switch (format) {
    case 'jsonl':
      return {
        add: (row, w) => out.write(`${jsonlLine(row, weightField, w)}\n`),
        end: async () => {},
      };
    case 'json':
      return jsonSink(out, shape, weightField);
    case 'csv':
      return csvSink(out, shape, weightField, ',');
    case 'tsv':
      return csvSink(out, shape, weightField, '\t');
    case 'parquet':
      return parquetSink(out, () => shape.parquet, weightField);
  }
}

function withWeight(value: Record<string, unknown>, field: string | null, w: number | undefined): Record<string, unknown> {
  return field === null ? value : { ...value, [field]: w };
}

/** The original line with `,"field":w` spliced before its closing brace. */
function jsonlLine(row: RawRow, field: string | null, w: number | undefined): string {
  const { raw } = row;
  const value = row.record.value;
  if (field === null && typeof raw === 'string') return raw;
  if (field === null || typeof raw !== 'string' || Object.hasOwn(value, field)) return JSON.stringify(withWeight(value, field, w));
  const body = raw.slice(0, -1).trimEnd();
  const sep = body === '{' ? '' : ',';
  return `${body}${sep}${JSON.stringify(field)}:${JSON.stringify(w)}}`;
}

function jsonSink(out: AtomicWriter, shape: FileShape, field: string | null): Sink {
  let first = true;
  const open = () => {
    const c = shape.container;
    if (c === undefined) return '[\n';
    const rest = JSON.stringify(c.rest);
    return `${rest.slice(0, -1)}${rest === '{}' ? '' : ','}${JSON.stringify(c.key)}:[\n`;
  };
  return {
    add: async (row, w) => {
      const head = first ? open() : ',\n';
      first = false;
      await out.write(head + JSON.stringify(withWeight(row.record.value, field, w)));
    },
    end: () => out.write(`${first ? open() : ''}\n]${shape.container ? '}' : ''}\n`),
  };
}

function csvCell(cell: string, delimiter: string): string {
  return cell.includes('"') || cell.includes(delimiter) || cell.includes('\n') || cell.includes('\r') ? `"${cell.replaceAll('"', '""')}"` : cell;
}

function csvSink(out: AtomicWriter, shape: FileShape, field: string | null, delimiter: string): Sink {
  let column = -1; // the weight's column; appended when the header lacks it
  let eol = '\n';
  let started = false;
  const line = (cells: string[]) => cells.map((c) => csvCell(c, delimiter)).join(delimiter) + eol;
  const start = async () => {
    started = true;
    const header = shape.header;
    if (header === undefined) return;
    eol = header.crlf ? '\r\n' : '\n';
    const cells = [...header.cells];
    if (field !== null) {
      column = cells.indexOf(field);
      if (column === -1) column = cells.push(field) - 1;
    }
    await out.write(line(cells));
  };
  return {
    add: async (row, w) => {
      if (!started) await start();
      const cells = [...(row.raw as string[])];
      if (field !== null) cells[column] = String(w);
      await out.write(line(cells));
    },
    end: async () => {
      if (!started) await start();
    },
  };
}
