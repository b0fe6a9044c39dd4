import { existsSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { PrecomputedEmbedder, siblingNpy } from '../embed/precomputed.js';
import type { Embedder } from '../embed/types.js';
import type { RolePath } from '../io/index.js';
import { cachedFilePath, resolveFetchOptions } from '../refsets/fetch.js';
import { referenceSetDefinition } from '../refsets/registry.js';
import type { PurifyOptions } from './options.js';

/** `dir/stem.ext` -> `dir/stem<suffix>` (suffix includes its own extension). */
function sibling(path: string, suffix: string): string {
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}${suffix}`);
}

/** Default output paths: next to the input, named after it. */
export function outputPaths(o: {
  input: string;
  output?: string;
  scores?: string;
  report?: string;
  html?: string | null;
  removed?: string | null;
}) {
  const output = o.output ?? sibling(o.input, `.purified${extname(o.input)}`);
  return {
    output,
    // <stem>.removed.<ext>: beside the input when the output is, else beside the output, named after it
    removed:
      o.removed === null
        ? null
        : (o.removed ??
          (o.output === undefined
            ? sibling(o.input, `.removed${extname(o.input)}`)
            : sibling(output, `.removed${extname(output)}`))),
    scores: o.scores ?? sibling(output, '.scores.csv'),
    report: o.report ?? sibling(output, '.report.json'),
    html: o.html === null ? null : (o.html ?? sibling(output, '.report.html')),
  };
}

/** The outputs a run writes, each with what it is (for messages), in the order they are committed. */
export function outputRoles(paths: ReturnType<typeof outputPaths>): Array<{ path: string; what: string }> {
  return [
    { path: paths.output, what: 'the dataset output' },
    { path: paths.scores, what: 'the scores output' },
    ...(paths.removed === null ? [] : [{ path: paths.removed, what: 'the removed records' }]),
    { path: paths.report, what: 'the JSON report' },
    ...(paths.html === null ? [] : [{ path: paths.html, what: 'the HTML report' }]),
  ];
}

/**
 * The files a run reads, for the output checks: the input, the vectors file
 * of precomputed vectors, every reference source that names an existing
 * file (with its vectors file under precomputed vectors), and the files of
 * each named set in the data dir and the cache.
 */
export function runReads(
  o: Pick<PurifyOptions, 'input' | 'harmful' | 'anchor' | 'dataDir' | 'cacheDir'>,
  embedder: Embedder,
): RolePath[] {
  const reads: RolePath[] = [{ path: o.input, what: 'the input file' }];
  const npy = embedder instanceof PrecomputedEmbedder ? embedder.npy : undefined;
  if (npy !== undefined) reads.push({ path: npy, what: 'the vectors file (--vectors-npy)' });
  const { dataDir, cacheDir } = resolveFetchOptions({ dataDir: o.dataDir, cacheDir: o.cacheDir });
  for (const [role, sources] of [
    ['harmful', o.harmful],
    ['anchor', o.anchor ?? []],
  ] as const) {
    for (const source of sources) {
      const set = referenceSetDefinition(source);
      if (set !== undefined) {
        for (const file of set.files) {
          if (dataDir !== undefined)
            reads.push({ path: join(dataDir, file.path), what: `the data-dir copy of reference set "${source}"` });
          reads.push({ path: cachedFilePath(file, cacheDir), what: `the cached copy of reference set "${source}"` });
        }
        continue;
      }
      if (!existsSync(source)) continue;
      reads.push({ path: source, what: `the ${role} reference file` });
      if (npy !== undefined)
        reads.push({ path: siblingNpy(source), what: `the vectors of the ${role} reference file` });
    }
  }
  return reads;
}
