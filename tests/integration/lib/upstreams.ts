// Upstreams the shared harness (tests/support/upstreams.ts) does not offer:
//  - a fixed-status upstream that answers every request with one status (e.g. 502) and
//    records what it got, for retry tests;
//  - a dead address: a loopback port with nothing listening.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { freePort } from '../../support/ports.ts';
import type { EchoRequest } from '../../support/upstreams.ts';

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
  const sockets = new Set<Socket>();
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
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nobody listens on (connections are refused). */
export async function deadPort(): Promise<number> {
  return freePort();
}
