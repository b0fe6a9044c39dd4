// The OpenAI-compatible embeddings client against a real node:http server on
// 127.0.0.1: batching, concurrency, retries (5xx bursts, 429 + retry-after,
// timeouts, dropped connections) and strict response validation.
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIEmbedder, planRequests, retryAfterMs } from '../src/embed/openai.js';
import { AbortError, FetchError, OptionError, ShapeError } from '../src/errors.js';
import { fakeVector, startEmbedServer, type EmbedServer } from './embed-server.js';

let server: EmbedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const texts = (n: number) => Array.from({ length: n }, (_, i) => `text number ${i}`);
const fast = { retryBaseMs: 5, maxRetryDelayMs: 2000, env: {} };

function expectVectors(v: Float32Array, input: string[], dim: number) {
  expect(v.length).toBe(input.length * dim);
  input.forEach((t, i) => {
    const want = fakeVector(t, dim);
    for (let k = 0; k < dim; k++) expect(v[i * dim + k]).toBeCloseTo(want[k]!, 6);
  });
}

describe('OpenAIEmbedder', () => {
  it('batches by count, sends model, encoding_format "float" and the bearer key, and places vectors by index', async () => {
    server = await startEmbedServer({ dim: 8 });
    const e = new OpenAIEmbedder({
      ...fast,
      model: 'm1',
      baseUrl: server.url,
      apiKey: 'sk-test',
      dim: 8,
      batchSize: 3,
    });
    const input = texts(10);
    const v = await e.embed(input);
    expectVectors(v, input, 8);
    expect(server.requests.map((r) => r.input.length)).toEqual([3, 3, 3, 1]);
    for (const r of server.requests) {
      expect(r.model).toBe('m1');
      expect(r.encoding_format).toBe('float');
      expect(r.headers.authorization).toBe('Bearer sk-test');
    }
    expect(e.id).toBe(`openai-v1:${server.url}:m1:dim=8`);
  });

  it('learns the dimension with one probe request (init) and reads model, URL and key from the environment', async () => {
    server = await startEmbedServer({ dim: 12 });
    const e = await new OpenAIEmbedder({
      ...fast,
      env: { SOT_EMBEDDINGS_MODEL: 'env-model', SOT_EMBEDDINGS_URL: `${server.url}/`, OPENAI_API_KEY: 'sk-env' },
    }).init();
    expect(e.dim).toBe(12);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.model).toBe('env-model');
    expect(server.requests[0]!.headers.authorization).toBe('Bearer sk-env');
    expectVectors(await e.embed(['a', 'b']), ['a', 'b'], 12);
  });

  it('splits requests by the estimated token budget (a longer text goes alone)', () => {
    const t = ['a'.repeat(40), 'b'.repeat(40), 'c'.repeat(400), 'd'.repeat(4)];
    // 10 + 10 tokens fit in 25; 100 alone; then 1.
    expect(planRequests(t, 64, 25)).toEqual([
      [0, 2],
      [2, 3],
      [3, 4],
    ]);
    expect(planRequests(t, 2, 1000)).toEqual([
      [0, 2],
      [2, 4],
    ]);
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    server = await startEmbedServer({ dim: 4, delayMs: 40 });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4, batchSize: 2, concurrency: 3 });
    const input = texts(20);
    expectVectors(await e.embed(input), input, 4);
    expect(server.requests).toHaveLength(10);
    expect(server.maxInFlight).toBe(3);
  });

  it('retries a burst of 500/502/503 answers and then succeeds', async () => {
    server = await startEmbedServer({ dim: 4 });
    server.faults.push({ status: 500 }, { status: 502 }, { status: 503 });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4, concurrency: 1 });
    expectVectors(await e.embed(['x', 'y']), ['x', 'y'], 4);
    expect(server.requests).toHaveLength(4);
  });

  it('honours retry-after-ms and retry-after (seconds) on 429', async () => {
    server = await startEmbedServer({ dim: 4 });
    server.faults.push(
      { status: 429, headers: { 'retry-after-ms': '300' } },
      { status: 429, headers: { 'retry-after': '1' } },
    );
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4 });
    await e.embed(['x']);
    const at = server.requests.map((r) => r.at);
    expect(at).toHaveLength(3);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(280);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(980);
    expect(retryAfterMs(new Headers({ 'retry-after': new Date(Date.now() + 5000).toUTCString() }))).toBeGreaterThan(
      3000,
    );
    expect(retryAfterMs(new Headers({}))).toBeUndefined();
  });

  it('times a hanging request out and retries it; a dropped connection is retried too', async () => {
    server = await startEmbedServer({ dim: 4 });
    server.faults.push({ hang: true }, { drop: true });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4, timeoutMs: 300 });
    const t0 = Date.now();
    expectVectors(await e.embed(['x', 'y', 'z']), ['x', 'y', 'z'], 4);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(server.requests).toHaveLength(3);
  });

  it('gives up after maxRetries with a FetchError naming the last failure', async () => {
    server = await startEmbedServer({ dim: 4 });
    server.faults.push(...Array.from({ length: 10 }, () => ({ status: 503, body: 'overloaded' })));
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4, maxRetries: 2 });
    const err = await e.embed(['x']).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as Error).message).toMatch(/HTTP 503.*overloaded.*gave up after 3 tries/);
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry 401 and says to check the key', async () => {
    server = await startEmbedServer({ dim: 4 });
    server.faults.push({ status: 401, body: '{"error":{"message":"bad key"}}' });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4 });
    const err = await e.embed(['x']).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as Error).message).toMatch(/HTTP 401.*bad key.*API key/);
    expect(server.requests).toHaveLength(1);
  });

  it('rejects malformed JSON, a wrong count, duplicate indices and non-finite numbers (FetchError), a wrong dimension (ShapeError)', async () => {
    server = await startEmbedServer({ dim: 4 });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4, maxRetries: 0 });
    const cases: Array<[import('./embed-server.js').Fault, unknown, RegExp]> = [
      [{ raw: '{"data": [' }, FetchError, /malformed embeddings response: not JSON/],
      [{ raw: '{"object":"list"}' }, FetchError, /no "data" array/],
      [{ transform: (d) => d.slice(1) }, FetchError, /2 embeddings for 3 inputs/],
      [{ transform: (d) => d.map((x) => ({ ...x, index: 0 })) }, FetchError, /index is 0; expected each of 0..2 once/],
      [
        { transform: (d) => d.map((x, i) => (i === 1 ? { ...x, embedding: [0.1, null, 0.3, 0.4] } : x)) },
        FetchError,
        /embedding\[1\] is null, not a finite number/,
      ],
      [{ transform: (d) => d.map((x) => ({ ...x, embedding: 'AAAA' })) }, FetchError, /is a string \(base64\?\)/],
      [
        { transform: (d) => d.map((x, i) => (i === 2 ? { ...x, embedding: [1, 2, 3] } : x)) },
        ShapeError,
        /returned a 3-dimensional embedding for input \d, expected 4/,
      ],
    ];
    for (const [fault, cls, msg] of cases) {
      server.faults.push(fault);
      const err = await e.embed(['a', 'b', 'c']).catch((x: unknown) => x);
      expect(err, String(msg)).toBeInstanceOf(cls as never);
      expect((err as Error).message).toMatch(msg);
    }
  });

  it('a wrong dimension is caught even when the server answers consistently with another model', async () => {
    server = await startEmbedServer({ dim: 6 });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 8 });
    await expect(e.embed(['a'])).rejects.toThrow(ShapeError);
  });

  it('sends `dimensions` when asked and checks the answer against it', async () => {
    server = await startEmbedServer({ dim: 16 });
    const e = await new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dimensions: 5 }).init();
    expect(e.dim).toBe(5);
    expectVectors(await e.embed(['a', 'b']), ['a', 'b'], 5);
    expect(server.requests[0]!.dimensions).toBe(5);
    expect(e.id).toMatch(/dim=5:shortened$/);
  });

  it('aborts in-flight requests on the signal (AbortError), and refuses bad options', async () => {
    server = await startEmbedServer({ dim: 4 });
    server.faults.push({ hang: true });
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(e.embed(['x'], { signal: ac.signal })).rejects.toThrow(AbortError);
    expect(() => new OpenAIEmbedder({ env: {} })).toThrow(/needs a model name/);
    expect(() => new OpenAIEmbedder({ env: {}, model: 'm', baseUrl: 'ftp://x' })).toThrow(OptionError);
    expect(() => new OpenAIEmbedder({ env: {}, model: 'm', baseUrl: 'http://user:pw@x/v1' })).toThrow(/not in the URL/);
    expect(() => new OpenAIEmbedder({ env: {}, model: 'm' }).dim).toThrow(/call init/);
    await expect(new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: server.url, dim: 4 }).embed([''])).rejects.toThrow(
      /texts\[0\] is empty/,
    );
  });

  it('a server that cannot be reached is a FetchError after the retries', async () => {
    const e = new OpenAIEmbedder({ ...fast, model: 'm', baseUrl: 'http://127.0.0.1:9/v1', dim: 4, maxRetries: 1 });
    await expect(e.embed(['x'])).rejects.toThrow(/network error.*gave up after 2 tries/);
  });
});
