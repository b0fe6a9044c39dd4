// Hugging Face `datasets` reads SOT's purified JSONL and Parquet outputs with
// their training weights: the loading block of docs/training-weights.md is
// run as written, in a folder where `sot purify` wrote the files it names.
// `datasets` comes from a test-only virtualenv: SOT_DATASETS_PYTHON names its
// python (.ci/run makes it, next to pyarrow); without it the test is skipped
// locally and fails in CI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { beforeAll, describe, expect, it } from 'vitest';
import { alpacaOk, CLI, DATA_DIR, readJsonl, ROOT, writeJsonl } from './datasets.js';

const PYTHON = process.env.SOT_DATASETS_PYTHON;
const IN_CI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

/** The ```python blocks of the docs page, in order; the first is the loading code. */
function pythonBlocks(): string[] {
  const page = readFileSync(join(ROOT, 'docs', 'training-weights.md'), 'utf8');
  const blocks = [...page.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]!);
  expect(blocks.length, 'python blocks in docs/training-weights.md').toBeGreaterThan(0);
  return blocks;
}

function purify(dir: string, input: string) {
  const env = {
    ...process.env,
    SOT_DATA_DIR: DATA_DIR,
    SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')),
    SOT_OFFLINE: '1',
  };
  const r = spawnSync(
    process.execPath,
    [CLI, 'purify', join(dir, input), '--harmful', 'advbench', '--no-html', '--json'],
    { env, encoding: 'utf8', timeout: 120_000 },
  );
  expect(r.status, r.stdout + r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { n: number; k: number; outputs: { dataset: string } };
}

describe.skipIf(!PYTHON && !IN_CI)(
  'datasets reads the purified files and their weights (docs/training-weights.md)',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-hf-'));
    const pairs = alpacaOk().slice(0, 60);
    let jsonl: { n: number; k: number; outputs: { dataset: string } };
    let parquet: { n: number; k: number; outputs: { dataset: string } };

    beforeAll(() => {
      writeJsonl(join(dir, 'train.jsonl'), pairs);
      parquetWriteFile({
        filename: join(dir, 'chats.parquet'),
        columnData: [
          { name: 'prompt', data: pairs.map((p) => p.instruction), type: 'STRING' },
          { name: 'response', data: pairs.map((p) => p.output), type: 'STRING' },
          { name: 'id', data: pairs.map((_, i) => i), type: 'INT32' },
        ] as never,
      });
      jsonl = purify(dir, 'train.jsonl');
      parquet = purify(dir, 'chats.parquet');
    }, 240_000);

    it('runs the loading block as written and finds every kept record with its weight', () => {
      expect(
        PYTHON,
        'SOT_DATASETS_PYTHON must name a python with datasets (.ci/run makes the virtualenv)',
      ).toBeTruthy();
      expect(jsonl.outputs.dataset).toBe(join(dir, 'train.purified.jsonl'));
      expect(parquet.outputs.dataset).toBe(join(dir, 'chats.purified.parquet'));
      const check = `
import json
print(json.dumps({
    "jsonl": {"rows": ds.num_rows, "columns": ds.column_names, "dtype": str(ds.features["sot_weight"].dtype), "weights": [float(w) for w in weights]},
    "parquet": {"rows": pq.num_rows, "columns": pq.column_names, "dtype": str(pq.features["sot_weight"].dtype),
                "weights": [float(w) for w in pq["sot_weight"][:]], "ids": [int(i) for i in pq["id"][:]]},
}))
`;
      const cache = mkdtempSync(join(tmpdir(), 'sot-hf-cache-'));
      const r = spawnSync(PYTHON!, ['-c', pythonBlocks()[0]! + check], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 180_000,
        env: {
          ...process.env,
          HF_HOME: cache,
          HF_DATASETS_CACHE: cache,
          HF_HUB_OFFLINE: '1',
          HF_DATASETS_OFFLINE: '1',
        },
      });
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toMatch(new RegExp(`^${jsonl.k} records, mean weight 1\\.0`));
      const out = JSON.parse(lines.at(-1)!);

      // JSONL: the records SOT kept, in order, with the weights it wrote.
      const kept = readJsonl<{ instruction: string; sot_weight: number }>(jsonl.outputs.dataset);
      expect(out.jsonl.rows).toBe(jsonl.k);
      expect(out.jsonl.columns).toEqual(['instruction', 'input', 'output', 'sot_weight']);
      expect(out.jsonl.dtype).toBe('float64');
      expect(out.jsonl.weights).toEqual(kept.map((k) => k.sot_weight));
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
      expect(mean(out.jsonl.weights)).toBeCloseTo(1, 9);
      expect(new Set(out.jsonl.weights).size).toBeGreaterThan(1);

      // Parquet: the input's columns, then the weight as a float64 column.
      expect(out.parquet.rows).toBe(parquet.k);
      expect(out.parquet.columns).toEqual(['prompt', 'response', 'id', 'sot_weight']);
      expect(out.parquet.dtype).toBe('float64');
      expect(mean(out.parquet.weights)).toBeCloseTo(1, 9);
      expect(out.parquet.ids).toEqual([...out.parquet.ids].sort((a: number, b: number) => a - b));
      expect(out.parquet.weights.every((w: number) => w > 0)).toBe(true);
    });

    it('every other block of the page (training with Trainer, TRL, PyTorch) is valid Python', () => {
      const blocks = pythonBlocks();
      expect(blocks.length).toBeGreaterThanOrEqual(4);
      const r = spawnSync(PYTHON!, ['-c', 'import ast, json, sys\nfor b in json.load(sys.stdin): ast.parse(b)'], {
        input: JSON.stringify(blocks),
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
    });
  },
);
