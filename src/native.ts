// The generated napi-rs loader picks the prebuilt binary for this platform
// (a local build in ../native, the per-platform npm package, or the
// WebAssembly package). It runs on first use, not at import, so that what
// needs no numerics (`sot --help`, `sot sets`) works without a binary.
import { createRequire } from 'node:module';
import { BindingError } from './errors.js';

export type * from '../native/index.cjs';
type Binding = typeof import('../native/index.cjs');

const require = createRequire(import.meta.url);
let binding: Binding | undefined;

function load(): Binding {
  if (binding === undefined) {
    try {
      binding = require('../native/index.cjs') as Binding;
    } catch (err) {
      // The loader's own summary blames an npm bug for every miss; its causes are the facts.
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      throw new BindingError(bindingMissing(cause), { cause });
    }
  }
  return binding;
}

export const native: Binding = new Proxy({} as Binding, { get: (_target, key) => Reflect.get(load(), key) });

/** napi-rs's names of the platform packages, by Rust target (package.json `napi.targets`). */
function platformName(triple: string): string {
  const [arch, , os, abi] = triple.split('-');
  const cpu =
    ({ x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', wasm32: 'wasm32' } as Record<string, string>)[arch!] ?? arch;
  if (cpu === 'wasm32') return 'wasm32-wasi';
  if (os === 'darwin') return `darwin-${cpu}`;
  if (os === 'windows') return `win32-${cpu}-${abi}`;
  return `${os}-${cpu}-${abi}`;
}

function detectLibc(): 'glibc' | 'musl' | undefined {
  if (process.platform !== 'linux') return undefined;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ? 'glibc' : 'musl';
}

/** The message of a failed load: what was detected, which package serves it, how to fix it. */
function bindingMissing(err: unknown): string {
  const pkg = require('../package.json') as { name: string; version: string; napi: { targets: string[] } };
  const libc = detectLibc();
  const here =
    process.platform === 'linux'
      ? `linux-${process.arch}-${libc === 'musl' ? 'musl' : 'gnu'}`
      : process.platform === 'win32'
        ? `win32-${process.arch}-msvc`
        : `${process.platform}-${process.arch}`;
  const platforms = pkg.napi.targets.map(platformName);
  const detected = `${process.platform} ${process.arch}${libc ? ` (${libc})` : ''}, Node ${process.versions.node}`;
  const lines = [`${pkg.name} could not load its native addon on ${detected}.`];
  const fixes: string[] = [];
  if (platforms.includes(here)) {
    const wanted = `${pkg.name}-${here}@${pkg.version}`;
    let installed = false;
    try {
      require.resolve(`${pkg.name}-${here}/package.json`);
      installed = true;
    } catch {}
    if (installed) {
      lines.push(
        `The package that serves this platform, ${wanted}, is installed but its binary failed to load (the loader's errors follow).`,
      );
      fixes.push(`reinstall it on the machine that runs the code: npm install ${wanted}`);
    } else {
      lines.push(
        `The package that serves this platform, ${wanted}, is not installed. It is an optional dependency, which npm leaves out`,
        `with --omit=optional or --no-optional, and which a lock file or node_modules made on another platform lacks.`,
      );
      fixes.push(
        `reinstall without --omit=optional, on the machine (or in the image) that runs the code, or add it: npm install ${wanted}`,
      );
    }
  } else {
    lines.push(
      `No prebuilt binary is published for ${here} (prebuilt: ${platforms.filter((p) => p !== 'wasm32-wasi').join(', ')}).`,
    );
  }
  fixes.push(
    `use the WebAssembly build, slower but for any platform: npm install ${pkg.name}-wasm32-wasi@${pkg.version}`,
    `build from source with Rust: see docs/install.md, "Building from source"`,
  );
  lines.push('To fix it:', ...fixes.map((f) => `- ${f}`));
  const causes = [];
  for (let e: unknown = err; e instanceof Error && causes.length < 8; e = e.cause)
    causes.push(`  ${e.message.split('\n')[0]}`);
  return `${lines.join('\n')}\nLoader errors, in the order tried:\n${causes.reverse().join('\n')}`;
}
