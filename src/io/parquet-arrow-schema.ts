// The Arrow schema that Arrow writers (pyarrow, arrow-rs, DuckDB ...) keep in
// a Parquet file's `ARROW:schema` key: it restores the types Parquet cannot
// say itself (time zones, large and view types, dictionaries, durations,
// seconds). Arrow ignores it when its field count differs from the Parquet
// schema's, so every added column (the weight, the removed file's fields)
// must be added to it too. It is base64 of an
// Arrow IPC message whose flatbuffer is copied whole behind a new root
// (Message -> Schema -> fields) that points into it: the copy keeps every
// original field byte for byte.

import type { AddedField } from './write.js';

export const ARROW_SCHEMA_KEY = 'ARROW:schema';

const CONTINUATION = 0xffffffff;
const HEADER_SCHEMA = 1;
const TYPE_FLOATING_POINT = 3;
const TYPE_UTF8 = 5;
const PRECISION_DOUBLE = 2;

/** A read-only view of a flatbuffer's tables. */
class Flat {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private check(pos: number, size: number): number {
    if (!Number.isInteger(pos) || pos < 0 || pos + size > this.bytes.length) throw new Error('offset out of bounds');
    return pos;
  }
  /** Position of field `id` of the table at `table`, or undefined when absent. */
  field(table: number, id: number): number | undefined {
    const vtable = this.check(table - this.view.getInt32(this.check(table, 4), true), 4);
    const size = this.view.getUint16(vtable, true);
    if (4 + 2 * id >= size) return undefined;
    const off = this.view.getUint16(this.check(vtable + 4 + 2 * id, 2), true);
    return off === 0 ? undefined : this.check(table + off, 1);
  }
  /** The target of the offset stored at `pos`. */
  deref(pos: number): number {
    return this.check(pos + this.view.getUint32(this.check(pos, 4), true), 4);
  }
  /** Positions of the tables a vector of offsets at `vector` points to. */
  tables(vector: number): number[] {
    const n = this.view.getUint32(this.check(vector, 4), true);
    this.check(vector + 4, 4 * n);
    return Array.from({ length: n }, (_, i) => this.deref(vector + 4 + 4 * i));
  }
}

type Scalar = { id: number; kind: 'i16' | 'u8' | 'bool'; value: number } | { id: number; kind: 'i64'; value: bigint };
type Ref = { id: number; kind: 'ref'; target: () => number };
type FieldSpec = Scalar | Ref;

const SIZE = { i64: 8, ref: 4, i16: 2, u8: 1, bool: 1 } as const;

/** Lays a flatbuffer out front to back: every offset points forward, as flatbuffers require. */
class Builder {
  private bytes = new Uint8Array(256);
  private view = new DataView(this.bytes.buffer);
  pos = 0;
  private patches: Array<[at: number, target: () => number]> = [];

  private grow(n: number): number {
    const at = this.pos;
    if (at + n > this.bytes.length) {
      const bigger = new Uint8Array(Math.max(2 * this.bytes.length, at + n));
      bigger.set(this.bytes);
      this.bytes = bigger;
      this.view = new DataView(bigger.buffer);
    }
    this.pos += n;
    return at;
  }
  align(n: number): void {
    this.grow((n - (this.pos % n)) % n);
  }
  ref(at: number, target: () => number): void {
    this.patches.push([at, target]);
  }
  /** A vtable, then the table (8-aligned), fields widest first; returns the table's position. */
  table(fields: FieldSpec[]): number {
    const ids = fields.map((f) => f.id);
    const slots = ids.length === 0 ? 0 : Math.max(...ids) + 1;
    const sorted = [...fields].sort((a, b) => SIZE[b.kind] - SIZE[a.kind]);
    const at = new Map<number, number>();
    let size = 4;
    for (const f of sorted) {
      size = Math.ceil(size / SIZE[f.kind]) * SIZE[f.kind];
      at.set(f.id, size);
      size += SIZE[f.kind];
    }
    this.align(2);
    const vtable = this.grow(4 + 2 * slots);
    this.view.setUint16(vtable, 4 + 2 * slots, true);
    this.view.setUint16(vtable + 2, size, true);
    for (const [id, off] of at) this.view.setUint16(vtable + 4 + 2 * id, off, true);
    this.align(8);
    const table = this.grow(size);
    this.view.setInt32(table, table - vtable, true);
    for (const f of fields) {
      const p = table + at.get(f.id)!;
      if (f.kind === 'i64') this.view.setBigInt64(p, f.value, true);
      else if (f.kind === 'i16') this.view.setInt16(p, f.value, true);
      else if (f.kind === 'ref') this.ref(p, f.target);
      else this.view.setUint8(p, f.value);
    }
    return table;
  }
  /** A vector of offsets to the given targets. */
  vector(targets: Array<() => number>): number {
    this.align(4);
    const at = this.grow(4 + 4 * targets.length);
    this.view.setUint32(at, targets.length, true);
    targets.forEach((t, i) => this.ref(at + 4 + 4 * i, t));
    return at;
  }
  string(s: string): number {
    const utf8 = new TextEncoder().encode(s);
    this.align(4);
    const at = this.grow(4 + utf8.length + 1);
    this.view.setUint32(at, utf8.length, true);
    this.bytes.set(utf8, at + 4);
    return at;
  }
  raw(bytes: Uint8Array): number {
    const at = this.grow(bytes.length);
    this.bytes.set(bytes, at);
    return at;
  }
  finish(): Uint8Array {
    for (const [at, target] of this.patches) {
      const t = target();
      if (t <= at) throw new Error('backward offset');
      this.view.setUint32(at, t - at, true);
    }
    this.align(8);
    return this.bytes.slice(0, this.pos);
  }
}

