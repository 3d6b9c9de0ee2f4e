/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// nginx-facing handlers. Each takes the request object and does the whole job for its
// mode in ONE njs call (~7-8 µs each), leaving lookups, limits and routing to nginx.
//
// Why two shapes:
//  * API keys -> `js_set $gw_apikey gateway.apiKey;` (synchronous). Hashing is sync
//    (createHash) and the key lookup is an nginx `map` on `$gw_key_hash`, so no subrequest
//    is needed: the handler reads the presented key from `$gw_key_presented` or
//    `$gw_key_bearer` (maps; the full extraction only for a key the map does not accept),
//    writes `$gw_key_hash` (a js_var), reads
//    `$gw_key_meta` (the map, evaluated by nginx right then), and writes the identity
//    js_vars. It returns "ok" or a reason code that the location tests with
//    `if ($gw_apikey != ok) { return 401; }`.
//  * JWT -> `auth_request` to an internal location with `js_content gateway.jwt;`.
//    RS*/PS*/ES* (and HS384/512) need WebCrypto, which is async and therefore not allowed in
//    js_set. The handler answers 204 with identity in `X-Gw-*` response headers (read by
//    `auth_request_set ... $sent_http_x_gw_*`) or 401 with `X-Gw-Status: <reason>`.
//  * Verified-token cache (jwtcache.ts, auth.jwt_cache): every JWT handler answers a token it
//    has verified before from the gw_jwt_cache shared dict, and `js_set $gw_jwt_cached
//    gateway.jwtCached` lets auth_request routes skip the subrequest on a hit.
// See docs/njs-auth.md for the directive shape.
import { decidePresentedKey, extractApiKey, extractBearer, hashApiKey, keyExpiry, MAX_API_KEY_LENGTH, parseKeyMeta } from './apikey.ts';
import { providerName, safeIdentity, safeRole } from './identity.ts';
import { logLine, logText } from './logtext.ts';
import { DEFAULT_MAX_TOKEN_LENGTH, JsonObject, JwtOk, JwtPolicy, verifyJwt, verifyJwtSync } from './jwt.ts';
import { claimKeyFrom } from './keys.ts';
import { hasOwn } from './json.ts';
import { CacheSettings, CachedIdentity, JWT_CACHE_ZONE, JwtCacheDict, RAW_KEY_MAX, TIMED_MARK, cacheDeadline, cacheGet, cacheKey, cachePut, perEntryTimeouts } from './jwtcache.ts';
import cr from 'crypto';

export interface JwtProvider extends JwtPolicy, CacheSettings {
  clientClaim?: string; // default "sub"
  roleClaim?: string; // optional
  tierClaim?: string; // optional
}

export interface AuthPreload {
  version: number;
  jwt: { [provider: string]: JwtProvider };
  // some upstream hashes on a JWT claim: derive $gw_claim_key here (see claimKeyFor)
  claimHash?: boolean;
}

// js_preload_object gw_auth from njs/auth.json;
declare const gw_auth: AuthPreload | undefined;

function nowSeconds(): number {
  // whole seconds without Math.floor (a global lookup, ~2,500 instructions in a request VM)
  const ms = Date.now();
  return (ms - (ms % 1000)) / 1000;
}

// js_set $gw_apikey gateway.apiKey;  -> "ok" | missing_key | malformed_key | unknown_key | expired_key
// A refusal's reason is also written to $gw_auth_status for the shared 401 responder. This is the full
// handler: it extracts the presented key itself (apikey.ts); the fast path below takes nginx's
// candidate instead.
export function apiKey(r: NginxHTTPRequest): string {
  const status = apiKeyCheck(r);
  // an accepted key leaves $gw_auth_status empty: the access log's "auth" field reads "ok" from
  // the identity written ($gw_auth_outcome, auth/render.ts), one variable write less a request
  if (status !== 'ok') {
    r.variables.gw_auth_status = status;
  }
  return status;
}

