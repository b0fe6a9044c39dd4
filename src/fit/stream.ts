// Records streamed from an input: a range of them batch by batch, and
// growable columns that hold per-record numbers of a stream of unknown length.
import type { PipelineInput } from '../pipeline/input.js';

/** Growable column of numbers (doubling), so a stream of unknown length is held once. */
export class Column<T extends Float64Array | Float32Array | Uint32Array> {
  length = 0;
  constructor(public data: T) {}
  push(v: ArrayLike<number>) {
    while (this.length + v.length > this.data.length) {
      const next = new (this.data.constructor as new (n: number) => T)(Math.max(1024, this.data.length * 2));
      next.set(this.data);
      this.data = next;
    }
    this.data.set(v, this.length);
    this.length += v.length;
  }
  done(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

/** Records `from <= index < to` of `input`, batch by batch, with their file lines. */
export async function* rangeBatches(
  input: PipelineInput,
  range: { from: number; to: number } | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ texts: string[]; lines: ArrayLike<number> }> {
  const { from, to } = range ?? { from: 0, to: Infinity };
  let index = 0;
  for await (const b of input.batches({ signal })) {
    const lo = Math.max(from - index, 0);
    const hi = Math.min(to - index, b.texts.length);
    index += b.texts.length;
    if (hi > lo) yield { texts: b.texts.slice(lo, hi), lines: b.lines.slice(lo, hi) };
    if (index >= to) break;
  }
}
