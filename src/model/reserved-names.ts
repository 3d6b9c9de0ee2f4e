// Names the user may not take over (codes GW230-GW231):
//
//   GW230  a configurable header name that nginx or the gateway sends upstream (set_headers,
//          identity headers, the request-id header, the API-key header the gateway strips)
//          is a framing or hop-by-hop header: Host, Content-Length, Transfer-Encoding,
//          Connection, Keep-Alive, Upgrade, TE, Trailer or Proxy-*. Setting one sends a
//          second Host, or Transfer-Encoding next to Content-Length: request-smuggling shapes.
//   GW231  a named capture in a route regex names a variable nginx or the gateway defines.
//          nginx turns every named capture into a request variable; `(?<gw_dollar>…)` would
//          replace the gateway's literal `$` with request text in every header and body.
//
// Header names that are only read (match.headers, limit and hash keys, cache bypass,
// real_ip_header) or only listed in a value (CORS allow/expose headers) cannot change how a
// request is framed and are not restricted.
import type { GatewayModel, SourcePos } from './types.ts';
import { DEFAULT_IDENTITY_HEADERS } from './identity.ts';

type Report = (code: string, at: SourcePos, path: string, message: string) => void;

const FRAMING = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer']);

/** A header that frames the message or belongs to one hop only; never settable from the config. */
export function isFramingHeader(name: string): boolean {
  const n = name.toLowerCase();
  return FRAMING.has(n) || n.startsWith('proxy-');
}

/** Prefix of every variable the gateway defines (maps, geo, set, js_var, js_set). */
export const GATEWAY_VARIABLE_PREFIX = 'gw_';

/**
 * Prefixes nginx resolves dynamically ($http_x_foo, $arg_page, …). A capture of that shape
 * would be a new variable that wins over the dynamic one.
 */
const NGINX_VARIABLE_PREFIXES = [
  'arg_',
  'cookie_',
  'http_',
  'sent_http_',
  'sent_trailer_',
  'upstream_',
  'ssl_',
  'realip_',
  'tcpinfo_',
  'geoip_',
  'jwt_',
  'limit_',
  'request_',
  'secure_link',
  'uid_',
  'date_',
  'fastcgi_',
  'uwsgi_',
  'scgi_',
  'proxy_',
  'memcached_',
];

/** Variables of nginx's core and the modules a gateway build can load (nginx 1.26, njs). */
const NGINX_VARIABLES = new Set([
  'ancient_browser',
  'args',
  'binary_remote_addr',
  'body_bytes_sent',
  'brotli_ratio',
  'bytes_sent',
  'connection',
  'connection_requests',
  'connection_time',
  'connections_active',
  'connections_reading',
  'connections_waiting',
  'connections_writing',
  'content_length',
  'content_type',
  'document_root',
  'document_uri',
  'gzip_ratio',
  'host',
  'hostname',
  'http2',
  'http3',
  'https',
  'invalid_referer',
  'is_args',
  'modern_browser',
  'msec',
  'msie',
  'nginx_version',
  'pid',
  'pipe',
  'query_string',
  'quic',
  'realpath_root',
  'remote_addr',
  'remote_port',
  'remote_user',
  'request',
  'scheme',
  'server_addr',
  'server_name',
  'server_port',
  'server_protocol',
  'slice_range',
  'spdy',
  'spdy_request_priority',
  'status',
  'time_iso8601',
  'time_local',
  'uri',
  'userid',
]);

/** Why `name` cannot be a capture name, or null when it is free. Case-insensitive, as nginx's variable names. */
export function reservedVariable(name: string): string | null {
  const n = name.toLowerCase();
  if (/^[0-9]+$/.test(n)) return 'numbered captures are nginx variables ($1, $2, …)';
  if (n.startsWith(GATEWAY_VARIABLE_PREFIX)) return `the "${GATEWAY_VARIABLE_PREFIX}" prefix is reserved for the gateway's own variables`;
  if (NGINX_VARIABLES.has(n)) return `$${n} is an nginx variable`;
  const prefix = NGINX_VARIABLE_PREFIXES.find((p) => n.startsWith(p));
  if (prefix) return `the "${prefix}" prefix is reserved for nginx variables`;
  return null;
}

/**
 * The named groups of a PCRE pattern: `(?<name>…)`, `(?'name'…)` and `(?P<name>…)`, with the
 * offset of their opening parenthesis. Escaped characters are skipped; anything else that
 * looks like a named group counts (a group inside a character class or \Q…\E is reported
 * too: refusing such a pattern is safe, missing a real group is not).
 */
export function namedCaptures(re: string): { name: string; offset: number }[] {
  const out: { name: string; offset: number }[] = [];
  for (let i = 0; i < re.length; i++) {
    if (re[i] === '\\') {
      i++;
      continue;
    }
    if (re[i] !== '(' || re[i + 1] !== '?') continue;
    const m = /^\(\?(?:P?<(?![=!])([^>]*)>|'([^']*)')/.exec(re.slice(i));
    if (m) out.push({ name: m[1] ?? m[2], offset: i });
  }
  return out;
}

export function checkReservedNames(m: GatewayModel, err: Report): void {
  const framing = (at: SourcePos, path: string, name: string, what: string) => {
    if (isFramingHeader(name)) {
      err('GW230', at, path, `${name} cannot be ${what}: framing and hop-by-hop headers (Host, Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer, Proxy-*) are set by nginx for each hop`);
    }
  };
  framing(m.global.at, 'global.request_id.header', m.global.requestId.header, 'the request-id header (sent upstream and to the client)');
  const a = m.auth;
  if (a) {
    for (const k of Object.keys(DEFAULT_IDENTITY_HEADERS) as (keyof typeof DEFAULT_IDENTITY_HEADERS)[]) {
      const h = a.identityHeaders[k];
      if (h !== null) framing(a.at, `auth.identity_headers.${k}`, h, 'an identity header (set on upstream requests)');
    }
    if (a.apiKeys) framing(a.apiKeys.at, 'auth.api_keys.header', a.apiKeys.header, 'the API-key header (removed before proxying)');
  }
  for (const r of m.routes) {
    for (const h of r.setRequestHeaders) framing(r.at, `routes[${r.index}].set_headers.${h.name}`, h.name, 'set with set_headers');
    // a route's own key_header; the default comes from auth.api_keys.header, reported there
    if (r.auth?.methods.includes('api_key') && r.auth.keyHeader !== a?.apiKeys?.header) {
      framing(r.auth.at, `routes[${r.index}].auth.key_header`, r.auth.keyHeader, 'an API-key header (removed before proxying)');
    }
    if (r.match.path.kind === 'regex') {
      for (const c of namedCaptures(r.match.path.value)) {
        const why = reservedVariable(c.name);
        if (why) {
          err('GW231', r.at, `routes[${r.index}].match.regex`, `named capture "${c.name}" (at offset ${c.offset}) would replace an nginx variable: ${why}; rename the group`);
        }
      }
    }
  }
}
