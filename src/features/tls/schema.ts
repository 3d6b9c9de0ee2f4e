// The keys of TLS: `tls:` at the top level (ACME) and `tls:` on a listener.
import type { SchemaFragment } from '../../core/feature.ts';
import { parts } from '../../config/schema.ts';

const { filePath, host } = parts;

export const tlsSchema: SchemaFragment = {
  root: {
    after: 'global',
    properties: {
      tls: {
        type: 'object',
        additionalProperties: false,
        properties: {
          acme: {
            type: 'object',
            additionalProperties: false,
            required: ['email', 'domains'],
            description: 'Let\'s Encrypt (or any ACME directory) over HTTP-01, served by the gateway itself',
            properties: {
              email: { type: 'string', pattern: '^[^\\s@"]+@[^\\s@"]+$' },
              domains: { type: 'array', minItems: 1, maxItems: 100, items: host },
              directory: { type: 'string', pattern: '^https://[^\\s"]+$' },
              staging: { type: 'boolean' },
              key_type: { enum: ['ec', 'rsa'] },
              certs_dir: filePath,
              webroot: filePath,
            },
          },
        },
      },
    },
  },
  listener: {
    after: 'unknown_host',
    properties: {
      tls: {
        type: 'object',
        additionalProperties: false,
        description: 'cert + key paths, or acme: true for the certificate managed by `gatewayctl tls issue` (top-level tls.acme)',
        properties: {
          cert: filePath,
          key: filePath,
          acme: { type: 'boolean' },
          profile: { enum: ['modern', 'intermediate'] },
          http2: { type: 'boolean' },
          redirect_from: { type: 'integer', minimum: 1, maximum: 65535 },
          hsts: {
            oneOf: [
              { const: false },
              {
                type: 'object',
                additionalProperties: false,
                properties: {
                  max_age: { type: 'integer', minimum: 0, maximum: 315360000 },
                  include_subdomains: { type: 'boolean' },
                  preload: { type: 'boolean' },
                },
              },
            ],
          },
        },
      },
    },
  },
};
