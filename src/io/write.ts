// writeDataset: re-reads the source and writes the kept records, in input
// order and in the input's format, each unchanged apart from the weight field.
import { AbortError, OptionError } from '../errors.js';
import { type AtomicWriter, assertNotSameFile, withAtomicWriter } from './atomic.js';
import type { Dataset, RawRow } from './dataset.js';
import { formatFromExtension } from './format.js';
import { parquetSink } from './parquet-write.js';
import type { FileShape } from './raw.js';
import type { FileFormat } from './types.js';

export { writeFileAtomic, openAtomicWriter, withAtomicWriter, assertNotSameFile, type AtomicWriter } from './atomic.js';

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
 * Writes the records of `source` that `keep` names to `outPath`, atomically
 * (an error or abort leaves no partial file and an existing file untouched).
 * Throws `IoError` when `outPath` is the input itself or the input changed
 * since it was opened, `OptionError` for bad options (a weight that is not a
 * finite number, an output extension of another format).
 * JSON records are re-serialised with `JSON.stringify`; JSONL and CSV records
 * keep their original text. Parquet output keeps the input's schema.
 */
export async function writeDataset(source: Dataset, outPath: string, options: WriteDatasetOptions): Promise<WriteDatasetResult> {
  const { keep, signal, onProgress } = options;
  const weightField = options.weightField === undefined ? 'sot_weight' : options.weightField;
  if (weightField !== null && (typeof weightField !== 'string' || weightField === '')) {
    throw new OptionError('ERR_OPTION', 'weightField must be a non-empty string or null');
  }
  if (!(keep instanceof Map) && typeof keep !== 'function') throw new OptionError('ERR_OPTION', 'keep must be a Map or a function of the record index');
  const outFormat = formatFromExtension(outPath);
  if (outFormat !== undefined && outFormat !== source.format && outFormat !== formatFromExtension(source.path)) {
    throw new OptionError('ERR_OPTION', `${outPath} names a ${outFormat} file but the input is ${source.format}: the output is written in the input's format`);
  }
  await assertNotSameFile(source.path, outPath);

  const weightOf = (index: number): number | undefined => {
    const w = keep instanceof Map ? keep.get(index) : keep(index);
    if (w !== undefined && (typeof w !== 'number' || !Number.isFinite(w))) {
      throw new OptionError('ERR_OPTION', `keep gives record ${index} the weight ${String(w)}; weights must be finite numbers`);
    }
    return w;
  };

  let written = 0;
  await withAtomicWriter(
    outPath,
    async (out) => {
      const shape: FileShape = {};
      const sink = sinkFor(source.format, out, shape, weightField);
      let read = 0;
      let maxIndex = -1;
      for await (const row of source.rows(shape)) {
        if (signal?.aborted) throw new AbortError();
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
    },
    signal,
  );
  return { path: outPath, format: source.format, written };
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