// ---------------------------------------------------------------------------------------
// Fast paths (src/njs/bundle.ts, hasFastPath): the common case of a handler written flat, with
// no helper calls, so the request VM creates none of the full handler's functions; anything
// else goes to `full` (the whole handler, which decides from scratch). Each returns exactly
// what the full handler returns and writes the same variables; tests/njs/fast-paths.test.ts
// runs both on the same inputs.

// apiKey for a key the key map accepts. The candidate is the route's key header as nginx holds
// it ($gw_key_presented, a map on the route's header name), else a bearer token of key syntax
// ($gw_key_bearer, a regex map evaluated only then): hashed as it is, with no syntax check here,
// since the key map decides first (apikey.ts, decidePresentedKey). A key the map does not accept
// goes to the full handler, which extracts the key itself and tells malformed from unknown.
// The key map's "client|role|tier|expires" (or "client" alone) is read with one split.
export function apiKeyFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => string): string {
  const v = r.variables;
  const key = v.gw_key_presented || v.gw_key_bearer;
  // a longer key is malformed and never hashed
  if (!key || key.length > MAX_API_KEY_LENGTH) {
    return full(r);
  }
  v.gw_key_hash = cr.createHash('sha256').update(key).digest('hex');
  // "client|role|tier|expires", or "client" alone for a key with none of those (keys.map): one
  // split, since each native call (indexOf, substring) costs ~1k instructions in a request VM,
  // about what a split adds per field
  const f = (v.gw_key_meta || '').split('|');
  if (f.length === 1) {
    // "" (not in the map) and "!" (revoked in the store, live keys on) are no client name
    if (f[0] === '' || f[0] === '!') {
      return full(r);
    }
    v.gw_client_id = f[0];
    return 'ok';
  }
  if (f.length !== 4 || f[0] === '') {
    return full(r);
  }
  // no Math or Infinity: a global's lookup costs ~2.5k instructions here
  const x = f[3];
  const e = x === '0' ? 0 : +x;
  if (!(e >= 0 && e % 1 === 0 && e - e === 0)) {
    return full(r);
  }
  // e is a whole number of seconds: floor(now) >= e exactly when now >= e
  if (e === 0 || Date.now() / 1000 < e) {
    v.gw_client_id = f[0];
    if (f[1] !== '') {
      v.gw_client_role = f[1];
    }
    if (f[2] !== '') {
      v.gw_client_tier = f[2];
    }
    return 'ok';
  }
  v.gw_auth_status = 'expired_key';
  return 'expired_key';
}

// The JWT fast paths answer from the verified-token cache entry of the request's
// `Authorization` header under the route's provider generation ($gw_jwt_fast, a map
// the auth feature writes: "" when the cache is off or a claim feeds a hash key, which only
// the full handler derives, and for a provider keyed by the header's SHA-256, whose
// generation is in $gw_jwt_fast_sha256 instead: read only when $gw_jwt_fast is empty, so the
// default key costs nothing more). Only a token that passed full verification is ever stored
// (jwtcache.ts), so a hit is that token.

// jwtSync on a cache hit: what jwtCached answers then (the same identity, "ok").
export function jwtSyncFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => string): string {
  return jwtCachedFast(r, full);
}

