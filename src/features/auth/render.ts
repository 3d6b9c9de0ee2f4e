// Rendering for njs authentication (the directive shape of docs/njs-auth.md, driven by
// `auth:` in gateway.yaml; docs/auth.md for users).
//
//   http level   conf.d/05-auth.conf: js_var identity variables, js_set $gw_apikey, the key
//                map include, js_preload_object gw_auth (JWT), challenge / role / tier maps and
//                the auth-failure log.
//   server       one `location = /_gw_auth/jwt/<provider>` (internal, js_content) per provider
//                used by the server's routes.
//   route        api_key only: everything in the rewrite phase of the route's own location
//                (secure_link for a key carrying its id, `if ($gw_apikey != ok)`, role check),
//                so limits keyed by the client work as is.
//                jwt (alone or with api_key): auth_request runs in the access phase, after
//                limit_req; the public location authenticates and hands over (try_files) to
//                the named location @gw_route_<name>_auth, where the role check, limits keyed
//                by the client and the proxying happen. With both methods an accepted API key
//                jumps there directly (`return 418` + error_page, recursive_error_pages on).
//
// Identity headers: the client's own copies never reach an upstream. Every name the gateway
// knows (the defaults and the configured names, forwarded or disabled) is set by the gateway
// or removed (an empty value) on every proxied route, public ones and configs without auth.
import { createHash } from 'node:crypto';
import type { GatewayModel, Route } from '../../model/types.ts';
import { bare, headerVar, ident, jsonBody, q, RenderError, settableHeader } from '../../plan/quote.ts';
import { tierKeyVar } from '../limits/index.ts';
import { uriReplacementMap } from '../proxy/index.ts';
import { d, inlineDirectives, jsonLogTemplate, raw, requestLogFields, type Block, type Directive, type LogField } from '../../plan/directive.ts';
import { DEFAULT_IDENTITY_HEADERS } from '../../model/identity.ts';
import { ERROR_KINDS, openAiErrorBody, type ErrorFormat } from '../../plan/errors.ts';
import { needsBodyStep } from '../routing/render.ts';
import { MAX_API_KEY_LENGTH, MIN_API_KEY_LENGTH, WELL_FORMED_KEY_CLASS } from '../../../njs/lib/apikey.ts';
import { RAW_KEY_MAX } from '../../../njs/lib/jwtcache.ts';
import { perModel } from '../../model/memo.ts';
import { KEY_PREFIX, NATIVE_KEY_PARTS } from '../../keys/store.ts';

export const AUTH_CONF = 'conf.d/05-auth.conf';
export const KEY_MAP_INCLUDE = 'conf.d/keys.map';
/** provider -> its verified-token cache generation, for the JWT handlers' fast path (outputs.ts) */
export const JWT_FAST_MAP_INCLUDE = 'conf.d/jwt-fast.map';

/** Some route's JWT handler runs in place (jwtSync or jwtCached) with the verified-token cache on. */
export function jwtFastMap(m: GatewayModel): boolean {
  return !!m.auth && m.auth.jwt.length > 0 && !!m.auth.jwtCache && m.routes.some((r) => syncJwt(r, m) || cachedJwtFirst(r, m));
}
export const PRELOAD_FILE = 'njs/auth.json';

/** Reason codes njs writes to $gw_auth_status, plus role_denied set by the role check. */
export const AUTH_FAILURE_REASONS = ['missing_key', 'malformed_key', 'unknown_key', 'expired_key', 'role_denied'];

const has = (r: Route, x: 'api_key' | 'jwt') => !!r.auth?.methods.includes(x);
const either = (r: Route) => has(r, 'api_key') && has(r, 'jwt');

/**
 * JWT-only routes whose provider accepts HS256 alone verify in one synchronous `js_set`
 * (createHmac) in their own location, like API keys; every other JWT route needs WebCrypto
 * (async) and authenticates through an auth_request subrequest and a hand-over.
 */
export function syncJwt(r: Route, m: GatewayModel): boolean {
  if (!has(r, 'jwt') || has(r, 'api_key') || !m.auth) return false;
  const p = m.auth.jwt.find((x) => x.name === r.auth!.jwtProvider);
  return !!p && p.algorithms.length > 0 && p.algorithms.every((a) => a === 'HS256');
}

