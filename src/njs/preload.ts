// Build-time preparation of the `gw_auth` preload object (dist/njs/auth.json) that the njs
// `gateway.jwt` handler reads. Takes JWKS documents / HMAC secrets as configured, keeps only
// public signature keys the njs module can use, and checks everything the handler relies
// on, so request-time code never meets a key it cannot handle.
import type { ClaimValueRule, Jwk, JwtPolicy } from '../../njs/lib/jwt.ts';
import { createHash } from 'node:crypto';
import { SUPPORTED_JWT_ALGS } from '../features/auth/schema.ts';
import { VERSION } from '../version.ts';
// `.` only in the variants the build derives for routes narrowing a provider (claim_values)
export const PROVIDER_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const CLAIM_NAME_RE = /^[A-Za-z0-9_.:\/-]{1,128}$/;
const B64U_RE = /^[A-Za-z0-9_-]+$/;

export interface JwtSecretInput {
  kid?: string;
  alg?: string; // pins the secret to one HS algorithm
  secret: string; // raw secret text (UTF-8); at least 32 bytes
}

export interface JwtProviderInput {
  name: string;
  algorithms: string[];
  jwks?: unknown; // a parsed JWKS document ({ keys: [...] })
  secrets?: JwtSecretInput[];
  issuer?: string[];
  audience?: string[];
  leeway?: number;
  requiredClaims?: string[];
  /** required claim values (the provider's, then a route's narrowing); absent or empty = none */
  claimValues?: ClaimValueRule[];
  requireExp?: boolean;
  maxLength?: number;
  clientClaim?: string;
  roleClaim?: string;
  tierClaim?: string;
}

export interface JwtProviderOutput extends JwtPolicy {
  clientClaim: string;
  roleClaim?: string;
  tierClaim?: string;
  /** verified-token cache (absent = off): the generation every cache key starts with, and the ttl in seconds */
  cacheGen?: string;
  cacheTtl?: number;
  /** entries keyed by the SHA-256 of the Authorization header (`jwt_cache.key: sha256`) */
  cacheHashed?: true;
}

/** Options of the preload object: the verified-token cache (docs/auth.md). */
export interface AuthPreloadOptions {
  /** seconds a verified token may be served from the cache; absent = no cache */
  jwtCacheTtl?: number;
  /** key entries by the SHA-256 of the Authorization header, never the header itself */
  jwtCacheHashed?: boolean;
  /** some upstream hashes on a JWT claim: the JWT handlers derive $gw_claim_key in their own
   *  call (one njs call for identity and claims) instead of a js_set of its own */
  claimHash?: boolean;
}

/**
 * The cache generation of a provider: a digest of everything its verification depends on
 * (keys, secrets, algorithms, issuer, audience, leeway, claims, identity claims), its name
 * and the gatewayctl version. Rotating a secret or a JWKS, or changing the policy, gives
 * another generation, so entries verified under the old one are never found again.
 */
export function cacheGeneration(name: string, provider: JwtProviderOutput): string {
  const material = JSON.stringify({ cache: 2, version: VERSION, name, provider });
  return createHash('sha256').update(material).digest('base64url').slice(0, 22);
}

export interface AuthPreloadObject {
  version: 1;
  jwt: Record<string, JwtProviderOutput>;
  claimHash?: true;
}

export class PreloadError extends Error {
  constructor(
    readonly provider: string,
    message: string,
  ) {
    super(`auth provider ${provider}: ${message}`);
    this.name = 'PreloadError';
  }
}

function keyTypeFor(alg: string): string {
  if (alg.startsWith('HS')) return 'oct';
  if (alg.startsWith('RS') || alg.startsWith('PS')) return 'RSA';
  return alg === 'ES256' ? 'EC:P-256' : 'EC:P-384';
}

const minSecretBytes = (alg: string | undefined) => (alg === 'HS512' ? 64 : alg === 'HS384' ? 48 : 32);

