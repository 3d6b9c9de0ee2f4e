// The HTTP client for tests against nginx on loopback. Every request uses a fresh connection
// unless the caller passes a keep-alive agent, sends no Accept-Encoding of its own and lets
// the caller set Host. Pick by what the test needs (see tests/support/README.md):
//   send()         one request by port; JSON-parsed body, header timing, 444 closes as `closed`
//   get()          GET by port that rejects on transport errors (marks reused keep-alive sockets)
//   getUrl()       GET by URL with `Connection: close` (gw.url(...) callers)
//   request()      fetch() by URL; WHATWG Headers, parsed JSON
//   stream()       a streamed response as timed chunks (SSE, chunked bodies)
//   readSse()      SSE event ids, never rejects (deploy traffic during a reload)
//   httpsRequest() / httpsGet()  TLS with SNI and a CA, peer certificate serial
//   rawRequest() / rawGet()      bytes over a plain socket, for requests node:http will not send
//   openWebSocket()              a hand-driven WebSocket (upgrade head, masked frames out, frames in)

import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import { decodeServerFrame, encodeClientFrame } from './upstreams.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` every 25 ms until it holds or `timeoutMs` passes (then throw `what`). */
export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

// ------------------------------------------------------------------------------ send()

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

/**
 * One HTTP/1.1 request to 127.0.0.1:port (no agent, default timeout 10 s). A connection the
 * server closes without answering (nginx `return 444`) resolves with `closed: true` instead
 * of throwing, so tests can assert on it.
 */
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
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text), closed: false, headerMs });
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

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ get() / getUrl()

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * GET 127.0.0.1:port + path (default: no agent, 5 s socket timeout), optionally with headers
 * and from a given loopback source address (a distinct client to a balancer). Transport errors
 * reject; the error carries `reusedSocket` (whether the request went out on an idle
 * keep-alive connection) so a load driver can retry idempotent requests as clients do.
 */
export function get(
  port: number,
  p: string,
  opts: { agent?: Agent | false; timeoutMs?: number; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: p, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5000, headers: opts.headers, localAddress: opts.localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: Error & { reusedSocket?: boolean }) => {
      e.reusedSocket = req.reusedSocket;
      reject(e);
    });
    req.end();
  });
}

/** GET a URL over a fresh connection with `Connection: close` (10 s timeout), so reload/stop never wait on our sockets. */
export function getUrl(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { Connection: 'close', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// ------------------------------------------------------------------------- request()

export interface FetchReply {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** fetch() a URL; the body as text and, when it parses, as JSON (else null). */
export async function request(url: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<FetchReply> {
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, text, json };
}

// ---------------------------------------------------------------- stream() / readSse()

export interface StreamRequest {
  /** Full URL, or `port` (+ `path`) on 127.0.0.1. */
  url?: string;
  port?: number;
  method?: string;
  path?: string;
  headers?: Record<string, string | number>;
  body?: string;
  /** Destroy the request after this many ms (default: no timeout). */
  timeoutMs?: number;
}

export interface StreamResult {
  status: number;
  headers: IncomingHttpHeaders;
  /** Each chunk as it arrived: ms since the request was sent, and its text. */
  chunks: { ms: number; text: string }[];
  /** ms from sending the request until the response ended. */
  endMs: number;
  text: string;
}

/** One request over a fresh connection whose response body is recorded chunk by chunk with arrival times. */
export function stream(req: StreamRequest): Promise<StreamResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const opts = { method: req.method ?? 'GET', agent: false as const, headers: req.headers ?? {} };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      const chunks: { ms: number; text: string }[] = [];
      res.setEncoding('utf8');
      res.on('data', (c: string) => chunks.push({ ms: Date.now() - t0, text: c }));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks, endMs: Date.now() - t0, text: chunks.map((c) => c.text).join('') }),
      );
      res.on('error', reject);
    };
    const r = req.url
      ? httpRequest(req.url, opts, onResponse)
      : httpRequest({ ...opts, host: '127.0.0.1', port: req.port, path: req.path ?? '/' }, onResponse);
    if (req.timeoutMs !== undefined) r.setTimeout(req.timeoutMs, () => r.destroy(new Error(`streamed request ${req.path ?? req.url} timed out`)));
    r.on('error', reject);
    r.end(req.body);
  });
}