/** Some route accepts API keys (the key store alone calls no handler). */
export const usesApiKeys = (m: GatewayModel): boolean => !!m.auth?.apiKeys && m.routes.some((r) => has(r, 'api_key'));

/** Runtime keys (njs/lib/livekeys.ts): API keys and the admin API on the status listener. */
export const liveKeys = (m: GatewayModel): boolean => usesApiKeys(m) && !!m.adminApi && !!m.global.status;
export const LIVE_KEYS_ZONE = 'gw_keys';

/** An API-key route's choice of handler with runtime keys, before the key check (see authConf). */
export const LIVE_KEY_CHECKS: Block[] = [
  { head: 'if ($gw_apikey = unknown_key)', lines: [d('set', '$gw_apikey', '$gw_apikey_live')] },
  // a stat() per request (no open_file_cache: a revocation applies to the very next request);
  // the live entries decide, so a natively checked key's identity is not kept
  {
    head: 'if (-f $document_root/../state/keys-revoked)',
    lines: [d('set', '$gw_client_id', '""'), d('set', '$gw_client_role', '""'), d('set', '$gw_client_tier', '""'), d('set', '$gw_apikey', '$gw_apikey_live')],
  },
];

/** /admin/keys on the status listener: create, revoke, rotate and list keys at runtime. */
export function liveKeysLocations(m: GatewayModel): Block[] {
  if (!liveKeys(m)) return [];
  return [
    {
      comment: 'admin API: API keys at runtime (bearer token; persisted in state/keys.json; *_temp_path makes nginx create state/ and html/)',
      head: 'location /admin/keys',
      origin: m.adminApi!.at,
      lines: [
        d('access_log', 'off'),
        d('allow', '127.0.0.1'),
        d('allow', '::1'),
        ...m.adminApi!.allow.map((c) => d('allow', bare(c, 'cidr'))),
        d('deny', 'all'),
        d('client_max_body_size', '16k'),
        d('client_body_buffer_size', '16k'),
        d('client_body_in_single_buffer', 'on'),
        d('scgi_temp_path', q('state', 'file')),
        // the routes test $document_root/../state/keys-revoked: the default root (html) must exist
        d('uwsgi_temp_path', q('html', 'file')),
        d('set', '$gw_admin_token_sha256', bare(m.adminApi!.tokenSha256, 'keyword')),
        raw('# the same export as the key check (one export less for every request), told apart by $gw_keys_admin'),
        d('set', '$gw_keys_admin', '1'),
        // routes of managed upstreams cache the flag file's absence (open_file_cache_valid 1s,
        // second-granular): the first live revocation answers once they have looked again
        d('set', '$gw_keys_flag_wait', m.upstreams.some((u) => u.healthCheck || u.circuitBreaker) ? '2100' : '0'),
        d('js_content', 'gateway.apiKeyLive'),
      ],
    },
  ];
}

/** The route authenticates with a JWT through the auth_request subrequest. */
export const asyncJwt = (r: Route, m: GatewayModel): boolean => has(r, 'jwt') && !syncJwt(r, m);

/**
 * auth_request JWT routes that first ask the verified-token cache in one synchronous js_set
 * ($gw_jwt_cached): a hit jumps to the post-auth location (error_page 418) without the
 * subrequest; a miss runs it. Not for routes accepting an API key too (their 418 is the key's)
 * nor for routes whose routing reads the body (the body step is their hand-over); there the
 * subrequest's handler still answers from the cache.
 */
export function cachedJwtFirst(r: Route, m: GatewayModel): boolean {
  return !!m.auth?.jwtCache && asyncJwt(r, m) && !either(r) && !needsBodyStep(r, m);
}

/**
 * The preload provider a route's JWTs are verified with: its provider, or, when the route
 * narrows it with claim_values, a variant of it that checks the provider's and the route's
 * values (njs/auth.json holds one per distinct narrowing). The variant has its own name and
 * therefore its own cache generation: an identity the verified-token cache holds for the plain
 * provider is never found under the variant, so a cached token cannot skip the route's values,
 * and the check costs no njs call of its own (it is part of the one verification).
 */
