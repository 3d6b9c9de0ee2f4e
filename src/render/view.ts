// View builders: GatewayModel → plain view objects whose strings are already-safe nginx
// directives (every user value passed through q()/bare()). Templates only lay them out.
import type { GatewayModel, Listener, Route, Upstream, RateZone, ConnZone, LimitKey, SecurityHeaders } from '../model/types.ts';
import { bare, headerVar, ident, jsonBody, q, RenderError } from './quote.ts';
import { hstsHeaderValue } from '../tls/profiles.ts';
import { claimSpecLines, modelsListLines, MODEL_UPSTREAM_TARGET, njsKeySource, withBodyStep } from './routing.ts';
import { isClientZone, routeAuthParts, tierKeyVar, withAuthStep } from './auth.ts';
import { isFramingHeader, namedCaptures, reservedVariable } from '../model/reserved-names.ts';
import { bodyKeyLocationLines, cacheKey } from './cache.ts';

export interface Block {
  comment?: string;
  head: string; // e.g. `location = "/health"`
  lines: string[];
  blocks?: Block[];
}

export interface ServerView {
  comment: string;
  lines: string[];
  locations: Block[];
}

export interface RenderOptions {
  /** modules found for the target nginx; brotli is dropped with a warning when absent */
  availableModules?: { brotli: boolean };
  warnings?: string[];
  /** keys of maps written outside render/ (the API key map), so map_hash_* is sized for them */
  externalMapKeys?: string[][];
}

export const ERROR_STATUSES: Record<number, [string, string]> = {
  400: ['bad_request', 'bad request'],
  401: ['unauthorized', 'authentication required'],
  403: ['forbidden', 'forbidden'],
  404: ['not_found', 'no route matches this request'],
  405: ['method_not_allowed', 'method not allowed on this route'],
  408: ['request_timeout', 'request timed out'],
  413: ['payload_too_large', 'request body too large'],
  414: ['uri_too_long', 'request URI too long'],
  429: ['rate_limited', 'too many requests'],
  500: ['internal_error', 'internal gateway error'],
  502: ['bad_gateway', 'upstream unavailable'],
  503: ['service_unavailable', 'service unavailable'],
  504: ['gateway_timeout', 'upstream timed out'],
};

export const d = (...parts: string[]): string => `${parts.join(' ')};`;

/** A JSON access-log field: name, nginx variable, whether the value is quoted (strings) or not (numbers). */
export type LogField = [string, string, boolean];

/** The single-quoted template of a `log_format … escape=json` line. */
export function jsonLogTemplate(fields: LogField[]): string {
  return `'{${fields.map(([k, v, quoted]) => (quoted ? `"${k}":"${v}"` : `"${k}":${v}`)).join(',')}}'`;
}

/** A configured header name the gateway sets (quoted); framing and hop-by-hop names never pass (rules: GW230). */
export function settableHeader(name: string): string {
  if (isFramingHeader(name)) throw new RenderError(`framing header ${JSON.stringify(name)} cannot be set`);
  return q(name, 'header');
}

/** "A, B, C" from header names, each checked. */
export function headerList(names: string[]): string {
  for (const n of names) q(n, 'header');
  return q(names.join(', '), 'text');
}

function errorBody(status: number): string {
  const [code, message] = ERROR_STATUSES[status];
  return jsonBody({ error: { status, code, message }, request_id: '$gw_request_id' }, ['gw_request_id']);
}

export function limitKeyVar(zoneName: string, key: LimitKey): string {
  switch (key.kind) {
    case 'client_ip':
      return '$binary_remote_addr';
    case 'header':
      return `$gw_limit_key_${ident(zoneName)}`;
    case 'client_id':
      return '$gw_client_id';
  }
}

export function hashKeyVar(u: Upstream): string {
  if (!u.hashKey) throw new RenderError(`upstream ${u.name} has no hash key`);
  if (u.hashKey.kind === 'client_ip') return '$remote_addr';
  return `$gw_hash_key_${ident(u.name)}`;
}

