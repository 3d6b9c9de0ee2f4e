// Required claim values through real nginx: gateway.yaml → compile → nginx + njs → Node
// upstream. A provider's claim_values refuse a refresh token (typ / token_use) that carries
// every claim an access token has; a route narrows its provider (scope contains chat:write,
// as a space-separated string or a list) on both JWT paths (HS256 in one js_set, ES256
// through auth_request), and an identity the verified-token cache holds for the plain
// provider never lets a token skip a narrower route's values. Refusals are 401 with the
// usual reasons (missing_claim, bad_claims) and land in the auth-failure log.
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { request, waitUntil, type FetchReply as Reply } from '../support/http.ts';

const SECRET = 'hs256-secret-for-the-claim-value-tests-0123';

let project: Project;
let upstream: EchoUpstream;
let port: number;
let ec: CryptoKeyPair;

const get = (p: string, t: string) => request(`http://127.0.0.1:${port}${p}`, { Authorization: `Bearer ${t}` });

async function token(alg: 'HS256' | 'ES256', claims: Record<string, unknown>) {
  const now = Math.floor(Date.now() / 1000);
  const k = alg === 'HS256' ? new TextEncoder().encode(SECRET) : ec.privateKey;
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg, ...(alg === 'ES256' ? { kid: 'ec1' } : {}) })
    .setSubject('user-1')
    .setIssuedAt(now - 5)
    .setExpirationTime(now + 300)
    .sign(k);
}

function expect401(r: Reply, reason: string) {
  expect(r.status, r.text).toBe(401);
  expect(r.json.error).toMatchObject({ status: 401, reason });
}

type LogEntry = { uri: string; status: number; auth: string; jwt_cache: string };
async function logFor(p: string): Promise<LogEntry> {
  const find = () =>
    project.gw
      .accessLog()
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogEntry)
      .find((l) => l.uri === p);
  await waitUntil(() => find() !== undefined, 5000, `access log entry for ${p}`);
  return find()!;
}

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  port = await freePort();
  ec = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec1', alg: 'ES256', use: 'sig' };
  const yaml = `version: 1
global:
  status: false
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  app: { servers: [${upstream.address}] }
auth:
  jwt_cache: { size: 256k, ttl: 5m }
  jwt:
    es: { algorithms: [ES256], jwks_file: jwks.json }
    hs: { algorithms: [HS256], secret_env: GW_TEST_JWT_SECRET }
    access-only:
      algorithms: [HS256]
      secret_env: GW_TEST_JWT_SECRET
      claim_values: { token_use: [access, id], typ: access }
routes:
  - { name: es, match: { prefix: /es/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es } }
  - name: es-chat
    match: { prefix: /es-chat/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: es, claim_values: { typ: access, scope: { contains: chat:write } } }
  - { name: hs, match: { prefix: /hs/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs } }
  - name: hs-chat
    match: { prefix: /hs-chat/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: hs, claim_values: { typ: access, scope: { contains: chat:write } } }
  - { name: strict, match: { prefix: /strict/ }, upstream: app, auth: { methods: [jwt], jwt_provider: access-only } }
`;
  project = await startProject({ 'gateway.yaml': yaml, 'jwks.json': JSON.stringify({ keys: [jwk] }) }, [port], { env: { GW_TEST_JWT_SECRET: SECRET } });
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
});

