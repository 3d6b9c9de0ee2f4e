/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// nginx-facing handlers. Each takes the request object and does the whole job for its
// mode in ONE njs call (~7-8 µs each), leaving lookups, limits and routing to nginx.
//
// Why two shapes:
//  * API keys -> `js_set $gw_apikey gateway.apiKey;` (synchronous). Hashing is sync
//    (createHash) and the key lookup is an nginx `map` on `$gw_key_hash`, so no subrequest
//    is needed: the handler writes `$gw_key_hash` (a js_var), reads `$gw_key_meta` (the map,
//    evaluated by nginx right then), and writes the identity js_vars. It returns "ok" or a
//    reason code that the location tests with `if ($gw_apikey != ok) { return 401; }`.
//  * JWT -> `auth_request` to an internal location with `js_content gateway.jwt;`.
//    RS*/PS*/ES* (and HS384/512) need WebCrypto, which is async and therefore not allowed in
//    js_set. The handler answers 204 with identity in `X-Gw-*` response headers (read by
//    `auth_request_set ... $sent_http_x_gw_*`) or 401 with `X-Gw-Status: <reason>`.
// See docs/njs-auth.md for the directive shape.
import { decideApiKey, extractApiKey, extractBearer, hashApiKey, isWellFormedKey } from './apikey.ts';
import { providerName, safeIdentity } from './identity.ts';
import { JsonObject, JwtPolicy, verifyJwt } from './jwt.ts';

export interface JwtProvider extends JwtPolicy {
  clientClaim?: string; // default "sub"
  roleClaim?: string; // optional
  tierClaim?: string; // optional
}

export interface AuthPreload {
  version: number;
  jwt: { [provider: string]: JwtProvider };
}

// js_preload_object gw_auth from njs/auth.json;
declare const gw_auth: AuthPreload | undefined;

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

// js_set $gw_apikey gateway.apiKey;  -> "ok" | missing_key | malformed_key | unknown_key | expired_key
// The same value is written to $gw_auth_status for the shared 401 responder.
export function apiKey(r: NginxHTTPRequest): string {
  const status = apiKeyCheck(r);
  r.variables.gw_auth_status = status;
  return status;
}

function apiKeyCheck(r: NginxHTTPRequest): string {
  const v = r.variables;
  const headerName = v.gw_key_header || 'X-API-Key';
  const key = extractApiKey(r.headersIn['Authorization'], r.headersIn[headerName]);
  if (key === null) {
    return 'missing_key';
  }
  if (!isWellFormedKey(key)) {
    return 'malformed_key';
  }
  v.gw_key_hash = hashApiKey(key);
  const d = decideApiKey(v.gw_key_meta, nowSeconds());
  if (!d.ok) {
    return d.reason;
  }
  v.gw_client_id = d.meta.client;
  v.gw_client_role = d.meta.role;
  v.gw_client_tier = d.meta.tier;
  return 'ok';
}

function deny(r: NginxHTTPRequest, reason: string, detail: string): void {
  r.log('gateway jwt: ' + reason + ': ' + detail);
  r.headersOut['X-Gw-Status'] = reason;
  r.return(401);
}

function claimIdentity(claims: JsonObject, name: string | undefined): string | null | undefined {
  if (typeof name !== 'string' || name.length === 0 || !Object.prototype.hasOwnProperty.call(claims, name)) {
    return undefined;
  }
  return safeIdentity(claims[name]);
}

// location ~ ^/_gw_auth/jwt/<provider>$ { internal; js_content gateway.jwt; }
// Any unexpected exception answers 500 (auth_request then fails closed with 500).
export async function jwt(r: NginxHTTPRequest): Promise<void> {
  try {
    await jwtCheck(r);
  } catch (e) {
    r.error('gateway jwt: internal error: ' + String(e));
    r.return(500);
  }
}

async function jwtCheck(r: NginxHTTPRequest): Promise<void> {
  const name = providerName(r.uri);
  const cfg = typeof gw_auth === 'undefined' || !gw_auth.jwt ? undefined : gw_auth.jwt[name];
  if (cfg === undefined) {
    r.error('gateway jwt: no provider "' + name + '" in the gw_auth preload object');
    r.return(500);
    return;
  }
  const token = extractBearer(r.headersIn['Authorization']);
  if (token === null) {
    deny(r, 'missing_token', 'no bearer token');
    return;
  }
  const res = await verifyJwt(token, cfg, nowSeconds());
  if (!res.ok) {
    deny(r, res.reason, res.detail);
    return;
  }
  const client = claimIdentity(res.claims, cfg.clientClaim || 'sub');
  const role = claimIdentity(res.claims, cfg.roleClaim);
  const tier = claimIdentity(res.claims, cfg.tierClaim);
  if (client === undefined || client === null || role === null || tier === null) {
    deny(r, 'bad_claims', 'identity claims missing or not header-safe');
    return;
  }
  r.headersOut['X-Gw-Status'] = 'ok';
  r.headersOut['X-Gw-Client'] = client;
  r.headersOut['X-Gw-Role'] = role || '';
  r.headersOut['X-Gw-Tier'] = tier || '';
  r.headersOut['X-Gw-Claims'] = res.payloadSegment;
  r.return(204);
}
