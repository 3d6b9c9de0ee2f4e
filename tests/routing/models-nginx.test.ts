// Model-aware routing and njs-derived hash keys through real nginx + njs with a compiled config:
// the JSON body's `model` picks the pool (400 missing, 404 unknown, OpenAI error shape),
// /v1/models comes from the catalogue, a body field / JWT claim / client id is the hash key
// and lands where `gatewayctl route` says, and the body reaches the upstream intact.
//
// $gw_client_id is normally set by auth (docs/njs-auth.md); here the unsafe_nginx_route escape
// hatch sets it from a test header, so the routing half is tested on its own. A JWT claim key
// is derived by the JWT handler itself, so it needs real JWTs (auth-keys-nginx.test.ts).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explainRoute, resolveQuery } from '../../src/routing/explain.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { send, stream } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const YAML = `
version: 1
global:
  worker_processes: 1
  status: false
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  openai_pool:
    balance: consistent_hash
    hash_key: { body_field: user }
    hash_fallback: client_ip
    servers: ["127.0.0.1:\${UP_1}", "127.0.0.1:\${UP_2}", "127.0.0.1:\${UP_3}"]
  llama_pool:
    servers: ["127.0.0.1:\${UP_4}"]
  embeddings:
    balance: consistent_hash
    hash_key: { body_field: user }
    servers: ["127.0.0.1:\${UP_1}", "127.0.0.1:\${UP_2}", "127.0.0.1:\${UP_3}"]
  tenants:
    balance: consistent_hash
    hash_key: { jwt_claim: tenant }
    hash_fallback: client_ip
    servers: ["127.0.0.1:\${UP_1}", "127.0.0.1:\${UP_2}", "127.0.0.1:\${UP_3}"]
  prefixed:
    balance: consistent_hash
    hash_key: { prompt_prefix: 64 }
    hash_fallback: client_ip
    servers: ["127.0.0.1:\${UP_1}", "127.0.0.1:\${UP_2}", "127.0.0.1:\${UP_3}"]
  clients:
    balance: consistent_hash
    hash_key: client_id
    hash_fallback: client_ip
    servers: ["127.0.0.1:\${UP_1}", "127.0.0.1:\${UP_2}", "127.0.0.1:\${UP_3}"]
models:
  - { id: gpt-4o, upstream: openai_pool, owned_by: openai, created: 1715367049 }
  - { id: meta-llama/Llama-3-70b, upstream: llama_pool, owned_by: meta }
  - { id: qwen-prefix, upstream: prefixed }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    max_body: 64k
  - name: models
    match: { exact: /v1/models, methods: [GET] }
    models: list
  - name: sse
    match: { exact: /sse, methods: [POST] }
    models: route
    streaming: true
  - name: embeddings
    match: { exact: /v1/embeddings, methods: [GET, POST] }
    upstream: embeddings
  - name: tenants
    match: { prefix: /tenant/ }
    upstream: tenants
    unsafe_nginx_route: "set $gw_client_claims $http_x_test_claims;"
  - name: clients
    match: { prefix: /client/ }
    upstream: clients
    unsafe_nginx_route: "set $gw_client_id $http_x_test_client;"