// jwtCached on a cache hit (auth_request routes: the subrequest is then skipped).
export function jwtCachedFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => string): string {
  const v = r.variables;
  const gen = v.gw_jwt_fast;
  const h = r.headersIn['Authorization'];
  const d = ngx.shared[JWT_CACHE_ZONE];
  if (typeof h !== 'string' || !d) {
    return full(r);
  }
  // keyed by the whole header (jwtcache.ts, cacheKey: the header itself, or its SHA-256 when
  // longer than RAW_KEY_MAX or for a provider keyed by it): an entry exists only for a header
  // whose token passed full verification, so no scheme check or token cut is needed here
  let key = '';
  if (gen) {
    key = h.length <= RAW_KEY_MAX ? gen + '.' + h : gen + ':' + cr.createHash('sha256').update(h).digest('base64url');
  } else {
    const hashedGen = v.gw_jwt_fast_sha256;
    if (!hashedGen) {
      return full(r);
    }
    key = hashedGen + ':' + cr.createHash('sha256').update(h).digest('base64url');
  }
  const raw = d.get(key);
  if (typeof raw !== 'string') {
    return full(r);
  }
  // the entry (jwtcache.ts): "deadline\nclient\nrole\ntier\npayload", served while now < deadline,
  // or a timed one, "...\npayload\nt", which the dict returns only before its deadline: served
  // without reading the clock (one split: each indexOf or substring would cost ~1k instructions)
  const f = raw.split('\n');
  if (f.length === 6) {
    if (f[5] !== TIMED_MARK) {
      return full(r);
    }
  } else {
    const now = Date.now();
    // (an empty or unreadable deadline reads 0 or NaN: not before it)
    if (f.length !== 5 || !((now - (now % 1000)) / 1000 < +f[0])) {
      return full(r);
    }
  }
  v.gw_client_id = f[1];
  if (f[2] !== '') {
    v.gw_client_role = f[2];
  }
  if (f[3] !== '') {
    v.gw_client_tier = f[3];
  }
  v.gw_client_claims = f[4];
  v.gw_jwt_cache = 'hit';
  return 'ok';
}

function apiKeyCheck(r: NginxHTTPRequest): string {
  const v = r.variables;
  const key = extractApiKey(r.headersIn['Authorization'], r.headersIn[v.gw_key_header || 'X-API-Key']);
  return decidePresentedKey(key, function (k: string): string {
    return apiKeyLookup(v, k);
  });
}

// Hash the presented key, look it up ($gw_key_meta: the key map, evaluated by nginx when
// read) and decide; the clock is read only for keys that expire.
function apiKeyLookup(v: NginxVariables, key: string): string {
  v.gw_key_hash = hashApiKey(key);
  const m = parseKeyMeta(v.gw_key_meta);
  if (m === null) {
    return 'unknown_key';
  }
  const expired = m.expires === 0 ? null : keyExpiry(m, nowSeconds());
  if (expired !== null) {
    return expired;
  }
  // each variable write is a lookup by name (~900 instructions): an unset role or tier stays
  // the js_var's empty default instead of being written
  v.gw_client_id = m.client;
  if (m.role !== '') {
    v.gw_client_role = m.role;
  }
  if (m.tier !== '') {
    v.gw_client_tier = m.tier;
  }
  return 'ok';
}

function deny(r: NginxHTTPRequest, reason: string, detail: string): void {
  r.log(logLine('gateway jwt: ' + reason + ': ' + detail, 512));
  r.headersOut['X-Gw-Status'] = reason;
  r.return(401);
}

function claimIdentity(claims: JsonObject, name: string | undefined, role: boolean): string | null | undefined {
  if (typeof name !== 'string' || name.length === 0 || !hasOwn(claims, name)) {
    return undefined;
  }
  return role ? safeRole(claims[name]) : safeIdentity(claims[name]);
}

interface JwtIdentity {
  client: string;
  role: string;
  tier: string;
}

// Identity from verified claims, or null when the configured claims are missing or unsafe.
function jwtIdentity(res: JwtOk, cfg: JwtProvider): JwtIdentity | null {
  const client = claimIdentity(res.claims, cfg.clientClaim || 'sub', false);
  const role = claimIdentity(res.claims, cfg.roleClaim, true);
  const tier = claimIdentity(res.claims, cfg.tierClaim, false);
  if (client === undefined || client === null || role === null || tier === null) {
    return null;
  }
  return { client: client, role: role || '', tier: tier || '' };
}

function providerConfig(name: string): JwtProvider | undefined {
  return typeof gw_auth === 'undefined' || !gw_auth.jwt ? undefined : gw_auth.jwt[name];
}

