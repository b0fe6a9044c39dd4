// A real OpenAI-compatible /v1/embeddings server on 127.0.0.1 for the tests,
// with scriptable faults.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** Deterministic unit vector of a text (what the fake model "embeds"). */
export function fakeVector(text: string, dim: number): number[] {
  const out: number[] = [];
  let counter = 0;
  while (out.length < dim) {
    const h = createHash('sha256').update(`${counter++}:${text}`).digest();
    for (let i = 0; i + 4 <= h.length && out.length < dim; i += 4) out.push(h.readInt32LE(i) / 2 ** 31);
  }
  const n = Math.hypot(...out);
  return out.map((x) => x / n);
}

export interface EmbedRequest {
  model: string;
  input: string[];
  encoding_format?: string;
  dimensions?: number;
  headers: IncomingMessage['headers'];
  at: number;
}

/** What to do with one request: a fault instead of the normal answer. */
export type Fault =
  | { status: number; body?: string; headers?: Record<string, string> }
  | { hang: true }
  | { drop: true }
  | { raw: string }
  | { transform: (data: Array<{ index: number; embedding: unknown; object: string }>) => unknown };

export interface EmbedServer {
  url: string;
  requests: EmbedRequest[];
  /** Faults for the next requests, in order (one consumed per request). */
  faults: Fault[];
  /** Most requests in flight at once so far. */
  maxInFlight: number;
  /** Vector function (default fakeVector). */
  vector: (text: string, dim: number) => number[];
  /** Batch vector function, used instead of `vector` when set (e.g. a real embedder). */
  embedBatch?: (texts: string[], dim: number) => Promise<number[][]>;
  close: () => Promise<void>;
}

export async function startEmbedServer(o: { dim?: number; delayMs?: number } = {}): Promise<EmbedServer> {
  const dim = o.dim ?? 16;
  let inFlight = 0;
  const state: EmbedServer = {
    url: '',
    requests: [],
    faults: [],
    maxInFlight: 0,
    vector: fakeVector,
    close: async () => undefined,
  };
  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, inFlight);
      try {
        const parsed = JSON.parse(body) as Omit<EmbedRequest, 'headers' | 'at'>;
        state.requests.push({ ...parsed, headers: req.headers, at: Date.now() });
        const fault = state.faults.shift();
        if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
        if (fault && 'hang' in fault) return; // never answers
        if (fault && 'drop' in fault) {
          req.socket.destroy();
          return;
        }
        if (req.url !== '/v1/embeddings' || req.method !== 'POST') {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
          return;
        }
        if (fault && 'status' in fault) {
          res
            .writeHead(fault.status, { 'content-type': 'application/json', ...(fault.headers ?? {}) })
            .end(fault.body ?? '{"error":{"message":"injected"}}');
          return;
        }
        if (fault && 'raw' in fault) {
          res.writeHead(200, { 'content-type': 'application/json' }).end(fault.raw);
          return;
        }
        const d = parsed.dimensions ?? dim;
        const vs = state.embedBatch
          ? await state.embedBatch(parsed.input, d)
          : parsed.input.map((t) => state.vector(t, d));
        const data = vs.map((embedding, index) => ({ object: 'embedding', index, embedding: embedding as unknown }));
        // Answers out of order: clients must place vectors by index.
        const payload = fault && 'transform' in fault ? fault.transform(data) : data.reverse();
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            object: 'list',
            model: parsed.model,
            data: payload,
            usage: { prompt_tokens: 1, total_tokens: 1 },
          }),
        );
      } finally {
        inFlight--;
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return state;
}
