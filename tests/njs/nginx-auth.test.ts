// API-key and JWT auth through the real nginx + njs runtime, with the bundled njs module,
// the generated key map and a JWKS preload object, proxying to a real Node upstream.
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleNjs, NJS_ENTRY } from '../../src/njs/bundle.ts';
import { renderAuthPreload } from '../../src/njs/preload.ts';
import { createKey, revokeKey, renderKeyMap, type KeyFile } from '../../src/keys/store.ts';
import { request } from '../support/http.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { fixture, makePrefix, NJS_MODULE_SO, startNginx, writeFiles, type RunningNginx } from './nginx-helper.ts';

const HS_SECRET = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
const ISS = 'https://issuer.test';
const AUD = 'gateway-api';

let nginx: RunningNginx;
let upstream: EchoUpstream;
let base: string;
const keys: Record<string, string> = {};
let rsa: CryptoKeyPair, ec: CryptoKeyPair, ps: CryptoKeyPair, rsaOther: CryptoKeyPair;

async function token(alg: string, key: CryptoKey | Uint8Array, kid: string, claims: Record<string, unknown> = {}, expSec = 300) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ role: 'reader', tier: 'gold', ...claims })
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .setSubject((claims.sub as string) ?? 'user-42')
    .setIssuer(ISS)
    .setAudience(AUD)
    .setIssuedAt(now - 10)
    .setExpirationTime(now + expSec)
    .sign(key);
}

const b64u = (s: string) => Buffer.from(s).toString('base64url');

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'backend' });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const prefix = await makePrefix();

  // API keys: alice (valid), bob (revoked), carol (expired after the map was built).
  const store: KeyFile = { version: 1, keys: [] };
  const now = new Date();
  const hourAgo = new Date(now.getTime() - 3600_000);
  keys.alice = createKey(store, { name: 'alice', role: 'admin', tier: 'gold' }, now).key;
  keys.bob = createKey(store, { name: 'bob', role: 'reader' }, new Date(now.getTime() - 7200_000)).key;
  revokeKey(store, 'bob', new Date(hourAgo.getTime() - 1000));
  keys.carol = createKey(store, { name: 'carol', expires: new Date(now.getTime() - 60_000) }, hourAgo).key;
  keys.dave = createKey(store, { name: 'dave', tier: 'free' }, now).key;
  const keyMap = renderKeyMap(store.keys, hourAgo); // carol still active at map build time

  rsa = await generateKeyPair('RS256', { extractable: true });
  rsaOther = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  ps = await generateKeyPair('PS256', { extractable: true });
  const pub = async (k: CryptoKeyPair, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k.publicKey)), kid, alg, use: 'sig' });
  const common = { issuer: [ISS], audience: [AUD], leeway: 5, requiredClaims: ['sub'], clientClaim: 'sub', roleClaim: 'role', tierClaim: 'tier' };
  // Built the way a build would: JWKS documents and HMAC secrets through renderAuthPreload().
  const authJson = renderAuthPreload([
    {
      name: 'hs',
      ...common,
      maxLength: 4096,
      algorithms: ['HS256', 'HS384', 'HS512'],
      secrets: [
        { kid: 'hs256', alg: 'HS256', secret: HS_SECRET.toString() },
        { kid: 'hs384', alg: 'HS384', secret: HS_SECRET.toString() },
        { kid: 'hs512', alg: 'HS512', secret: HS_SECRET.toString() },
      ],
    },
    {
      name: 'asym',
      ...common,
      algorithms: ['RS256', 'ES256', 'PS256'],
      jwks: { keys: [await pub(rsa, 'rsa1', 'RS256'), await pub(ec, 'ec1', 'ES256'), await pub(ps, 'ps1', 'PS256')] },
    },
  ]);

  await bundleNjs(NJS_ENTRY, path.join(prefix, 'njs/gateway.js'));
  await writeFiles(prefix, {
    'nginx.conf': await fixture('nginx.conf', { NJS_MODULE_SO }),
    'conf.d/05-auth.conf': await fixture('auth-http.conf', {}),
    'conf.d/40-servers.conf': await fixture('auth-server.conf', { PORT: port, UPSTREAM_PORT: upstream.port }),
    'conf.d/keys.map': keyMap,
    'njs/auth.json': authJson,
  });
  nginx = await startNginx(prefix, port);
});

