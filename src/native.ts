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
      throw new BindingError(bindingMissing(err), { cause: err });
    }
  }
  return binding;
}

export const native: Binding = new Proxy({} as Binding, { get: (_target, key) => Reflect.get(load(), key) });

/** napi-rs's names of the platform packages, by Rust target (package.json `napi.targets`). */
function platformName(triple: string): string {
  const [arch, , os, abi] = triple.split('-');
  const cpu = ({ x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', wasm32: 'wasm32' } as Record<string, string>)[arch!] ?? arch;
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
  const wasm = `${pkg.name}-wasm32-wasi`;
  const detected = `${process.platform} ${process.arch}${libc ? ` (${libc})` : ''}, Node ${process.versions.node}`;
  const lines = [`${pkg.name} could not load its native addon on ${detected}.`];
  if (platforms.includes(here)) {
    const wanted = `${pkg.name}-${here}`;
    let installed = false;
    try {
      require.resolve(`${wanted}/package.json`);
      installed = true;
    } catch {}
    lines.push(
      installed
        ? `The package ${wanted} is installed but its binary failed to load (the causes follow).`
        : `The package that serves this platform, ${wanted}@${pkg.version}, is not installed. It is an optional dependency:`,
      installed
        ? `- reinstall it: npm install ${wanted}@${pkg.version}`
        : `- reinstall without --omit=optional (or --no-optional), or add it explicitly: npm install ${wanted}@${pkg.version}`,
      `- a lock file written on another platform can leave it out: install on the machine (or image) that runs the code`,
    );
  } else {
    lines.push(`No prebuilt binary is published for ${here}; prebuilt: ${platforms.filter((p) => p !== 'wasm32-wasi').join(', ')}.`);
  }
  lines.push(
    `- or use the WebAssembly build, slower but for any platform: npm install ${wasm}@${pkg.version}`,
    `- or build from source with Rust (see docs/install.md, "Building from source")`,
  );
  const causes = [];
  // The loader's own summary blames npm for every miss; its causes are the facts.
  const first = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  for (let e: unknown = first; e instanceof Error && causes.length < 8; e = e.cause) causes.push(`  ${e.message.split('\n')[0]}`);
  return `${lines.join('\n')}\nLoader errors, in the order tried:\n${causes.reverse().join('\n')}`;
}
