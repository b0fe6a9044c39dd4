export { createServer, type ServerOptions, type SotServer } from './server.js';
export { resolveConfig, DEFAULTS as SERVICE_DEFAULTS, type ServiceConfig } from './config.js';
export { loadTokens, Tokens, sha256, type TokenEntry } from './auth.js';
export { startBullWorker, type BullWorker } from './queue/bullmq.js';
export { openApiDocument } from './openapi.js';
export type { JobRecord, JobState } from './jobs.js';
// Types that appear in the signatures above, exported so that callers can name them.
export { fileNames as jobFileNames, jobStates } from './schemas.js';
export type { FileName as JobFileName, JobOptions, JobRef, JobStore } from './jobs.js';
export type { Input as ServiceConfigInput } from './config.js';
export type { Metrics } from './metrics.js';
