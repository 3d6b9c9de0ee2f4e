// Semantic diff on pairs of YAML configs: wording an ops reviewer reads, and every risk flag.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewaySchema } from '../../src/config/schema.ts';
import { FEATURES } from '../../src/features/index.ts';
import { compareFiles } from '../../src/diff/files.ts';
import { semanticDiff, type Change } from '../../src/diff/semantic.ts';
import type { GatewayModel } from '../../src/model/types.ts';
import { KEYS_FILE_VERSION, serializeKeys } from '../../src/keys/store.ts';
import { baseConfig, clone, compileCfg, FAKE_PATH, type Cfg } from './helpers.ts';

function diff(edit: (c: Cfg) => void, start: Cfg = baseConfig()): Change[] {
  const after = clone(start);
  edit(after);
  return semanticDiff(compileCfg(start).model, compileCfg(after).model, FEATURES);
}

const texts = (cs: Change[]) => cs.map((c) => c.text);
const risks = (cs: Change[]) => cs.filter((c) => c.risk).map((c) => c.risk);

describe('semantic diff: wording', () => {
  it('finds nothing between identical configs', () => {
    expect(diff(() => {})).toEqual([]);
  });

  it('ignores key order and positions; generated files compare equal apart from the input hash', () => {
    const a = baseConfig();
    const b: Cfg = {};
    for (const k of Object.keys(a).reverse()) b[k] = a[k];
    const ma = compileCfg(a);
    const mb = compileCfg(b);
    expect(ma.model.source.hash).not.toBe(mb.model.source.hash);
    expect(semanticDiff(ma.model, mb.model, FEATURES)).toEqual([]);
    // the only textual differences are the header lines and the hash in /ready
    expect(Object.keys(ma.files).filter((f) => ma.files[f] !== mb.files[f]).length).toBeGreaterThan(0);
    expect(compareFiles(ma.files, mb.files, FEATURES)).toEqual([]);
  });

  it('matches upstreams by name, not position', () => {
    const a = baseConfig();
    const b = clone(a);
    b.upstreams = { api: a.upstreams.api, 'llm-v2': a.upstreams['llm-v2'], llm: a.upstreams.llm };
    expect(semanticDiff(compileCfg(a).model, compileCfg(b).model, FEATURES)).toEqual([]);
  });

  it('reports a route moving to another upstream', () => {
    const cs = diff((c) => (c.routes[0].upstream = 'llm-v2'));
    expect(texts(cs)).toEqual(['route chat: upstream llm → llm-v2']);
    expect(cs[0]).toMatchObject({ section: 'routes', kind: 'changed', subject: 'route chat', risk: null });
  });

  it('reports routes added and removed with their match and target', () => {
    const cs = diff((c) => {
      c.routes.splice(3, 1);
      c.routes.push({ name: 'embed', match: { exact: '/v1/embeddings', methods: ['POST'] }, upstream: 'llm-v2' });
    });
    expect(texts(cs)).toEqual([
      'route api removed (was any method /api/* → upstream api)',
      'route embed added: POST = /v1/embeddings → upstream llm-v2 (reachable by anyone, with no auth and no rate or connection limit)',
    ]);
  });

  it('reports route field changes with YAML names', () => {
    const cs = diff((c) => {
      c.routes[0].timeouts = { read: '120s' };
      c.routes[0].max_body = '50m';
      c.routes[3].strip_prefix = false;
      c.routes[0].match.methods = ['POST', 'PUT'];
    });
    expect(texts(cs)).toEqual([
      'route chat: match POST = /v1/chat/completions → POST,PUT = /v1/chat/completions',
      'route chat: timeouts.read 3600s → 120s',
      'route chat: max_body nginx default (1m) → 50m',
      'route api: rewrite.strip_prefix on → off',
      // derived from the longest streaming read timeout: old workers now get 120s after a reload
      'global: worker_shutdown_timeout 600s → 120s',
    ]);
  });

  it('reports route order changes once', () => {
    const cs = diff((c) => c.routes.reverse());
    expect(texts(cs)).toEqual(['route order: chat, models, admin, api → api, admin, models, chat']);
  });

  it('reports upstream server changes', () => {
    const cs = diff((c) => {
      c.upstreams.llm.servers = ['10.0.0.1:8000', { address: '10.0.0.2:8000', weight: 3 }, '10.0.0.3:8000'];
      c.upstreams.llm.balance = 'round_robin';
      c.upstreams['llm-v2'].servers = ['10.0.1.2:8000'];
    });
    expect(texts(cs)).toEqual([
      'upstream llm: server 10.0.0.3:8000 added',
      'upstream llm: server 10.0.0.2:8000 weight 1 → 3',
      'upstream llm: balance least_conn → round_robin',
      'upstream llm-v2: server 10.0.1.1:8000 → 10.0.1.2:8000',
    ]);
    expect(risks(cs)).toEqual([]);
  });

  it('reports listeners, caches and global settings', () => {
    const cs = diff((c) => {
      c.listeners[0].port = 8000;
      c.listeners.push({ name: 'internal', port: 9000, address: '127.0.0.1' });
      c.caches.models.max_size = '1g';
      c.caches.pages = { size: '5m' };
      c.global.worker_connections = 8192;
    });
    expect(texts(cs)).toEqual([
      // routes without `listeners:` are served on every listener, so they follow a new one
      'route chat: listeners public, secure → public, secure, internal',
      'route models: listeners public, secure → public, secure, internal',
      'route admin: listeners public, secure → public, secure, internal',
      'route api: listeners public, secure → public, secure, internal',
      'listener public: port 8080 → 8000',
      'listener internal added: 127.0.0.1:9000, plain HTTP',
      'cache models: max_size 100m → 1g',
      'cache pages added: size 5m, inactive 10m, path cache/pages',
      'global: worker_connections 4096 → 8192',
    ]);
    expect(cs.map((c) => c.section).slice(4)).toEqual(['listeners', 'listeners', 'caches', 'caches', 'global']);
  });

  it('reports tightened limits without flagging them', () => {
    const cs = diff((c) => {
      c.limits.rate.api.rate = '5r/s';
      c.limits.rate.api.burst = 10;
      c.limits.conn.streams.max = 5;
      c.routes[3].rate_limits = ['api', 'chat'];
    });
    expect(texts(cs)).toEqual([
      'route api: rate limit chat added',
      'rate limit api: 10r/s → 5r/s (tightened)',
      'rate limit api: burst 20 → 10 (tightened)',
      'connection limit streams: max 10 → 5 (tightened)',
    ]);
    expect(risks(cs)).toEqual([]);
  });

  it('treats equal rates in other units as unchanged strength', () => {
    const cs = diff((c) => (c.limits.rate.api.rate = '600r/m'));
    expect(texts(cs)).toEqual(['rate limit api: 10r/s → 600r/m']);
    expect(risks(cs)).toEqual([]);
  });
});

