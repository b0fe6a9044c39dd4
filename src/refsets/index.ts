export { isReferenceSetName, listReferenceSets } from './registry.js';
export type { ReferenceFile, ReferenceLicence, ReferenceRole, ReferenceSetInfo } from './registry.js';
export { DEFAULT_BASE_URL, cachedFilePath, fileUrl, resolveCacheDir } from './fetch.js';
export type { FileOrigin, ReferenceFetchOptions } from './fetch.js';
export { fetchReferenceSet, loadReferenceSet } from './load.js';
export type { LoadedReferenceFile, ReferenceSet } from './load.js';
