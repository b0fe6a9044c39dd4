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
  /** Adds one kept record with the values of the added fields. */
  add(row: RawRow, values: ColumnValue[]): Promise<void>;
  /** Writes whatever the format needs after the last record. */
  end(): Promise<void>;
}

/**
 * The error for a record that already has the weight field: writing the
 * weight would replace the user's value without a word.
 */
export function weightFieldTaken(file: string, line: number, field: string): InputError {
  const how =
    field === DEFAULT_WEIGHT_FIELD
      ? `the default weight field "${field}" (was it purified before?)`
      : `the weight field "${field}"`;
  return new InputError(
    { file, line, field },
    `the record already has ${how}, and writing the training weight there would replace its value; pick another --weight-field (weightField), or write no weights with --no-weight-field (weightField: null)`,
  );
}

/** The weight field an option names: the default for undefined, null for none; OptionError for anything else. */
export function weightFieldOf(option: string | null | undefined): string | null {
  const field = option === undefined ? DEFAULT_WEIGHT_FIELD : option;
  if (field !== null && (typeof field !== 'string' || field === ''))
    throw new OptionError('ERR_OPTION', 'weightField must be a non-empty string or null');
  return field;
}

/**
 * Writes the records of `source` that `keep` names to `outPath`, atomically
 * (an error or abort leaves no partial file and an existing file untouched).
 * Throws `IoError` when `outPath` is the input itself, is not a regular file,
 * or the input changed since it was opened; `OptionError` for bad options (a
 * weight that is not a finite number, an output extension of another
 * format); `InputError` for a record that already has the weight field.
 * JSONL, JSON and CSV records keep their original text (a JSON file's
 * records in the array of its layout, one per line). Parquet output keeps
 * the input's schema.
 */
export async function writeDataset(
  source: Dataset,
  outPath: string,
  options: WriteDatasetOptions,
): Promise<WriteDatasetResult> {
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
    throw new OptionError(
      'ERR_OPTION',
      `${outPath} names a ${outFormat} file but the input is ${source.format}: the output is written in the input's format`,
    );
  }
}

/** @internal Writes the kept records to an open (uncommitted) writer; resolves to the number written. */
export async function writeRecords(source: Dataset, out: AtomicWriter, options: WriteDatasetOptions): Promise<number> {
  const { keep } = options;
  const weightField = weightFieldOf(options.weightField);
  if (!(keep instanceof Map) && typeof keep !== 'function')
    throw new OptionError('ERR_OPTION', 'keep must be a Map or a function of the record index');

  const weightOf = (index: number): number | undefined => {
    const w = keep instanceof Map ? keep.get(index) : keep(index);
    if (w !== undefined && (typeof w !== 'number' || !Number.isFinite(w))) {
      throw new OptionError(
        'ERR_OPTION',
        `keep gives record ${index} the weight ${String(w)}; weights must be finite numbers`,
      );
    }
    return w;
  };
  const columns: RecordColumns = {
    fields: weightField === null ? [] : [{ name: weightField, type: 'double' }],
    values: (index) => {
      const w = weightOf(index);
      return w === undefined ? undefined : weightField === null ? [] : [w];
    },
    taken: (line, field) => weightFieldTaken(source.path, line, field),
  };
  const { read, written, maxIndex } = await writeColumns(source, out, columns, options);
  if (keep instanceof Map) {
    for (const index of keep.keys()) {
      if (!Number.isInteger(index) || index < 0 || index > maxIndex) {
        throw new OptionError('ERR_OPTION', `keep names record ${index} but ${source.path} has ${read} records`);
      }
    }
  }
  return written;
}

/** @internal A value of an added field: a finite number for a `double` field, text for a `string` one. */
export type ColumnValue = number | string;

/** @internal A field added to each written record, and the type of its values (a Parquet column's type). */
export interface AddedField {
  name: string;
  type: 'double' | 'string';
}

/** @internal Fields added to each written record (the weight; the removed file's score, rank, pull, push, reason). */
export interface RecordColumns {
  /** The fields, appended in this order. */
  fields: AddedField[];
  /** The values of a record to write (one per field, of its type), or undefined to leave it out. */
  values: (index: number) => ColumnValue[] | undefined;
  /** The error for a record that already has one of the fields. */
  taken: (line: number, field: string) => Error;
}

/**
 * @internal Which part of a file a writer writes: a fragment of it that is
 * later joined with the others in order (a sharded run's shards) writes the
 * head (CSV header, JSON opening) only when it is the first, the tail only
 * when the last, and separates its first record when records came before it.
 */
export interface FilePart {
  /** Write the file's head (the first fragment). */
  head: boolean;
  /** Write the file's tail (the last fragment). */
  tail: boolean;
  /** Records of earlier fragments precede this one's. */
  after: boolean;
}

/** @internal The whole file: head, records and tail. */
export const WHOLE_FILE: FilePart = { head: true, tail: true, after: false };

/** @internal One output of a pass over the records: a writer, the records and added fields it takes, the part of its file. */
export interface ColumnsTarget {
  out: AtomicWriter;
  columns: RecordColumns;
  part?: FilePart;
}

/** @internal Writes the records `columns.values` names, with those values, to an open writer. */
export async function writeColumns(
  source: Dataset,
  out: AtomicWriter,
  columns: RecordColumns,
  options: { signal?: AbortSignal; onProgress?: (done: number) => void } = {},
): Promise<{ read: number; written: number; maxIndex: number }> {
  const { read, written, maxIndex } = await writeColumnsTo(source, [{ out, columns }], options);
  return { read, written: written[0]!, maxIndex };
}

