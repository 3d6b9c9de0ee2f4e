// Response headers: `response_headers` (set and remove) on a listener and on a route.
//
// nginx's trap: add_header (and proxy_hide_header) lines are inherited only by a level that
// has none of its own, so a single add_header in a location silently drops every header of the
// server. The gateway never relies on inheritance: each location it writes repeats the whole
// merged set (security presets, HSTS, these headers, CORS, cache status, …), in registry
// order through RouteContext.responseHeaders, and the error locations are built from the same
// list. A route's `set` or `remove` of a name the listener sets replaces the listener's line.
//
// `set` replaces an upstream copy (proxy_hide_header + add_header); a plain value carries
// `always` (error answers too), `{ value, always: false }` only 2xx/3xx answers. `remove`
// hides the upstream's header. Values pass the quoting helper (`$` stays literal).
import type { Feature, Report } from '../../core/feature.ts';
import type { GatewayModel, Listener, ResponseHeaders, Route, SourcePos } from '../../model/types.ts';
import { isFramingHeader } from '../../model/reserved-names.ts';
import { NGINX_PARAM_MAX } from '../../model/nginx-limits.ts';
import { d, type Directive } from '../../plan/directive.ts';
import { EARLY_ERRORS, ERROR_STATUSES, errorBody } from '../../plan/errors.ts';
import { q, settableHeader } from '../../plan/quote.ts';
import { knownIdentityHeaders } from '../auth/render.ts';
import { responseHeadersSchema } from './schema.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Raw = any;

function normalizeHeaders(raw: Raw, at: SourcePos): ResponseHeaders | null {
  if (raw === undefined || raw === null) return null;
  const set = Object.entries((raw.set as Record<string, Raw>) ?? {}).map(([name, v]) =>
    typeof v === 'string' ? { name, value: v, always: true } : { name, value: v.value as string, always: v.always ?? true },
  );
  return { set, remove: raw.remove ?? [], at };
}

/** The lines of one header of a level: an upstream copy hidden, then the gateway's value. */
function setLines(h: ResponseHeaders['set'][number]): Directive[] {
  const name = settableHeader(h.name);
  return [d('proxy_hide_header', name), d('add_header', name, q(h.value, 'text'), ...(h.always ? ['always'] : []))];
}

const removeLine = (name: string): Directive => d('proxy_hide_header', settableHeader(name));

function levelLines(h: ResponseHeaders | null | undefined, skip: Set<string> = new Set()): Directive[] {
  if (!h) return [];
  const out: Directive[] = [];
  for (const name of h.remove) if (!skip.has(name.toLowerCase())) out.push(removeLine(name));
  for (const s of h.set) if (!skip.has(s.name.toLowerCase())) out.push(...setLines(s));
  return out;
}

/** Names a level of a route overrides (sets or removes) */
const namesOf = (h: ResponseHeaders | null | undefined): Set<string> =>
  new Set(h ? [...h.set.map((s) => s.name.toLowerCase()), ...h.remove.map((n) => n.toLowerCase())] : []);

/**
 * Header names the gateway itself sends on these answers, and who sends them: a second copy
 * from response_headers would contradict it (a duplicate Access-Control-Allow-Origin breaks
 * CORS) or impersonate the gateway (the request id, the identity names upstreams trust, the
 * X-Gw-* headers the JWT subrequest hands the identity over with).
 */
function gatewayNames(m: GatewayModel, l: Listener, routes: Route[]): Map<string, string> {
  const out = new Map<string, string>();
  const add = (name: string, why: string) => out.set(name.toLowerCase(), why);
  add(m.global.requestId.header, 'the request id (global.request_id.header)');
  for (const h of knownIdentityHeaders(m)) add(h, 'an identity header name (auth.identity_headers)');
  const s = l.securityHeaders;
  if (s.contentTypeOptions) add('X-Content-Type-Options', 'the security_headers preset');
  if (s.frameOptions) add('X-Frame-Options', 'security_headers.frame_options');
  if (s.referrerPolicy) add('Referrer-Policy', 'security_headers.referrer_policy');
  if (s.contentSecurityPolicy) add('Content-Security-Policy', 'security_headers.content_security_policy');
  if (l.tls?.hsts) add('Strict-Transport-Security', 'tls.hsts');
  for (const r of routes) {
    if (r.cors) for (const h of ['Allow-Origin', 'Allow-Credentials', 'Expose-Headers', 'Allow-Methods', 'Allow-Headers', 'Max-Age']) add(`Access-Control-${h}`, `cors of route ${r.name}`);
    if (r.cache) add('X-Cache-Status', `cache of route ${r.name}`);
    if (r.streaming) add('X-Accel-Buffering', `streaming of route ${r.name}`);
    if (r.auth) add('WWW-Authenticate', `auth of route ${r.name}`);
    if (r.rateLimits.length) add('Retry-After', `rate_limits of route ${r.name}`);
    if (r.match.methods) add('Allow', `match.methods of route ${r.name}`);
  }
  return out;
}

