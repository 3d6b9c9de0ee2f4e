// njs authentication end to end: gateway.yaml with `auth:` → compile → real nginx + njs →
// real Node upstream. Nothing here is hand-written nginx config.
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, revokeKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { startProject, type Project as AuthProject } from '../support/gateway.ts';
import { request, type FetchReply as Reply } from '../support/http.ts';
import { fileMode } from '../support/files.ts';

const ISS = 'https://issuer.test';
const AUD = 'gateway-api';
const HS_SECRET = 'hs256-secret-for-tests-0123456789abcdef';

let project: AuthProject;
let upstream: EchoUpstream;
let port: number;
const keys: Record<string, string> = {};
let rsa: CryptoKeyPair, ec: CryptoKeyPair, ec384: CryptoKeyPair, rsaOther: CryptoKeyPair;
let rsaPublicPem: string;

const url = (p: string) => `http://127.0.0.1:${port}${p}`;
const get = (p: string, headers: Record<string, string> = {}) => request(url(p), headers);
const b64u = (s: string) => Buffer.from(s).toString('base64url');
const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The other spellings of a base64url segment: same bytes, unused low bits of the last character set. */
function otherSpellings(seg: string): string[] {
  const bytes = Buffer.from(seg, 'base64url');
  return [...B64U].map((c) => seg.slice(0, -1) + c).filter((alt) => alt !== seg && Buffer.from(alt, 'base64url').equals(bytes));
}

async function token(alg: string, key: CryptoKey | Uint8Array, kid: string | null, claims: Record<string, unknown> = {}, opts: { exp?: number; iss?: string } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ role: 'reader', tier: 'free', ...claims })
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}), typ: 'JWT' })
    .setSubject((claims.sub as string) ?? 'user-1')
    .setIssuer(opts.iss ?? ISS)
    .setAudience(AUD)
    .setIssuedAt(now - 10)
    .setExpirationTime(now + (opts.exp ?? 300))
    .sign(key);
}
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

function expect401(r: Reply, reason: string, challenge = 'Bearer realm="gateway", error="invalid_token"') {
  expect(r.status, r.text).toBe(401);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  expect(r.json.error).toMatchObject({ status: 401, code: 'unauthorized', reason });
  expect(r.json.request_id).toMatch(/^[0-9a-f]{32}$/);
  expect(r.headers.get('www-authenticate')).toBe(challenge);
  expect(r.headers.get('cache-control')).toBe('no-store');
}

