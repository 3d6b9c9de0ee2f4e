// Semantic diff of two GatewayModels: what an ops reviewer needs to know, in words
// ("route chat: upstream llm → llm-v2", "rate limit api: 10r/s → 50r/s (loosened)"),
// with risky changes flagged. Entities are matched by name; positions (`at`) and the
// source hash are ignored. Fields this file does not know about (new model fields such as
// route-level auth) are still compared generically, so nothing changes silently.
import type {
  AccessRules,
  CacheZone,
  ConnZone,
  Cors,
  GatewayModel,
  LimitKey,
  Listener,
  RateZone,
  Route,
  UnsafeSnippet,
  Upstream,
  UpstreamServer,
} from '../model/types.ts';
import { keysMoved } from '../routing/explain.ts';
import type { Feature } from '../core/feature.ts';
import type { Change, DiffSink, RiskCode, Section } from './types.ts';

export { SECTIONS, type Change, type DiffSink, type RiskCode, type Section } from './types.ts';
import { SECTIONS } from './types.ts';

// ---------------------------------------------------------------------------------------
// value helpers

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Drop source positions recursively; they move with every edit and mean nothing here. */
function strip(v: unknown, sort = true): unknown {
  if (Array.isArray(v)) return v.map((x) => strip(x, sort));
  if (isPlain(v)) {
    const o: Plain = {};
    const keys = sort ? Object.keys(v).sort() : Object.keys(v);
    for (const k of keys) if (k !== 'at' && v[k] !== undefined) o[k] = strip(v[k], sort);
    return o;
  }
  return v;
}

const canon = (v: unknown): string => JSON.stringify(strip(v)) ?? 'undefined';
export const same = (a: unknown, b: unknown): boolean => canon(a) === canon(b);

/** YAML spelling of a model key path: maxBody → max_body, timeouts.read → timeouts.read */
const snake = (p: string): string => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A value as an ops reviewer reads it. */
export function fmt(v: unknown): string {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'string') return v === '' ? '""' : v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.length ? v.map(fmt).join(', ') : 'none';
  if (isPlain(v)) {
    const s = strip(v, false) as Plain;
    return `{ ${Object.entries(s)
      .map(([k, x]) => `${snake(k)}: ${Array.isArray(x) ? `[${fmt(x)}]` : fmt(x)}`)
      .join(', ')} }`;
  }
  return String(v);
}

function listChange(a: unknown[], b: unknown[]): string {
  const as = a.map(fmt);
  const bs = b.map(fmt);
  const added = bs.filter((x) => !as.includes(x));
  const removed = as.filter((x) => !bs.includes(x));
  if (as.length + bs.length > 8 && (added.length || removed.length)) {
    return [added.length ? `+${added.join(', +')}` : '', removed.length ? `-${removed.join(', -')}` : ''].filter(Boolean).join('; ');
  }
  return `${fmt(a)} → ${fmt(b)}`;
}

interface FieldChange {
  path: string; // snake_case, dotted
  before: unknown;
  after: unknown;
  text?: string; // set when "before → after" does not read well
}

const isNamedList = (v: unknown): v is { name: string }[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => isPlain(x) && typeof x.name === 'string');

/**
 * Leaf-level differences between two values. Lists of named objects (JWT providers, …)
 * are matched by name (path `list[name]`); other lists are compared as a whole.
 */
export function deepDiff(a: unknown, b: unknown, prefix = ''): FieldChange[] {
  if (same(a, b)) return [];
  if (isPlain(a) && isPlain(b)) {
    const out: FieldChange[] = [];
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => k !== 'at');
    for (const k of keys) out.push(...deepDiff(a[k], b[k], prefix ? `${prefix}.${snake(k)}` : snake(k)));
    return out;
  }
  if ((isNamedList(a) || isNamedList(b)) && (isNamedList(a) || (Array.isArray(a) && !a.length)) && (isNamedList(b) || (Array.isArray(b) && !b.length))) {
    const as = new Map((a as { name: string }[]).map((x) => [x.name, x]));
    const bs = new Map((b as { name: string }[]).map((x) => [x.name, x]));
    const out: FieldChange[] = [];
    for (const n of new Set([...as.keys(), ...bs.keys()])) {
      const xa = as.get(n);
      const xb = bs.get(n);
      const p = `${prefix}[${n}]`;
      if (!xa || !xb) out.push({ path: p, before: xa ?? null, after: xb ?? null, text: `${p} ${xb ? 'added' : 'removed'}` });
      else out.push(...deepDiff({ ...xa, name: undefined }, { ...xb, name: undefined }, p));
    }
    return out;
  }
  return [{ path: prefix, before: a, after: b }];
}