// The verified-token cache (jwtcache.ts) of a provider: its dict and the key of this token's
// Authorization header, or null when the cache is off or the token is too long to have been
// accepted (never hashed then).
interface CacheSlot {
  dict: JwtCacheDict;
  key: string;
  ttl: number;
}

function cacheSlot(cfg: JwtProvider, token: string, authorization: string): CacheSlot | null {
  if (typeof cfg.cacheGen !== 'string' || typeof cfg.cacheTtl !== 'number') {
    return null;
  }
  const maxLength = typeof cfg.maxLength === 'number' ? cfg.maxLength : DEFAULT_MAX_TOKEN_LENGTH;
  const dict = ngx.shared[JWT_CACHE_ZONE];
  if (!dict || token.length > maxLength) {
    return null;
  }
  return { dict: dict as JwtCacheDict, key: cacheKey(cfg.cacheGen, authorization, cfg.cacheHashed === true), ttl: cfg.cacheTtl };
}

function remember(slot: CacheSlot | null, res: JwtOk, id: JwtIdentity, cfg: JwtProvider, now: number): void {
  if (slot !== null) {
    const cached: CachedIdentity = { client: id.client, role: id.role, tier: id.tier, payload: res.payloadSegment };
    // timed entries where the dict takes a timeout per entry (njs 0.8.5): the fast paths then
    // read no clock (jwtcache.ts)
    const timed = perEntryTimeouts(typeof njs === 'object' ? njs.version_number : undefined);
    cachePut(slot.dict, slot.key, cacheDeadline(res.claims, cfg.leeway, slot.ttl, now), cached, now, timed ? Date.now() : undefined);
  }
}

function setIdentity(v: NginxHTTPRequest['variables'], client: string, role: string, tier: string, claims: string): void {
  v.gw_client_id = client;
  if (role !== '') {
    v.gw_client_role = role;
  }
  if (tier !== '') {
    v.gw_client_tier = tier;
  }
  v.gw_client_claims = claims;
  claimKeyFor(v, claims);
}

// The consistent-hash key of a route whose upstream hashes on a claim ($gw_hash_spec
// "claim:<name>", set in the rewrite phase before any auth check runs), written to the js_var
// $gw_claim_key by the call that verified the token: identity and claims cost one njs call.
// Builds without a claim-hashed upstream do not even read $gw_hash_spec (preload flag).
// Model routes pick their upstream later and derive the key in routing.ts's body step.
function claimKeyFor(v: NginxHTTPRequest['variables'], claims: string): void {
  if (typeof gw_auth === 'undefined' || gw_auth.claimHash !== true) {
    return;
  }
  const spec = v.gw_hash_spec;
  if (spec && spec.indexOf('claim:') === 0) {
    v.gw_claim_key = claimKeyFrom(spec, claims);
  }
}

// js_set $gw_jwt_cached gateway.jwtCached;  (auth_request routes, before the subrequest)
// "ok" when the token is in the verified-token cache (identity set, the route skips the
// auth_request subrequest), else "miss": the subrequest verifies it in full.
export function jwtCached(r: NginxHTTPRequest): string {
  const v = r.variables;
  const cfg = providerConfig(v.gw_jwt_provider || '');
  const auth = r.headersIn['Authorization'];
  const token = extractBearer(auth);
  const slot = cfg === undefined || token === null ? null : cacheSlot(cfg, token, auth as string);
  const hit = slot === null ? null : cacheGet(slot.dict, slot.key, nowSeconds());
  if (hit === null) {
    return 'miss';
  }
  setIdentity(v, hit.client, hit.role, hit.tier, hit.payload);
  v.gw_jwt_cache = 'hit';
  return 'ok';
}

// js_set $gw_jwt gateway.jwtSync;  (routes whose provider accepts HS256 only)
// One synchronous njs call in the route's own location, like API keys: no auth_request
// subrequest. $gw_jwt_provider names the provider; returns "ok" or a reason code (a reason is
// also written to $gw_auth_status) and sets the identity variables.
export function jwtSync(r: NginxHTTPRequest): string {
  const status = jwtSyncCheck(r);
  if (status !== 'ok') {
    r.variables.gw_auth_status = status;
  }
  return status;
}

