// API keys: extracting the presented key, hashing it, and deciding on the metadata that
// nginx looked up for that hash. The lookup itself is an nginx `map` generated at build
// time (see docs/njs-auth.md): hash -> "client|role|tier|expires", or "client" alone. No file
// reads in njs.
import cr from 'crypto';

export type ApiKeyReason = 'missing_key' | 'malformed_key' | 'unknown_key' | 'expired_key';

export interface KeyMeta {
  client: string;
  role: string;
  tier: string;
  expires: number; // unix seconds, 0 = never
}

export interface ApiKeyOk {
  ok: true;
  meta: KeyMeta;
}

export interface ApiKeyFail {
  ok: false;
  reason: ApiKeyReason;
}

export type ApiKeyDecision = ApiKeyOk | ApiKeyFail;

// Longest key accepted before hashing; anything longer is malformed, not hashed.
export const MAX_API_KEY_LENGTH = 256;

// The presented key: the configured header first, then `Authorization: Bearer <key>`.
// Returns null when neither carries a value, '' never (empty counts as absent).
export function extractApiKey(authorization: string | undefined, headerValue: string | undefined): string | null {
  if (typeof headerValue === 'string') {
    const v = headerValue.trim();
    if (v.length > 0) {
      return v;
    }
  }
  return extractBearer(authorization);
}

// `Authorization: Bearer <token>`; scheme is case-insensitive (RFC 7235), one or more spaces.
export function extractBearer(authorization: string | undefined): string | null {
  if (typeof authorization !== 'string') {
    return null;
  }
  const m = /^[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)\s*$/.exec(authorization);
  return m === null ? null : m[1];
}

// The decision on a presented key, from `lookup` (hash it, read the key map: "ok", an expiry
// reason or "unknown_key"). The key map decides first: a key whose hash is in the store is that
// key, whatever it looks like (every key gatewayctl creates is well-formed anyway), so nginx's
// candidate ($gw_key_presented, else $gw_key_bearer) can be hashed as it is, with no syntax check
// on the common path. Only a key the map does not accept is classed: malformed when it could not
// be a key at all, else unknown. Longer than MAX_API_KEY_LENGTH: malformed, never hashed.
export function decidePresentedKey(key: string | null, lookup: (key: string) => string): string {
  if (key === null) {
    return 'missing_key';
  }
  if (key.length > MAX_API_KEY_LENGTH) {
    return 'malformed_key';
  }
  const status = lookup(key);
  return status === 'unknown_key' && !isWellFormedKey(key) ? 'malformed_key' : status;
}

// Key syntax (gw_live_ + base64url, or any token68-ish value): a presented key that the key map
// does not accept and that lacks it is reported as malformed rather than unknown.
export function isWellFormedKey(key: string): boolean {
  return key.length >= MIN_API_KEY_LENGTH && key.length <= MAX_API_KEY_LENGTH && /^[A-Za-z0-9._~+\/=-]+$/.test(key);
}

// The same syntax as a character class and length bounds, for the nginx map that picks a bearer
// token out of `Authorization` ($gw_key_bearer, docs/njs-auth.md, "fast path"): a token matching
// it is exactly what extractBearer returns.
export const WELL_FORMED_KEY_CLASS = 'A-Za-z0-9._~+/=-';
export const MIN_API_KEY_LENGTH = 8;

// Lowercase hex SHA-256, the form stored in keys.yaml and used as the map key.
export function hashApiKey(key: string): string {
  return cr.createHash('sha256').update(key).digest('hex');
}

// "client|role|tier|expires", or "client" alone (no role, tier or expiry) -> KeyMeta; null for
// anything else (including "" and the revoked-key mark "!").
export function parseKeyMeta(meta: string | undefined): KeyMeta | null {
  if (typeof meta !== 'string' || meta.length === 0 || meta === '!') {
    return null;
  }
  const parts = meta.split('|');
  if (parts.length === 1) {
    return { client: parts[0], role: '', tier: '', expires: 0 };
  }
  if (parts.length !== 4 || parts[0].length === 0) {
    return null;
  }
  const expires = parts[3].length === 0 ? 0 : Number(parts[3]);
  if (!Number.isInteger(expires) || expires < 0) {
    return null;
  }
  return { client: parts[0], role: parts[1], tier: parts[2], expires: expires };
}

// Decide on the looked-up metadata (nowSec: unix seconds). Revoked keys are not in the
// map, so they arrive here as unknown.
export function decideApiKey(meta: string | undefined, nowSec: number): ApiKeyDecision {
  const m = parseKeyMeta(meta);
  if (m === null) {
    return { ok: false, reason: 'unknown_key' };
  }
  const reason = keyExpiry(m, nowSec);
  return reason === null ? { ok: true, meta: m } : { ok: false, reason: reason };
}

// 'expired_key' when the key has an expiry that has passed, else null.
export function keyExpiry(m: KeyMeta, nowSec: number): ApiKeyReason | null {
  return m.expires !== 0 && nowSec >= m.expires ? 'expired_key' : null;
}