`;

let ups: EchoUpstream[] = [];
let g: BuiltGateway;
let port: number;

const idOf = (addr: string) => ups.find((u) => u.address === addr)!.id;
const where = (upstream: string, key: string) => idOf(explainRoute(g.model, key, { upstream }).peer!);
const post = (p: string, body: unknown, headers: Record<string, string> = {}) =>
  send({ port, method: 'POST', path: p, headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

beforeAll(async () => {
  ups = await startUpstreams(4, { idPrefix: 'm' });
  port = await freePort();
  const env: Record<string, string> = { PORT_GW: String(port) };
  ups.forEach((u, i) => (env[`UP_${i + 1}`] = String(u.port)));
  g = await buildAndStart({ configPath: path.join(HERE, 'models.gateway.yaml'), text: YAML, env, ports: [port] });
});

afterAll(async () => {
  await g?.stop();
  await closeAll(ups);
  await stopAllGateways();
});

describe('prompt-prefix affinity', () => {
  it('a conversation start (first 64 bytes of role + text) keeps a server; gatewayctl route predicts it', async () => {
    await withErrorLog(g.gw, async () => {
      const predicted = (body: unknown) => {
        const q = resolveQuery(g.model, { body: JSON.stringify(body) });
        return q.key === null ? where('prefixed', '127.0.0.1') : where(q.upstream!, q.key);
      };
      const seen = new Set<string>();
      for (let i = 0; i < 24; i++) {
        // the system prompt differs within the first 64 bytes; what follows does not matter
        const system = `Assistant ${i} ünïcode 🚀 for tenant ${i}; answer briefly and cite the sources you use.`;
        const first = { model: 'qwen-prefix', messages: [{ role: 'system', content: system }, { role: 'user', content: 'first question' }] };
        const later = { model: 'qwen-prefix', messages: [{ role: 'system', content: system }, { role: 'user', content: 'first question' }, { role: 'assistant', content: 'x' }, { role: 'user', content: `follow-up ${i}` }] };
        const a = await post('/v1/chat/completions', first);
        const b = await post('/v1/chat/completions', later);
        expect(a.status, a.text).toBe(200);
        expect(res(a).id, `conversation ${i}`).toBe(predicted(first));
        expect(res(b).id, `conversation ${i}, later turn`).toBe(res(a).id);
        seen.add(res(a).id);
      }
      expect(seen.size).toBe(3);
      // content given as parts reads like the same text; a completions prompt is used as is
      const parts = { model: 'qwen-prefix', messages: [{ role: 'system', content: [{ type: 'text', text: 'Assistant 7 ünïcode 🚀 for tenant 7; ' }, { type: 'text', text: 'answer briefly and cite the sources you use.' }] }] };
      const plain = { model: 'qwen-prefix', messages: [{ role: 'system', content: 'Assistant 7 ünïcode 🚀 for tenant 7; answer briefly and cite the sources you use.' }] };
      expect(res(await post('/v1/chat/completions', parts)).id).toBe(res(await post('/v1/chat/completions', plain)).id);
      const prompt = { model: 'qwen-prefix', prompt: 'Once upon a time in a land far away, a gateway routed prompts by their prefix.' };
      expect(res(await post('/v1/chat/completions', prompt)).id).toBe(predicted(prompt));
      // no messages and no prompt: hash_fallback (the client address)
      expect(res(await post('/v1/chat/completions', { model: 'qwen-prefix' })).id).toBe(where('prefixed', '127.0.0.1'));
    });
  });
});

describe('model-aware routing', () => {
  it('sends each model to its pool with the body intact, hashed on `user` inside the pool', async () => {
    await withErrorLog(g.gw, async () => {
      for (let i = 0; i < 60; i++) {
        const body = { model: 'gpt-4o', user: `end-user-${i}`, messages: [{ role: 'user', content: `hi ${i} "quoted" ünïcode` }] };
        const res = await post('/v1/chat/completions', body);
        expect(res.status, res.text).toBe(200);
        const echo = res.json as { id: string; body: string; method: string; path: string };
        expect(echo.id).toBe(where('openai_pool', `end-user-${i}`));
        expect(JSON.parse(echo.body)).toEqual(body);
        expect(echo.method).toBe('POST');
        expect(echo.path).toBe('/v1/chat/completions');
      }
      const llama = await post('/v1/chat/completions', { model: 'meta-llama/Llama-3-70b', messages: [] });
      expect(llama.status).toBe(200);
      expect(res(llama).id).toBe(ups[3].id);
    });
  });

  it('falls back to the client IP without `user`', async () => {
    await withErrorLog(g.gw, async () => {
      const expected = where('openai_pool', '127.0.0.1');
      for (let i = 0; i < 5; i++) {
        const r = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: `x${i}` }] });
        expect(res(r).id).toBe(expected);
      }
    });
  });

  it('answers a missing model with 400 and an unknown one with 404 (OpenAI error shape)', async () => {
    await withErrorLog(g.gw, async () => {
      const missing = await post('/v1/chat/completions', { messages: [] });
      expect(missing.status).toBe(400);
      expect(missing.headers['content-type']).toContain('application/json');
      expect(missing.json).toEqual({ error: { message: 'You must provide a model parameter.', type: 'invalid_request_error', param: 'model', code: 'missing_model' } });
      expect(missing.headers['x-request-id']).toBeTruthy();
      const notJson = await post('/v1/chat/completions', 'model=gpt-4o');
      expect(notJson.status).toBe(400);
      expect((notJson.json as { error: { code: string } }).error.code).toBe('invalid_json');
      const unknown = await post('/v1/chat/completions', { model: 'gpt-5-imaginary', messages: [] });
      expect(unknown.status).toBe(404);
      expect(unknown.json).toEqual({
        error: { message: 'The model `gpt-5-imaginary` does not exist.', type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
      });
      const wrongType = await post('/v1/chat/completions', { model: 42 });
      expect(wrongType.status).toBe(400);
      for (const u of ups) expect(u.requests.some((x) => x.body.includes('gpt-5-imaginary'))).toBe(false);
    });
  });

  it('keeps method checks and body limits in front of the njs step', async () => {
    await withErrorLog(g.gw, async () => {
      const get = await send({ port, path: '/v1/chat/completions' });
      expect(get.status).toBe(405);
      const big = await post('/v1/chat/completions', { model: 'gpt-4o', pad: 'x'.repeat(70 * 1024) });
      expect(big.status).toBe(413);
    });
  });

  it('streams SSE from the chosen pool token by token (body step + named location keep streaming)', async () => {
    await withErrorLog(g.gw, async () => {
      const body = JSON.stringify({ model: 'meta-llama/Llama-3-70b', stream: true });
      const r = await stream({ port, path: '/sse?events=3&intervalMs=400', method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, body });
      expect(r.headers['content-type']).toContain('text/event-stream');
      expect(r.headers['x-accel-buffering']).toBe('no');
      const status = r.status;
      const chunks = r.chunks.map((c) => ({ t: c.ms, text: c.text }));
      expect(status).toBe(200);
      const all = chunks.map((c) => c.text).join('');
      expect(all.match(/^data: /gm)?.length).toBe(3);
      expect(all).toContain(`"id":"${ups[3].id}"`);
      const first = chunks.find((c) => c.text.includes('data: '))!;
      expect(first.t, 'first event arrives before the stream ends').toBeLessThan(600);
      expect(chunks[chunks.length - 1].t - first.t).toBeGreaterThan(500);
    });
  });

  it('answers GET /v1/models from the catalogue', async () => {
    await withErrorLog(g.gw, async () => {
      const r = await send({ port, path: '/v1/models' });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toContain('application/json');
      expect(r.json).toEqual({
        object: 'list',
        data: [
          { id: 'gpt-4o', object: 'model', created: 1715367049, owned_by: 'openai' },
          { id: 'meta-llama/Llama-3-70b', object: 'model', created: 0, owned_by: 'meta' },
          { id: 'qwen-prefix', object: 'model', created: 0, owned_by: 'gateway' },
        ],
      });
    });
  });
});

describe('njs-derived hash keys', () => {
  it('body_field: the key is the JSON field, placed by nginx where gatewayctl route says', async () => {
    await withErrorLog(g.gw, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const r = await post('/v1/embeddings', { input: 'text', user: `u${i}` });
        expect(res(r).id, `user u${i}`).toBe(where('embeddings', `u${i}`));
        seen.add(res(r).id);
        const again = await post('/v1/embeddings', { user: `u${i}`, input: 'other text, same user' });
        expect(res(again).id).toBe(res(r).id);
      }
      expect(seen.size).toBe(3);
      // numbers are keys too; GET (no body) still works (fallback spread)
      expect(res(await post('/v1/embeddings', { user: 12345 })).id).toBe(where('embeddings', '12345'));
      expect((await send({ port, path: '/v1/embeddings' })).status).toBe(200);
    });
  });

  it('jwt_claim without JWT auth: the key is hash_fallback, whatever claims a snippet sets (GW366); tests/routing/auth-keys-nginx.test.ts drives the claim key through real JWTs', async () => {
    await withErrorLog(g.gw, async () => {
      // the claim key is written by the JWT handler that verified the token, never read from
      // $gw_client_claims by a call of its own: a route without a verifier cannot be steered
      const fb = where('tenants', '127.0.0.1');
      for (let i = 0; i < 10; i++) {
        const claims = b64u({ sub: `s${i}`, tenant: `acme-${i}` });
        expect(res(await send({ port, path: '/tenant/x', headers: { 'X-Test-Claims': claims } })).id, `tenant acme-${i}`).toBe(fb);
      }
      expect(res(await send({ port, path: '/tenant/x' })).id).toBe(fb);
    });
  });

  it('client_id: the authenticated client is the key (map over $gw_client_id, no njs of its own)', async () => {
    await withErrorLog(g.gw, async () => {
      for (let i = 0; i < 40; i++) {
        const r = await send({ port, path: '/client/x', headers: { 'X-Test-Client': `client-${i}` } });
        expect(res(r).id).toBe(where('clients', `client-${i}`));
      }
      expect(res(await send({ port, path: '/client/x' })).id).toBe(where('clients', '127.0.0.1'));
    });
  });
});

function res(r: { status: number; json: unknown; text: string }): { id: string; body: string } {
  expect(r.status, r.text).toBe(200);
  return r.json as { id: string; body: string };
}