export function fieldText(f: FieldChange): string {
  if (f.text) return f.text;
  const label = f.path ? `${f.path} ` : '';
  if (Array.isArray(f.before) && Array.isArray(f.after)) return `${label}${listChange(f.before, f.after)}`;
  return `${label}${fmt(f.before)} → ${fmt(f.after)}`;
}

/** Whether an auth setting (of any shape) actually authenticates. */
export function hasAuth(v: unknown): boolean {
  if (v === null || v === undefined || v === false) return false;
  if (typeof v === 'string') return !['', 'none', 'off', 'disabled', 'public'].includes(v);
  if (Array.isArray(v)) return v.some(hasAuth);
  if (isPlain(v)) {
    if (v.enabled === false || v.required === false) return false;
    for (const k of ['kind', 'type', 'mode', 'method']) if (typeof v[k] === 'string' && !hasAuth(v[k])) return false;
    return Object.keys(v).filter((k) => k !== 'at').length > 0;
  }
  return true;
}

export function byName<T extends { name: string }>(xs: T[]): Map<string, T> {
  return new Map(xs.map((x) => [x.name, x]));
}

/** Names in base order, then names only in head. */
export function names<T extends { name: string }>(a: T[], b: T[]): string[] {
  return [...new Set([...a.map((x) => x.name), ...b.map((x) => x.name)])];
}

// ---------------------------------------------------------------------------------------
// descriptions

export function keyText(k: LimitKey): string {
  return k.kind === 'header' ? `header ${k.name}` : k.kind;
}

export function matchText(r: Route): string {
  const p = r.match.path;
  const parts: string[] = [];
  parts.push(r.match.methods ? r.match.methods.join(',') : 'any method');
  if (p.kind === 'exact') parts.push(`= ${p.value}`);
  else if (p.kind === 'prefix') parts.push(`${p.value}*`);
  else parts.push(`${p.caseInsensitive ? '~*' : '~'} ${p.value}`);
  if (r.match.host) parts.push(`host ${r.match.host}`);
  for (const h of r.match.headers) parts.push(`${h.name}: ${h.value}`);
  return parts.join(' ');
}

function targetText(r: Route): string {
  if (r.upstream) return `upstream ${r.upstream}`;
  if (r.respond) return `respond ${r.respond.status}`;
  return 'no target';
}

function listenerText(l: Listener): string {
  const parts = [`${l.address ?? '*'}:${l.port}`, l.tls ? `TLS ${l.tls.profile}` : 'plain HTTP'];
  if (l.serverNames.length) parts.push(`server_names ${l.serverNames.join(', ')}`);
  return parts.join(', ');
}

export function rateText(z: RateZone): string {
  return `${z.rate} burst ${z.burst}${z.nodelay ? ' nodelay' : z.delay !== null ? ` delay ${z.delay}` : ''}, key ${keyText(z.key)}`;
}

function serverText(s: UpstreamServer): string {
  const flags: string[] = [];
  if (s.weight !== 1) flags.push(`weight ${s.weight}`);
  if (s.backup) flags.push('backup');
  if (s.down) flags.push('down');
  return flags.length ? `${s.address} (${flags.join(', ')})` : s.address;
}

function unsafeLabel(s: UnsafeSnippet): string {
  const where = s.context === 'server' ? 'listener' : s.context === 'route' ? 'route' : null;
  return where && s.target ? `unsafe_nginx_${s.context} on ${where} ${s.target}` : `unsafe_nginx_${s.context}`;
}

// ---------------------------------------------------------------------------------------
// the diff

class Changes implements DiffSink {
  readonly list: Change[] = [];
  add(section: Section, kind: Change['kind'], subject: string, text: string, risk: RiskCode | null = null): void {
    this.list.push({ section, kind, subject, text, risk });
  }
}

