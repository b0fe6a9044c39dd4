// The Parquet sink of writeDataset: the kept rows of each input row group
// become one output row group, every input column copied slot for slot from
// its levels and physical values (see parquet-columns.ts), plus the added
// fields as optional columns: DOUBLE for numbers (the weight), UTF-8 strings
// (BYTE_ARRAY, STRING) for text. The schema, every logical and converted type, the
// file's key-value metadata (with the added fields in its Arrow schema) and the
// row groups' sort order are the input's. Pages are rewritten (PLAIN, or
// dictionary-encoded when that is smaller; SNAPPY) without statistics (the
// input's no longer describe the kept rows). One input column chunk is in
// memory at a time.
// resolution-mode: these types reach the CommonJS declarations (.d.cts), and hyparquet is ESM only.
import type { AsyncBuffer, Encoding, FileMetaData, KeyValue, LogicalType, SchemaElement } from 'hyparquet' with {
  'resolution-mode': 'import',
};
import { parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import {
  ConvertedTypes,
  CompressionCodecs,
  EdgeInterpolationAlgorithms,
  Encodings,
  FieldRepetitionTypes,
  ParquetTypes,
} from 'hyparquet/src/constants.js';
import { ByteWriter } from 'hyparquet-writer';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { writeRleBitPackedHybrid } from 'hyparquet-writer/src/encoding.js';
import { snappyCompress } from 'hyparquet-writer/src/snappy.js';
import { ThriftStruct, serializeTCompactProtocol } from 'hyparquet-writer/src/thrift.js';
import { InputError, OptionError } from '../errors.js';
import type { AtomicWriter } from './atomic.js';
import type { AddedField, ColumnValue } from './write.js';
import { ARROW_SCHEMA_KEY, checkArrowSchema, withField } from './parquet-arrow-schema.js';
import {
  type ColumnData,
  type Leaf,
  type PhysicalValue,
  leaves,
  readColumnData,
  selectRows,
} from './parquet-columns.js';

/** What the reader hands the writer: the open file and its metadata. */
export interface ParquetSource {
  file: AsyncBuffer;
  metadata: FileMetaData;
  /** The file as the user named it, for messages. */
  name: string;
}

/** Values per data page, in bytes: a page is cut at the first row start past it. */
const PAGE_BYTES = 1 << 20;
const MAGIC = 0x31524150; // "PAR1"
const CREATED_BY = 'sot-purify (hyparquet-writer)';

/**
 * Throws `InputError`, naming the column, for a file whose columns SOT cannot
 * write back unchanged: column chunks stored in other files or encrypted,
 * leaves without a physical type, or an `ARROW:schema` it cannot extend.
 */
export function checkPassthrough(metadata: FileMetaData, file: string): void {
  for (const leaf of leaves(parquetSchema(metadata))) {
    if (leaf.element.type === undefined) {
      throw new InputError(
        { file, field: leaf.element.name },
        `Parquet column "${columnName(leaf)}" has no physical type: SOT cannot write it back unchanged`,
      );
    }
  }
  for (const group of metadata.row_groups) {
    for (const chunk of group.columns) {
      const name = chunk.meta_data?.path_in_schema.join('.') ?? '?';
      const type = chunk.meta_data?.type ?? 'unknown';
      if (chunk.file_path !== undefined) {
        throw new InputError(
          { file, field: name },
          `Parquet column "${name}" (${type}) is stored in another file (${chunk.file_path}): SOT cannot write it back unchanged`,
        );
      }
      if (
        chunk.meta_data === undefined ||
        chunk.crypto_metadata !== undefined ||
        chunk.encrypted_column_metadata !== undefined
      ) {
        throw new InputError(
          { file, field: name },
          `Parquet column "${name}" (${type}) is encrypted: SOT cannot write it back unchanged`,
        );
      }
    }
  }
  const arrow = metadata.key_value_metadata?.find((kv) => kv.key === ARROW_SCHEMA_KEY);
  if (arrow?.value !== undefined) {
    try {
      checkArrowSchema(arrow.value);
    } catch (err) {
      throw new InputError(
        { file },
        `the file's ${ARROW_SCHEMA_KEY} metadata cannot be read (${err instanceof Error ? err.message : String(err)}): SOT cannot write the file back unchanged`,
        { cause: err },
      );
    }
  }
}

function columnName(leaf: Leaf): string {
  return leaf.path
    .slice(1)
    .map((n) => n.element.name)
    .join('.');
}

/**
 * The output schema: the input's with the added columns appended. A column of
 * an added field's name is refused, as a record field of that name is
 * (io/write.ts): an added field never replaces the user's data.
 */
function outputSchema(metadata: FileMetaData, fields: AddedField[]) {
  const schema = metadata.schema.map((e) => ({ ...e }));
  const root = parquetSchema(metadata);
  const added: SchemaElement[] = [];
  for (const { name, type } of fields) {
    if (root.children.some((c) => c.element.name === name)) {
      throw new OptionError(
        'ERR_OPTION',
        `the added field "${name}" names a column of the input; choose another name, or write no such field`,
      );
    }
    const e: SchemaElement =
      type === 'double'
        ? { name, type: 'DOUBLE', repetition_type: 'OPTIONAL' }
        : {
            name,
            type: 'BYTE_ARRAY',
            repetition_type: 'OPTIONAL',
            converted_type: 'UTF8',
            logical_type: { type: 'STRING' },
          };
    schema.push(e);
    added.push(e);
  }
  schema[0]!.num_children = (schema[0]!.num_children ?? 0) + added.length;
  return { schema, root, leaves: leaves(root), added };
}

function bitWidth(max: number): number {
  return 32 - Math.clz32(max);
}

const f64 = new Float64Array(1);
const f64bits = new BigInt64Array(f64.buffer);
// Lone surrogates in text become U+FFFD: the column holds valid UTF-8.
const utf8 = new TextEncoder();

function writeValues(w: ByteWriter, element: SchemaElement, values: PhysicalValue[]): void {
  switch (element.type) {
    case 'BOOLEAN': {
      for (let i = 0; i < values.length; i += 8) {
        let byte = 0;
        for (let j = 0; j < 8 && i + j < values.length; j++) if (values[i + j]) byte |= 1 << j;
        w.appendUint8(byte);
      }
      return;
    }
    case 'INT32':
    case 'FLOAT':
      for (const v of values) w.appendInt32(v as number);
      return;
    case 'INT64':
    case 'DOUBLE':
      for (const v of values) w.appendInt64(v as bigint);
      return;
    case 'BYTE_ARRAY':
      for (const v of values) {
        w.appendUint32((v as Uint8Array).length);
        w.appendBytes(v as Uint8Array);
      }
      return;
    case 'INT96':
    case 'FIXED_LEN_BYTE_ARRAY':
      for (const v of values) {
        if ((v as Uint8Array).length !== (element.type === 'INT96' ? 12 : element.type_length))
          throw new Error(`a value of ${(v as Uint8Array).length} bytes in a column of fixed-size values`);
        w.appendBytes(v as Uint8Array);
      }
      return;
    default:
      throw new Error(`unknown physical type ${String(element.type)}`);
  }
}

/** Dictionaries above this many bytes are not written: the values go PLAIN. */
const DICTIONARY_BYTES = 1 << 20;

/** The distinct values and each value's index, when a dictionary makes the chunk smaller. */
function dictionaryOf(type: string | undefined, values: PhysicalValue[]) {
  if (type === 'BOOLEAN' || values.length === 0) return undefined;
  const slot = new Map<unknown, number>();
  const distinct: PhysicalValue[] = [];
  const index = new Int32Array(values.length);
  let bytes = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const key = v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.length).toString('latin1') : v;
    let at = slot.get(key);
    if (at === undefined) {
      at = distinct.push(v) - 1;
      slot.set(key, at);
      bytes += v instanceof Uint8Array ? v.length + 4 : 8;
      if (2 * distinct.length > values.length || bytes > DICTIONARY_BYTES) return undefined;
    }
    index[i] = at;
  }
  return { values: distinct, index };
}

