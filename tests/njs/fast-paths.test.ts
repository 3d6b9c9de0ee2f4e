// The handlers' fast paths (njs/lib/handlers.ts, apiKeyFast / jwtSyncFast / jwtCachedFast) run
// next to the full handlers on the same inputs: where the fast path decides, it returns what
// the full handler returns and leaves the same variables; anything else it hands to the full
// handler untouched. Engine-neutral code under Node; the same bundles run in real nginx in
// tests/njs/nginx-auth.test.ts, tests/auth/ and tests/routing/auth-keys-nginx.test.ts.
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cacheKey, cachePut, JWT_CACHE_ZONE, RAW_KEY_MAX, TIMED_MARK } from '../../njs/lib/jwtcache.ts';
import { DEFAULT_BUCKETS } from '../../src/features/metrics/index.ts';

// handlers.ts and routing.ts bring njs-types (whose global `process` is not Node's) into any
// program that imports them by name: loaded by a computed path, so this file stays a Node one.
type NginxHTTPRequest = { variables: Record<string, string | undefined> } & Record<string, unknown>;
type Handler = (r: NginxHTTPRequest) => string;
type Fast = (r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => unknown) => string;
const njsLib = (name: string): Promise<Record<string, unknown>> => import(`../../njs/lib/${name}.ts`);
const { apiKey, apiKeyFast, jwtCached, jwtCachedFast, jwtSync, jwtSyncFast } = (await njsLib('handlers')) as Record<'apiKey' | 'jwtCached' | 'jwtSync', Handler> &
  Record<'apiKeyFast' | 'jwtCachedFast' | 'jwtSyncFast', Fast>;
const { route, routeFast } = (await njsLib('routing')) as { route: (r: NginxHTTPRequest) => void; routeFast: (r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => void) => void };

type Flags = { last: boolean };
type BodyFull = (r: NginxHTTPRequest, data: Buffer, flags: Flags) => void;
const { llmBody, llmBodyFast } = (await njsLib('llm')) as { llmBody: BodyFull; llmBodyFast: (r: NginxHTTPRequest, full: BodyFull, data: Buffer, flags: Flags) => void };

type Vars = Record<string, string | undefined>;

