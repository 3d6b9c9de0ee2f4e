// Every HMAC algorithm (HS256, HS384, HS512) ends in the one constant-time comparison of
// njs/lib/timing.ts, with the expected MAC as its reference side; WebCrypto's own verify
// (whose comparison is not documented to be constant-time) is never used for an HMAC.
// The timing module is wrapped in a spy that still runs the real comparison.
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createHmac } from 'node:crypto';
import { verifyJwt, verifyJwtSync, type JwtPolicy } from '../../njs/lib/jwt.ts';
import { timingSafeEqual } from '../../njs/lib/timing.ts';

vi.mock('../../njs/lib/timing.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../njs/lib/timing.ts')>();
  return { timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const NOW = 1_800_000_000;
const SECRET = Buffer.from('hmac-secret-hmac-secret-hmac-secret-hmac-secret-hmac-secret-0123');
const policy: JwtPolicy = {
  algorithms: ['HS256', 'HS384', 'HS512'],
  keys: ['HS256', 'HS384', 'HS512'].map((alg) => ({ kty: 'oct', kid: alg, alg, k: SECRET.toString('base64url') })),
};

const mint = (alg: string, key: Uint8Array = SECRET) =>
  new SignJWT({ sub: 'svc', exp: NOW + 60 }).setProtectedHeader({ alg, kid: alg }).sign(key);

afterEach(() => {
  vi.mocked(timingSafeEqual).mockClear();
  vi.restoreAllMocks();
});

describe('HMAC signatures are compared in constant time', () => {
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    it(`${alg}: the MAC goes through timingSafeEqual (valid and forged), subtle.verify is not used`, async () => {
      const verify = vi.spyOn(globalThis.crypto.subtle, 'verify');
      const good = await mint(alg);
      const [h, p, s] = good.split('.');
      const expected = createHmac(`sha${alg.slice(2)}`, SECRET).update(`${h}.${p}`).digest('base64url');
      expect(s).toBe(expected);

      const ok = await verifyJwt(good, policy, NOW);
      expect(ok.ok).toBe(true);
      expect(vi.mocked(timingSafeEqual)).toHaveBeenCalledWith(s, expected);

      vi.mocked(timingSafeEqual).mockClear();
      const forged = await mint(alg, Buffer.from('another-secret-another-secret-another-secret-another'));
      const bad = await verifyJwt(forged, policy, NOW);
      expect(bad.ok ? 'ok' : bad.reason).toBe('bad_signature');
      expect(vi.mocked(timingSafeEqual)).toHaveBeenCalledTimes(1);
      expect(vi.mocked(timingSafeEqual).mock.calls[0]).toEqual([forged.split('.')[2], expected]);
      expect(verify).not.toHaveBeenCalled();
    });
  }

  it('HS256 on the synchronous path too', async () => {
    const t = await mint('HS256');
    expect(verifyJwtSync(t, policy, NOW).ok).toBe(true);
    expect(vi.mocked(timingSafeEqual)).toHaveBeenCalledTimes(1);
  });
});
