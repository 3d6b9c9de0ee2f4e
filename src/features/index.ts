// The feature registry: every feature of the gateway, in the order their contributions are
// printed inside each slot (src/plan/route.ts) and each http-level file. The composition root
// (src/build/compile.ts, commands) passes this list to the core; the core never imports it.
//
// Order matters where features share a slot: request checks follow the CORS preflight and
// precede auth's; set_headers precede the identity headers; response_headers follow the
// security presets and precede CORS; respond and model lists answer
// before proxy takes what is left (traffic names proxy's target first); cache reads the proxy content.
import type { Feature } from '../core/feature.ts';
import { headersFeature } from './headers/index.ts';
import { responseHeadersFeature } from './response-headers/index.ts';
import { tlsFeature } from './tls/index.ts';
import { corsFeature } from './cors/index.ts';
import { requestFeature } from './request/index.ts';
import { respondFeature } from './respond/index.ts';
import { authFeature } from './auth/index.ts';
import { accessFeature } from './access/index.ts';
import { limitsFeature } from './limits/index.ts';
import { fleetFeature } from './fleet/index.ts';
import { routingFeature } from './routing/index.ts';
import { trafficFeature } from './traffic/index.ts';
import { proxyFeature } from './proxy/index.ts';
import { cacheFeature } from './cache/index.ts';
import { metricsFeature } from './metrics/index.ts';
import { kubernetesFeature } from './kubernetes/index.ts';
import { healthFeature } from './health/index.ts';

export const FEATURES: readonly Feature[] = [
  headersFeature,
  responseHeadersFeature,
  tlsFeature,
  corsFeature,
  requestFeature,
  respondFeature,
  authFeature,
  accessFeature,
  limitsFeature,
  fleetFeature,
  routingFeature,
  trafficFeature,
  proxyFeature,
  cacheFeature,
  healthFeature,
  metricsFeature,
  kubernetesFeature,
];
