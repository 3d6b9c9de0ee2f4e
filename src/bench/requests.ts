// `gatewayctl bench -c`: a request that reaches each route of the user's config — method,
// path from its match (exact, prefix, a sample of a regex), Host, the headers it requires, a
// JSON body with a catalogue model on `models: route` routes, and a credential the route
// accepts (an API key made for the run, an HS* token signed with the provider's secret), or
// the reason there is none. Pure: the caller makes the keys and reads the secrets.
import { createHmac } from 'node:crypto';
import type { GatewayModel, JwtProviderSettings, Route } from '../model/types.ts';
import { hasBody } from './load.ts';

export interface BenchRequest {
  method: string;
  path: string;
  /** Host first when the route or its listener needs one, then required headers and the credential. */
  headers: Record<string, string>;
  /** The `model` of the JSON body (requests with a body). */
  model?: string;
  /** What authenticates the request. */
  credential: 'none' | 'api_key' | 'jwt' | 'given';
  /** Whether a proxied request reaches the upstream (false: the gateway answers itself). */
  proxied: boolean;
}

export type Derived = { ok: true; request: BenchRequest } | { ok: false; reason: string };

export interface BenchCredentials {
  /** API keys made for the run, by role ('' = no role). */
  apiKeys: Record<string, string>;
  /** HMAC secret of each JWT provider that has one. */
  secrets: Record<string, string>;
  /** Seconds since the epoch the tokens are valid until. */
  exp: number;
}

export interface RouteOverrides {
  /** Request path to use instead of the derived one. */
  path?: string;
  /** Headers to send (an Authorization header replaces the derived credential). */
  headers?: Record<string, string>;
}

const HMAC: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const b64url = (s: string | Buffer) => Buffer.from(s).toString('base64url');

/** A JWT signed with an HMAC secret. */
export function signHs(alg: string, secret: string, claims: Record<string, unknown>): string {
  const input = `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac(HMAC[alg], secret).update(input).digest('base64url')}`;
}

/** The claims a provider (and the route) require, with `sub`-like client claim `bench`. */
export function claimsFor(p: JwtProviderSettings, route: Route, exp: number): Record<string, unknown> {
  const c: Record<string, unknown> = { exp, iat: exp - 24 * 3600 };
  for (const name of p.requiredClaims) c[name] = 'bench';
  c[p.clientClaim] = 'bench';
  if (p.issuer.length) c.iss = p.issuer[0];
  if (p.audience.length) c.aud = p.audience[0];
  const roles = route.auth?.roles ?? [];
  if (roles.length && p.roleClaim) c[p.roleClaim] = roles[0];
  for (const rule of [...p.claimValues, ...(route.auth?.claimValues ?? [])]) {
    if (rule.oneOf?.length) c[rule.claim] = rule.oneOf[0];
    if (rule.contains?.length) {
      const had = Array.isArray(c[rule.claim]) ? (c[rule.claim] as unknown[]) : [];
      c[rule.claim] = [...new Set([...had, ...rule.contains])];
    }
  }
  return c;
}

/**
 * A string the regex matches, for the common shapes of path regexes: literals, escapes,
 * classes, groups (first alternative), quantifiers (their minimum, at least one for `+`),
 * anchors. null when the sample does not match (lookarounds, backreferences…): pass --path.
 */
export function sampleForRegex(re: string, caseInsensitive = false): string | null {
  let i = 0;
  const one = (cls: string): string => {
    // first character a class admits: a printable path character when it is negated or a shorthand
    if (cls === '\\d') return '1';
    if (cls === '\\w') return 'a';
    if (cls === '\\s') return ' ';
    if (cls === '.') return 'a';
    return cls;
  };
  const atom = (): string => {
    const c = re[i];
    if (c === '\\') {
      const n = re[i + 1];
      i += 2;
      if ('dws'.includes(n)) return one(`\\${n}`);
      if ('DWS'.includes(n)) return n === 'D' ? 'a' : n === 'W' ? '-' : 'a';
      if (n === 'b' || n === 'B' || n === 'A' || n === 'z' || n === 'Z') return '';
      return n;
    }
    if (c === '[') {
      let j = i + 1;
      const negated = re[j] === '^';
      if (negated) j++;
      const body: string[] = [];
      if (re[j] === ']') body.push(re[j++]);
      while (j < re.length && re[j] !== ']') {
        if (re[j] === '\\') {
          body.push(re.slice(j, j + 2));
          j += 2;
        } else body.push(re[j++]);
      }
      i = j + 1;
      if (negated) {
        const banned = body.join('');
        return ['a', 'b', '1', '-', '_'].find((x) => !banned.includes(x)) ?? 'z';
      }
      const first = body[0] ?? '';
      return first.startsWith('\\') ? (('dws'.includes(first[1]) ? one(first) : first[1]) ?? '') : first;
    }
    if (c === '(') {
      i++;
      if (re[i] === '?') {
        // (?:…) (?<name>…) (?P<name>…) (?i) and friends
        if (re[i + 1] === ':') i += 2;
        else if (re[i + 1] === '<' || (re[i + 1] === 'P' && re[i + 2] === '<')) i = re.indexOf('>', i) + 1;
        else if (/^\?[imsx-]+\)/.test(re.slice(i))) {
          i = re.indexOf(')', i) + 1;
          return '';
        } else return '\u0000'; // lookaround: not sampled
      }
      const inner = alternation();
      i++; // ')'
      return inner;
    }
    if (c === '.') {
      i++;
      return 'a';
    }
    if (c === '^' || c === '$') {
      i++;
      return '';
    }
    i++;
    return c;
  };
  const quantified = (): string => {
    const a = atom();
    const q = re[i];
    let min = 1;
    if (q === '?' || q === '*') {
      min = 0;
      i++;
    } else if (q === '+') i++;
    else if (q === '{') {
      const m = /^\{(\d*)(,\d*)?\}/.exec(re.slice(i));
      if (m) {
        min = Number(m[1] || 0);
        i += m[0].length;
      }
    }
    if (q === '?' || q === '*' || q === '+' || q === '{') if (re[i] === '?' || re[i] === '+') i++; // lazy / possessive
    return a.repeat(min);
  };
  const sequence = (): string => {
    let out = '';
    while (i < re.length && re[i] !== '|' && re[i] !== ')') out += quantified();
    return out;
  };
  const alternation = (): string => {
    const first = sequence();
    // skip the other alternatives of this group
    let depth = 0;
    while (i < re.length) {
      const c = re[i];
      if (c === '\\') {
        i += 2;
        continue;
      }
      if (c === '(') depth++;
      else if (c === ')') {
        if (depth === 0) break;
        depth--;
      }
      i++;
    }
    return first;
  };
  let sample: string;
  try {
    sample = alternation();
  } catch {
    return null;
  }
  if (sample.includes('\u0000')) return null;
  try {
    // the sample must match as the regex is written (PCRE and JS agree on this subset)
    const js = new RegExp(re.replace(/\(\?P</g, '(?<').replace(/^\(\?i\)/, ''), caseInsensitive || /^\(\?i\)/.test(re) ? 'i' : '');
    return js.test(sample) ? sample : null;
  } catch {
    return null;
  }
}

