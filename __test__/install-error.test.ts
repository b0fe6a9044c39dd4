// Installed without a binary for this platform (npm --omit=optional, a lock
// file from another OS): the CLI's help still works, and the first call that
// needs the addon fails with what was detected and how to fix it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, installInto, packRoot } from './installed.js';

let app: string;

beforeAll(() => {
  app = installInto(packRoot(mkdtempSync(join(tmpdir(), 'sot-pack-'))), false, 'module');
}, 120_000);

const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: app, encoding: 'utf8', timeout: 60_000 });
const cli = join('node_modules', 'sot-purify', 'dist', 'cli.js');

describe.skipIf(process.platform !== 'linux' || process.arch !== 'x64')('without the platform package', () => {
  it('still runs `sot --help` and `sot sets`', () => {
    const help = node([cli, '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sot /);
    // The option help quotes the core's defaults, and says it cannot read them.
    const purifyHelp = node([cli, 'purify', '--help']);
    expect(purifyHelp.status, purifyHelp.stderr).toBe(0);
    const flat = purifyHelp.stdout.replace(/\s+/g, ' ');
    expect(flat).toContain(
      "--tau <x> KL regularisation towards uniform weights (default the native core's (it could not be loaded))",
    );
    expect(flat).toContain('(default 0.02 with --embedder builtin (the default);');
    const sets = node([cli, 'sets']);
    expect(sets.status).toBe(0);
    expect(sets.stdout).toMatch(/^advbench /m);
  });

  it('imports, then rejects the first native call with a BindingError that says what to do', () => {
    const script = `
      import { sinkhorn, BindingError } from 'sot-purify';
      try { await sinkhorn({ cost: [[0, 1], [1, 0]] }); console.log('loaded'); }
      catch (e) {
        const chain = [];
        for (let c = e; c instanceof Error; c = c.cause) chain.push(c.message);
        console.log(JSON.stringify({ binding: e instanceof BindingError, code: e.code, message: e.message, chain: chain.join(' | ') }));
      }`;
    const r = node(['--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    const err = JSON.parse(r.stdout) as { binding: boolean; code: string; message: string; chain: string };
    expect(err.binding).toBe(true);
    expect(err.code).toBe('ERR_BINDING');
    const lines = err.message.split('\n');
    expect(lines[0]).toBe(
      `sot-purify could not load its native addon on linux x64 (glibc), Node ${process.versions.node}.`,
    );
    expect(err.message).toContain(`sot-purify-${PLATFORM}@`);
    expect(err.message).toContain('is not installed');
    expect(err.message).toContain('without --omit=optional');
    expect(err.message).toContain('npm install sot-purify-wasm32-wasi@');
    expect(err.message).toContain('build from source with Rust');
    // Every place the loader looked, and no blame on npm anywhere along the causes.
    expect(err.message).toContain(`Cannot find module 'sot-purify-${PLATFORM}'`);
    expect(err.chain).not.toMatch(/npm has a bug|issues\/4828/);
  });

  it('fails a CLI command that needs the addon with the same message', () => {
    writeFileSync(join(app, 'data.jsonl'), '{"text":"hello"}\n{"text":"world"}\n');
    const r = node([cli, 'embed', 'data.jsonl', '-o', 'out.npy']);
    expect(r.status).toBe(7); // its own exit code, not 1 ("a bug")
    expect(r.stderr).toContain('could not load its native addon on linux x64 (glibc)');
    expect(existsSync(join(app, 'out.npy'))).toBe(false);
  });
});
