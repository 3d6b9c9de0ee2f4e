// The verified-token cache through real nginx: gateway.yaml → compile → nginx + njs → Node
// upstream. A token seen before is answered from the shared dict on both JWT paths (HS256 in
// one js_set; ES256 through js_set $gw_jwt_cached, skipping the auth_request subrequest), and
// the cache weakens nothing: expiry, tampering, roles, access rules, address-keyed limits and
// rotated secrets/keys are all still enforced. The access log's jwt_cache field tells a hit.
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { request, sleep, waitUntil, type FetchReply as Reply } from '../support/http.ts';
import { writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';

const SECRET_A = 'hs256-secret-for-the-cache-tests-0123456789';
const SECRET_B = 'hs256-rotated-secret-for-the-cache-tests-987';

let project: Project;
let upstream: EchoUpstream;
let port: number;
let ec: CryptoKeyPair;
let apiKey: string;

const url = (p: string) => `http://127.0.0.1:${port}${p}`;
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const get = (p: string, t: string) => request(url(p), bearer(t));

async function token(alg: 'HS256' | 'ES256', claims: Record<string, unknown> = {}, expIn = 300, key?: CryptoKey | Uint8Array) {
  const now = Math.floor(Date.now() / 1000);
  const k = key ?? (alg === 'HS256' ? new TextEncoder().encode(SECRET_A) : ec.privateKey);
  return new SignJWT({ role: 'reader', tier: 'free', ...claims })
    .setProtectedHeader({ alg, ...(alg === 'ES256' ? { kid: 'ec1' } : {}) })
    .setSubject((claims.sub as string) ?? 'user-1')
    .setIssuedAt(now - 5)
    .setExpirationTime(now + expIn)
    .sign(k);
}

const pub = async (k: CryptoKeyPair): Promise<JWK> => ({ ...(await exportJWK(k.publicKey)), kid: 'ec1', alg: 'ES256', use: 'sig' });

function gatewayYaml(upstreamAddr: string): string {
  return `version: 1
global:
  status: false
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  app: { servers: [${upstreamAddr}] }
limits:
  rate:
    per_ip: { key: client_ip, rate: 1r/m }
auth:
  api_keys: { file: keys.yaml }
  jwt_cache: { size: 256k, ttl: 5m }
  jwt:
    es: { algorithms: [ES256], jwks_file: jwks.json, role_claim: role, tier_claim: tier }
    hs: { algorithms: [HS256], secret_env: GW_TEST_JWT_SECRET, role_claim: role, tier_claim: tier }
routes:
  - { name: es, match: { prefix: /es/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es } }
  - { name: es-admin, match: { prefix: /es-admin/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es, roles: [admin] } }
  - { name: es-allow, match: { prefix: /es-allow/ }, upstream: app, access: { allow: [10.0.0.0/8] }, auth: { methods: [jwt], jwt_provider: es } }
  - { name: es-ip, match: { prefix: /es-ip/ }, upstream: app, rate_limits: [per_ip], auth: { methods: [jwt], jwt_provider: es } }
  - { name: either-allow, match: { prefix: /either-allow/ }, upstream: app, access: { allow: [10.0.0.0/8] }, auth: { methods: [api_key, jwt], jwt_provider: es } }
  - { name: hs, match: { prefix: /hs/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs } }
  - { name: hs-admin, match: { prefix: /hs-admin/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs, roles: [admin] } }
`;
}

type LogEntry = { status: number; auth: string; client: string; jwt_cache: string };
const entries = (p: string): LogEntry[] =>
  project.gw
    .accessLog()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((l) => l.uri === p);
/** The access-log entries of requests to this path (their jwt_cache field: hit | miss), once written. */
async function logFor(p: string): Promise<LogEntry[]> {
  await waitUntil(() => entries(p).length > 0, 5000, `access log entry for ${p}`);
  return entries(p);
}

/** fetch after a reload: a kept-alive connection to an old worker may be closed under it */
async function getFresh(p: string, t: string): Promise<Reply> {
  try {
    return await get(p, t);
  } catch {
    return get(p, t);
  }
}

function expect401(r: Reply, reason: string) {
  expect(r.status, r.text).toBe(401);
  expect(r.json.error).toMatchObject({ status: 401, reason });
}

async function build(secret: string, jwks: JWK[]) {
  await writeFile(path.join(project.dir, 'jwks.json'), JSON.stringify({ keys: jwks }));
  const r = compile(path.join(project.dir, 'gateway.yaml'), { env: { GW_TEST_JWT_SECRET: secret } });
  if (!r.ok || !r.files) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.files;
}

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  port = await freePort();
  ec = await generateKeyPair('ES256', { extractable: true });
  const store: KeyFile = { version: 1, keys: [] };
  apiKey = createKey(store, { name: 'k1' }, new Date()).key;
  project = await startProject(
    { 'gateway.yaml': gatewayYaml(upstream.address), 'jwks.json': JSON.stringify({ keys: [await pub(ec)] }), 'keys.yaml': serializeKeys(store) },
    [port],
    { env: { GW_TEST_JWT_SECRET: SECRET_A } },
  );
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
});

