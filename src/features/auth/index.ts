// Authentication: API keys (a key carrying its id checked by nginx's secure_link against an MD5
// by id, any other by SHA-256 in a key map, one js_set), JWT providers (HS256-only in one
// js_set, others through an auth_request subrequest to njs and a hand-over), roles, identity
// headers, tier limits and the auth-failure log. docs/auth.md, docs/njs-auth.md.
import type { Feature, HttpContribution } from '../../core/feature.ts';
import type { GatewayModel, Route } from '../../model/types.ts';
import { checkAuthRules } from './rules.ts';
import { diffModelAuth } from './diff.ts';
import { normalizeAuth, normalizeRouteAuth } from './normalize.ts';
import { authInputRequests, buildAuthArtifacts, redactSecrets } from './outputs.ts';
import { AUTH_CONF, authConf, liveKeys, liveKeysLocations, authFailureLog, authLogFields, authServerLocations, asyncJwt, cachedJwtFirst, knownIdentityHeaders, routeAuthParts, syncJwt, usesApiKeys } from './render.ts';
import { authSchema } from './schema.ts';

function njsCalls(r: Route, m: GatewayModel): number {
  const methods = r.auth?.methods ?? [];
  let n = 0;
  // js_set $gw_apikey_std: at most one; a key carrying its id is checked by nginx with none
  if (methods.includes('api_key')) n += 1;
  if (methods.includes('jwt')) n += 1; // js_set $gw_jwt (HS256 only) or the auth_request js_content
  // js_set $gw_jwt_cached before the subrequest: a cache hit makes it the only JWT call, a miss
  // adds it to the subrequest's (counted: the price of first sight)
  if (cachedJwtFirst(r, m)) n += 1;
  return n;
}

export const authFeature: Feature = {
  name: 'auth',
  summary: 'API keys, JWT, roles, identity headers, tier limits, auth-failure log',
  schema: authSchema,
  njs: [
    // `used` mirrors what authConf() and authServerLocations() emit
    { handler: 'gateway.apiKey', phase: 'js_set', used: usesApiKeys },
    // with admin_api: keys the map does not accept, or all while a key of it is revoked live;
    // also the admin API's /admin/keys (js_content)
    { handler: 'gateway.apiKeyLive', phase: 'js_set', used: liveKeys },
    { handler: 'gateway.jwtSync', phase: 'js_set', used: (m) => m.routes.some((r) => syncJwt(r, m)) },
    { handler: 'gateway.jwtCached', phase: 'js_set', used: (m) => m.routes.some((r) => cachedJwtFirst(r, m)) },
    { handler: 'gateway.jwt', phase: 'auth_request', used: (m) => m.routes.some((r) => asyncJwt(r, m)) },
  ],
  cost: {
    njsCalls,
    measured:
      'scripts/bench/instructions.ts --solo (plain proxying 21.9k instructions a request): an API key carrying its id, checked by nginx with no njs, with the per-client limit and hash 47.1k; a key without an id (one njs call) 78.0k; a JWT seen before (verified-token cache, timed entries) HS256 69.5k, ES256 73.1k; scripts/bench.ts req/s ratio to plain proxying: API key 0.84-0.85, JWT seen before 0.48-0.56 on a fast kernel (before timed entries) and 0.70-0.72 on a slow one (README, Performance); JWT first sight HS256 +43 µs, ES256 +167 µs over the plain baseline; runtime keys (admin_api): the same call plus a flag-file stat, 96.4-96.5k vs 93.0k instructions per API-key request (measured before the last fast-path changes)',
  },
  normalize(raw, m, ctx) {
    m.auth = normalizeAuth(raw.auth, ctx.baseDir, ctx.at);
    const routes = (raw.routes as { auth?: unknown }[] | undefined) ?? [];
    for (const r of m.routes) r.auth = normalizeRouteAuth(routes[r.index]?.auth, m.auth, ctx.at(`routes[${r.index}].auth`));
  },
  needsNjs: (m) => m.auth !== null, // the auth handlers live in the njs module
  inputs: authInputRequests,
  // API-key routes check keys in nginx (secure_link) once the store holds a key in that form;
  // a store of older keys only keeps their njs call as it was. A heuristic on the text, safe
  // both ways: a false "yes" adds the lane (correct, unused), a false "no" leaves those keys
  // to njs (correct, slower); the store itself is parsed, with positions, by outputs
  finalize(m, inputs) {
    const k = m.auth?.apiKeys;
    if (!k) return [];
    const v = inputs.text(k.file);
    k.nativeLane = v?.kind === 'text' && /\bmd5\s*:/.test(v.text);
    return [];
  },
  outputs: (m, inputs, ctx) => buildAuthArtifacts(m, inputs, ctx),
  diff: (a, b, c) => diffModelAuth(c, a.auth, b.auth),
  redact: redactSecrets, // HMAC secrets in njs/auth.json as short hashes
  rules: checkAuthRules, // GW313 (zones keyed by the authenticated client), GW37x, GW284-GW286 (claim_values)
  http(m) {
    const confFiles: HttpContribution['confFiles'] = {};
    if (m.auth) confFiles[AUTH_CONF] = authConf(m);
    // identity headers are set or stripped on every route; credentials stripped where checked
    const proxyHeaderNames = [...knownIdentityHeaders(m), 'Authorization', ...m.routes.flatMap((r) => (r.auth ? [r.auth.keyHeader] : []))];
    // conf.d/keys.map: the key map, and the native lane's four where a route takes API keys
    const includedVariables = m.auth?.apiKeys ? (usesApiKeys(m) ? 5 : 1) : 0;
    return { logFields: authLogFields(m), accessLogs: authFailureLog(m), confFiles, proxyHeaderNames, includedVariables };
  },
  serverLocations: (m, _l, routes) => authServerLocations(m, routes),
  statusLocations: liveKeysLocations,
  route(ctx) {
    const parts = routeAuthParts(ctx.route, ctx.model, ctx.rid, ctx.responseHeaders, ctx.errorFormat);
    ctx.checks.push(...parts.blocks);
    ctx.errorLocations.push(...parts.named);
    Object.assign(ctx.overrides, parts.overrides);
    ctx.slots.auth.push(...parts.early);
    ctx.lateChecks.push(...parts.lateBlocks);
    ctx.slots.requestHeaders.push(...parts.proxyHeaders);
    ctx.needs.authHandover = parts.handover ? { next: parts.next } : null;
    // an accepted API key (either method) or a cached JWT jumps to the post-auth location
    ctx.needs.eitherMethod = parts.either || parts.cachedFirst;
  },
};
