// openDataset: one interface over the file readers and record layouts. The
// dataset is streamed anew on every iteration (the pipeline reads it once to
// embed and once to write), and each pass checks that the file is unchanged.
import { stat } from 'node:fs/promises';
import { InputError, IoError, OptionError } from '../errors.js';
import { readCsv } from './csv.js';
import { resolveFormat } from './format.js';
import { readJson } from './json.js';
import { readJsonl } from './jsonl.js';
import { type ByteRange, ioError, maxLineBytes } from './lines.js';
import { readParquet } from './parquet.js';
import { RANGE_FORMATS } from './ranges.js';
import type { FileShape, RawItem } from './raw.js';
import { type RowGroupRange, checkRowGroupShape, isRowGroupRange } from './row-groups.js';
import { type Layout, detectLayout, extractText, layoutFromOptions, unknownLayout } from './records.js';
import type { FieldMapping, FileFormat, RecordFormat, SampleText, SourceRecord } from './types.js';

export interface OpenDatasetOptions {
  /** File format; default from the extension (a `.json` holding JSON Lines is recognised). */
  format?: FileFormat;
  /** Record layout; default detected from the first valid record. */
  recordFormat?: RecordFormat;
  /** Explicit prompt/response (or text) fields; implies `prompt-response` (or `text`). */
  fields?: FieldMapping;
  /** Skip and count invalid records instead of throwing on the first one. */
  skipInvalid?: boolean;
  /**
   * Longest line (JSONL, CSV) or whole JSON file, in bytes; longer ones are
   * invalid input. Default 256 MiB; at most `MAX_LINE_BYTES` (V8's longest string).
   */
  maxLineBytes?: number;
  /**
   * Read only this part of the file (JSON Lines, CSV or TSV; from
   * `recordRanges`): its records are indexed from 0, their lines keep their
   * numbers in the file. A CSV/TSV range reads its header from the file's
   * start. The record layout is still settled from the file's first valid record.
   * Or only this run of a Parquet file's row groups (from `rowGroupRanges`;
   * the others are skipped undecoded): its records are indexed from 0, their
   * lines are their file rows from 1.
   */
  range?: ByteRange | RowGroupRange;
  /**
   * @internal The layout an earlier open of the same file settled (a sharded
   * run's coordinator's): no record is read at open, so that a range's reader
   * decodes only its own part.
   */
  layout?: Layout;
}

export interface DatasetRow {
  record: SourceRecord;
  text: SampleText;
}

/** Invalid records skipped (with `skipInvalid`) by the pass in progress, or the last one. */
export interface SkipReport {
  count: number;
  /** The first few errors, in file order. */
  first: InputError[];
}

/** @internal A row with what the writer needs to reproduce the record exactly. */
export interface RawRow extends DatasetRow {
  raw?: string | string[];
}

const KEEP_REASONS = 5;

interface Fingerprint {
  size: number;
  mtimeMs: number;
  ino: number;
}

async function fingerprint(path: string): Promise<Fingerprint> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new IoError(`${path} is not a regular file`, { path });
    return { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino };
  } catch (err) {
    throw ioError(path, err);
  }
}

/** A dataset file opened for (repeated) streaming. Create it with `openDataset`. */
export class Dataset implements AsyncIterable<DatasetRow> {
  /** The records' layout, as detected or given. */
  readonly recordFormat: RecordFormat;
  /** The fields the text is taken from (for `messages`/`sharegpt`: the turns' list). */
  readonly fields: FieldMapping;
  /** Invalid records skipped by the pass in progress or the last one. */
  skipped: SkipReport = { count: 0, first: [] };
  /** Valid records found by the last complete pass (undefined before one completes). */
  count: number | undefined;