function gatewayYaml(upstreamAddr: string): string {
  return `version: 1
global:
  status: false
  error_log: { level: info } # njs logs each JWT refusal at info
listeners:
  - name: main
    port: ${port}
    address: 127.0.0.1
upstreams:
  app:
    servers: [${upstreamAddr}]
limits:
  rate:
    free: { key: client_id, tier: free, rate: 1r/m }
    pro: { key: client_id, tier: pro, rate: 100r/s, burst: 50 }
    per_ip: { key: client_ip, rate: 100r/s, burst: 100 }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    main:
      algorithms: [RS256, ES256, ES384]
      jwks_file: jwks.json
      issuer: ${ISS}
      audience: ${AUD}
      leeway: 5s
      required_claims: [sub]
      role_claim: role
      tier_claim: tier
    internal:
      algorithms: [HS256]
      secret_env: GW_TEST_JWT_SECRET
      role_claim: role
      tier_claim: tier
routes:
  - name: key
    match: { prefix: /key/ }
    upstream: app
    auth: api_key
  - name: key-get
    match: { prefix: /key-get/, methods: [GET] }
    upstream: app
    auth: api_key
  - name: key-keep
    match: { prefix: /key-keep/ }
    upstream: app
    auth: { methods: [api_key], key_header: X-Custom-Key, strip_credentials: false }
  - name: key-admin
    match: { prefix: /key-admin/ }
    upstream: app
    auth: { methods: [api_key], roles: [admin] }
  - name: jwt
    match: { prefix: /jwt/ }
    upstream: app
    strip_prefix: true
    auth: { methods: [jwt], jwt_provider: main }
  - name: jwt-admin
    match: { prefix: /jwt-admin/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: main, roles: [admin] }
  - name: hs
    match: { prefix: /hs/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: internal, strip_credentials: false }
  - name: either
    match: { prefix: /either/ }
    upstream: app
    auth: { methods: [api_key, jwt], jwt_provider: main }
  - name: limited
    match: { prefix: /limited/ }
    upstream: app
    auth: api_key
    rate_limits: [free, pro]
  - name: jwt-limited
    match: { prefix: /jwt-limited/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: main }
    rate_limits: [free, pro]
  - name: either-limited
    match: { prefix: /either-limited/ }
    upstream: app
    auth: { methods: [api_key, jwt], jwt_provider: main }
    rate_limits: [free, pro]
  - name: jwt-mixed-limits
    match: { prefix: /jwt-mixed/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: main }
    rate_limits: [per_ip, free, pro]
  - name: key-mixed-limits
    match: { prefix: /key-mixed/ }
    upstream: app
    auth: api_key
    rate_limits: [per_ip, free, pro]
  - name: hs-limited
    match: { prefix: /hs-limited/ }
    upstream: app
    auth: { methods: [jwt], jwt_provider: internal, roles: [svc] }
    rate_limits: [per_ip, free, pro]
  - name: public
    match: { prefix: /public/ }
    upstream: app
`;
}

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  port = await freePort();

  // keys: alice (admin, pro), bob (user, free), carol (revoked), dave (expires after the build)
  const store: KeyFile = { version: 1, keys: [] };
  const now = new Date();
  const hourAgo = new Date(now.getTime() - 3600_000);
  keys.alice = createKey(store, { name: 'alice', role: 'admin', tier: 'pro' }, now).key;
  keys.bob = createKey(store, { name: 'bob', role: 'user', tier: 'free' }, now).key;
  keys.erin = createKey(store, { name: 'erin', tier: 'free' }, now).key;
  keys.gina = createKey(store, { name: 'gina', tier: 'free' }, now).key;
  keys.carol = createKey(store, { name: 'carol' }, new Date(now.getTime() - 7200_000)).key;
  revokeKey(store, 'carol', new Date(hourAgo.getTime() - 1000));
  keys.dave = createKey(store, { name: 'dave', expires: new Date(now.getTime() - 60_000) }, hourAgo).key;
  keys.fiona = createKey(store, { name: 'fiona', tier: 'pro', expires: new Date(now.getTime() + 3600_000) }, hourAgo).key;

  rsa = await generateKeyPair('RS256', { extractable: true });
  rsaOther = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  ec384 = await generateKeyPair('ES384', { extractable: true });
  const pub = async (k: CryptoKeyPair, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k.publicKey)), kid, alg, use: 'sig' });
  const { createPublicKey } = await import('node:crypto');
  rsaPublicPem = createPublicKey({ key: (await exportJWK(rsa.publicKey)) as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();

  project = await startProject(
    {
      'gateway.yaml': gatewayYaml(upstream.address),
      'keys.yaml': serializeKeys(store),
      'jwks.json': JSON.stringify({ keys: [await pub(rsa, 'rsa1', 'RS256'), await pub(ec, 'ec1', 'ES256'), await pub(ec384, 'ec2', 'ES384')] }, null, 2),
    },
    [port],
    // the key map is built an hour ago: dave's key is still in it and expires at request time
    { env: { GW_TEST_JWT_SECRET: HS_SECRET }, now: hourAgo },
  );
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
});

describe('build output', () => {
  it('writes the preload object 0600, holds HMAC secrets only there, and only hashes in the key map', async () => {
    expect(fileMode(path.join(project.distDir, 'njs/auth.json'))).toBe(0o600);
    const secretB64 = Buffer.from(HS_SECRET).toString('base64url');
    expect(project.files['njs/auth.json']).toContain(secretB64);
    for (const [rel, text] of Object.entries(project.files)) {
      if (rel === 'njs/auth.json') continue;
      expect(text, rel).not.toContain(secretB64);
      expect(text, rel).not.toContain(HS_SECRET);
      for (const k of Object.values(keys)) expect(text, rel).not.toContain(k);
    }
    expect(project.files['conf.d/keys.map']).toMatch(/"[0-9a-f]{64}" "alice\|admin\|pro\|0";/);
    expect(project.files['conf.d/keys.map']).not.toContain('carol');
    expect(project.files['nginx.conf']).toContain('load_module modules/ngx_http_js_module.so;');
  });
});