describe('semantic diff: risky changes', () => {
  it('flags a rate limit loosened (rate)', () => {
    const cs = diff((c) => (c.limits.rate.api.rate = '50r/s'));
    expect(texts(cs)).toEqual(['rate limit api: 10r/s → 50r/s (loosened)']);
    expect(risks(cs)).toEqual(['rate-limit-loosened']);
  });

  it('flags a rate limit loosened (burst)', () => {
    const cs = diff((c) => (c.limits.rate.chat.burst = 50));
    expect(texts(cs)).toEqual(['rate limit chat: burst 5 → 50 (loosened)']);
    expect(risks(cs)).toEqual(['rate-limit-loosened']);
  });

  it('flags more replicas with per-instance limits; divided and affinity are not looser', () => {
    const cs = diff((c) => (c.fleet = { replicas: 3 }));
    expect(texts(cs)).toEqual(['fleet.replicas 1 → 3', "fleet: a client may now get up to 3× each limit's allowance across the replicas (was 1×)"]);
    expect(risks(cs)).toEqual(['rate-limit-loosened']);
    const divided = diff((c) => (c.fleet = { replicas: 3, limits: 'divided' }), { ...baseConfig(), fleet: { replicas: 3 } });
    expect(texts(divided)).toEqual(['fleet.limits per_instance → divided']);
    expect(risks(divided)).toEqual([]);
    // the Kubernetes settings, without their positions
    expect(texts(diff((c) => (c.kubernetes = { image: 'nginx:1.28' }), { ...baseConfig(), kubernetes: {} }))).toEqual(['kubernetes.image nginx:1.27 → nginx:1.28']);
  });

  it('flags a rate limit zone taken off a route', () => {
    const cs = diff((c) => {
      c.routes[0].rate_limits = [];
      c.routes[3].rate_limits = ['chat'];
    });
    expect(texts(cs)).toEqual([
      'route chat: loses all rate limits (was chat)',
      'route api: rate limit api removed (loosened)',
      'route api: rate limit chat added',
    ]);
    expect(risks(cs)).toEqual(['rate-limit-loosened', 'rate-limit-loosened']);
    expect(cs[0].section).toBe('limits');
  });

  it('flags connection limits loosened or removed', () => {
    const cs = diff((c) => {
      c.limits.conn.streams.max = 100;
      c.routes[0].conn_limits = [];
    });
    expect(risks(cs)).toEqual(['conn-limit-loosened', 'conn-limit-loosened']);
  });

  it('flags a route losing its access allow-list', () => {
    const cs = diff((c) => delete c.routes[2].access);
    expect(texts(cs)).toEqual([
      'route admin: loses its access allow-list (was 10.0.0.0/8; now open to all)',
      'route admin: access deny all → none',
    ]);
    expect(risks(cs)).toEqual(['access-removed']);
  });

  it('flags an allow-list opened to everyone', () => {
    const cs = diff((c) => (c.routes[2].access.allow = ['10.0.0.0/8', '0.0.0.0/0']));
    expect(risks(cs)).toEqual(['access-removed']);
  });

  it('flags a route losing its auth (any auth shape in the model)', () => {
    const a = compileCfg(baseConfig()).model;
    const b = structuredClone(a);
    (a.routes[0] as unknown as { auth: unknown }).auth = { kind: 'api_key', header: 'Authorization' };
    const cs = semanticDiff(a, b, FEATURES);
    expect(texts(cs)).toEqual(['route chat: loses its auth (was { kind: api_key, header: Authorization }; now open to unauthenticated clients)']);
    expect(cs[0]).toMatchObject({ section: 'auth', risk: 'auth-removed' });
    // auth switched off explicitly is still "lost"; auth added or changed is not a risk
    (b.routes[0] as unknown as { auth: unknown }).auth = { kind: 'none' };
    expect(risks(semanticDiff(a, b, FEATURES))).toEqual(['auth-removed']);
    expect(risks(semanticDiff(b, a, FEATURES))).toEqual([]);
    const c = structuredClone(a);
    (c.routes[0] as unknown as { auth: { header: string } }).auth.header = 'X-Api-Key';
    expect(texts(semanticDiff(a, c, FEATURES))).toEqual(['route chat: auth.header Authorization → X-Api-Key']);
  });

  it('flags gateway-level auth removed and diffs unknown model fields generically', () => {
    const a = compileCfg(baseConfig()).model;
    const b = structuredClone(a);
    (a as unknown as { auth: unknown }).auth = { apiKeys: { file: 'keys.yaml' } };
    (b as unknown as { telemetry: unknown }).telemetry = { otlp: 'http://collector:4318' };
    const cs = semanticDiff(a, b, FEATURES);
    expect(cs.map((c) => [c.text, c.risk])).toEqual([
      ['auth configuration removed (clients are no longer authenticated)', 'auth-removed'],
      ['telemetry none → { otlp: http://collector:4318 }', null],
    ]);
  });

  // validate rejects an upstream without an active server (GW324), so these come from
  // models built by other versions (--against a release's model.json): edit the model
  it('flags an upstream losing all servers', () => {
    const a = compileCfg(baseConfig()).model;
    const b = structuredClone(a);
    for (const s of b.upstreams[0].servers) s.down = true;
    const cs = semanticDiff(a, b, FEATURES);
    expect(texts(cs)).toEqual([
      'upstream llm: server 10.0.0.1:8000 marked down',
      'upstream llm: server 10.0.0.2:8000 marked down',
      'upstream llm: loses all servers (every server is removed or down)',
    ]);
    expect(risks(cs)).toEqual(['upstream-no-servers']);
  });

  it('flags an upstream left with backup servers only', () => {
    const a = compileCfg(baseConfig()).model;
    const b = structuredClone(a);
    b.upstreams[2].servers.shift();
    const cs = semanticDiff(a, b, FEATURES);
    expect(texts(cs)).toEqual(['upstream api: server 10.0.2.1:80 removed', 'upstream api: loses all non-backup servers (only backups left)']);
    expect(risks(cs)).toEqual(['upstream-no-servers']);
  });

  it('does not flag servers marked down while others stay in service', () => {
    const cs = diff((c) => (c.upstreams.llm.servers = [{ address: '10.0.0.1:8000', down: true }, '10.0.0.2:8000']));
    expect(texts(cs)).toEqual(['upstream llm: server 10.0.0.1:8000 marked down']);
    expect(risks(cs)).toEqual([]);
  });

  it('flags TLS disabled on a listener', () => {
    const cs = diff((c) => delete c.listeners[1].tls);
    expect(texts(cs)).toEqual(['listener secure: TLS disabled (now plain HTTP on port 8443)']);
    expect(cs[0]).toMatchObject({ section: 'tls', risk: 'tls-disabled' });
  });

  it('flags a TLS profile downgrade but not an upgrade', () => {
    const cs = diff((c) => (c.listeners[1].tls.profile = 'intermediate'));
    expect(texts(cs)).toEqual(['listener secure: TLS profile modern → intermediate (downgraded)']);
    expect(risks(cs)).toEqual(['tls-downgraded']);
    const start = baseConfig();
    start.listeners[1].tls.profile = 'intermediate';
    const up = diff((c) => (c.listeners[1].tls.profile = 'modern'), start);
    expect(texts(up)).toEqual(['listener secure: TLS profile intermediate → modern (upgraded)']);
    expect(risks(up)).toEqual([]);
  });

  it('flags HSTS removed; a shorter max-age is only reported', () => {
    const cs = diff((c) => (c.listeners[1].tls.hsts = false));
    expect(texts(cs)).toEqual(['listener secure: HSTS removed']);
    expect(risks(cs)).toEqual(['hsts-removed']);
    const shorter = diff((c) => (c.listeners[1].tls.hsts.max_age = 3600));
    expect(texts(shorter)).toEqual(['listener secure: hsts.max_age 31536000 → 3600 (shorter)']);
    expect(risks(shorter)).toEqual([]);
  });

  it('flags CORS opened to "*"', () => {
    const cs = diff((c) => (c.routes[0].cors.origins = ['*']));
    expect(texts(cs)).toEqual(['route chat: CORS origins https://app.example.com → * (open to any origin)']);
    expect(risks(cs)).toEqual(['cors-wildcard']);
    const fresh = diff((c) => (c.routes[1].cors = { origins: ['*'] }));
    expect(texts(fresh)).toEqual(['route models: CORS enabled for * (open to any origin)']);
    expect(risks(fresh)).toEqual(['cors-wildcard']);
    const exact = diff((c) => c.routes[0].cors.origins.push('https://admin.example.com'));
    expect(risks(exact)).toEqual([]);
  });

  it('flags a raw unsafe_nginx_* snippet added or changed', () => {
    const cs = diff((c) => {
      c.routes[3].unsafe_nginx_route = 'proxy_set_header X-Debug 1;';
      c.global.unsafe_nginx_http = 'map_hash_max_size 4096;\nvariables_hash_max_size 2048;';
    });
    expect(texts(cs)).toEqual([
      'raw nginx snippet unsafe_nginx_http added (2 lines; not validated by gatewayctl)',
      'raw nginx snippet unsafe_nginx_route on route api added (1 line; not validated by gatewayctl)',
    ]);
    expect(risks(cs)).toEqual(['unsafe-snippet', 'unsafe-snippet']);
    const start = baseConfig();
    start.routes[3].unsafe_nginx_route = 'proxy_set_header X-Debug 1;';
    expect(risks(diff((c) => (c.routes[3].unsafe_nginx_route = 'proxy_set_header X-Debug 2;'), start))).toEqual(['unsafe-snippet']);
    expect(diff((c) => delete c.routes[3].unsafe_nginx_route, start).map((c) => [c.text, c.risk])).toEqual([
      ['raw nginx snippet unsafe_nginx_route on route api removed', null],
    ]);
  });

  it('flags a new route that proxies with no auth and no limit; not one with a limit, auth, an allow-list or a fixed response', () => {
    const add = (r: Cfg) => diff((c) => c.routes.push({ name: 'open', match: { prefix: '/open/' }, upstream: 'api', ...r }));
    const open = add({});
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ kind: 'added', risk: 'public-unlimited-route' });
    expect(open[0].text).toBe('route open added: any method /open/* → upstream api (reachable by anyone, with no auth and no rate or connection limit)');
    expect(risks(add({ rate_limits: ['api'] }))).toEqual([]);
    expect(risks(add({ conn_limits: ['streams'] }))).toEqual([]);
    expect(risks(add({ access: { allow: ['10.0.0.0/8'], deny: ['all'] } }))).toEqual([]);
    expect(risks(add({ upstream: undefined, respond: { status: 200, body: 'ok' } }))).toEqual([]);
    // an allow-list that admits everyone protects nothing
    expect(risks(add({ access: { allow: ['0.0.0.0/0'] } }))).toEqual(['public-unlimited-route']);
  });

  it('flags a new open models: route (it proxies), not a models: list route (answered by the gateway)', () => {
    const cs = diff((c) => {
      c.models = [{ id: 'gpt-4o', upstream: 'llm' }];
      c.routes.push({ name: 'catalogue', match: { exact: '/v2/models', methods: ['GET'] }, models: 'list' });
      c.routes.push({ name: 'any-model', match: { exact: '/v1/responses', methods: ['POST'] }, models: 'route' });
    });
    expect(cs.filter((x) => x.risk).map((x) => x.subject)).toEqual(['route any-model']);
  });

  it('does not flag a new open route served only on loopback listeners', () => {
    const cs = diff((c) => {
      c.listeners.push({ name: 'internal', address: '127.0.0.1', port: 9090 });
      c.routes.push({ name: 'debug', match: { prefix: '/debug/' }, upstream: 'api', listeners: ['internal'] });
    });
    expect(risks(cs)).toEqual([]);
  });

  it('flags a route that becomes open (its last limit removed), or an open route that reaches further', () => {
    const lost = diff((c) => (c.routes[3].rate_limits = []));
    expect(risks(lost)).toEqual(['public-unlimited-route', 'rate-limit-loosened']);
    expect(texts(lost)[0]).toBe('route api: now reachable by anyone, with no auth and no rate or connection limit (any method /api/* → upstream api)');
    const start = baseConfig();
    start.routes.push({ name: 'open', match: { prefix: '/open/' }, upstream: 'api' });
    expect(risks(diff((c) => (c.routes[4].match = { prefix: '/' }), start))).toEqual(['public-unlimited-route']);
    // an open route whose timeouts change is listed, not flagged again
    const t = diff((c) => (c.routes[4].timeouts = { read: '120s' }), start);
    expect(t.length).toBeGreaterThan(0);
    expect(risks(t)).toEqual([]);
  });

  it('orders changes by section', () => {
    const cs = diff((c) => {
      c.listeners[1].tls.hsts = false;
      c.limits.rate.api.rate = '50r/s';
      c.routes[0].upstream = 'llm-v2';
    });
    expect(cs.map((c) => c.section)).toEqual(['routes', 'tls', 'limits']);
  });
});

