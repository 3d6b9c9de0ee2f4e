// Routing keys and model-aware routing: njs derives consistent-hash keys that nginx cannot
// read itself (JSON body field, JWT claim, authenticated client) and the OpenAI `model` of a
// request; nginx keeps the ring and the balancing; sticky cookies (sticky.ts). docs/routing.md.
import type { Feature } from '../../core/feature.ts';
import type { GatewayModel, Route } from '../../model/types.ts';
import { checkRoutingRules } from './rules.ts';
import { checkPlacementRules } from './placement-rules.ts';
import { normalizeModels, routingNeedsNjs } from './normalize.ts';
import { bodyStep, claimSpecLines, hashSpec, modelsListLines, MODEL_UPSTREAM_TARGET, needsBodyStep, njsKeySource, ROUTE_HANDLER, routingHttpLines, routingMapBlocks } from './render.ts';
import { routingSchema } from './schema.ts';
import { FALLBACK_BODY_HANDLER, fallbackRewritesBody, placementHttpLines, placementMapBlocks, routeChains } from './fallback.ts';
import { checkSticky, normalizeSticky, stickyMaps, stickyRequires, stickyResponseHeaders, stickyUpstreamLines } from './sticky.ts';

function njsCalls(r: Route, m: GatewayModel): number {
  if (r.models === 'list' || r.respond) return 0;
  // a claim key is written by the JWT handler's own call (auth), not by a call of routing's
  return needsBodyStep(r, m) ? 1 : 0; // js_content gateway.route
}

export const routingFeature: Feature = {
  name: 'routing',
  summary: 'consistent-hash keys from body fields, JWT claims, clients and prompt prefixes; sticky cookies; model-aware routing over pools with fallbacks; /v1/models',
  schema: routingSchema,
  njs: [
    { handler: ROUTE_HANDLER, phase: 'js_content', used: (m) => m.routes.some((r) => needsBodyStep(r, m)) },
    // only in a fallback stage that sends the request to another model's pool (fallback.ts)
    { handler: FALLBACK_BODY_HANDLER, phase: 'js_set', used: fallbackRewritesBody },
  ],
  cost: {
    njsCalls,
    measured:
      'scripts/bench.ts: model routing and body-field hash scenarios. Fallbacks (scripts/bench/instructions.ts, gw_model): a model with a chain served by its first pool +3.7% instructions (the chain map, a try_files hand-over); a catalogue without chains: none measurable; a stage sending the request to another model adds one js_set call (the body), on that path only',
  },
  normalize: (raw, m, ctx) => {
    m.models = normalizeModels(raw.models, ctx.at);
    normalizeSticky(raw, m, ctx.at); // sticky cookies (sticky.ts)
  },
  needsNjs: routingNeedsNjs, // keys njs derives, model-aware routes
  rules: (m, err, warn) => {
    checkRoutingRules(m, err, warn); // GW36x
    checkPlacementRules(m, err, warn); // pools and fallbacks: GW460-GW465
    checkSticky(m, err, warn); // GW287-GW291
  },
  requires: stickyRequires, // nginx's own sticky cookie: nginx >= 1.29.6
  buffersBody: needsBodyStep, // njs reads the body (r.requestText)
  http: (m) => ({
    mapLines: [...routingHttpLines(m), ...placementHttpLines(m)],
    maps: [...routingMapBlocks(m), ...placementMapBlocks(m), ...stickyMaps(m)],
    mapKeys: [m.models.map((e) => e.id)],
  }),
  upstreamLines: (u) => stickyUpstreamLines(u),
  routeResponseHeaders: (ctx) => stickyResponseHeaders(ctx.route, ctx.model),
  upstreamHashKeySource: (u) => njsKeySource(u),
  route(ctx) {
    const { route: r, model: m } = ctx;
    if (ctx.content) return;
    if (r.models === 'list') {
      // answered by the gateway from the model catalogue, after method checks and limits (as respond)
      ctx.content = { kind: 'answer', name: `@${ctx.rid}_models`, lines: modelsListLines(m, ctx.responseHeaders) };
      return;
    }
    ctx.slots.routingKey.push(...claimSpecLines(r, m));
    ctx.needs.bodyStep = bodyStep(r, m);
    if (r.models === 'route') ctx.proxyHost = MODEL_UPSTREAM_TARGET;
  },
  routeFinish: routeChains, // fallback chains of models (fallback.ts): after every override is known
};
