// The progress display ends every stage on its final figures, even when the
// last update came too soon after the previous one to be drawn, with one
// summary line per stage; off a terminal it prints nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressLine } from '../src/cli/progress.js';
import { alpacaOk, CLI, DATA_DIR, writeJsonl } from './datasets.js';

/** A terminal's stream, as the progress line sees it: what was written, with carriage returns applied. */
class Terminal extends Writable {
  isTTY = true;
  raw = '';
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.raw += chunk.toString();
    done();
  }
  /** The lines as they end up on screen (each \r returns to the start of the line). */
  get screen(): string[] {
    return this.raw.split('\n').map((line) => {
      let shown = '';
      for (const part of line.split('\r')) shown = part + shown.slice(part.length);
      return shown.trimEnd();
    });
  }
}

describe('ProgressLine', () => {
  it('ends each stage on its final figures with a summary line, however the updates were throttled', () => {
    const term = new Terminal();
    let now = 0;
    const bar = new ProgressLine(term as never, true, () => now);
    bar.update({ stage: 'read', done: 1000 });
    now += 20;
    bar.update({ stage: 'read', done: 2500 }); // throttled: not drawn now
    now += 30;
    bar.update({ stage: 'embed', done: 0, total: 2500 });
    now += 10;
    bar.update({ stage: 'embed', done: 1200, total: 2500 }); // throttled
    now += 1200;
    bar.update({ stage: 'learn', done: 3 });
    now += 50;
    bar.update({ stage: 'learn', done: 41 }); // throttled, the learner's last report
    now += 10;
    bar.update({ stage: 'select', done: 2000, total: 2500 });
    bar.update({ stage: 'write', done: 2500, total: 2500 });
    bar.done();
    bar.done(); // twice is harmless
    expect(term.screen).toEqual([
      'reading           done: 2,500 records read in 0.1s',
      'embedding         done: 1,200 of 2,500 records embedded in 1.2s',
      'learning weights  done: 41 steps run in 0.1s',
      'selecting         done: 2,000 of 2,500 records kept in 0.0s',
      'writing           done: 2,000 records written (2,500 of 2,500 passed over) in 0.0s',
      '',
    ]);
  });

  it('prints nothing off a terminal or when disabled', () => {
    for (const [isTTY, enabled] of [
      [false, true],
      [true, false],
    ] as const) {
      const term = new Terminal();
      term.isTTY = isTTY;
      const bar = new ProgressLine(term as never, enabled);
      bar.update({ stage: 'read', done: 10 });
      bar.done();
      expect(term.raw).toBe('');
    }
  });
});

// util-linux `script` gives the CLI a real terminal (a pseudo-TTY) for stderr.
const SCRIPT = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));

/** A dataset of 40 alpaca records in a fresh folder, and a runner of the CLI on a pseudo-terminal that gives its stages' closing lines. */
function onTerminal() {
  const dir = mkdtempSync(join(tmpdir(), 'sot-tty-'));
  const input = writeJsonl(join(dir, 'train.jsonl'), alpacaOk().slice(0, 40));
  const env = {
    ...process.env,
    SOT_DATA_DIR: DATA_DIR,
    SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')),
    SOT_OFFLINE: '1',
  };
  const tty = (args: string[]) => {
    const command = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
    const r = spawnSync(SCRIPT!, ['-qec', command, '/dev/null'], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    return r.stdout
      .split(/[\r\n]+/)
      .filter((l) => / done: /.test(l))
      .map((l) => l.replace(/ in \d+\.\d+s\s*$/, ''));
  };
  return { dir, input, tty };
}

describe.skipIf(SCRIPT === undefined)('sot purify on a terminal', () => {
  it("ends each stage's line on the run's real figures", () => {
    const { dir, input, tty } = onTerminal();
    const summaries = tty(['purify', input, '--harmful', 'advbench', '--no-html']);
    const report = JSON.parse(readFileSync(join(dir, 'train.purified.report.json'), 'utf8'));
    expect(summaries).toEqual([
      'reading           done: 40 records read',
      'embedding         done: 40 of 40 records embedded',
      `references        done: ${report.references.harmful.reduce((s: number, h: { count: number }) => s + h.count, 0)} reference samples embedded`,
      `learning weights  done: ${report.learner.steps} steps run`,
      'selecting         done: 32 of 40 records kept',
      'writing           done: 32 records written (40 of 40 passed over)',
    ]);
  });

  it('sot fit and sot score show their stages too, the removed records explained', () => {
    const { dir, input, tty: run } = onTerminal();
    const model = join(dir, 'm.sot-model');
    const tty = (args: string[]) =>
      run(args).map((l) => l.replace(/\d+ (reference samples embedded|steps run)/, 'N $1'));
    expect(tty(['fit', input, '--harmful', 'advbench', '--model-file', model])).toEqual([
      'reading           done: 40 records read',
      'embedding         done: 40 of 40 records embedded',
      'references        done: N reference samples embedded',
      'learning weights  done: N steps run',
      'writing           done: written',
    ]);
    expect(tty(['score', input, '--model-file', model, '--keep', '0.8', '--refit', '1'])).toEqual([
      'refitting         done: 40 records in the last pass',
      'scoring           done: 40 records scored',
      'selecting         done: 32 of 40 records kept',
      'reasons           done: 8 of 8 dropped records explained',
      'writing           done: 32 records written (40 of 40 passed over)',
    ]);
  });
});
