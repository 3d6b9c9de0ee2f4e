// njs entry module, bundled to dist/njs/gateway.js and loaded with
// `js_import gateway from njs/gateway.js;`. Each handler lives in its feature's module under
// lib/; a build's module exports only the handlers its configuration calls (src/njs/bundle.ts).
import { apiKey, jwt, jwtCached, jwtSync } from './lib/handlers.ts';
import { route } from './lib/routing.ts';
import { fallbackBody } from './lib/fallback.ts';
import { bodyDigest } from './lib/cache.ts';
import { metricsBreakerLog, metricsDrain, metricsExport, metricsLog } from './lib/metrics.ts';
import { llmBody } from './lib/llm.ts';
import { apiKeyLive } from './lib/livekeys.ts';
import { healthAnswer, healthLog, healthPeriodic, steerPeer } from './lib/health.ts';

export default {
  apiKey: apiKey,
  apiKeyLive: apiKeyLive,
  jwt: jwt,
  jwtCached: jwtCached,
  jwtSync: jwtSync,
  route: route,
  fallbackBody: fallbackBody,
  bodyDigest: bodyDigest,
  metricsLog: metricsLog,
  metricsBreakerLog: metricsBreakerLog,
  metricsExport: metricsExport,
  metricsDrain: metricsDrain,
  llmBody: llmBody,
  steerPeer: steerPeer,
  healthLog: healthLog,
  healthPeriodic: healthPeriodic,
  healthAnswer: healthAnswer,
};
