import type { FitStage } from '../fit/fit.js';
import type { ScoreStage } from '../fit/score.js';
import type { Stage } from '../pipeline/options.js';

/** The stages shown: purify's and embed's, fit's and score's. */
export type ShownStage = Stage | FitStage | ScoreStage;

/** One report of a stage's progress, in its own units. */
export interface ShownProgress {
  stage: ShownStage;
  done: number;
  total?: number;
}

const LABEL: Record<ShownStage, string> = {
  read: 'reading',
  embed: 'embedding',
  references: 'references',
  learn: 'learning weights',
  refit: 'refitting',
  score: 'scoring',
  select: 'selecting',
  reasons: 'reasons',
  write: 'writing',
};

const n = (x: number) => x.toLocaleString('en-US');

const of = (e: ShownProgress) => `${n(e.done)}${e.total !== undefined ? ` of ${n(e.total)}` : ''}`;

/** A stage's final figures, in its own units; `kept` is the selection's, which the write stage copies. */
const SUMMARY: Record<ShownStage, (e: ShownProgress, kept?: number) => string> = {
  read: (e) => `${n(e.done)} records read`,
  embed: (e) => `${of(e)} records embedded`,
  references: (e) => `${n(e.done)} reference samples embedded`,
  learn: (e) => `${n(e.done)} steps run`,
  // each pass reports from 0 again: the last pass's records
  refit: (e) => `${of(e)} records in the last pass`,
  score: (e) => `${of(e)} records scored`,
  select: (e) => `${of(e)} records kept`,
  reasons: (e) => `${of(e)} dropped records explained`,
  // The writer passes over every input record and writes the kept ones; fit's writes its model file (no total).
  write: (e, kept) =>
    e.total === undefined
      ? 'written'
      : kept === undefined
        ? `${of(e)} records passed over`
        : `${n(kept)} records written (${of(e)} passed over)`,
};

/**
 * Progress on stderr for a TTY: one line per stage, a bar when the total is
 * known and a counter otherwise, redrawn at most every 100 ms; when the stage
 * ends its line is replaced by a summary of its final figures (the last
 * update, which throttling may have kept from being drawn). Silent when
 * stderr is not a terminal (logs, CI) or when disabled.
 */
export class ProgressLine {
  private readonly enabled: boolean;
  private last = 0;
  private stage: ShownStage | null = null;
  private stageStart = 0;
  private latest: ShownProgress | null = null;
  private kept: number | undefined;
  private width = 0;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
    enabled = true,
    private readonly now: () => number = Date.now,
  ) {
    this.enabled = enabled && out.isTTY === true;
  }

  update(e: ShownProgress): void {
    if (!this.enabled) return;
    const now = this.now();
    if (e.stage !== this.stage) {
      if (this.stage !== null) this.finishStage(now);
      this.stage = e.stage;
      this.stageStart = now;
      this.last = 0;
    }
    this.latest = e;
    if (now - this.last < 100 && !(e.total !== undefined && e.done >= e.total)) return;
    this.last = now;
    this.put(this.bar(e, now));
  }

  /** Ends the current stage with its summary (call before printing anything else). */
  done(): void {
    if (!this.enabled || this.stage === null) return;
    this.finishStage(this.now());
    this.stage = null;
  }

  private finishStage(now: number): void {
    const e = this.latest;
    if (e !== null && this.stage !== null) {
      if (this.stage === 'select') this.kept = e.done;
      this.put(`${LABEL[this.stage].padEnd(17)} done: ${SUMMARY[this.stage](e, this.kept)} in ${this.secs(now)}s`);
    }
    this.out.write('\n');
    this.width = 0;
    this.latest = null;
  }

  private secs(now: number): string {
    return ((now - this.stageStart) / 1000).toFixed(1);
  }

  private bar(e: ShownProgress, now: number): string {
    if (e.total !== undefined && e.total > 0) {
      const f = Math.min(1, e.done / e.total);
      const cells = 24;
      const full = Math.round(f * cells);
      return `${LABEL[e.stage].padEnd(17)} [${'#'.repeat(full)}${'.'.repeat(cells - full)}] ${(100 * f).toFixed(0).padStart(3)}% ${n(e.done)}/${n(e.total)} ${this.secs(now)}s`;
    }
    return `${LABEL[e.stage].padEnd(17)} ${n(e.done)} ${this.secs(now)}s`;
  }

  /** Redraws the line, blanking what the previous, longer text left. */
  private put(line: string): void {
    const pad = Math.max(0, this.width - line.length);
    this.width = line.length;
    this.out.write(`\r${line}${' '.repeat(pad)}`);
  }
}