describe('a token seen before is answered from the cache', () => {
  for (const alg of ['HS256', 'ES256'] as const) {
    const p = alg === 'HS256' ? 'hs' : 'es';
    it(`${alg}: same identity and claims on a hit as after full verification`, async () => {
      const t = await token(alg, { sub: `seen-${alg}` });
      const first = await get(`/${p}/a`, t);
      const second = await get(`/${p}/b`, t);
      expect(first.status, first.text).toBe(200);
      expect(second.status, second.text).toBe(200);
      for (const h of ['x-gateway-client', 'x-gateway-role', 'x-gateway-tier', 'x-gateway-claims', 'x-gateway-auth']) {
        expect(second.json.headers[h], h).toBe(first.json.headers[h]);
      }
      expect(second.json.headers['x-gateway-client']).toBe(`seen-${alg}`);
      expect(second.json.headers.authorization).toBeUndefined();
      expect((await logFor(`/${p}/a`))[0]).toMatchObject({ status: 200, jwt_cache: 'miss', client: `seen-${alg}` });
      expect((await logFor(`/${p}/b`))[0]).toMatchObject({ status: 200, jwt_cache: 'hit', auth: 'ok', client: `seen-${alg}` });
    });
  }

  it('another spelling of the header is its own entry: verified in full once, then answered from the cache', async () => {
    for (const alg of ['HS256', 'ES256'] as const) {
      const p = alg === 'HS256' ? 'hs' : 'es';
      const t = await token(alg, { sub: `spelled-${alg}` });
      const odd = { Authorization: `bearer   ${t}` };
      for (const [path, headers, cache] of [
        [`/${p}/spelled1`, odd, 'miss'],
        [`/${p}/spelled2`, odd, 'hit'],
        [`/${p}/spelled3`, bearer(t), 'miss'],
        [`/${p}/spelled4`, bearer(t), 'hit'],
      ] as const) {
        const r = await request(url(path), headers);
        expect(r.status, `${alg} ${path}: ${r.text}`).toBe(200);
        expect(r.json.headers['x-gateway-client']).toBe(`spelled-${alg}`);
        expect((await logFor(path))[0], `${alg} ${path}`).toMatchObject({ status: 200, jwt_cache: cache, client: `spelled-${alg}` });
      }
      // a tampered token in the spelling of a cached header is still verified, and refused
      const [h, pl] = t.split('.');
      expect401(await request(url(`/${p}/spelled5`), { Authorization: `bearer   ${h}.${pl}.AAAA` }), 'bad_signature');
    }
  });

  it('the token itself is in no log', async () => {
    const t = await token('ES256', { sub: 'no-log' });
    await get('/es/nolog1', t);
    await get('/es/nolog2', t);
    expect(project.gw.accessLog() + project.gw.errorLog()).not.toContain(t.split('.')[2]);
  });

  // A header past 2,048 characters is keyed by its SHA-256 (njs/lib/jwtcache.ts, cacheKey)
  for (const alg of ['HS256', 'ES256'] as const) {
    const p = alg === 'HS256' ? 'hs' : 'es';
    it(`${alg}: a header longer than 2,048 characters is cached under its digest, and a header spelled as that digest finds nothing`, async () => {
      const t = await token(alg, { sub: `long-${alg}`, pad: 'x'.repeat(1800) });
      expect(`Bearer ${t}`.length).toBeGreaterThan(2048);
      for (const [path, cache] of [[`/${p}/long1`, 'miss'], [`/${p}/long2`, 'hit']] as const) {
        const r = await get(path, t);
        expect(r.status, r.text).toBe(200);
        expect(r.json.headers['x-gateway-client']).toBe(`long-${alg}`);
        expect((await logFor(path))[0], path).toMatchObject({ status: 200, jwt_cache: cache, client: `long-${alg}` });
      }
      // the digest key of that header, sent as a header of its own (bare and as a bearer
      // token): another kind of key, never the cached identity
      const digest = createHash('sha256').update(`Bearer ${t}`).digest('base64url');
      const bare = await request(url(`/${p}/long3`), { Authorization: digest });
      expect(bare.status, bare.text).toBe(401);
      const asToken = await get(`/${p}/long4`, digest);
      expect(asToken.status, asToken.text).toBe(401);
      // tampered past the 2,048th character: another digest, verified in full, refused
      const [h, pl, sig] = t.split('.');
      const claims = JSON.parse(Buffer.from(pl, 'base64url').toString());
      const forged = Buffer.from(JSON.stringify({ ...claims, role: 'admin' })).toString('base64url');
      expect401(await get(`/${p}-admin/long5`, `${h}.${forged}.${sig}`), 'bad_signature');
    });
  }
});