describe('semantic diff: models from older builds', () => {
  it('copes with fields missing on one side', () => {
    const a = compileCfg(baseConfig()).model;
    const b = JSON.parse(JSON.stringify(a)) as GatewayModel;
    delete (a.routes[0] as unknown as Record<string, unknown>).websocket;
    expect(texts(semanticDiff(a, b, FEATURES))).toEqual(['route chat: websocket none → off']);
  });
});

// route-level auth from gateway.yaml (njs auth); skipped while the schema has no `auth:`
const AUTH_IN_SCHEMA = 'auth' in (gatewaySchema(FEATURES).properties as Record<string, unknown>);

describe.runIf(AUTH_IN_SCHEMA)('semantic diff: auth from gateway.yaml', () => {
  const env = { JWT_SECRET: 's'.repeat(48) };
  beforeAll(() => {
    // the build reads the API key store named by auth.api_keys.file
    mkdirSync(path.dirname(FAKE_PATH), { recursive: true });
    writeFileSync(path.join(path.dirname(FAKE_PATH), 'keys.yaml'), serializeKeys({ version: KEYS_FILE_VERSION, keys: [] }));
  });
  afterAll(() => rmSync(path.dirname(FAKE_PATH), { recursive: true, force: true }));
  function authConfig(): Cfg {
    const c = baseConfig();
    c.auth = {
      api_keys: { file: 'keys.yaml' },
      jwt: { main: { algorithms: ['HS256'], secret_env: 'JWT_SECRET', role_claim: 'role' } },
    };
    c.routes[0].auth = 'api_key';
    c.routes[2].auth = { methods: ['jwt'], roles: ['admin', 'ops'] };
    return c;
  }
  function authDiff(edit: (c: Cfg) => void): Change[] {
    const start = authConfig();
    const after = clone(start);
    edit(after);
    return semanticDiff(compileCfg(start, undefined, env).model, compileCfg(after, undefined, env).model, FEATURES);
  }

  it('flags a route losing its auth', () => {
    const cs = authDiff((c) => delete c.routes[0].auth);
    expect(cs.map((x) => [x.text, x.risk])).toEqual([
      ['route chat: loses its auth (was api_key; now open to unauthenticated clients)', 'auth-removed'],
    ]);
    expect(risks(authDiff((c) => (c.routes[2].auth = 'none')))).toEqual(['auth-removed']);
  });

  it('reports auth added and changed, and flags a dropped role restriction', () => {
    expect(texts(authDiff((c) => (c.routes[3].auth = 'jwt')))).toEqual(['route api: auth added (jwt (provider main))']);
    const roles = authDiff((c) => (c.routes[2].auth = { methods: ['jwt'], roles: ['admin'] }));
    expect(roles.map((x) => [x.text, x.risk])).toEqual([['route admin: auth.roles admin, ops → admin', null]]);
    const open = authDiff((c) => (c.routes[2].auth = { methods: ['jwt'] }));
    expect(open.map((x) => [x.text, x.risk])).toEqual([['route admin: auth roles admin, ops removed (any authenticated client)', 'auth-weakened']]);
  });

  it('flags required claim values loosened or removed, on a route and on a provider; adding them is no risk', () => {
    const narrowed = (c: Cfg) => {
      c.routes[2].auth.claim_values = { scope: { contains: 'admin:write' } };
      c.auth.jwt.main.claim_values = { typ: 'access' };
    };
    const added = authDiff(narrowed);
    expect(added.length).toBeGreaterThan(0);
    expect(risks(added)).toEqual([]);
    const start = authConfig();
    narrowed(start);
    const loosened = clone(start);
    delete loosened.routes[2].auth.claim_values;
    loosened.auth.jwt.main.claim_values = { typ: ['access', 'refresh'] };
    const cs = semanticDiff(compileCfg(start, undefined, env).model, compileCfg(loosened, undefined, env).model, FEATURES);
    const weakened = cs.filter((x) => x.risk === 'auth-weakened').map((x) => x.text);
    expect(weakened).toHaveLength(2);
    expect(weakened.some((t) => t.startsWith('route admin: required claim values loosened or removed'))).toBe(true);
    expect(weakened.some((t) => t.startsWith('required claim values loosened or removed') && t.includes('refresh'))).toBe(true);
  });

  it('diffs gateway-level auth settings, JWT providers by name', () => {
    const cs = authDiff((c) => {
      c.auth.jwt.main.leeway = '30s';
      c.auth.jwt.partner = { algorithms: ['HS256'], secret_env: 'JWT_SECRET' };
      c.routes[2].auth.jwt_provider = 'main';
      c.auth.api_keys.header = 'X-Key';
    });
    expect(texts(cs)).toEqual([
      'route chat: auth.key_header X-API-Key → X-Key',
      'route admin: auth.key_header X-API-Key → X-Key',
      'auth.api_keys.header X-API-Key → X-Key',
      'auth.jwt[main].leeway 0 → 30',
      'auth.jwt[partner] added',
    ]);
    expect(risks(cs)).toEqual([]);
  });
});
