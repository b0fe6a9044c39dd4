/** The Chromium on PATH, or undefined. */
export function findChromium(): string | undefined;
export interface Page {
  /** Runs an expression in the page (awaiting a promise) and resolves to its value. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** The page's DevTools performance metrics (ProcessTime, TaskDuration, ... in seconds), by name. */
  metrics(): Promise<Record<string, number>>;
  close(): Promise<void>;
}
export function openPage(url: string, options?: { timeoutMs?: number; width?: number; height?: number }): Promise<Page>;
/** An expression that waits (polling) until `condition` holds in the page, then yields it. */
export function waitFor(condition: string, timeoutMs?: number): string;