const KNOWN_ROUTE_KEYS = new Set([
  'name',
  'index',
  'at',
  'match',
  'listeners',
  'upstream',
  'respond',
  'rewrite',
  'timeouts',
  'retries',
  'streaming',
  'websocket',
  'maxBody',
  'rateLimits',
  'connLimits',
  'cache',
  'cors',
  'access',
  'setRequestHeaders',
  'auth',
]);

const KNOWN_MODEL_KEYS = new Set([
  'source',
  'version',
  'global',
  'listeners',
  'upstreams',
  'rateZones',
  'connZones',
  'caches',
  'routes',
  'access',
  'unsafeSnippets',
  'auth',
  'fleet', // the fleet feature's diff
  'tokenZones', // the limits feature's diff
  'windowZones', // the limits feature's diff
  'kubernetes', // the kubernetes feature's diff
]);

/** Semantic changes from `base` to `head`, grouped in SECTIONS order. */
export function semanticDiff(base: GatewayModel, head: GatewayModel, features: readonly Feature[]): Change[] {
  const c = new Changes();
  diffRoutes(c, base, head);
  diffUpstreams(c, base.upstreams, head.upstreams);
  diffListeners(c, base.listeners, head.listeners);
  // top-level concerns of features (limits, auth, access, caches, …): each reports in its own
  // section, so the registry order does not change the output order
  for (const f of features) f.diff?.(base, head, c);
  for (const f of deepDiff(base.global, head.global)) c.add('global', 'changed', `global ${f.path}`, `global: ${fieldText(f)}`);
  diffUnsafe(c, base.unsafeSnippets, head.unsafeSnippets);
  const extra = [...new Set([...Object.keys(base), ...Object.keys(head)])].filter((k) => !KNOWN_MODEL_KEYS.has(k));
  for (const k of extra) {
    for (const f of deepDiff((base as unknown as Plain)[k], (head as unknown as Plain)[k], snake(k))) {
      c.add('global', 'changed', f.path, fieldText(f));
    }
  }
  const order = new Map(SECTIONS.map((s, i) => [s.id, i]));
  return c.list.map((x, i) => ({ x, i })).sort((p, q) => order.get(p.x.section)! - order.get(q.x.section)! || p.i - q.i).map((p) => p.x);
}

/**
 * The margin above the least possible movement at which a consistent-hash change is
 * flagged (docs/diff-ci.md): more than 5 percentage points and more than a quarter above
 * it. nginx's ring (160 points per weight unit) stays within a few points of the minimum
 * when servers are added, removed, reweighted or marked down; replacing a server (a new
 * address) moves its keys and also hands the new one keys from every other server.
 */
export const HASH_MOVE_MARGIN = { points: 0.05, ratio: 0.25 } as const;

export function excessiveMove(moved: number, minimal: number): boolean {
  return moved - minimal > Math.max(HASH_MOVE_MARGIN.points, HASH_MOVE_MARGIN.ratio * minimal);
}

const LOCAL_ADDRESS = /^(127\.|::1$|\[::1\]$|localhost$|unix:)/i;

/**
 * Why a route is open to anyone on the network with nothing to slow them down, or null:
 * it proxies to an upstream (a fixed `respond:` or `models: list` reaches nothing behind the gateway), has no
 * auth, no rate and no connection limit, no access allow-list of its own or global, and is
 * served on at least one listener that is not bound to loopback or a unix socket.
 */
export function publicUnlimited(r: Route, m: GatewayModel): boolean {
  if (r.respond || r.models === 'list') return false; // answered by the gateway itself
  if (hasAuth((r as unknown as Plain).auth)) return false;
  if (r.rateLimits.length || r.connLimits.length) return false;
  const restricted = (a: AccessRules) => a.allow.length > 0 && !a.allow.some((v) => v === 'all' || v === '0.0.0.0/0' || v === '::/0');
  if (restricted(r.access) || restricted(m.access)) return false;
  const served = m.listeners.filter((l) => r.listeners.includes(l.name));
  return served.some((l) => !l.address || !LOCAL_ADDRESS.test(l.address));
}

const PUBLIC_NOTE = 'reachable by anyone, with no auth and no rate or connection limit';

