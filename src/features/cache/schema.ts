// The keys of response caching: cache zones under `caches:` and a route's `cache:`.
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS, parts } from '../../config/schema.ts';

const { durationSec, filePath, headerName, name, size } = parts;

export const cacheSchema: SchemaFragment = {
  root: {
    after: 'limits',
    properties: {
      caches: {
        type: 'object',
        propertyNames: { pattern: PATTERNS.name },
        additionalProperties: {
          type: 'object',
          additionalProperties: false,
          properties: {
            size: size,
            max_size: size,
            inactive: durationSec,
            path: filePath,
          },
        },
      },
    },
  },
  route: {
    after: 'conn_limits',
    properties: {
      cache: {
        type: 'object',
        additionalProperties: false,
        required: ['zone'],
        properties: {
          zone: name,
          ttl: {
            type: 'object',
            propertyNames: { pattern: PATTERNS.status },
            additionalProperties: durationSec,
          },
          methods: { type: 'array', items: { enum: ['GET', 'HEAD', 'POST'] } },
          key_includes_body: { type: 'boolean' },
          bypass_header: headerName,
          lock: { type: 'boolean' },
        },
      },
    },
  },
};
