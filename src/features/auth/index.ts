// Authentication: API keys (SHA-256 in a key map, one js_set), JWT providers (HS256-only in one
// js_set, others through an auth_request subrequest to njs and a hand-over), roles, identity
// headers, tier limits and the auth-failure log. docs/auth.md, docs/njs-auth.md.
import type { Feature, HttpContribution } from '../../core/feature.ts';
import type { GatewayModel, Route } from '../../model/types.ts';
import { checkAuthRules } from './rules.ts';
import { authInputRequests, buildAuthArtifacts } from './outputs.ts';
import { AUTH_CONF, authConf, authLogFields, authServerLocations, routeAuthParts, syncJwt } from './render.ts';
import { authSchema } from './schema.ts';

function njsCalls(r: Route, m: GatewayModel): number {
  const methods = r.auth?.methods ?? [];
  let n = 0;
  if (methods.includes('api_key')) n += 1; // js_set $gw_apikey
  if (methods.includes('jwt')) n += 1; // js_set $gw_jwt (HS256 only) or the auth_request js_content
  void syncJwt(r, m);
  return n;
}

export const authFeature: Feature = {
  name: 'auth',
  summary: 'API keys, JWT, roles, identity headers, tier limits, auth-failure log',
  schema: authSchema,
  njs: [
    { handler: 'gateway.apiKey', phase: 'js_set' },
    { handler: 'gateway.jwtSync', phase: 'js_set' },
    { handler: 'gateway.jwt', phase: 'auth_request' },
  ],
  cost: {
    njsCalls,
    measured: 'API key +7 µs over plain gatewayctl proxying (was +10.5: README "Performance: API keys"); scripts/bench.ts wave 1: JWT HS256 +31.5 µs, JWT ES256 +158 µs',
  },
  inputs: authInputRequests,
  outputs: (m, inputs, ctx) => buildAuthArtifacts(m, inputs, ctx),
  rules: checkAuthRules, // GW313 (zones keyed by the authenticated client), GW37x
  http(m) {
    const confFiles: HttpContribution['confFiles'] = {};
    if (m.auth) confFiles[AUTH_CONF] = authConf(m);
    return { logFields: authLogFields(m), confFiles };
  },
  serverLocations: (m, _l, routes) => authServerLocations(m, routes),
  route(ctx) {
    const parts = routeAuthParts(ctx.route, ctx.model, ctx.rid, ctx.responseHeaders);
    ctx.checks.push(...parts.blocks);
    ctx.errorLocations.push(...parts.named);
    Object.assign(ctx.overrides, parts.overrides);
    ctx.slots.auth.push(...parts.early);
    ctx.lateChecks.push(...parts.lateBlocks);
    ctx.slots.requestHeaders.push(...parts.proxyHeaders);
    ctx.needs.authHandover = parts.handover ? { next: parts.next } : null;
    ctx.needs.eitherMethod = parts.either;
  },
};
