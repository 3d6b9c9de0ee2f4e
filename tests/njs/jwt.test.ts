// JWT verification under Node (the njs library code is engine-neutral), with tokens
// minted by jose and the RFC 7515 A.1 example.
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { b64uDecode, b64uEncode, isBase64Url } from '../../njs/lib/base64url.ts';
import { checkClaims, keyTypeFor, parseJwt, verifyJwt, verifyJwtSync, type Jwk, type JwtPolicy, type JwtResult } from '../../njs/lib/jwt.ts';
import { timingSafeEqual } from '../../njs/lib/timing.ts';

const NOW = 1_800_000_000;
const SECRET = Buffer.from('s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t!');
const b64u = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

let pairs: Record<string, CryptoKeyPair>;
let jwks: Jwk[];

beforeAll(async () => {
  pairs = {
    RS256: await generateKeyPair('RS256', { extractable: true }),
    RS512: await generateKeyPair('RS512', { extractable: true }),
    PS256: await generateKeyPair('PS256', { extractable: true }),
    ES256: await generateKeyPair('ES256', { extractable: true }),
    ES384: await generateKeyPair('ES384', { extractable: true }),
  };
  jwks = [];
  for (const [alg, p] of Object.entries(pairs)) {
    jwks.push({ ...((await exportJWK(p.publicKey)) as JWK), kid: alg.toLowerCase(), alg } as Jwk);
  }
  for (const alg of ['HS256', 'HS384', 'HS512']) jwks.push({ kty: 'oct', kid: alg.toLowerCase(), alg, k: SECRET.toString('base64url') });
});

function policy(over: Partial<JwtPolicy> = {}): JwtPolicy {
  return {
    algorithms: ['HS256', 'HS384', 'HS512', 'RS256', 'RS512', 'PS256', 'ES256', 'ES384'],
    keys: jwks,
    issuer: ['https://iss'],
    audience: ['api'],
    leeway: 30,
    requiredClaims: ['sub'],
    ...over,
  };
}

async function mint(alg: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key?: CryptoKey | Uint8Array) {
  const k = key ?? (alg.startsWith('HS') ? SECRET : pairs[alg].privateKey);
  return new SignJWT({ sub: 'u1', iss: 'https://iss', aud: 'api', exp: NOW + 600, iat: NOW - 5, ...claims })
    .setProtectedHeader({ alg, kid: alg.toLowerCase(), ...header })
    .sign(k);
}

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Other spellings of a base64url string that decode to the same bytes (last character's unused bits set). */
function nonCanonical(seg: string): string[] {
  const bytes = Buffer.from(seg, 'base64url');
  const out = [];
  for (const c of B64U) {
    const alt = seg.slice(0, -1) + c;
    if (alt !== seg && Buffer.from(alt, 'base64url').equals(bytes)) out.push(alt);
  }
  return out;
}

function reason(r: JwtResult): string {
  return r.ok ? 'ok' : r.reason;
}

describe('base64url and timing helpers', () => {
  it('strict base64url', () => {
    expect(isBase64Url('aGVsbG8')).toBe(true);
    expect(isBase64Url('aGVsbG8=')).toBe(false);
    expect(isBase64Url('a+b/')).toBe(false);
    expect(isBase64Url('abcde')).toBe(false); // length % 4 === 1
    expect(b64uDecode('aGVsbG8')!.toString()).toBe('hello');
    expect(b64uDecode('aGV sbG8')).toBeNull();
    expect(b64uEncode('hello')).toBe('aGVsbG8');
    expect(b64uEncode(new Uint8Array([251, 255]))).toBe('-_8');
  });
  it('canonical only: the unused low bits of the last character must be zero', () => {
    expect(isBase64Url('aA')).toBe(true); // 1 byte, 4 unused bits
    for (const c of 'BCDEFGHIJKLMNOP') expect(isBase64Url('a' + c), c).toBe(false);
    expect(isBase64Url('aGVsbG8')).toBe(true); // 2 bytes in the last group, 2 unused bits
    for (const c of '9-_') expect(isBase64Url('aGVsbG' + c), c).toBe(false);
    expect(b64uDecode('aGVsbG9')).toBeNull(); // Buffer would decode it to "hello" as well
    for (let n = 1; n < 40; n++) {
      const enc = b64uEncode(new Uint8Array(n).fill(0xa5 + n));
      expect(isBase64Url(enc), enc).toBe(true);
      expect(nonCanonical(enc).length).toBe([0, 15, 3][n % 3]);
    }
  });
  it('constant-time compare', () => {
    expect(timingSafeEqual('abc', 'abc')).toBe(true);
    expect(timingSafeEqual('abc', 'abd')).toBe(false);
    expect(timingSafeEqual('ab', 'abc')).toBe(false);
    expect(timingSafeEqual('abcd', 'abc')).toBe(false);
    expect(timingSafeEqual('', '')).toBe(true);
  });
});

describe('RFC 7515 A.1 (HS256)', () => {
  const token =
    'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9' +
    '.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ' +
    '.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  const key: Jwk = { kty: 'oct', k: 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow' };
  const p: JwtPolicy = { algorithms: ['HS256'], keys: [key], issuer: ['joe'] };

  it('verifies', async () => {
    const r = await verifyJwt(token, p, 1300819380 - 100);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.claims).toEqual({ iss: 'joe', exp: 1300819380, 'http://example.com/is_root': true });
  });
  it('rejects a flipped signature bit, after exp, wrong issuer', async () => {
    const bad = token.slice(0, -2) + 'Xg'; // 'k' → 'g': a bit that carries data ('l' would only set an unused one)
    expect(reason(await verifyJwt(bad, p, 1300819000))).toBe('bad_signature');
    expect(reason(await verifyJwt(token, p, 1300819380))).toBe('expired');
    expect(reason(await verifyJwt(token, { ...p, issuer: ['jane'] }, 1300819000))).toBe('bad_issuer');
  });
  it('verifies synchronously too (js_set path), with the same refusals', () => {
    const r = verifyJwtSync(token, p, 1300819380 - 100);
    expect(r.ok).toBe(true);
    const bad = token.slice(0, -2) + 'Xg'; // 'k' → 'g': a bit that carries data ('l' would only set an unused one)
    expect(reason(verifyJwtSync(bad, p, 1300819000))).toBe('bad_signature');
    expect(reason(verifyJwtSync(token, p, 1300819380))).toBe('expired');
    expect(reason(verifyJwtSync(token, { ...p, issuer: ['jane'] }, 1300819000))).toBe('bad_issuer');
    const none = `${b64u({ alg: 'none' })}.${token.split('.')[1]}.c2ln`;
    expect(reason(verifyJwtSync(none, p, 1300819000))).toBe('alg_none');
  });
});