function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text.trim())) throw new Error('not base64');
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** The flatbuffer inside an IPC message (with or without the continuation marker). */
function messageBody(ipc: Uint8Array): Uint8Array {
  const view = new DataView(ipc.buffer, ipc.byteOffset, ipc.byteLength);
  if (ipc.length < 8) throw new Error('message too short');
  const start = view.getUint32(0, true) === CONTINUATION ? 8 : 4;
  const length = view.getInt32(start - 4, true);
  if (length <= 0 || start + length > ipc.length) throw new Error('bad message length');
  return ipc.subarray(start, start + length);
}

/** The parts of the Message and Schema tables the new root points back to. */
function parse(fb: Flat) {
  const message = fb.deref(0);
  const headerType = fb.field(message, 1);
  if (headerType === undefined || fb.view.getUint8(headerType) !== HEADER_SCHEMA)
    throw new Error('not a schema message');
  const header = fb.field(message, 2);
  if (header === undefined) throw new Error('no schema');
  const schema = fb.deref(header);
  const fieldsAt = fb.field(schema, 1);
  const fields = fieldsAt === undefined ? [] : fb.tables(fb.deref(fieldsAt));
  for (const f of fields) fb.field(f, 0); // each is a readable table
  const i16 = (table: number, id: number) => {
    const p = fb.field(table, id);
    return p === undefined ? undefined : fb.view.getInt16(p, true);
  };
  const target = (table: number, id: number) => {
    const p = fb.field(table, id);
    return p === undefined ? undefined : fb.deref(p);
  };
  const bodyLength = fb.field(message, 3);
  return {
    version: i16(message, 0),
    bodyLength: bodyLength === undefined ? undefined : fb.view.getBigInt64(bodyLength, true),
    messageMetadata: target(message, 4),
    endianness: i16(schema, 0),
    fields,
    schemaMetadata: target(schema, 2),
    features: target(schema, 3),
  };
}

/** Throws unless `value` is an Arrow schema this module can extend. */
export function checkArrowSchema(value: string): void {
  parse(new Flat(messageBody(fromBase64(value))));
}

/**
 * `value` (an `ARROW:schema` for a Parquet schema of `columns` top-level
 * columns) with a nullable field `added.name` appended: float64 for a
 * `double` field, utf8 for a `string` one. One whose field count differs is
 * returned unchanged: Arrow ignores it before and after.
 */
export function withField(value: string, added: AddedField, columns: number): string {
  const old = messageBody(fromBase64(value));
  const fb = new Flat(old);
  const p = parse(fb);
  if (p.fields.length !== columns) return value;

  const b = new Builder();
  let base = 0; // where the old flatbuffer lands; known once the new tables are laid out
  const inOld = (pos: number) => () => base + pos;
  const optional = (id: number, pos: number | undefined): Ref[] =>
    pos === undefined ? [] : [{ id, kind: 'ref', target: inOld(pos) }];

  let schema = 0;
  let fields = 0;
  let field = 0;
  let type = 0;
  let nameAt = 0;
  let children = 0;
  const root = b.raw(new Uint8Array(4));
  b.ref(root, () => message);
  const message = b.table([
    ...(p.version === undefined ? [] : [{ id: 0, kind: 'i16', value: p.version } as const]),
    { id: 1, kind: 'u8', value: HEADER_SCHEMA },
    { id: 2, kind: 'ref', target: () => schema },
    ...(p.bodyLength === undefined ? [] : [{ id: 3, kind: 'i64', value: p.bodyLength } as const]),
    ...optional(4, p.messageMetadata),
  ]);
  schema = b.table([
    ...(p.endianness === undefined ? [] : [{ id: 0, kind: 'i16', value: p.endianness } as const]),
    { id: 1, kind: 'ref', target: () => fields },
    ...optional(2, p.schemaMetadata),
    ...optional(3, p.features),
  ]);
  const targets = p.fields.map((f) => inOld(f));
  targets.push(() => field);
  fields = b.vector(targets);
  field = b.table([
    { id: 0, kind: 'ref', target: () => nameAt },
    { id: 1, kind: 'bool', value: 1 },
    { id: 2, kind: 'u8', value: added.type === 'double' ? TYPE_FLOATING_POINT : TYPE_UTF8 },
    { id: 3, kind: 'ref', target: () => type },
    { id: 5, kind: 'ref', target: () => children },
  ]);
  type = b.table(added.type === 'double' ? [{ id: 0, kind: 'i16', value: PRECISION_DOUBLE }] : []);
  nameAt = b.string(added.name);
  children = b.vector([]);
  b.align(16);
  base = b.raw(old);
  const body = b.finish();

  const ipc = new Uint8Array(8 + body.length);
  const view = new DataView(ipc.buffer);
  view.setUint32(0, CONTINUATION, true);
  view.setInt32(4, body.length, true);
  ipc.set(body, 8);
  return Buffer.from(ipc).toString('base64');
}
