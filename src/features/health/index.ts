// The upstream state plane: active health checks and circuit breakers per server, steering
// around unavailable servers without an njs call while every server is up, and the JSON
// status at /admin/status on the status listener. Runtime half: njs/lib/health.ts.
//
// nginx keeps its balancer: with every server up a request pays one open_file_cache lookup
// (`if (-f $document_root/steer-<upstream>)`); while a server is out, njs picks among
// per-server upstream blocks, placing hash keys as nginx's ring would with that server
// skipped (what `gatewayctl route --unavailable` predicts). README, "Health checks, circuit
// breakers and status".
import type { Feature } from '../../core/feature.ts';
import { checkHealthRules } from './rules.ts';
import { managedUpstreams, normalizeHealth } from './normalize.ts';
import { clusterStatusLocations, H, HEALTH_PRELOAD, healthChains, healthHttp, healthPreload, healthRoute, healthStatusLocations } from './render.ts';
import { healthSchema } from './schema.ts';

export const healthFeature: Feature = {
  name: 'health',
  summary: 'active health checks, circuit breakers (single-server upstreams too), steering around unavailable servers, /admin/status',
  schema: healthSchema,
  njs: [
    { handler: H.steer, phase: 'js_set', used: (m) => managedUpstreams(m).length > 0 },
    // with metrics on, the breaker counts inside metrics' log-phase call instead
    { handler: H.log, phase: 'log', used: (m) => m.metrics === null && managedUpstreams(m).some((u) => u.circuitBreaker) },
    { handler: H.periodic, phase: 'js_content', used: (m) => managedUpstreams(m).length > 0 },
    { handler: H.answer, phase: 'js_content', used: (m) => managedUpstreams(m).length > 0 },
  ],
  requires: (m) => {
    const u = managedUpstreams(m).find((x) => x.healthCheck) ?? managedUpstreams(m)[0];
    return u ? [{ njs: '0.8.1', why: 'js_periodic (health probes, breaker half-open)', at: (u.healthCheck ?? u.circuitBreaker)!.at }] : [];
  },
  cost: {
    // every server up: no njs (a flag-file lookup in nginx); breaker failures are counted in
    // the log phase of failed requests only, or inside the metrics feature's call
    njsCalls: () => 0,
    measured:
      'scripts/bench.ts gw_health vs gw_plain, every server up: within the noise of three runs (9.4/11.4/10.4 vs 9.3/10.6/9.4 CPU µs; one open_file_cache lookup, no njs); gw_health_steered: 23.8–26.5 µs before the fast path of the pick (the 418 jump and one js_set picking the server), 178,700 → 95,950 instructions a request with it, 26.0 µs CPU (README, Health checks)',
  },
  normalize: normalizeHealth,
  needsNjs: (m) => managedUpstreams(m).length > 0,
  rules: checkHealthRules, // GW260–GW268
  outputs: (m) => {
    const files: Record<string, string> = {};
    if (managedUpstreams(m).length) files[HEALTH_PRELOAD] = healthPreload(m);
    return { files, diagnostics: [], mapKeys: [] };
  },
  http: healthHttp,
  statusLocations: healthStatusLocations,
  serverLocations: (m, l) => clusterStatusLocations(m, l.name),
  route: healthRoute,
  routeFinish: healthChains, // the stages of fallback chains (built in routing's routeFinish, before this one)
};