export function routeJwtProvider(r: Route): string | null {
  const ra = r.auth;
  if (!ra?.jwtProvider || !ra.methods.includes('jwt')) return null;
  if (!ra.claimValues.length) return ra.jwtProvider;
  const digest = createHash('sha256').update(JSON.stringify([ra.jwtProvider, ra.claimValues])).digest('hex').slice(0, 10);
  // `.` never occurs in a provider's own name (PATTERNS.name): a variant never takes one
  return `${ra.jwtProvider.slice(0, 40)}.${digest}`;
}

const labelRe = (s: string) => bare(s, 'token').replace(/\./g, '\\.');

// ---------------------------------------------------------------------------------------
// http level

/**
 * The auth-failure log, an http-level access log of its own (Feature http accessLogs): the
 * core then never writes `access_log off` beside it, which would cancel it too.
 */
export function authFailureLog(m: GatewayModel): Directive[] {
  if (!m.auth?.failureLog) return [];
  return [raw(`log_format gw_auth escape=json ${failureLogFormat(m)};`), d('access_log', q(m.auth.failureLog, 'file'), 'gw_auth', 'if=$gw_auth_failed')];
}

export function authLogFields(m: GatewayModel): LogField[] {
  if (!m.auth) return [];
  // an accepted credential leaves $gw_auth_status empty ($gw_auth_outcome: "ok" then, see authConf)
  const fields: LogField[] = [['auth', '$gw_auth_outcome', true], ['client', '$gw_client_id', true]];
  // hit | miss for JWT requests when the verified-token cache is on
  if (m.auth.jwtCache) fields.push(['jwt_cache', '$gw_jwt_cache', true]);
  return fields;
}

function failureLogFormat(m: GatewayModel): string {
  const fields: LogField[] = [
    ...requestLogFields(m),
    ['path', '$uri', true], // without the query string
    ['route', '$gw_route', true],
    ['status', '$status', false],
    ['reason', '$gw_auth_status', true],
    ['client', '$gw_client_id', true],
    ['user_agent', '$http_user_agent', true],
  ];
  return jsonLogTemplate(fields);
}

