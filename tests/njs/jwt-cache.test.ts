// The verified-token cache (njs/lib/jwtcache.ts) under Node, with a Map standing in for the
// nginx shared dict: what an entry may be served for, and what its key is made of. The
// behaviour through real nginx (expiry, tampering, rotation, roles) is in tests/auth/jwt-cache.test.ts.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { RAW_KEY_MAX, TIMED_MARGIN_MS, TIMED_MARK, cacheDeadline, cacheGet, cacheKey, cachePut, perEntryTimeouts, type JwtCacheDict } from '../../njs/lib/jwtcache.ts';
import { buildAuthPreload, cacheGeneration } from '../../src/njs/preload.ts';

const NOW = 1_800_000_000;
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl';

function dict(): JwtCacheDict & { data: Map<string, string>; timeouts: Map<string, number | undefined> } {
  const data = new Map<string, string>();
  const timeouts = new Map<string, number | undefined>();
  return {
    data,
    timeouts,
    get: (k) => data.get(k),
    set: (k, v, t) => {
      data.set(k, v);
      timeouts.set(k, t);
    },
  };
}
const id = { client: 'user-1', role: 'reader', tier: 'free', payload: 'eyJzdWIiOiJ1c2VyLTEifQ' };

describe('cache key', () => {
  it('is the generation and the whole Authorization header as sent', () => {
    const k = cacheKey('gen1', `Bearer ${TOKEN}`);
    expect(k).toBe(`gen1.Bearer ${TOKEN}`);
    expect(cacheKey('gen1', `Bearer ${TOKEN}x`)).not.toBe(k); // a changed token has another key
    expect(cacheKey('gen1', `bearer ${TOKEN}`)).not.toBe(k); // so has another spelling of the header
    expect(cacheKey('gen2', `Bearer ${TOKEN}`)).not.toBe(k); // another generation finds nothing
  });

  it('is the SHA-256 of the header past RAW_KEY_MAX characters, under another separator', () => {
    const at = `Bearer ${'a'.repeat(RAW_KEY_MAX - 7)}`;
    expect(at.length).toBe(RAW_KEY_MAX);
    expect(cacheKey('gen1', at)).toBe(`gen1.${at}`);
    const past = `${at}b`;
    const digest = createHash('sha256').update(past).digest('base64url');
    expect(cacheKey('gen1', past)).toBe(`gen1:${digest}`);
    // a short header spelled as that digest is a raw key: it can never find the digest entry
    expect(cacheKey('gen1', digest)).not.toBe(cacheKey('gen1', past));
  });

  it('is always the SHA-256 of the header for a provider keyed by it (jwt_cache.key: sha256)', () => {
    const h = `Bearer ${TOKEN}`;
    const digest = createHash('sha256').update(h).digest('base64url');
    expect(cacheKey('gen1', h, true)).toBe(`gen1:${digest}`);
    expect(cacheKey('gen1', h, true)).not.toContain(TOKEN);
    expect(cacheKey('gen1', h, false)).toBe(`gen1.${h}`);
  });

  it('generations have one length, so the separator always sits at the same place', () => {
    // 22 characters of base64url: never a "." or ":" inside, so "gen.header" and "gen:digest"
    // of two generations cannot meet either
    expect(cacheGeneration('a', {} as never)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(cacheGeneration('a-much-longer-provider-name', { algorithms: ['RS256'] } as never)).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe('deadline = min(exp + leeway, now + ttl)', () => {
  it('an exp before the ttl bounds the entry, with the provider leeway', () => {
    expect(cacheDeadline({ exp: NOW + 10 }, 0, 300, NOW)).toBe(NOW + 10);
    expect(cacheDeadline({ exp: NOW + 10 }, 5, 300, NOW)).toBe(NOW + 15);
    expect(cacheDeadline({ exp: NOW + 3600 }, 5, 300, NOW)).toBe(NOW + 300);
    expect(cacheDeadline({}, 0, 300, NOW)).toBe(NOW + 300); // require_exp: false
  });
});

describe('cacheGet', () => {
  it('serves an entry only while now < deadline (the claim check accepts until exp + leeway)', () => {
    const d = dict();
    const key = cacheKey('g', TOKEN);
    cachePut(d, key, NOW + 10, id, NOW);
    expect(d.timeouts.get(key)).toBe(10_000); // the dict drops it then as well
    expect(cacheGet(d, key, NOW)).toEqual(id);
    expect(cacheGet(d, key, NOW + 9)).toEqual(id);
    expect(cacheGet(d, key, NOW + 10)).toBeNull();
    expect(cacheGet(d, key, NOW + 11)).toBeNull();
    expect(cacheGet(d, cacheKey('g', TOKEN + 'a'), NOW)).toBeNull();
  });

  it('never stores an identity whose deadline has passed', () => {
    const d = dict();
    cachePut(d, 'k', NOW, id, NOW);
    cachePut(d, 'k2', NOW - 1, id, NOW);
    expect(d.data.size).toBe(0);
  });

  it('stores the identity newline-separated and reads it back field by field', () => {
    const d = dict();
    const id = { client: 'alice smith', role: 'admin,ops', tier: '', payload: 'eyJzdWIiOiJhIn0' };
    cachePut(d, 'k', NOW + 60, id, NOW);
    expect(d.data.get('k')).toBe(`${NOW + 60}\nalice smith\nadmin,ops\n\neyJzdWIiOiJhIn0`);
    expect(cacheGet(d, 'k', NOW + 59)).toEqual(id);
    // a value holding a newline is never stored (identity values are printable ASCII)
    cachePut(d, 'k2', NOW + 60, { ...id, client: 'a\nb' }, NOW);
    expect(d.data.has('k2')).toBe(false);
  });

  it('an unreadable entry is a miss (full verification), never an identity', () => {
    const d = dict();
    const bads = [
      '', 'x', '{}', 'null',
      `[${NOW + 9},"a","b","c","d"]`, // the JSON entries of older builds (another cache generation anyway)
      `${NOW + 9}\na\nb\nc`, // four fields
      `${NOW + 9}\na\nb\nc\nd\ne`, // six
      `x${NOW + 9}\na\nb\nc\nd`, // deadline not a number
      `\na\nb\nc\nd`, // no deadline
      `${NOW}\na\nb\nc\nd`, // stale: now is not before the deadline
    ];
    for (const bad of bads) {
      d.data.set('k', bad);
      expect(cacheGet(d, 'k', NOW), bad).toBeNull();
    }
  });

  it('a timed entry (the dict takes a timeout per entry) ends TIMED_MARGIN_MS before its deadline, by the dict', () => {
    const d = dict();
    const nowMs = NOW * 1000 + 250;
    cachePut(d, 'k', NOW + 60, id, NOW, nowMs);
    expect(d.data.get('k')).toBe(`${NOW + 60}\nuser-1\nreader\nfree\neyJzdWIiOiJ1c2VyLTEifQ\n${TIMED_MARK}`);
    // from the precise clock, not the second: never past the deadline
    expect(d.timeouts.get('k')).toBe((NOW + 60) * 1000 - nowMs - TIMED_MARGIN_MS);
    // the full handler reads it as any entry, deadline and all
    expect(cacheGet(d, 'k', NOW + 59)).toEqual(id);
    expect(cacheGet(d, 'k', NOW + 60)).toBeNull();
    // less than the margin left: not cached
    cachePut(d, 'k2', NOW + 1, id, NOW, (NOW + 1) * 1000 - TIMED_MARGIN_MS);
    cachePut(d, 'k3', NOW + 1, id, NOW, (NOW + 1) * 1000 - TIMED_MARGIN_MS - 1);
    expect(d.data.has('k2')).toBe(false);
    expect(d.timeouts.get('k3')).toBe(1);
    // whole milliseconds, rounded down, from a fractional clock or deadline
    cachePut(d, 'k5', NOW + 60, id, NOW, NOW * 1000 + 250.75);
    expect(d.timeouts.get('k5')).toBe(58_749);
    cachePut(d, 'k6', NOW + 60.5, id, NOW, NOW * 1000 + 250.25);
    expect(d.timeouts.get('k6')).toBe(59_249);
    // a sixth field other than the mark is no entry
    d.data.set('k4', `${NOW + 60}\na\nb\nc\nd\n${TIMED_MARK}x`);
    expect(cacheGet(d, 'k4', NOW)).toBeNull();
  });

  it('entries are timed on njs 0.8.5 and later, whose dict takes a timeout per entry', () => {
    expect(perEntryTimeouts(0x000805)).toBe(true);
    expect(perEntryTimeouts(0x000809)).toBe(true);
    expect(perEntryTimeouts(0x010002)).toBe(true);
    expect(perEntryTimeouts(0x000804)).toBe(false);
    expect(perEntryTimeouts(0x000800)).toBe(false);
    expect(perEntryTimeouts(undefined)).toBe(false);
    expect(perEntryTimeouts('0.8.9')).toBe(false);
  });

  it('a dict that refuses the value only means no caching', () => {
    const full: JwtCacheDict = {
      get: () => undefined,
      set: () => {
        throw new Error('SharedMemoryError');
      },
    };
    expect(() => cachePut(full, 'k', NOW + 5, id, NOW)).not.toThrow();
  });
});

describe('generation (preload object)', () => {
  const base = { name: 'p', algorithms: ['HS256'], secrets: [{ secret: 's'.repeat(32) }], roleClaim: 'role' };
  const gen = (input: typeof base & Record<string, unknown>) => buildAuthPreload([input], { jwtCacheTtl: 300 }).jwt.p.cacheGen;

  it('changes with the secret, the keys and every policy field; absent when the cache is off', () => {
    const g = gen(base);
    expect(g).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(gen(base)).toBe(g);
    expect(gen({ ...base, secrets: [{ secret: 't'.repeat(32) }] })).not.toBe(g);
    expect(gen({ ...base, issuer: ['https://other'] })).not.toBe(g);
    expect(gen({ ...base, audience: ['api'] })).not.toBe(g);
    expect(gen({ ...base, leeway: 5 })).not.toBe(g);
    expect(gen({ ...base, roleClaim: 'roles' })).not.toBe(g);
    expect(gen({ ...base, requiredClaims: ['sub'] })).not.toBe(g);
    expect(buildAuthPreload([base]).jwt.p.cacheGen).toBeUndefined();
    const out = buildAuthPreload([base], { jwtCacheTtl: 300 }).jwt.p;
    expect(out.cacheTtl).toBe(300);
    const { cacheGen: _g, cacheTtl: _t, ...rest } = out;
    expect(cacheGeneration('p', rest)).toBe(g);
    expect(cacheGeneration('q', rest)).not.toBe(g); // another provider with the same keys
  });
});
