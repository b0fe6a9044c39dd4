import { existsSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { openDataset } from '../io/index.js';
import type { SampleText } from '../io/types.js';
import { isReferenceSetName, listReferenceSets, loadReferenceSet, type ReferenceRole } from '../refsets/index.js';
import type { ReferenceSummary } from '../report/types.js';
import type { PurifyOptions } from './options.js';

export interface LoadedReferences {
  samples: SampleText[];
  summary: ReferenceSummary[];
  warnings: string[];
}

/**
 * Reads one reference source: a named set, or else an existing file (any
 * dataset format). A set's name always means the set, whatever the working
 * folder holds: a file or folder of that name is read only when written as a
 * path (`./harmbench`), and a warning says so when one is there.
 */
async function loadSource(
  source: string,
  role: ReferenceRole,
  o: PurifyOptions,
): Promise<{ samples: SampleText[]; summary: ReferenceSummary; warnings: string[] }> {
  if (isReferenceSetName(source)) {
    const set = await loadReferenceSet(source, {
      dataDir: o.dataDir,
      cacheDir: o.cacheDir,
      offline: o.offline,
      signal: o.signal,
    });
    const warnings: string[] = [];
    if (existsSync(source))
      warnings.push(
        `"${source}" names the built-in reference set, which was used; the local "${source}" was not (write ./${source} to use it)`,
      );
    if (set.role !== role)
      warnings.push(
        `reference set "${source}" is a ${set.role} set but is used as the ${role === 'anchor' ? 'safe anchor' : 'harmful reference'}`,
      );
    return {
      samples: set.samples,
      summary: { source, count: set.samples.length, licence: set.licence.spdx },
      warnings,
    };
  }
  if (existsSync(source)) {
    const ds = await openDataset(source, { skipInvalid: o.skipInvalid, maxLineBytes: o.maxLineBytes });
    const samples: SampleText[] = [];
    for await (const { text } of ds) samples.push(text);
    return { samples, summary: { source, count: samples.length }, warnings: [] };
  }
  const known = listReferenceSets(role)
    .map((s) => s.name)
    .join(', ');
  throw new OptionError(
    'ERR_OPTION',
    `${role} reference "${source}" is neither an existing file nor a named set (named ${role} sets: ${known})`,
  );
}

async function loadAll(sources: string[], role: ReferenceRole, o: PurifyOptions): Promise<LoadedReferences> {
  const out: LoadedReferences = { samples: [], summary: [], warnings: [] };
  for (const s of sources) {
    const r = await loadSource(s, role, o);
    if (r.samples.length === 0) throw new OptionError('ERR_OPTION', `${role} reference "${s}" holds no samples`);
    for (const x of r.samples) out.samples.push(x); // no spread: sets can be large
    out.summary.push(r.summary);
    out.warnings.push(...r.warnings);
  }
  return out;
}

/** Loads the harmful reference and the safe anchor (possibly empty). */
export async function loadReferences(
  o: PurifyOptions,
): Promise<{ harmful: LoadedReferences; anchor: LoadedReferences }> {
  return { harmful: await loadAll(o.harmful, 'harmful', o), anchor: await loadAll(o.anchor ?? [], 'anchor', o) };
}
