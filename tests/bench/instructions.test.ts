// Instruction-count guard: the instructions per request in the nginx worker (callgrind), as a
// ratio to the hand-written nginx proxy in the same run, for the gatewayctl paths each on a
// gateway of its own (--solo). Unlike CPU time these counts are the same on a busy machine, so
// the bounds sit close to the measured figures (README, "Performance"): a change that puts
// per-request work back into the njs module's top level, or another njs variable access on the
// API-key path, fails here. .ci/run installs valgrind; without it the guard runs only in CI.
import { describe, expect, it } from 'vitest';
import { countInstructions, hasCallgrind } from '../../scripts/bench/callgrind.ts';

// measured (ratio to plain nginx proxy_pass, solo gateways): gw_plain 1.36, gw_api_key 2.16 (3.18
// while every key went through njs: the bound fails if a key in the native form calls njs again;
// a key without an id, gw_api_key_njs, 3.57: the njs path plus the native lane's maps),
// gw_jwt_hs256 3.18, gw_jwt_es256_repeat 3.34 (3.32, 3.48 while a cached entry was read with
// the clock rather than expired by the dict; 3.85, 4.13 while the cache was keyed by the
// SHA-256 of the header, njs/lib/jwtcache.ts; 3.91, 4.19 while an accepted credential
// also wrote $gw_auth_status), gw_model 3.68 (3.75 while a model route also read the
// route's own hash spec), gw_body_hash 3.36 (headers and
// logs read $request_id without the map; before: 1.41, 3.29, 4.00, 4.24, 3.77, 3.41) (the handlers'
// fast paths: njs/lib/handlers.ts, njs/lib/routing.ts, inlined into the handlers' functions;
// the key metadata and the cache entry read with one split; nginx's key candidate hashed as it
// is; the cache keyed by the whole Authorization header);
// First sight, a new token on every request: gw_jwt_hs256_first 15.57 (22.29 while the MAC was
// compared by a loop over its characters and every segment checked by a regex,
// njs/lib/timing.ts, njs/lib/base64url.ts), gw_jwt_es256_first 69.56 (71.39; WebCrypto's key
// import and ECDSA verify are most of it).
// bounds leave ~8% for other CPUs (OpenSSL picks its crypto code paths by CPU), 15% for the row
// that is mostly ECDSA.
const BOUNDS: Record<string, number> = { gw_plain: 1.47, gw_api_key: 2.34, gw_api_key_njs: 3.86, gw_jwt_hs256: 3.43, gw_jwt_es256_repeat: 3.61, gw_jwt_hs256_first: 17.0, gw_jwt_es256_first: 80.3, gw_model: 3.97, gw_body_hash: 3.63 };

// The hand-written references (scripts/bench/reference.ts) the issue-10 goals name, counted in
// the same solo run: the minimal njs SHA-256 + map and the minimal HS256 verifier, and the same
// checks by hand with the row's other per-request features (request id, identity headers,
// per-client limit; for JWT the verified-token cache keyed by the token).
const REFERENCES = ['njs_sha256_map', 'njs_sha256_full', 'njs_hs256', 'njs_hs256_cached_full'];

// one callgrind run (a few minutes) for both cases below
let soloRun: ReturnType<typeof countInstructions> | undefined;
const soloCounts = () => (soloRun ??= countInstructions({ requests: 200, solo: true, only: [...Object.keys(BOUNDS), ...REFERENCES] }));