export function authConf(m: GatewayModel): { lines: string[]; blocks: Block[] } {
  const a = m.auth;
  if (!a) throw new RenderError('authConf without auth');
  const lines: string[] = [];
  const apiKeys = !!a.apiKeys;
  const keyRoutes = usesApiKeys(m);
  const jwt = a.jwt.length > 0;
  lines.push('# identity, written by gateway.apiKey (js_set) or copied from the JWT subrequest (auth_request_set)');
  for (const v of ['gw_key_hash', 'gw_key_header', 'gw_client_id', 'gw_client_role', 'gw_client_tier', 'gw_client_claims', 'gw_auth_status']) {
    lines.push(d('js_var', `$${v}`));
  }
  if (jwt) lines.push(d('js_preload_object', 'gw_auth', 'from', q(PRELOAD_FILE, 'file')));
  if (jwt && a.jwtCache) {
    lines.push(`# verified JWTs by provider generation and Authorization header (its SHA-256 past ${RAW_KEY_MAX} characters), until min(exp, ttl); no state file, ever`);
    // timeout= always: with it the dict checks each entry's own timeout on every get, which the
    // fast paths rely on to serve timed entries without a clock (njs/lib/jwtcache.ts)
    lines.push(d('js_shared_dict_zone', `zone=gw_jwt_cache:${bare(a.jwtCache.size, 'size')}`, `timeout=${a.jwtCache.ttlSeconds}s`, 'evict'));
    lines.push(d('js_var', '$gw_jwt_cache'));
  }
  const inPlace = m.routes.some((r) => syncJwt(r, m));
  const cacheFirst = m.routes.some((r) => cachedJwtFirst(r, m));
  if (inPlace || cacheFirst) lines.push(d('js_var', '$gw_jwt_provider'));
  if (inPlace) {
    lines.push('# HS256-only providers: one synchronous njs call verifies the token and sets the identity');
    lines.push(d('js_set', '$gw_jwt', 'gateway.jwtSync'));
  }
  if (cacheFirst) {
    lines.push('# other providers: a token in the verified-token cache skips the auth_request subrequest');
    lines.push(d('js_set', '$gw_jwt_cached', 'gateway.jwtCached'));
  }
  if (jwtFastMap(m)) {
    lines.push('# $gw_jwt_provider -> $gw_jwt_fast, its cache generation: a cached token is answered without the preload object');
    lines.push(d('include', JWT_FAST_MAP_INCLUDE));
  }
  if (keyRoutes) {
    lines.push('# a key that carries its id is checked by nginx (the native maps of conf.d/keys.map, secure_link in the route);');
    lines.push('# any other key takes one njs call: hash it, look it up in the key map, set the identity');
    lines.push(d('js_set', '$gw_apikey_std', 'gateway.apiKey'));
  }
  if (liveKeys(m)) {
    lines.push('# runtime keys (admin API, njs/lib/livekeys.ts): each API-key route sets $gw_apikey to $gw_apikey_fast, and to');
    lines.push('# $gw_apikey_live (the live entries) only when the key map does not accept the key or while a key of the');
    lines.push('# map is revoked live (the flag file state/keys-revoked): the common request makes no further njs call');
    lines.push(d('js_set', '$gw_apikey_live', 'gateway.apiKeyLive'));
    lines.push(d('js_var', '$gw_keys_admin'));
    lines.push(d('js_shared_dict_zone', `zone=${LIVE_KEYS_ZONE}:1m`, 'type=string'));
  }
  if (apiKeys) {
    lines.push('# sha256(key) -> "client|role|tier|expires" or "client"; never read $gw_key_meta anywhere else');
    if (keyRoutes) lines.push('# and key id -> "md5,expires", then, once secure_link has checked the key, its client, role and tier');
    lines.push(d('include', KEY_MAP_INCLUDE));
  }

  const blocks: Block[] = [];
  if (apiKeys) blocks.push(...keyFastMaps(m));
  if (keyRoutes) blocks.push(...nativeKeyMaps(m));
  blocks.push({
    comment: 'RFC 6750 challenge: no error attribute when no credentials were presented',
    head: 'map $gw_auth_status $gw_auth_challenge',
    lines: [
      d('default', q('Bearer realm="gateway", error="invalid_token"', 'text')),
      d('""', q('Bearer realm="gateway"', 'text')),
      d('missing_key', q('Bearer realm="gateway"', 'text')),
      d('missing_token', q('Bearer realm="gateway"', 'text')),
      d('role_denied', q('Bearer realm="gateway", error="insufficient_scope"', 'text')),
    ],
  });
  // The njs handlers write $gw_auth_status only with a refusal's reason (one njs variable write
  // less on every accepted request); every acceptance writes the client's identity, which no
  // refusal does. Read at log time only: a request that never reached the check (a CORS
  // preflight, a 405) wrote neither and logs "".
  blocks.push({
    comment: 'the auth outcome for the access log: "ok" for an accepted credential, else $gw_auth_status',
    head: 'map $gw_auth_status $gw_auth_outcome',
    lines: [d('""', '$gw_auth_identified'), d('default', '$gw_auth_status')],
  });
  blocks.push({ head: 'map $gw_client_id $gw_auth_identified', lines: [d('""', '""'), d('default', 'ok')] });
  blocks.push({
    comment: 'failed authentication (any reason code) goes to the auth-failure log',
    head: 'map $gw_auth_status $gw_auth_failed',
    lines: [d('default', '1'), d('""', '0'), d('ok', '0')],
  });
  blocks.push({
    head: 'map $gw_auth_status $gw_forbidden_message',
    lines: [d('default', '"forbidden"'), d('role_denied', '"role not allowed on this route"')],
  });
  // API-key header sent? (routes accepting both methods: a sent key decides, else the JWT)
  for (const h of keySentHeaders(m)) {
    blocks.push({ head: `map ${headerVar(h)} ${keySentVar(h)}`, lines: [d('default', '1'), d('""', '0')] });
  }
  for (const r of m.routes) {
    if (!r.auth?.roles.length) continue;
    blocks.push({
      comment: `roles allowed on route ${r.name} (a JWT role claim may list several, comma-separated)`,
      head: `map $gw_client_role ${roleOkVar(r)}`,
      origin: r.at,
      lines: [d('default', '0'), ...r.auth.roles.map((x) => d(q(`~(^|,)${labelRe(x)}(,|$)`, 'regex'), '1'))],
    });
  }
  for (const z of [...m.rateZones, ...m.connZones]) {
    const v = tierKeyVar(z);
    if (!v) continue;
    blocks.push({
      comment: `zone ${z.name} counts tier ${z.tier} only; other clients get an empty key (not counted)`,
      head: `map $gw_client_tier ${v}`,
      origin: z.at,
      lines: [d('default', '""'), d(q(`~^${labelRe(z.tier!)}$`, 'regex'), '$gw_client_id')],
    });
  }
  for (const r of m.routes) {
    const mp = upstreamUriMap(r, m);
    if (mp) blocks.push(mp);
  }
  return { lines, blocks };
}

