// Plain CommonJS, no TypeScript: require() on Node >= 20.19.
const assert = require('node:assert/strict');
const sot = require('sot-purify');
sot
  .sinkhorn(
    {
      cost: [
        [0, 1],
        [1, 0],
      ],
    },
    { eps: 0.1 },
  )
  .then((r) => {
    assert.ok(r.converged && Number.isFinite(r.value));
    assert.equal(typeof sot.BindingError, 'function');
    console.log(`require ok ${r.value.toFixed(6)}`);
  });