afterAll(async () => {
  await nginx?.stop();
  await upstream?.close();
});

const get = (p: string, headers: Record<string, string> = {}) => request(base + p, headers);

function expect401(r: Awaited<ReturnType<typeof get>>, reason: string, challenge = 'Bearer realm="gateway", error="invalid_token"') {
  expect(r.status, r.text).toBe(401);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  expect(r.json).toEqual({ error: 'unauthorized', reason });
  expect(r.headers.get('www-authenticate')).toBe(challenge);
}

describe('API key via js_set + nginx map', () => {
  it('valid key (X-API-Key) -> 200, identity forwarded, client identity headers stripped', async () => {
    const r = await get('/apikey/x?y=1', {
      'X-API-Key': keys.alice,
      'X-Gateway-Client': 'mallory',
      'X-Gateway-Role': 'root',
      'X-Gateway-Tier': 'platinum',
      'X-Gateway-Claims': 'forged',
    });
    expect(r.status).toBe(200);
    expect(r.json.path).toBe('/apikey/x?y=1');
    expect(r.json.headers['x-gateway-auth']).toBe('apikey');
    expect(r.json.headers['x-gateway-client']).toBe('alice');
    expect(r.json.headers['x-gateway-role']).toBe('admin');
    expect(r.json.headers['x-gateway-tier']).toBe('gold');
    expect(r.json.headers['x-gateway-claims']).toBeUndefined();
  });

  it('valid key as Authorization: Bearer -> 200', async () => {
    const r = await get('/apikey/', { Authorization: `Bearer ${keys.dave}` });
    expect(r.status).toBe(200);
    expect(r.json.headers['x-gateway-client']).toBe('dave');
    expect(r.json.headers['x-gateway-role']).toBeUndefined(); // empty value: header not sent
    expect(r.json.headers['x-gateway-tier']).toBe('free');
  });

  it('custom key header per location', async () => {
    expect((await get('/apikey-custom/', { 'X-Custom-Key': keys.alice })).status).toBe(200);
    expect401(await get('/apikey-custom/', { 'X-API-Key': keys.alice }), 'missing_key', 'Bearer realm="gateway"');
  });

  it('missing key -> 401 with challenge and JSON body', async () => {
    expect401(await get('/apikey/'), 'missing_key', 'Bearer realm="gateway"');
  });

  it('unknown, revoked, expired, malformed keys -> 401', async () => {
    expect401(await get('/apikey/', { 'X-API-Key': 'gw_live_' + 'A'.repeat(43) }), 'unknown_key');
    expect401(await get('/apikey/', { 'X-API-Key': keys.bob }), 'unknown_key');
    expect401(await get('/apikey/', { 'X-API-Key': keys.carol }), 'expired_key');
    expect401(await get('/apikey/', { 'X-API-Key': 'short' }), 'malformed_key');
    expect401(await get('/apikey/', { 'X-API-Key': 'x'.repeat(300) }), 'malformed_key');
  });

  it('rejected requests never reach the upstream', async () => {
    const before = upstream.hits;
    await get('/apikey/', { 'X-API-Key': keys.bob });
    await get('/apikey/');
    expect(upstream.hits).toBe(before);
  });
});

