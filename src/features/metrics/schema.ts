// The keys of Prometheus metrics: the top-level `metrics:` block.
import type { SchemaFragment } from '../../core/feature.ts';
import { parts } from '../../config/schema.ts';

const { cidrList, name, size, uriPath } = parts;

export const metricsSchema: SchemaFragment = {
  route: {
    after: 'models',
    properties: {
      metrics: {
        const: true,
        description:
          'This route answers with the Prometheus exposition (as the status listener\'s /metrics does), behind the route\'s own auth, roles, access rules and limits: scrape a public listener with an API key or a JWT (Prometheus `authorization`). No upstream.',
      },
    },
  },
  root: {
    after: 'routes',
    properties: {
      metrics: {
        type: 'object',
        additionalProperties: false,
        description:
          'Prometheus metrics at /metrics: request counts, latency histograms, bytes, cache results, limits and auth failures. Counted inside nginx from a per-worker counting log (no njs call per request; visible within 250 ms), or, on routes whose LLM accounting, token budgets or circuit breaker need it, by one njs call in the log phase.',
        properties: {
          enabled: { type: 'boolean', description: 'Default true when metrics: is present.' },
          listener: { ...name, description: '"status" (default: the internal status listener, global.status) or the name of a listener.' },
          path: uriPath,
          allow: { ...cidrList, description: 'Who may scrape (default 127.0.0.1 and ::1); everyone else gets 403.' },
          buckets: {
            type: 'array',
            minItems: 1,
            maxItems: 40,
            items: { type: 'number', exclusiveMinimum: 0, maximum: 86400 },
            description: 'Histogram upper bounds in seconds, strictly increasing (default 0.005 … 60).',
          },
          dict_size: { ...size, description: 'Size of the shared dict holding the series (default 1m).' },
          llm: {
            type: 'object',
            additionalProperties: false,
            description:
              'LLM accounting on LLM routes (model routes, and routes matching an OpenAI endpoint path): requests and tokens by model, time to first token, read from the responses as they pass.',
            properties: {
              enabled: { type: 'boolean', description: 'Default true.' },
              routes: {
                type: 'array',
                maxItems: 1000,
                uniqueItems: true,
                items: name,
                description: 'More routes to account as LLM routes (OpenAI-compatible upstreams on other paths).',
              },
              client_label: {
                type: 'boolean',
                description: 'Also count tokens by client (the authenticated client id) in gatewayctl_gen_ai_client_usage_tokens_total (default false; needs auth:).',
              },
            },
          },
          exclude_routes: {
            type: 'array',
            maxItems: 1000,
            uniqueItems: true,
            items: name,
            description:
              'Routes whose requests are not counted: no counting-log line for them (a plain route pays about +3 µs a request for one). Not for LLM routes, routes with token budgets, or routes to an upstream with a circuit breaker (their accounting rides in the log-phase call).',
          },
          max_series: {
            type: 'integer',
            minimum: 1,
            maximum: 1000000,
            description: 'Label sets the per-request families may create (default 5000); requests beyond it count in gatewayctl_metrics_overflow_total.',
          },
        },
      },
    },
  },
};
