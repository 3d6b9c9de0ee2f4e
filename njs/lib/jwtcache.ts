// Cache of verified JWTs in an nginx shared dict (js_shared_dict_zone gw_jwt_cache), so a
// token seen before skips parsing, key selection and signature verification (for RS/PS/ES a
// WebCrypto key import and verify, which njs cannot keep between requests: every request runs
// in a fresh VM clone). Engine-neutral (the dict is passed in), unit-tested under Node.
//
//   key    <generation>.<SHA-256 of the whole token, base64url>: never the token itself. The
//          generation (cacheGen in the preload object) is a digest of the provider's keys,
//          secrets and policy, so a rotated secret or JWKS, or another policy, finds nothing.
//   value  JSON [deadline, client, role, tier, payload segment]: what a full verification
//          produced. deadline = min(exp + leeway, verified + ttl) in unix seconds (verified +
//          ttl without exp); an entry is served only while now < deadline, which is exactly
//          when the claim check would still accept the token.
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
}

export const JWT_CACHE_ZONE = 'gw_jwt_cache';

export function cacheKey(gen: string, token: string): string {
  return gen + '.' + cr.createHash('sha256').update(token).digest('base64url');
}

// The cached identity for this key, or null (absent, stale or unreadable: verify in full).
export function cacheGet(dict: JwtCacheDict, key: string, nowSec: number): CachedIdentity | null {
  const raw = dict.get(key);
  if (typeof raw !== 'string') {
    return null;
  }
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    return null;
  }
  if (!Array.isArray(v) || v.length !== 5 || typeof v[0] !== 'number' || !(nowSec < v[0])) {
    return null;
  }
  for (let i = 1; i < 5; i++) {
    if (typeof v[i] !== 'string') {
      return null;
    }
  }
  return { client: v[1], role: v[2], tier: v[3], payload: v[4] };
}

// Deadline of a verified token: min(exp + leeway, now + ttl); now + ttl without exp.
export function cacheDeadline(claims: { [k: string]: unknown }, leeway: number | undefined, ttl: number, nowSec: number): number {
  const limit = nowSec + ttl;
  const exp = claims.exp;
  if (typeof exp === 'number' && isFinite(exp)) {
    const end = exp + (typeof leeway === 'number' ? leeway : 0);
    return end < limit ? end : limit;
  }
  return limit;
}

// Store a verified identity; a full dict (or any dict error) only means no caching. The
// per-entry timeout (njs >= 0.8.5; older njs uses the zone's) only frees memory early: expiry
// is enforced by the deadline check in cacheGet.
export function cachePut(dict: JwtCacheDict, key: string, deadline: number, id: CachedIdentity, nowSec: number): void {
  if (!(deadline > nowSec)) {
    return;
  }
  try {
    dict.set(key, JSON.stringify([deadline, id.client, id.role, id.tier, id.payload]), (deadline - nowSec) * 1000);
  } catch (e) {
    // evict is on; a value larger than the zone cannot be stored and is verified each time
  }
}