describe('per-client rate limits keyed by the authenticated identity', () => {
  it('API key: limit_req sees $gw_client_id set by the js_set handler', async () => {
    const a1 = await get('/apikey-limited/', { 'X-API-Key': keys.alice });
    const a2 = await get('/apikey-limited/', { 'X-API-Key': keys.alice });
    const d1 = await get('/apikey-limited/', { 'X-API-Key': keys.dave });
    expect([a1.status, a2.status, d1.status]).toEqual([200, 429, 200]);
    expect(a1.json.headers['x-gateway-client']).toBe('alice');
    expect((await get('/apikey-limited/')).status).toBe(401);
  });

  it('JWT: auth_request, then try_files into a named location where limit_req sees the identity', async () => {
    const t1 = await token('HS256', HS_SECRET, 'hs256', { sub: 'lim-1' });
    const t2 = await token('HS256', HS_SECRET, 'hs256', { sub: 'lim-2' });
    const r1 = await get('/jwt-limited/x', { Authorization: `Bearer ${t1}` });
    const r2 = await get('/jwt-limited/x', { Authorization: `Bearer ${t1}` });
    const r3 = await get('/jwt-limited/x', { Authorization: `Bearer ${t2}` });
    expect([r1.status, r2.status, r3.status]).toEqual([200, 429, 200]);
    expect(r1.json.path).toBe('/jwt-limited/x');
    expect(r1.json.headers['x-gateway-client']).toBe('lim-1');
    expect401(await get('/jwt-limited/x'), 'missing_token', 'Bearer realm="gateway"');
  });
});

