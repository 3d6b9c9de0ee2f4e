// Proxying: proxy_pass to the route's upstream (path stripping and rewriting), the forwarding
// headers, timeouts, retries, WebSocket upgrades and unbuffered streaming. It answers every
// route no other feature answered.
import type { Feature } from '../../core/feature.ts';
import type { GatewayModel, Route } from '../../model/types.ts';
import { d, requestIdVar, type Block, type Directive } from '../../plan/directive.ts';
import { bare, ident, q, RenderError, settableHeader } from '../../plan/quote.ts';

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
    origin: r.at,
    lines: [d('default', '$request_uri'), d(q(`~^/+${escaped}/*(.*)$`, 'regex'), '/$1')],
  };
}

/**
 * proxy_pass with a URI part is refused in a named location: a route proxied from one after
 * a hand-over computes the upstream URI with this map instead (the result nginx's prefix
 * replacement gives). Prefixes without a trailing slash already use $gw_strip_<route>.
 */
export function uriReplacementMap(r: Route, variable = 'gw_upstream_uri_'): Block | null {
  if (r.match.path.kind !== 'prefix') return null;
  const p = r.match.path.value;
  const replace = r.rewrite.replacePath ?? (r.rewrite.stripPrefix && p.endsWith('/') ? '/' : null);
  if (replace === null) return null;
  const escaped = p.replace(/^\/+/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return {
    comment: `upstream URI for route ${r.name} (proxied from a named location)`,
    head: `map $request_uri $${variable}${ident(r.name)}`,
    origin: r.at,
    lines: [d('default', '$request_uri'), d(q(`~^/+${escaped}(.*)$`, 'regex'), q(`${replace}$1`, 'expr'))],
  };
}

/** The upstream URI of a route proxied through a variable host (the health feature's steer
 *  location): its own copy of the replacement map, so it does not depend on auth's. */
export const steerUriMap = (r: Route): Block | null => uriReplacementMap(r, 'gw_steer_uri_');

/**
 * proxy_pass to a host expression (e.g. `$gw_steer_peer`, a per-server upstream block picked
 * by njs) with the URI this route sends upstream; a variable host keeps nginx from replacing
 * the location prefix itself, so the URI comes from the strip or steer map.
 */
export function proxyPassVia(r: Route, host: string): Directive {
  const id = ident(r.name);
  if (r.rewrite.stripPrefix && stripPrefixMap(r)) return d('proxy_pass', `http://${host}$gw_strip_${id}`);
  if (steerUriMap(r)) return d('proxy_pass', `http://${host}$gw_steer_uri_${id}`);
  if (r.rewrite.replacePath) return d('proxy_pass', q(`http://${host}${r.rewrite.replacePath}`, 'expr'));
  return d('proxy_pass', `http://${host}`);
}

function stripMaps(m: GatewayModel): Block[] {
  return m.routes.map(stripPrefixMap).filter((b): b is Block => b !== null);
}

export const proxyFeature: Feature = {
  name: 'proxy',
  summary: 'proxy_pass, forwarding headers, timeouts, retries, WebSocket, streaming',
  cost: { njsCalls: () => 0, measured: 'the baseline: plain proxy_pass with keepalive' },
  http: (m) => ({ maps: stripMaps(m), proxyHeaderNames: ['Host', 'Upgrade', 'Connection', m.global.requestId.header, 'X-Real-IP', 'X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Host'] }),
  routeResponseHeaders: (ctx) => (ctx.route.streaming ? [d('add_header', 'X-Accel-Buffering', '"no"', 'always')] : []),
  route(ctx) {
    if (ctx.content || ctx.route.answeredBy) return; // answered by the gateway itself
    const { route: r, model: m, slots } = ctx;
    const u = m.upstreams.find((x) => x.name === r.upstream);
    if (!u && !ctx.proxyHost) throw new RenderError(`route ${r.name}: unknown upstream ${r.upstream}`);
    // a feature that chooses the upstream per request (models, traffic) names the target
    const host = ctx.proxyHost ?? `http://${bare(u!.name, 'name')}`;
    let target = host;
    if (r.rewrite.stripPrefix) target += stripPrefixMap(r) ? `$gw_strip_${ident(r.name)}` : '/';
    else if (r.rewrite.replacePath) target += r.rewrite.replacePath;
    const proxyPass = d('proxy_pass', r.rewrite.replacePath ? q(target, 'expr') : target);
    const proxyPassNamed = uriReplacementMap(r) && u && !ctx.proxyHost ? d('proxy_pass', `${host}$gw_upstream_uri_${ident(r.name)}`) : proxyPass;
    ctx.content = { kind: 'proxy', proxyPass, proxyPassNamed };

    const up = slots.upstream;
    up.push(d('proxy_http_version', '1.1'));
    up.push(d('proxy_set_header', 'Host', '$host'));
    if (r.websocket) {
      up.push(d('proxy_set_header', 'Upgrade', '$http_upgrade'));
      up.push(d('proxy_set_header', 'Connection', '$gw_connection_upgrade'));
    } else {
      up.push(d('proxy_set_header', 'Connection', '""'));
    }
    up.push(d('proxy_set_header', settableHeader(m.global.requestId.header), requestIdVar(m)));
    up.push(d('proxy_set_header', 'X-Real-IP', '$remote_addr'));
    up.push(d('proxy_set_header', 'X-Forwarded-For', m.global.trustedProxies.length ? '$gw_forwarded_for' : '$proxy_add_x_forwarded_for'));
    up.push(d('proxy_set_header', 'X-Forwarded-Proto', '$scheme'));
    up.push(d('proxy_set_header', 'X-Forwarded-Host', '$host'));

    const t = slots.proxyTuning;
    t.push(d('proxy_connect_timeout', bare(r.timeouts.connect, 'duration')));
    t.push(d('proxy_send_timeout', bare(r.timeouts.send, 'duration')));
    t.push(d('proxy_read_timeout', bare(r.timeouts.read, 'duration')));
    if (r.retries) {
      const on = [...r.retries.on.map((x) => bare(x, 'keyword'))];
      if (r.retries.nonIdempotent) on.push('non_idempotent');
      t.push(d('proxy_next_upstream', ...on));
      t.push(d('proxy_next_upstream_tries', bare(r.retries.tries, 'int')));
      if (r.retries.timeout) t.push(d('proxy_next_upstream_timeout', bare(r.retries.timeout, 'duration')));
    }
    if (r.streaming) {
      // SSE / chunked LLM output: pass every byte on as it arrives.
      slots.streaming.push(d('proxy_buffering', 'off'), d('proxy_cache', 'off'), d('gzip', 'off'), d('chunked_transfer_encoding', 'on'), d('tcp_nodelay', 'on'));
    }
  },
};