export function hashKeySource(u: Upstream): string {
  const k = u.hashKey;
  if (!k) throw new RenderError(`upstream ${u.name} has no hash key`);
  switch (k.kind) {
    case 'header':
      return headerVar(k.name);
    case 'cookie':
      return `$cookie_${bare(k.name, 'token').replace(/[.-]/g, '_')}`;
    case 'query':
      return `$arg_${bare(k.name, 'token').replace(/[.-]/g, '_')}`;
    case 'client_ip':
      return '$remote_addr';
    default:
      return njsKeySource(u) ?? '$remote_addr'; // client_id, jwt_claim, body_field (src/render/routing.ts)
  }
}

/** Response headers for a listener; add_header is not inherited once a level sets any, so every block repeats them. */
export function securityHeaderLines(l: Listener, m: GatewayModel): string[] {
  const s: SecurityHeaders = l.securityHeaders;
  const out: string[] = [];
  out.push(d('add_header', settableHeader(m.global.requestId.header), '$gw_request_id', 'always'));
  if (s.contentTypeOptions) out.push(d('add_header', 'X-Content-Type-Options', '"nosniff"', 'always'));
  if (s.frameOptions) out.push(d('add_header', 'X-Frame-Options', q(s.frameOptions, 'token'), 'always'));
  if (s.referrerPolicy) out.push(d('add_header', 'Referrer-Policy', q(s.referrerPolicy, 'token'), 'always'));
  if (s.contentSecurityPolicy) out.push(d('add_header', 'Content-Security-Policy', q(s.contentSecurityPolicy, 'text'), 'always'));
  if (l.tls?.hsts) {
    out.push(d('add_header', 'Strict-Transport-Security', q(hstsHeaderValue(l.tls.hsts), 'text'), 'always'));
  }
  return out;
}

export function accessLines(allowRoute: string[], denyRoute: string[], m: GatewayModel): string[] {
  const deny = [...new Set([...denyRoute, ...m.access.deny])];
  const allow = allowRoute.length ? allowRoute : m.access.allow;
  const out = deny.map((c) => d('deny', bare(c, 'cidr')));
  out.push(...allow.map((c) => d('allow', bare(c, 'cidr'))));
  if (allow.length && !allow.includes('all')) out.push(d('deny', 'all'));
  return out;
}

/**
 * nginx raises 400 and 414 while reading the request line, before there is a URI, and then
 * refuses a redirect to a named location ("empty URI in redirect to named location") and
 * answers 500. Those two go to internal URI locations instead.
 */
const EARLY_ERRORS = new Set([400, 414]);
const errorTarget = (s: number): string => (EARLY_ERRORS.has(s) ? `/_gatewayctl/error/${s}` : `@gw_error_${s}`);

function errorPageLines(overrides: Record<number, string> = {}): string[] {
  return [
    ...Object.keys(ERROR_STATUSES).map((s) => d('error_page', s, '=', overrides[Number(s)] ?? errorTarget(Number(s)))),
    // nginx's own codes for a request header too large (494) and plain HTTP on a TLS port
    // (497) otherwise get nginx's HTML 400 page
    d('error_page', '494', '497', '=', errorTarget(400)),
  ];
}

/** Named locations that answer gateway-produced errors with JSON. */
export function errorLocations(headers: string[]): Block[] {
  return Object.keys(ERROR_STATUSES).map((s) => {
    const target = errorTarget(Number(s));
    const internal = target.startsWith('/');
    return {
      head: internal ? `location = ${q(target, 'path')}` : `location ${target}`,
      lines: [...(internal ? [d('internal')] : []), d('default_type', 'application/json'), ...headers, d('return', s, errorBody(Number(s)))],
    };
  });
}

/** error_page at location level replaces the server's list, so only emit it when a route overrides a status. */
function routeErrorPages(overrides: Record<number, string>): string[] {
  return Object.keys(overrides).length ? errorPageLines(overrides) : [];
}

