// Streaming through real nginx: SSE events reach the client as the upstream produces them
// (streaming: true), and a WebSocket upgrade is proxied (websocket: true).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { openWebSocket, stream } from '../support/http.ts';

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

async function readStream(pathname: string): Promise<StreamTiming> {
  const r = await stream({ port, path: pathname, headers: { Accept: 'text/event-stream', 'Accept-Encoding': 'gzip' }, timeoutMs: 15_000 });
  let text = '';
  let firstEventMs = -1;
  for (const c of r.chunks) {
    text += c.text;
    if (firstEventMs < 0 && text.includes('data:')) firstEventMs = c.ms;
  }
  return { status: r.status, headers: r.headers, firstEventMs, endMs: r.endMs, events: text.split('\n').filter((l) => l.startsWith('data:')) };
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
      const ws = await openWebSocket(port, '/ws/chat');
      try {
        const head = ws.head;
        expect(head).toMatch(/^HTTP\/1\.1 101 /);
        expect(head).toMatch(/\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
        expect(head).toMatch(/\r\nx-upstream-id: a/i);
        expect(up.requests.at(-1)?.path).toBe('/chat');

        for (const msg of ['hello', 'through nginx']) {
          ws.send(msg);
          const frame = await ws.next();
          expect(frame.opcode).toBe(1);
          expect(frame.text).toBe(msg);
        }
      } finally {
        ws.close();
      }
    });
  });
});