/** A path the route's match takes. */
export function samplePath(route: Route): string | null {
  const p = route.match.path;
  if (p.kind === 'exact' || p.kind === 'prefix') return p.value;
  let s = sampleForRegex(p.value, p.caseInsensitive);
  if (s === null) return null;
  if (!s.startsWith('/')) s = `/${s}`;
  return s;
}

/** A Host a server name answers to: the name, one under a wildcard, a sample of a regex. */
function hostFor(name: string): string | null {
  if (name.startsWith('~')) return sampleForRegex(name.slice(1));
  if (name.startsWith('*.')) return `bench.${name.slice(2)}`;
  if (name.endsWith('.*')) return `${name.slice(0, -2)}.com`;
  if (name.startsWith('.')) return name.slice(1);
  return name;
}

export function deriveRequest(route: Route, m: GatewayModel, creds: BenchCredentials, over: RouteOverrides = {}): Derived {
  if (route.websocket) return { ok: false, reason: 'WebSocket route: a request per connection upgrade is not what this measures' };
  const headers: Record<string, string> = {};
  // Host: the route's own, else a name of its listener when that listener has names
  const listener = m.listeners.find((l) => l.name === route.listeners[0]);
  const hostName = route.match.host ?? listener?.serverNames.find((n) => n !== '_') ?? null;
  if (hostName) {
    const h = hostFor(hostName);
    if (!h) return { ok: false, reason: `cannot derive a Host for ${hostName}; pass --header '${route.name}=Host: …'` };
    headers.Host = h;
  }
  const path = over.path ?? samplePath(route);
  if (path === null) return { ok: false, reason: `cannot derive a path the regex ${route.match.path.value} matches; pass --path '${route.name}=/…'` };
  const methods = route.match.methods;
  let method = methods === null || methods.includes('GET') ? 'GET' : methods.includes('POST') ? 'POST' : methods[0];
  let model: string | undefined;
  if (route.models === 'route') {
    if (methods !== null && !methods.includes('POST')) return { ok: false, reason: 'a models: route route that takes no POST' };
    method = 'POST';
    const entry = m.models[0];
    if (!entry) return { ok: false, reason: 'models: route with an empty model catalogue' };
    model = entry.id;
  } else if (hasBody(method)) model = 'gpt-4o';
  for (const h of route.match.headers) {
    const v = h.regex ? sampleForRegex(h.value) : h.value;
    if (v === null) return { ok: false, reason: `cannot derive a value of header ${h.name} matching ${h.value}; pass --header '${route.name}=${h.name}: …'` };
    headers[h.name] = v;
  }
  let credential: BenchRequest['credential'] = 'none';
  const given = Object.keys(over.headers ?? {}).some((k) => k.toLowerCase() === 'authorization' || k.toLowerCase() === route.auth?.keyHeader.toLowerCase());
  if (route.auth && given) credential = 'given';
  else if (route.auth) {
    const role = route.auth.roles[0] ?? '';
    const provider = route.auth.jwtProvider ? m.auth?.jwt.find((p) => p.name === route.auth!.jwtProvider) : undefined;
    const hs = provider?.algorithms.find((a) => a in HMAC);
    if (route.auth.methods.includes('api_key') && creds.apiKeys[role] !== undefined) {
      headers[route.auth.keyHeader] = creds.apiKeys[role];
      credential = 'api_key';
    } else if (provider && hs && creds.secrets[provider.name] !== undefined) {
      headers.Authorization = `Bearer ${signHs(hs, creds.secrets[provider.name], claimsFor(provider, route, creds.exp))}`;
      credential = 'jwt';
    } else if (route.auth.methods.includes('jwt')) {
      return { ok: false, reason: `JWT provider ${route.auth.jwtProvider} has no HMAC secret to sign a token with (${provider?.algorithms.join(', ') ?? 'no provider'}); pass --header '${route.name}=Authorization: Bearer …'` };
    } else return { ok: false, reason: 'no API key store to make a key in' };
  }
  Object.assign(headers, over.headers ?? {});
  const proxied = !route.respond && !route.answeredBy && route.models !== 'list';
  return { ok: true, request: { method, path, headers, ...(model ? { model } : {}), credential, proxied } };
}
