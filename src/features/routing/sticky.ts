// Sticky cookies (`sticky:` on an upstream), three ways, chosen with `issue`:
//
//   upstream  the backend sets the cookie; nginx hashes on it (`hash … consistent`), the client
//             IP (hash_fallback) until it has one. A first-time client is not pinned.
//   gateway   the gateway sets it, with nginx alone (no njs, any nginx): the core's hash-key
//             map gives a request without the cookie its $request_id as the key, and
//               map $cookie_<name> $gw_sticky_set_<upstream> { default ""; "" "<name>=$request_id; …"; }
//             + `add_header Set-Cookie $gw_sticky_set_<upstream>` on the routes proxying to it
//             (nginx skips an add_header whose value is empty: only a client without the cookie
//             gets one), so the first request is hashed on exactly the value the cookie then
//             carries, and `gatewayctl route --key <cookie value>` predicts it.
//   nginx     nginx's own `sticky cookie` in the upstream block (nginx >= 1.29.6: GW503 on an
//             older target); the upstream's balancing picks a first-time client's server and
//             the cookie names it (MD5 of the server address).
import type { Report, SchemaFragment, VersionNeed } from '../../core/feature.ts';
import { PATTERNS } from '../../config/schema.ts';
import type { GatewayModel, Route, SourcePos, StickyCookie, Upstream } from '../../model/types.ts';
import { durationSeconds } from '../../model/shutdown.ts';
import { d, type Block, type Directive } from '../../plan/directive.ts';
import { bare, ident, q } from '../../plan/quote.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Raw = any;

/** nginx's own sticky cookie entered the open-source nginx in 1.29.6. */
export const NGINX_STICKY_VERSION = '1.29.6';

export const stickySchema: SchemaFragment['upstream'] = {
  after: 'hash_fallback',
  properties: {
    sticky: {
      type: 'object',
      additionalProperties: false,
      required: ['cookie'],
      description:
        'Sticky sessions on a cookie. issue: upstream (default; the backend sets the cookie, the gateway hashes on it), ' +
        'gateway (the gateway sets it when absent, so a new client is pinned from its first response; any nginx), ' +
        `nginx (nginx's own sticky cookie; nginx >= ${NGINX_STICKY_VERSION}). See README, Sticky sessions.`,
      properties: {
        cookie: { type: 'string', pattern: PATTERNS.token },
        issue: { enum: ['upstream', 'gateway', 'nginx'] },
        path: { type: 'string', pattern: PATTERNS.uriPath, maxLength: 256, description: 'cookie Path (default /)' },
        max_age: { type: 'string', pattern: PATTERNS.durationSec, description: 'cookie lifetime, e.g. 1h, 30d (default: a session cookie)' },
        secure: { type: 'boolean', description: 'Secure attribute (default false; set it when clients reach the gateway over HTTPS)' },
        httponly: { type: 'boolean', description: 'HttpOnly attribute (default true)' },
        samesite: { enum: ['strict', 'lax', 'none', false], description: 'SameSite attribute (default lax; false = none sent)' },
      },
    },
  },
};

/** `sticky:` of each upstream into the model; gateway and upstream mode hash on the cookie. */
export function normalizeSticky(raw: Raw, m: GatewayModel, at: (p: string) => SourcePos): void {
  const rawUpstreams = (raw.upstreams as Record<string, Raw> | undefined) ?? {};
  for (const u of m.upstreams) {
    const ru = rawUpstreams[u.name];
    const s = ru?.sticky;
    if (!s) continue;
    const issue: StickyCookie['issue'] = s.issue ?? 'upstream';
    u.sticky = {
      kind: 'cookie',
      name: s.cookie,
      issue,
      path: s.path ?? '/',
      maxAge: s.max_age === undefined ? null : durationSeconds(s.max_age),
      secure: s.secure ?? false,
      httpOnly: s.httponly ?? true,
      sameSite: s.samesite === false ? null : (s.samesite ?? 'lax'),
      at: at(`upstreams.${u.name}.sticky`),
    };
    if (issue === 'nginx') continue; // the upstream's own balancing picks a new client's server
    u.balance = 'consistent_hash';
    u.hashKey = { kind: 'cookie', name: s.cookie };
    // gateway: without the cookie the key is the request id, the value the cookie is set to
    u.hashFallback = ru.hash_fallback ?? (issue === 'gateway' ? 'random' : 'client_ip');
  }
}

const stickyOf = (u: Upstream | undefined, issue: StickyCookie['issue']): StickyCookie | null => (u?.sticky?.issue === issue ? u.sticky : null);

