// Build-time preparation of the gw_auth preload object.
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { buildAuthPreload, buildJwtProvider, PreloadError, publicJwk, renderAuthPreload } from '../../src/njs/preload.ts';

const SECRET = 'x'.repeat(32);

describe('buildJwtProvider', () => {
  it('keeps only public signature members of JWKS keys', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const priv = { ...(await exportJWK(rsa.privateKey)), kid: 'r1', alg: 'RS256' };
    expect(priv.d).toBeDefined();
    const out = buildJwtProvider({ name: 'main', algorithms: ['RS256'], jwks: { keys: [priv] } });
    expect(out.keys).toEqual([{ kty: 'RSA', kid: 'r1', alg: 'RS256', use: 'sig', n: priv.n, e: priv.e }]);
    expect(JSON.stringify(out)).not.toContain(priv.d!);
    expect(out).toMatchObject({ clientClaim: 'sub', requireExp: true, maxLength: 8192, leeway: 0, issuer: [], audience: [] });
  });

  it('skips encryption, unsupported and unusable keys; fails when nothing is left', async () => {
    const ec = await generateKeyPair('ES256', { extractable: true });
    const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'e1' };
    const keys = [
      { ...ecJwk, kid: 'enc', use: 'enc' },
      { kty: 'OKP', crv: 'Ed25519', x: 'abc', kid: 'ed' },
      { ...ecJwk, kid: 'p521', crv: 'P-521' },
      ecJwk,
    ];
    expect(buildJwtProvider({ name: 'm', algorithms: ['ES256'], jwks: { keys } }).keys.map((k) => k.kid)).toEqual(['e1']);
    expect(() => buildJwtProvider({ name: 'm', algorithms: ['RS256'], jwks: { keys } })).toThrow(/no key usable with RS256/);
  });

  it('EC keys carry their public point for the raw import, which WebCrypto reads as the same key', async () => {
    for (const alg of ['ES256', 'ES384'] as const) {
      const ec = await generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'e' };
      const [key] = buildJwtProvider({ name: 'm', algorithms: [alg], jwks: { keys: [jwk] } }).keys;
      const raw = Buffer.from(key.raw!, 'base64url');
      expect(raw[0]).toBe(4);
      expect(raw.subarray(1)).toEqual(Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]));
      // the raw import and the JWK import give one key: the JWK export of one is the other
      const namedCurve = jwk.crv!;
      const fromRaw = await crypto.subtle.importKey('raw', raw, { name: 'ECDSA', namedCurve }, true, ['verify']);
      expect(await crypto.subtle.exportKey('jwk', fromRaw)).toMatchObject({ kty: 'EC', crv: namedCurve, x: jwk.x, y: jwk.y });
    }
    // coordinates of the wrong length for the curve: no raw point (the JWK import decides at runtime)
    const ec = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'e' };
    const [short] = buildJwtProvider({ name: 'm', algorithms: ['ES256'], jwks: { keys: [{ ...jwk, x: jwk.x!.slice(4) }] } }).keys;
    expect(short.raw).toBeUndefined();
  });

  it('HMAC secrets become oct JWKs, with minimum lengths', () => {
    const out = buildJwtProvider({ name: 'h', algorithms: ['HS256'], secrets: [{ kid: 's', secret: SECRET }] });
    expect(out.keys).toEqual([{ kty: 'oct', kid: 's', use: 'sig', k: Buffer.from(SECRET).toString('base64url') }]);
    expect(() => buildJwtProvider({ name: 'h', algorithms: ['HS256'], secrets: [{ secret: 'short' }] })).toThrow(/shorter than 32 bytes/);
    expect(() => buildJwtProvider({ name: 'h', algorithms: ['HS512'], secrets: [{ alg: 'HS512', secret: SECRET }] })).toThrow(/64 bytes/);
    expect(() => buildJwtProvider({ name: 'h', algorithms: ['HS256'], secrets: [{ alg: 'RS256', secret: SECRET }] })).toThrow(/HS256/);
  });

  it('refuses bad names, algorithms, claims, duplicates, weak RSA keys', async () => {
    const base = { algorithms: ['HS256'], secrets: [{ secret: SECRET }] };
    expect(() => buildJwtProvider({ ...base, name: 'a b' })).toThrow(PreloadError);
    expect(() => buildJwtProvider({ ...base, name: 'a', algorithms: ['none'] })).toThrow(/unsupported algorithm "none"/);
    expect(() => buildJwtProvider({ ...base, name: 'a', algorithms: [] })).toThrow(/no algorithms/);
    expect(() => buildJwtProvider({ ...base, name: 'a', clientClaim: 'a b' })).toThrow(/not a valid claim name/);
    expect(() => buildJwtProvider({ ...base, name: 'a', leeway: -1 })).toThrow(/leeway/);
    expect(() =>
      buildJwtProvider({ name: 'a', algorithms: ['HS256'], secrets: [{ kid: 'k', secret: SECRET }, { kid: 'k', secret: SECRET + 'y' }] }),
    ).toThrow(/duplicate kid/);
    const weak = { kty: 'RSA', n: Buffer.alloc(128, 1).toString('base64url'), e: 'AQAB' };
    expect(() => buildJwtProvider({ name: 'a', algorithms: ['RS256'], jwks: { keys: [weak] } })).toThrow(/2048/);
    expect(() => buildAuthPreload([{ ...base, name: 'x' }, { ...base, name: 'x' }])).toThrow(/defined twice/);
    expect(() => publicJwk('nope', 'p', 0)).toThrow(/not an object/);
  });

  it('renders the preload JSON', () => {
    const text = renderAuthPreload([{ name: 'h', algorithms: ['HS256'], secrets: [{ secret: SECRET }], roleClaim: 'role' }]);
    const obj = JSON.parse(text);
    expect(obj.version).toBe(1);
    expect(obj.jwt.h.roleClaim).toBe('role');
    expect(obj.jwt.h.tierClaim).toBeUndefined();
  });
});