/**
 * The API key fast path's candidates: $gw_key_presented is the route's key header as nginx holds
 * it (a map on the header name each API-key route sets in $gw_key_header), and $gw_key_bearer
 * the bearer token when it has key syntax, else "". gateway.apiKey hashes the first non-empty
 * one as it is (the key map decides first: njs/lib/apikey.ts, decidePresentedKey) and runs
 * njs's full extraction only for a key the map does not accept. So an ordinary request costs
 * no header lookup by name and no regex (the bearer map runs only without a key header).
 */
function keyFastMaps(m: GatewayModel): Block[] {
  const headers = new Map<string, string>();
  for (const r of m.routes) if (has(r, 'api_key')) headers.set(r.auth!.keyHeader.toLowerCase(), r.auth!.keyHeader);
  const key = `(?<gw_key_cand>[${WELL_FORMED_KEY_CLASS}]{${MIN_API_KEY_LENGTH},${MAX_API_KEY_LENGTH}})`;
  return [
    {
      comment: "the route's API-key header ($gw_key_header is set in each API-key route)",
      head: 'map $gw_key_header $gw_key_presented',
      lines: [d('default', '""'), ...[...headers.values()].sort().map((h) => d(q(h, 'header'), headerVar(h)))],
    },
    {
      comment: 'the bearer token when it has key syntax, else "" (njs extracts and checks anything else)',
      head: 'map $http_authorization $gw_key_bearer',
      lines: [d('default', '""'), d(q(`~^[Bb][Ee][Aa][Rr][Ee][Rr] +${key}$`, 'regex'), '$gw_key_cand')],
    },
  ];
}

/**
 * The native lane: a key that carries its id (NATIVE_KEY_RE in src/keys/store.ts) is checked by
 * nginx alone. The id picks the key's "md5,expires" (conf.d/keys.map); `secure_link` in the
 * route compares the presented key's MD5 with it and says "1" (match, not expired); only then
 * does the id reach the maps of the client, role and tier, and $gw_apikey read "ok" without
 * njs. Anything else (no id, an unknown id, a wrong key, an expired or revoked one) falls to
 * gateway.apiKey, which tells the reasons apart as before.
 *
 * These maps are always there where routes take API keys (the key map include names their
 * variables, and `keys map --out` may bring keys of the new form into a build made without
 * any); a route checks keys itself (secure_link, the identity) only when the store held such
 * a key at build time (apiKeys.nativeLane): without secure_link in the location, $secure_link
 * is "" at once and the chain costs two map lookups before the njs call.
 */