describe('the cache weakens nothing', () => {
  for (const alg of ['HS256', 'ES256'] as const) {
    const p = alg === 'HS256' ? 'hs' : 'es';

    it(`${alg}: a tampered payload or signature of a cached token is verified, and refused`, async () => {
      const t = await token(alg, { sub: `tamper-${alg}` });
      expect((await get(`/${p}/t1`, t)).status).toBe(200);
      expect((await get(`/${p}/t2`, t)).status).toBe(200);
      const [h, pl, sig] = t.split('.');
      const claims = JSON.parse(Buffer.from(pl, 'base64url').toString());
      const forged = Buffer.from(JSON.stringify({ ...claims, role: 'admin' })).toString('base64url');
      expect401(await get(`/${p}-admin/t3`, `${h}.${forged}.${sig}`), 'bad_signature');
      const mid = Math.floor(sig.length / 2);
      const flipped = sig.slice(0, mid) + (sig[mid] === 'A' ? 'B' : 'A') + sig.slice(mid + 1);
      expect401(await get(`/${p}/t4`, `${h}.${pl}.${flipped}`), 'bad_signature');
      const longer = await get(`/${p}/t5`, `${t}x`); // another key: verified in full, never the cached identity
      expect(longer.status, longer.text).toBe(401);
      expect(['malformed', 'bad_signature']).toContain(longer.json.error.reason);
    });

    it(`${alg}: roles are checked per route on a cached identity`, async () => {
      const t = await token(alg, { sub: `roles-${alg}`, role: 'reader' });
      expect((await get(`/${p}/r1`, t)).status).toBe(200);
      const denied = await get(`/${p}-admin/r2`, t);
      expect(denied.status, denied.text).toBe(403);
      expect(denied.json.error.reason).toBe('role_denied');
      expect((await logFor(`/${p}-admin/r2`))[0]).toMatchObject({ status: 403, jwt_cache: 'hit' });
      const admin = await token(alg, { sub: `admin-${alg}`, role: 'admin' });
      expect((await get(`/${p}-admin/r3`, admin)).status).toBe(200);
      expect((await get(`/${p}-admin/r4`, admin)).status).toBe(200);
      expect((await logFor(`/${p}-admin/r4`))[0]).toMatchObject({ status: 200, jwt_cache: 'hit' });
    });

    it(`${alg}: a token that expires while cached is refused from then on; its entry ends a second before exp, by the dict's own timeout`, async () => {
      const t = await token(alg, { sub: `short-${alg}` }, 4);
      const exp = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()).exp as number;
      expect((await get(`/${p}/e1`, t)).status).toBe(200);
      expect((await get(`/${p}/e2`, t)).status).toBe(200);
      expect((await logFor(`/${p}/e2`))[0]).toMatchObject({ jwt_cache: 'hit' });
      // both runtimes' njs (>= 0.8.5) time the entry: the dict drops it TIMED_MARGIN_MS (1 s)
      // before exp, and the fast path, which reads no clock for it, finds nothing; the token,
      // still valid, is verified in full and, with less than the margin left, not cached again
      // (0.3 s after the entry's end, and 0.7 s for two requests before exp on a loaded machine)
      await sleep(Math.max(0, exp * 1000 - 700 - Date.now()));
      expect((await get(`/${p}/e3`, t)).status).toBe(200);
      expect((await get(`/${p}/e4`, t)).status).toBe(200);
      expect((await logFor(`/${p}/e3`))[0]).toMatchObject({ status: 200, jwt_cache: 'miss' });
      expect((await logFor(`/${p}/e4`))[0]).toMatchObject({ status: 200, jwt_cache: 'miss' });
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 300);
      expect401(await get(`/${p}/e5`, t), 'expired');
    });
  }

  it('a cache hit still meets the route allow list and its address-keyed limits (the 418 jump skips neither)', async () => {
    const t = await token('ES256', { sub: 'guards' });
    expect((await get('/es/g1', t)).status).toBe(200); // cached now
    const denied = await get('/es-allow/g2', t);
    expect(denied.status, denied.text).toBe(403);
    expect((await logFor('/es-allow/g2'))[0]).toMatchObject({ status: 403, jwt_cache: 'hit' });
    expect((await get('/es-ip/g3', t)).status).toBe(200);
    const limited = await get('/es-ip/g4', t);
    expect(limited.status, limited.text).toBe(429);
    expect((await logFor('/es-ip/g4'))[0]).toMatchObject({ status: 429, jwt_cache: 'hit' });
  });

  it('the same holds for an accepted API key on a route taking either credential (it jumps with 418 too)', async () => {
    const r = await request(url('/either-allow/k'), { 'X-API-Key': apiKey });
    expect(r.status, r.text).toBe(403);
  });

  it('a token whose signature never verified is not cached: the same token is refused again', async () => {
    const other = await generateKeyPair('ES256', { extractable: true });
    const t = await token('ES256', { sub: 'never' }, 300, other.privateKey);
    expect401(await get('/es/n1', t), 'bad_signature');
    expect401(await get('/es/n2', t), 'bad_signature');
  });
});

