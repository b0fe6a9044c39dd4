// After tsc: the CommonJS entries (dist/index.cjs and dist/service/index.cjs,
// both src/index.cjs, which requires the ES module beside it) and their
// types. The types are dist/*.d.ts again as .d.cts files, so that TypeScript
// sees CommonJS declarations behind the "require" condition (node16 and
// nodenext .cts consumers) instead of an ES module it would refuse to require.
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url).pathname;
for (const entry of ['index.cjs', 'service/index.cjs'])
  copyFileSync(new URL('../src/index.cjs', import.meta.url), join(dist, entry));

// Relative specifiers './x.js' become './x.cjs', which TypeScript maps to './x.d.cts'.
const relativeJs = /((?:from|import)\s*\(?\s*['"])(\.\.?\/[^'"]*?)\.js(['"])/g;
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
  const file = join(entry.parentPath, entry.name);
  const text = readFileSync(file, 'utf8').replace(relativeJs, '$1$2.cjs$3');
  writeFileSync(file.replace(/\.d\.ts$/, '.d.cts'), text);
}
