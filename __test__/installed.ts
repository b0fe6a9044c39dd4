// The package as a user gets it: `npm pack` of this checkout (so "files" and
// "exports" are the published ones), unpacked into node_modules of a fresh
// project, with or without the platform package that carries the addon.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');
const pkg = (await import(join(ROOT, 'package.json'), { with: { type: 'json' } })).default as {
  name: string;
  dependencies: Record<string, string>;
};
/** The addon this machine built (`npm run build:native`) and the platform package that ships it (glibc on Linux). */
export const PLATFORM =
  { linux: `linux-${process.arch}-gnu`, win32: `win32-${process.arch}-msvc` }[process.platform as string] ??
  `${process.platform}-${process.arch}`;
export const BINARY = join(ROOT, 'native', `sot.${PLATFORM}.node`);

/** Packs the checkout once; returns the tarball. */
export function packRoot(dir: string): string {
  // npm is npm.cmd on Windows, which only a shell runs.
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
    shell: process.platform === 'win32',
  });
  return join(dir, (JSON.parse(out) as { filename: string }[])[0]!.filename);
}

/**
 * A project with sot-purify unpacked from `tarball`, its runtime dependencies
 * linked from this checkout, and the platform package when `withBinary`.
 */
export function installInto(tarball: string, withBinary: boolean, type: 'module' | 'commonjs' = 'commonjs'): string {
  const app = mkdtempSync(join(tmpdir(), 'sot-installed-'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type }));
  const modules = join(app, 'node_modules');
  const target = join(modules, pkg.name);
  mkdirSync(target, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  for (const dep of Object.keys(pkg.dependencies)) {
    mkdirSync(join(modules, dep, '..'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', dep), join(modules, dep), 'junction');
  }
  if (withBinary) {
    const platformDir = join(modules, `${pkg.name}-${PLATFORM}`);
    cpSync(join(ROOT, 'npm', PLATFORM), platformDir, { recursive: true });
    cpSync(BINARY, join(platformDir, `sot.${PLATFORM}.node`));
  }
  return app;
}

export const haveBinary = existsSync(BINARY);
