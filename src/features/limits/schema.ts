// The keys of request limits: zones under `limits:` (the limit zone place other features add
// to, e.g. auth's `tier`) and the zones a route uses (`rate_limits`, `conn_limits`).
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS, parts } from '../../config/schema.ts';

const { headerName, name, size } = parts;

/** nginx's r/s and r/m, and the njs windows r/h and r/d */
const RATE = PATTERNS.rate.replace('[sm]', '[smhd]');

const tokenZone = {
  type: 'object',
  additionalProperties: false,
  required: ['tokens'],
  properties: {
    key: { enum: ['client_id', 'tier', 'model', 'route', 'client_ip'], description: 'what the budget is counted by (default client_id)' },
    window: { enum: ['minute', 'hour', 'day'], description: 'fixed window (default minute)' },
    tokens: { type: 'integer', minimum: 1, maximum: 1000000000000 },
    default_max_tokens: { type: 'integer', minimum: 1, maximum: 10000000, description: 'completion tokens reserved when the request names no max_tokens (default 1024)' },
    on_exceed: { enum: ['refuse', 'clamp'], description: 'refuse (429), or lower max_tokens to what remains (default refuse)' },
    min_tokens: { type: 'integer', minimum: 1, maximum: 10000000, description: 'clamp: fewer completion tokens left than this refuses (default 16)' },
  },
};

const limitKey = {
  description: 'client_ip, client_id (authenticated client) or { header: NAME }',
  oneOf: [
    { enum: ['client_ip', 'client_id'] },
    { type: 'object', additionalProperties: false, required: ['header'], properties: { header: headerName } },
  ],
};

export const limitsSchema: SchemaFragment = {
  root: {
    after: 'upstreams',
    properties: {
      limits: {
        type: 'object',
        additionalProperties: false,
        properties: {
          rate: {
            type: 'object',
            propertyNames: { pattern: PATTERNS.name },
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['rate'],
              properties: {
                key: limitKey,
                // r/s and r/m: nginx's limit_req; r/h and r/d: njs fixed windows (tokens.ts)
                rate: { type: 'string', pattern: RATE },
                burst: { type: 'integer', minimum: 0, maximum: 1000000 },
                nodelay: { type: 'boolean' },
                delay: { type: 'integer', minimum: 0, maximum: 1000000 },
                size: size,
              },
            },
          },
          tokens: {
            type: 'object',
            propertyNames: { pattern: PATTERNS.name },
            additionalProperties: tokenZone,
          },
          conn: {
            type: 'object',
            propertyNames: { pattern: PATTERNS.name },
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['max'],
              properties: { key: limitKey, max: { type: 'integer', minimum: 1, maximum: 65535 }, size: size },
            },
          },
        },
      },
    },
  },
  hosts: { limitZone: ['/properties/limits/properties/rate/additionalProperties', '/properties/limits/properties/conn/additionalProperties'] },
  route: {
    after: 'max_body',
    properties: {
      rate_limits: { type: 'array', maxItems: 20, uniqueItems: true, items: name },
      conn_limits: { type: 'array', maxItems: 20, uniqueItems: true, items: name },
      token_limits: { type: 'array', maxItems: 20, uniqueItems: true, items: name },
    },
  },
};