// last: rebuilds and reloads the running nginx (the shared dict survives a reload)
describe('rotation flushes the cache (revocation = rotation)', () => {
  it('after a reload with a rotated HMAC secret and JWKS key, cached tokens of the old ones are refused', async () => {
    const hsOld = await token('HS256', { sub: 'rot-hs' });
    const esOld = await token('ES256', { sub: 'rot-es' });
    for (const [p, t] of [['hs', hsOld], ['es', esOld]] as const) {
      expect((await get(`/${p}/o1`, t)).status).toBe(200);
      expect((await get(`/${p}/o2`, t)).status).toBe(200);
      expect((await logFor(`/${p}/o2`))[0]).toMatchObject({ jwt_cache: 'hit' });
    }
    const ec2 = await generateKeyPair('ES256', { extractable: true });
    writeBuild(project.distDir, await build(SECRET_B, [await pub(ec2)])); // same kid, new key
    await project.gw.reload();
    expect401(await getFresh('/hs/o3', hsOld), 'bad_signature');
    expect401(await get('/es/o3', esOld), 'bad_signature');
    const hsNew = await token('HS256', { sub: 'rot-hs' }, 300, new TextEncoder().encode(SECRET_B));
    const esNew = await token('ES256', { sub: 'rot-es' }, 300, ec2.privateKey);
    expect((await get('/hs/o4', hsNew)).status).toBe(200);
    expect((await get('/es/o4', esNew)).status).toBe(200);
  });
});
