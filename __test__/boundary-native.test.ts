// The native boundary, part 1: no JS caller can make a pending async call read
// freed or changed memory. Every async entry point starts, then its typed-array
// inputs are transferred away, shrunk to nothing (resizable buffers), overwritten,
// or dropped and collected, while it runs; SharedArrayBuffer inputs are
// overwritten too (they are snapshotted when the call starts). The call runs in
// a child process, so a crash is a failed assertion: it must exit 0 with the
// result of an untouched copy of the inputs.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './datasets.js';

const CHILD = join(ROOT, '__test__', 'fixtures', 'boundary-native.mjs');
const ENTRIES = [
  'costMatrix',
  'sinkhornCost',
  'sinkhornPoints',
  'sinkhornBlocked',
  'sinkhornDivergence',
  'learnWeights',
  'scoreSamples',
  'scoreWithModel',
  'selectTopK',
  'gibbsWeights',
  'project2d',
  'embedTexts',
  'poolRows',
];
const ATTACKS = ['transfer', 'resize', 'overwrite', 'gc', 'shared'];

function child(entry: string, attack: string) {
  const r = spawnSync(process.execPath, ['--expose-gc', CHILD, entry, attack], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, output: `${r.stdout}${r.stderr}`.slice(-2000) };
}

describe('async calls own their typed-array inputs', () => {
  for (const attack of ATTACKS) {
    it.each(ENTRIES)(
      `%s survives its inputs being ${attack === 'shared' ? 'shared and overwritten' : attack}`,
      (entry) => {
        expect(child(entry, attack)).toEqual({ status: 0, signal: null, output: `${entry}/${attack}: ok\n` });
      },
    );
  }

  it('a getter that shrinks an array already read cannot reach the pending call', () => {
    expect(child('costMatrix', 'getter')).toEqual({ status: 0, signal: null, output: 'costMatrix/getter: ok\n' });
  });
});
