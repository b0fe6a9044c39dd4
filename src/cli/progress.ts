import type { Stage, StageProgress } from '../pipeline/options.js';

const LABEL: Record<Stage, string> = {
  read: 'reading',
  embed: 'embedding',
  references: 'references',
  learn: 'learning weights',
  select: 'selecting',
  write: 'writing',
};

/**
 * One-line progress on stderr for a TTY: a bar when the total is known, a
 * counter otherwise, redrawn at most every 100 ms. Silent when stderr is not
 * a terminal (logs, CI) or when disabled.
 */
export class ProgressLine {
  private readonly enabled: boolean;
  private last = 0;
  private stage: Stage | null = null;
  private stageStart = 0;
  private width = 0;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr, enabled = true) {
    this.enabled = enabled && out.isTTY === true;
  }

  update(e: StageProgress): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (e.stage !== this.stage) {
      if (this.stage !== null) this.finishStage();
      this.stage = e.stage;
      this.stageStart = now;
      this.last = 0;
    }
    if (now - this.last < 100 && !(e.total !== undefined && e.done >= e.total)) return;
    this.last = now;
    this.draw(e, now);
  }

  /** Ends the current line (call before printing anything else). */
  done(): void {
    if (!this.enabled || this.stage === null) return;
    this.finishStage();
    this.stage = null;
  }

  private finishStage(): void {
    this.out.write('\n');
    this.width = 0;
  }

  private draw(e: StageProgress, now: number): void {
    const secs = ((now - this.stageStart) / 1000).toFixed(1);
    let line: string;
    if (e.total !== undefined && e.total > 0) {
      const f = Math.min(1, e.done / e.total);
      const cells = 24;
      const full = Math.round(f * cells);
      line = `${LABEL[e.stage].padEnd(17)} [${'#'.repeat(full)}${'.'.repeat(cells - full)}] ${(100 * f).toFixed(0).padStart(3)}% ${e.done.toLocaleString('en-US')}/${e.total.toLocaleString('en-US')} ${secs}s`;
    } else {
      line = `${LABEL[e.stage].padEnd(17)} ${e.done.toLocaleString('en-US')} ${secs}s`;
    }
    const pad = Math.max(0, this.width - line.length);
    this.width = line.length;
    this.out.write(`\r${line}${' '.repeat(pad)}`);
  }
}
