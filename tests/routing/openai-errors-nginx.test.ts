// OpenAI-shaped errors through real nginx, read by the official `openai` SDK: on `models:`
// routes (by default), on a listener with `errors: openai` and on a route that opts in, every
// error the gateway itself makes is {"error":{"message","type","param","code"}} with one code
// per cause, and the SDK raises the matching class with that code and type. A concurrency-limit
// 429 differs from a rate-limit 429 in both shapes; other routes keep the gateway shape.
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { freePort } from '../support/ports.ts';
import { withErrorLog } from '../support/nginx.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { rawRequest, send } from '../support/http.ts';
import { startOpenAiUpstream, type OpenAiUpstream } from '../support/openai-upstream.ts';
import { closeAll, deadPort, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';

let project: Project;
let mock: OpenAiUpstream;
let echo: EchoUpstream[] = [];
let port: number; // listener main: gateway shape by default
let oaiPort: number; // listener oai: errors: openai
const keys: Record<string, string> = {};

const yaml = (mockAddr: string, echoAddr: string, dead: number) => `version: 1
global: { status: false, worker_processes: 1 }
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
  - { name: oai, port: ${oaiPort}, address: 127.0.0.1, errors: openai }
upstreams:
  pool: { servers: [${mockAddr}] }
  dead: { servers: ["127.0.0.1:${dead}"] }
  echo: { servers: [${echoAddr}] }
models:
  - { id: gpt-test, upstream: pool }
  - { id: gone-model, upstream: dead }
auth:
  api_keys: { file: keys.yaml }
limits:
  rate:
    one: { rate: 1r/m }
    one_plain: { rate: 1r/m }
    per_client: { key: client_id, rate: 1r/m }
  conn:
    single: { max: 1 }
    single_plain: { max: 1 }
routes:
  - { name: models, match: { exact: /v1/models, methods: [GET] }, models: list, auth: api_key, rate_limits: [per_client] }
  - { name: chat, match: { exact: /v1/chat/completions, methods: [POST] }, models: route, auth: api_key, max_body: 8k }
  - { name: admin, match: { exact: /admin/v1/chat/completions, methods: [POST] }, models: route, auth: { methods: [api_key], roles: [admin] } }
  - { name: rl, match: { exact: /rl/v1/chat/completions, methods: [POST] }, models: route, rate_limits: [one] }
  - { name: cc, match: { exact: /cc/v1/chat/completions, methods: [POST] }, models: route, conn_limits: [single] }
  - { name: slow, match: { exact: /slow/v1/chat/completions, methods: [POST] }, models: route, timeouts: { read: 1s } }
  - { name: plain-rl, match: { prefix: /plain-rl/ }, upstream: echo, rate_limits: [one_plain] }
  - { name: plain-cc, match: { prefix: /plain-cc/ }, upstream: pool, conn_limits: [single_plain] }
  - { name: opt-in, match: { prefix: /opt/, methods: [POST] }, upstream: dead, errors: openai, listeners: [main] }
  - { name: opt-out, match: { prefix: /opt/ }, upstream: dead, errors: gateway, listeners: [oai] }
`;

const client = (base: string, apiKey = keys.user, p = port) => new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${p}${base}`, maxRetries: 0, timeout: 10_000 });
const ask = { model: 'gpt-test', messages: [{ role: 'user' as const, content: 'hi' }] };

/** The error the SDK raised for a call, with the raw status. */
async function failure(call: Promise<unknown>): Promise<APIError> {
  try {
    await call;
  } catch (e) {
    if (e instanceof APIError) return e;
    throw e;
  }
  throw new Error('the call succeeded');
}

function expectShape(e: APIError, status: number, type: string, code: string): void {
  expect(e.status, e.message).toBe(status);
  expect(e.type).toBe(type);
  expect(e.code).toBe(code);
  expect(e.param === null || typeof e.param === 'string').toBe(true);
  expect(Object.keys(e.error as object).sort()).toEqual(['code', 'message', 'param', 'type']);
  // the request id stays in the header the SDK reads it from
  expect(e.requestID).toMatch(/^[0-9a-f]{32}$/);
}

beforeAll(async () => {
  mock = await startOpenAiUpstream('o1');
  echo = await startUpstreams(1, { idPrefix: 'e' });
  port = await freePort();
  oaiPort = await freePort();
  const store: KeyFile = { version: 1, keys: [] };
  keys.user = createKey(store, { name: 'user', role: 'user' }, new Date()).key;
  keys.admin = createKey(store, { name: 'boss', role: 'admin' }, new Date()).key;
  project = await startProject({ 'gateway.yaml': yaml(mock.address, echo[0].address, await deadPort()), 'keys.yaml': serializeKeys(store) }, [port, oaiPort]);
});

afterAll(async () => {
  await project?.stop();
  await mock?.close();
  await closeAll(echo);
});

describe('OpenAI-shaped errors read by the openai SDK', () => {
  it('a valid call answers through the gateway (non-streamed and streamed)', async () => {
    await withErrorLog(project.gw, async () => {
      const r = await client('/v1').chat.completions.create(ask);
      expect(r.choices[0].message.content).toBe('answer from o1');
      const s = await client('/v1').chat.completions.create({ ...ask, stream: true });
      let text = '';
      for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
      expect(text).toBe('answer from o1');
    });
  });

  it('AuthenticationError: one code per reason, type authentication_error', async () => {
    await withErrorLog(project.gw, async () => {
      const before = mock.requests.length;
      const unknown = await failure(client('/v1', 'gw_' + 'A'.repeat(43)).chat.completions.create(ask));
      expect(unknown).toBeInstanceOf(OpenAI.AuthenticationError);
      expectShape(unknown, 401, 'authentication_error', 'unknown_key');
      const malformed = await failure(client('/v1', 'abc').chat.completions.create(ask));
      expect(malformed).toBeInstanceOf(OpenAI.AuthenticationError);
      expectShape(malformed, 401, 'authentication_error', 'malformed_key');
      expect(malformed.headers?.get('www-authenticate')).toContain('Bearer');
      const missing = await send({ port, method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ask) });
      expect(missing.status).toBe(401);
      expect(missing.json).toEqual({ error: { message: 'authentication required', type: 'authentication_error', param: null, code: 'missing_key' } });
      expect(mock.requests.length, 'refused requests never reach the model server').toBe(before);
    });
  });

  it('PermissionDeniedError: a role the route does not allow (role_denied)', async () => {
    await withErrorLog(project.gw, async () => {
      const e = await failure(client('/admin/v1').chat.completions.create(ask));
      expect(e).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expectShape(e, 403, 'permission_error', 'role_denied');
      expect(e.message).toContain('role not allowed on this route');
      const ok = await client('/admin/v1', keys.admin).chat.completions.create(ask);
      expect(ok.choices[0].message.content).toBe('answer from o1');
    });
  });

  it('NotFoundError: an unknown model (param model) and an unknown path on an openai listener', async () => {
    await withErrorLog(project.gw, async () => {
      const model = await failure(client('/v1').chat.completions.create({ ...ask, model: 'no-such-model' }));
      expect(model).toBeInstanceOf(OpenAI.NotFoundError);
      expectShape(model, 404, 'invalid_request_error', 'model_not_found');
      expect(model.param).toBe('model');
      const path = await failure(client('/v1', keys.user, oaiPort).embeddings.create({ model: 'gpt-test', input: 'x' }));
      expect(path).toBeInstanceOf(OpenAI.NotFoundError);
      expectShape(path, 404, 'invalid_request_error', 'not_found');
    });
  });

  it('RateLimitError: a rate limit and a concurrency limit have different codes', async () => {
    await withErrorLog(project.gw, async () => {
      await client('/rl/v1').chat.completions.create(ask);
      const rate = await failure(client('/rl/v1').chat.completions.create(ask));
      expect(rate).toBeInstanceOf(OpenAI.RateLimitError);
      expectShape(rate, 429, 'rate_limit_error', 'rate_limit_exceeded');
      expect(rate.headers?.get('retry-after')).toBe('60');

      // a limit keyed by the client runs after authentication, in the location answering /v1/models
      expect((await client('/v1').models.list()).data.map((x) => x.id)).toEqual(['gpt-test', 'gone-model']);
      const listed = await failure(client('/v1').models.list());
      expect(listed).toBeInstanceOf(OpenAI.RateLimitError);
      expectShape(listed, 429, 'rate_limit_error', 'rate_limit_exceeded');
      expect(listed.headers?.get('retry-after')).toBe('60');

      const held = client('/cc/v1').chat.completions.create(ask, { headers: { 'X-Mock-Delay-Ms': '1500' } });
      await waitForRequest('X-Mock-Delay-Ms');
      const conc = await failure(client('/cc/v1').chat.completions.create(ask));
      expect(conc).toBeInstanceOf(OpenAI.RateLimitError);
      expectShape(conc, 429, 'rate_limit_error', 'concurrency_limit_exceeded');
      expect(conc.headers?.get('retry-after')).toBe('1');
      expect((await held).choices[0].message.content).toBe('answer from o1');
    });
  });

  it('APIError for 405 and 413, InternalServerError for an unreachable pool and an upstream timeout', async () => {
    await withErrorLog(project.gw, async () => {
      const method = await failure(client('/v1').get('/chat/completions'));
      expectShape(method, 405, 'invalid_request_error', 'method_not_allowed');
      const big = await failure(client('/v1').chat.completions.create({ ...ask, messages: [{ role: 'user', content: 'x'.repeat(20_000) }] }));
      expectShape(big, 413, 'invalid_request_error', 'request_too_large');
      const down = await failure(client('/v1').chat.completions.create({ ...ask, model: 'gone-model' }));
      expect(down).toBeInstanceOf(OpenAI.InternalServerError);
      expectShape(down, 502, 'server_error', 'upstream_unavailable');
      const slow = await failure(client('/slow/v1').chat.completions.create(ask, { headers: { 'X-Mock-Delay-Ms': '2500' } }));
      expect(slow).toBeInstanceOf(OpenAI.InternalServerError);
      expectShape(slow, 504, 'server_error', 'upstream_timeout');
    });
  });

  it('opt-in per route and per listener; the gateway shape stays the default elsewhere', async () => {
    await withErrorLog(project.gw, async () => {
      // a plain route on the main listener that opts in
      const optIn = await send({ port, method: 'POST', path: '/opt/x', body: '{}' });
      expect(optIn.status).toBe(502);
      expect(optIn.json).toEqual({ error: { message: 'upstream unavailable', type: 'server_error', param: null, code: 'upstream_unavailable' } });
      const optInMethod = await send({ port, path: '/opt/x' });
      expect(optInMethod.json).toEqual({ error: { message: 'method not allowed on this route', type: 'invalid_request_error', param: null, code: 'method_not_allowed' } });
      // a route that opts out on the openai listener
      const optOut = await send({ port: oaiPort, path: '/opt/x' });
      expect(optOut.status).toBe(502);
      expect(optOut.json).toMatchObject({ error: { status: 502, code: 'bad_gateway', message: 'upstream unavailable' } });
      // an early error (a bad request line, before any route) in the listener's shape
      const early = await rawRequest(oaiPort, 'GET /v1/models HTTP/1.1 junk\r\nHost: a\r\nConnection: close\r\n\r\n');
      expect(early).toMatch(/^HTTP\/1\.1 400 /);
      expect(JSON.parse(early.slice(early.indexOf('\r\n\r\n') + 4))).toEqual({ error: { message: 'bad request', type: 'invalid_request_error', param: null, code: 'bad_request' } });
      const earlyMain = await rawRequest(port, 'GET /v1/models HTTP/1.1 junk\r\nHost: a\r\nConnection: close\r\n\r\n');
      expect(JSON.parse(earlyMain.slice(earlyMain.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { status: 400, code: 'bad_request' } });
      // the main listener's own 404 keeps the gateway shape, with the request id in the body too
      const nf = await send({ port, path: '/nowhere' });
      expect(nf.status).toBe(404);
      expect(nf.json).toEqual({ error: { status: 404, code: 'not_found', message: 'no route matches this request' }, request_id: nf.headers['x-request-id'] });
    });
  });

  it('gateway shape: a concurrency-limit 429 is told from a rate-limit 429 by its code', async () => {
    await withErrorLog(project.gw, async () => {
      expect((await send({ port, path: '/plain-rl/a' })).status).toBe(200);
      const rate = await send({ port, path: '/plain-rl/b' });
      expect(rate.status).toBe(429);
      expect(rate.json).toMatchObject({ error: { status: 429, code: 'rate_limited', message: 'too many requests' } });

      const body = JSON.stringify(ask);
      const held = send({ port, method: 'POST', path: '/plain-cc/v1/chat/completions', headers: { 'X-Mock-Delay-Ms': '1500', 'Content-Type': 'application/json' }, body });
      await waitForRequest('X-Mock-Delay-Ms', 2);
      const conc = await send({ port, method: 'POST', path: '/plain-cc/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body });
      expect(conc.status).toBe(429);
      expect(conc.json).toMatchObject({ error: { status: 429, code: 'concurrency_limited', message: 'too many concurrent requests' } });
      expect(conc.headers['retry-after']).toBe('1');
      expect((await held).status).toBe(200);
    });
  });
});

/** Wait until the mock holds the n-th request carrying `header` (the limit is then taken). */
async function waitForRequest(header: string, n = 1): Promise<void> {
  const deadline = Date.now() + 5000;
  while (mock.requests.filter((r) => r.headers[header.toLowerCase()] !== undefined).length < n) {
    if (Date.now() > deadline) throw new Error(`no request with ${header} reached the mock`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
