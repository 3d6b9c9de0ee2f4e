// The keys of CORS: a route's `cors:`.
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS, parts } from '../../config/schema.ts';

const { headerName, method } = parts;

export const corsSchema: SchemaFragment = {
  route: {
    after: 'cache',
    properties: {
      cors: {
        type: 'object',
        additionalProperties: false,
        required: ['origins'],
        properties: {
          origins: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', pattern: PATTERNS.origin, maxLength: 300 } },
          methods: { type: 'array', items: method },
          // sent as one comma-separated header value: 50 names stay within nginx's 4 KiB parameter
          headers: { type: 'array', maxItems: 50, items: headerName },
          expose_headers: { type: 'array', maxItems: 50, items: headerName },
          credentials: { type: 'boolean' },
          max_age: { type: 'integer', minimum: 0, maximum: 31536000 },
        },
      },
    },
  },
};
