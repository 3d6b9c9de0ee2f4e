// The handlers' fast paths (njs/lib/handlers.ts, apiKeyFast / jwtSyncFast / jwtCachedFast) run
// next to the full handlers on the same inputs: where the fast path decides, it returns what
// the full handler returns and leaves the same variables; anything else it hands to the full
// handler untouched. Engine-neutral code under Node; the same bundles run in real nginx in
// tests/njs/nginx-auth.test.ts, tests/auth/ and tests/routing/auth-keys-nginx.test.ts.
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apiKey, apiKeyFast, jwtCached, jwtCachedFast, jwtSync, jwtSyncFast } from '../../njs/lib/handlers.ts';
import { cacheKey, cachePut, JWT_CACHE_ZONE } from '../../njs/lib/jwtcache.ts';

type Vars = Record<string, string | undefined>;

/** A request whose $gw_key_meta is the key map of `keys` (hash -> meta), as nginx evaluates it when read. */
function request(vars: Vars, headers: Record<string, string>, keys: Record<string, string> = {}) {
  const written: Vars = {};
  const variables = new Proxy(vars, {
    get: (t, k: string) => (k === 'gw_key_meta' ? (keys[t.gw_key_hash ?? ''] ?? '') : t[k]),
    set: (t, k: string, v: string) => {
      t[k] = v;
      written[k] = v;
      return true;
    },
  });
  return { r: { variables, headersIn: headers, log() {}, error() {}, warn() {} } as unknown as NginxHTTPRequest, written };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const KEY = 'gw_live_' + 'k'.repeat(43);
const NOW = Math.floor(Date.now() / 1000);

describe('apiKeyFast', () => {
  const metas = [
    'alice|||0',
    'alice|||',
    'alice|admin,ops|gold|0',
    'alice||gold|0',
    `alice|||${NOW + 3600}`,
    `alice|||${NOW - 1}`,
    `alice|||${NOW}`,
    '',
    'alice||0',
    'alice|a|b|c|0',
    '|||0',
    'alice|||x',
    'alice|||1.5',
    'alice|||-5',
    'alice|||Infinity',
    'alice||| 7',
  ];
  for (const meta of metas) {
    it(`decides like the full handler on key metadata ${JSON.stringify(meta)}`, () => {
      const keys = { [sha(KEY)]: meta };
      const full = request({ gw_key_fast: KEY }, { 'X-API-Key': KEY }, keys);
      const fast = request({ gw_key_fast: KEY }, { 'X-API-Key': KEY }, keys);
      let delegated = 0;
      const got = apiKeyFast(fast.r, (r) => (delegated++, apiKey(r)));
      expect(got).toBe(apiKey(full.r));
      expect(fast.written).toEqual(full.written);
      expect(delegated).toBe(0);
    });
  }

  it('hands a request without a well-formed presented key to the full handler, untouched', () => {
    for (const headers of [{}, { 'X-API-Key': '  padded-key-value  ' }, { Authorization: 'bearer   lower-case-scheme' }]) {
      const fast = request({ gw_key_fast: '' }, headers);
      const full = request({ gw_key_fast: '' }, headers);
      let seen: NginxHTTPRequest | null = null;
      expect(apiKeyFast(fast.r, (r) => ((seen = r), 'FULL'))).toBe('FULL');
      expect(seen).toBe(fast.r);
      expect(fast.written).toEqual({});
      expect(apiKey(full.r)).not.toBe('ok'); // (no key map entry: the full handler refuses them)
    }
  });
});

describe('jwtSyncFast / jwtCachedFast', () => {
  const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMDEyMzQ1Njc4OWFi';
  const GEN = 'gen0123456789abcdefghi';
  let data: Map<string, string>;
  const g = globalThis as unknown as { ngx?: unknown; gw_auth?: unknown };

  beforeEach(() => {
    data = new Map();
    g.ngx = { shared: { [JWT_CACHE_ZONE]: { get: (k: string) => data.get(k), set: (k: string, v: string) => data.set(k, v) } } };
    g.gw_auth = { version: 1, jwt: { p: { algorithms: ['HS256'], keys: [], cacheGen: GEN, cacheTtl: 300, maxLength: 4096 } } };
  });
  afterEach(() => {
    delete g.ngx;
    delete g.gw_auth;
  });

  const put = (token: string, id: { client: string; role: string; tier: string }, deadline: number) =>
    cachePut({ get: (k) => data.get(k), set: (k, v) => data.set(k, v) }, cacheKey(GEN, token), deadline, { ...id, payload: token.split('.')[1] }, NOW);
  const pair = (auth: string, fastGen = GEN) => ({
    fast: request({ gw_jwt_provider: 'p', gw_jwt_fast: fastGen }, { Authorization: auth }),
    full: request({ gw_jwt_provider: 'p', gw_jwt_fast: fastGen }, { Authorization: auth }),
  });

  for (const [name, fastFn, fullFn] of [
    ['jwtSync', jwtSyncFast, jwtSync],
    ['jwtCached', jwtCachedFast, jwtCached],
  ] as const) {
    it(`${name}: a cached token is answered as the full handler answers it, identity and all`, () => {
      for (const id of [
        { client: 'alice', role: '', tier: '' },
        { client: 'bob smith', role: 'admin,ops', tier: 'gold' },
      ]) {
        data.clear();
        put(TOKEN, id, NOW + 60);
        const { fast, full } = pair(`Bearer ${TOKEN}`);
        let delegated = 0;
        expect(fastFn(fast.r, (r) => (delegated++, fullFn(r)))).toBe('ok');
        expect(fullFn(full.r)).toBe('ok');
        expect(delegated).toBe(0);
        // the full jwtSync leaves $gw_auth_status to its caller's write of the same "ok"
        expect({ gw_auth_status: 'ok', ...fast.written }).toEqual({ gw_auth_status: 'ok', ...full.written });
        expect(fast.written.gw_client_id).toBe(id.client);
        expect(fast.written.gw_jwt_cache).toBe('hit');
      }
    });

    it(`${name}: anything but a live entry for the exact canonical header goes to the full handler, untouched`, () => {
      put(TOKEN, { client: 'alice', role: '', tier: '' }, NOW + 60);
      put(`${TOKEN}x`, { client: 'stale', role: '', tier: '' }, NOW + 1);
      data.set(cacheKey(GEN, `${TOKEN}x`), `${NOW}\nstale\n\n\n${TOKEN.split('.')[1]}`); // deadline reached
      data.set(cacheKey(GEN, `${TOKEN}y`), `[${NOW + 60},"old","","","p"]`); // not an entry of this format
      const cases: [string, string][] = [
        [`bearer ${TOKEN}`, GEN], // another spelling of the scheme: the full extraction
        [`Bearer ${TOKEN} `, GEN], // trailing space: hashes to no entry
        [`Bearer  ${TOKEN}`, GEN],
        [`Bearer ${TOKEN}x`, GEN], // stale
        [`Bearer ${TOKEN}y`, GEN], // unreadable
        [`Bearer other.token.value`, GEN], // never verified
        [`Bearer ${TOKEN}`, ''], // no fast path for this provider (cache off, or a claim feeds a hash key)
        [`Bearer ${TOKEN}`, 'another-generation-000'], // rotated keys or policy
      ];
      for (const [auth, gen] of cases) {
        const { fast } = pair(auth, gen);
        let seen: NginxHTTPRequest | null = null;
        expect(fastFn(fast.r, (r) => ((seen = r), 'FULL')), auth).toBe('FULL');
        expect(seen).toBe(fast.r);
        expect(fast.written, auth).toEqual({});
      }
    });
  }

  it('without the cache dict the full handler decides', () => {
    g.ngx = { shared: {} };
    const { fast } = pair(`Bearer ${TOKEN}`);
    expect(jwtSyncFast(fast.r, () => 'FULL')).toBe('FULL');
    expect(jwtCachedFast(fast.r, () => 'FULL')).toBe('FULL');
  });
});