function nativeKeyMaps(m: GatewayModel): Block[] {
  return [
    {
      comment: 'the key the route was given: its header, else a bearer token of key syntax',
      head: 'map $gw_key_presented $gw_key_candidate',
      lines: [d('""', '$gw_key_bearer'), d('default', '$gw_key_presented')],
    },
    {
      comment: 'the id a key carries (gw_live_ + 12 hex + 43 base64url), else ""',
      head: 'map $gw_key_candidate $gw_key_native_id',
      lines: [d('default', '""'), d(q(`~^${NATIVE_KEY_PATTERN}$`, 'regex'), '$gw_key_nid')],
    },
    {
      comment: 'the id once secure_link has matched the key and it has not expired, else ""',
      head: 'map $secure_link $gw_key_verified_id',
      lines: [d('default', '""'), d('1', '$gw_key_native_id')],
    },
    {
      comment: liveKeys(m)
        ? 'a checked key is accepted here; any other goes to gateway.apiKey (the routes then ask the live entries)'
        : 'a checked key is accepted here; any other goes to gateway.apiKey',
      head: `map $gw_key_verified_id ${liveKeys(m) ? '$gw_apikey_fast' : '$gw_apikey'}`,
      lines: [d('""', '$gw_apikey_std'), d('default', 'ok')],
    },
  ];
}

/** The native key form (src/keys/store.ts) as an nginx regex, capturing the id as $gw_key_nid. */
const NATIVE_KEY_PATTERN = `${KEY_PREFIX}(?<gw_key_nid>${NATIVE_KEY_PARTS.id})${NATIVE_KEY_PARTS.secret}`;

/** secure_link in an API-key route's location: the key's MD5 against its id's entry. */
const NATIVE_KEY_CHECK: Directive[] = [d('secure_link', '$gw_key_native_check'), d('secure_link_md5', '$gw_key_candidate')];

/**
 * The identity of a natively checked key ("" for any other: gateway.apiKey writes its own when
 * the key check calls it). Set right before the key check, after the route's other checks, so
 * a request refused before it (a 405, a CORS preflight) logs no identity.
 */
const NATIVE_KEY_IDENTITY: Block = inlineDirectives(
  [d('set', '$gw_client_id', '$gw_key_native_client'), d('set', '$gw_client_role', '$gw_key_native_role'), d('set', '$gw_client_tier', '$gw_key_native_tier')],
  'a key nginx checked itself (the native maps of conf.d/keys.map): its identity',
);

// checked with its prefix, as headerVar does: a header name may start with a digit
const keySentVar = (header: string) => `$${bare(`gw_key_sent_${header.toLowerCase().replace(/-/g, '_')}`, 'ident')}`;

/** The key headers whose presence decides a route that accepts a key or a JWT (lowercased, each once). */
const keySentHeaders = (m: GatewayModel): string[] => [...new Set(m.routes.filter(either).map((r) => r.auth!.keyHeader.toLowerCase()))].sort();

const roleOkVar = (r: Route) => `$gw_role_ok_${ident(r.name)}`;

/**
 * proxy_pass with a URI part is refused in a named location: routes that hand over and
 * strip or replace their prefix compute the upstream URI with a map instead (the same
 * result nginx's prefix replacement gives). Prefixes without a trailing slash already use
 * $gw_strip_<route> (view.ts).
 */
function upstreamUriMap(r: Route, m: GatewayModel): Block | null {
  return asyncJwt(r, m) ? uriReplacementMap(r) : null;
}

// ---------------------------------------------------------------------------------------
// server level

/** Internal JWT locations for the providers used by these routes. */
export function authServerLocations(m: GatewayModel, routes: Route[]): Block[] {
  if (!m.auth) return [];
  const providers = [...new Set(routes.filter((r) => asyncJwt(r, m)).map((r) => routeJwtProvider(r)!))].sort();
  return providers.map((p) => ({
    comment: `JWT provider ${p}: answers the auth_request subrequest (204 + X-Gw-* identity, or 401 + reason)`,
    head: `location = ${q(`/_gw_auth/jwt/${bare(p, 'token')}`, 'path')}`,
    lines: [d('internal'), d('access_log', 'off'), d('js_content', 'gateway.jwt')],
  }));
}

// ---------------------------------------------------------------------------------------
// route level

export interface RouteAuthParts {
  /** public location, right after allow/deny (rewrite-phase `set`s, auth_request) */
  early: Directive[];
  /** `if` blocks of the public location (after the method and header checks) */
  blocks: Block[];
  /** checks that need the identity in the post-auth location (JWT) */
  lateBlocks: Block[];
  /** proxy_set_header lines: identity, stripped credentials (also for public routes) */
  proxyHeaders: Directive[];
  overrides: Record<number, string>;
  named: Block[];
  /** the route authenticates with JWT: limits keyed by the client and roles run after a handover */
  handover: boolean;
  /** name of the post-auth named location when the route itself provides none */
  next: string;
  /** API key or JWT: an accepted key skips the JWT subrequest */
  either: boolean;
  /** a cached JWT skips the subrequest (error_page 418 to the post-auth location) */
  cachedFirst: boolean;
}