// One public JWK reduced to the fields the njs module reads; null for keys to skip
// (encryption keys, unsupported types/curves). Private members are never copied.
export function publicJwk(raw: unknown, provider: string, index: number): Jwk | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new PreloadError(provider, `jwks.keys[${index}] is not an object`);
  const k = raw as Record<string, unknown>;
  if (k.use !== undefined && k.use !== 'sig') return null;
  if (Array.isArray(k.key_ops) && !k.key_ops.includes('verify')) return null;
  const str = (f: string, required: boolean): string | undefined => {
    const v = k[f];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v.length === 0) throw new PreloadError(provider, `jwks.keys[${index}].${f} must be a non-empty string`);
    return v;
  };
  const kid = str('kid', false);
  const alg = str('alg', false);
  if (alg !== undefined && !(SUPPORTED_JWT_ALGS as readonly string[]).includes(alg)) return null;
  if (k.kty === 'RSA') {
    const n = str('n', true)!;
    const e = str('e', true)!;
    if (!B64U_RE.test(n) || !B64U_RE.test(e)) throw new PreloadError(provider, `jwks.keys[${index}]: n/e must be base64url`);
    if (Buffer.from(n, 'base64url').length < 256) throw new PreloadError(provider, `jwks.keys[${index}]: RSA keys below 2048 bits are refused`);
    return { kty: 'RSA', ...(kid ? { kid } : {}), ...(alg ? { alg } : {}), use: 'sig', n, e };
  }
  if (k.kty === 'EC') {
    const crv = str('crv', true)!;
    if (crv !== 'P-256' && crv !== 'P-384') return null;
    const x = str('x', true)!;
    const y = str('y', true)!;
    if (!B64U_RE.test(x) || !B64U_RE.test(y)) throw new PreloadError(provider, `jwks.keys[${index}]: x/y must be base64url`);
    return { kty: 'EC', ...(kid ? { kid } : {}), ...(alg ? { alg } : {}), use: 'sig', crv, x, y, ...ecRawPoint(crv, x, y) };
  }
  return null; // oct keys never come from a JWKS document; OKP (EdDSA) unsupported by the module
}

/**
 * The key's public point as WebCrypto's `raw` import takes it (0x04 || x || y, base64url): njs
 * imports it ≈ 10 µs faster than the same key as a JWK, on every first sight of an ES* token
 * (njs keeps no key object between requests). Coordinates of the wrong length for the curve
 * get no `raw`: the JWK import then refuses the key at runtime, as before.
 */
function ecRawPoint(crv: 'P-256' | 'P-384', x: string, y: string): { raw?: string } {
  const size = crv === 'P-256' ? 32 : 48;
  const bx = Buffer.from(x, 'base64url');
  const by = Buffer.from(y, 'base64url');
  if (bx.length !== size || by.length !== size) return {};
  return { raw: Buffer.concat([Buffer.from([4]), bx, by]).toString('base64url') };
}