/** Appends a page: its header, the levels (uncompressed), the values (snappy); returns its uncompressed size. */
function writePage(
  w: ByteWriter,
  header: Record<string, unknown>,
  levels: ByteWriter | undefined,
  raw: Uint8Array,
): number {
  const packed = snappyCompress(raw);
  const levelBytes = levels?.offset ?? 0;
  const start = w.offset;
  writePageHeader(w, {
    ...header,
    uncompressed_page_size: levelBytes + raw.length,
    compressed_page_size: levelBytes + packed.length,
  } as never);
  const size = w.offset - start + levelBytes + raw.length;
  if (levels !== undefined) w.appendBytes(levels.getBytes());
  w.appendBytes(packed);
  return size;
}

/**
 * Writes one column chunk (at file offset `start`): a dictionary page when it
 * pays, then DATA_PAGE_V2 pages of whole rows; returns its Thrift ColumnChunk.
 */
function writeChunk(w: ByteWriter, start: number, leaf: Leaf, data: ColumnData) {
  const slots = leaf.maxRep > 0 ? data.rep.length : leaf.maxDef > 0 ? data.def.length : data.values.length;
  const dictionary = dictionaryOf(leaf.element.type, data.values);
  let uncompressed = 0;
  if (dictionary !== undefined) {
    const page = new ByteWriter();
    writeValues(page, leaf.element, dictionary.values);
    uncompressed += writePage(
      w,
      { type: 'DICTIONARY_PAGE', dictionary_page_header: { num_values: dictionary.values.length, encoding: 'PLAIN' } },
      undefined,
      page.getBytes(),
    );
  }
  const dataStart = w.offset;
  const indexWidth = dictionary === undefined ? 0 : bitWidth(dictionary.values.length - 1);
  let a = 0;
  let va = 0;
  while (a < slots) {
    // the page: whole rows, until PAGE_BYTES of values
    let b = a;
    let vb = va;
    let bytes = 0;
    let rows = 0;
    while (b < slots && (b === a || bytes < PAGE_BYTES || (leaf.maxRep > 0 && data.rep[b] !== 0))) {
      if (leaf.maxRep === 0 || data.rep[b] === 0) rows++;
      if (leaf.maxDef === 0 || data.def[b] === leaf.maxDef) {
        const v = data.values[vb++]!;
        bytes += v instanceof Uint8Array ? v.length + 4 : 8;
      }
      b++;
    }
    const levels = new ByteWriter();
    const repLength =
      leaf.maxRep > 0 ? writeRleBitPackedHybrid(levels, data.rep.slice(a, b), bitWidth(leaf.maxRep)) : 0;
    const defLength =
      leaf.maxDef > 0 ? writeRleBitPackedHybrid(levels, data.def.slice(a, b), bitWidth(leaf.maxDef)) : 0;
    const values = new ByteWriter();
    if (dictionary === undefined) writeValues(values, leaf.element, data.values.slice(va, vb));
    else {
      values.appendUint8(indexWidth);
      writeRleBitPackedHybrid(values, dictionary.index.subarray(va, vb), indexWidth);
    }
    const header = {
      type: 'DATA_PAGE_V2',
      data_page_header_v2: {
        num_values: b - a,
        num_nulls: b - a - (vb - va),
        num_rows: rows,
        encoding: dictionary === undefined ? 'PLAIN' : 'RLE_DICTIONARY',
        definition_levels_byte_length: defLength,
        repetition_levels_byte_length: repLength,
        is_compressed: true,
      },
    };
    uncompressed += writePage(w, header, levels, values.getBytes());
    a = b;
    va = vb;
  }
  const encodings: Encoding[] = dictionary === undefined ? ['PLAIN', 'RLE'] : ['PLAIN', 'RLE', 'RLE_DICTIONARY'];
  return {
    field_2: BigInt(start),
    field_3: {
      field_1: ParquetTypes.indexOf(leaf.element.type!),
      field_2: encodings.map((e) => Encodings.indexOf(e)),
      field_3: leaf.path.slice(1).map((n) => n.element.name),
      field_4: CompressionCodecs.indexOf('SNAPPY'),
      field_5: BigInt(slots),
      field_6: BigInt(uncompressed),
      field_7: BigInt(w.offset),
      field_9: BigInt(start + dataStart),
      field_11: dictionary === undefined ? undefined : BigInt(start),
    },
  };
}