  /** @internal */
  constructor(
    /** The file, as named by the caller. */
    readonly path: string,
    readonly format: FileFormat,
    /** @internal */ readonly layout: Layout,
    private readonly skipInvalid: boolean,
    private readonly opened: Fingerprint,
    private readonly maxLineBytes: number,
    private readonly range?: ByteRange | RowGroupRange,
  ) {
    this.recordFormat = layout.format;
    this.fields =
      layout.format === 'messages' || layout.format === 'sharegpt'
        ? { prompt: layout.prompt[0]! }
        : layout.format === 'text'
          ? { text: layout.prompt[0]! }
          : {
              prompt: layout.prompt.length === 1 ? layout.prompt[0]! : layout.prompt,
              ...(layout.response === undefined ? {} : { response: layout.response }),
            };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<DatasetRow> {
    for await (const { record, text } of this.rows()) yield { record, text };
  }

  /** @internal Streams the rows with their raw form; `shape` receives what the file says about itself. */
  async *rows(shape: FileShape = {}): AsyncGenerator<RawRow> {
    await this.checkUnchanged();
    const skipped: SkipReport = { count: 0, first: [] };
    this.skipped = skipped;
    let index = 0;
    for await (const item of rawItems(this.path, this.format, shape, this.maxLineBytes, this.range)) {
      let text: SampleText;
      try {
        if (item.error) throw item.error;
        text = extractText(item.value!, this.layout, { file: this.path, line: item.line });
      } catch (err) {
        if (!(err instanceof InputError) || !this.skipInvalid) throw err;
        skipped.count++;
        if (skipped.first.length < KEEP_REASONS) skipped.first.push(err);
        continue;
      }
      const record: SourceRecord = { index: index++, line: item.line, value: item.value! };
      yield item.raw === undefined ? { record, text } : { record, text, raw: item.raw };
    }
    await this.checkUnchanged();
    this.count = index;
  }

  private async checkUnchanged(): Promise<void> {
    const now = await fingerprint(this.path);
    const was = this.opened;
    if (now.size !== was.size || now.mtimeMs !== was.mtimeMs || now.ino !== was.ino) {
      throw new IoError(
        `${this.path} changed while SOT was using it (size or modification time differ from when it was opened); run again on a stable file`,
        { path: this.path },
      );
    }
  }
}

function rawItems(
  path: string,
  format: FileFormat,
  shape: FileShape,
  limit: number,
  range?: ByteRange | RowGroupRange,
): AsyncGenerator<RawItem> {
  const bytes = range && !isRowGroupRange(range) ? range : undefined;
  const groups = range && isRowGroupRange(range) ? range : undefined;
  switch (format) {
    case 'jsonl':
      return readJsonl(path, path, limit, bytes);
    case 'json':
      return readJson(path, path, shape, limit);
    case 'csv':
      return readCsv(path, path, ',', shape, limit, bytes);
    case 'tsv':
      return readCsv(path, path, '\t', shape, limit, bytes);
    case 'parquet':
      return readParquet(path, path, shape, groups);
  }
}

/**
 * Opens a dataset: resolves the file format, then reads up to the first valid
 * record to settle the record layout (unless given). Throws `IoError` for a
 * missing or unreadable file, `OptionError` for bad options, `InputError` for
 * a file with no (valid) records or, without `skipInvalid`, an invalid record
 * before the first valid one.
 */
export async function openDataset(path: string, options: OpenDatasetOptions = {}): Promise<Dataset> {
  const limit = maxLineBytes(options.maxLineBytes);
  const opened = await fingerprint(path);
  const format = await resolveFormat(path, options.format, limit);
  const r = options.range;
  const whole = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
  if (typeof r === 'object' && r !== null && isRowGroupRange(r)) {
    checkRowGroupShape(r);
    if (format !== 'parquet')
      throw new OptionError('ERR_OPTION', `range: only Parquet files are read by row group, ${path} is ${format}`);
  } else if (
    r !== undefined &&
    !(typeof r === 'object' && r !== null && whole(r.start, 0) && whole(r.end, r.start) && whole(r.line, 1))
  )
    throw new OptionError(
      'ERR_OPTION',
      'range must be { start, end, line }: whole numbers with 0 <= start <= end and line >= 1 (from recordRanges)',
    );
  else if (r !== undefined && !RANGE_FORMATS.includes(format))
    throw new OptionError(
      'ERR_OPTION',
      `range: only ${RANGE_FORMATS.join(', ')} files can be read by byte range, ${path} is ${format}`,
    );
  const given = layoutFromOptions(options.recordFormat, options.fields);
  const skipInvalid = options.skipInvalid === true;
  if (options.layout !== undefined) return new Dataset(path, format, options.layout, skipInvalid, opened, limit, r);
  let layout = given;
  let skipped = 0;
  let firstError: InputError | undefined;
  const shape: FileShape = {};
  for await (const item of rawItems(path, format, shape, limit)) {
    // A CSV/TSV range reads the header from the file's start: it must start after it.
    if (r !== undefined && !isRowGroupRange(r) && shape.header !== undefined && r.line <= shape.header.end)
      throw new OptionError(
        'ERR_OPTION',
        `range: starts on line ${r.line} of ${path}, not after its header row (which ends on line ${shape.header.end}); take the ranges from recordRanges`,
      );
    try {
      if (item.error) throw item.error;
      const where = { file: path, line: item.line };
      const v = item.value!;
      layout ??= detectLayout(v, options.recordFormat);
      if (layout === undefined) throw unknownLayout(v, where, options.recordFormat);
      extractText(v, layout, where);
      return new Dataset(path, format, layout, skipInvalid, opened, limit, r);
    } catch (err) {
      if (!(err instanceof InputError) || !skipInvalid) throw err;
      layout = given;
      skipped++;
      firstError ??= err;
    }
  }
  if (firstError === undefined) throw new InputError({ file: path }, 'the dataset has no records');
  throw new InputError(
    { file: path },
    `the dataset has no valid records (${skipped} invalid; the first: ${firstError.message})`,
    { cause: firstError },
  );
}