describe('API keys', () => {
  it('valid key → 200 with identity; forged identity headers and the credential are stripped', async () => {
    const r = await get('/key/x?y=1', {
      'X-API-Key': keys.alice,
      'X-Gateway-Client': 'mallory',
      'X-Gateway-Role': 'root',
      'X-Gateway-Tier': 'platinum',
      'X-Gateway-Auth': 'forged',
      'X-Gateway-Claims': 'forged',
    });
    expect(r.status, r.text).toBe(200);
    const h = r.json.headers;
    expect(h['x-gateway-auth']).toBe('apikey');
    expect(h['x-gateway-client']).toBe('alice');
    expect(h['x-gateway-role']).toBe('admin');
    expect(h['x-gateway-tier']).toBe('pro');
    expect(h['x-gateway-claims']).toBeUndefined();
    expect(h['x-api-key']).toBeUndefined();
    expect(h['authorization']).toBeUndefined();
  });

  it('key as Authorization: Bearer', async () => {
    const r = await get('/key/', bearer(keys.bob));
    expect(r.status).toBe(200);
    expect(r.json.headers['x-gateway-client']).toBe('bob');
    expect(r.json.headers['authorization']).toBeUndefined();
  });

  it('missing, unknown, revoked, expired, malformed → 401 JSON with WWW-Authenticate', async () => {
    expect401(await get('/key/'), 'missing_key', 'Bearer realm="gateway"');
    expect401(await get('/key/', { 'X-API-Key': 'gw_live_' + 'A'.repeat(43) }), 'unknown_key');
    expect401(await get('/key/', { 'X-API-Key': keys.carol }), 'unknown_key');
    expect401(await get('/key/', { 'X-API-Key': keys.dave }), 'expired_key');
    expect401(await get('/key/', { 'X-API-Key': 'short' }), 'malformed_key');
  });

  it('the key fast path ($gw_key_presented, $gw_key_bearer) and the full extraction in njs decide alike', async () => {
    const client = async (p: string, h: Record<string, string>) => {
      const r = await get(p, h);
      expect(r.status, r.text).toBe(200);
      return r.json.headers['x-gateway-client'];
    };
    // fast path: the key header as nginx holds it, or without one a bearer token of key syntax
    expect(await client('/key/', { Authorization: `bearer   ${keys.bob}` })).toBe('bob');
    expect(await client('/key/', { 'X-API-Key': '', Authorization: `Bearer ${keys.bob}` })).toBe('bob');
    expect(await client('/key/', { 'X-API-Key': keys.alice, Authorization: 'Bearer not-a-key!' })).toBe('alice');
    expect(await client('/key/', { 'X-API-Key': keys.fiona })).toBe('fiona'); // expires later: the clock is read
    expect(await client('/key-keep/', { 'X-Custom-Key': keys.alice, 'X-API-Key': 'short' })).toBe('alice');
    // a key the map does not accept goes through the full extraction: the key header decides even when malformed
    expect401(await get('/key/', { 'X-API-Key': 'short', ...bearer(keys.bob) }), 'malformed_key');
    expect401(await get('/key/', { 'X-API-Key': `${keys.bob} x`, ...bearer(keys.bob) }), 'malformed_key');
    expect401(await get('/key/', { 'X-API-Key': 'k'.repeat(257) }), 'malformed_key');
    expect401(await get('/key/', { Authorization: `Bearer ${keys.bob} extra` }), 'missing_key', 'Bearer realm="gateway"');
    expect401(await get('/key/', { Authorization: `Basic ${keys.bob}` }), 'missing_key', 'Bearer realm="gateway"');
    expect401(await get('/key-keep/', { 'X-API-Key': keys.alice }), 'missing_key', 'Bearer realm="gateway"');
  });

  it('rejected requests never reach the upstream', async () => {
    const before = upstream.hits;
    await get('/key/', { 'X-API-Key': keys.carol });
    await get('/key/');
    expect(upstream.hits).toBe(before);
  });

  it('per-route key header; strip_credentials: false forwards the key', async () => {
    const r = await get('/key-keep/', { 'X-Custom-Key': keys.bob });
    expect(r.status).toBe(200);
    expect(r.json.headers['x-custom-key']).toBe(keys.bob);
    expect401(await get('/key-keep/', { 'X-API-Key': keys.bob, 'X-Other': '1' }), 'missing_key', 'Bearer realm="gateway"');
  });

  it('roles: 403 JSON for other roles, 200 for an allowed one', async () => {
    const denied = await get('/key-admin/', { 'X-API-Key': keys.bob });
    expect(denied.status).toBe(403);
    expect(denied.json.error).toMatchObject({ status: 403, code: 'forbidden', reason: 'role_denied', message: 'role not allowed on this route' });
    expect((await get('/key-admin/', { 'X-API-Key': keys.alice })).status).toBe(200);
    expect401(await get('/key-admin/'), 'missing_key', 'Bearer realm="gateway"');
  });
});