function diffRoutes(c: Changes, base: GatewayModel, head: GatewayModel): void {
  const a = byName(base.routes);
  const b = byName(head.routes);
  for (const n of names(base.routes, head.routes)) {
    const ra = a.get(n);
    const rb = b.get(n);
    const subject = `route ${n}`;
    if (!ra && rb) {
      const open = publicUnlimited(rb, head);
      c.add('routes', 'added', subject, `route ${n} added: ${matchText(rb)} → ${targetText(rb)}${open ? ` (${PUBLIC_NOTE})` : ''}`, open ? 'public-unlimited-route' : null);
      continue;
    }
    if (ra && !rb) {
      c.add('routes', 'removed', subject, `route ${n} removed (was ${matchText(ra)} → ${targetText(ra)})`);
      continue;
    }
    if (ra && rb) {
      diffRoute(c, ra, rb);
      // newly open (auth, limits or an allow-list gone), or open and now reaching more
      const reach = (r: Route) => ({ match: r.match, listeners: r.listeners, upstream: r.upstream, models: r.models });
      if (publicUnlimited(rb, head) && (!publicUnlimited(ra, base) || !same(reach(ra), reach(rb)))) {
        c.add('routes', 'changed', subject, `route ${n}: now ${PUBLIC_NOTE} (${matchText(rb)} → ${targetText(rb)})`, 'public-unlimited-route');
      }
    }
  }
  // order matters for regex routes and is visible to reviewers; report it once
  const common = new Set(base.routes.filter((r) => b.has(r.name)).map((r) => r.name));
  const orderA = base.routes.filter((r) => common.has(r.name)).map((r) => r.name);
  const orderB = head.routes.filter((r) => common.has(r.name)).map((r) => r.name);
  if (orderA.join('\n') !== orderB.join('\n')) {
    c.add('routes', 'changed', 'route order', `route order: ${orderA.join(', ')} → ${orderB.join(', ')}`);
  }
}

function diffRoute(c: Changes, a: Route, b: Route): void {
  const s = `route ${a.name}`;
  const say = (text: string, risk: RiskCode | null = null) => c.add('routes', 'changed', s, `${s}: ${text}`, risk);
  if (!same(a.match, b.match)) say(`match ${matchText(a)} → ${matchText(b)}`);
  if (a.upstream !== b.upstream || !same(a.respond, b.respond)) {
    if (a.respond || b.respond) {
      if (targetText(a) !== targetText(b)) say(`${targetText(a)} → ${targetText(b)}`);
      if (a.respond && b.respond) for (const f of deepDiff(a.respond, b.respond, 'respond')) say(fieldText(f));
    } else {
      say(`upstream ${fmt(a.upstream)} → ${fmt(b.upstream)}`);
    }
  }
  if (!same(a.listeners, b.listeners)) say(`listeners ${listChange(a.listeners, b.listeners)}`);
  for (const f of deepDiff(a.rewrite, b.rewrite, 'rewrite')) say(fieldText(f));
  for (const f of deepDiff(a.timeouts, b.timeouts, 'timeouts')) say(fieldText(f));
  if (!same(a.retries, b.retries)) {
    if (!a.retries) say(`retries enabled (${fmt(b.retries)})`);
    else if (!b.retries) say('retries disabled');
    else for (const f of deepDiff(a.retries, b.retries, 'retries')) say(fieldText(f));
  }
  if (a.streaming !== b.streaming) say(`streaming ${fmt(a.streaming)} → ${fmt(b.streaming)}`);
  if (a.websocket !== b.websocket) say(`websocket ${fmt(a.websocket)} → ${fmt(b.websocket)}`);
  if (a.maxBody !== b.maxBody) say(`max_body ${fmt(a.maxBody ?? 'nginx default (1m)')} → ${fmt(b.maxBody ?? 'nginx default (1m)')}`);

  // per-route limit selections (Limits section): any zone taken off a route loosens it
  const lim = (text: string, risk: RiskCode | null = null) => c.add('limits', 'changed', s, `${s}: ${text}`, risk);
  const lostRate = a.rateLimits.filter((z) => !b.rateLimits.includes(z));
  const newRate = b.rateLimits.filter((z) => !a.rateLimits.includes(z));
  if (lostRate.length && !b.rateLimits.length) {
    lim(`loses all rate limits (was ${a.rateLimits.join(', ')})`, 'rate-limit-loosened');
  } else {
    for (const z of lostRate) lim(`rate limit ${z} removed (loosened)`, 'rate-limit-loosened');
  }
  for (const z of newRate) lim(`rate limit ${z} added`);
  for (const z of a.connLimits.filter((x) => !b.connLimits.includes(x))) lim(`connection limit ${z} removed (loosened)`, 'conn-limit-loosened');
  for (const z of b.connLimits.filter((x) => !a.connLimits.includes(x))) lim(`connection limit ${z} added`);

  if (!same(a.cache, b.cache)) {
    if (!a.cache) say(`cache enabled (zone ${b.cache!.zone}, ttl ${b.cache!.ttl.map((t) => `${t.status}=${t.time}`).join(' ')})`);
    else if (!b.cache) say(`cache disabled (was zone ${a.cache.zone})`);
    else for (const f of deepDiff(a.cache, b.cache, 'cache')) say(fieldText(f));
  }
  diffCors(say, a.cors, b.cors);
  diffAccess(c, 'access', s, a.access, b.access);
  if (!same(a.setRequestHeaders, b.setRequestHeaders)) {
    const h = (xs: { name: string; value: string }[]) => xs.map((x) => `${x.name}: ${x.value}`);
    say(`set_headers ${listChange(h(a.setRequestHeaders), h(b.setRequestHeaders))}`);
  }
  const ax = a as unknown as Plain;
  const bx = b as unknown as Plain;
  diffAuth(c, s, ax.auth, bx.auth);
  for (const f of extraFields(a, b, KNOWN_ROUTE_KEYS)) say(fieldText(f));
}