describe('instructions per request relative to plain nginx', () => {
  it.skipIf(!hasCallgrind() && !process.env.CI)('every guarded gatewayctl path stays within its instruction ratio', async () => {
    expect(hasCallgrind(), 'valgrind and callgrind_control on PATH').toBe(true);
    const { rows } = await soloCounts();
    const table = rows.map((r) => `${r.name}: ${r.ratio.toFixed(2)} (${Math.round(r.perRequest)} instructions/request)`).join('\n');
    for (const [name, bound] of Object.entries(BOUNDS)) {
      const row = rows.find((r) => r.name === name);
      expect(row, `${name} measured\n${table}`).toBeDefined();
      expect(row!.ratio, `${name} instruction ratio\n${table}`).toBeLessThanOrEqual(bound);
    }
  }, 480_000);

  // The issue-10 goals in a form no machine changes: req/s and CPU ratios move with the kernel's
  // share of a request (README, "Performance"), instruction counts do not. A route costs less
  // than the minimal code doing its check alone (an API key: SHA-256 + map; a JWT seen before,
  // HS256 or ES256: the minimal HS256 verifier, which the cache is there to beat), and no more
  // than the same features written by hand (5% for the module's other handlers and the
  // gateway's own variables). Measured (instructions a request, solo): gw_api_key 47,100 against
  // 52,400 (njs_sha256_map) and 61,300 by hand (njs_sha256_full); gw_jwt_hs256 69,600 and
  // gw_jwt_es256_repeat 73,200 against 95,600 (njs_hs256) and 72,300 by hand
  // (njs_hs256_cached_full). Without the verified-token cache (jwt_cache: false) gw_jwt_hs256 is
  // 285,800: this fails.
  it.skipIf(!hasCallgrind() && !process.env.CI)('each guarded auth path costs less than the minimal code for its check and no more than its features by hand', async () => {
    expect(hasCallgrind(), 'valgrind and callgrind_control on PATH').toBe(true);
    const { rows } = await soloCounts();
    const table = rows.map((r) => `${r.name}: ${Math.round(r.perRequest)} instructions/request`).join('\n');
    const cost = (name: string): number => {
      const row = rows.find((r) => r.name === name);
      expect(row, `${name} measured\n${table}`).toBeDefined();
      return row!.perRequest;
    };
    expect(cost('gw_api_key'), `gw_api_key < njs_sha256_map\n${table}`).toBeLessThan(cost('njs_sha256_map'));
    expect(cost('gw_api_key'), `gw_api_key <= njs_sha256_full\n${table}`).toBeLessThanOrEqual(cost('njs_sha256_full') * 1.05);
    for (const jwt of ['gw_jwt_hs256', 'gw_jwt_es256_repeat']) {
      expect(cost(jwt), `${jwt} < njs_hs256\n${table}`).toBeLessThan(cost('njs_hs256'));
      expect(cost(jwt), `${jwt} <= njs_hs256_cached_full x 1.05\n${table}`).toBeLessThanOrEqual(cost('njs_hs256_cached_full') * 1.05);
    }
  }, 300_000);

  // With metrics on, a plain route is counted from the counting log (one log line, its share of
  // the periodic count: the scrape at the window's end counts the window's lines,
  // scripts/bench/callgrind.ts untimedCount), the API-key route too; a request slower than the
  // first bound must cost what a fast one does. Measured (shared gateway, ratio to plain nginx
  // proxy_pass): gw_plain 2.73 with metrics (3.67 with the log-phase call, 4.16 before its fast
  // path), gw_api_key 3.61 (5.01 while every key went through njs, 5.15 with the log-phase call); gw_slow (upstream answers in 60 ms)
  // 1.06x gw_plain; gw_stream (a streamed chat completion, 50 content events and the usage,
  // every event through the LLM body filter) 80x, 1.75M instructions (4.50M before the
  // filter's fast path).
  it.skipIf(!hasCallgrind() && !process.env.CI)('with metrics, a slow request costs what a fast one does, and a streamed answer stays within its bound', async () => {
    expect(hasCallgrind(), 'valgrind and callgrind_control on PATH').toBe(true);
    const { rows } = await countInstructions({ requests: 100, metrics: true, only: ['gw_slow', 'gw_stream', 'gw_api_key'] });
    const table = rows.map((r) => `${r.name}: ${r.ratio.toFixed(2)} (${Math.round(r.perRequest)} instructions/request)`).join('\n');
    const plain = rows.find((r) => r.name === 'gw_plain');
    const slow = rows.find((r) => r.name === 'gw_slow');
    const stream = rows.find((r) => r.name === 'gw_stream');
    const apiKey = rows.find((r) => r.name === 'gw_api_key');
    expect(plain && slow && stream && apiKey, `all rows measured\n${table}`).toBeTruthy();
    expect(plain!.ratio, `gw_plain with metrics, instruction ratio\n${table}`).toBeLessThanOrEqual(3.0);
    expect(apiKey!.ratio, `gw_api_key with metrics, instruction ratio\n${table}`).toBeLessThanOrEqual(3.9);
    expect(slow!.perRequest / plain!.perRequest, `gw_slow / gw_plain with metrics\n${table}`).toBeLessThanOrEqual(1.12);
    expect(stream!.ratio, `gw_stream with metrics, instruction ratio\n${table}`).toBeLessThanOrEqual(86);
  }, 300_000);
});