describe('JWT', () => {
  it('RS256, ES256 and ES384 from the JWKS file → 200 with identity and claims; token stripped', async () => {
    // (EC keys go through WebCrypto's raw import of the point the build stored)
    for (const [alg, pair, kid] of [
      ['RS256', rsa, 'rsa1'],
      ['ES256', ec, 'ec1'],
      ['ES384', ec384, 'ec2'],
    ] as const) {
      const t = await token(alg, pair.privateKey, kid, { sub: `u-${alg}`, role: 'reader', tier: 'pro' });
      const r = await get('/jwt/a/b?c=1', { ...bearer(t), 'X-Gateway-Client': 'mallory' });
      expect(r.status, `${alg}: ${r.text}`).toBe(200);
      expect(r.json.path).toBe('/a/b?c=1'); // strip_prefix through the named location
      const h = r.json.headers;
      expect(h['x-gateway-auth']).toBe('jwt');
      expect(h['x-gateway-client']).toBe(`u-${alg}`);
      expect(h['x-gateway-role']).toBe('reader');
      expect(h['x-gateway-tier']).toBe('pro');
      expect(JSON.parse(Buffer.from(h['x-gateway-claims'], 'base64url').toString())).toMatchObject({ sub: `u-${alg}`, iss: ISS });
      expect(h['authorization']).toBeUndefined();
    }
  });

  it('HS256 with the secret from the environment (credential kept when asked)', async () => {
    const t = await token('HS256', new TextEncoder().encode(HS_SECRET), null, { sub: 'svc-a' });
    const r = await get('/hs/x', bearer(t));
    expect(r.status, r.text).toBe(200);
    expect(r.json.headers['x-gateway-client']).toBe('svc-a');
    expect(r.json.headers['authorization']).toBe(`Bearer ${t}`);
    const wrong = await token('HS256', new TextEncoder().encode('another-secret-another-secret-xx'), null);
    expect401(await get('/hs/x', bearer(wrong)), 'bad_signature');
  });

  it('HS256-only providers verify in place (one js_set, no auth_request): refusals, roles and tier limits', async () => {
    const servers = readFileSync(path.join(project.distDir, 'conf.d/40-servers.conf'), 'utf8');
    const loc = servers.slice(servers.indexOf('location "/hs-limited/"'));
    expect(loc.slice(0, loc.indexOf('\n    }'))).not.toContain('auth_request');
    expect(servers).not.toContain('/_gw_auth/jwt/internal');
    const key = new TextEncoder().encode(HS_SECRET);
    const exp = Math.floor(Date.now() / 1000) + 300;
    const svcFree = await token('HS256', key, null, { sub: 'svc-free', role: 'svc', tier: 'free' });
    const first = await get('/hs-limited/x', bearer(svcFree));
    expect(first.status, first.text).toBe(200);
    expect(first.json.headers['x-gateway-tier']).toBe('free');
    expect(JSON.parse(Buffer.from(first.json.headers['x-gateway-claims'], 'base64url').toString()).sub).toBe('svc-free');
    expect((await get('/hs-limited/x', bearer(svcFree))).status).toBe(429); // tier limit next to an IP limit
    const other = await token('HS256', key, null, { sub: 'svc-x', role: 'reader', tier: 'pro' });
    const denied = await get('/hs-limited/x', bearer(other));
    expect(denied.status).toBe(403);
    expect(denied.json.error.reason).toBe('role_denied');
    const rsSigned = await token('RS256', rsa.privateKey, 'rsa1', { sub: 'svc-rs', role: 'svc' });
    expect401(await get('/hs-limited/x', bearer(rsSigned)), 'alg_not_allowed');
    const payload = b64u(JSON.stringify({ sub: 'svc', role: 'svc', exp }));
    expect401(await get('/hs-limited/x', bearer(`${b64u(JSON.stringify({ alg: 'none' }))}.${payload}.c2ln`)), 'alg_none');
    const expired = await token('HS256', key, null, { sub: 'svc-old', role: 'svc' }, { exp: -600 });
    expect401(await get('/hs-limited/x', bearer(expired)), 'expired');
    expect401(await get('/hs-limited/x'), 'missing_token', 'Bearer realm="gateway"');
  });

  it('alg none, algorithm confusion, bad signature, expiry and issuer are refused', async () => {
    const payload = b64u(JSON.stringify({ sub: 'admin', iss: ISS, aud: AUD, exp: Math.floor(Date.now() / 1000) + 300 }));
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64u(JSON.stringify({ alg, typ: 'JWT' }))}.${payload}.`;
      expect401(await get('/jwt/', bearer(unsigned)), 'malformed'); // an empty signature never parses
      expect401(await get('/jwt/', bearer(`${unsigned}c2ln`)), 'alg_none');
    }
    // HS256 "signed" with the RSA public key against a provider that only allows RS256/ES256
    const confused = await token('HS256', new TextEncoder().encode(rsaPublicPem), 'rsa1');
    expect401(await get('/jwt/', bearer(confused)), 'alg_not_allowed');
    // RS256 header with the EC key id
    const mismatch = await token('RS256', rsa.privateKey, 'ec1');
    expect401(await get('/jwt/', bearer(mismatch)), 'alg_key_mismatch');
    expect401(await get('/jwt/', bearer(await token('RS256', rsaOther.privateKey, 'rsa1'))), 'bad_signature');
    expect401(await get('/jwt/', bearer(await token('ES256', ec.privateKey, 'ec1', {}, { exp: -60 }))), 'expired');
    expect401(await get('/jwt/', bearer(await token('ES256', ec.privateKey, 'ec1', {}, { iss: 'https://evil.test' }))), 'bad_issuer');
    expect401(await get('/jwt/'), 'missing_token', 'Bearer realm="gateway"');
  });

  it('one signature has one spelling: non-canonical base64url (RS256, ES256, HS256) → 401 malformed', async () => {
    for (const [p, t] of [
      ['/jwt/', await token('RS256', rsa.privateKey, 'rsa1')],
      ['/jwt/', await token('ES256', ec.privateKey, 'ec1')],
      ['/hs/', await token('HS256', new TextEncoder().encode(HS_SECRET), null)],
    ] as const) {
      expect((await get(p, bearer(t))).status, t).toBe(200);
      const [h, pl, sig] = t.split('.');
      const spellings = otherSpellings(sig);
      expect(spellings.length).toBe(p === '/hs/' ? 3 : 15); // 16 strings for one RS256/ES256 signature, 4 for HS256
      for (const alt of spellings) expect401(await get(p, bearer(`${h}.${pl}.${alt}`)), 'malformed');
    }
  });

  it('roles from the role claim: 403 otherwise; a claim listing several roles matches', async () => {
    const reader = await token('ES256', ec.privateKey, 'ec1', { role: 'reader' });
    const denied = await get('/jwt-admin/', bearer(reader));
    expect(denied.status).toBe(403);
    expect(denied.json.error.reason).toBe('role_denied');
    expect(denied.headers.get('www-authenticate')).toBeNull();
    expect((await get('/jwt-admin/', bearer(await token('ES256', ec.privateKey, 'ec1', { role: 'admin' })))).status).toBe(200);
    expect((await get('/jwt-admin/', bearer(await token('ES256', ec.privateKey, 'ec1', { role: ['reader', 'admin'] })))).status).toBe(200);
  });

  it('a string role claim is ONE role: "user,admin" never passes roles: [admin]', async () => {
    const before = upstream.hits;
    // roles travel comma-separated: a string holding a comma cannot be one role there → refused
    for (const role of ['user,admin', 'admin,', ',admin']) {
      const t = await token('ES256', ec.privateKey, 'ec1', { role });
      expect401(await get('/jwt-admin/', bearer(t)), 'bad_claims');
      expect401(await get('/jwt/', bearer(t)), 'bad_claims'); // never forwarded as two roles either
    }
    // no other splitting: a string with spaces is one (unknown) role
    for (const role of ['user admin', 'Admin', 'admins']) {
      const denied = await get('/jwt-admin/', bearer(await token('ES256', ec.privateKey, 'ec1', { role })));
      expect(denied.status, role).toBe(403);
      expect(denied.json.error.reason).toBe('role_denied');
    }
    expect(upstream.hits).toBe(before);
    // the synchronous HS256 path decides the same way
    const key = new TextEncoder().encode(HS_SECRET);
    expect401(await get('/hs-limited/x', bearer(await token('HS256', key, null, { sub: 'svc-c', role: 'reader,svc', tier: 'pro' }))), 'bad_claims');
    const listed = await get('/hs-limited/x', bearer(await token('HS256', key, null, { sub: 'svc-l', role: ['reader', 'svc'], tier: 'pro' })));
    expect(listed.status, listed.text).toBe(200);
    expect(listed.json.headers['x-gateway-role']).toBe('reader,svc');
  });
});

describe('token text in the logs', () => {
  it('a kid or alg holding CR/LF, quotes or control characters cannot forge error-log lines (both JWT paths)', async () => {
    const marker = `FORGED${Date.now()}`;
    const forged = `\r\n2026/12/01 06:00:00 [emerg] 1#1: ${marker} "x" \\ \u0007`;
    const payload = b64u(JSON.stringify({ sub: 'x', iss: ISS, aud: AUD, exp: Math.floor(Date.now() / 1000) + 300 }));
    const seg = (h: unknown) => Buffer.from(JSON.stringify(h)).toString('base64url');
    for (const [p, header, reason] of [
      ['/jwt/', { alg: 'ES256', kid: forged }, 'no_key'],
      ['/jwt/', { alg: `RS256${forged}` }, 'alg_not_allowed'],
      ['/hs/', { alg: 'HS256', kid: forged }, 'no_key'],
      ['/hs/', { alg: forged }, 'alg_not_allowed'],
      ['/jwt/', { alg: 'ES256', kid: 'k'.repeat(1500) + forged }, 'no_key'],
    ] as const) {
      expect401(await get(p, bearer(`${seg(header)}.${payload}.c2ln`)), reason);
    }
    const log = project.gw.errorLog();
    const lines = log.split('\n').filter((l) => l.includes(marker) || l.includes('"kkkkkkkkkk'));
    expect(lines.length, log.slice(-3000)).toBe(5); // the capped kid's line ends before its marker
    for (const l of lines) {
      expect(l).toMatch(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*\d+ js: gateway jwt: (no_key|alg_not_allowed): /);
      if (l.includes(marker)) expect(l).toContain('\\x0d\\x0a2026/12/01 06:00:00 [emerg] 1#1: ');
      expect(l).not.toMatch(/[\r\x00-\x08\x0b-\x1f\x7f]/);
    }
    expect(log).not.toMatch(new RegExp(`^2026/12/01 06:00:00 \\[emerg\\] 1#1: ${marker}`, 'm'));
    const capped = log.split('\n').find((l) => l.includes('kkkkkkkkkk'))!;
    expect(capped).toMatch(/"k{64}"\[\+\d+ more\]/);
    expect(capped.length).toBeLessThan(600);
    // the auth-failure log (escape=json) stays one JSON object per line
    const authLog = readFileSync(path.join(project.gw.prefix, 'logs/auth.log'), 'utf8');
    for (const l of authLog.trim().split('\n')) expect(() => JSON.parse(l), l).not.toThrow();
  });
});