/** A request whose $gw_key_meta is the key map of `keys` (hash -> meta), as nginx evaluates it when read. */
function request(vars: Vars, headers: Record<string, string>, keys: Record<string, string> = {}, maps: Record<string, (v: Vars) => string> = {}) {
  const written: Vars = {};
  const variables = new Proxy(vars, {
    get: (t, k: string) => (k === 'gw_key_meta' ? (keys[t.gw_key_hash ?? ''] ?? '') : maps[k] ? maps[k](t) : t[k]),
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
    'alice', // no role, tier or expiry: the client name alone
    '!', // revoked in the store (live keys on)
    'alice|',
    'alice|||',
    'alice|admin,ops|gold|0',
    'alice||gold|0',
    `alice|||${NOW + 3600}`,
    `alice|||${NOW - 1}`,
    `alice|||${NOW}`,
    '',
    'alice||0',
    'alice|a|b|c|0',
    'alice|a|b|0|0', // five fields, the fourth a valid expiry
    'alice|||0|',
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
      const full = request({ gw_key_presented: KEY }, { 'X-API-Key': KEY }, keys);
      const fast = request({ gw_key_presented: KEY }, { 'X-API-Key': KEY }, keys);
      let delegated = 0;
      const got = apiKeyFast(fast.r, (r) => (delegated++, apiKey(r)));
      const want = apiKey(full.r);
      expect(got).toBe(want);
      expect(fast.written).toEqual(full.written);
      // metadata the key map's writer produces is decided here; anything else the full handler reads
      expect(delegated).toBe(want === 'ok' || want === 'expired_key' ? 0 : 1);
    });
  }

  // [what nginx's candidate maps hold, the request's headers, the key map, the answer]
  const handed: [Vars, Record<string, string>, Record<string, string>, string][] = [
    [{ gw_key_presented: '', gw_key_bearer: '' }, {}, {}, 'missing_key'],
    [{ gw_key_presented: 'short' }, { 'X-API-Key': 'short' }, {}, 'malformed_key'],
    [{ gw_key_presented: 'k'.repeat(257) }, { 'X-API-Key': 'k'.repeat(257) }, { [sha('k'.repeat(257))]: 'alice|||0' }, 'malformed_key'],
    [{ gw_key_presented: `${KEY} x` }, { 'X-API-Key': `${KEY} x` }, { [sha(KEY)]: 'alice|||0' }, 'malformed_key'],
    [{ gw_key_presented: KEY }, { 'X-API-Key': KEY }, {}, 'unknown_key'],
    // the key header is not the presented key njs extracts (a repeated header, say): njs decides
    [{ gw_key_presented: `${KEY}, other` }, { 'X-API-Key': KEY }, { [sha(KEY)]: 'alice|||0' }, 'ok'],
    // a bearer token that is not plainly one key token: njs's extraction decides
    [{ gw_key_presented: '', gw_key_bearer: '' }, { Authorization: `Bearer ${KEY} extra` }, { [sha(KEY)]: 'alice|||0' }, 'missing_key'],
  ];
  for (const [vars, headers, keys, answer] of handed) {
    it(`hands ${JSON.stringify(vars).slice(0, 60)} to the full handler, which answers ${answer}, with its end state`, () => {
      const fast = request({ ...vars }, headers, keys);
      const full = request({ ...vars }, headers, keys);
      let delegated = 0;
      expect(apiKeyFast(fast.r, (r) => (delegated++, apiKey(r)))).toBe(answer);
      expect(apiKey(full.r)).toBe(answer);
      expect(delegated).toBe(1);
      expect(fast.written).toEqual(full.written);
      expect(fast.written.gw_client_id).toBe(answer === 'ok' ? 'alice' : undefined);
    });
  }

  it('hashes nginx\'s bearer candidate when there is no key header', () => {
    const keys = { [sha(KEY)]: 'bob|reader||0' };
    const fast = request({ gw_key_presented: '', gw_key_bearer: KEY }, { Authorization: `bearer   ${KEY}` }, keys);
    const full = request({ gw_key_presented: '', gw_key_bearer: KEY }, { Authorization: `bearer   ${KEY}` }, keys);
    expect(apiKeyFast(fast.r, () => 'FULL')).toBe('ok');
    expect(apiKey(full.r)).toBe('ok');
    expect(fast.written).toEqual(full.written);
    expect(fast.written).toMatchObject({ gw_client_id: 'bob', gw_client_role: 'reader' });
    // an accepted key writes no status (the access log reads "ok" from the written hash)
    expect(fast.written).not.toHaveProperty('gw_auth_status');
  });

  it('accepts a key whose hash is in the key map whatever it looks like, on both paths; never hashes one over 256 characters', () => {
    for (const odd of ['short', 'has space', 'k'.repeat(256)]) {
      const keys = { [sha(odd)]: 'carol|||0' };
      const fast = request({ gw_key_presented: odd }, { 'X-API-Key': odd }, keys);
      const full = request({ gw_key_presented: odd }, { 'X-API-Key': odd }, keys);
      expect(apiKeyFast(fast.r, () => 'FULL'), odd).toBe('ok');
      expect(apiKey(full.r), odd).toBe('ok');
      expect(fast.written).toEqual(full.written);
    }
    const long = request({ gw_key_presented: 'k'.repeat(257) }, { 'X-API-Key': 'k'.repeat(257) }, { [sha('k'.repeat(257))]: 'carol|||0' });
    expect(apiKey(long.r)).toBe('malformed_key');
    expect(long.written.gw_key_hash).toBeUndefined();
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

  // timedNowMs: store a timed entry (njs >= 0.8.5), as the full handler does there
  const put = (token: string, id: { client: string; role: string; tier: string }, deadline: number, timedNowMs?: number) =>
    cachePut({ get: (k) => data.get(k), set: (k, v) => data.set(k, v) }, cacheKey(GEN, `Bearer ${token}`), deadline, { ...id, payload: token.split('.')[1] }, NOW, timedNowMs);
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
        // an accepted token writes no $gw_auth_status on either path (the log reads "ok" from the identity)
        expect(fast.written).toEqual(full.written);
        expect(fast.written).not.toHaveProperty('gw_auth_status');
        expect(fast.written.gw_client_id).toBe(id.client);
        expect(fast.written.gw_jwt_cache).toBe('hit');
      }
    });

    it(`${name}: a timed entry is answered without reading the clock, as the full handler answers it; an untimed one reads it`, () => {
      const id = { client: 'bob smith', role: 'admin,ops', tier: 'gold' };
      const clock = vi.spyOn(Date, 'now');
      try {
        for (const timed of [true, false]) {
          data.clear();
          put(TOKEN, id, NOW + 60, timed ? Date.now() : undefined);
          expect([...data.values()][0].endsWith(`\n${TIMED_MARK}`)).toBe(timed);
          const { fast, full } = pair(`Bearer ${TOKEN}`);
          clock.mockClear();
          expect(fastFn(fast.r, () => 'FULL')).toBe('ok');
          expect(clock).toHaveBeenCalledTimes(timed ? 0 : 1);
          expect(fullFn(full.r)).toBe('ok');
          expect(fast.written).toEqual(full.written);
        }
      } finally {
        clock.mockRestore();
      }
    });

    it(`${name}: finds the entry the full handler stored under either kind of key (the header, or its SHA-256 past RAW_KEY_MAX)`, () => {
      for (const pad of [0, RAW_KEY_MAX]) {
        data.clear();
        const token = TOKEN + 'A'.repeat(pad); // only the key's kind matters here, not the signature
        put(token, { client: 'alice', role: '', tier: '' }, NOW + 60);
        expect([...data.keys()][0].startsWith(pad ? `${GEN}:` : `${GEN}.`)).toBe(true);
        const { fast } = pair(`Bearer ${token}`);
        let delegated = 0;
        expect(fastFn(fast.r, () => (delegated++, 'FULL'))).toBe('ok');
        expect(delegated).toBe(0);
        expect(fast.written.gw_client_id).toBe('alice');
      }
    });

    it(`${name}: anything but a live entry for the exact header goes to the full handler, untouched`, () => {
      put(TOKEN, { client: 'alice', role: '', tier: '' }, NOW + 60);
      put(`${TOKEN}x`, { client: 'stale', role: '', tier: '' }, NOW + 1);
      data.set(cacheKey(GEN, `Bearer ${TOKEN}x`), `${NOW}\nstale\n\n\n${TOKEN.split('.')[1]}`); // deadline reached
      data.set(cacheKey(GEN, `Bearer ${TOKEN}y`), `[${NOW + 60},"old","","","p"]`); // not an entry of this format
      data.set(cacheKey(GEN, `Bearer ${TOKEN}z`), `${NOW + 60}\nalice\n\n\n${TOKEN.split('.')[1]}\nextra`); // six fields, the sixth not the timed mark
      data.set(cacheKey(GEN, `Bearer ${TOKEN}w`), `${NOW + 60}\nalice\n\n${TOKEN.split('.')[1]}`); // four fields
      data.set(cacheKey(GEN, `Bearer ${TOKEN}v`), `\nalice\n\n\n${TOKEN.split('.')[1]}`); // no deadline
      const cases: [string, string][] = [
        [`bearer ${TOKEN}`, GEN], // another spelling of the scheme: its own entry, not verified yet
        [`Bearer ${TOKEN} `, GEN], // trailing space: hashes to no entry
        [`Bearer  ${TOKEN}`, GEN],
        [`Bearer ${TOKEN}x`, GEN], // stale
        [`Bearer ${TOKEN}y`, GEN], // unreadable
        [`Bearer ${TOKEN}z`, GEN],
        [`Bearer ${TOKEN}w`, GEN],
        [`Bearer ${TOKEN}v`, GEN],
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

  it('a provider keyed by the SHA-256 of the header (jwt_cache.key: sha256): its generation in $gw_jwt_fast_sha256 finds the entry the full handler stored', () => {
    g.gw_auth = { version: 1, jwt: { p: { algorithms: ['HS256'], keys: [], cacheGen: GEN, cacheTtl: 300, maxLength: 4096, cacheHashed: true } } };
    const auth = `Bearer ${TOKEN}`;
    cachePut({ get: (k) => data.get(k), set: (k, v) => data.set(k, v) }, cacheKey(GEN, auth, true), NOW + 60, { client: 'alice', role: 'admin', tier: '', payload: TOKEN.split('.')[1] }, NOW);
    expect([...data.keys()]).toEqual([`${GEN}:${createHash('sha256').update(auth).digest('base64url')}`]);
    for (const [name, fastFn, fullFn] of [
      ['jwtSync', jwtSyncFast, jwtSync],
      ['jwtCached', jwtCachedFast, jwtCached],
    ] as const) {
      const vars = { gw_jwt_provider: 'p', gw_jwt_fast: '', gw_jwt_fast_sha256: GEN };
      const fast = request(vars, { Authorization: auth });
      const full = request(vars, { Authorization: auth });
      let delegated = 0;
      expect(fastFn(fast.r, (r) => (delegated++, fullFn(r))), name).toBe('ok');
      expect(delegated, name).toBe(0);
      expect(fullFn(full.r), name).toBe('ok');
      expect(fast.written, name).toEqual(full.written);
      expect(fast.written.gw_client_role).toBe('admin');
      // the header-keyed spelling of the same generation finds nothing: another kind of key
      const other = request({ gw_jwt_provider: 'p', gw_jwt_fast: GEN }, { Authorization: auth });
      expect(fastFn(other.r, () => 'FULL'), name).toBe('FULL');
    }
  });

  it('without the cache dict the full handler decides', () => {
    g.ngx = { shared: {} };
    const { fast } = pair(`Bearer ${TOKEN}`);
    expect(jwtSyncFast(fast.r, () => 'FULL')).toBe('FULL');
    expect(jwtCachedFast(fast.r, () => 'FULL')).toBe('FULL');
  });
});

describe('routeFast', () => {
  /** what a route call did: the variables it wrote, where it redirected, what it answered */
  // $gw_model_upstream is the map over $gw_model: evaluated when read, after the handler wrote $gw_model
  const catalogue = { gw_model_upstream: (v: Vars) => (v.gw_model === 'gpt-4o' ? 'by_body' : '') };
  function call(fn: (r: NginxHTTPRequest) => void, body: string | undefined, vars: Vars) {
    const { r, written } = request({ ...vars }, {}, {}, catalogue);
    const did: string[] = [];
    Object.assign(r, {
      requestText: body,
      headersOut: {},
      internalRedirect: (to: string) => did.push(`redirect ${to}`),
      return: (status: number, text?: string) => did.push(`return ${status} ${text ?? ''}`),
    });
    fn(r);
    return { written, did };
  }
  const model = { gw_route_mode: 'model', gw_route_next: '', gw_route_chain: '@gw_next_chat', gw_model_chain: '' };
  const bodies = [
    '{"model":"gpt-4o","user":"u1","messages":[]}',
    '{"model":"gpt-4o","user":7}',
    '{"model":"gpt-4o","user":true}',
    '{"model":"gpt-4o","user":{"id":1}}',
    '{"model":"gpt-4o"}',
    `{"model":"gpt-4o","user":"${'x'.repeat(600)}"}`,
    '{"model":"gpt-4o","user":"constructor","constructor":"own"}',
    '{"model":"","user":"u"}',
    '{"model":5}',
    '{"user":"u"}',
    '{"model":"nope","user":"u"}',
    '[1,2]',
    '{"length":3,"model":"gpt-4o"}',
    'not json',
    '',
    undefined,
  ];
  const cases: [string, Vars][] = [
    ['a model route hashing on a body field', { ...model, gw_model_hash: 'body:user' }],
    ['a model route hashing on "constructor"', { ...model, gw_model_hash: 'body:constructor' }],
    ['a model route without a hash', { ...model, gw_model_hash: '' }],
    ['a model route hashing on a prompt prefix', { ...model, gw_model_hash: 'prefix:64' }],
    ['a model route of a catalogue with chains', { ...model, gw_model_chain: '_m1', gw_model_hash: '' }],
    ['a body-hash route', { gw_route_next: '@gw_next_body', gw_hash_spec: 'body:user' }],
  ];
  for (const [name, vars] of cases) {
    it(`${name}: the same writes and the same redirect or answer as the full handler`, () => {
      const seen = new Set<string>();
      for (const body of bodies) {
        const full = call((r) => route(r), body, vars);
        const fast = call((r) => routeFast(r, route), body, vars);
        expect(fast.did, `${body}`).toEqual(full.did);
        expect(fast.written, `${body}`).toEqual(full.written);
        expect(full.did).toHaveLength(1);
        seen.add(full.did[0].replace(/ \{.*/s, ''));
      }
      // the bodies reach every outcome: redirected, and on model routes refused (not JSON, no model: 400; unknown: 404)
      if (vars.gw_route_mode === 'model') expect([...seen].sort()).toEqual(expect.arrayContaining(['return 400', 'return 404']));
      expect([...seen].some((x) => x.startsWith('redirect @gw_next_'))).toBe(true);
    });
  }

  it('decides the common requests itself and hands the others over before redirecting', () => {
    const vars = { ...model, gw_model_hash: 'body:user' };
    let delegated = 0;
    const count = (r: NginxHTTPRequest) => void delegated++;
    expect(call((r) => routeFast(r, count), '{"model":"gpt-4o","user":"u1"}', vars).did).toEqual(['redirect @gw_next_chat']);
    expect(delegated).toBe(0);
    for (const body of ['{"model":"gpt-4o","user":7}', '[1]', 'x', '{"model":""}']) {
      expect(call((r) => routeFast(r, count), body, vars).did).toEqual([]);
    }
    expect(call((r) => routeFast(r, count), '{"model":"gpt-4o"}', { ...vars, gw_budgets: '1' }).did).toEqual([]);
    expect(delegated).toBe(5);
  });
});

describe('metricsLogFast / metricsBreakerLogFast', () => {
  const g = globalThis as unknown as { ngx?: unknown; gw_metrics_conf?: unknown };
  afterEach(() => {
    delete g.ngx;
    delete g.gw_metrics_conf;
  });
  type Log = (r: NginxHTTPRequest, pre?: string[], counted?: string) => string;
  type LogFast = (r: NginxHTTPRequest, full: Log) => string;
  const lib = async () => (await njsLib('metrics')) as Record<'metricsLog' | 'metricsBreakerLog', Log> & Record<'metricsLogFast' | 'metricsBreakerLogFast', LogFast>;
  // $gw_metrics_in as src/features/metrics renders it: seven fields on a plain route (default
  // bounds, no budgets), twelve otherwise
  const plain = (route: string, status: string, rt: string, urt: string, up = 'rr', method = 'GET') => `r|${route}|${method}|${status}|${up};${route};${status};${rt};${urt};120;410`;
  const long = (route: string, status: string, rt: string, urt: string, rest: string) => `${plain(route, status, rt, urt)};${rest}`;
  const DEFAULT = ';;;0.005;';
  const requests: Array<[string, string]> = [
    ['a fast request', plain('a', '200', '0.000', '0.000')],
    ['the same again', plain('a', '200', '0.000', '0.000')],
    ['a 60 ms request', plain('a', '200', '0.060', '0.058')],
    ['a 1.2 s request', plain('a', '200', '1.200', '1.198')],
    ['a request over the last bound', plain('a', '200', '75.000', '74.900')],
    ['not proxied', plain('a', '204', '0.000', '', 'none')],
    ['a redirect', plain('b', '301', '0.001', '', 'none', 'HEAD')],
    ['two tries', plain('a', '200', '0.020', '0.010, 0.003')],
    ['no try answered', plain('a', '200', '0.020', '-')],
    ['a redirect between tries', plain('a', '200', '0.020', '0.010 : 0.002')],
    ['a 404', plain('-', '404', '0.000', '', 'none')],
    ['a 502', plain('a', '502', '0.100', '0.100')],
    ['a 429', plain('a', '429', '0.000', '', 'none')],
    ['another method', plain('a', '200', '0.004', '0.003', 'rr', 'OTHER')],
    ['a cached route', long('c', '200', '0.002', '0.001', `cache1;${DEFAULT}`)],
    ['an LLM route', long('l', '200', '0.300', '0.290', `;1${DEFAULT}`)],
    ['custom bounds', long('a', '200', '0.300', '0.290', ';;;0.1;0.1,1,10')],
    ['token budgets on', long('a', '200', '0.010', '0.009', ';;1;0.005;')],
  ];
  function run(handler: (r: NginxHTTPRequest) => string, lines: string[], maxSeries: number) {
    const data = new Map<string, number>();
    const incr = (k: string, n: number, init = 0) => (data.set(k, (data.has(k) ? data.get(k)! : init) + n), data.get(k)!);
    g.ngx = { shared: { gw_metrics: { get: (k: string) => data.get(k), incr, delete: (k: string) => data.delete(k) }, gw_tokens: { get: () => undefined, incr, delete: () => true } } };
    g.gw_metrics_conf = { buckets: [], maxSeries, clients: 0, routes: {} };
    for (const line of lines) {
      const vars: Vars = { gw_metrics_in: line, upstream_addr: '10.0.0.1:80, 10.0.0.2:80', upstream_status: '502, 200', limit_req_status: 'REJECTED', gw_auth_status: 'unknown_key', upstream_cache_status: 'HIT', gw_llm: '0.1|m|3|4|' };
      expect(handler(request(vars, {}).r)).toBe('');
    }
    return data;
  }

  for (const [name, line] of requests) {
    it(`${name}: the dict ends as the full handler leaves it`, async () => {
      const { metricsLog, metricsLogFast } = await lib();
      // twice: the first time the request key is new (admitted by the full handler), then not
      const lines = [line, line];
      const fast = run((r) => metricsLogFast(r, metricsLog), lines, 100);
      expect(fast.size).toBeGreaterThan(2);
      expect(fast).toEqual(run(metricsLog, lines, 100));
    });
  }

  it('decides the common requests itself, and hands the others over before counting anything', async () => {
    const { metricsLog, metricsLogFast } = await lib();
    const alone = ['the same again', 'a 60 ms request', 'a 1.2 s request', 'a request over the last bound', 'not proxied', 'a redirect', 'another method', 'a 404'];
    for (const [name, line] of requests) {
      const seen: unknown[][] = [];
      // every key seen once before (the dict the full handler left), so no key is new
      const data = run(metricsLog, requests.map((x) => x[1]), 100);
      const snapshot = new Map(data);
      const full: Log = (...args) => (seen.push(args.slice(1)), '');
      const r = request({ gw_metrics_in: line }, {}).r;
      expect(metricsLogFast(r, full)).toBe('');
      if (alone.includes(name) || name === 'a fast request') {
        expect(seen, name).toEqual([]);
        expect(data, name).not.toEqual(snapshot);
      } else {
        // the fields split already go along; nothing was counted
        expect(seen, name).toEqual([[line.split(';')]]);
        expect(data, name).toEqual(snapshot);
      }
    }
  });

  it('every status code, proxied or not: the dict ends as the full handler leaves it', async () => {
    const { metricsLog, metricsLogFast } = await lib();
    // any family the full handler counts for some code (auth failures, limits, peer failures)
    // shows here as a difference, whichever code it is
    const lines: string[] = [];
    for (let code = 100; code < 600; code++) {
      lines.push(plain('a', String(code), '0.002', '0.001'), plain('b', String(code), '0.000', '', 'none'));
    }
    const all = [...lines, ...lines];
    expect(run((r) => metricsLogFast(r, metricsLog), all, 100000)).toEqual(run(metricsLog, all, 100000));
  });

  it('a request key seen for the first time goes to the full handler after its increment, under the series budget', async () => {
    const { metricsLog, metricsLogFast } = await lib();
    const lines = ['a', 'b', 'c', 'd', 'a', 'e', 'b'].map((x) => plain(x, '200', '0.000', '0.000'));
    // a budget of three series: the later label sets are refused and counted as overflow
    const fast = run((r) => metricsLogFast(r, metricsLog), lines, 3);
    expect(fast.get('x|overflow')).toBeGreaterThan(0);
    expect(fast).toEqual(run(metricsLog, lines, 3));
  });

  it('metricsBreakerLogFast: a request that did not fail is counted as the full handler counts it, without it', async () => {
    const { metricsBreakerLog, metricsBreakerLogFast } = await lib();
    const line = plain('a', '200', '0.003', '0.002');
    let delegated = 0;
    const fast = run((r) => metricsBreakerLogFast(r, (r2, pre, counted) => (delegated++, metricsBreakerLog(r2, pre, counted))), [line, line], 100);
    // the first time for the new key only
    expect(delegated).toBe(1);
    expect(fast.size).toBeGreaterThan(3);
    expect(fast).toEqual(run(metricsBreakerLog, [line, line], 100));
  });

  it('metricsBreakerLogFast: a failed request goes to the full handler (the breaker records it), counting nothing itself', async () => {
    const { metricsBreakerLogFast } = await lib();
    let delegated = 0;
    const data = new Map<string, number>();
    g.ngx = { shared: { gw_metrics: { get: (k: string) => data.get(k), incr: (k: string, n: number) => (data.set(k, n), n), delete: () => true } } };
    expect(metricsBreakerLogFast(request({ gw_metrics_in: plain('a', '200', '0.003', '0.002'), gw_health_fail: '1' }, {}).r, () => (delegated++, ''))).toBe('');
    expect(data.size).toBe(0);
    expect(delegated).toBe(1);
  });
});

describe('llmBodyFast', () => {

  const event = (o: unknown, spaced = false) => `data: ${spaced ? JSON.stringify(o).replace(/":/g, '": ').replace(/,"/g, ', "') : JSON.stringify(o)}\n\n`;
  /** an OpenAI-shaped stream: role chunk, content chunks (one empty, one quoting a key), finish chunk, usage chunk when asked, [DONE] */
  function stream(opts: { usage: boolean; spaced?: boolean; model?: boolean; words?: number }): string[] {
    const base = (o: Record<string, unknown>) => ({ id: 'c1', object: 'chat.completion.chunk', ...(opts.model === false ? {} : { model: 'gpt-4o' }), ...o, ...(opts.usage ? { usage: null } : {}) });
    const out = [event(base({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }), opts.spaced)];
    for (let i = 0; i < (opts.words ?? 6); i++) out.push(event(base({ choices: [{ index: 0, delta: { content: i === 2 ? 'say "content":"x"' : i === 4 ? '' : ` w${i}` }, finish_reason: null }] }), opts.spaced));
    out.push(event(base({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), opts.spaced));
    if (opts.usage) out.push(event({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [], usage: { prompt_tokens: 9, completion_tokens: 31, total_tokens: 40 } }, opts.spaced));
    out.push('data: [DONE]\n\n');
    return out;
  }
  /** the same text cut every `size` bytes */
  const recut = (chunks: string[], size: number): string[] => {
    const t = chunks.join('');
    const out: string[] = [];
    for (let i = 0; i < t.length; i += size) out.push(t.slice(i, i + size));
    return out;
  };

  /** one response through a body filter: the text handed on, the variables after each chunk, the full handler's calls */
  function run(chunks: string[], vars: Vars, contentType: string, filter: 'full' | 'fast') {
    const sent: string[] = [];
    const after: Vars[] = [];
    const { r } = request({ request_time: '0.012', ...vars }, {});
    const rr = r as unknown as Record<string, unknown>;
    rr.headersOut = { 'Content-Type': contentType };
    rr.sendBuffer = (d: Buffer | string) => sent.push(d.toString());
    let fullCalls = 0;
    const full: BodyFull = (x, d, f) => (fullCalls++, llmBody(x, d, f));
    const bufs = [...chunks, ''];
    bufs.forEach((c, i) => {
      const flags = { last: i === bufs.length - 1 };
      if (filter === 'full') llmBody(r, Buffer.from(c), flags);
      else llmBodyFast(r, full, Buffer.from(c), flags);
      after.push({ gw_llm: r.variables.gw_llm, gw_llm_scan: r.variables.gw_llm_scan, gw_tokens_carry: r.variables.gw_tokens_carry });
    });
    return { sent: sent.join(''), after, fullCalls };
  }

  const SSE = 'text/event-stream';
  const cases: [string, string[], Vars, string][] = [
    ['a stream with include_usage, an event a chunk', stream({ usage: true }), {}, SSE],
    ['the same with a token budget (deltas counted)', stream({ usage: true }), { gw_tokens: 'r|gpt-4o|9' }, SSE],
    ['a stream without usage, deltas counted', stream({ usage: false }), { gw_tokens: 'r|gpt-4o|9' }, SSE],
    ['a stream without usage', stream({ usage: false }), {}, SSE],
    ['a stream in Python json.dumps spacing', stream({ usage: true, spaced: true }), { gw_tokens: 'r|gpt-4o|9' }, SSE],
    ['a stream whose chunks do not name the model', stream({ usage: true, model: false }), {}, SSE],
    ['a stream whose usage the client did not ask for (hidden)', stream({ usage: true }), { gw_llm: 'i', gw_tokens: 'r|gpt-4o|9' }, SSE],
    ['a stream the upstream compressed anyway', stream({ usage: true }), { upstream_http_content_encoding: 'gzip' }, SSE],
    ['a JSON answer in three pieces', recut([JSON.stringify({ id: 'c', model: 'gpt-4o', choices: [{ message: { content: 'hi' } }], usage: { prompt_tokens: 3, completion_tokens: 4 } }) + '\n'], 40), {}, 'application/json'],
  ];
  for (const [name, chunks, vars, ct] of cases) {
    for (const size of [0, 7, 61, 250]) {
      const input = size === 0 ? chunks : recut(chunks, size);
      it(`${name}${size ? `, cut every ${size} bytes` : ''}: the same text handed on and the same record after every chunk`, () => {
        const full = run(input, { ...vars }, ct, 'full');
        const fast = run(input, { ...vars }, ct, 'fast');
        expect(fast.sent).toBe(full.sent);
        expect(fast.after).toEqual(full.after);
      });
    }
  }

  it('takes the steady chunks of a stream itself, hidden usage or not: the full handler sees only the first and the usage chunk', () => {
    for (const vars of [{}, { gw_tokens: 'r|gpt-4o|9' }, { gw_llm: 'i', gw_tokens: 'r|gpt-4o|9' }]) {
      const chunks = stream({ usage: true, words: 20 });
      const fast = run(chunks, { ...vars }, SSE, 'fast');
      expect(fast.fullCalls, JSON.stringify(vars)).toBe(2);
      expect(fast.after.at(-1)!.gw_llm).toMatch(/^0\.012\|gpt-4o\|9\|31\|\|/);
    }
    // hidden from the client: no usage member and no usage event reach it
    const hidden = run(stream({ usage: true, words: 20 }), { gw_llm: 'i', gw_tokens: 'r|gpt-4o|9' }, SSE, 'fast');
    expect(hidden.sent).not.toContain('usage');
    expect(hidden.sent).toContain('data: [DONE]');
  });
});

describe('steerPeerFast', () => {
  const g = globalThis as unknown as { ngx?: unknown; gw_health_conf?: unknown };
  const now = Date.now();
  // one clock for both handlers: a trial place is stamped with it
  beforeEach(() => void vi.spyOn(Date, 'now').mockReturnValue(now));
  afterEach(() => {
    vi.restoreAllMocks();
    delete g.ngx;
    delete g.gw_health_conf;
  });
  const OPEN_MS = 30_000;
  const peers = ['gw_peer_api_0', 'gw_peer_api_1', 'gw_peer_api_2'];
  /** the preload object's upstream "api" (what the full pick reads) and the map entry the build writes for it */
  function setup(opts: { weight: number; health: boolean; breaker: boolean; admin: boolean; shared?: boolean }) {
    g.gw_health_conf = {
      dir: 'state/',
      admin: opts.admin ? 'ab'.repeat(32) : '',
      breakers: opts.breaker ? 1 : 0,
      crc: [],
      names: ['api'],
      routes: {},
      models: [],
      upstreams: {
        api: {
          balance: 'round_robin',
          addresses: ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'],
          weights: [opts.weight, opts.weight, opts.weight],
          down: [0, 0, 0],
          peers,
          ring: [],
          owners: [],
          hashVar: '',
          health: opts.health ? { path: '/', intervalMs: 1000, timeoutMs: 500, expectStatus: [200], expectBody: null, expectModels: [], rise: 2, fall: 1 } : null,
          breaker: opts.breaker ? { failures: 5, windowMs: 10_000, openMs: OPEN_MS, halfOpen: 1, on: [502, 503, 504] } : null,
          // server 1 shares the breaker record of upstream "other"'s server 0
          ...(opts.shared ? { recs: ['', 'other|0', ''], shared: [[], ['other'], []] } : {}),
        },
      },
    };
    const recs = opts.shared ? '|api|0 other|0 api|2' : '';
    return `api|${opts.health ? 'h' : ''}${opts.breaker ? 'b' : ''}${opts.admin ? 'a' : ''}|${opts.breaker ? OPEN_MS : 0}|${opts.weight}|${peers.join(' ')}${recs}`;
  }
  const dictOf = (data: Map<string, number | string>) => ({
    get: (k: string) => data.get(k),
    set: (k: string, v: number | string) => void data.set(k, v),
    delete: (k: string) => data.delete(k),
    incr: (k: string, n: number, init = 0) => (data.set(k, ((data.has(k) ? data.get(k) : init) as number) + n), data.get(k) as number),
  });
  /** `calls` picks on a dict starting from `state`: what each returned, the dict and the variables after */
  function picks(fn: (r: NginxHTTPRequest) => string, spec: string, state: Record<string, number | string>, calls: number) {
    const data = new Map<string, number | string>(Object.entries(state).filter(([k]) => !k.startsWith('rt|')));
    const runtime = new Map<string, number | string>(Object.entries(state).filter(([k]) => k.startsWith('rt|')));
    g.ngx = { shared: { gw_state: dictOf(data), gw_state_s: dictOf(runtime) }, prefix: '/tmp/', log() {}, WARN: 1 };
    const out: string[] = [];
    const vars: Vars[] = [];
    for (let i = 0; i < calls; i++) {
      const { r, written } = request({ gw_steer_upstream: 'api', gw_steer_fast: spec }, {});
      out.push(fn(r));
      vars.push(written);
    }
    return { out, vars, dict: Object.fromEntries(data) };
  }

  const states: [string, Record<string, number | string>][] = [
    ['every server up', {}],
    ['one down by its health check', { 'hd|api|1': 1 }],
    ['one draining', { 'dr|api|0': 1 }],
    ['one breaker open', { 'bs|api|2': 1, 'bo|api|2': now }],
    ['two out, one open and one down', { 'bs|api|0': 1, 'bo|api|0': now, 'hd|api|2': 1 }],
    ['one breaker half-open (a trial place)', { 'bs|api|1': 1, 'bo|api|1': now - OPEN_MS - 1000 }],
    ['every server out', { 'hd|api|0': 1, 'hd|api|1': 1, 'bs|api|2': 1, 'bo|api|2': now }],
    ['a runtime server added', { 'rt|api': JSON.stringify([{ address: '10.0.0.9:80', weight: 1, models: [], state: 'active', added_at: '2026-12-01T00:00:00Z' }]) }],
    ['the round-robin turn already far along', { 'rr|api': 1_000_003, 'hd|api|0': 1 }],
    ['a shared breaker record open (through the other upstream)', { 'bs|other|0': 1, 'bo|other|0': now }],
    ['a shared breaker record half-open', { 'bs|other|0': 1, 'bo|other|0': now - OPEN_MS - 1000 }],
  ];
  for (const opts of [
    { weight: 1, health: true, breaker: true, admin: false },
    { weight: 3, health: true, breaker: true, admin: true },
    { weight: 1, health: true, breaker: false, admin: false },
    { weight: 2, health: true, breaker: true, admin: false, shared: true },
  ]) {
    for (const [name, state] of states) {
      it(`weight ${opts.weight}${opts.breaker ? ', breaker' : ''}${opts.shared ? ' (one record shared)' : ''}${opts.admin ? ', admin API' : ''}: ${name} — the same picks as the full handler`, async () => {
        const { steerPeer, steerPeerFast } = (await njsLib('health')) as Record<'steerPeer', Handler> & Record<'steerPeerFast', Fast>;
        const spec = setup(opts);
        const full = picks(steerPeer, spec, state, 7);
        let delegated = 0;
        const fast = picks((r) => steerPeerFast(r, (x) => (delegated++, steerPeer(x))), spec, state, 7);
        expect(fast.out).toEqual(full.out);
        expect(fast.dict).toEqual(full.dict);
        expect(fast.vars).toEqual(full.vars);
        // it decides alone unless a trial place, a runtime server or no usable server is involved
        // (without a breaker its keys mean nothing, and runtime servers exist only with the admin API)
        const runtime = opts.admin && /runtime/.test(name);
        // (server 1's breaker keys are its shared record's where it has one: "bs|api|1" then means nothing)
        const halfOpen = opts.shared ? /shared breaker record half-open/.test(name) : /one breaker half-open/.test(name);
        const alone = !runtime && (opts.breaker ? !halfOpen && !/every server out/.test(name) : true);
        expect(delegated === 0, `decided alone: ${alone}`).toBe(alone);
      });
    }
  }

  it('without its map entry ($gw_steer_fast ""), the full handler picks', async () => {
    const { steerPeer, steerPeerFast } = (await njsLib('health')) as Record<'steerPeer', Handler> & Record<'steerPeerFast', Fast>;
    setup({ weight: 1, health: true, breaker: true, admin: false });
    let delegated = 0;
    const got = picks((r) => steerPeerFast(r, (x) => (delegated++, steerPeer(x))), '', {}, 3);
    expect(delegated).toBe(3);
    expect(got.out).toEqual([peers[1], peers[2], peers[0]]);
  });
});

describe('countLogText (the counting log) against metricsLog', () => {
  const g = globalThis as unknown as { ngx?: unknown; gw_metrics_conf?: unknown };
  afterEach(() => {
    delete g.ngx;
    delete g.gw_metrics_conf;
  });
  type Log = (r: NginxHTTPRequest, pre?: string[], counted?: string) => string;
  type Dict = { get(k: string): number | undefined; incr(k: string, n: number, init?: number): number; delete(k: string): boolean };
  const lib = async () => (await njsLib('metrics')) as { metricsLog: Log; countLogText: (d: Dict, text: string) => number };
  // what the log-phase call reads: $gw_metrics_in (twelve fields) and the variables countMore reads
  const VARS = { upstream_addr: '10.0.0.1:80, 10.0.0.2:80', upstream_status: '502, 200', limit_req_status: 'REJECTED', gw_auth_status: 'unknown_key', upstream_cache_status: 'HIT' };
  const DEFAULT_BOUNDS = ';;;0.005;';
  const input = (route: string, status: string, rt: string, urt: string, rest = DEFAULT_BOUNDS, up = 'rr') => `r|${route}|GET|${status}|${up};${route};${status};${rt};${urt};120;410;${rest}`;
  // the counting log's line for the same request, as nginx writes it (COUNT_LINE in
  // src/features/metrics; an empty variable as "-")
  const logLine = (inp: string, vars: Record<string, string>) => {
    const f = inp.split(';');
    const extra = ['upstream_cache_status', 'limit_req_status', 'limit_conn_status', 'gw_auth_status', 'upstream_status', 'upstream_addr'].map((k) => vars[k] || '-');
    return [f[0], f[3], f[4] || '-', f[5], f[6], f[2], f[7], f[8], ...extra].join(';') + '\n';
  };
  const requests: string[] = [
    input('a', '200', '0.000', '0.000'),
    input('a', '200', '0.060', '0.058'),
    input('a', '200', '1.200', '1.198'),
    input('a', '200', '75.000', '74.900'),
    input('a', '204', '0.000', '', DEFAULT_BOUNDS, 'none'),
    input('a', '200', '0.020', '0.010, 0.003'),
    input('a', '200', '0.020', '-'),
    input('-', '404', '0.000', '', DEFAULT_BOUNDS, 'none'),
    input('a', '502', '0.100', '0.100'),
    input('a', '429', '0.000', '', DEFAULT_BOUNDS, 'none'),
    input('a', '401', '0.000', '', DEFAULT_BOUNDS, 'none'),
    input('c', '200', '0.002', '0.001', `cache1${DEFAULT_BOUNDS}`),
  ];
  function withDict(maxSeries: number, fn: (d: Dict) => void, buckets: number[] = DEFAULT_BUCKETS, bounds = ''): Map<string, number> {
    const data = new Map<string, number>();
    const d: Dict = { get: (k) => data.get(k), incr: (k, n, init = 0) => (data.set(k, (data.has(k) ? data.get(k)! : init) + n), data.get(k)!), delete: (k) => data.delete(k) };
    g.ngx = { shared: { gw_metrics: d } };
    g.gw_metrics_conf = { buckets, bounds, maxSeries, clients: 0, routes: {} };
    fn(d);
    // sums added in another order may differ in the last bits
    return new Map([...data].map(([k, v]) => [k, Math.round(v * 1e9) / 1e9]));
  }

  it('the counting log leaves the dict as the log-phase call leaves it, request by request and in one batch', async () => {
    const { metricsLog, countLogText } = await lib();
    const all = [...requests, ...requests];
    const called = withDict(100, () => {
      for (const inp of all) expect(metricsLog(request({ ...VARS, gw_metrics_in: inp }, {}).r)).toBe('');
    });
    expect(called.get('a|a|unknown_key')).toBe(2);
    expect(called.get('l|a|rate')).toBe(2);
    expect(called.get('c|c|cache1|hit')).toBe(2);
    expect(called.get('pf|rr|10.0.0.1:80|502')).toBeGreaterThan(0);
    const text = all.map((inp) => logLine(inp, VARS)).join('');
    expect(withDict(100, (d) => expect(countLogText(d, text)).toBe(all.length))).toEqual(called);
    expect(withDict(100, (d) => all.forEach((inp) => countLogText(d, logLine(inp, VARS))))).toEqual(called);
  });

  it('configured bounds come from the preload object, as the log-phase call reads them from its line', async () => {
    const { metricsLog, countLogText } = await lib();
    const all = ['0.000', '0.050', '0.300', '2.000', '20.000'].map((t) => input('a', '200', t, t, ';;;0.1;0.1,1,10'));
    const called = withDict(100, () => all.forEach((inp) => metricsLog(request({ gw_metrics_in: inp }, {}).r)));
    expect(called.get('r|a|GET|200|rr|3|3')).toBe(1);
    expect(withDict(100, (d) => countLogText(d, all.map((inp) => logLine(inp, {})).join('')), [0.1, 1, 10], '0.1,1,10')).toEqual(called);
  });

  it('admits new request keys under the series budget as the log-phase call does, counting the batch\'s overflow', async () => {
    const { metricsLog, countLogText } = await lib();
    const all = ['a', 'b', 'c', 'd', 'a', 'e', 'b', 'e'].map((x) => input(x, '200', '0.000', '0.000'));
    const called = withDict(3, () => all.forEach((inp) => metricsLog(request({ gw_metrics_in: inp }, {}).r)));
    expect(called.get('x|overflow')).toBe(3);
    expect(withDict(3, (d) => countLogText(d, all.map((inp) => logLine(inp, {})).join('')))).toEqual(called);
  });

  it('a cut or malformed line is counted as an error, the others still count', async () => {
    const { countLogText } = await lib();
    const good = logLine(input('a', '200', '0.001', '0.001'), {});
    const data = withDict(100, (d) => countLogText(d, `${good}r|a|GET;broken\n${good}r|a|GET|200|rr;0.001`));
    expect(data.get('x|errors')).toBe(2);
    expect(data.get('r|a|GET|200|rr|0|0')).toBe(2);
  });
});
