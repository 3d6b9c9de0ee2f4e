// Cross-field rules over the GatewayModel. Every rule reports with a stable code and the
// YAML position of the entry at fault; all problems are collected, none stops the others.
import type { PositionIndex } from '../config/load.ts';
import type { Diagnostic, GatewayModel, Route, SourcePos } from './types.ts';
import type { Feature } from '../core/feature.ts';
import { routesUsing } from './routes.ts';
import { checkReservedNames } from './reserved-names.ts';
import { checkShutdownRules } from './shutdown.ts';
import { checkNginxLimits } from './nginx-limits.ts';
import { pcreProblem } from './pcre.ts';

/**
 * `positions` (from the load step) lets each diagnostic point at the offending key itself;
 * without it, the position of the enclosing entry is used.
 */
export function checkRules(m: GatewayModel, features: readonly Feature[], positions?: PositionIndex): Diagnostic[] {
  const out: Diagnostic[] = [];
  // an entry itself is reported where it is named (its key); a field of it at its value
  const locate = (at: SourcePos, path: string): SourcePos =>
    path === at.path ? at : { ...(positions?.value.get(path) ?? positions?.key.get(path) ?? at), path };
  const err = (code: string, at: SourcePos, path: string, message: string) =>
    out.push({ code, severity: 'error', message, at: locate(at, path) });
  const warn = (code: string, at: SourcePos, path: string, message: string) =>
    out.push({ code, severity: 'warning', message, at: locate(at, path) });
  const list = (xs: string[]) => (xs.length ? xs.join(', ') : 'none');

  const upstreamNames = m.upstreams.map((u) => u.name);
  const rateNames = [...m.rateZones, ...(m.windowZones ?? [])].map((z) => z.name);
  const connNames = m.connZones.map((z) => z.name);
  const cacheNames = m.caches.map((c) => c.name);
  const listenerNames = m.listeners.map((l) => l.name);

  // listeners
  const seenListener = new Map<string, string>();
  const seenBind = new Map<string, string>();
  for (const [i, l] of m.listeners.entries()) {
    const p = `listeners[${i}]`;
    if (seenListener.has(l.name)) err('GW310', l.at, `${p}.name`, `duplicate listener name "${l.name}"`);
    seenListener.set(l.name, p);
    const bind = `${l.address ?? '*'}:${l.port}`;
    const prev = seenBind.get(bind);
    if (prev) err('GW311', l.at, `${p}.port`, `port ${l.port} is already used by ${prev}`);
    seenBind.set(bind, p);
  }
  for (const [i, l] of m.listeners.entries()) {
    const p = `listeners[${i}].tls`;
    if (l.tls?.acme && !m.acme) err('GW350', l.tls.at, `${p}.acme`, 'acme: true needs a top-level tls.acme section (email, domains)');
    const raw = l.tls && !l.tls.acme;
    if (raw && (l.tls!.cert === '' || l.tls!.key === '' || l.tls!.cert.endsWith('/') || l.tls!.key.endsWith('/'))) {
      err('GW350', l.tls!.at, p, 'tls needs cert and key, or acme: true');
    }
  }
  for (const [i, l] of m.listeners.entries()) {
    const r = l.tls?.redirectFrom;
    if (r) {
      const clash = m.listeners.find((o) => o.port === r);
      if (clash) err('GW311', l.tls!.at, `listeners[${i}].tls.redirect_from`, `redirect port ${r} is already listener "${clash.name}"`);
    }
    if (m.global.status) {
      const sp = Number(m.global.status.listen.split(':').pop());
      if (sp === l.port) err('GW311', l.at, `listeners[${i}].port`, `port ${l.port} is also global.status.listen`);
    }
  }

  // shared-memory zone names are one namespace in nginx
  const zoneOwners = new Map<string, string[]>();
  for (const z of m.rateZones) zoneOwners.set(z.name, [...(zoneOwners.get(z.name) ?? []), `limits.rate.${z.name}`]);
  for (const z of m.connZones) zoneOwners.set(z.name, [...(zoneOwners.get(z.name) ?? []), `limits.conn.${z.name}`]);
  for (const c of m.caches) zoneOwners.set(c.name, [...(zoneOwners.get(c.name) ?? []), `caches.${c.name}`]);
  for (const z of [...m.rateZones, ...m.connZones, ...m.caches]) {
    const owners = zoneOwners.get(z.name)!;
    if (owners.length > 1) {
      err('GW312', z.at, z.at.path, `zone name "${z.name}" collides (${owners.join(', ')}): nginx shares one namespace for limit and cache zones`);
    }
  }
  checkReservedNames(m, err); // GW230 (framing header names), GW231 (regex captures shadowing variables)
  for (const z of m.rateZones) {
    if (z.delay !== null && z.delay > z.burst) err('GW314', z.at, `${z.at.path}.delay`, `delay ${z.delay} exceeds burst ${z.burst}`);
  }

  // upstreams
  for (const u of m.upstreams) {
    const p = `upstreams.${u.name}`;
    if (u.balance === 'ip_hash' && u.servers.some((s) => s.weight !== 1)) {
      err('GW320', u.at, `${p}.servers`, 'weights are not supported with balance: ip_hash (use consistent_hash or round_robin)');
    }
    if (u.balance !== 'round_robin' && u.balance !== 'least_conn' && u.servers.some((s) => s.backup)) {
      err('GW321', u.at, `${p}.servers`, `backup servers cannot be used with balance: ${u.balance} (nginx allows them only with round_robin and least_conn)`);
    }
    if (u.balance === 'consistent_hash' && !u.hashKey) {
      err('GW322', u.at, `${p}.hash_key`, 'balance: consistent_hash needs hash_key (header, cookie, query or client_ip)');
    }
    if (u.balance !== 'consistent_hash' && u.hashKey) {
      warn('GW323', u.at, `${p}.hash_key`, `hash_key is ignored with balance: ${u.balance}`);
    }
    if (u.servers.every((s) => s.backup || s.down)) {
      err('GW324', u.at, `${p}.servers`, 'upstream has no active server (all are backup or down)');
    }
    const seen = new Set<string>();
    for (const [j, s] of u.servers.entries()) {
      if (seen.has(s.address)) err('GW325', s.at, `${p}.servers[${j}]`, `duplicate server ${s.address}`);
      seen.add(s.address);
    }
    if (!routesUsing(m, u.name).length) warn('GW326', u.at, p, `upstream "${u.name}" is not used by any route`);
  }

  // routes
  const seenNames = new Map<string, number>();
  const seenMatch = new Map<string, Route>();
  const reserved = [m.global.health.liveness, m.global.health.readiness];
  for (const r of m.routes) {
    const p = `routes[${r.index}]`;
    if (seenNames.has(r.name)) err('GW330', r.at, `${p}.name`, `duplicate route name "${r.name}" (also routes[${seenNames.get(r.name)}])`);
    seenNames.set(r.name, r.index);
    if (r.upstream === null && r.respond === null && r.models === null && !r.answeredBy) err('GW331', r.at, p, 'route needs an upstream or a respond block');
    if (r.upstream !== null && r.respond !== null) err('GW331', r.at, `${p}.respond`, 'route has both upstream and respond; choose one');
    if (r.upstream !== null && !upstreamNames.includes(r.upstream)) {
      err('GW204', r.at, `${p}.upstream`, `unknown upstream "${r.upstream}" (defined: ${list(upstreamNames)})`);
    }
    for (const [k, z] of r.rateLimits.entries()) {
      if (!rateNames.includes(z)) err('GW205', r.at, `${p}.rate_limits[${k}]`, `unknown rate limit zone "${z}" (defined: ${list(rateNames)})`);
    }
    for (const [k, z] of r.connLimits.entries()) {
      if (!connNames.includes(z)) err('GW206', r.at, `${p}.conn_limits[${k}]`, `unknown connection limit zone "${z}" (defined: ${list(connNames)})`);
    }
    if (r.cache && !cacheNames.includes(r.cache.zone)) {
      err('GW207', r.at, `${p}.cache.zone`, `unknown cache "${r.cache.zone}" (defined: ${list(cacheNames)})`);
    }
    for (const [k, l] of r.listeners.entries()) {
      if (!listenerNames.includes(l)) err('GW208', r.at, `${p}.listeners[${k}]`, `unknown listener "${l}" (defined: ${list(listenerNames)})`);
    }
    if (r.match.path.kind === 'regex') {
      const problem = regexProblem(r.match.path.value);
      if (problem) err('GW332', r.at, `${p}.match.regex`, `regex nginx would reject: ${problem}`);
    }
    if ((r.rewrite.stripPrefix || r.rewrite.replacePath) && r.match.path.kind !== 'prefix') {
      err('GW333', r.at, `${p}.${r.rewrite.stripPrefix ? 'strip_prefix' : 'rewrite'}`, 'strip_prefix and rewrite apply to prefix matches only');
    }
    if (r.errors === 'gateway' && r.models === 'route') {
      // the body step answers a missing or unknown model itself, in the OpenAI shape
      err('GW410', r.at, `${p}.errors`, 'models: route is OpenAI-compatible: its errors (model_not_found, invalid_json, …) are OpenAI-shaped; remove errors: gateway');
    }
    if (r.rewrite.stripPrefix && r.rewrite.replacePath) err('GW333', r.at, `${p}.rewrite`, 'use either strip_prefix or rewrite, not both');
    if (r.respond && (r.cache || r.streaming || r.websocket || r.retries)) {
      err('GW334', r.at, `${p}.respond`, 'respond routes cannot use cache, streaming, websocket or retries');
    }
    if (r.cache && (r.streaming || r.websocket)) {
      err('GW335', r.at, `${p}.cache`, 'a cached route cannot be streaming or websocket (responses must be buffered to be cached)');
    }
    if (r.cors && r.cors.credentials && r.cors.origins.includes('*')) {
      err('GW336', r.at, `${p}.cors.credentials`, 'credentials: true cannot be combined with origin "*" (browsers reject it)');
    }
    if (r.cache?.keyIncludesBody && !r.cache.methods.includes('POST')) {
      warn('GW337', r.at, `${p}.cache.key_includes_body`, 'key_includes_body only matters when POST is cached (cache.methods)');
    }
    if (r.retries && !r.retries.nonIdempotent && r.match.methods && r.match.methods.every((x) => x === 'POST' || x === 'PATCH')) {
      warn('GW338', r.at, `${p}.retries`, 'retries never apply: the route only accepts non-idempotent methods (set non_idempotent: true to allow)');
    }
    if (r.match.path.kind !== 'regex' && reserved.includes(r.match.path.value) && r.match.path.kind === 'exact') {
      err('GW339', r.at, `${p}.match`, `path ${r.match.path.value} is the gateway's own health endpoint (global.health)`);
    }
    for (const l of r.listeners) {
      const key = `${l}|${r.match.host ?? '*'}|${r.match.path.kind}|${r.match.path.kind === 'regex' ? (r.match.path.caseInsensitive ? '~*' : '~') : ''}${r.match.path.value}`;
      const prev = seenMatch.get(key);
      if (prev && prev.index !== r.index) {
        err('GW340', r.at, `${p}.match`, `duplicate route match: same path as routes[${prev.index}] ("${prev.name}") on listener ${l}; merge them (methods and headers narrow a single route)`);
        break;
      }
      seenMatch.set(key, r);
    }
    const listenerObjs = m.listeners.filter((l) => r.listeners.includes(l.name));
    if (r.match.host && listenerObjs.some((l) => l.serverNames.length && !l.serverNames.includes(r.match.host!))) {
      warn('GW341', r.at, `${p}.match.host`, `host ${r.match.host} is not among the listener's server_names; a server block is added for it`);
    }
  }

  for (const f of features) f.rules?.(m, err, warn);
  checkShutdownRules(m, err); // GW280
  checkNginxLimits(m, err, (r) => features.some((f) => f.buffersBody?.(r, m))); // GW240-GW246: what nginx enforces beyond the schema's patterns

  for (const s of m.unsafeSnippets) {
    warn('GW390', s.at, s.at.path, `raw nginx snippet (unsafe escape hatch) inserted verbatim into ${s.context}${s.target ? ` "${s.target}"` : ''}; review it by hand`);
    if (/[{}]/.test(s.text) && !balanced(s.text)) err('GW391', s.at, s.at.path, 'raw nginx snippet has unbalanced braces');
  }
  return out;
}

function balanced(s: string): boolean {
  let depth = 0;
  for (const ch of s) {
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (depth < 0) return false;
  }
  return depth === 0;
}

/** Why nginx's PCRE2 would refuse a location regex (src/model/pcre.ts), or null. */
export function regexProblem(re: string): string | null {
  return pcreProblem(re);
}
