// Cache of verified JWTs in an nginx shared dict (js_shared_dict_zone gw_jwt_cache), so a
// token seen before skips parsing, key selection and signature verification (for RS/PS/ES a
// WebCrypto key import and verify, which njs cannot keep between requests: every request runs
// in a fresh VM clone). Engine-neutral (the dict is passed in), unit-tested under Node.
//
//   key    <generation>.<the Authorization header as sent> for a header of at most RAW_KEY_MAX
//          characters, <generation>:<SHA-256 of the header, base64url> for a longer one. The
//          header itself, not a digest of it: njs's SHA-256 of a ~200-byte header (the object,
//          the blocks, the encoding) cost ~12k instructions on every cached request, a sixth of
//          the whole request, where the dict hashes its key in C (crc32) and compares it whole.
//          Exactly as safe against tampering: an entry is found only by the identical header
//          (any change is another key; for a digest key it would take a SHA-256 second
//          preimage). The price is that shared memory holds the bearer tokens of live entries
//          (never past min(exp, ttl)): nginx's own memory, read by nothing but the handlers,
//          never written to disk (the zone has no state file and must never get one), and no
//          more exposed than the HMAC secrets of the preload object beside it. A longer header
//          (a JWT with many claims) takes the digest, so an entry's key stays small; the
//          separators differ (":" vs "."), and the generation has a fixed length, so a header
//          spelled like a digest can never find a digest key.
//          The header, scheme and all, rather than the token: the header names exactly one
//          token, and the fast paths use it without cutting the token out (two substring calls
//          and a copy of the token, ~4k instructions a request). Another spelling of the same
//          token ("bearer  <token>") is another entry, verified in full once. The generation
//          (cacheGen in the preload object, 22 characters of base64url) is a digest of the
//          provider's keys, secrets and policy, so a rotated secret or JWKS, or another policy,
//          finds nothing.
//   value  "deadline\nclient\nrole\ntier\npayload segment": what a full verification produced.
//          deadline = min(exp + leeway, verified + ttl) in unix seconds (verified + ttl without
//          exp); an entry is served only while now < deadline, which is exactly when the claim
//          check would still accept the token. Newline-separated, not JSON: identity values are
//          printable ASCII (identity.ts) and the payload is base64url, so no field holds a
//          newline, and reading it takes four indexOf calls where JSON.parse and the shape
//          checks cost ~7k instructions on every cached request (the fast paths in handlers.ts
//          read it inline).
//          A timed entry (njs >= 0.8.5, whose dict takes a timeout per entry) has a sixth field,
//          TIMED_MARK, and the dict's own timeout ends it TIMED_MARGIN_MS before its deadline:
//          the dict returns no entry past its timeout (ngx_js_dict_get compares it with nginx's
//          clock whenever the zone has `timeout=`, which the build always writes), so the fast
//          paths serve a timed entry without reading the clock (Date.now and the comparison cost
//          ~3.5k instructions, 5% of a cached request). The margin covers nginx's clock, which is
//          cached per event-loop pass and can trail the real one by that pass: a timed entry is
//          served past its deadline only by a worker whose pass took longer than the margin. A
//          token with less than the margin left is not cached. The full handler still checks
//          the deadline of every entry it reads.
// Only tokens that passed every check are stored. Roles are checked per route by nginx on the
// identity, outside the cache.
import cr from 'crypto';

export interface JwtCacheDict {
  get(key: string): string | number | undefined;
  set(key: string, value: string, timeout?: number): unknown;
}

export interface CachedIdentity {
  client: string;
  role: string;
  tier: string;
  payload: string;
}

export interface CacheSettings {
  cacheGen?: string;
  cacheTtl?: number;
  cacheHashed?: boolean;
}

export const JWT_CACHE_ZONE = 'gw_jwt_cache';

/** The sixth field of a timed entry: the dict expires it, so the fast paths read no clock. */
export const TIMED_MARK = 't';

/** How long before its deadline a timed entry's dict timeout ends it, ms. */
export const TIMED_MARGIN_MS = 1000;

/**
 * Whether the running njs takes a timeout per dict entry (set(key, value, timeout), njs 0.8.5):
 * `njs.version_number` there, absent elsewhere (Node).
 */