describe('provider claim_values', () => {
  it('a refresh token is refused where an access token with the same claims passes', async () => {
    const access = await token('HS256', { typ: 'access', token_use: 'access' });
    const refresh = await token('HS256', { typ: 'refresh', token_use: 'refresh' });
    const cognitoRefresh = await token('HS256', { typ: 'access', token_use: 'refresh' });
    const ok = await get('/strict/a', access);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.headers['x-gateway-client']).toBe('user-1');
    expect401(await get('/strict/r', refresh), 'bad_claims');
    expect401(await get('/strict/c', cognitoRefresh), 'bad_claims');
    expect401(await get('/strict/m', await token('HS256', { token_use: 'access' })), 'missing_claim');
    // the same refresh token is fine on a provider without values
    expect((await get('/hs/r', refresh)).status).toBe(200);
  });

  it('values are compared with their type: "true" is not true, 1 is not "1"', async () => {
    // one_of with the id value also passes
    expect((await get('/strict/id', await token('HS256', { typ: 'access', token_use: 'id' }))).status).toBe(200);
    expect401(await get('/strict/t', await token('HS256', { typ: ['access'], token_use: 'access' })), 'bad_claims');
  });
});

describe('route claim_values narrow the provider', () => {
  for (const alg of ['HS256', 'ES256'] as const) {
    const p = alg === 'HS256' ? 'hs' : 'es';

    it(`${alg}: scope contains chat:write, as a space-separated string or a list`, async () => {
      const spaced = await token(alg, { typ: 'access', scope: 'chat:read chat:write' });
      const listed = await token(alg, { typ: 'access', scope: ['chat:write', 'files:read'] });
      expect((await get(`/${p}-chat/s1`, spaced)).status).toBe(200);
      expect((await get(`/${p}-chat/s2`, listed)).status).toBe(200);
      expect401(await get(`/${p}-chat/s3`, await token(alg, { typ: 'access', scope: 'chat:read chat:writer' })), 'bad_claims');
      expect401(await get(`/${p}-chat/s4`, await token(alg, { typ: 'access' })), 'missing_claim');
      expect401(await get(`/${p}-chat/s5`, await token(alg, { typ: 'access', scope: 7 })), 'bad_claims');
    });

    it(`${alg}: a refresh token accepted (and cached) on the plain provider is refused on the narrower route`, async () => {
      const refresh = await token(alg, { typ: 'refresh', scope: 'chat:write' });
      expect((await get(`/${p}/c1`, refresh)).status).toBe(200);
      expect((await get(`/${p}/c2`, refresh)).status).toBe(200);
      expect(await logFor(`/${p}/c2`)).toMatchObject({ status: 200, jwt_cache: 'hit' });
      const refused = await get(`/${p}-chat/c3`, refresh);
      expect401(refused, 'bad_claims');
      expect401(await get(`/${p}-chat/c4`, refresh), 'bad_claims');
      expect(await logFor(`/${p}-chat/c4`)).toMatchObject({ status: 401, auth: 'bad_claims' });
    });

    it(`${alg}: a token the narrower route accepted is cached for it too`, async () => {
      const access = await token(alg, { typ: 'access', scope: 'chat:write' });
      expect((await get(`/${p}-chat/h1`, access)).status).toBe(200);
      expect((await get(`/${p}-chat/h2`, access)).status).toBe(200);
      expect(await logFor(`/${p}-chat/h1`)).toMatchObject({ status: 200, jwt_cache: 'miss' });
      expect(await logFor(`/${p}-chat/h2`)).toMatchObject({ status: 200, jwt_cache: 'hit' });
    });
  }

  it('a refusal is in the auth-failure log with its reason and route, never the token', async () => {
    const refresh = await token('ES256', { typ: 'refresh', scope: 'chat:write' });
    const marker = `/es-chat/logged-${Date.now()}`;
    expect401(await get(marker, refresh), 'bad_claims');
    const logFile = path.join(project.gw.prefix, 'logs/auth.log');
    let text = '';
    await waitUntil(
      () => {
        try {
          text = readFileSync(logFile, 'utf8');
        } catch {
          text = '';
        }
        return text.includes(marker);
      },
      5000,
      'auth-failure log line',
    );
    const line = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.path === marker);
    expect(line).toMatchObject({ status: 401, reason: 'bad_claims', route: 'es-chat' });
    expect(text).not.toContain(refresh.split('.')[2]);
  });
});
