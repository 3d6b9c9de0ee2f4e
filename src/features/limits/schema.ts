// The keys of request limits: zones under `limits:` (the limit zone place other features add
// to, e.g. auth's `tier`) and the zones a route uses (`rate_limits`, `conn_limits`).
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS, parts } from '../../config/schema.ts';

const { headerName, name, size } = parts;

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
                rate: { type: 'string', pattern: PATTERNS.rate },
                burst: { type: 'integer', minimum: 0, maximum: 1000000 },
                nodelay: { type: 'boolean' },
                delay: { type: 'integer', minimum: 0, maximum: 1000000 },
                size: size,
              },
            },
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
    },
  },
};
