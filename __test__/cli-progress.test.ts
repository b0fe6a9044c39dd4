// The progress display ends every stage on its final figures, even when the
// last update came too soon after the previous one to be drawn, with one
// summary line per stage; off a terminal it prints nothing.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressLine } from '../src/cli/progress.js';

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
      'writing           done: 2,500 of 2,500 records written in 0.0s',
      '',
    ]);
  });

  it('prints nothing off a terminal or when disabled', () => {
    for (const [isTTY, enabled] of [[false, true], [true, false]] as const) {
      const term = new Terminal();
      term.isTTY = isTTY;
      const bar = new ProgressLine(term as never, enabled);
      bar.update({ stage: 'read', done: 10 });
      bar.done();
      expect(term.raw).toBe('');
    }
  });
});