function timeUnit(unit: string) {
  return unit === 'NANOS' ? { field_3: {} } : unit === 'MICROS' ? { field_2: {} } : { field_1: {} };
}

/** The Thrift LogicalType union, with the i8 fields typed as such. */
function logicalType(t: LogicalType | undefined): unknown {
  if (t === undefined) return undefined;
  switch (t.type) {
    case 'STRING':
      return { field_1: {} };
    case 'MAP':
      return { field_2: {} };
    case 'LIST':
      return { field_3: {} };
    case 'ENUM':
      return { field_4: {} };
    case 'DECIMAL':
      return { field_5: { field_1: t.scale, field_2: t.precision } };
    case 'DATE':
      return { field_6: {} };
    case 'TIME':
      return { field_7: { field_1: t.isAdjustedToUTC, field_2: timeUnit(t.unit) } };
    case 'TIMESTAMP':
      return { field_8: { field_1: t.isAdjustedToUTC, field_2: timeUnit(t.unit) } };
    case 'INTEGER':
      return {
        field_10: new ThriftStruct([
          [1, BYTE, t.bitWidth],
          [2, t.isSigned ? TRUE : FALSE, t.isSigned],
        ]),
      };
    case 'NULL':
      return { field_11: {} };
    case 'JSON':
      return { field_12: {} };
    case 'BSON':
      return { field_13: {} };
    case 'UUID':
      return { field_14: {} };
    case 'FLOAT16':
      return { field_15: {} };
    case 'VARIANT':
      return { field_16: new ThriftStruct([[1, BYTE, t.specification_version]]) };
    case 'GEOMETRY':
      return { field_17: { field_1: t.crs } };
    case 'GEOGRAPHY':
      return { field_18: { field_1: t.crs, field_2: t.algorithm && EdgeInterpolationAlgorithms.indexOf(t.algorithm) } };
    default:
      return t; // a type hyparquet does not know: its Thrift fields as read
  }
}
// Thrift compact protocol type ids
const BYTE = 3;
const TRUE = 1;
const FALSE = 2;