describe('JWT via auth_request + js_content', () => {
  it('HS256 / HS384 / HS512 valid -> 200 and claims forwarded', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const t = await token(alg, HS_SECRET, alg.toLowerCase(), { sub: `svc-${alg}` });
      const r = await get('/jwt-hs/a', { Authorization: `Bearer ${t}`, 'X-Gateway-Client': 'mallory' });
      expect(r.status, `${alg}: ${r.text}`).toBe(200);
      expect(r.json.headers['x-gateway-auth']).toBe('jwt');
      expect(r.json.headers['x-gateway-client']).toBe(`svc-${alg}`);
      expect(r.json.headers['x-gateway-role']).toBe('reader');
      expect(r.json.headers['x-gateway-tier']).toBe('gold');
      const claims = JSON.parse(Buffer.from(r.json.headers['x-gateway-claims'], 'base64url').toString());
      expect(claims).toMatchObject({ sub: `svc-${alg}`, iss: ISS, aud: AUD });
      expect(r.json.headers['authorization']).toBe(`Bearer ${t}`);
      // The auth subrequest's X-Gw-* headers never reach the client.
      expect([...r.headers.keys()].filter((h) => h.startsWith('x-gw'))).toEqual([]);
    }
  });

  it('RS256, ES256 and PS256 valid -> 200', async () => {
    for (const [alg, pair, kid] of [
      ['RS256', rsa, 'rsa1'],
      ['ES256', ec, 'ec1'],
      ['PS256', ps, 'ps1'],
    ] as const) {
      const t = await token(alg, pair.privateKey, kid, { sub: `u-${alg}` });
      const r = await get('/jwt-asym/', { Authorization: `Bearer ${t}` });
      expect(r.status, `${alg}: ${r.text}`).toBe(200);
      expect(r.json.headers['x-gateway-client']).toBe(`u-${alg}`);
    }
  });

  it('non-canonical base64url signatures (RS256, ES256, PS256: 16 spellings of one signature) -> 401 malformed', async () => {
    const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (const [alg, pair, kid] of [
      ['RS256', rsa, 'rsa1'],
      ['ES256', ec, 'ec1'],
      ['PS256', ps, 'ps1'],
    ] as const) {
      const [h, p, s] = (await token(alg, pair.privateKey, kid)).split('.');
      const bytes = Buffer.from(s, 'base64url');
      const others = [...B64U].map((c) => s.slice(0, -1) + c).filter((x) => x !== s && Buffer.from(x, 'base64url').equals(bytes));
      expect(others.length, alg).toBe(15);
      for (const x of others) expect401(await get('/jwt-asym/', { Authorization: `Bearer ${h}.${p}.${x}` }), 'malformed');
    }
  });

  it('POST bodies pass through the auth step untouched (API key and JWT)', async () => {
    const body = JSON.stringify({ prompt: 'x'.repeat(20000) });
    const t = await token('ES256', ec.privateKey, 'ec1');
    for (const [p, h] of [
      ['/jwt-asym/post', { Authorization: `Bearer ${t}` }],
      ['/apikey/post', { 'X-API-Key': keys.alice }],
    ] as const) {
      const res = await fetch(base + p, { method: 'POST', body, headers: { ...h, 'Content-Type': 'application/json' } });
      const j = await res.json();
      expect(res.status).toBe(200);
      expect(j.method).toBe('POST');
      expect(j.body).toBe(body);
    }
    const denied = await fetch(base + '/jwt-asym/post', { method: 'POST', body });
    expect(denied.status).toBe(401);
  });

  it('missing token -> 401 without error attribute', async () => {
    expect401(await get('/jwt-asym/'), 'missing_token', 'Bearer realm="gateway"');
  });

  it('bad signature -> 401', async () => {
    const t = await token('RS256', rsaOther.privateKey, 'rsa1');
    expect401(await get('/jwt-asym/', { Authorization: `Bearer ${t}` }), 'bad_signature');
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const h = await token(alg, Buffer.from('another-secret-another-secret-another-secret'), alg.toLowerCase());
      expect401(await get('/jwt-hs/', { Authorization: `Bearer ${h}` }), 'bad_signature');
    }
    const e = await token('ES256', ec.privateKey, 'ec1');
    const tampered = e.split('.');
    tampered[1] = b64u(JSON.stringify({ sub: 'admin', iss: ISS, aud: AUD, exp: 9999999999 }));
    expect401(await get('/jwt-asym/', { Authorization: `Bearer ${tampered.join('.')}` }), 'bad_signature');
  });

  it('expired -> 401', async () => {
    const t = await token('ES256', ec.privateKey, 'ec1', {}, -60);
    expect401(await get('/jwt-asym/', { Authorization: `Bearer ${t}` }), 'expired');
  });

  it('alg none -> 401', async () => {
    const t = b64u(JSON.stringify({ alg: 'none', typ: 'JWT' })) + '.' + b64u(JSON.stringify({ sub: 'x', iss: ISS, aud: AUD, exp: 9999999999 })) + '.';
    expect401(await get('/jwt-hs/', { Authorization: `Bearer ${t}` }), 'malformed');
    const t2 = t + 'AAAA';
    expect401(await get('/jwt-hs/', { Authorization: `Bearer ${t2}` }), 'alg_none');
  });

  it('algorithm confusion (HS256 signed with the RSA public key) -> 401', async () => {
    const jwk = await exportJWK(rsa.publicKey);
    const secret = Buffer.from(JSON.stringify(jwk));
    const t = await token('HS256', secret, 'rsa1');
    expect401(await get('/jwt-asym/', { Authorization: `Bearer ${t}` }), 'alg_not_allowed');
    // Provider allowing HMAC, token pointing at an RSA kid that it does not hold: no key.
    expect401(await get('/jwt-hs/', { Authorization: `Bearer ${t}` }), 'no_key');
  });

  it('wrong audience -> 401; oversized token -> 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const t = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa1' })
      .setIssuer(ISS)
      .setAudience('other')
      .setExpirationTime(now + 60)
      .sign(rsa.privateKey);
    expect401(await get('/jwt-asym/', { Authorization: `Bearer ${t}` }), 'bad_audience');
    const big = await token('HS256', HS_SECRET, 'hs256', { pad: 'x'.repeat(3500) });
    expect401(await get('/jwt-hs/', { Authorization: `Bearer ${big}` }), 'token_too_large');
  });
});
