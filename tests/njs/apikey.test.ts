// API-key helpers of the njs module, and identity sanitising (engine-neutral code).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decideApiKey, decidePresentedKey, extractApiKey, extractBearer, hashApiKey, isWellFormedKey, parseKeyMeta } from '../../njs/lib/apikey.ts';
import { providerName, safeIdentity, safeRole } from '../../njs/lib/identity.ts';

describe('decidePresentedKey', () => {
  it('the key map decides first; only a key it does not accept is classed as malformed or unknown', () => {
    const looked: string[] = [];
    const lookup = (answer: string) => (k: string) => (looked.push(k), answer);
    expect(decidePresentedKey(null, lookup('ok'))).toBe('missing_key');
    expect(decidePresentedKey('short', lookup('ok'))).toBe('ok');
    expect(decidePresentedKey('short', lookup('expired_key'))).toBe('expired_key');
    expect(decidePresentedKey('short', lookup('unknown_key'))).toBe('malformed_key');
    expect(decidePresentedKey('has space inside', lookup('unknown_key'))).toBe('malformed_key');
    expect(decidePresentedKey('gw_live_' + 'A'.repeat(43), lookup('unknown_key'))).toBe('unknown_key');
    expect(decidePresentedKey('x'.repeat(256), lookup('ok'))).toBe('ok');
    expect(looked).toEqual(['short', 'short', 'short', 'has space inside', 'gw_live_' + 'A'.repeat(43), 'x'.repeat(256)]);
    // longer than 256 characters: malformed, never looked up (hashed)
    expect(decidePresentedKey('x'.repeat(257), lookup('ok'))).toBe('malformed_key');
    expect(looked).toHaveLength(6);
  });
});

describe('extractApiKey', () => {
  it('configured header first, then Authorization: Bearer', () => {
    expect(extractApiKey('Bearer tok_from_auth', 'hdr_key')).toBe('hdr_key');
    expect(extractApiKey('Bearer tok_from_auth', undefined)).toBe('tok_from_auth');
    expect(extractApiKey('bearer   tok', '   ')).toBe('tok');
    expect(extractApiKey('Basic dXNlcjpwYXNz', undefined)).toBeNull();
    expect(extractApiKey(undefined, undefined)).toBeNull();
    expect(extractApiKey('Bearer', undefined)).toBeNull();
    expect(extractApiKey('Bearer a b', undefined)).toBeNull();
    expect(extractApiKey(undefined, '  padded  ')).toBe('padded');
  });
  it('extractBearer', () => {
    expect(extractBearer('BEARER abc.def.ghi')).toBe('abc.def.ghi');
    expect(extractBearer('Bearerabc')).toBeNull();
  });
  it('key syntax', () => {
    expect(isWellFormedKey('gw_live_' + 'A'.repeat(43))).toBe(true);
    expect(isWellFormedKey('short')).toBe(false);
    expect(isWellFormedKey('x'.repeat(257))).toBe(false);
    expect(isWellFormedKey('has space inside')).toBe(false);
    expect(isWellFormedKey('quote"inside-key')).toBe(false);
  });
});

describe('hash and metadata', () => {
  it('sha256 hex', () => {
    expect(hashApiKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashApiKey('gw_live_x')).toBe(createHash('sha256').update('gw_live_x').digest('hex'));
  });
  it('parseKeyMeta', () => {
    expect(parseKeyMeta('alice|admin|gold|0')).toEqual({ client: 'alice', role: 'admin', tier: 'gold', expires: 0 });
    expect(parseKeyMeta('bob|||1700000000')).toEqual({ client: 'bob', role: '', tier: '', expires: 1700000000 });
    expect(parseKeyMeta('bob')).toEqual({ client: 'bob', role: '', tier: '', expires: 0 }); // the short form
    expect(parseKeyMeta('!')).toBeNull(); // revoked in the store (live keys)
    expect(parseKeyMeta('bob|')).toBeNull();
    expect(parseKeyMeta('')).toBeNull();
    expect(parseKeyMeta(undefined)).toBeNull();
    expect(parseKeyMeta('a|b|c')).toBeNull();
    expect(parseKeyMeta('|b|c|0')).toBeNull();
    expect(parseKeyMeta('a|b|c|soon')).toBeNull();
    expect(parseKeyMeta('a|b|c|-5')).toBeNull();
  });
  it('decideApiKey', () => {
    expect(decideApiKey('alice|admin|gold|0', 2e9)).toEqual({ ok: true, meta: { client: 'alice', role: 'admin', tier: 'gold', expires: 0 } });
    expect(decideApiKey('alice|admin|gold|1000', 999).ok).toBe(true);
    expect(decideApiKey('alice|admin|gold|1000', 1000)).toEqual({ ok: false, reason: 'expired_key' });
    expect(decideApiKey('', 1)).toEqual({ ok: false, reason: 'unknown_key' });
  });
});

describe('identity', () => {
  it('safeIdentity keeps header-safe values only', () => {
    expect(safeIdentity('user-42')).toBe('user-42');
    expect(safeIdentity('a b')).toBe('a b');
    expect(safeIdentity(42)).toBe('42');
    expect(safeIdentity(['a', 'b'])).toBe('a,b');
    expect(safeIdentity('evil\r\nX-Admin: 1')).toBeNull();
    expect(safeIdentity(' lead')).toBeNull();
    expect(safeIdentity('ünïcode')).toBeNull();
    expect(safeIdentity('')).toBeNull();
    expect(safeIdentity('x'.repeat(257))).toBeNull();
    expect(safeIdentity({ a: 1 })).toBeNull();
    expect(safeIdentity(['a,b'])).toBeNull();
    expect(safeIdentity(true)).toBeNull();
  });
  it('safeRole: a string is one role, a list is several; a comma never splits a string', () => {
    expect(safeRole('admin')).toBe('admin');
    expect(safeRole(['user', 'admin'])).toBe('user,admin');
    expect(safeRole('user,admin')).toBeNull(); // would read as two roles in $gw_client_role
    expect(safeRole(',admin')).toBeNull();
    expect(safeRole('user admin')).toBe('user admin'); // one role, matches neither "user" nor "admin"
    expect(safeRole(['user,admin'])).toBeNull();
    expect(safeRole('evil\r\nX: 1')).toBeNull();
  });
  it('providerName', () => {
    expect(providerName('/_gw_auth/jwt/main')).toBe('main');
  });
});
