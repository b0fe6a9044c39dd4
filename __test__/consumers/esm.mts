// An ES module consumer (nodenext/node16 .mts, or bundler): named imports, typed results.
import assert from 'node:assert/strict';
import { ShapeError, SotError, sinkhorn, type SinkhornResult } from 'sot-purify';

const r: SinkhornResult = await sinkhorn(
  {
    cost: [
      [0, 1],
      [1, 0],
    ],
  },
  { eps: 0.1 },
);
const grad: Float64Array = r.gradA;
assert.ok(r.converged && Number.isFinite(r.value) && grad.length === 2);
await assert.rejects(sinkhorn({ x: [[1, 2]], y: [[1]] }), (e) => e instanceof ShapeError && e instanceof SotError);
// @ts-expect-error an unknown cost kind is a type error, so the types are really there
void sinkhorn({ x: [[1]], y: [[1]], cost: 'manhattan' }).catch(() => {});
console.log(`esm ok ${r.value.toFixed(6)}`);
