export { createServer, type ServerOptions, type SotServer } from './server.js';
export { resolveConfig, DEFAULTS as SERVICE_DEFAULTS, type ServiceConfig } from './config.js';
export { loadTokens, Tokens, sha256, type TokenEntry } from './auth.js';
export { startBullWorker, type BullWorker } from './queue/bullmq.js';
export { openApiDocument } from './openapi.js';
export type { JobRecord, JobState } from './jobs.js';