export function buildJwtProvider(input: JwtProviderInput): JwtProviderOutput {
  const p = input.name;
  if (!PROVIDER_NAME_RE.test(p)) throw new PreloadError(p, 'name must match [A-Za-z0-9_.-]{1,64}');
  if (input.algorithms.length === 0) throw new PreloadError(p, 'no algorithms');
  for (const a of input.algorithms) {
    if (!(SUPPORTED_JWT_ALGS as readonly string[]).includes(a)) throw new PreloadError(p, `unsupported algorithm ${JSON.stringify(a)}`);
  }
  const keys: Jwk[] = [];
  if (input.jwks !== undefined) {
    const doc = input.jwks as { keys?: unknown };
    if (doc === null || typeof doc !== 'object' || !Array.isArray(doc.keys)) throw new PreloadError(p, 'jwks must be an object with a keys array');
    doc.keys.forEach((raw, i) => {
      const k = publicJwk(raw, p, i);
      if (k) keys.push(k);
    });
  }
  (input.secrets ?? []).forEach((s, i) => {
    if (s.alg !== undefined && !s.alg.startsWith('HS')) throw new PreloadError(p, `secrets[${i}].alg must be HS256/HS384/HS512`);
    const bytes = Buffer.from(s.secret, 'utf8');
    if (bytes.length < minSecretBytes(s.alg)) throw new PreloadError(p, `secrets[${i}] is shorter than ${minSecretBytes(s.alg)} bytes`);
    keys.push({ kty: 'oct', ...(s.kid ? { kid: s.kid } : {}), ...(s.alg ? { alg: s.alg } : {}), use: 'sig', k: bytes.toString('base64url') });
  });
  // Keep only keys some allowed algorithm can use, then check the set is usable.
  const usable = keys.filter((k) =>
    input.algorithms.some((a) => (k.alg === undefined || k.alg === a) && keyTypeFor(a) === (k.kty === 'EC' ? `EC:${k.crv}` : k.kty)),
  );
  if (usable.length === 0) throw new PreloadError(p, `no key usable with ${input.algorithms.join(', ')}`);
  const kids = new Set<string>();
  for (const k of usable) {
    if (k.kid === undefined) continue;
    if (kids.has(k.kid)) throw new PreloadError(p, `duplicate kid ${JSON.stringify(k.kid)}`);
    kids.add(k.kid);
  }
  const claim = (what: string, v: string | undefined) => {
    if (v !== undefined && !CLAIM_NAME_RE.test(v)) throw new PreloadError(p, `${what} ${JSON.stringify(v)} is not a valid claim name`);
    return v;
  };
  for (const c of input.requiredClaims ?? []) claim('required claim', c);
  const claimValues: ClaimValueRule[] = (input.claimValues ?? []).map((rule) => {
    claim('claim_values', rule.claim);
    const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
    if (rule.oneOf && (!rule.oneOf.length || !rule.oneOf.every(scalar))) throw new PreloadError(p, `claim_values.${rule.claim}: values must be strings, numbers or booleans`);
    if (rule.contains && (!rule.contains.length || !rule.contains.every((v) => typeof v === 'string' && v.length > 0 && !v.includes(' ')))) {
      throw new PreloadError(p, `claim_values.${rule.claim}.contains: values must be non-empty strings without spaces`);
    }
    return { claim: rule.claim, ...(rule.oneOf ? { oneOf: [...rule.oneOf] } : {}), ...(rule.contains ? { contains: [...rule.contains] } : {}) };
  });
  const leeway = input.leeway ?? 0;
  if (!Number.isInteger(leeway) || leeway < 0 || leeway > 600) throw new PreloadError(p, 'leeway must be 0..600 seconds');
  const maxLength = input.maxLength ?? 8192;
  if (!Number.isInteger(maxLength) || maxLength < 64 || maxLength > 65536) throw new PreloadError(p, 'maxLength must be 64..65536');
  const out: JwtProviderOutput = {
    algorithms: [...input.algorithms],
    keys: usable,
    issuer: input.issuer ?? [],
    audience: input.audience ?? [],
    leeway,
    requiredClaims: input.requiredClaims ?? [],
    // only when given: providers without claim values keep their preload (and cache generation)
    ...(claimValues.length ? { claimValues } : {}),
    requireExp: input.requireExp ?? true,
    maxLength,
    clientClaim: claim('clientClaim', input.clientClaim) ?? 'sub',
  };
  if (input.roleClaim !== undefined) out.roleClaim = claim('roleClaim', input.roleClaim);
  if (input.tierClaim !== undefined) out.tierClaim = claim('tierClaim', input.tierClaim);
  return out;
}

export function buildAuthPreload(providers: JwtProviderInput[], opts: AuthPreloadOptions = {}): AuthPreloadObject {
  const jwt: Record<string, JwtProviderOutput> = {};
  for (const input of providers) {
    if (Object.prototype.hasOwnProperty.call(jwt, input.name)) throw new PreloadError(input.name, 'defined twice');
    const out = buildJwtProvider(input);
    if (opts.jwtCacheTtl !== undefined) {
      if (!Number.isInteger(opts.jwtCacheTtl) || opts.jwtCacheTtl < 1) throw new PreloadError(input.name, 'cache ttl must be a positive number of seconds');
      // the key mode is part of the generation: switching it finds none of the old entries
      if (opts.jwtCacheHashed) out.cacheHashed = true;
      out.cacheGen = cacheGeneration(input.name, out);
      out.cacheTtl = opts.jwtCacheTtl;
    }
    jwt[input.name] = out;
  }
  return opts.claimHash ? { version: 1, jwt, claimHash: true } : { version: 1, jwt };
}

// The text of dist/njs/auth.json (write it with mode 0600: it may hold HMAC secrets).
export function renderAuthPreload(providers: JwtProviderInput[], opts: AuthPreloadOptions = {}): string {
  return authPreloadText(buildAuthPreload(providers, opts));
}

/** The file text of a built preload object. */
export function authPreloadText(preload: AuthPreloadObject): string {
  return JSON.stringify(preload, null, 2) + '\n';
}
