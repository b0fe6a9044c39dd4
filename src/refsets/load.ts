// Loads a named reference set as samples: obtain its pinned files, decode
// them, run the set's extractor.
import { OptionError } from '../errors.js';
import type { SampleText } from '../io/types.js';
import { obtainFile, type FileOrigin, type ReferenceFetchOptions } from './fetch.js';
import {
  listReferenceSets,
  referenceSetDefinition,
  type ReferenceLicence,
  type ReferenceRole,
  type ReferenceSetDefinition,
} from './registry.js';

export interface LoadedReferenceFile {
  /** Path in the mirror layout. */
  path: string;
  origin: FileOrigin;
  /** Verified copy on disk ('' when a download could not be cached). */
  localPath: string;
}

export interface ReferenceSet {
  name: string;
  role: ReferenceRole;
  licence: ReferenceLicence;
  samples: SampleText[];
  files: LoadedReferenceFile[];
}

function definitionOf(name: string): ReferenceSetDefinition {
  const def = referenceSetDefinition(name);
  if (def === undefined) {
    const known = listReferenceSets()
      .map((s) => s.name)
      .join(', ');
    throw new OptionError('ERR_OPTION', `unknown reference set "${name}" (known: ${known})`);
  }
  return def;
}

async function obtainAll(def: ReferenceSetDefinition, options: ReferenceFetchOptions) {
  const out = [];
  // Sequential: a few small files, and one failure should not leave others racing.
  for (const file of def.files) out.push(await obtainFile(file, options, def.name));
  return out;
}

/** Makes every file of a set available locally (data dir, cache or download) without parsing it. */
export async function fetchReferenceSet(
  name: string,
  options: ReferenceFetchOptions = {},
): Promise<LoadedReferenceFile[]> {
  const def = definitionOf(name);
  return (await obtainAll(def, options)).map((f) => ({ path: f.file.path, origin: f.origin, localPath: f.localPath }));
}

/** Loads a registered reference set's samples (see `listReferenceSets` for the names). */
export async function loadReferenceSet(name: string, options: ReferenceFetchOptions = {}): Promise<ReferenceSet> {
  const def = definitionOf(name);
  const obtained = await obtainAll(def, options);
  const samples = def.extract(obtained.map((f) => ({ file: f.file, text: f.bytes.toString('utf8') })));
  return {
    name: def.name,
    role: def.role,
    licence: { ...def.licence },
    samples,
    files: obtained.map((f) => ({ path: f.file.path, origin: f.origin, localPath: f.localPath })),
  };
}
