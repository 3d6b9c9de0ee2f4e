// Minimal HTTP/1.1 client for integration tests: node:http with no agent (one connection per
// request, `Connection: close`), no automatic Accept-Encoding, full control over Host.
// A connection the server closes without answering (nginx `return 444`) resolves with
// `closed: true` instead of throwing, so specs can assert on it.

import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface HttpRequest {
  port: number;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Parsed body when it is JSON, else undefined. */
  json: unknown;
  /** True when the connection was closed before a response arrived. */
  closed: boolean;
  /** ms from sending the request until the response headers arrived. */
  headerMs: number;
}

export function send(req: HttpRequest): Promise<HttpResponse> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    if (req.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
      headers['Content-Length'] = String(Buffer.byteLength(req.body));
    }
    const r = httpRequest(
      { host: '127.0.0.1', port: req.port, method: req.method ?? 'GET', path: req.path ?? '/', headers, agent: false },
      (res) => {
        const headerMs = Date.now() - started;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, closed: false, headerMs });
        });
      },
    );
    r.setTimeout(req.timeoutMs ?? 10_000, () => r.destroy(new Error(`request ${req.method ?? 'GET'} ${req.path} timed out`)));
    r.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || /socket hang up/.test(err.message)) {
        resolve({ status: 0, headers: {}, text: '', json: undefined, closed: true, headerMs: Date.now() - started });
      } else {
        reject(err);
      }
    });
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` every 25 ms until it holds or `timeoutMs` passes (then throw `what`). */
export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}
