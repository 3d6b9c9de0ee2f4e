// Streaming through real nginx: SSE events reach the client as the upstream produces them
// (streaming: true), and a WebSocket upgrade is proxied (websocket: true).

import { connect, type Socket } from 'node:net';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { closeAll, decodeServerFrame, encodeClientFrame, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from './lib/gateway.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const YAML = `
version: 1
global:
  worker_processes: 1
  status: false
  # compress everything, event streams included: a streaming route must still not buffer
  compression: { gzip: true, min_length: 0, types: [application/json, text/event-stream] }
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  llm:
    servers: ["127.0.0.1:\${UP_A}"]
routes:
  - name: stream
    match: { prefix: /stream/ }
    upstream: llm
    strip_prefix: true
    streaming: true
  - name: ws
    match: { prefix: /ws/ }
    upstream: llm
    strip_prefix: true
    websocket: true
`;

let up: EchoUpstream;
let g: BuiltGateway;
let port: number;

beforeAll(async () => {
  up = await startEchoUpstream({ id: 'a' });
  port = await freePort();
  g = await buildAndStart({
    configPath: path.join(HERE, 'streaming.gateway.yaml'),
    text: YAML,
    env: { PORT_GW: String(port), UP_A: String(up.port) },
    ports: [port],
  });
});

afterAll(async () => {
  await g?.stop();
  await closeAll([up]);
  await stopAllGateways();
});

interface StreamTiming {
  status: number;
  headers: Record<string, unknown>;
  firstEventMs: number;
  endMs: number;
  events: string[];
}

function readStream(pathname: string): Promise<StreamTiming> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: pathname, agent: false, headers: { Accept: 'text/event-stream', 'Accept-Encoding': 'gzip' } }, (res) => {
      let firstEventMs = -1;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (firstEventMs < 0 && text.includes('data:')) firstEventMs = Date.now() - t0;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          firstEventMs,
          endMs: Date.now() - t0,
          events: text.split('\n').filter((l) => l.startsWith('data:')),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('SSE request timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('streaming', () => {
  it('delivers the first SSE event long before the upstream finishes', async () => {
    await withErrorLog(g.gw, async () => {
      // 11 events 200 ms apart: the upstream takes about 2 s in total
      const r = await readStream('/stream/sse?events=11&intervalMs=200');
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(r.headers['x-accel-buffering']).toBe('no');
      expect(r.headers['content-encoding'], 'gzip would hold events back').toBeUndefined();
      expect(r.events).toHaveLength(11);
      expect(r.endMs, JSON.stringify(r)).toBeGreaterThanOrEqual(1900);
      expect(r.firstEventMs, JSON.stringify(r)).toBeGreaterThanOrEqual(0);
      expect(r.firstEventMs, JSON.stringify(r)).toBeLessThan(700);
      expect(r.endMs - r.firstEventMs, JSON.stringify(r)).toBeGreaterThan(1500);
    });
  });

  it('proxies a WebSocket upgrade and echoes messages', async () => {
    await withErrorLog(g.gw, async () => {
      const sock: Socket = connect(port, '127.0.0.1');
      try {
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
        sock.write(
          'GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
        while (!buf.includes('\r\n\r\n')) await more();
        const end = buf.indexOf('\r\n\r\n');
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        expect(head).toMatch(/^HTTP\/1\.1 101 /);
        expect(head).toMatch(/\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
        expect(head).toMatch(/\r\nx-upstream-id: a/i);
        expect(up.requests.at(-1)?.path).toBe('/chat');

        for (const msg of ['hello', 'through nginx']) {
          sock.write(encodeClientFrame(msg));
          let frame = decodeServerFrame(buf);
          while (!frame) {
            await more();
            frame = decodeServerFrame(buf);
          }
          buf = buf.subarray(frame.size);
          expect(frame.opcode).toBe(1);
          expect(frame.text).toBe(msg);
        }
      } finally {
        sock.destroy();
      }
    });
  });
});
