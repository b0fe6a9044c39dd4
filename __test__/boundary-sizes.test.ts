// The native boundary, part 2: sizes. Calls sized past what a typed array,
// the memory budget or the machine holds (up to 2^32 rows and columns) run in
// a child process under `ulimit -v`, so an abort is a failed assertion. Each
// must reject with a typed error that names the sizes, before doing the work.
// Thread counts from the environment are capped.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './datasets.js';

const CHILD = join(ROOT, '__test__', 'fixtures', 'boundary-sizes.mjs');
/** Virtual memory of the child, in KiB: far below any of the sizes asked for. */
const ULIMIT_KB = 8_000_000;

function child(name: string, env: Record<string, string> = {}) {
  const r = spawnSync('bash', ['-c', `ulimit -v ${ULIMIT_KB}; exec "$0" "$1" "$2"`, process.execPath, CHILD, name], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  const settled = r.stdout.trim().split('\n').at(-1) ?? '';
  return {
    status: r.status,
    signal: r.signal,
    stderr: r.stderr,
    settled: settled.startsWith('{') ? JSON.parse(settled) : settled,
  };
}

const typed = (code: string, message: RegExp) => ({
  status: 0,
  signal: null,
  settled: expect.objectContaining({ code, message: expect.stringMatching(message) }),
});
const tooLargeForJs = (what: string, rows: number, cols: number) =>
  typed(
    'ERR_OPTION',
    new RegExp(
      `^${what} of ${rows} x ${cols} values would take ${rows * cols * 4} bytes, over the 4294967296 bytes \\(4 GiB\\)`,
    ),
  );
const overBudget = (n: number, m: number) =>
  typed(
    'ERR_OPTION',
    new RegExp(`dense storage of the ${n} x ${m} costs needs \\d+ MiB, over the memory budget of 4096 MiB`),
  );
const refused = (values: number) =>
  typed('ERR_OPTION', new RegExp(`could not allocate \\d+ MiB \\(${values} values\\)`));

describe('sizes past the typed-array limit, the budget or memory are typed errors, never aborts', () => {
  const cases: [string, ReturnType<typeof typed>][] = [
    ['costMatrix200k', tooLargeForJs('the cost matrix', 200_000, 200_000)],
    ['costMatrix50k', tooLargeForJs('the cost matrix', 50_000, 50_000)],
    ['costMatrixJustOver4GiB', tooLargeForJs('the cost matrix', 65_536, 16_385)],
    ['embedWide', tooLargeForJs('the embedding', 5000, 2 ** 20)],
    ['poolWide', tooLargeForJs('the pooled rows', 2 ** 15, 2 ** 18)],
    ['divergence200k', overBudget(200_000, 200_000)],
    ['sinkhornDense200k', overBudget(200_000, 200_000)],
    ['learnDebiased60k', overBudget(60_000, 60_000)],
    ['divergence200kHugeBudget', refused(200_000 * 200_000)],
    ['sinkhornDense200kHugeBudget', refused(200_000 * 200_000)],
    ['learnDebiased200kHugeBudget', refused(200_000 * 200_000)],
    [
      'rowsAtU32Limit',
      typed('ERR_SHAPE', /x holds 4 values but its shape is 4294967295 x 4294967295 = 18446744065119617025/),
    ],
    ['rowsTimesColsIs2To32', typed('ERR_SHAPE', /x holds 0 values but its shape is 65536 x 65536 = 4294967296/)],
  ];
  it.each(cases)('%s', (name, expected) => {
    expect(child(name)).toMatchObject(expected);
  });

  it('SOT_NUM_THREADS=1000000 is capped at 4 threads per core, with a warning, and a tiny solve finishes', () => {
    const cap = 4 * availableParallelism();
    const r = child('threads', { SOT_NUM_THREADS: '1000000' });
    expect(r).toMatchObject({ status: 0, signal: null, settled: { resolved: true, threads: cap } });
    expect(r.stderr).toContain(`SOT_NUM_THREADS=1000000 capped at ${cap} threads`);
  });
});
