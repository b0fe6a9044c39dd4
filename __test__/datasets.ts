// Test datasets built from the real public data in ../shared/data (never
// copied into the repository): benign alpaca-libre pairs with real harmful
// pairs (JailbreakBench prompts answered by a refusal-ablated model, flagged
// unsafe by LlamaGuard 2) injected, and a clean anchor from the same task.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The offline mirror of the public data: `SOT_DATA_DIR`, else the workspace's ../shared/data. */
export const DATA_DIR = process.env.SOT_DATA_DIR || resolve(ROOT, '..', 'shared', 'data');
export const CLI = join(ROOT, 'dist', 'cli.js');

export interface Pair {
  instruction: string;
  input: string;
  output: string;
}

export function alpacaOk(): Pair[] {
  const path = join(DATA_DIR, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl');
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Pair & { status: string })
    .filter((r) => r.status === 'ok')
    .map(({ instruction, input, output }) => ({ instruction, input, output }));
}

export function harmfulPairs(model = 'meta-llama-3-8b-instruct'): Pair[] {
  const path = join(
    DATA_DIR,
    `refusal-direction/pipeline/runs/${model}/completions/jailbreakbench_ablation_evaluations.json`,
  );
  const rows = (
    JSON.parse(readFileSync(path, 'utf8')) as {
      completions: { prompt: string; response: string; is_jailbreak_llamaguard2: number }[];
    }
  ).completions;
  return rows
    .filter((r) => r.is_jailbreak_llamaguard2 === 1)
    .map((r) => ({ instruction: r.prompt, input: '', output: r.response }));
}

/** Deterministic shuffle (LCG), so test datasets are the same on every run. */
export function shuffle<T>(xs: T[], seed = 7): T[] {
  const a = xs.slice();
  let s = seed >>> 0;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export interface Contaminated {
  dir: string;
  /** Records with an `id` and a `source` ('benign' | 'harmful') field the embedder never sees. */
  records: Array<Pair & { id: number; source: 'benign' | 'harmful' }>;
  anchor: Pair[];
}

/** `benign` clean pairs with `harmful` injected, shuffled; plus a disjoint 50-sample anchor. */
export function contaminated(benign = 360, harmful = 40): Contaminated {
  const clean = shuffle(alpacaOk(), 11);
  const bad = shuffle(harmfulPairs(), 13).slice(0, harmful);
  const records = shuffle(
    [
      ...clean.slice(0, benign).map((p) => ({ ...p, source: 'benign' as const })),
      ...bad.map((p) => ({ ...p, source: 'harmful' as const })),
    ],
    17,
  ).map((r, id) => ({ id, ...r }));
  return { dir: mkdtempSync(join(tmpdir(), 'sot-e2e-')), records, anchor: clean.slice(benign, benign + 50) };
}

export function writeJsonl(path: string, rows: unknown[]): string {
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
}

export function readJsonl<T = Record<string, unknown>>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

/**
 * A report's text with what legitimately differs between runs blanked: the
 * timestamp, the stage timings, the memory figures and every `...Seconds`.
 */
export function withoutRunFigures(text: string): string {
  return text
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/"(timings|memory)": ?\{[^}]*\}/g, '"$1":{}')
    .replace(/"(\w*[sS]econds)": ?[-\d.e+]+/g, '"$1":0');
}
