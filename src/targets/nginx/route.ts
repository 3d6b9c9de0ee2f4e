// Core views: a route's location head and its plan, upstream blocks, consistent-hash keys.
// Every feature-specific directive comes from the features (src/features/, through the
// Feature contract in src/core/feature.ts); nothing here knows a feature by name.
import type { Feature } from '../../core/feature.ts';
import type { GatewayModel, Listener, Route, Upstream } from '../../model/types.ts';
import { bare, headerVar, ident, q, RenderError } from '../../plan/quote.ts';
import { namedCaptures, reservedVariable } from '../../model/reserved-names.ts';
import { d, raw, type Directive } from '../../plan/directive.ts';
import { layoutRoute, planRoute, PlanError, type RouteLocations } from '../../plan/route.ts';

export interface RenderOptions {
  /** modules found for the target nginx; brotli is dropped with a warning when absent */
  availableModules?: { brotli: boolean };
  warnings?: string[];
  /** keys of maps written outside render/ (the API key map), so map_hash_* is sized for them */
  /** keys of maps written outside render (the API key map), for sizing map_hash_* */
  externalMapKeys?: string[][];
}

export function hashKeyVar(u: Upstream): string {
  if (!u.hashKey) throw new RenderError(`upstream ${u.name} has no hash key`);
  if (u.hashKey.kind === 'client_ip') return '$remote_addr';
  return `$gw_hash_key_${ident(u.name)}`;
}

/** The variable a consistent-hash key is read from: nginx's own, or one a feature derives. */
export function hashKeySource(u: Upstream, m: GatewayModel, features: readonly Feature[]): string {
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
      for (const f of features) {
        const v = f.upstreamHashKeySource?.(u, m);
        if (v) return v;
      }
      return '$remote_addr';
  }
}

/** Response headers of a listener, from every feature that sets some (add_header is not inherited once a level sets any). */
export function listenerHeaders(l: Listener, m: GatewayModel, features: readonly Feature[]): Directive[] {
  return features.flatMap((f) => f.listenerResponseHeaders?.(l, m) ?? []);
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

/** Plan a route with every feature and lay it out as locations (src/plan/route.ts). */
export function routeBlocks(r: Route, l: Listener, m: GatewayModel, features: readonly Feature[]): RouteLocations {
  const snippet = m.unsafeSnippets.find((s) => s.context === 'route' && s.target === r.name);
  const rawLines = snippet ? [raw(`# unsafe_nginx_route (verbatim, from ${snippet.at.path})`), ...snippet.text.trim().split('\n').map(raw)] : [];
  try {
    const plan = planRoute(r, l, m, features, {
      rid: `gw_route_${ident(r.name)}`,
      head: routeMatchHead(r),
      routeName: d('set', '$gw_route', q(r.name, 'token')),
      raw: rawLines,
    });
    const out = layoutRoute(plan);
    // where nginx's errors in these blocks come from: the route, its raw snippet lines the snippet
    for (const b of [out.location, ...out.named]) {
      b.origin = r.at;
      if (snippet) b.lineOrigins = b.lines.map((l) => (rawLines.includes(l as never) ? snippet.at : undefined));
    }
    return out;
  } catch (e) {
    if (e instanceof PlanError) throw new RenderError(e.message);
    throw e;
  }
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
    // counted in the upstream's shared zone (above), so the cap holds for all workers together
    if (s.maxConns) parts.push(`max_conns=${bare(s.maxConns, 'int')}`);
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

