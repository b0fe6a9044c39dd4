// Column chunks as Parquet stores them: the repetition and definition levels
// and the physical values, without any conversion to JS types, so that the
// writer can put back exactly what it read. Pages are decoded by hyparquet's
// own page readers (every encoding and codec it reads); the values are kept
// as bit patterns (floats as their integer bits: NaN payloads and -0 survive).
import type { AsyncBuffer, ColumnChunk, Compressors, DecodedArray, SchemaElement, SchemaTree } from 'hyparquet' with {
  'resolution-mode': 'import',
};
import { parquetHeader } from 'hyparquet/src/column.js';
import { DEFAULT_PARSERS } from 'hyparquet/src/convert.js';
import { decompressPage, readDataPage, readDataPageV2 } from 'hyparquet/src/datapage.js';
import { readPlain } from 'hyparquet/src/plain.js';

/** A leaf column of the schema with its levels' maxima. */
export interface Leaf {
  /** Root to leaf, as hyparquet's page readers want it. */
  path: SchemaTree[];
  element: SchemaElement;
  maxDef: number;
  maxRep: number;
}

/**
 * Physical values: BOOLEAN booleans; INT32 and FLOAT int32 bit patterns
 * (numbers); INT64 and DOUBLE int64 bit patterns (bigints); INT96 and byte
 * arrays Uint8Arrays.
 */
export type PhysicalValue = boolean | number | bigint | Uint8Array;

/** One column chunk (or its kept rows): a level pair per slot, a value per defined slot. */
export interface ColumnData {
  /** Empty when the column is not repeated (every slot starts a row). */
  rep: number[];
  /** Empty when the column is required all the way (every slot holds a value). */
  def: number[];
  values: PhysicalValue[];
}

/** Leaf columns in file order. */
export function leaves(root: SchemaTree): Leaf[] {
  const out: Leaf[] = [];
  const walk = (path: SchemaTree[], def: number, rep: number) => {
    const node = path[path.length - 1]!;
    if (node.children.length === 0) {
      out.push({ path, element: node.element, maxDef: def, maxRep: rep });
      return;
    }
    for (const child of node.children) {
      const r = child.element.repetition_type;
      walk([...path, child], def + (r === 'REQUIRED' ? 0 : 1), rep + (r === 'REPEATED' ? 1 : 0));
    }
  };
  for (const child of root.children) {
    const r = child.element.repetition_type;
    walk([root, child], r === 'REQUIRED' ? 0 : 1, r === 'REPEATED' ? 1 : 0);
  }
  return out;
}

/** Typed arrays of floats read as the bit patterns they hold. */
function bits(type: string | undefined, data: DecodedArray): ArrayLike<PhysicalValue> {
  if (type === 'FLOAT' && data instanceof Float32Array)
    return new Int32Array(data.buffer, data.byteOffset, data.length);
  if (type === 'DOUBLE' && data instanceof Float64Array)
    return new BigInt64Array(data.buffer, data.byteOffset, data.length);
  if ((type === 'FLOAT' || type === 'DOUBLE') && data.length > 0) throw new Error(`unexpected ${type} decoding`);
  return data as ArrayLike<PhysicalValue>;
}

/** The byte range of a column chunk, as hyparquet's planner computes it. */
export function chunkRange(chunk: ColumnChunk): [number, number] {
  const meta = chunk.meta_data!;
  let start = meta.dictionary_page_offset;
  if (!start || meta.data_page_offset < start) start = meta.data_page_offset;
  return [Number(start), Number(start + meta.total_compressed_size)];
}

