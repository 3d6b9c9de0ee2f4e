// Body-keyed caches (`cache.key_includes_body`) through real nginx with a real upstream that
// counts requests: the key holds a SHA-256 digest of the body (njs), so realistic chat bodies
// (~20 KB, far above the 4 KB proxy_buffer_size the key used to have to fit in) are cached,
// each body under its own key, up to the route's max_body.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { send, type HttpResponse } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const yaml = `
version: 1
global:
  worker_processes: 1
  status: false
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  llm:
    servers: ["127.0.0.1:\${UP_A}"]
caches:
  llm: { size: 1m, inactive: 10m }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    upstream: llm
    max_body: 256k
    cache: { zone: llm, ttl: { "200": 60s }, key_includes_body: true }
  - name: embeddings
    match: { exact: /v1/embeddings, methods: [POST] }
    upstream: llm
    cache: { zone: llm, ttl: { "200": 60s }, key_includes_body: true } # max_body defaults to 1m
`;

/** An OpenAI-style chat body of about `kb` KB; `tag` makes it unique. */
function chatBody(kb: number, tag: string): string {
  const messages = [{ role: 'system', content: 'You are a helpful assistant.' }];
  let i = 0;
  while (JSON.stringify(messages).length < kb * 1024) {
    messages.push({ role: i % 2 ? 'assistant' : 'user', content: `Turn ${i}: ${'lorem ipsum dolor sit amet '.repeat(20)}` });
    i++;
  }
  return JSON.stringify({ model: 'gpt-4o-mini', temperature: 0, user: 'u-1', messages, metadata: { tag } });
}

let up: EchoUpstream;
let g: BuiltGateway;

beforeAll(async () => {
  up = await startEchoUpstream({ id: 'a' });
  const port = await freePort();
  g = await buildAndStart({ configPath: path.join(HERE, 'cache-body.gateway.yaml'), text: yaml, env: { PORT_GW: String(port), UP_A: String(up.port) }, ports: [port] });
});

afterAll(async () => {
  await g?.stop();
  await up?.close();
  await stopAllGateways();
});

async function post(p: string, body: string): Promise<HttpResponse> {
  return send({ port: g.gw.ports[0], method: 'POST', path: p, body, headers: { 'Content-Type': 'application/json' } });
}

/** POST `body` and return the response with the number of requests the upstream received for it. */
async function counted(p: string, body: string): Promise<{ res: HttpResponse; hits: number }> {
  const before = up.hits;
  const res = await post(p, body);
  return { res, hits: up.hits - before };
}

describe('body-keyed cache with realistic bodies', () => {
  for (const p of ['/v1/chat/completions', '/v1/embeddings']) {
    it(`${p}: a ~20 KB body POSTed twice is one upstream request; another body is a MISS`, async () => {
      await withErrorLog(g.gw, async () => {
        const a = chatBody(20, `a ${p}`);
        const b = chatBody(20, `b ${p}`); // same size, differs only near the end
        expect(a.length).toBeGreaterThan(20 * 1024);
        const first = await counted(p, a);
        expect(first.res.status, first.res.text).toBe(200);
        expect(first.res.headers['x-cache-status']).toBe('MISS');
        expect(first.hits).toBe(1);
        expect((first.res.json as { body: string }).body).toBe(a); // the upstream got the whole body

        const second = await counted(p, a);
        expect(second.res.status).toBe(200);
        expect(second.res.headers['x-cache-status']).toBe('HIT');
        expect(second.hits).toBe(0);
        expect(second.res.text).toBe(first.res.text);

        const other = await counted(p, b);
        expect(other.res.headers['x-cache-status']).toBe('MISS');
        expect(other.hits).toBe(1);
        expect((other.res.json as { body: string }).body).toBe(b);

        const again = await counted(p, b);
        expect(again.res.headers['x-cache-status']).toBe('HIT');
        expect(again.hits).toBe(0);
        expect((again.res.json as { body: string }).body).toBe(b); // each body keeps its own answer
        expect(g.gw.errorLog()).not.toContain('not enough for cache key');
      });
    });
  }

  it('a body close to max_body (250 KB of 256k) caches too; above it is 413 and never reaches the upstream', async () => {
    const big = chatBody(250, 'big');
    expect(big.length).toBeLessThanOrEqual(256 * 1024);
    const first = await counted('/v1/chat/completions', big);
    expect(first.res.status, first.res.text).toBe(200);
    expect(first.res.headers['x-cache-status']).toBe('MISS');
    const second = await counted('/v1/chat/completions', big);
    expect(second.res.headers['x-cache-status']).toBe('HIT');
    expect(second.hits).toBe(0);
    const tooBig = await counted('/v1/chat/completions', chatBody(300, 'too big'));
    expect(tooBig.res.status).toBe(413);
    expect(tooBig.hits).toBe(0);
  });

  it('a chunked body (no Content-Length) is keyed on the whole body too', async () => {
    const body = chatBody(20, 'chunked');
    const chunked = async () => {
      const before = up.hits;
      const parts = [body.slice(0, 7000), body.slice(7000, 15000), body.slice(15000)];
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (const p of parts) c.enqueue(new TextEncoder().encode(p));
          c.close();
        },
      });
      const res = await fetch(`http://127.0.0.1:${g.gw.ports[0]}/v1/chat/completions`, {
        method: 'POST',
        body: stream,
        headers: { 'Content-Type': 'application/json' },
        duplex: 'half',
      } as RequestInit);
      const json = (await res.json()) as { body: string; headers: Record<string, string> };
      return { status: res.status, cache: res.headers.get('x-cache-status'), hits: up.hits - before, json };
    };
    const first = await chunked();
    expect(first.status).toBe(200);
    expect(first.cache).toBe('MISS');
    expect(first.json.body).toBe(body);
    const second = await chunked();
    expect(second.cache).toBe('HIT');
    expect(second.hits).toBe(0);
    // the same bytes with a Content-Length share the key
    const plain = await counted('/v1/chat/completions', body);
    expect(plain.res.headers['x-cache-status']).toBe('HIT');
  });

  it('an empty body is a key of its own', async () => {
    const first = await counted('/v1/chat/completions', '');
    expect(first.res.headers['x-cache-status']).toBe('MISS');
    expect(first.hits).toBe(1);
    const second = await counted('/v1/chat/completions', '');
    expect(second.res.headers['x-cache-status']).toBe('HIT');
    expect(second.hits).toBe(0);
  });
});
