// In-memory index of the embedding cache: 32-byte text hash -> (chunk, row).
// An open-addressing table over typed arrays rather than a Map of strings:
// about 48 bytes per entry (32 key + 8 location + 4-8 table slot), no
// per-entry heap object for the garbage collector to trace.

export const HASH_BYTES = 32;

export class HashIndex {
  private keys = new Uint8Array(HASH_BYTES * 1024);
  private chunkOf = new Int32Array(1024);
  private rowOf = new Int32Array(1024);
  /** entry + 1 per slot; 0 = empty. Kept at most half full. */
  private table = new Int32Array(4096);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Bytes held by the index's arrays. */
  get byteLength(): number {
    return this.keys.byteLength + this.chunkOf.byteLength + this.rowOf.byteLength + this.table.byteLength;
  }

  /** The entry holding `hashes[at..at+32]`, or -1. */
  find(hashes: Uint8Array, at: number): number {
    const mask = this.table.length - 1;
    for (let slot = slotOf(hashes, at) & mask; ; slot = (slot + 1) & mask) {
      const e = this.table[slot]! - 1;
      if (e < 0) return -1;
      if (this.keyEquals(e, hashes, at)) return e;
    }
  }

  chunk(entry: number): number {
    return this.chunkOf[entry]!;
  }

  row(entry: number): number {
    return this.rowOf[entry]!;
  }

  /** Points an existing entry elsewhere (its chunk turned out unreadable, a new copy arrived). */
  move(entry: number, chunk: number, row: number): void {
    this.chunkOf[entry] = chunk;
    this.rowOf[entry] = row;
  }

  /** Adds the hash unless present; returns its entry. */
  insert(hashes: Uint8Array, at: number, chunk: number, row: number): number {
    const found = this.find(hashes, at);
    if (found >= 0) return found;
    if (this.count === this.chunkOf.length) this.growEntries();
    if ((this.count + 1) * 2 > this.table.length) this.rehash(this.table.length * 2);
    const e = this.count++;
    this.keys.set(hashes.subarray(at, at + HASH_BYTES), e * HASH_BYTES);
    this.chunkOf[e] = chunk;
    this.rowOf[e] = row;
    this.place(e);
    return e;
  }

  private keyEquals(e: number, hashes: Uint8Array, at: number): boolean {
    const base = e * HASH_BYTES;
    for (let i = 0; i < HASH_BYTES; i++) if (this.keys[base + i] !== hashes[at + i]) return false;
    return true;
  }

  private place(e: number): void {
    const mask = this.table.length - 1;
    let slot = slotOf(this.keys, e * HASH_BYTES) & mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & mask;
    this.table[slot] = e + 1;
  }

  private growEntries(): void {
    const cap = this.chunkOf.length * 2;
    const keys = new Uint8Array(cap * HASH_BYTES);
    keys.set(this.keys);
    const chunkOf = new Int32Array(cap);
    chunkOf.set(this.chunkOf);
    const rowOf = new Int32Array(cap);
    rowOf.set(this.rowOf);
    this.keys = keys;
    this.chunkOf = chunkOf;
    this.rowOf = rowOf;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    for (let e = 0; e < this.count; e++) this.place(e);
  }
}

/** The keys are sha256 digests: their first bytes are already uniformly spread. */
function slotOf(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}
