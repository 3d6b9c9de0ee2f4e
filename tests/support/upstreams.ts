// Real Node HTTP upstreams on 127.0.0.1 for integration tests through nginx.
//
// Every response carries `X-Upstream-Id: <id>`. Routes:
//   any path            200 JSON { id, method, path, headers, body }   (path = raw URL with query)
//   /slow?ms=N          the same JSON after holding the response N ms
//   /status/NNN         the same JSON with status NNN
//   /sse?events=N&intervalMs=M[&cutAfter=K]
//                       text/event-stream; N `data:` events (default 3) M ms apart (default 50),
//                       each written (flushed) as soon as it is produced; with cutAfter, the
//                       connection is destroyed after K events (an upstream failing mid-stream)
//   WebSocket upgrade   echoes text/binary messages back, answers ping, closes on close
// `delayMs` delays every answer. Keep-alive: the idle timeout (65 s) outlives nginx's
// upstream keepalive_timeout (60 s default), so nginx never reuses a connection we are closing.
// Also here: startFixedStatusUpstream() (one status for every request, e.g. 502 for retry
// tests) and deadPort() (a loopback port nobody listens on).

import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { freePort } from './ports.ts';

export interface EchoRequest {
  id: string;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface EchoUpstream {
  port: number;
  id: string;
  /** Number of requests (including WebSocket upgrades) received so far. */
  readonly hits: number;
  /** The requests received, oldest first (the last 1000). */
  readonly requests: EchoRequest[];
  /** The most requests this upstream was answering at the same time (since the last resetHits). */
  readonly peakInFlight: number;
  /** `127.0.0.1:<port>`, ready for an upstream `server` line. */
  readonly address: string;
  resetHits(): void;
  close(): Promise<void>;
}

export interface EchoOptions {
  id: string;
  /** Delay before answering any request, in ms. */
  delayMs?: number;
  /** Port to listen on (default: any free port). */
  port?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startEchoUpstream(opts: EchoOptions): Promise<EchoUpstream> {
  const { id } = opts;
  let hits = 0;
  let inFlight = 0;
  let peakInFlight = 0;
  const requests: EchoRequest[] = [];

  const record = (req: IncomingMessage, body: string): EchoRequest => {
    hits++;
    const r: EchoRequest = { id, method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
    requests.push(r);
    if (requests.length > 1000) requests.shift();
    return r;
  };

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    res.on('close', () => inFlight--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve) => req.on('end', resolve));
    const echo = record(req, Buffer.concat(chunks).toString('utf8'));
    const url = new URL(req.url ?? '/', 'http://upstream.test');
    res.setHeader('X-Upstream-Id', id);

    if (opts.delayMs) await sleep(opts.delayMs);

    if (url.pathname === '/sse') {
      const events = intParam(url, 'events', 3);
      const interval = intParam(url, 'intervalMs', 50);
      const cutAfter = intParam(url, 'cutAfter', -1);
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.flushHeaders();
      for (let n = 1; n <= events; n++) {
        if (res.destroyed) return;
        res.write(`id: ${n}\ndata: ${JSON.stringify({ id, n, t: Date.now() })}\n\n`);
        if (n === cutAfter) {
          await sleep(interval); // let the events reach the client first
          res.socket?.destroy();
          return;
        }
        if (n < events) await sleep(interval);
      }
      res.end();
      return;
    }

    let status = 200;
    if (url.pathname === '/slow') await sleep(intParam(url, 'ms', 1000));
    const st = /^\/status\/(\d{3})$/.exec(url.pathname);
    if (st) status = Number(st[1]);

    if (res.destroyed) return;
    const body = JSON.stringify(echo);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });

  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    record(req, '');
    websocketEcho(id, req, socket, head);
  });

  const listening = await listenOnLoopback(server, opts.port ?? 0);
  const port = listening.port;

  return {
    port,
    id,
    get hits() {
      return hits;
    },
    get requests() {
      return requests;
    },
    get peakInFlight() {
      return peakInFlight;
    },
    get address() {
      return `127.0.0.1:${port}`;
    },
    resetHits() {
      hits = 0;
      peakInFlight = inFlight;
      requests.length = 0;
    },
    close: listening.close,
  };
}