function checkLevel(m: GatewayModel, h: ResponseHeaders, path: string, listeners: Listener[], routes: Route[], err: Report): void {
  // the names the gateway sends on any listener the headers are served on
  const managed = new Map(listeners.flatMap((l) => [...gatewayNames(m, l, routes)]));
  const seen = new Map<string, string>();
  const check = (name: string, key: string, what: 'set' | 'removed') => {
    const n = name.toLowerCase();
    if (isFramingHeader(name)) {
      err('GW230', h.at, key, `${name} cannot be ${what} in response_headers: framing and hop-by-hop headers (Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer, Proxy-*, Host) are nginx's own for each hop`);
      return;
    }
    if (n.startsWith('x-gw-')) {
      err('GW281', h.at, key, `${name} cannot be ${what} in response_headers: X-Gw-* headers carry the identity from the JWT check to nginx`);
      return;
    }
    const why = managed.get(n);
    if (why) err('GW281', h.at, key, `${name} cannot be ${what} in response_headers: the gateway sends it itself (${why}); change it there`);
    if (seen.has(n)) err('GW282', h.at, key, `${name} appears twice in response_headers (also ${seen.get(n)}; header names are case-insensitive)`);
    seen.set(n, key);
  };
  for (const s of h.set) {
    if (s.name.toLowerCase() === 'set-cookie') {
      // set replaces the upstream's copy: it would drop every cookie the application sets
      err('GW292', h.at, `${path}.set.${s.name}`, 'Set-Cookie cannot be set in response_headers: set replaces the upstream\'s header, which would drop the cookies the application sets (gateway cookies: upstreams.<name>.sticky issue: gateway)');
      continue;
    }
    check(s.name, `${path}.set.${s.name}`, 'set');
    // nginx reads a parameter into a 4 KiB buffer; each "$" is written as ${gw_dollar}
    const n = Buffer.byteLength(q(s.value, 'text'));
    if (n > NGINX_PARAM_MAX) err('GW241', h.at, `${path}.set.${s.name}`, `the value of ${s.name} is ${n} bytes once quoted for nginx (each "$" takes 12, each " and \\ two); nginx takes at most ${NGINX_PARAM_MAX}`);
  }
  for (const [i, name] of h.remove.entries()) {
    if (/^(server|date)$/i.test(name)) {
      err('GW283', h.at, `${path}.remove[${i}]`, `${name} cannot be removed: nginx writes its own ${name} header on every answer (the upstream's is already replaced; server_tokens is off)`);
      continue;
    }
    check(name, `${path}.remove[${i}]`, 'removed');
  }
}

function checkResponseHeaders(m: GatewayModel, err: Report): void {
  for (const [i, l] of m.listeners.entries()) {
    if (!l.responseHeaders) continue;
    checkLevel(m, l.responseHeaders, `listeners[${i}].response_headers`, [l], m.routes.filter((r) => r.listeners.includes(l.name)), err);
  }
  for (const r of m.routes) {
    if (!r.responseHeaders) continue;
    checkLevel(m, r.responseHeaders, `routes[${r.index}].response_headers`, m.listeners.filter((x) => r.listeners.includes(x.name)), [r], err);
  }
}

export const responseHeadersFeature: Feature = {
  name: 'response-headers',
  summary: 'response headers set and removed per listener and per route, merged with presets and CORS in every location',
  schema: responseHeadersSchema,
  cost: { njsCalls: () => 0, measured: 'nginx add_header/proxy_hide_header only' },
  normalize(raw, m, ctx) {
    const listeners = (raw.listeners as Raw[] | undefined) ?? [];
    m.listeners.forEach((l, i) => (l.responseHeaders = normalizeHeaders(listeners[i]?.response_headers, ctx.at(`listeners[${i}].response_headers`))));
    const routes = (raw.routes as Raw[] | undefined) ?? [];
    for (const r of m.routes) r.responseHeaders = normalizeHeaders(routes[r.index]?.response_headers, ctx.at(`routes[${r.index}].response_headers`));
  },
  rules: (m, err) => checkResponseHeaders(m, err), // GW230 (framing names), GW281-GW283, GW292
  listenerResponseHeaders: (l) => levelLines(l.responseHeaders),
  http: (m) => ({
    proxyHeaderNames: [...m.listeners.map((l) => l.responseHeaders), ...m.routes.map((r) => r.responseHeaders)].flatMap((h) => (h ? [...h.remove, ...h.set.map((s) => s.name)] : [])),
  }),
  routeResponseHeaders(ctx) {
    const own = ctx.route.responseHeaders;
    if (!own) return [];
    // the route's names replace the listener's lines for them (added above by this feature's
    // listenerResponseHeaders): drop exactly those lines, then add the route's
    const overridden = namesOf(own);
    const listenerOwn = new Set<string>(levelLines(ctx.listener.responseHeaders).filter((x) => !levelLines(ctx.listener.responseHeaders, overridden).includes(x)));
    if (listenerOwn.size) {
      const kept = ctx.responseHeaders.filter((x) => !listenerOwn.has(x));
      ctx.responseHeaders.splice(0, ctx.responseHeaders.length, ...kept);
    }
    return levelLines(own);
  },
  routeFinish(ctx) {
    // The gateway's own errors (502, 504, 413, …) are answered by the server's error
    // locations, which carry the listener's headers only: a route with headers of its own
    // answers them in its own locations (with the whole merged set), as CORS routes do.
    // (also when the route only drops a listener header: the server's pages would still send it)
    const own = ctx.route.responseHeaders;
    if (!own) return;
    const dropsListener = ctx.listener.responseHeaders?.set.some((h) => namesOf(own).has(h.name.toLowerCase())) ?? false;
    if (!own.set.some((h) => h.always) && !dropsListener) return;
    for (const s of Object.keys(ERROR_STATUSES).map(Number)) {
      if (ctx.overrides[s] || EARLY_ERRORS.has(s)) continue;
      ctx.overrides[s] = `@${ctx.rid}_error_${s}`;
      ctx.errorLocations.push({
        head: `location @${ctx.rid}_error_${s}`,
        lines: [d('default_type', 'application/json'), ...ctx.responseHeaders, d('return', String(s), errorBody(s))],
      });
    }
  },
};
