'use strict';
// The CommonJS entries (sot-purify, sot-purify/service). Node >= 20.19 (and >= 22.12) loads the ES module
// synchronously through require(esm), so CommonJS and ESM users share one
// module instance: one copy of each error class, one loaded addon.
try {
  module.exports = require('./index.js');
} catch (err) {
  if (err && err.code === 'ERR_REQUIRE_ESM') {
    throw new Error(
      `require() of sot-purify needs Node >= 20.19 (require of ES modules); this is Node ${process.versions.node}. ` +
        "Upgrade Node, or load it with `await import('sot-purify')`.",
      { cause: err },
    );
  }
  throw err;
}
