// JSON schemas (2020-12) of what the API takes and answers. The routes
// validate with them and the OpenAPI document is built from them, so the two
// cannot drift apart.
import { METHODS } from '../learner.js';

const num = { type: 'number' } as const;
const str = (maxLength = 1024) => ({ type: 'string', minLength: 1, maxLength }) as const;

/** The purify options a job may set: the library's names (`PurifyOptions`), minus paths the server chooses. */
export const jobOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['harmful'],
  properties: {
    harmful: {
      type: 'array',
      minItems: 1,
      maxItems: 32,
      items: str(),
      description: 'named reference sets, or files under the tenant folder (relative paths)',
    },
    anchor: { type: 'array', maxItems: 32, items: str(), description: 'named sets or tenant files, as for harmful' },
    format: { enum: ['jsonl', 'json', 'csv', 'parquet'] },
    recordFormat: { enum: ['alpaca', 'messages', 'sharegpt', 'prompt-response', 'text'] },
    fields: {
      type: 'object',
      additionalProperties: false,
      properties: {
        prompt: { anyOf: [str(256), { type: 'array', minItems: 1, maxItems: 16, items: str(256) }] },
        response: str(256),
        text: str(256),
      },
    },
    template: { type: 'string', maxLength: 4096 },
    skipInvalid: { type: 'boolean' },
    weightField: { anyOf: [str(256), { type: 'null' }] },
    html: { type: 'boolean', description: 'write the HTML report (default true)' },
    removed: {
      type: 'boolean',
      description: 'write the removed records, with their scores and reasons, in the input format (default true)',
    },
    method: { enum: [...METHODS] },
    keep: {
      anyOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['fraction'],
          properties: { fraction: { type: 'number', exclusiveMinimum: 0, maximum: 1 } },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['count'],
          properties: { count: { type: 'integer', minimum: 1 } },
        },
        {
          const: 'auto',
          description:
            'from the contamination estimate (method sot): nothing dropped when the data look clean; when they look contaminated, the lowest scores up to the upper end of the estimate (the estimated share and its margin), and never fewer than the default drops; the default when it is inconclusive',
        },
      ],
    },
    learner: {
      type: 'object',
      additionalProperties: false,
      properties: {
        eps: num,
        lambda: num,
        tau: num,
        step: num,
        tol: num,
        maxSteps: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        debiased: { type: 'boolean' },
        ownHarmShare: {
          type: 'number',
          minimum: 0,
          maximum: 0.5,
          description:
            'share of the records, the lowest-weighted of a first solve, that join the harmful reference for a second one (0: one solve; default 0.05)',
        },
        ownHarmMass: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
        inner: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tol: num,
            maxIter: { type: 'integer', minimum: 1, maximum: 1_000_000 },
            overrelax: { type: 'boolean' },
          },
        },
        storage: {
          type: 'object',
          additionalProperties: false,
          properties: { neighbours: { type: 'integer', minimum: 1 } },
        },
      },
    },
    memoryBudget: {
      anyOf: [{ type: 'integer', minimum: 1 }, str(32)],
      description: "at most the server's per-job budget (its default)",
    },
    seed: { type: 'integer', minimum: 0 },
  },
} as const;

export const jobStates = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const fileNames = ['dataset', 'scores', 'removed', 'report', 'html'] as const;

const errorBody = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
} as const;

export const errorSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: { error: errorBody },
} as const;

const time = { type: 'string', format: 'date-time' } as const;

export const jobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'state', 'createdAt', 'attempts', 'input', 'options'],
  properties: {
    id: { type: 'string' },
    state: { enum: [...jobStates] },
    stage: { anyOf: [{ enum: ['read', 'embed', 'references', 'learn', 'select', 'write'] }, { type: 'null' }] },
    progress: {
      anyOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['done'],
          properties: { done: { type: 'number' }, total: { type: 'number' } },
        },
        { type: 'null' },
      ],
    },
    attempts: { type: 'integer', minimum: 0 },
    createdAt: time,
    startedAt: time,
    finishedAt: time,
    worker: { type: 'string', description: 'host:pid of the process that runs (or last ran) the job' },
    input: {
      type: 'object',
      additionalProperties: false,
      required: ['source', 'name', 'bytes'],
      properties: { source: { enum: ['upload', 'path'] }, name: { type: 'string' }, bytes: { type: 'integer' } },
    },
    options: jobOptionsSchema,
    error: errorBody,
    result: {
      type: 'object',
      additionalProperties: false,
      required: ['records', 'kept', 'removed', 'removedFraction', 'files', 'warnings'],
      properties: {
        records: { type: 'integer' },
        kept: { type: 'integer' },
        removed: { type: 'integer' },
        removedFraction: { type: 'number', description: 'share of the records removed (set by keep)' },
        files: { type: 'array', items: { enum: [...fileNames] } },
        warnings: { type: 'array', items: { type: 'string' } },
        recordsPerSecond: { type: 'number' },
        contamination: {
          description:
            "the run's contamination estimate, as the report's `contamination` (null: the method gives none; docs/learner-defaults.md)",
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              additionalProperties: false,
              required: ['estimate', 'low', 'high', 'level', 'method', 'clean', 'verdict'],
              properties: {
                estimate: { type: 'number', description: 'estimated share of contaminated records' },
                low: { type: 'number' },
                high: { type: 'number' },
                level: { type: 'number', description: 'confidence level of [low, high]' },
                method: { type: 'string' },
                clean: { type: 'boolean' },
                verdict: { enum: ['clean', 'contaminated', 'inconclusive'] },
              },
            },
          ],
        },
      },
    },
  },
} as const;

export const jobListSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['jobs', 'next'],
  properties: { jobs: { type: 'array', items: jobSchema }, next: { anyOf: [{ type: 'string' }, { type: 'null' }] } },
} as const;

export const pathSubmissionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['path', 'options'],
  properties: {
    path: { ...str(), description: 'dataset under the tenant folder of the data root, relative' },
    options: jobOptionsSchema,
  },
} as const;

export const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    cursor: { type: 'string', pattern: '^[0-9]+$' },
    state: { enum: [...jobStates] },
  },
} as const;

export const idParamSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } },
} as const;

export const fileParamSchema = {
  type: 'object',
  required: ['id', 'name'],
  properties: { id: idParamSchema.properties.id, name: { enum: [...fileNames] } },
} as const;
