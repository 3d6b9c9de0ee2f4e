// The keys of response headers: `response_headers:` on a listener and on a route.
import type { JsonSchema, SchemaFragment } from '../../core/feature.ts';
import { PATTERNS } from '../../config/schema.ts';

// a header value: printable text, never empty (nginx skips an add_header whose value is
// empty: `remove` is the way to drop a header); bounded below nginx's 4 KiB parameter
const value = { type: 'string', pattern: '^[^\\x00-\\x1f\\x7f]+$', minLength: 1, maxLength: 2048 };

const responseHeaders = (where: string): JsonSchema => ({
  type: 'object',
  additionalProperties: false,
  description:
    `Response headers on every answer of ${where}. \`set\` replaces an upstream copy of the same name; ` +
    'a value alone is sent on error answers too (add_header … always), `{ value, always: false }` only on ' +
    '2xx/3xx. `remove` hides upstream response headers. Merged with the security-header presets, CORS and ' +
    'cache headers in every location (nginx drops inherited add_header lines once a location has its own). See README.',
  properties: {
    set: {
      type: 'object',
      maxProperties: 50,
      propertyNames: { pattern: PATTERNS.headerName },
      additionalProperties: {
        oneOf: [
          value,
          {
            type: 'object',
            additionalProperties: false,
            required: ['value'],
            properties: {
              value,
              always: { type: 'boolean', description: 'also on error answers (4xx/5xx), default true' },
            },
          },
        ],
      },
    },
    remove: { type: 'array', maxItems: 50, uniqueItems: true, items: { type: 'string', pattern: PATTERNS.headerName } },
  },
});

export const responseHeadersSchema: SchemaFragment = {
  listener: { after: 'security_headers', properties: { response_headers: responseHeaders('the listener (its routes, error pages and health answers)') } },
  route: { after: 'set_headers', properties: { response_headers: responseHeaders('the route, error answers included') } },
};
