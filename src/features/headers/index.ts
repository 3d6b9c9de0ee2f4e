// Headers: the security-header presets of a listener (and the request id) on every response,
// and the request headers a route sets for its upstream (set_headers).
import type { Feature } from '../../core/feature.ts';
import type { GatewayModel, Listener, SecurityHeaders } from '../../model/types.ts';
import { d, requestIdVar, type Directive } from '../../plan/directive.ts';
import { q, settableHeader } from '../../plan/quote.ts';

/** add_header is not inherited once a level sets any, so every block repeats these. */
export function securityHeaderLines(l: Listener, m: GatewayModel): Directive[] {
  const s: SecurityHeaders = l.securityHeaders;
  const out: Directive[] = [];
  out.push(d('add_header', settableHeader(m.global.requestId.header), requestIdVar(m), 'always'));
  if (s.contentTypeOptions) out.push(d('add_header', 'X-Content-Type-Options', '"nosniff"', 'always'));
  if (s.frameOptions) out.push(d('add_header', 'X-Frame-Options', q(s.frameOptions, 'token'), 'always'));
  if (s.referrerPolicy) out.push(d('add_header', 'Referrer-Policy', q(s.referrerPolicy, 'token'), 'always'));
  if (s.contentSecurityPolicy) out.push(d('add_header', 'Content-Security-Policy', q(s.contentSecurityPolicy, 'text'), 'always'));
  return out;
}

export const headersFeature: Feature = {
  name: 'headers',
  summary: 'security response headers per listener; request headers set per route',
  cost: { njsCalls: () => 0, measured: 'nginx add_header/proxy_set_header only' },
  listenerResponseHeaders: securityHeaderLines,
  http: (m) => ({ proxyHeaderNames: m.routes.flatMap((r) => r.setRequestHeaders.map((h) => h.name)) }),
  route(ctx) {
    for (const h of ctx.route.setRequestHeaders) ctx.slots.requestHeaders.push(d('proxy_set_header', settableHeader(h.name), q(h.value, 'text')));
  },
};