/**
 * @internal Writes several outputs in one pass over the records of `source`
 * (optionally only records `from <= index < to`, read from the head): each
 * target gets the records its `columns.values` names.
 */
export async function writeColumnsTo(
  source: Dataset,
  targets: ColumnsTarget[],
  options: { signal?: AbortSignal; onProgress?: (done: number) => void; range?: { from: number; to: number } } = {},
): Promise<{ read: number; written: number[]; maxIndex: number }> {
  const { signal, onProgress, range } = options;
  const written = targets.map(() => 0);
  const shape: FileShape = {};
  const sinks = targets.map((t) => ({
    names: t.columns.fields.map((f) => f.name),
    sink: sinkFor(source.format, t.out, shape, t.columns.fields, t.part ?? WHOLE_FILE),
  }));
  let read = 0;
  let maxIndex = -1;
  for await (const row of source.rows(shape)) {
    if (signal?.aborted) throw new AbortError();
    const index = row.record.index;
    if (range && index < range.from) continue;
    if (range && index >= range.to) break;
    for (const [j, { names }] of sinks.entries())
      for (const name of names)
        if (Object.hasOwn(row.record.value, name)) throw targets[j]!.columns.taken(row.record.line, name);
    read++;
    maxIndex = index;
    for (const [j, { sink }] of sinks.entries()) {
      const v = targets[j]!.columns.values(index);
      if (v !== undefined) {
        await sink.add(row, v);
        written[j]!++;
      }
    }
    if (read % 1000 === 0) onProgress?.(read);
  }
  for (const { sink } of sinks) await sink.end();
  onProgress?.(read);
  return { read, written, maxIndex };
}

function sinkFor(format: FileFormat, out: AtomicWriter, shape: FileShape, added: AddedField[], part: FilePart): Sink {
  const fields = added.map((f) => f.name);
  switch (format) {
    case 'jsonl':
      return {
        add: (row, v) => out.write(`${recordText(row, fields, v)}\n`),
        end: async () => {},
      };
    case 'json':
      return jsonSink(out, shape, fields, part);
    case 'csv':
      return csvSink(out, shape, fields, ',', part);
    case 'tsv':
      return csvSink(out, shape, fields, '\t', part);
    case 'parquet':
      // a Parquet file's footer indexes every row group: its parts do not join by concatenation
      if (!(part.head && part.tail))
        throw new OptionError('ERR_OPTION', 'a Parquet file is written whole, not in parts');
      return parquetSink(out, () => shape.parquet, added);
  }
}

function withFields(value: Record<string, unknown>, fields: string[], v: ColumnValue[]): Record<string, unknown> {
  if (fields.length === 0) return value;
  const out = { ...value };
  // defined, not assigned: a field named __proto__ is a field, not the prototype
  fields.forEach((f, i) =>
    Object.defineProperty(out, f, { value: v[i], enumerable: true, writable: true, configurable: true }),
  );
  return out;
}

/** The record's original text (a JSONL line, a JSON element) with `,"field":value` for each field spliced before its closing brace. */
function recordText(row: RawRow, fields: string[], v: ColumnValue[]): string {
  const { raw } = row;
  const value = row.record.value;
  if (fields.length === 0 && typeof raw === 'string') return raw;
  if (typeof raw !== 'string' || fields.some((f) => Object.hasOwn(value, f)))
    return JSON.stringify(withFields(value, fields, v));
  const object = raw.trimEnd(); // what follows its closing brace (spaces) is kept after it
  const body = object.slice(0, -1).trimEnd();
  const added = fields.map((f, i) => `${JSON.stringify(f)}:${JSON.stringify(v[i])}`).join(',');
  const sep = body.trimStart() === '{' ? '' : ',';
  return `${body}${sep}${added}}${raw.slice(object.length)}`;
}

function jsonSink(out: AtomicWriter, shape: FileShape, fields: string[], part: FilePart): Sink {
  let first = !part.after;
  let head = part.head; // written before the first record (or at the end): the container is known once reading began
  const open = () => {
    if (!head) return '';
    head = false;
    return `${shape.container?.head ?? ''}[\n`;
  };
  return {
    add: async (row, v) => {
      const sep = first ? '' : ',\n';
      first = false;
      await out.write(open() + sep + recordText(row, fields, v));
    },
    end: () => out.write(`${open()}${part.tail ? `\n]${shape.container?.tail ?? '\n'}` : ''}`),
  };
}

function csvCell(cell: string, delimiter: string): string {
  return cell.includes('"') || cell.includes(delimiter) || cell.includes('\n') || cell.includes('\r')
    ? `"${cell.replaceAll('"', '""')}"`
    : cell;
}

function csvSink(out: AtomicWriter, shape: FileShape, fields: string[], delimiter: string, part: FilePart): Sink {
  let columns: number[] = []; // each field's column; appended when the header lacks it
  let eol = '\n';
  let started = false;
  const line = (cells: string[]) => cells.map((c) => csvCell(c, delimiter)).join(delimiter) + eol;
  const start = async () => {
    started = true;
    const header = shape.header;
    if (header === undefined) return;
    eol = header.crlf ? '\r\n' : '\n';
    const cells = [...header.cells];
    columns = fields.map((f) => {
      const c = cells.indexOf(f);
      return c === -1 ? cells.push(f) - 1 : c;
    });
    if (part.head) await out.write(line(cells));
  };
  return {
    add: async (row, v) => {
      if (!started) await start();
      const cells = [...(row.raw as string[])];
      columns.forEach((c, i) => (cells[c] = String(v[i])));
      await out.write(line(cells));
    },
    end: async () => {
      if (!started) await start();
    },
  };
}
