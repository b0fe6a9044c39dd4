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

/** Reads one reference source: an existing file (any dataset format) or a named set. */
async function loadSource(source: string, role: ReferenceRole, o: PurifyOptions): Promise<{ samples: SampleText[]; summary: ReferenceSummary; warning?: string }> {
  if (existsSync(source)) {
    const ds = await openDataset(source, { skipInvalid: o.skipInvalid, maxLineBytes: o.maxLineBytes });
    const samples: SampleText[] = [];
    for await (const { text } of ds) samples.push(text);
    return { samples, summary: { source, count: samples.length } };
  }
  if (isReferenceSetName(source)) {
    const set = await loadReferenceSet(source, { dataDir: o.dataDir, cacheDir: o.cacheDir, offline: o.offline, signal: o.signal });
    const warning =
      set.role === role ? undefined : `reference set "${source}" is a ${set.role} set but is used as the ${role === 'anchor' ? 'safe anchor' : 'harmful reference'}`;
    return { samples: set.samples, summary: { source, count: set.samples.length, licence: set.licence.spdx }, warning };
  }
  const known = listReferenceSets(role).map((s) => s.name).join(', ');
  throw new OptionError('ERR_OPTION', `${role} reference "${source}" is neither an existing file nor a named set (named ${role} sets: ${known})`);
}

async function loadAll(sources: string[], role: ReferenceRole, o: PurifyOptions): Promise<LoadedReferences> {
  const out: LoadedReferences = { samples: [], summary: [], warnings: [] };
  for (const s of sources) {
    const r = await loadSource(s, role, o);
    if (r.samples.length === 0) throw new OptionError('ERR_OPTION', `${role} reference "${s}" holds no samples`);
    for (const x of r.samples) out.samples.push(x); // no spread: sets can be large
    out.summary.push(r.summary);
    if (r.warning) out.warnings.push(r.warning);
  }
  return out;
}

/** Loads the harmful reference and the safe anchor (possibly empty). */
export async function loadReferences(o: PurifyOptions): Promise<{ harmful: LoadedReferences; anchor: LoadedReferences }> {
  return { harmful: await loadAll(o.harmful, 'harmful', o), anchor: await loadAll(o.anchor ?? [], 'anchor', o) };
}
