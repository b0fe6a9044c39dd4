// The published package from each kind of consumer: TypeScript resolves its
// types under node16, nodenext (.mts and .cts) and bundler, the compiled
// consumers run, plain require() works, and arethetypeswrong finds no problem.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, haveBinary, installInto, packRoot } from './installed.js';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const ATTW = join(ROOT, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js');

const kinds = {
  node16: { module: 'node16', moduleResolution: 'node16', files: ['esm.mts', 'cjs.cts'] },
  nodenext: { module: 'nodenext', moduleResolution: 'nodenext', files: ['esm.mts', 'cjs.cts'] },
  bundler: { module: 'preserve', moduleResolution: 'bundler', files: ['esm.mts'] },
} as const;

let tarball: string;
let app: string;

beforeAll(() => {
  tarball = packRoot(mkdtempSync(join(tmpdir(), 'sot-pack-')));
  app = installInto(tarball, true);
  cpSync(join(ROOT, '__test__', 'consumers'), app, { recursive: true });
}, 120_000);

function run(file: string): string {
  const r = spawnSync(process.execPath, [file], { cwd: app, encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe.skipIf(!haveBinary)('consumers of the packed package', () => {
  for (const [kind, { module, moduleResolution, files }] of Object.entries(kinds)) {
    it(`type-checks and runs under ${kind}`, () => {
      const outDir = join('out', kind);
      const compilerOptions = {
        target: 'ES2022',
        module,
        moduleResolution,
        strict: true,
        skipLibCheck: false,
        outDir,
        typeRoots: [join(ROOT, 'node_modules', '@types')],
        types: ['node'],
      };
      writeFileSync(join(app, `tsconfig.${kind}.json`), JSON.stringify({ compilerOptions, files }));
      const tsc = spawnSync(process.execPath, [TSC, '-p', `tsconfig.${kind}.json`], { cwd: app, encoding: 'utf8' });
      expect(tsc.stdout + tsc.stderr).toBe('');
      expect(tsc.status).toBe(0);
      for (const file of files) {
        const js = join(outDir, file.replace(/\.mts$/, '.mjs').replace(/\.cts$/, '.cjs'));
        expect(run(js)).toMatch(file.startsWith('esm') ? /^esm ok / : /^cjs ok /);
      }
    });
  }

  it('loads with plain require() (Node >= 20.19)', () => {
    expect(run('plain.cjs')).toMatch(/^require ok /);
  });

  // node16 (CJS and ESM) and bundler; node10 knows no subpaths (sot-purify/service).
  it('passes arethetypeswrong in every resolution mode', () => {
    const out = execFileSync(process.execPath, [ATTW, tarball, '--format', 'json', '--profile', 'node16'], {
      encoding: 'utf8',
    });
    const report = JSON.parse(out) as { analysis: { problems: { resolutionKind?: string }[] } };
    expect(report.analysis.problems.filter((p) => p.resolutionKind !== 'node10')).toEqual([]);
  });
});
