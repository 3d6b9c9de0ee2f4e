// Every feature that renders metric families or rides in the log-phase call, on at once, through
// real nginx: API keys and JWT, a cache, rate limits, token budgets, model routing with the LLM
// body filter, an active health check and a circuit breaker, runtime servers. Mixed traffic
// (accepted, refused, cached, streamed, failed), then one scrape: each family is declared once,
// `promtool check metrics` accepts the whole exposition, and the error log holds no njs
// exception. Each feature's own suite checks its figures; this one checks they add up to a
// valid exposition together (a second HELP/TYPE for a family fails promtool and strict scrapers).
import { spawnSync } from 'node:child_process';
import { SignJWT } from 'jose';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sendCounted, sleep } from '../support/http.ts';
import { closeAll, startEchoUpstream, startFixedStatusUpstream, type EchoUpstream, type FixedStatusUpstream } from '../support/upstreams.ts';
import { startOpenAiUpstream, type OpenAiUpstream } from '../support/openai-upstream.ts';

const SECRET = 'all-features-secret-0123456789abcdef0123456789';

const yaml = (port: number, status: number, llm: string, app: string, bad: string) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  llm:
    servers: ["${llm}"]
  app:
    servers: ["${app}"]
    health_check: { path: /healthz, interval: 1s, timeout: 500ms }
  flaky:
    servers: ["${bad}"]
    circuit_breaker: { failures: 2, window: 30s, open_for: 30s }
models:
  - { id: gpt-4o, upstream: llm }
caches:
  pages: { size: 1m }
limits:
  rate:
    tight: { key: client_ip, rate: 1r/m }
  tokens:
    per_client: { key: client_id, window: hour, tokens: 100000, default_max_tokens: 64 }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    hs: { algorithms: [HS256], secret_file: hs.secret }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    auth: api_key
    streaming: true
    token_limits: [per_client]
  - name: pages
    match: { prefix: /pages/ }
    upstream: app
    cache: { zone: pages, ttl: { "200": 1m } }
  - name: limited
    match: { prefix: /limited/ }
    upstream: app
    rate_limits: [tight]
  - name: jwt
    match: { prefix: /jwt/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: hs }
  - name: flaky
    match: { prefix: /flaky/ }
    upstream: flaky
admin_api: { token: all-features-admin-token-0123456789 }
metrics:
  llm: { client_label: true }
`;

let mock: OpenAiUpstream;
let app: EchoUpstream;
let bad: FixedStatusUpstream;
let project: Project;
let port: number;
let statusPort: number;
let key: string;

beforeAll(async () => {
  mock = await startOpenAiUpstream('llm', { reply: 'words' });
  app = await startEchoUpstream({ id: 'app' });
  bad = await startFixedStatusUpstream('flaky', 502);
  [port, statusPort] = await freePorts(2);
  const store: KeyFile = { version: 1, keys: [] };
  key = createKey(store, { name: 'alice' }, new Date()).key;
  project = await startProject(
    { 'gateway.yaml': yaml(port, statusPort, mock.address, app.address, bad.address), 'keys.yaml': serializeKeys(store), 'hs.secret': SECRET },
    [port, statusPort],
  );
});

afterAll(async () => {
  await project?.stop();
  await closeAll([mock, app, bad]);
  await stopAllGateways();
});

describe('all metric-producing features at once', () => {
  it('serve one valid exposition after mixed traffic, with no njs exception', async () => {
    await withErrorLog(project.gw, async () => {
      const ai = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
      const done = await ai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two' }] });
      expect(done.usage?.completion_tokens).toBeGreaterThan(0);
      const stream = await ai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'three' }], stream: true, stream_options: { include_usage: true } });
      for await (const _ of stream) void _;
      expect((await send({ port, path: '/v1/chat/completions', method: 'POST', headers: { 'X-API-Key': 'gw_live_nope_0123456789', 'Content-Type': 'application/json' }, body: '{"model":"gpt-4o"}' })).status).toBe(401);
      expect((await send({ port, path: '/pages/a' })).status).toBe(200);
      expect((await send({ port, path: '/pages/a' })).headers['x-cache-status']).toBe('HIT');
      const limited = [(await send({ port, path: '/limited/a' })).status, (await send({ port, path: '/limited/a' })).status];
      expect(limited).toEqual([200, 429]);
      const token = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
      expect((await send({ port, path: '/jwt/a', headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await send({ port, path: '/jwt/a', headers: { Authorization: `Bearer ${token}` } })).status).toBe(200); // from the cache
      expect((await send({ port, path: '/jwt/a', headers: { Authorization: `Bearer ${token}x` } })).status).toBe(401);
      for (let i = 0; i < 3; i++) await send({ port, path: '/flaky/a' }); // 502, 502, then the breaker is open
      expect((await send({ port, path: '/nowhere' })).status).toBe(404);

      // the log phase runs after each answer is sent: wait for the last request to be counted
      let text = '';
      for (let i = 0; i < 50; i++) {
        text = (await sendCounted({ port: statusPort, path: '/metrics' })).text;
        if (/^gatewayctl_requests_total\{route="-",[^}]*code="404"[^}]*\} 1$/m.test(text)) break;
        await sleep(100);
      }
      // every family the gateway can export, each declared exactly once
      const declared = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
      expect(declared.length).toBeGreaterThan(15);
      expect(declared.filter((n, i) => declared.indexOf(n) !== i), text).toEqual([]);
      for (const family of ['gatewayctl_requests_total', 'gatewayctl_cache_requests_total', 'gatewayctl_limited_requests_total', 'gatewayctl_auth_failures_total', 'gatewayctl_gen_ai_usage_tokens_total', 'gatewayctl_gen_ai_client_usage_tokens_total', 'gatewayctl_upstream_peer_state', 'gatewayctl_upstream_peer_transitions_total']) {
        expect(text, family).toMatch(new RegExp(`^${family}\\{`, 'm'));
      }
      expect(text).toMatch(/^gatewayctl_upstream_peer_state\{upstream="flaky",peer="[^"]+",state="open"\} 1$/m);
      expect(text).toMatch(/^gatewayctl_upstream_peer_state\{upstream="app",peer="[^"]+",state="up"\} 1$/m);
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(lint.error, 'promtool is required (Debian package prometheus)').toBeUndefined();
      expect(`${lint.stdout}${lint.stderr}`.trim(), text).toBe('');
      // nothing went wrong inside nginx: no njs exception, nothing at error level or above
      const log = project.gw.errorLog();
      expect(log).toContain('limiting requests'); // the log read is the gateway's: the refusal above is in it
      expect(log.split('\n').filter((l) => /js exception|\[(error|crit|alert|emerg)\]/.test(l))).toEqual([]);
    });
  });
});
