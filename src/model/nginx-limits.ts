// Rules that keep `validate` in agreement with `nginx -t`: limits nginx enforces that a JSON
// Schema pattern cannot express (real IP addresses, a parameter's length once quoted,
// shared-memory zone sizes, names nginx's hash tables fold together, paths nginx can
// take). Each reports at the YAML value at fault with a GW24x code.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { GatewayModel, Route, SourcePos } from './types.ts';
import { q, type QuotedKind } from '../plan/quote.ts';

type Report = (code: string, at: SourcePos, path: string, message: string) => void;

/** nginx reads a parameter into a 4 KiB buffer; stay clear of it once quoted and escaped. */
export const NGINX_PARAM_MAX = 4000;

const ZONE_MIN = 64 * 1024;
const ZONE_MAX = 1024 * 1024 * 1024;

export function sizeBytes(s: string): number {
  const m = /^([0-9]+)([kKmMgG]?)$/.exec(s);
  if (!m) return NaN;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}

/** An IP literal as nginx parses it (IPv6 inside brackets where `bracketed`). */
function validIp(s: string, bracketed: boolean): boolean {
  if (bracketed) return /^\[.*\]$/.test(s) && isIPv6(s.slice(1, -1));
  return isIP(s) !== 0;
}

function validCidr(s: string): boolean {
  if (s === 'all') return true;
  const [ip, bits, extra] = s.split('/');
  if (extra !== undefined) return false;
  const v = isIP(ip);
  if (!v) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^[0-9]{1,3}$/.test(bits) && n <= (v === 4 ? 32 : 128);
}

function quotedBytes(value: string, kind: QuotedKind): number {
  try {
    return Buffer.byteLength(q(value, kind));
  } catch {
    return 0; // not renderable at all: the schema reports the value itself
  }
}

/**
 * Why nginx would refuse a shared-memory zone of this size, or null: it parses k and m only,
 * refuses zones below a few pages, and maps the whole zone at start (GW243; features check
 * their own zones with it).
 */
export function zoneSizeProblem(size: string): string | null {
  if (/g$/i.test(size)) return `zone size ${size}: nginx takes zone sizes in k or m (1g is 1024m)`;
  const n = sizeBytes(size);
  return n >= ZONE_MIN && n <= ZONE_MAX ? null : `zone size ${size} is out of range: 64k to 1024m`;
}

/** Longest file path accepted: the system's limit is 4096 bytes with the prefix in front. */
export const PATH_MAX_BYTES = 1024;