export function perEntryTimeouts(versionNumber: unknown): boolean {
  return typeof versionNumber === 'number' && versionNumber >= 0x000805;
}

/** The longest Authorization header that is its own cache key (longer ones are keyed by their SHA-256). */
export const RAW_KEY_MAX = 2048;

// authorization: the request's Authorization header value, from which the token was extracted.
// hashed: the provider keys every entry by the header's SHA-256 (jwt_cache.key: sha256), so
// shared memory holds no token. The fast path in handlers.ts (jwtCachedFast) builds the
// header-keyed form inline (the build gives it no hashed provider): keep the two in step.
export function cacheKey(gen: string, authorization: string, hashed?: boolean): string {
  return !hashed && authorization.length <= RAW_KEY_MAX ? gen + '.' + authorization : gen + ':' + cr.createHash('sha256').update(authorization).digest('base64url');
}

// The cached identity for this key, or null (absent, stale or unreadable: verify in full).
export function cacheGet(dict: JwtCacheDict, key: string, nowSec: number): CachedIdentity | null {
  const raw = dict.get(key);
  return typeof raw === 'string' ? cacheEntry(raw, nowSec) : null;
}

/** An entry's identity while now < its deadline; null for anything else. */
export function cacheEntry(raw: string, nowSec: number): CachedIdentity | null {
  const a = raw.indexOf('\n');
  const b = a > 0 ? raw.indexOf('\n', a + 1) : -1;
  const c = b > 0 ? raw.indexOf('\n', b + 1) : -1;
  const e = c > 0 ? raw.indexOf('\n', c + 1) : -1;
  // a timed entry's sixth field is TIMED_MARK; its deadline is checked here all the same
  const m = e > 0 ? raw.indexOf('\n', e + 1) : -1;
  if (e < 0 || (m >= 0 && raw.substring(m + 1) !== TIMED_MARK) || !/^[0-9]+(\.[0-9]+)?$/.test(raw.substring(0, a)) || !(nowSec < +raw.substring(0, a))) {
    return null;
  }
  return { client: raw.substring(a + 1, b), role: raw.substring(b + 1, c), tier: raw.substring(c + 1, e), payload: m < 0 ? raw.substring(e + 1) : raw.substring(e + 1, m) };
}

// Deadline of a verified token: min(exp + leeway, now + ttl); now + ttl without exp.
export function cacheDeadline(claims: { [k: string]: unknown }, leeway: number | undefined, ttl: number, nowSec: number): number {
  const limit = nowSec + ttl;
  const exp = claims.exp;
  // finite without the global isFinite (~2,500 instructions a lookup in a request VM)
  if (typeof exp === 'number' && exp - exp === 0) {
    const end = exp + (typeof leeway === 'number' ? leeway : 0);
    return end < limit ? end : limit;
  }
  return limit;
}

// Store a verified identity; a full dict (or any dict error) only means no caching.
// timedNowMs: the clock (ms) when the dict takes a timeout per entry (perEntryTimeouts): the
// entry is then timed (see the top of this file). Otherwise the timeout (ignored before njs
// 0.8.5, where the zone's applies) only frees memory early, and every reader checks the deadline.
export function cachePut(dict: JwtCacheDict, key: string, deadline: number, id: CachedIdentity, nowSec: number, timedNowMs?: number): void {
  if (!(deadline > nowSec)) {
    return;
  }
  try {
    if ((id.client + id.role + id.tier + id.payload).indexOf('\n') >= 0) {
      return; // cannot happen (identity.ts, base64url): never stored ambiguously
    }
    const value = deadline + '\n' + id.client + '\n' + id.role + '\n' + id.tier + '\n' + id.payload;
    if (typeof timedNowMs === 'number') {
      // whole milliseconds without the global Math (as above): rounded toward zero, which is
      // floor for the positive values that are stored (x - x % 1 is exact for them)
      const left = deadline * 1000 - timedNowMs - TIMED_MARGIN_MS;
      const timeout = left - (left % 1);
      if (timeout >= 1) {
        dict.set(key, value + '\n' + TIMED_MARK, timeout);
      }
      return;
    }
    dict.set(key, value, (deadline - nowSec) * 1000);
  } catch (e) {
    // evict is on; a value larger than the zone cannot be stored and is verified each time
  }
}