function diffCors(say: (t: string, r?: RiskCode | null) => void, a: Cors | null, b: Cors | null): void {
  if (same(a, b)) return;
  const wildA = !!a && a.origins.includes('*');
  const wildB = !!b && b.origins.includes('*');
  const risk: RiskCode | null = wildB && !wildA ? 'cors-wildcard' : null;
  if (!a && b) {
    say(`CORS enabled for ${b.origins.join(', ')}${b.credentials ? ' with credentials' : ''}${risk ? ' (open to any origin)' : ''}`, risk);
    return;
  }
  if (a && !b) {
    say(`CORS disabled (was ${a.origins.join(', ')})`);
    return;
  }
  if (!a || !b) return;
  if (!same(a.origins, b.origins)) say(`CORS origins ${listChange(a.origins, b.origins)}${risk ? ' (open to any origin)' : ''}`, risk);
  for (const f of deepDiff({ ...a, origins: null }, { ...b, origins: null }, 'cors')) say(fieldText(f));
}

/** Route auth in words: "api_key or jwt (provider main), roles admin"; other shapes as values. */
export function authText(v: unknown): string {
  if (isPlain(v) && Array.isArray(v.methods)) {
    const provider = typeof v.jwtProvider === 'string' ? ` (provider ${v.jwtProvider})` : '';
    const roles = Array.isArray(v.roles) && v.roles.length ? `, roles ${v.roles.join(', ')}` : '';
    return `${v.methods.join(' or ')}${provider}${roles}`;
  }
  return fmt(v);
}

/** Some required claim value of `before` is not in `after` (removed, or replaced by another). */
export function claimValuesLoosened(before: unknown, after: unknown): boolean {
  if (!Array.isArray(before)) return false;
  const kept = new Set((Array.isArray(after) ? after : []).map((x) => JSON.stringify(x)));
  return before.some((x) => !kept.has(JSON.stringify(x)));
}

function diffAuth(c: Changes, subject: string, a: unknown, b: unknown): void {
  if (same(a, b)) return;
  const had = hasAuth(a);
  const has = hasAuth(b);
  if (had && !has) {
    c.add('auth', 'changed', subject, `${subject}: loses its auth (was ${authText(a)}; now open to unauthenticated clients)`, 'auth-removed');
    return;
  }
  if (!had && has) {
    c.add('auth', 'changed', subject, `${subject}: auth added (${authText(b)})`);
    return;
  }
  for (const f of deepDiff(a, b, 'auth')) {
    // a role restriction dropped: any authenticated client may now call the route
    const widened =
      f.path === 'auth.roles' && Array.isArray(f.before) && f.before.length > 0 && Array.isArray(f.after) && f.after.length === 0;
    if (widened) c.add('auth', 'changed', subject, `${subject}: auth roles ${fmt(f.before)} removed (any authenticated client)`, 'auth-weakened');
    else if (f.path === 'auth.claim_values' && claimValuesLoosened(f.before, f.after)) {
      c.add('auth', 'changed', subject, `${subject}: required claim values loosened or removed (tokens refused before may now pass): ${fieldText(f)}`, 'auth-weakened');
    } else c.add('auth', 'changed', subject, `${subject}: ${fieldText(f)}`);
  }
}

