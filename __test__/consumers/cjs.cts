// A CommonJS consumer (.cts under node16 or nodenext): `import` compiles to require().
import assert = require('node:assert/strict');
import { ShapeError, SotError, sinkhorn, type SinkhornResult } from 'sot-purify';

async function main(): Promise<void> {
  const r: SinkhornResult = await sinkhorn(
    {
      cost: [
        [0, 1],
        [1, 0],
      ],
    },
    { eps: 0.1 },
  );
  assert.ok(r.converged && Number.isFinite(r.value));
  await assert.rejects(sinkhorn({ x: [[1, 2]], y: [[1]] }), (e) => e instanceof ShapeError && e instanceof SotError);
  // require() and import() hand back one module instance: one class per error.
  const esm = await import('sot-purify');
  assert.equal(esm.ShapeError, ShapeError);
  // @ts-expect-error an unknown cost kind is a type error, so the types are really there
  void sinkhorn({ x: [[1]], y: [[1]], cost: 'manhattan' }).catch(() => {});
  console.log(`cjs ok ${r.value.toFixed(6)}`);
}
void main();
