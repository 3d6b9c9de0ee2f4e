// `gatewayctl bench -c`: the request derived for each kind of route (src/bench/requests.ts),
// the adapter that confines a config to loopback and a temporary prefix (src/bench/adapt.ts),
// the refusals, and the command's --path/--header parsing.
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { benchAdapter, benchRefusals, stubPortCount } from '../../src/bench/adapt.ts';
import { deriveRequest, sampleForRegex, type BenchCredentials } from '../../src/bench/requests.ts';
import { parseOverrides } from '../../src/commands/bench.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import type { GatewayModel } from '../../src/model/types.ts';

const SECRET = 'unit-secret-0123456789abcdef0123456789abcdef';

const YAML = `version: 1
global:
  access_log: { path: /var/log/gw-bench-unit/access.log }
  error_log: { path: /var/log/gw-bench-unit/error.log }
listeners:
  - { name: public, port: 8080 }
  - { name: named, port: 8443, server_names: ["*.api.example.com"] }
upstreams:
  api: { servers: ["10.20.30.40:8080", "api.internal.example:9000"] }
  llm: { servers: ["llm.internal.example:443"] }
models:
  - { id: first-model, upstream: llm }
  - { id: second-model, upstream: llm }
limits:
  rate:
    per_client: { key: client_id, rate: 2r/s, burst: 1 }
caches:
  hot: { path: /var/cache/gw-bench-unit, size: 10m }
routes:
  - { name: plain, match: { exact: /plain }, upstream: api }
  - { name: prefixed, match: { prefix: /api/v2/, methods: [PUT, PATCH] }, upstream: api }
  - { name: regex, match: { regex: '^/files/[a-z]{3}/(?:\\d+|latest)\\.(txt|csv)$' }, upstream: api }
  - { name: caseless, match: { regex: '^/Docs/[^/]+$', case_insensitive: true }, upstream: api }
  - { name: lookaround, match: { regex: '^/(?!internal)x' }, upstream: api }
  - { name: hosted, match: { prefix: /h/, host: tenant.example.com, headers: { X-Tenant: blue } }, upstream: api }
  - { name: named, match: { prefix: /n/ }, listeners: [named], upstream: api }
  - { name: keyed, match: { prefix: /keyed/ }, upstream: api, auth: { methods: [api_key], roles: [admin] }, rate_limits: [per_client] }
  - { name: hs, match: { exact: /hs }, upstream: api, auth: { methods: [jwt], jwt_provider: hs, roles: [reader] } }
  - { name: either, match: { exact: /either }, upstream: api, auth: { methods: [api_key, jwt], jwt_provider: hs } }
  - { name: es, match: { exact: /es }, upstream: api, auth: { methods: [jwt], jwt_provider: es } }
  - { name: chat, match: { exact: /v1/chat/completions, methods: [POST] }, models: route }
  - { name: answered, match: { exact: /hello }, respond: { status: 200, body: hi } }
  - { name: socket, match: { prefix: /ws }, upstream: api, websocket: true }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    hs: { algorithms: [HS256], secret_file: hs.secret, issuer: [https://issuer.example], audience: [gw], required_claims: [tenant], role_claim: role }
    es: { algorithms: [ES256], jwks_file: jwks.json }
`;

const JWKS = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4', y: '4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM', kid: 'k1', alg: 'ES256' }] });

function project(extra = ''): { dir: string; config: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-bench-unit-'));
  writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
  writeFileSync(path.join(dir, 'hs.secret'), `${SECRET}\n`);
  writeFileSync(path.join(dir, 'jwks.json'), JWKS);
  const config = path.join(dir, 'gateway.yaml');
  writeFileSync(config, YAML + extra);
  return { dir, config };
}

function model(): GatewayModel {
  const { config } = project();
  const r = compile(config, { env: {} });
  expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
  return r.model!;
}

const creds: BenchCredentials = { apiKeys: { '': 'gw_live_plainkey', admin: 'gw_live_adminkey' }, secrets: { hs: SECRET }, exp: 2_000_000_000 };
const route = (m: GatewayModel, name: string) => m.routes.find((r) => r.name === name)!;
const derive = (m: GatewayModel, name: string, over = {}) => deriveRequest(route(m, name), m, creds, over);
const ok = (d: ReturnType<typeof derive>) => {
  if (!d.ok) throw new Error(d.reason);
  return d.request;
};