export function diffAccess(c: DiffSink, section: Section, subject: string, a: AccessRules, b: AccessRules): void {
  if (same(a, b)) return;
  const openAll = (x: AccessRules) => x.allow.some((v) => v === 'all' || v === '0.0.0.0/0' || v === '::/0');
  if (a.allow.length && !b.allow.length) {
    c.add(section, 'changed', subject, `${subject}: loses its access allow-list (was ${a.allow.join(', ')}; now open to all)`, 'access-removed');
  } else if (a.allow.length && !openAll(a) && openAll(b)) {
    c.add(section, 'changed', subject, `${subject}: access allow-list opened to all (${listChange(a.allow, b.allow)})`, 'access-removed');
  } else if (!same(a.allow, b.allow)) {
    c.add(section, 'changed', subject, `${subject}: access allow ${listChange(a.allow, b.allow)}`);
  }
  if (!same(a.deny, b.deny)) c.add(section, 'changed', subject, `${subject}: access deny ${listChange(a.deny, b.deny)}`);
}

function diffUpstreams(c: Changes, as: Upstream[], bs: Upstream[]): void {
  const a = byName(as);
  const b = byName(bs);
  for (const n of names(as, bs)) {
    const ua = a.get(n);
    const ub = b.get(n);
    const s = `upstream ${n}`;
    if (!ua && ub) {
      c.add('upstreams', 'added', s, `upstream ${n} added: ${ub.balance}, servers ${ub.servers.map(serverText).join(', ')}`);
      continue;
    }
    if (ua && !ub) {
      c.add('upstreams', 'removed', s, `upstream ${n} removed (was ${ua.servers.map(serverText).join(', ')})`);
      continue;
    }
    if (!ua || !ub) continue;
    const say = (text: string, risk: RiskCode | null = null) => c.add('upstreams', 'changed', s, `${s}: ${text}`, risk);
    const sa = new Map(ua.servers.map((x) => [x.address, x]));
    const sb = new Map(ub.servers.map((x) => [x.address, x]));
    const gone = ua.servers.filter((x) => !sb.has(x.address));
    const fresh = ub.servers.filter((x) => !sa.has(x.address));
    if (gone.length === 1 && fresh.length === 1) {
      say(`server ${serverText(gone[0])} → ${serverText(fresh[0])}`);
    } else {
      for (const x of gone) say(`server ${serverText(x)} removed`);
      for (const x of fresh) say(`server ${serverText(x)} added`);
    }
    for (const x of ua.servers) {
      const y = sb.get(x.address);
      if (!y || same(x, y)) continue;
      if (x.down !== y.down) say(`server ${x.address} ${y.down ? 'marked down' : 'back in service (no longer down)'}`);
      if (x.backup !== y.backup) say(`server ${x.address} ${y.backup ? 'now a backup' : 'no longer a backup'}`);
      for (const f of deepDiff({ ...x, down: null, backup: null }, { ...y, down: null, backup: null })) say(`server ${x.address} ${fieldText(f)}`);
    }
    const live = (u: Upstream) => u.servers.filter((x) => !x.down);
    const primary = (u: Upstream) => live(u).filter((x) => !x.backup);
    if (live(ua).length && !live(ub).length) {
      say('loses all servers (every server is removed or down)', 'upstream-no-servers');
    } else if (primary(ua).length && !primary(ub).length) {
      say('loses all non-backup servers (only backups left)', 'upstream-no-servers');
    }
    const km = keysMoved(ua, ub); // consistent_hash: exact share of keys that change server
    if (km && km.moved > 0) {
      const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
      if (excessiveMove(km.moved, km.minimal)) {
        say(`moves ${pct(km.moved)} of consistent-hash keys to another server; the change needs only ${pct(km.minimal)} (caches and sessions on the other servers are lost too)`, 'hash-keys-moved');
      } else {
        say(`moves ${pct(km.moved)} of consistent-hash keys to another server`);
      }
    }
    const rest = (u: Upstream) => ({ ...u, servers: null, name: null });
    for (const f of deepDiff(rest(ua), rest(ub))) say(fieldText(f));
  }
}