function jwtSyncCheck(r: NginxHTTPRequest): string {
  const v = r.variables;
  const cfg = providerConfig(v.gw_jwt_provider || '');
  if (cfg === undefined) {
    r.error('gateway jwt: no provider ' + logText(v.gw_jwt_provider) + ' in the gw_auth preload object');
    return 'no_key';
  }
  const auth = r.headersIn['Authorization'];
  const token = extractBearer(auth);
  if (token === null) {
    return 'missing_token';
  }
  const now = nowSeconds();
  const slot = cacheSlot(cfg, token, auth as string);
  const hit = slot === null ? null : cacheGet(slot.dict, slot.key, now);
  if (hit !== null) {
    setIdentity(v, hit.client, hit.role, hit.tier, hit.payload);
    v.gw_jwt_cache = 'hit';
    return 'ok';
  }
  if (slot !== null) {
    v.gw_jwt_cache = 'miss';
  }
  const res = verifyJwtSync(token, cfg, now);
  if (!res.ok) {
    r.log(logLine('gateway jwt: ' + res.reason + ': ' + res.detail, 512));
    return res.reason;
  }
  const id = jwtIdentity(res, cfg);
  if (id === null) {
    return 'bad_claims';
  }
  setIdentity(v, id.client, id.role, id.tier, res.payloadSegment);
  remember(slot, res, id, cfg, now);
  return 'ok';
}

// location ~ ^/_gw_auth/jwt/<provider>$ { internal; js_content gateway.jwt; }
// Any unexpected exception answers 500 (auth_request then fails closed with 500).
export async function jwt(r: NginxHTTPRequest): Promise<void> {
  try {
    await jwtCheck(r);
  } catch (e) {
    r.error('gateway jwt: internal error: ' + logText(String(e), 200));
    r.return(500);
  }
}

function accept(r: NginxHTTPRequest, client: string, role: string, tier: string, claims: string): void {
  r.headersOut['X-Gw-Status'] = 'ok';
  r.headersOut['X-Gw-Client'] = client;
  r.headersOut['X-Gw-Role'] = role;
  r.headersOut['X-Gw-Tier'] = tier;
  r.headersOut['X-Gw-Claims'] = claims;
  r.return(204);
}

async function jwtCheck(r: NginxHTTPRequest): Promise<void> {
  const name = providerName(r.uri);
  const cfg = providerConfig(name);
  if (cfg === undefined) {
    r.error('gateway jwt: no provider ' + logText(name) + ' in the gw_auth preload object');
    r.return(500);
    return;
  }
  const auth = r.headersIn['Authorization'];
  const token = extractBearer(auth);
  if (token === null) {
    deny(r, 'missing_token', 'no bearer token');
    return;
  }
  const now = nowSeconds();
  const slot = cacheSlot(cfg, token, auth as string);
  const hit = slot === null ? null : cacheGet(slot.dict, slot.key, now);
  if (hit !== null) {
    r.variables.gw_jwt_cache = 'hit';
    claimKeyFor(r.variables, hit.payload);
    accept(r, hit.client, hit.role, hit.tier, hit.payload);
    return;
  }
  if (slot !== null) {
    r.variables.gw_jwt_cache = 'miss';
  }
  const res = await verifyJwt(token, cfg, now);
  if (!res.ok) {
    deny(r, res.reason, res.detail);
    return;
  }
  const id = jwtIdentity(res, cfg);
  if (id === null) {
    deny(r, 'bad_claims', 'identity claims missing or not header-safe');
    return;
  }
  remember(slot, res, id, cfg, now);
  claimKeyFor(r.variables, res.payloadSegment);
  accept(r, id.client, id.role, id.tier, res.payloadSegment);
}