describe('API key or JWT on one route', () => {
  it('either credential is accepted and the method is forwarded', async () => {
    const k = await get('/either/', { 'X-API-Key': keys.bob, 'X-Gateway-Auth': 'jwt' });
    expect(k.status, k.text).toBe(200);
    expect(k.json.headers['x-gateway-auth']).toBe('apikey');
    expect(k.json.headers['x-gateway-client']).toBe('bob');
    const b = await get('/either/', bearer(keys.alice));
    expect(b.status).toBe(200);
    expect(b.json.headers['x-gateway-client']).toBe('alice');
    const j = await get('/either/', bearer(await token('RS256', rsa.privateKey, 'rsa1', { sub: 'jwt-user' })));
    expect(j.status).toBe(200);
    expect(j.json.headers['x-gateway-auth']).toBe('jwt');
    expect(j.json.headers['x-gateway-client']).toBe('jwt-user');
  });

  it('a sent key decides; without any credential the JWT reason is reported', async () => {
    expect401(await get('/either/', { 'X-API-Key': keys.carol }), 'unknown_key');
    expect401(await get('/either/'), 'missing_token', 'Bearer realm="gateway"');
    expect401(await get('/either/', bearer(await token('RS256', rsaOther.privateKey, 'rsa1'))), 'bad_signature');
  });
});

