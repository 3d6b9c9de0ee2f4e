// Hash keys that come from authentication, end to end with the real `auth:` section:
// client_id from an API key, a JWT claim (HS256 in the route's own call, ES256 through the
// auth_request subrequest, both again from the verified-token cache), and model routing behind
// JWT auth (then the njs body step), each landing where `gatewayctl route` says.
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { explainRoute } from '../../src/routing/explain.ts';
import { compile } from '../../src/build/compile.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { withErrorLog } from '../support/nginx.ts';
import { startProject, type Project as AuthProject } from '../support/gateway.ts';
import { request } from '../support/http.ts';

const SECRET = 'routing-hs256-secret-0123456789abcdefghij';
let project: AuthProject;
let ups: EchoUpstream[] = [];
let port: number;
const keys: Record<string, string> = {};

const yaml = (a: string[]) => `version: 1
global: { status: false, worker_processes: 1 }
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  clients:
    balance: consistent_hash
    hash_key: client_id
    servers: [${a[0]}, ${a[1]}, ${a[2]}]
  tenants:
    balance: consistent_hash
    hash_key: { jwt_claim: tenant }
    hash_fallback: client_ip
    servers: [${a[0]}, ${a[1]}, ${a[2]}]
  chat:
    balance: consistent_hash
    hash_key: { body_field: user }
    servers: [${a[0]}, ${a[1]}, ${a[2]}]
models:
  - { id: chat-model, upstream: chat }
  - { id: tenant-model, upstream: tenants }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    internal: { algorithms: [HS256], secret_env: GW_ROUTING_SECRET }
    external: { algorithms: [ES256], jwks_file: jwks.json }
routes:
  - { name: by-client, match: { prefix: /client/ }, upstream: clients, auth: api_key }
  - { name: by-tenant, match: { prefix: /tenant/ }, upstream: tenants, auth: { methods: [jwt], jwt_provider: internal } }
  - { name: by-tenant-es, match: { prefix: /tenant-es/ }, upstream: tenants, auth: { methods: [jwt], jwt_provider: external } }
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    auth: { methods: [jwt], jwt_provider: internal }
`;

const jwt = (claims: Record<string, unknown>) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(claims.sub ?? 'user'))
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));

let ec: CryptoKeyPair;
const esJwt = (claims: Record<string, unknown>) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'es-1' })
    .setSubject(String(claims.sub ?? 'user'))
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(ec.privateKey);

let model: ReturnType<typeof compile>['model'];
const idOf = (addr: string) => ups.find((u) => u.address === addr)!.id;
const where = (upstream: string, key: string) => idOf(explainRoute(model!, key, { upstream }).peer!);
const url = (p: string) => `http://127.0.0.1:${port}${p}`;

beforeAll(async () => {
  ups = await startUpstreams(3, { idPrefix: 'a' });
  port = await freePort();
  const store: KeyFile = { version: 1, keys: [] };
  for (let i = 0; i < 30; i++) keys[`client-${i}`] = createKey(store, { name: `client-${i}` }, new Date()).key;
  const env = { GW_ROUTING_SECRET: SECRET };
  ec = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'es-1', alg: 'ES256', use: 'sig' }] });
  project = await startProject({ 'gateway.yaml': yaml(ups.map((u) => u.address)), 'keys.yaml': serializeKeys(store), 'jwks.json': jwks }, [port], { env });
  model = compile(`${project.dir}/gateway.yaml`, { env }).model;
});

afterAll(async () => {
  await project?.stop();
  await closeAll(ups);
});