function schemaElement(e: SchemaElement) {
  return {
    field_1: e.type === undefined ? undefined : ParquetTypes.indexOf(e.type),
    field_2: e.type_length,
    field_3: e.repetition_type === undefined ? undefined : FieldRepetitionTypes.indexOf(e.repetition_type),
    field_4: e.name,
    field_5: e.num_children,
    field_6: e.converted_type === undefined ? undefined : ConvertedTypes.indexOf(e.converted_type),
    field_7: e.scale,
    field_8: e.precision,
    field_9: e.field_id,
    field_10: logicalType(e.logical_type),
  };
}

/** The sink: `add` takes kept rows in file order (1-based row numbers), `end` writes the footer. */
export function parquetSink(out: AtomicWriter, source: () => ParquetSource | undefined, fields: AddedField[]) {
  let state: ReturnType<typeof start> | undefined;
  let group = -1; // the input row group whose kept rows are pending
  let keep: Uint8Array = new Uint8Array(0);
  let values: ColumnValue[][] = [];
  let kept = 0;

  function start() {
    const src = source();
    if (src === undefined) throw new Error('the Parquet reader did not run');
    const { metadata } = src;
    const shape = outputSchema(metadata, fields);
    const firstRow: number[] = [];
    let rows = 0;
    for (const g of metadata.row_groups) {
      firstRow.push(rows);
      rows += Number(g.num_rows);
    }
    return { src, ...shape, firstRow, offset: 0, rowGroups: [] as unknown[], rows: 0 };
  }

  const write = async (bytes: Uint8Array) => {
    await out.write(bytes);
    state!.offset += bytes.length;
  };

  /** Writes the pending row group's kept rows as one row group. */
  async function flush(): Promise<void> {
    const s = state!;
    if (group === -1 || kept === 0) return;
    const { metadata, file, name } = s.src;
    const input = metadata.row_groups[group]!;
    const groupStart = s.offset;
    const columns: unknown[] = [];
    let uncompressed = 0n;
    const add = async (leaf: Leaf, data: ColumnData) => {
      const w = new ByteWriter();
      const chunk = writeChunk(w, s.offset, leaf, data);
      uncompressed += chunk.field_3.field_6;
      await write(w.getBytes());
      columns.push(chunk);
    };
    const addedLeaf = (element: SchemaElement): Leaf => ({
      path: [s.root, { element, children: [], count: 1, path: [element.name] }],
      element,
      maxDef: 1,
      maxRep: 0,
    });
    const addedData = (j: number): ColumnData => ({
      rep: [],
      def: values.map(() => 1),
      values: values.map((v) => {
        const x = v[j]!;
        if (typeof x === 'string') return utf8.encode(x);
        f64[0] = x;
        return f64bits[0]!;
      }),
    });
    for (let c = 0; c < s.leaves.length; c++) {
      const leaf = s.leaves[c]!;
      let data: ColumnData;
      try {
        data = selectRows(await readColumnData(file, input.columns[c]!, leaf, compressors), leaf, keep);
      } catch (err) {
        const what = err instanceof Error ? err.message : String(err);
        throw new InputError(
          { file: name, field: columnName(leaf) },
          `cannot copy Parquet column "${columnName(leaf)}" (${leaf.element.type}) of row group ${group + 1}: ${what}`,
          { cause: err },
        );
      }
      await add(leaf, data);
    }
    for (let j = 0; j < s.added.length; j++) await add(addedLeaf(s.added[j]!), addedData(j));
    const sorting = input.sorting_columns;
    s.rowGroups.push({
      field_1: columns,
      field_2: uncompressed,
      field_3: BigInt(kept),
      field_4: sorting?.map((sc) => ({ field_1: sc.column_idx, field_2: sc.descending, field_3: sc.nulls_first })),
      field_5: BigInt(groupStart),
      field_6: BigInt(s.offset - groupStart),
    });
    s.rows += kept;
    kept = 0;
    values = [];
  }

  /** The state, writing the leading magic number on first use. */
  const begin = async () => {
    if (state !== undefined) return state;
    state = start();
    const magic = new ByteWriter();
    magic.appendUint32(MAGIC);
    await write(magic.getBytes());
    return state;
  };

  return {
    async add(row: { record: { line: number } }, v: ColumnValue[]): Promise<void> {
      const s = await begin();
      const r = row.record.line - 1;
      let g = group === -1 ? 0 : group;
      while (g + 1 < s.firstRow.length && r >= s.firstRow[g + 1]!) g++;
      if (g !== group) {
        await flush();
        group = g;
        keep = new Uint8Array(Number(s.src.metadata.row_groups[g]!.num_rows));
      }
      const local = r - s.firstRow[g]!;
      if (local < 0 || local >= keep.length || keep[local] === 1) throw new Error(`Parquet row ${r + 1} out of order`);
      keep[local] = 1;
      values.push(v);
      kept++;
    },
    async end(): Promise<void> {
      const s = await begin();
      await flush();
      const { metadata } = s.src;
      let kv: KeyValue[] | undefined = metadata.key_value_metadata;
      if (kv !== undefined) {
        fields.forEach((field, j) => {
          kv = kv!.map((e) =>
            e.key === ARROW_SCHEMA_KEY && e.value !== undefined
              ? { key: e.key, value: withField(e.value, field, s.root.children.length + j) }
              : e,
          );
        });
      }
      const footer = new ByteWriter();
      serializeTCompactProtocol(footer, {
        field_1: metadata.version,
        field_2: s.schema.map(schemaElement),
        field_3: BigInt(s.rows),
        field_4: s.rowGroups,
        field_5: kv?.map((e) => ({ field_1: e.key, field_2: e.value })),
        field_6: CREATED_BY,
        field_7: s.schema.filter((e) => e.type !== undefined).map(() => ({ field_1: {} })),
      } as never);
      footer.appendUint32(footer.offset);
      footer.appendUint32(MAGIC);
      await write(footer.getBytes());
    },
  };
}