function retryAfterSeconds(zones: RateZone[]): number {
  const slowest = Math.min(...zones.map((z) => z.ratePerSecond));
  return Math.max(1, Math.ceil(1 / slowest));
}

export function routeMatchHead(r: Route): string {
  const p = r.match.path;
  switch (p.kind) {
    case 'exact':
      return `location = ${q(p.value, 'path')}`;
    case 'prefix':
      return `location ${q(p.value, 'path')}`;
    case 'regex':
      // a named capture becomes a variable: never one nginx or the gateway defines (rules: GW231)
      for (const c of namedCaptures(p.value)) {
        if (reservedVariable(c.name)) throw new RenderError(`route ${r.name}: named capture ${JSON.stringify(c.name)} shadows a variable`);
      }
      return `location ${p.caseInsensitive ? '~*' : '~'} ${q(p.value, 'regex')}`;
  }
}

/**
 * strip_prefix on a prefix without a trailing slash: proxy_pass URI replacement would send
 * `/api/users` as `//users`, so the upstream URI comes from a map over $request_uri instead
 * (`/api/users?x` → `/users?x`, `/api` → `/`). Null when plain replacement is right.
 */
export function stripPrefixMap(r: Route): Block | null {
  const p = r.match.path;
  if (!r.rewrite.stripPrefix || p.kind !== 'prefix' || p.value.endsWith('/')) return null;
  const escaped = p.value.replace(/^\/+/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return {
    comment: `strip_prefix ${p.value} for route ${r.name}`,
    head: `map $request_uri $gw_strip_${ident(r.name)}`,
    lines: [d('default', '$request_uri'), d(q(`~^/+${escaped}/*(.*)$`, 'regex'), '/$1')],
  };
}

export interface RouteBlocks {
  location: Block;
  named: Block[];
}

export function routeBlocks(r: Route, l: Listener, m: GatewayModel, opts: RenderOptions): RouteBlocks {
  const rid = `gw_route_${ident(r.name)}`;
  const headers = securityHeaderLines(l, m);
  const lines: string[] = [d('set', '$gw_route', q(r.name, 'token'))];
  const named: Block[] = [];
  const overrides: Record<number, string> = {};

  // CORS first: a preflight is answered before method checks, limits and auth.
  const extraHeaders: string[] = [];
  if (r.cors) {
    const c = r.cors;
    extraHeaders.push(d('add_header', 'Access-Control-Allow-Origin', `$gw_cors_origin_${ident(r.name)}`, 'always'));
    extraHeaders.push(d('add_header', 'Vary', '"Origin"', 'always'));
    if (c.credentials) extraHeaders.push(d('add_header', 'Access-Control-Allow-Credentials', `$gw_cors_credentials_${ident(r.name)}`, 'always'));
    if (c.exposeHeaders.length) {
      extraHeaders.push(d('add_header', 'Access-Control-Expose-Headers', headerList(c.exposeHeaders), 'always'));
    }
    extraHeaders.push(d('add_header', 'Access-Control-Allow-Methods', `$gw_cors_preflight_methods_${ident(r.name)}`, 'always'));
    extraHeaders.push(d('add_header', 'Access-Control-Allow-Headers', `$gw_cors_preflight_headers_${ident(r.name)}`, 'always'));
    extraHeaders.push(d('add_header', 'Access-Control-Max-Age', `$gw_cors_preflight_max_age_${ident(r.name)}`, 'always'));
  }
  if (r.cache) extraHeaders.push(d('add_header', 'X-Cache-Status', '$upstream_cache_status', 'always'));
  if (r.streaming) extraHeaders.push(d('add_header', 'X-Accel-Buffering', '"no"', 'always'));
  const auth = routeAuthParts(r, m, rid, [...headers, ...extraHeaders]); // njs auth (src/render/auth.ts)
  const late: string[] = []; // limits keyed by the authenticated client

  const blocks: Block[] = [];
  if (r.cors) {
    blocks.push({
      head: 'if ($gw_cors_preflight)',
      lines: [d('return', '204')],
    });
  }
  if (r.match.methods) {
    const allowed = [...r.match.methods];
    if (allowed.includes('GET') && !allowed.includes('HEAD')) allowed.push('HEAD');
    const re = `^(${allowed.map((x) => bare(x, 'method')).join('|')})$`;
    blocks.push({ head: `if ($request_method !~ ${q(re, 'regex')})`, lines: [d('return', '405')] });
    overrides[405] = `@${rid}_405`;
    named.push({
      head: `location @${rid}_405`,
      lines: [
        d('default_type', 'application/json'),
        ...headers,
        ...extraHeaders,
        d('add_header', 'Allow', q(allowed.join(', '), 'text'), 'always'),
        d('return', '405', errorBody(405)),
      ],
    });
  }
  for (const h of r.match.headers) {
    blocks.push({ head: `if (${headerVar(h.name)} != ${q(h.value, 'text')})`, lines: [d('return', '404')] });
  }
  blocks.push(...auth.blocks);
  named.push(...auth.named);
  Object.assign(overrides, auth.overrides);

  lines.push(...accessLines(r.access.allow, r.access.deny, m));
  lines.push(...auth.early);

  const zones = r.rateLimits.map((z) => m.rateZones.find((x) => x.name === z)!).filter(Boolean);
  const conns = r.connLimits.map((z) => m.connZones.find((x) => x.name === z)!).filter(Boolean);
  // nginx runs limit_req (and limit_conn) once per request: after the first location that
  // applied one, a named location's limits are skipped. So when some zone must wait for the
  // identity (after the auth/body hand-over), every zone of that kind waits with it.
  const reqLate = zones.some(isClientZone);
  const connLate = conns.some(isClientZone);
  for (const z of zones) {
    const parts = ['limit_req', `zone=gw_rl_${ident(z.name)}`];
    if (z.burst) parts.push(`burst=${bare(z.burst, 'int')}`);
    if (z.delay !== null) parts.push(`delay=${bare(z.delay, 'int')}`);
    else if (z.nodelay) parts.push('nodelay');
    (reqLate ? late : lines).push(d(...parts));
  }
  for (const cz of conns) {
    (connLate ? late : lines).push(d('limit_conn', `gw_conn_${ident(cz.name)}`, bare(cz.max, 'int')));
  }
  if (zones.length || r.connLimits.length) {
    overrides[429] = `@${rid}_429`;
    const retryAfter = zones.length ? retryAfterSeconds(zones) : 1;
    named.push({
      head: `location @${rid}_429`,
      lines: [
        d('default_type', 'application/json'),
        ...headers,
        ...extraHeaders,
        d('add_header', 'Retry-After', bare(retryAfter, 'int'), 'always'),
        d('return', '429', errorBody(429)),
      ],
    });
  }

  if (r.cors) {
    // Errors the gateway itself produces on a CORS route carry the route's CORS headers, or
    // the browser hides the JSON error from the page (the server-wide pages cannot know them).
    for (const s of Object.keys(ERROR_STATUSES).map(Number)) {
      if (overrides[s] || EARLY_ERRORS.has(s)) continue;
      overrides[s] = `@${rid}_error_${s}`;
      named.push({
        head: `location @${rid}_error_${s}`,
        lines: [d('default_type', 'application/json'), ...headers, ...extraHeaders, d('return', String(s), errorBody(s))],
      });
    }
  }

  if (r.maxBody) lines.push(d('client_max_body_size', bare(r.maxBody, 'size')));

  if (r.respond) {
    // `return` here would run in the rewrite phase: before the method/header checks below,
    // allow/deny and limits. try_files runs after them and hands over to the answer.
    lines.push(...routeErrorPages(overrides));
    lines.push(d('try_files', q('/.gatewayctl-no-such-file', 'path'), `@${rid}_respond`));
    named.push({
      head: `location @${rid}_respond`,
      lines: [
        d('default_type', q(r.respond.contentType, 'text')),
        ...headers,
        ...extraHeaders,
        d('return', bare(r.respond.status, 'int'), q(r.respond.body, 'text')),
      ],
    });
    return withAuthStep(r, { location: { comment: `route ${r.name} (routes[${r.index}])`, head: routeMatchHead(r), lines, blocks }, named }, auth, late, null, []);
  }

  if (r.models === 'list') {
    // answered by the gateway from the model catalogue, after method checks and limits (as respond)
    lines.push(...routeErrorPages(overrides));
    lines.push(d('try_files', q('/.gatewayctl-no-such-file', 'path'), `@${rid}_models`));
    named.push({ head: `location @${rid}_models`, lines: modelsListLines(m, [...headers, ...extraHeaders]) });
    return withAuthStep(r, { location: { comment: `route ${r.name} (routes[${r.index}])`, head: routeMatchHead(r), lines, blocks }, named }, auth, late, null, []);
  }
  lines.push(...claimSpecLines(r, m));
  const split = lines.length; // routes that need the body hand over to a named location from here
  lines.push(...late);
  const u = m.upstreams.find((x) => x.name === r.upstream);
  if (!u && r.models !== 'route') throw new RenderError(`route ${r.name}: unknown upstream ${r.upstream}`);
  let target = u ? `http://${bare(u.name, 'name')}` : MODEL_UPSTREAM_TARGET;
  if (r.rewrite.stripPrefix) target += stripPrefixMap(r) ? `$gw_strip_${ident(r.name)}` : '/';
  else if (r.rewrite.replacePath) target += r.rewrite.replacePath;
  lines.push(d('proxy_pass', r.rewrite.replacePath ? q(target, 'expr') : target));
  lines.push(d('proxy_http_version', '1.1'));
  lines.push(d('proxy_set_header', 'Host', '$host'));
  if (r.websocket) {
    lines.push(d('proxy_set_header', 'Upgrade', '$http_upgrade'));
    lines.push(d('proxy_set_header', 'Connection', '$gw_connection_upgrade'));
  } else {
    lines.push(d('proxy_set_header', 'Connection', '""'));
  }
  lines.push(d('proxy_set_header', settableHeader(m.global.requestId.header), '$gw_request_id'));
  lines.push(d('proxy_set_header', 'X-Real-IP', '$remote_addr'));
  lines.push(d('proxy_set_header', 'X-Forwarded-For', m.global.trustedProxies.length ? '$gw_forwarded_for' : '$proxy_add_x_forwarded_for'));
  lines.push(d('proxy_set_header', 'X-Forwarded-Proto', '$scheme'));
  lines.push(d('proxy_set_header', 'X-Forwarded-Host', '$host'));
  for (const h of r.setRequestHeaders) lines.push(d('proxy_set_header', settableHeader(h.name), q(h.value, 'text')));
  lines.push(...auth.proxyHeaders);
  lines.push(d('proxy_connect_timeout', bare(r.timeouts.connect, 'duration')));
  lines.push(d('proxy_send_timeout', bare(r.timeouts.send, 'duration')));
  lines.push(d('proxy_read_timeout', bare(r.timeouts.read, 'duration')));
  if (r.websocket) {
    // an idle websocket is closed after proxy_read_timeout; keep it long
  }
  if (r.retries) {
    const on = [...r.retries.on.map((x) => bare(x, 'keyword'))];
    if (r.retries.nonIdempotent) on.push('non_idempotent');
    lines.push(d('proxy_next_upstream', ...on));
    lines.push(d('proxy_next_upstream_tries', bare(r.retries.tries, 'int')));
    if (r.retries.timeout) lines.push(d('proxy_next_upstream_timeout', bare(r.retries.timeout, 'duration')));
  }
  if (r.streaming) {
    // SSE / chunked LLM output: pass every byte on as it arrives.
    lines.push(d('proxy_buffering', 'off'));
    lines.push(d('proxy_cache', 'off'));
    lines.push(d('gzip', 'off'));
    lines.push(d('chunked_transfer_encoding', 'on'));
    lines.push(d('tcp_nodelay', 'on'));
  }
  if (r.cache) {
    const c = r.cache;
    lines.push(d('proxy_cache', `gw_cache_${ident(c.zone)}`));
    lines.push(d('proxy_cache_key', q(cacheKey(c.keyIncludesBody), 'expr')));
    lines.push(d('proxy_cache_methods', ...c.methods.map((x) => bare(x, 'method'))));
    for (const t of c.ttl) lines.push(d('proxy_cache_valid', bare(t.status, 'status'), bare(t.time, 'duration')));
    if (c.bypassHeader) {
      lines.push(d('proxy_cache_bypass', headerVar(c.bypassHeader)));
      lines.push(d('proxy_no_cache', headerVar(c.bypassHeader)));
    }
    if (c.lock) lines.push(d('proxy_cache_lock', 'on'));
    lines.push(d('proxy_cache_use_stale', 'error', 'timeout', 'updating', 'http_502', 'http_503', 'http_504'));
    if (c.keyIncludesBody) lines.push(...bodyKeyLocationLines(r)); // key on a digest of the body (render/cache.ts)
  }
  lines.push(...headers, ...extraHeaders);
  lines.push(...routeErrorPages(overrides));
  const snippet = m.unsafeSnippets.find((s) => s.context === 'route' && s.target === r.name);
  if (snippet) lines.push(`# unsafe_nginx_route (verbatim, from ${snippet.at.path})`, ...snippet.text.trim().split('\n'));
  void opts;
  const rb = { location: { comment: `route ${r.name} (routes[${r.index}])`, head: routeMatchHead(r), lines, blocks }, named };
  const stepped = withBodyStep(r, m, rb, split, [...headers, ...extraHeaders], routeErrorPages(overrides));
  return withAuthStep(r, stepped, auth, late, split, [...headers, ...extraHeaders, ...routeErrorPages(overrides)]);
}

export function upstreamLines(u: Upstream): string[] {
  const out: string[] = [d('zone', `gw_upstream_${ident(u.name)}`, '256k')];
  switch (u.balance) {
    case 'least_conn':
      out.push(d('least_conn'));
      break;
    case 'ip_hash':
      out.push(d('ip_hash'));
      break;
    case 'random':
      out.push(d('random', 'two', 'least_conn'));
      break;
    case 'consistent_hash':
      out.push(d('hash', hashKeyVar(u), 'consistent'));
      break;
    case 'round_robin':
      break;
  }
  for (const s of u.servers) {
    const parts = ['server', bare(s.address, 'address')];
    if (s.weight !== 1) parts.push(`weight=${bare(s.weight, 'int')}`);
    parts.push(`max_fails=${bare(s.maxFails, 'int')}`, `fail_timeout=${bare(s.failTimeout, 'duration')}`);
    if (s.backup) parts.push('backup');
    if (s.down) parts.push('down');
    out.push(d(...parts));
  }
  if (u.keepalive) {
    out.push(d('keepalive', bare(u.keepalive.connections, 'int')));
    out.push(d('keepalive_timeout', bare(u.keepalive.timeout, 'duration')));
    out.push(d('keepalive_requests', bare(u.keepalive.requests, 'int')));
  }
  return out;
}

export function rateZoneLine(z: RateZone): string {
  return d('limit_req_zone', tierKeyVar(z) ?? limitKeyVar(z.name, z.key), `zone=gw_rl_${ident(z.name)}:${bare(z.size, 'size')}`, `rate=${bare(z.rate, 'rate')}`);
}

export function connZoneLine(z: ConnZone): string {
  return d('limit_conn_zone', tierKeyVar(z) ?? limitKeyVar(z.name, z.key), `zone=gw_conn_${ident(z.name)}:${bare(z.size, 'size')}`);
}

export { errorPageLines };