function diffListeners(c: Changes, as: Listener[], bs: Listener[]): void {
  const a = byName(as);
  const b = byName(bs);
  for (const n of names(as, bs)) {
    const la = a.get(n);
    const lb = b.get(n);
    const s = `listener ${n}`;
    if (!la && lb) {
      c.add('listeners', 'added', s, `listener ${n} added: ${listenerText(lb)}`);
      continue;
    }
    if (la && !lb) {
      c.add('listeners', 'removed', s, `listener ${n} removed (was ${listenerText(la)})`);
      continue;
    }
    if (!la || !lb) continue;
    const rest = (l: Listener) => ({ ...l, tls: null, name: null });
    for (const f of deepDiff(rest(la), rest(lb))) c.add('listeners', 'changed', s, `${s}: ${fieldText(f)}`);
    diffTls(c, la, lb);
  }
}

function diffTls(c: Changes, la: Listener, lb: Listener): void {
  const s = `listener ${la.name}`;
  const say = (text: string, risk: RiskCode | null = null) => c.add('tls', 'changed', s, `${s}: ${text}`, risk);
  const a = la.tls;
  const b = lb.tls;
  if (same(a, b)) return;
  if (a && !b) {
    say(`TLS disabled (now plain HTTP on port ${lb.port})`, 'tls-disabled');
    return;
  }
  if (!a && b) {
    say(`TLS enabled (profile ${b.profile}${b.hsts ? ', HSTS' : ''})`);
    return;
  }
  if (!a || !b) return;
  if (a.profile !== b.profile) {
    const down = a.profile === 'modern' && b.profile === 'intermediate';
    say(`TLS profile ${a.profile} → ${b.profile} (${down ? 'downgraded' : 'upgraded'})`, down ? 'tls-downgraded' : null);
  }
  if (a.hsts && !b.hsts) say('HSTS removed', 'hsts-removed');
  else if (!a.hsts && b.hsts) say(`HSTS enabled (max-age ${b.hsts.maxAge})`);
  else if (a.hsts && b.hsts) {
    for (const f of deepDiff(a.hsts, b.hsts, 'hsts')) {
      const shorter = f.path === 'hsts.max_age' && (f.after as number) < (f.before as number) ? ' (shorter)' : '';
      say(`${fieldText(f)}${shorter}`);
    }
  }
  for (const f of deepDiff({ ...a, profile: null, hsts: null }, { ...b, profile: null, hsts: null }, 'tls')) say(fieldText(f));
}

/** Differences in fields a diff function does not handle by name. */
export function extraFields(a: object, b: object, known: Set<string>): FieldChange[] {
  const pa = a as Plain;
  const pb = b as Plain;
  const keys = [...new Set([...Object.keys(pa), ...Object.keys(pb)])].filter((k) => !known.has(k));
  return keys.flatMap((k) => deepDiff(pa[k], pb[k], snake(k)));
}

function diffUnsafe(c: Changes, as: UnsafeSnippet[], bs: UnsafeSnippet[]): void {
  const key = (x: UnsafeSnippet) => `${x.context}:${x.target ?? ''}`;
  const a = new Map(as.map((x) => [key(x), x]));
  const b = new Map(bs.map((x) => [key(x), x]));
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const xa = a.get(k);
    const xb = b.get(k);
    if (!xa && xb) {
      c.add('unsafe', 'added', unsafeLabel(xb), `raw nginx snippet ${unsafeLabel(xb)} added (${lines(xb.text)}; not validated by gatewayctl)`, 'unsafe-snippet');
    } else if (xa && !xb) {
      c.add('unsafe', 'removed', unsafeLabel(xa), `raw nginx snippet ${unsafeLabel(xa)} removed`);
    } else if (xa && xb && xa.text.trim() !== xb.text.trim()) {
      c.add('unsafe', 'changed', unsafeLabel(xb), `raw nginx snippet ${unsafeLabel(xb)} changed (${lines(xb.text)}; not validated by gatewayctl)`, 'unsafe-snippet');
    }
  }
}

function lines(text: string): string {
  const n = text.trim().split('\n').length;
  return n === 1 ? '1 line' : `${n} lines`;
}

export const risky = (changes: Change[]): Change[] => changes.filter((x) => x.risk);
