// Normalize step for njs authentication: the schema-valid `auth:` sections (top level and
// per route) → AuthSettings / RouteAuth with every default filled. Files named here are
// read in the load stage (Feature.inputs) and turned into outputs by outputs.ts; the model
// never holds key material.
import path from 'node:path';
import type { AuthSettings, ClaimValueRule, JwtCacheSettings, JwtProviderSettings, RouteAuth, SourcePos } from '../../model/types.ts';
import { DEFAULT_IDENTITY_HEADERS } from '../../model/identity.ts';

export { DEFAULT_IDENTITY_HEADERS };

/* eslint-disable @typescript-eslint/no-explicit-any */
type Raw = any;

export const DEFAULT_KEY_HEADER = 'X-API-Key';
export const DEFAULT_FAILURE_LOG = 'logs/auth.log';
export const DEFAULT_MAX_TOKEN_LENGTH = 4096;
// 2m: an entry holds its header as the key (njs/lib/jwtcache.ts), ~600 bytes of slab for a
// 200-byte token, so ~3,000 tokens
export const DEFAULT_JWT_CACHE = { size: '2m', ttlSeconds: 300, key: 'header' } as const;

/** "90s" / "5m" / "1h" / "45" → seconds. */
export function ttlSeconds(v: string | undefined): number {
  if (v === undefined) return DEFAULT_JWT_CACHE.ttlSeconds;
  const m = /^([0-9]+)(s|m|h)?$/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

function normalizeJwtCache(c: Raw): JwtCacheSettings | null {
  if (c === false) return null;
  const o: Raw = c ?? {};
  return { size: o.size ?? DEFAULT_JWT_CACHE.size, ttlSeconds: ttlSeconds(o.ttl), key: o.key ?? DEFAULT_JWT_CACHE.key };
}

const list = (v: Raw): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** "30s" / "2m" / "45" → seconds. */
export function leewaySeconds(v: string | undefined): number {
  if (v === undefined) return 0;
  const m = /^([0-9]+)(s|m)?$/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

export function normalizeAuth(a: Raw, baseDir: string, at: (p: string) => SourcePos): AuthSettings | null {
  if (a === undefined || a === null) return null;
  const ih: Raw = a.identity_headers ?? {};
  const header = (k: keyof typeof DEFAULT_IDENTITY_HEADERS): string | null => (ih[k] === false ? null : (ih[k] ?? DEFAULT_IDENTITY_HEADERS[k]));
  const jwt: JwtProviderSettings[] = Object.entries((a.jwt as Record<string, Raw>) ?? {}).map(([name, j]) => ({
    name,
    algorithms: j.algorithms,
    jwksFile: typeof j.jwks_file === 'string' ? path.resolve(baseDir, j.jwks_file) : null,
    secretFile: typeof j.secret_file === 'string' ? path.resolve(baseDir, j.secret_file) : null,
    secretEnv: j.secret_env ?? null,
    issuer: list(j.issuer),
    audience: list(j.audience),
    leeway: leewaySeconds(j.leeway),
    requiredClaims: j.required_claims ?? [],
    claimValues: claimValues(j.claim_values),
    requireExp: j.require_exp ?? true,
    maxTokenLength: j.max_token_length ?? DEFAULT_MAX_TOKEN_LENGTH,
    clientClaim: j.client_claim ?? 'sub',
    roleClaim: j.role_claim ?? null,
    tierClaim: j.tier_claim ?? null,
    at: at(`auth.jwt.${name}`),
  }));
  return {
    apiKeys: a.api_keys
      ? { file: path.resolve(baseDir, a.api_keys.file), header: a.api_keys.header ?? DEFAULT_KEY_HEADER, at: at('auth.api_keys') }
      : null,
    jwt,
    identityHeaders: { client: header('client'), role: header('role'), tier: header('tier'), method: header('method'), claims: header('claims') },
    failureLog: a.failure_log === false ? null : (a.failure_log ?? DEFAULT_FAILURE_LOG),
    jwtCache: jwt.length > 0 ? normalizeJwtCache(a.jwt_cache) : null,
    at: at('auth'),
  };
}

/** `claim_values:` → rules in key order: a scalar is a one-element oneOf, a list a oneOf, `{ contains }` a contains list. */
export function claimValues(raw: Raw): ClaimValueRule[] {
  return Object.entries((raw as Record<string, Raw>) ?? {}).map(([claim, v]) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return { claim, oneOf: null, contains: list(v.contains) };
    return { claim, oneOf: Array.isArray(v) ? v : [v], contains: null };
  });
}

/** A route's `auth:`; null for public routes (absent or `none`). */
export function normalizeRouteAuth(r: Raw, auth: AuthSettings | null, at: SourcePos): RouteAuth | null {
  if (r === undefined || r === null || r === 'none') return null;
  const o: Raw = typeof r === 'string' ? { methods: [r] } : r;
  const methods = (['api_key', 'jwt'] as const).filter((x) => o.methods.includes(x));
  const providers = auth?.jwt ?? [];
  return {
    methods,
    jwtProvider: o.jwt_provider ?? (methods.includes('jwt') && providers.length === 1 ? providers[0].name : null),
    roles: o.roles ?? [],
    stripCredentials: o.strip_credentials ?? true,
    keyHeader: o.key_header ?? auth?.apiKeys?.header ?? DEFAULT_KEY_HEADER,
    claimValues: claimValues(o.claim_values),
    at,
  };
}
