// The OpenAPI 3.1 document of the API, from the schemas the routes validate with.
import { createRequire } from 'node:module';
import {
  errorSchema,
  fileNames,
  jobListSchema,
  jobOptionsSchema,
  jobSchema,
  jobStates,
  pathSubmissionSchema,
} from './schemas.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object, description: string) => ({ description, content: { 'application/json': { schema } } });
const err = (description: string) => json(ref('Error'), description);
const auth = { 401: err('missing or unknown bearer token') };
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f]{32}$' } };

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'SOT purification service',
      version: pkg.version,
      description: 'Submit datasets to purify with `sot` as jobs; fetch the purified dataset, scores and report.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Job: jobSchema,
        JobList: jobListSchema,
        JobOptions: jobOptionsSchema,
        PathSubmission: pathSubmissionSchema,
        Error: errorSchema,
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/jobs': {
        post: {
          summary:
            'Submit a job: a dataset upload (multipart: `options` JSON field, then `dataset` file) or a path under your folder (JSON)',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['options', 'dataset'],
                  properties: {
                    options: { type: 'string', description: 'JobOptions as JSON' },
                    dataset: { type: 'string', format: 'binary' },
                  },
                },
              },
              'application/json': { schema: ref('PathSubmission') },
            },
          },
          responses: {
            202: json(ref('Job'), 'accepted and queued'),
            400: err('bad options, body or path'),
            ...auth,
            403: err('the path leaves your folder'),
            413: err('upload larger than the limit'),
            429: {
              ...err('too many queued jobs (yours or all); retry after Retry-After seconds'),
              headers: { 'Retry-After': { schema: { type: 'integer' } } },
            },
            503: err('shutting down'),
            507: err('your disk quota is used up'),
          },
        },
        get: {
          summary: 'Your jobs, newest first',
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
            { name: 'cursor', in: 'query', schema: { type: 'string' }, description: '`next` of the previous page' },
            { name: 'state', in: 'query', schema: { enum: [...jobStates] } },
          ],
          responses: { 200: json(ref('JobList'), 'a page of jobs'), 400: err('bad query'), ...auth },
        },
      },
      '/v1/jobs/{id}': {
        parameters: [idParam],
        get: {
          summary: 'A job: state, stage, progress, result or error',
          responses: {
            200: json(ref('Job'), 'the job'),
            400: err('bad id'),
            ...auth,
            404: err('no such job of yours'),
          },
        },
        delete: {
          summary: 'Cancel a queued or running job and remove its files (also removes a finished job)',
          responses: {
            200: json(ref('Job'), 'the job as it was last recorded'),
            400: err('bad id'),
            ...auth,
            404: err('no such job of yours'),
          },
        },
      },
      '/v1/jobs/{id}/files/{name}': {
        parameters: [idParam, { name: 'name', in: 'path', required: true, schema: { enum: [...fileNames] } }],
        get: {
          summary: 'An output of a succeeded job, streamed',
          responses: {
            200: {
              description:
                'the file: the dataset in the input format, the scores CSV, the removed records in the input format (with their scores and reasons), the JSON report or its HTML page',
              content: {
                ...Object.fromEntries(
                  ['application/x-ndjson', 'text/csv', 'application/vnd.apache.parquet', 'text/html'].map((t) => [
                    t,
                    { schema: { type: 'string', format: 'binary' } },
                  ]),
                ),
                'application/json': { schema: { type: ['object', 'array'] } },
              },
            },
            400: err('bad id or name'),
            ...auth,
            404: err('no such job or file'),
            409: err('the job has not succeeded'),
          },
        },
      },
      '/healthz': {
        get: {
          security: [],
          summary: 'The process is up',
          responses: { 200: json({ type: 'object', required: ['ok'], properties: { ok: { const: true } } }, 'up') },
        },
      },
      '/readyz': {
        get: {
          security: [],
          summary: 'Ready to take jobs (queue reachable, not shutting down)',
          responses: {
            200: json({ type: 'object', required: ['ready'], properties: { ready: { const: true } } }, 'ready'),
            503: err('not ready'),
          },
        },
      },
      '/metrics': {
        get: {
          security: [],
          summary: 'Prometheus metrics',
          responses: {
            200: { description: 'text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
          },
        },
      },
      '/openapi.json': {
        get: { security: [], summary: 'This document', responses: { 200: json({ type: 'object' }, 'OpenAPI 3.1') } },
      },
    },
  };
}
