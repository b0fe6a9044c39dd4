// The generated napi-rs loader picks the prebuilt binary for this platform
// (a local build in ../native, or the per-platform npm package).
import { createRequire } from 'node:module';

export type * from '../native/index.cjs';

const require = createRequire(import.meta.url);

export const native: typeof import('../native/index.cjs') = require('../native/index.cjs');