describe('bench -c: a request per route', () => {
  const m = model();

  it('exact and prefix routes: their path; GET unless the route takes other methods', () => {
    expect(ok(derive(m, 'plain'))).toMatchObject({ method: 'GET', path: '/plain', credential: 'none', proxied: true });
    expect(ok(derive(m, 'prefixed'))).toMatchObject({ method: 'PATCH', path: '/api/v2/', model: 'gpt-4o' });
  });

  it('regex routes: a sample path the regex matches (groups take their first alternative)', () => {
    const p = ok(derive(m, 'regex')).path;
    expect(p).toBe('/files/aaa/1.txt');
    expect(/^\/files\/[a-z]{3}\/(?:\d+|latest)\.(txt|csv)$/.test(p)).toBe(true);
    const c = ok(derive(m, 'caseless')).path;
    expect(/^\/Docs\/[^/]+$/i.test(c)).toBe(true);
  });

  it('a regex it cannot sample: skipped with the reason and how to give a path', () => {
    const d = derive(m, 'lookaround');
    expect(d).toEqual({ ok: false, reason: expect.stringContaining("--path 'lookaround=/") });
    expect(ok(derive(m, 'lookaround', { path: '/xy' })).path).toBe('/xy');
  });

  it('Host and required headers: the route\'s host and headers, else a name of its listener', () => {
    expect(ok(derive(m, 'hosted')).headers).toMatchObject({ Host: 'tenant.example.com', 'X-Tenant': 'blue' });
    expect(ok(derive(m, 'named')).headers).toMatchObject({ Host: 'bench.api.example.com' });
  });

  it('API-key routes: the key made for the role the route requires', () => {
    const r = ok(derive(m, 'keyed'));
    expect(r.credential).toBe('api_key');
    expect(r.headers['X-API-Key']).toBe('gw_live_adminkey');
    expect(ok(derive(m, 'either')).headers['X-API-Key']).toBe('gw_live_plainkey');
  });

  it('HS256 routes: a token signed with the provider secret, carrying the claims the provider and route require', () => {
    const r = ok(derive(m, 'hs'));
    expect(r.credential).toBe('jwt');
    const [h, p, s] = r.headers.Authorization.replace(/^Bearer /, '').split('.');
    expect(s).toBe(createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url'));
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toMatchObject({ alg: 'HS256' });
    expect(JSON.parse(Buffer.from(p, 'base64url').toString())).toMatchObject({ sub: 'bench', iss: 'https://issuer.example', aud: 'gw', tenant: 'bench', role: 'reader', exp: 2_000_000_000 });
  });

  it('JWKS providers: skipped (no private key) unless an Authorization header is given', () => {
    const d = derive(m, 'es');
    expect(d).toEqual({ ok: false, reason: expect.stringMatching(/no HMAC secret.*ES256.*--header 'es=Authorization: Bearer/) });
    const r = ok(derive(m, 'es', { headers: { Authorization: 'Bearer given.token.here' } }));
    expect(r).toMatchObject({ credential: 'given', headers: { Authorization: 'Bearer given.token.here' } });
  });

  it('models: route routes: POST with a model of the catalogue', () => {
    expect(ok(derive(m, 'chat'))).toMatchObject({ method: 'POST', path: '/v1/chat/completions', model: 'first-model', proxied: true });
  });

  it('routes the gateway answers itself are measured but not proxied; WebSocket routes are skipped', () => {
    expect(ok(derive(m, 'answered')).proxied).toBe(false);
    expect(derive(m, 'socket')).toEqual({ ok: false, reason: expect.stringContaining('WebSocket') });
  });

  it('regex samples of common shapes match their regex', () => {
    for (const re of ['^/v[12]/items/\\w+$', '^/a(b|c)*d?$', '^/x/[^/]{2,4}/y$', '^/(?<id>\\d+)/z$', '/tail\\.json$']) {
      const s = sampleForRegex(re);
      expect(s, re).not.toBeNull();
      expect(new RegExp(re.replace('(?<id>', '(?<id>')).test(s!), `${re} ~ ${s}`).toBe(true);
    }
    expect(sampleForRegex('^/(a)\\1$')).toBeNull(); // backreference: not sampled
  });
});

describe('bench -c: the adapter and refusals', () => {
  it('the compiled config reaches only loopback ports and the temporary prefix', () => {
    const { config } = project();
    const keysCopy = path.join(mkdtempSync(path.join(os.tmpdir(), 'gw-bench-keys-')), 'keys.yaml');
    writeFileSync(keysCopy, 'version: 1\nkeys: []\n');
    const r = compile(config, { env: {}, prepare: benchAdapter({ stubPorts: [40001, 40002], listenerPorts: { public: 40010, named: 40011 }, statusPort: 40012, keysFile: keysCopy }) });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
    const text = Object.entries(r.files!)
      .filter(([f]) => f.endsWith('.conf'))
      .map(([, t]) => t)
      .join('\n');
    for (const gone of ['10.20.30.40', 'api.internal.example', 'llm.internal.example', '/var/log/gw-bench-unit', '/var/cache/gw-bench-unit', '2r/s', ':8080', ':8443']) expect(text).not.toContain(gone);
    expect(text).toContain('server 127.0.0.1:40001');
    expect(text).toContain('server 127.0.0.1:40002');
    expect(text).toMatch(/listen 127\.0\.0\.1:40010/);
    expect(text).toMatch(/listen 127\.0\.0\.1:40011/);
    expect(r.model!.auth!.apiKeys!.file).toBe(keysCopy);
    expect(r.model!.global.workerProcesses).toBe('1');
    expect(r.model!.global.accessLog).toMatchObject({ path: 'logs/access.log' });
  });

  it('the probe build logs every request as JSON with its route, even when the config logs nothing', () => {
    const { config } = project();
    const text = YAML.replace('  access_log: { path: /var/log/gw-bench-unit/access.log }', '  access_log: false');
    const r = compile(config, { env: {}, text, prepare: benchAdapter({ stubPorts: [40001, 40002], listenerPorts: { public: 40010, named: 40011 }, statusPort: 40012, keysFile: null, probeLog: true }) });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
    expect(r.model!.global.accessLog).toEqual({ path: 'logs/access.log', format: 'json' });
    expect(r.files!['nginx.conf']).toContain('access_log "logs/access.log" gw_json;');
    const measured = compile(config, { env: {}, text, prepare: benchAdapter({ stubPorts: [40001, 40002], listenerPorts: { public: 40010, named: 40011 }, statusPort: 40012, keysFile: null }) });
    expect(measured.model!.global.accessLog).toBeNull();
  });

  it('an upstream of many servers gets as many stub ports (never one address twice)', () => {
    const { config } = project();
    const many = Array.from({ length: 12 }, (_, i) => `"10.0.0.${i + 1}:80"`).join(', ');
    const text = YAML.replace('llm: { servers: ["llm.internal.example:443"] }', `llm: { servers: [${many}] }`);
    const m = compile(config, { env: {}, text }).model!;
    expect(stubPortCount(m)).toBe(12);
    const ports = Array.from({ length: 12 }, (_, i) => 41000 + i);
    const r = compile(config, { env: {}, text, prepare: benchAdapter({ stubPorts: ports, listenerPorts: { public: 40010, named: 40011 }, statusPort: 40012, keysFile: null }) });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
  });

  it('GW580: raw nginx snippets are refused, positioned', () => {
    const { config } = project();
    const text = YAML.replace('global:\n', 'global:\n  unsafe_nginx_http: "resolver 10.0.0.1;"\n');
    const r = compile(config, { env: {}, text });
    const lines = benchRefusals(r.model!).map(formatDiagnostic);
    expect(lines).toEqual([expect.stringMatching(/gateway\.yaml:3:3 error GW580 global\.unsafe_nginx_http: bench: raw nginx/)]);
    const again = compile(config, { env: {}, text, prepare: benchAdapter({ stubPorts: [1], listenerPorts: {}, statusPort: 2, keysFile: null }) });
    expect(again.ok).toBe(false);
    expect(again.diagnostics.map((d) => d.code)).toContain('GW580');
  });

  it('GW581: a config without routes has nothing to measure', () => {
    const m = model();
    m.routes = [];
    expect(benchRefusals(m).map(formatDiagnostic)).toEqual([expect.stringContaining('GW581')]);
  });
});

describe('bench -c: --path and --header', () => {
  it('route-scoped and global headers, paths; bad ones are usage errors', () => {
    expect(parseOverrides(['files=/files/a.txt'], ['es=Authorization: Bearer a.b.c', 'X-Trace: 1'], ['*'])).toEqual({
      files: { path: '/files/a.txt' },
      es: { headers: { Authorization: 'Bearer a.b.c' } },
      '*': { headers: { 'X-Trace': '1' } },
    });
    expect(parseOverrides(['files'], [], ['*'])).toMatch(/--path files: expected/);
    expect(parseOverrides([], ['no colon'], ['*'])).toMatch(/--header no colon: expected/);
  });
});