/** `buffersBody`: the route keeps the whole request body in memory (as its features declare). */
export function checkNginxLimits(m: GatewayModel, err: Report, buffersBody: (r: Route) => boolean): void {
  const long = (at: SourcePos, path: string, value: string, kind: QuotedKind, what: string) => {
    const n = quotedBytes(value, kind);
    if (n > NGINX_PARAM_MAX) {
      err('GW241', at, path, `${what} is ${n} bytes once quoted for nginx (each "$" takes 12, each " and \\ two); nginx takes at most ${NGINX_PARAM_MAX}`);
    }
  };

  // addresses and CIDRs: the patterns give the shape, node:net says whether it is real
  for (const [i, l] of m.listeners.entries()) {
    if (l.address && !validIp(l.address, l.address.startsWith('['))) {
      err('GW240', l.at, `listeners[${i}].address`, `"${l.address}" is not an IP address (IPv6 in brackets: "[::1]")`);
    }
    if (l.securityHeaders.contentSecurityPolicy) {
      long(l.at, `listeners[${i}].security_headers.content_security_policy`, l.securityHeaders.contentSecurityPolicy, 'text', 'content_security_policy');
    }
    for (const [k, f] of [['cert', l.tls?.cert], ['key', l.tls?.key]] as const) {
      if (f && !l.tls!.acme && !/^\/[^\x00-\x1f\x7f"\\$]*$/.test(f)) {
        err('GW246', l.tls!.at, `listeners[${i}].tls.${k}`, `path ${JSON.stringify(f)} holds a character nginx cannot take in a file name (", \\ or $); move the files or the config`);
      }
    }
  }
  if (m.global.status) {
    const host = m.global.status.listen.replace(/:[0-9]+$/, '');
    if (host !== m.global.status.listen && !validIp(host, host.startsWith('['))) {
      err('GW240', m.global.at, 'global.status.listen', `"${host}" is not an IP address`);
    }
  }
  for (const u of m.upstreams) {
    for (const [j, s] of u.servers.entries()) {
      const p = `upstreams.${u.name}.servers[${j}]`;
      const br = /^\[(.*)\]:[0-9]+$/.exec(s.address);
      if (br && !isIPv6(br[1])) err('GW240', s.at, p, `"[${br[1]}]" is not an IPv6 address`);
      const host = s.address.replace(/:[0-9]+$/, '');
      // all digits and dots: nginx takes it for an IPv4 address, never a host name
      if (!br && !s.address.startsWith('unix:') && /^[0-9.]+$/.test(host) && !isIPv4(host)) {
        err('GW240', s.at, p, `"${host}" is not an IPv4 address`);
      }
    }
  }
  const cidrs = (list: string[], path: string, at: SourcePos) =>
    list.forEach((c, k) => {
      if (!validCidr(c)) err('GW240', at, `${path}[${k}]`, `"${c}" is not an IP address or CIDR (10.0.0.0/8, 2001:db8::/32)`);
    });
  cidrs(m.global.trustedProxies, 'global.trusted_proxies', m.global.at);
  m.global.trustedProxies.forEach((c, k) => {
    // set_real_ip_from has no `all` (allow/deny do)
    if (c === 'all') err('GW240', m.global.at, `global.trusted_proxies[${k}]`, 'trusted_proxies takes addresses or CIDRs, not "all" (write 0.0.0.0/0 and ::/0 to trust every peer)');
  });
  cidrs(m.access.allow, 'global.access.allow', m.global.at);
  cidrs(m.access.deny, 'global.access.deny', m.global.at);

  for (const r of m.routes) {
    const p = `routes[${r.index}]`;
    cidrs(r.access.allow, `${p}.access.allow`, r.at);
    cidrs(r.access.deny, `${p}.access.deny`, r.at);
    if (r.respond) long(r.at, `${p}.respond.body`, r.respond.body, 'text', 'respond.body');
    for (const h of r.setRequestHeaders) long(r.at, `${p}.set_headers.${h.name}`, h.value, 'text', `set_headers.${h.name}`);
    if (r.match.path.kind === 'regex') long(r.at, `${p}.match.regex`, r.match.path.value, 'regex', 'match.regex');
    if (r.cors) {
      // nginx map keys are case-insensitive: two spellings of one origin collide
      const seen = new Map<string, number>();
      r.cors.origins.forEach((o, k) => {
        const key = o.toLowerCase();
        if (seen.has(key)) err('GW242', r.at, `${p}.cors.origins[${k}]`, `origin "${o}" is listed twice (also origins[${seen.get(key)}]; origins compare case-insensitively)`);
        else seen.set(key, k);
      });
    }
  }

  // file names: no file system takes a path component over 255 bytes
  const files: [string | null | undefined, string, SourcePos][] = [
    [m.global.accessLog?.path, 'global.access_log.path', m.global.at],
    [m.global.errorLog.path, 'global.error_log.path', m.global.at],
    [m.auth?.failureLog, 'auth.failure_log', m.auth?.at ?? m.global.at],
    ...m.caches.map((c): [string, string, SourcePos] => [c.path, `caches.${c.name}.path`, c.at]),
    ...m.listeners.flatMap((l, i): [string, string, SourcePos][] =>
      l.tls && !l.tls.acme ? [[l.tls.cert, `listeners[${i}].tls.cert`, l.tls.at], [l.tls.key, `listeners[${i}].tls.key`, l.tls.at]] : [],
    ),
  ];
  for (const [f, path, at] of files) {
    if (f && f.split('/').some((part) => Buffer.byteLength(part) > 255)) err('GW246', at, path, 'a file or directory name in this path is longer than 255 bytes');
    else if (f && Buffer.byteLength(f) > PATH_MAX_BYTES) err('GW246', at, path, `the path is ${Buffer.byteLength(f)} bytes long (at most ${PATH_MAX_BYTES}: the system's limit of 4096 includes the prefix in front of it)`);
    else if (f && /log$|log\.path$/.test(path) && /(^|\/)(\.{0,2})$/.test(f)) err('GW246', at, path, `"${f}" names a directory; a log path names a file`);
  }

  // shared-memory zones: nginx refuses tiny ones, and maps big ones at startup
  const zone = (size: string, at: SourcePos, path: string) => {
    const problem = zoneSizeProblem(size);
    if (problem) err('GW243', at, path, `${problem} (10m holds about 160,000 keys)`);
  };
  for (const z of [...m.rateZones, ...m.connZones]) zone(z.size, z.at, `${z.at.path}.size`);
  for (const c of m.caches) zone(c.size, c.at, `caches.${c.name}.size`);

  // where the whole body is kept in memory (model routing, body hash keys, body-keyed cache)
  // max_body is also client_body_buffer_size, which nginx takes in k or m only
  for (const r of m.routes) {
    if (!r.maxBody || !buffersBody(r)) continue;
    const n = sizeBytes(r.maxBody);
    if (/g$/i.test(r.maxBody) || n > ZONE_MAX) {
      err('GW244', r.at, `routes[${r.index}].max_body`, `max_body ${r.maxBody} is also this route's in-memory body buffer: at most 1024m, written in k or m`);
    }
  }
}