describe('hash keys from authentication', () => {
  it('client_id: the API key\'s client name is the key', async () => {
    await withErrorLog(project.gw, async () => {
      const seen = new Set<string>();
      for (const [name, key] of Object.entries(keys)) {
        const r = await request(url('/client/x'), { 'X-API-Key': key });
        expect(r.status, r.text).toBe(200);
        expect(r.json.id, name).toBe(where('clients', name));
        seen.add(r.json.id);
      }
      expect(seen.size).toBe(3);
      expect((await request(url('/client/x'))).status).toBe(401);
    });
  });

  it('jwt_claim: a claim of the verified token is the key; a token without it falls back to the client IP', async () => {
    await withErrorLog(project.gw, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const r = await request(url('/tenant/x'), { Authorization: `Bearer ${await jwt({ sub: `u${i}`, tenant: `t-${i}` })}` });
        expect(r.status, r.text).toBe(200);
        expect(r.json.id).toBe(where('tenants', `t-${i}`));
        seen.add(r.json.id);
      }
      expect(seen.size).toBe(3);
      const none = await request(url('/tenant/x'), { Authorization: `Bearer ${await jwt({ sub: 'u' })}` });
      expect(none.json.id).toBe(where('tenants', '127.0.0.1'));
      expect((await request(url('/tenant/x'))).status).toBe(401);
    });
  });

  it('jwt_claim: the key is the same whichever JWT call derives it (in place, auth_request subrequest, verified-token cache)', async () => {
    await withErrorLog(project.gw, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 24; i++) {
        const tenant = `t-${i}`;
        const hs = await jwt({ sub: `u${i}`, tenant });
        const es = await esJwt({ sub: `u${i}`, tenant });
        // each token twice: first verified in full, then answered from the verified-token cache
        for (const [path, token] of [['/tenant/x', hs], ['/tenant/x', hs], ['/tenant-es/x', es], ['/tenant-es/x', es]]) {
          const r = await request(url(path), { Authorization: `Bearer ${token}` });
          expect(r.status, `${path} ${r.text}`).toBe(200);
          expect(r.json.id, `${path} ${tenant}`).toBe(where('tenants', tenant));
          seen.add(r.json.id);
        }
      }
      expect(seen.size).toBe(3);
      const none = await request(url('/tenant-es/x'), { Authorization: `Bearer ${await esJwt({ sub: 'u' })}` });
      expect(none.json.id).toBe(where('tenants', '127.0.0.1'));
      expect((await request(url('/tenant-es/x'))).status).toBe(401);
    });
  });

  it('one njs call derives identity and claim key: the build declares no js_set of routing\'s own', () => {
    const built = compile(`${project.dir}/gateway.yaml`, { env: { GW_ROUTING_SECRET: SECRET } });
    const maps = built.files!['conf.d/00-maps.conf'];
    expect(maps).toContain('js_var $gw_claim_key;');
    expect(maps).not.toMatch(/js_set \$gw_claim_key/);
    const manifest = JSON.parse(built.files!['manifest.json']) as { routes: { name: string; njsCalls: number; byFeature: Record<string, number> }[] };
    const byTenant = manifest.routes.find((r) => r.name === 'by-tenant')!;
    expect(byTenant.njsCalls).toBe(1);
    expect(byTenant.byFeature.routing ?? 0).toBe(0);
  });

  it('model routing behind JWT: 401 first, then the model\'s pool with its own key (body field or claim)', async () => {
    await withErrorLog(project.gw, async () => {
      const post = async (body: unknown, token?: string) =>
        request(url('/v1/chat/completions'), { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) }, { method: 'POST', body: JSON.stringify(body) });
      expect((await post({ model: 'chat-model', user: 'x' })).status).toBe(401);
      const t = await jwt({ sub: 's', tenant: 'acme' });
      for (let i = 0; i < 20; i++) {
        const r = await post({ model: 'chat-model', user: `end-${i}` }, t);
        expect(r.status, r.text).toBe(200);
        expect(r.json.id).toBe(where('chat', `end-${i}`));
        expect(JSON.parse(r.json.body)).toEqual({ model: 'chat-model', user: `end-${i}` });
      }
      for (const tenant of ['acme', 'globex', 'initech', 'umbrella']) {
        const r = await post({ model: 'tenant-model' }, await jwt({ sub: 's', tenant }));
        expect(r.json.id, tenant).toBe(where('tenants', tenant));
      }
      const unknown = await post({ model: 'nope' }, t);
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.code).toBe('model_not_found');
    });
  });
});
