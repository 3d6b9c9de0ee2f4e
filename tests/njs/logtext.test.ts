// Token-derived strings in error-log messages: quoted, escaped, capped (njs/lib/logtext.ts),
// and the JWT failure details that carry a token's kid/alg use it.
import { describe, expect, it } from 'vitest';
import { verifyJwt, verifyJwtSync, type JwtPolicy } from '../../njs/lib/jwt.ts';
import { LOG_TEXT_MAX, logLine, logText } from '../../njs/lib/logtext.ts';

const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const FORGED = '\r\n2026/12/01 06:00:00 [emerg] 1#1: forged "line" \\ \u0000\u007f\u2028é';

describe('logText', () => {
  it('quotes, escapes quotes, backslashes, controls and non-ASCII', () => {
    expect(logText('rsa1')).toBe('"rsa1"');
    expect(logText('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(logText('a\r\nb\tc')).toBe('"a\\x0d\\x0ab\\x09c"');
    expect(logText('\u0000\u007f\u2028é')).toBe('"\\x00\\x7f\\u2028\\u00e9"');
    const out = logText(FORGED);
    expect(out).toMatch(/^"[\x20-\x7e]*"$/);
    expect(out).not.toMatch(/[\r\n]/);
  });
  it('caps the length and says how much was left out', () => {
    const long = 'k'.repeat(5000);
    expect(logText(long)).toBe(`"${'k'.repeat(LOG_TEXT_MAX)}"[+${5000 - LOG_TEXT_MAX} more]`);
    expect(logText(long, 10)).toBe(`"kkkkkkkkkk"[+4990 more]`);
    expect(logLine('a\nb' + 'x'.repeat(600), 512)).toBe('a\\x0ab' + 'x'.repeat(509) + '[+91 more]');
  });
});

describe('JWT failure details never carry raw token text', () => {
  const policy: JwtPolicy = { algorithms: ['HS256', 'RS256'], keys: [{ kty: 'oct', kid: 'k1', alg: 'HS256', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMg' }] };
  const payload = b64u({ sub: 'x', exp: 9999999999 });
  const detailOf = async (header: unknown) => {
    const t = `${b64u(header)}.${payload}.c2ln`;
    const a = await verifyJwt(t, policy, 1);
    const s = verifyJwtSync(t, policy, 1);
    if (a.ok || s.ok) throw new Error('unexpected ok');
    expect(s.detail).toBe(a.detail);
    return a;
  };
  it('kid and alg are escaped and capped', async () => {
    for (const header of [{ alg: 'HS256', kid: FORGED }, { alg: FORGED }, { alg: 'RS256' + FORGED }, { alg: 'HS256', kid: 'k'.repeat(4000) + FORGED }]) {
      const r = await detailOf(header);
      expect(['no_key', 'alg_not_allowed']).toContain(r.reason);
      expect(r.detail).toMatch(/^[\x20-\x7e]*$/); // one printable line
      expect(r.detail).not.toContain('[emerg] 1#1: forged "line"');
      expect(r.detail.length).toBeLessThan(200);
    }
    expect((await detailOf({ alg: 'HS256', kid: 'a\r\nb' })).detail).toBe('no key with kid "a\\x0d\\x0ab"');
    expect((await detailOf({ alg: 'X"Y' })).detail).toBe('alg "X\\"Y" not allowed');
  });
});