/** n echo upstreams with ids `${idPrefix}1` … `${idPrefix}n` (default prefix "u"). */
export async function startUpstreams(n: number, opts: { idPrefix?: string; delayMs?: number } = {}): Promise<EchoUpstream[]> {
  const out: EchoUpstream[] = [];
  for (let i = 1; i <= n; i++) out.push(await startEchoUpstream({ id: `${opts.idPrefix ?? 'u'}${i}`, delayMs: opts.delayMs }));
  return out;
}

/** Close several upstreams (ignores ones already closed). */
export async function closeAll(ups: ({ close(): Promise<unknown> } | undefined)[]): Promise<void> {
  await Promise.all(ups.map((u) => u?.close().catch(() => undefined)));
}

function intParam(url: URL, name: string, dflt: number): number {
  const v = Number(url.searchParams.get(name));
  return Number.isFinite(v) && v >= 0 && url.searchParams.has(name) ? v : dflt;
}

// --- Minimal RFC 6455 echo: enough for proxying tests (no extensions, no fragmentation reassembly).

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function websocketEcho(id: string, req: IncomingMessage, socket: Socket, head: Buffer): void {
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Upstream-Id: ${id}\r\n\r\n`,
  );
  let buf = head.length ? Buffer.from(head) : Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const frame = parseFrame(buf);
      if (!frame) return;
      buf = buf.subarray(frame.size);
      if (frame.opcode === 0x8) {
        socket.end(encodeFrame(0x8, frame.payload.subarray(0, 2)));
        return;
      }
      if (frame.opcode === 0x9) socket.write(encodeFrame(0xa, frame.payload));
      else if (frame.opcode === 0x1 || frame.opcode === 0x2 || frame.opcode === 0x0) socket.write(encodeFrame(frame.opcode || 0x1, frame.payload));
    }
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  if (buf.length) onData(Buffer.alloc(0));
}

function parseFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | null {
  if (buf.length < 2) return null;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const maskOff = off;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buf[maskOff + (i % 4)];
  return { opcode, payload, size: off + len };
}

/** Server → client frame (unmasked, FIN set). */
function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x80 | opcode, len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([header, payload]);
}

/** Client → server text frame (masked, as RFC 6455 requires), for tests driving a WebSocket by hand. */
export function encodeClientFrame(text: string, opcode = 0x1): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const unmasked = encodeFrame(opcode, payload);
  const headerLen = unmasked.length - payload.length;
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const header = Buffer.from(unmasked.subarray(0, headerLen));
  header[1] |= 0x80;
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([header, mask, body]);
}

/** Decode one server frame's text payload from a buffer (null if incomplete). */
export function decodeServerFrame(buf: Buffer): { opcode: number; text: string; size: number } | null {
  const f = parseFrame(buf);
  return f ? { opcode: f.opcode, text: f.payload.toString('utf8'), size: f.size } : null;
}

// --- Fixed-status upstream and a dead address.

export interface FixedStatusUpstream {
  id: string;
  port: number;
  readonly address: string;
  readonly hits: number;
  readonly requests: EchoRequest[];
  resetHits(): void;
  close(): Promise<void>;
}

export async function startFixedStatusUpstream(id: string, status: number): Promise<FixedStatusUpstream> {
  const requests: EchoRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const echo: EchoRequest = { id, method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(echo);
      const body = JSON.stringify({ ...echo, status });
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Upstream-Id': id });
      res.end(body);
    });
  });
  const { port, close } = await listenOnLoopback(server);
  return {
    id,
    port,
    get address() {
      return `127.0.0.1:${port}`;
    },
    get hits() {
      return requests.length;
    },
    get requests() {
      return requests;
    },
    resetHits() {
      requests.length = 0;
    },
    close,
  };
}

/**
 * Listen on 127.0.0.1 (port 0: any free one) and track the connections, so close() ends kept-
 * alive sockets at once instead of waiting for their timeout. Every loopback backend here uses it.
 */
export async function listenOnLoopback(server: Server, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nobody listens on (connections are refused). */
export async function deadPort(): Promise<number> {
  return freePort();
}