describe('limits by tier, keyed by the authenticated client', () => {
  it('API key: free gets 429 at once, pro does not', async () => {
    const free = [await get('/limited/', { 'X-API-Key': keys.bob }), await get('/limited/', { 'X-API-Key': keys.bob })];
    expect(free.map((r) => r.status)).toEqual([200, 429]);
    expect(free[1].json.error.code).toBe('rate_limited');
    const pro = await Promise.all(Array.from({ length: 8 }, () => get('/limited/', { 'X-API-Key': keys.alice })));
    expect(pro.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect((await get('/limited/')).status).toBe(401);
  });

  it('JWT: the tier claim selects the zone after the auth_request hand-over', async () => {
    const free = await token('ES256', ec.privateKey, 'ec1', { sub: 'jwt-free', tier: 'free' });
    const pro = await token('ES256', ec.privateKey, 'ec1', { sub: 'jwt-pro', tier: 'pro' });
    const f = [await get('/jwt-limited/', bearer(free)), await get('/jwt-limited/', bearer(free))];
    expect(f.map((r) => r.status)).toEqual([200, 429]);
    const p = [];
    for (let i = 0; i < 6; i++) p.push((await get('/jwt-limited/', bearer(pro))).status);
    expect(p).toEqual(Array(6).fill(200));
    const other = await token('ES256', ec.privateKey, 'ec1', { sub: 'jwt-free-2', tier: 'free' });
    expect((await get('/jwt-limited/', bearer(other))).status).toBe(200); // its own bucket
  });

  it('either method: an accepted API key reaches the limits too, and 429 keeps its JSON page', async () => {
    const first = await get('/either-limited/', { 'X-API-Key': keys.erin });
    const second = await get('/either-limited/', { 'X-API-Key': keys.erin });
    expect([first.status, second.status]).toEqual([200, 429]);
    expect(second.json.error.code).toBe('rate_limited');
    expect(second.headers.get('retry-after')).toBe('60');
    const jwtFree = await token('ES256', ec.privateKey, 'ec1', { sub: 'either-free', tier: 'free' });
    expect([(await get('/either-limited/', bearer(jwtFree))).status, (await get('/either-limited/', bearer(jwtFree))).status]).toEqual([200, 429]);
  });
});

describe('IP-keyed and client-keyed limits on one route', () => {
  // nginx applies limit_req once per request: zones split between the public location and
  // the post-auth named location would leave the tier zones unenforced.
  it('JWT: the tier limit still applies next to an IP limit', async () => {
    const free = await token('ES256', ec.privateKey, 'ec1', { sub: 'mixed-free', tier: 'free' });
    const f = [await get('/jwt-mixed/', bearer(free)), await get('/jwt-mixed/', bearer(free))];
    expect(f.map((r) => r.status)).toEqual([200, 429]);
  });
  it('API key: the tier limit still applies next to an IP limit', async () => {
    const f = [await get('/key-mixed/', { 'X-API-Key': keys.gina }), await get('/key-mixed/', { 'X-API-Key': keys.gina })];
    expect(f.map((r) => r.status)).toEqual([200, 429]);
  });
});

describe('public routes and logging', () => {
  it('public routes strip client-sent identity headers too', async () => {
    const r = await get('/public/', { 'X-Gateway-Client': 'mallory', 'X-Gateway-Role': 'admin', 'X-Gateway-Auth': 'apikey' });
    expect(r.status).toBe(200);
    expect(r.json.headers['x-gateway-client']).toBeUndefined();
    expect(r.json.headers['x-gateway-role']).toBeUndefined();
    expect(r.json.headers['x-gateway-auth']).toBeUndefined();
  });

  it('failed authentication is logged with client IP and reason, never the credential', async () => {
    const marker = `/key/log-marker-${Date.now()}`;
    await get(marker, { 'X-API-Key': keys.carol });
    await get('/jwt-admin/log', bearer(await token('ES256', ec.privateKey, 'ec1', { sub: 'log-reader', role: 'reader' })));
    const forged = await token('RS256', rsaOther.privateKey, 'rsa1', { sub: 'log-forger' });
    await get('/jwt/log-jwt', bearer(forged));
    const logFile = path.join(project.gw.prefix, 'logs/auth.log');
    let lines: Record<string, unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      let text = '';
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        // not yet written
      }
      lines = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (lines.some((l) => l.path === marker) && lines.some((l) => l.client === 'log-reader') && lines.some((l) => l.path === '/jwt/log-jwt')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lines.find((l) => l.path === marker)).toMatchObject({ remote_addr: '127.0.0.1', reason: 'unknown_key', status: 401, route: 'key' });
    expect(lines.find((l) => l.client === 'log-reader')).toMatchObject({ reason: 'role_denied', status: 403, route: 'jwt-admin' });
    expect(lines.find((l) => l.path === '/jwt/log-jwt')).toMatchObject({ remote_addr: '127.0.0.1', reason: 'bad_signature', status: 401, route: 'jwt' });
    expect(lines.some((l) => l.reason === 'ok' || l.reason === '')).toBe(false); // successes stay out
    const logs = readFileSync(logFile, 'utf8') + project.gw.accessLog() + project.gw.errorLog();
    for (const k of Object.values(keys)) expect(logs).not.toContain(k);
    expect(logs).not.toContain(HS_SECRET);
    expect(logs).not.toContain(forged);
    // the main access log carries the auth status and client of every request
    const access = project.gw.accessLog().trim().split('\n').map((l) => JSON.parse(l));
    expect(access.some((l) => l.route === 'key' && l.auth === 'ok' && l.client === 'alice')).toBe(true);
    expect(access.some((l) => l.route === 'jwt' && l.auth === 'ok' && l.client === 'u-RS256')).toBe(true);
  });

  it('the access log says ok for an accepted credential, the reason for a refused one, nothing before the check', async () => {
    // an accepted credential writes no status in njs: the log reads "ok" from the identity written
    const stamp = Date.now();
    expect((await get(`/key-get/ok-${stamp}`, { 'X-API-Key': keys.alice })).status).toBe(200);
    expect((await get(`/key-get/bad-${stamp}`, { 'X-API-Key': `${keys.alice}x` })).status).toBe(401);
    // a 405 is answered before the key is looked at, whatever key comes with it
    expect((await request(url(`/key-get/post-${stamp}`), { 'X-API-Key': keys.alice }, { method: 'POST', body: '{}' })).status).toBe(405);
    expect((await get(`/public/p-${stamp}`)).status).toBe(200);
    // the same for a JWT verified in place (HS256 in the route's own location)
    expect((await get(`/hs/ok-${stamp}`, bearer(await token('HS256', new TextEncoder().encode(HS_SECRET), null, { sub: 'svc-log' })))).status).toBe(200);
    let access: Record<string, unknown>[] = [];
    for (let i = 0; i < 40 && access.filter((l) => String(l.uri).endsWith(`-${stamp}`)).length < 5; i++) {
      await new Promise((r) => setTimeout(r, 50));
      access = project.gw.accessLog().trim().split('\n').map((l) => JSON.parse(l));
    }
    const at = (p: string) => access.find((l) => l.uri === p);
    expect(at(`/key-get/ok-${stamp}`)).toMatchObject({ status: 200, auth: 'ok', client: 'alice' });
    expect(at(`/key-get/bad-${stamp}`)).toMatchObject({ status: 401, auth: 'unknown_key', client: '' });
    expect(at(`/key-get/post-${stamp}`)).toMatchObject({ status: 405, auth: '', client: '' });
    expect(at(`/public/p-${stamp}`)).toMatchObject({ status: 200, auth: '', client: '' });
    expect(at(`/hs/ok-${stamp}`)).toMatchObject({ status: 200, auth: 'ok', client: 'svc-log' });
  });
});
