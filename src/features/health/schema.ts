// The keys of the upstream state plane: `health_check` and `circuit_breaker` on an upstream.
import type { SchemaFragment } from '../../core/feature.ts';
import { parts } from '../../config/schema.ts';
import { MODEL_ID } from '../routing/schema.ts';

const { cidrList, duration, name, uriPath } = parts;
const status = { type: 'integer', minimum: 100, maximum: 599 };

const healthCheck = {
  type: 'object',
  additionalProperties: false,
  description:
    'Active health checks: one nginx worker probes every server (GET path) and all workers read the result. A server is taken out after `fall` failed probes and returns after `rise` passed ones.',
  properties: {
    path: { ...uriPath, description: 'Path probed with GET (default /health).' },
    interval: { ...duration, description: 'Time between probes of a server (default 5s, at least 1s).' },
    timeout: { ...duration, description: 'A probe without an answer in this time fails (default 2s; below the interval).' },
    expect_status: { type: 'array', minItems: 1, maxItems: 20, items: status, description: 'Statuses that pass (default [200]).' },
    expect_body: { type: 'string', pattern: '^[^\\x00-\\x1f\\x7f]{1,200}$', description: 'The body must contain this text.' },
    expect_models: {
      type: 'array',
      maxItems: 50,
      items: { type: 'string', pattern: MODEL_ID },
      description: 'The JSON body must list each of these ids in data[].id (an OpenAI /v1/models answer).',
    },
    rise: { type: 'integer', minimum: 1, maximum: 100, description: 'Passed probes that bring a down server back (default 2).' },
    fall: { type: 'integer', minimum: 1, maximum: 100, description: 'Failed probes that take a server out (default 3).' },
  },
};

const circuitBreaker = {
  type: 'object',
  additionalProperties: false,
  description:
    'Circuit breaker per server: `failures` failed requests within `window` open it; while open the server gets no requests (none left: 503 with Retry-After at once); after `open_for` it lets `half_open_requests` trials through and closes on a success. Works on single-server upstreams.',
  properties: {
    failures: { type: 'integer', minimum: 1, maximum: 10000, description: 'Failures within the window that open the breaker (default 5).' },
    window: { ...duration, description: 'The window failures are counted in (default 10s).' },
    open_for: { ...duration, description: 'How long an open breaker refuses before trials (default 30s).' },
    half_open_requests: { type: 'integer', minimum: 1, maximum: 100, description: 'Trial requests while half-open (default 1).' },
    on: {
      type: 'array',
      minItems: 1,
      maxItems: 20,
      items: status,
      description: 'Upstream statuses that count as failures (default [502, 503, 504]: nginx reports a refused connection as 502 and a timeout as 504).',
    },
  },
};

const clusterStatus = {
  type: 'object',
  additionalProperties: false,
  required: ['listener'],
  description:
    'A status route for clients (OpenAI-gateway style): each upstream with a health check or breaker (servers up of total) and each model (available or not), without addresses.',
  properties: {
    listener: { ...name, description: 'The listener serving it.' },
    path: { ...uriPath, description: 'Default /v1/cluster/status.' },
    allow: { ...cidrList, description: 'Who may ask (default: everyone).' },
  },
};

const adminApi = {
  type: 'object',
  additionalProperties: false,
  required: ['token'],
  description:
    'Runtime servers (POST/DELETE /admin/upstreams/<name>/servers) and runtime API keys (/admin/keys) on the status listener (loopback unless `allow` says more), with `Authorization: Bearer <token>`. Only the token\'s SHA-256 is kept in the build; give it from the environment (token: ${GATEWAY_ADMIN_TOKEN}).',
  properties: {
    token: { type: 'string', minLength: 24, maxLength: 256, pattern: '^[A-Za-z0-9._~+/=-]+$', description: 'The bearer token (at least 24 characters).' },
    allow: {
      ...cidrList,
      description:
        'Addresses that may call it besides loopback (default: loopback only), e.g. the pod network, so `gatewayctl servers`/`keys --live --dns <name>-replicas:PORT` reach every replica on Kubernetes. The token is still required.',
    },
  },
};

export const healthSchema: SchemaFragment = {
  root: { after: 'metrics', properties: { cluster_status: clusterStatus, admin_api: adminApi } },
  upstream: { after: 'keepalive', properties: { health_check: healthCheck, circuit_breaker: circuitBreaker } },
};