/** Read an SSE stream; resolves (never rejects) with the event ids in arrival order and what ended it. */
export function readSse(port: number, p: string, timeoutMs: number): Promise<{ ids: number[]; status: number; error: string | null }> {
  return new Promise((resolve) => {
    const ids: number[] = [];
    let status = 0;
    let buf = '';
    let settled = false;
    const finish = (error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ids, status, error });
    };
    const req = httpRequest({ host: '127.0.0.1', port, path: p, agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /^id: (\d+)$/m.exec(ev);
          if (m) ids.push(Number(m[1]));
        }
      });
      res.on('end', () => finish(res.complete ? null : 'stream ended early'));
      res.on('aborted', () => finish('aborted'));
      res.on('error', (e) => finish(e.message));
    });
    req.on('error', (e) => finish(e.message));
    req.end();
    const timer = setTimeout(() => {
      req.destroy();
      finish('timeout');
    }, timeoutMs);
  });
}

// ------------------------------------------------------------------------------ HTTPS

/** GET an HTTPS URL trusting `ca`; resolves the body of a 200, rejects on anything else. */
export function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
      })
      .on('error', reject);
  });
}

/** One HTTPS GET on a fresh connection with SNI `servername` (also the Host); resolves status, headers, body and peer serial. */
export function httpsRequest(
  port: number,
  servername: string,
  ca: string,
  pathname = '/',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: pathname, servername, ca, agent: false, headers: { host: servername }, timeout: 5000 },
      (res) => {
        const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber?.toUpperCase() ?? '';
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, serial }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('https request timeout')));
    req.end();
  });
}

// ------------------------------------------------------------------------ raw sockets

/** Write `text` to 127.0.0.1:port as is and resolve everything the server sent until it closed. */
export function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    let raw = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => (raw += d));
    sock.on('end', () => resolve(raw));
    sock.on('error', reject);
  });
}

/** GET with an arbitrary Host over a raw socket (`Connection: close`); status, body and Location. */
export async function rawGet(port: number, host: string, pathname: string): Promise<{ status: number; body: string; location?: string }> {
  const raw = await rawRequest(port, `GET ${pathname} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  const [head, ...rest] = raw.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
  const location = /\r\nlocation: *([^\r\n]+)/i.exec(head)?.[1];
  return { status, body: rest.join('\r\n\r\n'), location };
}

// -------------------------------------------------------------------------- WebSocket

export interface WebSocketClient {
  /** The response head (status line and headers, up to the blank line), latin1. */
  head: string;
  /** Send a masked text frame. */
  send(text: string): void;
  /** The next server frame; rejects when no data arrives for 5 s. */
  next(): Promise<{ opcode: number; text: string }>;
  close(): void;
}

/**
 * Open a WebSocket by hand over a raw socket (fixed RFC 6455 sample key, so the expected
 * Sec-WebSocket-Accept is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=). Resolves with whatever head the
 * server answered, 101 or not; callers assert on it.
 */
export async function openWebSocket(port: number, pathname: string, host = '127.0.0.1'): Promise<WebSocketClient> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  const more = () =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no data from the gateway; got so far: ${JSON.stringify(buf.toString('latin1'))}`)), 5_000);
      sock.once('data', (c: Buffer) => {
        clearTimeout(t);
        buf = Buffer.concat([buf, c]);
        resolve();
      });
    });
  try {
    sock.write(
      `GET ${pathname} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    while (!buf.includes('\r\n\r\n')) await more();
  } catch (err) {
    sock.destroy();
    throw err;
  }
  const end = buf.indexOf('\r\n\r\n');
  const head = buf.subarray(0, end).toString('latin1');
  buf = buf.subarray(end + 4);
  return {
    head,
    send: (text) => void sock.write(encodeClientFrame(text)),
    async next() {
      let frame = decodeServerFrame(buf);
      while (!frame) {
        await more();
        frame = decodeServerFrame(buf);
      }
      buf = buf.subarray(frame.size);
      return { opcode: frame.opcode, text: frame.text };
    },
    close: () => void sock.destroy(),
  };
}

/**
 * How long a request takes to reach /metrics at most: each worker counts its counting log every
 * 250 ms (src/features/metrics, METRICS_DRAIN_INTERVAL), and a scrape counts only its own
 * worker's lines at once. Twice that, plus the timer's slack.
 */
export const COUNTING_LAG_MS = 600;

/** send() after every worker has counted the requests answered before it (a scrape of /metrics). */
export async function sendCounted(req: HttpRequest): Promise<HttpResponse> {
  await sleep(COUNTING_LAG_MS);
  return send(req);
}

/** The samples of a Prometheus text exposition, one per line: `name{labels} value`. */
export function exposedSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** GET /metrics once every worker has counted the requests answered before it; throws unless 200. */
export async function scrapeSamples(port: number): Promise<{ text: string; values: Map<string, number>; res: HttpResponse }> {
  const res = await sendCounted({ port, path: '/metrics' });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.text.slice(0, 300)}`);
  return { text: res.text, values: exposedSamples(res.text), res };
}