/** Cookie attributes after the value: `; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax`. */
function cookieAttributes(s: StickyCookie): string {
  let out = `; Path=${s.path}`;
  if (s.maxAge !== null) out += `; Max-Age=${s.maxAge}`;
  if (s.httpOnly) out += '; HttpOnly';
  if (s.secure) out += '; Secure';
  if (s.sameSite) out += `; SameSite=${s.sameSite[0].toUpperCase()}${s.sameSite.slice(1)}`;
  return out;
}

const setVar = (u: Upstream) => `$gw_sticky_set_${ident(u.name)}`;

/** The Set-Cookie maps of gateway-issued sticky cookies (00-maps.conf). */
export function stickyMaps(m: GatewayModel): Block[] {
  const out: Block[] = [];
  for (const u of m.upstreams) {
    const s = stickyOf(u, 'gateway');
    if (!s) continue;
    const cookie = `${bare(s.name, 'token')}=$request_id${cookieAttributes(s)}`;
    out.push({
      comment: `sticky cookie of upstream ${u.name}: set when the request has none, to the request id it was hashed on`,
      head: `map $cookie_${bare(s.name, 'token')} ${setVar(u)}`,
      origin: s.at,
      lines: [d('default', '""'), d('""', q(cookie, 'expr'))],
    });
  }
  return out;
}

/** `add_header Set-Cookie …` on a route proxying to a gateway-issued sticky upstream (2xx/3xx answers; empty = not sent). */
export function stickyResponseHeaders(r: Route, m: GatewayModel): Directive[] {
  const u = m.upstreams.find((x) => x.name === r.upstream);
  return stickyOf(u, 'gateway') ? [d('add_header', 'Set-Cookie', setVar(u!))] : [];
}

/** nginx's own `sticky cookie` line in the upstream block. */
export function stickyUpstreamLines(u: Upstream): Directive[] {
  const s = stickyOf(u, 'nginx');
  if (!s) return [];
  const args = ['sticky', 'cookie', bare(s.name, 'token')];
  if (s.maxAge !== null) args.push(`expires=${bare(s.maxAge, 'int')}s`);
  if (s.httpOnly) args.push('httponly');
  if (s.secure) args.push('secure');
  if (s.sameSite) args.push(`samesite=${bare(s.sameSite, 'keyword')}`);
  args.push(q(`path=${s.path}`, 'expr'));
  return [d(...args)];
}

export function stickyRequires(m: GatewayModel): VersionNeed[] {
  return m.upstreams
    .filter((u) => u.sticky?.issue === 'nginx')
    .map((u) => ({ nginx: NGINX_STICKY_VERSION, why: "nginx's own sticky cookie (issue: nginx)", at: u.sticky!.at }));
}

/** GW287-GW291. */
export function checkSticky(m: GatewayModel, err: Report, warn: Report): void {
  for (const u of m.upstreams) {
    const s = u.sticky;
    if (!s) continue;
    const p = `upstreams.${u.name}.sticky`;
    if (s.issue === 'gateway' && u.hashFallback === 'client_ip') {
      err('GW287', s.at, `upstreams.${u.name}.hash_fallback`, 'hash_fallback: client_ip cannot be used with sticky issue: gateway: a request without the cookie is hashed on the request id the gateway then sets as the cookie');
    }
    if (s.issue === 'gateway' && /[.-]/.test(s.name)) {
      err('GW288', s.at, `${p}.cookie`, `cookie name "${s.name}" holds "-" or ".": nginx reads cookies through $cookie_<name>, which cannot name it, so the cookie the gateway sets would never be read back; use letters, digits and _`);
    }
    if (s.sameSite === 'none' && !s.secure) {
      err('GW289', s.at, `${p}.samesite`, 'samesite: none needs secure: true (browsers drop a SameSite=None cookie without Secure)');
    }
    if (s.issue === 'upstream') {
      const given = ['path', 'max_age', 'secure', 'httponly', 'samesite'];
      const raw = { path: s.path !== '/', max_age: s.maxAge !== null, secure: s.secure, httponly: !s.httpOnly, samesite: s.sameSite !== 'lax' };
      const set = given.filter((k) => raw[k as keyof typeof raw]);
      if (set.length) err('GW290', s.at, `${p}.${set[0]}`, `${set.join(', ')}: cookie attributes apply when the gateway sets the cookie (issue: gateway or nginx); with issue: upstream the backend sets it`);
    }
    if (s.issue === 'gateway') {
      const viaModels = m.models.filter((e) => e.upstream === u.name);
      if (viaModels.length && m.routes.some((r) => r.models === 'route')) {
        warn('GW291', s.at, p, `model-aware routes reach upstream ${u.name} (models ${viaModels.map((e) => e.id).join(', ')}) without setting its cookie: only routes naming the upstream set it, model requests hash on the request id each time`);
      }
    }
  }
}