/** Decodes one column chunk of a row group into levels and physical values. */
export async function readColumnData(
  file: AsyncBuffer,
  chunk: ColumnChunk,
  leaf: Leaf,
  compressors: Compressors,
): Promise<ColumnData> {
  const meta = chunk.meta_data!;
  const [start, end] = chunkRange(chunk);
  const bytes = new Uint8Array(await file.slice(start, end));
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
  // INT96 read as the 12 bytes it is (hyparquet's INT96 bigints lose bits)
  const element: SchemaElement =
    leaf.element.type === 'INT96' ? { ...leaf.element, type: 'FIXED_LEN_BYTE_ARRAY', type_length: 12 } : leaf.element;
  const decoder: Parameters<typeof readDataPageV2>[2] = {
    pathInSchema: meta.path_in_schema,
    type: element.type!,
    element,
    schemaPath: leaf.path,
    codec: meta.codec,
    parsers: DEFAULT_PARSERS,
    compressors,
  };
  const total = Number(meta.num_values);
  const out: ColumnData = { rep: [], def: [], values: [] };
  let slots = 0;
  let dictionary: ArrayLike<PhysicalValue> | undefined;
  while (slots < total) {
    if (reader.offset >= bytes.length) throw new Error(`column chunk ends after ${slots} of ${total} values`);
    const header = parquetHeader(reader);
    const page = bytes.subarray(reader.offset, reader.offset + header.compressed_page_size);
    reader.offset += header.compressed_page_size;
    if (page.length !== header.compressed_page_size) throw new Error('page runs past the column chunk');
    if (header.type === 'DICTIONARY_PAGE') {
      const raw = decompressPage(page, header.uncompressed_page_size, meta.codec, compressors);
      const dictReader = { view: new DataView(raw.buffer, raw.byteOffset, raw.byteLength), offset: 0 };
      dictionary = bits(
        decoder.type,
        readPlain(dictReader, decoder.type, header.dictionary_page_header!.num_values, element.type_length),
      );
      continue;
    }
    let decoded;
    let encoding;
    let count;
    if (header.type === 'DATA_PAGE') {
      const h = header.data_page_header!;
      decoded = readDataPage(decompressPage(page, header.uncompressed_page_size, meta.codec, compressors), h, decoder);
      encoding = h.encoding;
      count = h.num_values;
    } else if (header.type === 'DATA_PAGE_V2') {
      const h = header.data_page_header_v2!;
      decoded = readDataPageV2(page, header, decoder);
      encoding = h.encoding;
      count = h.num_values;
    } else {
      continue; // index pages: no data
    }
    const { repetitionLevels: rep, definitionLevels: def, dataPage } = decoded;
    if (leaf.maxRep > 0) {
      if (rep.length !== count) throw new Error('repetition levels do not match the page');
      for (let i = 0; i < count; i++) out.rep.push(rep[i]!);
    }
    let defined = count;
    if (leaf.maxDef > 0) {
      // hyparquet leaves the levels out of a page without nulls
      if (def === undefined || def.length === 0) for (let i = 0; i < count; i++) out.def.push(leaf.maxDef);
      else {
        if (def.length !== count) throw new Error('definition levels do not match the page');
        defined = 0;
        for (let i = 0; i < count; i++) {
          out.def.push(def[i]!);
          if (def[i] === leaf.maxDef) defined++;
        }
      }
    }
    if (encoding === 'PLAIN_DICTIONARY' || encoding === 'RLE_DICTIONARY') {
      if (dictionary === undefined) throw new Error('dictionary-encoded page without a dictionary');
      for (let i = 0; i < dataPage.length; i++) {
        const v = dictionary[Number(dataPage[i])];
        if (v === undefined) throw new Error('dictionary index out of range');
        out.values.push(v);
      }
    } else {
      const values = bits(decoder.type, dataPage);
      for (let i = 0; i < values.length; i++) out.values.push(values[i]!);
    }
    if (dataPage.length !== defined)
      throw new Error(`page holds ${dataPage.length} values for ${defined} defined slots`);
    slots += count;
  }
  return out;
}

/** The slots of the rows whose `keep` flag is set (rows counted from 0 in the chunk). */
export function selectRows(data: ColumnData, leaf: Leaf, keep: Uint8Array): ColumnData {
  const out: ColumnData = { rep: [], def: [], values: [] };
  const slots = leaf.maxRep > 0 ? data.rep.length : leaf.maxDef > 0 ? data.def.length : data.values.length;
  let row = -1;
  let value = 0;
  for (let i = 0; i < slots; i++) {
    if (leaf.maxRep === 0 || data.rep[i] === 0) row++;
    const defined = leaf.maxDef === 0 || data.def[i] === leaf.maxDef;
    if (keep[row] === 1) {
      if (leaf.maxRep > 0) out.rep.push(data.rep[i]!);
      if (leaf.maxDef > 0) out.def.push(data.def[i]!);
      if (defined) out.values.push(data.values[value]!);
    }
    if (defined) value++;
  }
  if (row + 1 !== keep.length) throw new Error(`column chunk holds ${row + 1} rows, the row group ${keep.length}`);
  if (value !== data.values.length) throw new Error('column chunk values do not match its levels');
  return out;
}
