// Parquet files whose columns SOT could not write back unchanged are refused
// when opened, before any work, with an InputError that says why. (Summary
// files whose columns live in other files: parquet-roundtrip.test.ts, which
// has pyarrow write one.)
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { openDataset } from '../src/io/index.js';
import { tempDir } from './io-helpers.js';

const dir = tempDir();

function withArrowSchema(name: string, value: string): string {
  const path = join(dir, name);
  parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'prompt', data: ['a question'], type: 'STRING' },
      { name: 'response', data: ['an answer'], type: 'STRING' },
    ],
    kvMetadata: [{ key: 'ARROW:schema', value }],
  });
  return path;
}

describe('Parquet refusals', () => {
  it('an ARROW:schema that is not an Arrow schema message', async () => {
    for (const [name, value] of [
      ['text.parquet', 'not base64 at all!'],
      ['short.parquet', 'AAAA'],
      ['zeros.parquet', Buffer.alloc(64).toString('base64')],
    ]) {
      const err = await openDataset(withArrowSchema(name!, value!)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).message).toMatch(
        new RegExp(
          `${name}: the file's ARROW:schema metadata cannot be read \\(.+\\): SOT cannot write the file back unchanged`,
        ),
      );
    }
  });
});