const AUTH_ERRORS: Record<number, [string, string, string]> = {
  401: ['unauthorized', 'authentication required', '$gw_auth_status'],
  403: ['forbidden', '$gw_forbidden_message', '$gw_auth_status'],
};

/**
 * JSON error body with the reason code (only ever a fixed code from njs or role_denied): the
 * gateway shape carries it as `reason`, the OpenAI shape as `code` (one code per reason).
 */
function authErrorBody(status: 401 | 403, format: ErrorFormat): string {
  const [code, message, reason] = AUTH_ERRORS[status];
  if (format === 'openai') return openAiErrorBody(message, ERROR_KINDS[status].type, reason, ['gw_auth_status', 'gw_forbidden_message']);
  return jsonBody({ error: { status, code, message, reason }, request_id: '$gw_request_id' }, ['gw_request_id', 'gw_auth_status', 'gw_forbidden_message']);
}

export function routeAuthParts(r: Route, m: GatewayModel, rid: string, responseHeaders: string[], format: ErrorFormat = 'gateway'): RouteAuthParts {
  const out: RouteAuthParts = { early: [], blocks: [], lateBlocks: [], proxyHeaders: [], overrides: {}, named: [], handover: false, next: `@${rid}_auth`, either: false, cachedFirst: false };
  const a = m.auth;
  const ra = a ? r.auth : null;
  if (!a || !ra) {
    out.proxyHeaders.push(...identityStripLines(r, m, []));
    return out;
  }
  const ih = a.identityHeaders;
  const key = has(r, 'api_key');
  const jwtInPlace = syncJwt(r, m);
  const jwt = has(r, 'jwt') && !jwtInPlace; // through auth_request and a hand-over
  out.handover = jwt;
  out.either = either(r);
  out.overrides[401] = `@${rid}_401`;
  // the JWT subrequest runs the server-level `set $gw_route "-"` on variables it shares with
  // the request: name the route again for the logs
  const routeName = d('set', '$gw_route', q(r.name, 'token'));
  out.named.push({
    head: `location @${rid}_401`,
    lines: [
      routeName,
      d('default_type', 'application/json'),
      ...responseHeaders,
      d('add_header', 'WWW-Authenticate', '$gw_auth_challenge', 'always'),
      d('add_header', 'Cache-Control', '"no-store"', 'always'),
      d('return', '401', authErrorBody(401, format)),
    ],
  });
  if (ra.roles.length) {
    out.overrides[403] = `@${rid}_403`;
    out.named.push({
      head: `location @${rid}_403`,
      lines: [routeName, d('default_type', 'application/json'), ...responseHeaders, d('add_header', 'Cache-Control', '"no-store"', 'always'), d('return', '403', authErrorBody(403, format))],
    });
    const check: Block = { head: `if (${roleOkVar(r)} = 0)`, lines: [d('set', '$gw_auth_status', 'role_denied'), d('return', '403')] };
    (jwt ? out.lateBlocks : out.blocks).push(check);
  }
  const nativeLane = key && !!a.apiKeys?.nativeLane;
  if (key) out.early.push(d('set', '$gw_key_header', q(ra.keyHeader, 'header')), ...(nativeLane ? NATIVE_KEY_CHECK : []));
  if (key && !jwt) out.blocks.unshift({ head: 'if ($gw_apikey != ok)', lines: [d('return', '401')] });
  if (jwtInPlace) {
    out.early.push(d('set', '$gw_jwt_provider', q(routeJwtProvider(r)!, 'token')));
    out.blocks.unshift({ head: 'if ($gw_jwt != ok)', lines: [d('return', '401')] });
  }
  if (jwt) {
    const provider = routeJwtProvider(r);
    if (!provider) throw new RenderError(`route ${r.name}: no JWT provider`);
    if (either(r)) {
      out.early.push(d('set', '$gw_auth_method', 'jwt'));
      out.early.push(d('recursive_error_pages', 'on'));
      out.blocks.push({ head: 'if ($gw_apikey = ok)', lines: [d('set', '$gw_auth_method', 'apikey'), d('return', '418')] });
      out.blocks.push({ head: `if (${keySentVar(ra.keyHeader)})`, lines: [d('return', '401')] });
    }
    if (cachedJwtFirst(r, m)) {
      out.cachedFirst = true;
      out.early.push(d('set', '$gw_jwt_provider', q(provider, 'token')));
      out.early.push(d('recursive_error_pages', 'on'));
      out.blocks.push({ head: 'if ($gw_jwt_cached = ok)', lines: [d('return', '418')] });
    }
    out.early.push(d('auth_request', q(`/_gw_auth/jwt/${bare(provider, 'token')}`, 'path')));
    for (const [v, h] of [
      ['gw_auth_status', 'status'],
      ['gw_client_id', 'client'],
      ['gw_client_role', 'role'],
      ['gw_client_tier', 'tier'],
      ['gw_client_claims', 'claims'],
    ]) {
      out.early.push(d('auth_request_set', `$${v}`, `$sent_http_x_gw_${h}`));
    }
  }
  const method = either(r) ? '$gw_auth_method' : key ? 'apikey' : 'jwt';
  const claims = jwt || jwtInPlace;
  const values: [string | null, string][] = [
    [ih.method, method],
    [ih.client, '$gw_client_id'],
    [ih.role, '$gw_client_role'],
    [ih.tier, '$gw_client_tier'],
    [ih.claims, claims ? '$gw_client_claims' : '""'],
  ];
  // with both methods an API-key request has no claims: $gw_client_claims stays empty
  const sent: string[] = [];
  for (const [h, v] of values) {
    if (!h) continue;
    out.proxyHeaders.push(d('proxy_set_header', settableHeader(h), v));
    sent.push(h);
  }
  if (ra.stripCredentials) {
    const own = new Set(r.setRequestHeaders.map((x) => x.name.toLowerCase()));
    const strip = ['Authorization', ...(key ? [ra.keyHeader] : [])].filter((h) => !own.has(h.toLowerCase()));
    for (const h of [...new Set(strip)]) {
      out.proxyHeaders.push(d('proxy_set_header', settableHeader(h), '""'));
      sent.push(h);
    }
  }
  out.proxyHeaders.push(...identityStripLines(r, m, sent));
  if (key && liveKeys(m)) {
    // runtime keys: the flag file says whether some key of the map is revoked live (a stat, no njs)
    out.early.push(d('set', '$gw_apikey', '$gw_apikey_fast'));
    out.blocks.unshift(...LIVE_KEY_CHECKS);
  }
  if (nativeLane) out.blocks.unshift(NATIVE_KEY_IDENTITY);
  return out;
}

/**
 * Every identity header name the gateway knows: the defaults and the configured names,
 * forwarded or disabled (`false`), also without an `auth:` section. Upstreams may trust
 * any of them, so a client's copy never passes.
 */
export const knownIdentityHeaders = perModel((m: GatewayModel): readonly string[] => {
  const names: string[] = [...Object.values(DEFAULT_IDENTITY_HEADERS)];
  if (m.auth) for (const h of Object.values(m.auth.identityHeaders)) if (h) names.push(h);
  const seen = new Set<string>();
  return names.filter((h) => !seen.has(h.toLowerCase()) && !!seen.add(h.toLowerCase()));
});

/**
 * `proxy_set_header NAME ""` (removes the client's header) for each known identity header the
 * route does not set itself: neither as identity (`sent`) nor in its own set_headers.
 */
function identityStripLines(r: Route, m: GatewayModel, sent: string[]): Directive[] {
  const own = new Set([...sent, ...r.setRequestHeaders.map((x) => x.name)].map((h) => h.toLowerCase()));
  return knownIdentityHeaders(m)
    .filter((h) => !own.has(h.toLowerCase()))
    .map((h) => d('proxy_set_header', settableHeader(h), '""'));
}