describe('synchronous verification refuses everything but HS256', () => {
  it('an RS256 token, even when the policy lists RS256, is not verified synchronously', async () => {
    const policy: JwtPolicy = { algorithms: ['HS256', 'RS256'], keys: jwks };
    const rs = await mint('RS256');
    expect(reason(await verifyJwt(rs, policy, NOW))).toBe('ok');
    expect(reason(verifyJwtSync(rs, policy, NOW))).toBe('alg_not_allowed');
  });
});

describe('algorithms minted by jose', () => {
  for (const alg of ['HS256', 'HS384', 'HS512', 'RS256', 'RS512', 'PS256', 'ES256', 'ES384']) {
    it(`${alg} valid`, async () => {
      const r = await verifyJwt(await mint(alg), policy(), NOW);
      expect(reason(r)).toBe('ok');
      if (r.ok) {
        expect(r.claims.sub).toBe('u1');
        expect(r.kid).toBe(alg.toLowerCase());
        expect(JSON.parse(Buffer.from(r.payloadSegment, 'base64url').toString()).sub).toBe('u1');
      }
    });
    it(`${alg} wrong key`, async () => {
      const other = alg.startsWith('HS') ? Buffer.from('another-secret-another-secret-another-secret!!') : (await generateKeyPair(alg)).privateKey;
      expect(reason(await verifyJwt(await mint(alg, {}, {}, other), policy(), NOW))).toBe('bad_signature');
    });
  }

  it('chooses the key by kid, or the only key of the right type without kid', async () => {
    const noKid = await new SignJWT({ sub: 'u', exp: NOW + 60 }).setProtectedHeader({ alg: 'ES256' }).sign(pairs.ES256.privateKey);
    const p = { algorithms: ['ES256'], keys: jwks };
    expect(reason(await verifyJwt(noKid, p, NOW))).toBe('ok');
    const hsNoKid = await new SignJWT({ sub: 'u', exp: NOW + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(SECRET);
    // three oct keys: ambiguous without kid
    expect(reason(await verifyJwt(hsNoKid, { algorithms: ['HS256'], keys: jwks }, NOW))).toBe('no_key');
    expect(reason(await verifyJwt(await mint('ES256', {}, { kid: 'nope' }), policy(), NOW))).toBe('no_key');
  });
});

describe('rejections', () => {
  it('alg none in any spelling', async () => {
    const payload = b64u({ sub: 'u', iss: 'https://iss', aud: 'api', exp: NOW + 60 });
    for (const alg of ['none', 'None', 'NONE']) {
      const t = b64u({ alg }) + '.' + payload + '.';
      expect(reason(await verifyJwt(t, policy({ algorithms: ['none', 'HS256'] }), NOW))).toBe('malformed');
      expect(reason(await verifyJwt(t + 'c2ln', policy({ algorithms: ['none', 'HS256'] }), NOW))).toBe('alg_none');
    }
  });

  it('algorithm confusion: HS256 with an RSA key (public key used as HMAC secret)', async () => {
    const rsaJwk = jwks.find((k) => k.kid === 'rs256')!;
    const secret = Buffer.from(JSON.stringify(rsaJwk));
    const t = await mint('HS256', {}, { kid: 'rs256' }, secret);
    expect(reason(await verifyJwt(t, policy(), NOW))).toBe('alg_key_mismatch');
  });

  it('algorithm confusion: RS256 header pointing at an HMAC key, ES256 at an RSA key, pinned alg', async () => {
    expect(reason(await verifyJwt(await mint('RS256', {}, { kid: 'hs256' }), policy(), NOW))).toBe('alg_key_mismatch');
    expect(reason(await verifyJwt(await mint('ES256', {}, { kid: 'rs256' }), policy(), NOW))).toBe('alg_key_mismatch');
    expect(reason(await verifyJwt(await mint('ES384', {}, { kid: 'es256' }), policy(), NOW))).toBe('alg_key_mismatch');
    // RS512 token naming the key pinned to RS256
    const t = await mint('RS512', {}, { kid: 'rs256' }, pairs.RS512.privateKey);
    expect(reason(await verifyJwt(t, policy(), NOW))).toBe('alg_key_mismatch');
  });

  it('alg not allowed / unknown, crit, bad header', async () => {
    expect(reason(await verifyJwt(await mint('HS256'), policy({ algorithms: ['RS256'] }), NOW))).toBe('alg_not_allowed');
    const weird = b64u({ alg: 'HS1' }) + '.' + b64u({ exp: NOW + 9 }) + '.c2ln';
    expect(reason(await verifyJwt(weird, policy({ algorithms: ['HS1'] }), NOW))).toBe('alg_not_allowed');
    const crit = b64u({ alg: 'HS256', kid: 'hs256', crit: ['x'], x: 1 }) + '.' + b64u({ exp: NOW + 9 }) + '.c2ln';
    expect(reason(await verifyJwt(crit, policy(), NOW))).toBe('unsupported_crit');
    const noAlg = b64u({ typ: 'JWT' }) + '.' + b64u({ exp: NOW + 9 }) + '.c2ln';
    expect(reason(await verifyJwt(noAlg, policy(), NOW))).toBe('bad_header');
    const kidNum = b64u({ alg: 'HS256', kid: 7 }) + '.' + b64u({ exp: NOW + 9 }) + '.c2ln';
    expect(reason(await verifyJwt(kidNum, policy(), NOW))).toBe('bad_header');
  });

  it('time claims with leeway', async () => {
    expect(reason(await verifyJwt(await mint('HS256', { exp: NOW - 10 }), policy(), NOW))).toBe('ok'); // within 30 s leeway
    expect(reason(await verifyJwt(await mint('HS256', { exp: NOW - 31 }), policy(), NOW))).toBe('expired');
    expect(reason(await verifyJwt(await mint('HS256', { exp: NOW - 1 }), policy({ leeway: 0 }), NOW))).toBe('expired');
    expect(reason(await verifyJwt(await mint('HS256', { nbf: NOW + 20 }), policy(), NOW))).toBe('ok');
    expect(reason(await verifyJwt(await mint('HS256', { nbf: NOW + 60 }), policy(), NOW))).toBe('not_yet_valid');
    expect(reason(await verifyJwt(await mint('HS256', { iat: NOW + 3600 }), policy(), NOW))).toBe('not_yet_valid');
    expect(reason(await verifyJwt(await mint('HS256', { exp: 'tomorrow' }), policy(), NOW))).toBe('bad_claims');
    expect(reason(await verifyJwt(await mint('HS256', { exp: undefined }), policy(), NOW))).toBe('missing_claim');
    expect(reason(await verifyJwt(await mint('HS256', { exp: undefined }), policy({ requireExp: false }), NOW))).toBe('ok');
  });

  it('issuer, audience, required claims', async () => {
    expect(reason(await verifyJwt(await mint('ES256', { iss: 'https://evil' }), policy(), NOW))).toBe('bad_issuer');
    expect(reason(await verifyJwt(await mint('ES256', { iss: undefined }), policy(), NOW))).toBe('bad_issuer');
    expect(reason(await verifyJwt(await mint('ES256', { aud: 'other' }), policy(), NOW))).toBe('bad_audience');
    expect(reason(await verifyJwt(await mint('ES256', { aud: ['other', 'api'] }), policy(), NOW))).toBe('ok');
    expect(reason(await verifyJwt(await mint('ES256', { aud: undefined }), policy(), NOW))).toBe('bad_audience');
    expect(reason(await verifyJwt(await mint('ES256', { aud: 'other' }), policy({ audience: [] }), NOW))).toBe('ok');
    expect(reason(await verifyJwt(await mint('ES256', { sub: undefined }), policy(), NOW))).toBe('missing_claim');
    expect(reason(await verifyJwt(await mint('ES256', { scope: 'a' }), policy({ requiredClaims: ['sub', 'scope'] }), NOW))).toBe('ok');
  });

  it('malformed tokens', async () => {
    const good = await mint('HS256');
    const [h, p, s] = good.split('.');
    const cases = [
      '',
      'abc',
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}..${s}`,
      `${h}.${p}=.${s}`,
      `${h}.${p}.${s}=`,
      `${h}.${p.replace(/[A-Za-z]/, '+')}.${s}`,
      `${b64u('not json')}.${p}.${s}`,
      `${b64u('[1,2]')}.${p}.${s}`,
      `${h}.${b64u('"str"')}.${s}`,
      `${h}.${b64u('null')}.${s}`,
      `${h}.${p}.${s}x`, // length % 4 === 1 after appending
    ];
    for (const t of cases) {
      const r = await verifyJwt(t, policy(), NOW);
      expect(r.ok, t).toBe(false);
      expect(['malformed', 'missing_token', 'bad_signature'], t).toContain(reason(r));
    }
    expect(reason(await verifyJwt('', policy(), NOW))).toBe('missing_token');
  });

  it('non-canonical base64url in any segment is malformed, for every algorithm (one signature, one spelling)', async () => {
    for (const alg of ['RS256', 'RS512', 'PS256', 'ES256', 'ES384', 'HS256', 'HS384', 'HS512']) {
      // a header whose encoding leaves unused bits, so that segment has other spellings too
      const t = await mint(alg, {}, { typ: 'JWT', x: 'ab' });
      const [h, p, s] = t.split('.');
      expect(reason(await verifyJwt(t, policy(), NOW)), alg).toBe('ok');
      const sigs = nonCanonical(s);
      // RS256 (256 bytes) and ES256 (64 bytes): 15 other spellings of the last character
      if (alg === 'RS256' || alg === 'ES256' || alg === 'PS256') expect(sigs.length, alg).toBe(15);
      const variants = [...sigs.map((x) => `${h}.${p}.${x}`), ...nonCanonical(h).map((x) => `${x}.${p}.${s}`), ...nonCanonical(p).map((x) => `${h}.${x}.${s}`)];
      expect(variants.length, alg).toBeGreaterThan(0);
      for (const v of variants) {
        expect(reason(await verifyJwt(v, policy(), NOW)), `${alg} ${v}`).toBe('malformed');
        if (alg === 'HS256') expect(reason(verifyJwtSync(v, policy(), NOW)), v).toBe('malformed');
      }
    }
  });

  it('ES256 signature of the wrong length (DER instead of raw r||s)', async () => {
    const t = await mint('ES256');
    const [h, p, s] = t.split('.');
    const sig = Buffer.from(s, 'base64url');
    const der = Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), sig.subarray(0, 32), Buffer.from([0x02, 0x20]), sig.subarray(32)]);
    expect(reason(await verifyJwt(`${h}.${p}.${der.toString('base64url')}`, policy(), NOW))).toBe('bad_signature');
  });

  it('oversized tokens are refused before any decoding', async () => {
    const big = await mint('HS256', { pad: 'x'.repeat(9000) });
    expect(reason(await verifyJwt(big, policy(), NOW))).toBe('token_too_large');
    expect(reason(await verifyJwt(big, policy({ maxLength: 20000 }), NOW))).toBe('ok');
    expect(reason(await verifyJwt(await mint('HS256'), policy({ maxLength: 50 }), NOW))).toBe('token_too_large');
  });
});

describe('building blocks', () => {
  it('parseJwt exposes segments', async () => {
    const t = await mint('HS256');
    const p = parseJwt(t, 8192);
    expect(p.ok).toBe(true);
    if (p.ok) {
      expect(p.signingInput).toBe(t.split('.').slice(0, 2).join('.'));
      expect(p.header.alg).toBe('HS256');
    }
  });
  it('keyTypeFor', () => {
    expect(keyTypeFor('HS384')).toBe('oct');
    expect(keyTypeFor('PS512')).toBe('RSA');
    expect(keyTypeFor('ES256')).toBe('EC:P-256');
    expect(keyTypeFor('EdDSA')).toBe('');
    expect(keyTypeFor('none')).toBe('');
  });
  it('checkClaims returns null when everything holds', () => {
    expect(checkClaims({ sub: 'a', exp: NOW + 1, iss: 'https://iss', aud: 'api' }, policy(), NOW)).toBeNull();
  });
});
