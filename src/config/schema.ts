// JSON Schema for gateway.yaml (draft 2020-12 subset understood by ajv).
// Published for editors as schema/gateway.schema.json (kept in sync by a test).
// Patterns here are the first line of defence against config injection: every string
// that reaches nginx is constrained to an allow-list for its context. The render step's
// quoting helper checks again (defence in depth).
import { modelsSchema, njsHashKeys, routeModels } from '../routing/schema.ts';
import { authSchema, routeAuthSchema, zoneTier } from './auth-schema.ts';

// Building blocks for the patterns below: what nginx itself parses, so a value the schema
// accepts is one nginx accepts (ports 1-65535, dotted-quad IPv4, ordered time units).
const PORT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `(?:${OCTET}\\.){3}${OCTET}`;
// the shape of an IPv6 literal; rules.ts checks it is a real one (node:net isIPv6)
const IPV6 = '[0-9a-fA-F:.]{2,45}';
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
// nginx's time syntax: units in decreasing order, each once (1h30m, not 30m1h); ms only where
// nginx takes milliseconds (timeouts), not where it takes seconds (fail_timeout, cache times)
const UNITS = '(?=[0-9])(?:[0-9]{1,7}w)?(?:[0-9]{1,7}d)?(?:[0-9]{1,7}h)?(?:[0-9]{1,7}m(?!s))?(?:[0-9]{1,7}s)?';

export const PATTERNS = {
  name: '^[a-z][a-z0-9_-]{0,62}$',
  duration: `^(?:[0-9]{1,7}|${UNITS}(?:[0-9]{1,7}ms)?)$`,
  durationSec: `^(?:[0-9]{1,7}|${UNITS})$`,
  size: '^[0-9]{1,9}[kKmMgG]?$',
  rate: '^[1-9][0-9]{0,5}r/[sm]$',
  address: `^(unix:/[A-Za-z0-9_./-]{1,100}|${LABEL}(?:\\.${LABEL})*:${PORT}|\\[${IPV6}\\]:${PORT})$`,
  bindAddress: `^(${IPV4}|\\[${IPV6}\\]|\\*)$`,
  listen: `^((${IPV4}|\\[${IPV6}\\]):)?${PORT}$`,
  uriPath: "^/[A-Za-z0-9._~!&()*+,=:@%/-]*$",
  headerName: '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$',
  token: '^[A-Za-z0-9_.-]{1,64}$',
  host: '^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$',
  cidr: `^(all|${IPV4}(/(3[0-2]|[12]?[0-9]))?|${IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$`,
  origin: `^(\\*|https?://${LABEL}(\\.${LABEL})*(:${PORT})?)$`,
  filePath: '^[A-Za-z0-9._/@+-]+$',
  // printable text without control characters (newlines never pass)
  text: '^[^\\x00-\\x1f\\x7f]*$',
  status: '^([1-5][0-9][0-9]|any)$',
};

const name = { type: 'string', pattern: PATTERNS.name };
const duration = { type: 'string', pattern: PATTERNS.duration };
const durationSec = { type: 'string', pattern: PATTERNS.durationSec };
const host = { type: 'string', pattern: PATTERNS.host, maxLength: 253 };
const uriPath = { type: 'string', pattern: PATTERNS.uriPath, maxLength: 1024 };
const filePath = { type: 'string', pattern: PATTERNS.filePath, maxLength: 1024 };
const size = { type: 'string', pattern: PATTERNS.size };
const headerName = { type: 'string', pattern: PATTERNS.headerName };
const text = { type: 'string', pattern: PATTERNS.text, maxLength: 4096 };
const cidrList = { type: 'array', maxItems: 1000, items: { type: 'string', pattern: PATTERNS.cidr } };
const method = { enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] };
const unsafe = {
  type: 'string',
  description: 'Raw nginx directives inserted verbatim. Escape hatch: validate flags every use.',
};
const access = {
  type: 'object',
  additionalProperties: false,
  properties: { allow: cidrList, deny: cidrList },
};
const limitKey = {
  description: 'client_ip, client_id (authenticated client) or { header: NAME }',
  oneOf: [
    { enum: ['client_ip', 'client_id'] },
    { type: 'object', additionalProperties: false, required: ['header'], properties: { header: headerName } },
  ],
};

export const gatewaySchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://gatewayctl.dev/schema/gateway.schema.json',
  title: 'gatewayctl gateway.yaml',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'listeners', 'routes'],
  properties: {
    version: { const: 1, description: 'Schema version; must be 1.' },
    include: { type: 'array', maxItems: 100, items: filePath },
    global: {
      type: 'object',
      additionalProperties: false,
      properties: {
        worker_processes: { oneOf: [{ const: 'auto' }, { type: 'integer', minimum: 1, maximum: 256 }] },
        worker_connections: { type: 'integer', minimum: 16, maximum: 1048576 },
        worker_shutdown_timeout: {
          ...duration,
          description:
            'How long workers retired by a reload may finish open requests and streams before nginx closes them (1s..24h). Default: the longest read timeout of a streaming/WebSocket route, within 30s..10m; 30s without such routes.',
        },
        server_tokens: { type: 'boolean' },
        trusted_proxies: cidrList,
        real_ip_header: headerName,
        request_id: {
          type: 'object',
          additionalProperties: false,
          properties: { header: headerName, trust_incoming: { type: 'boolean' } },
        },
        access_log: {
          oneOf: [
            { const: false },
            {
              type: 'object',
              additionalProperties: false,
              properties: { path: filePath, format: { enum: ['json', 'combined'] } },
            },
          ],
        },
        error_log: {
          type: 'object',
          additionalProperties: false,
          properties: {
            path: filePath,
            level: { enum: ['debug', 'info', 'notice', 'warn', 'error', 'crit'] },
          },
        },
        health: {
          type: 'object',
          additionalProperties: false,
          properties: {
            liveness: uriPath,
            readiness: uriPath,
          },
        },
        status: {
          oneOf: [
            { const: false },
            {
              type: 'object',
              additionalProperties: false,
              properties: {
                listen: { type: 'string', pattern: PATTERNS.listen },
                path: uriPath,
              },
            },
          ],
        },
        compression: {
          type: 'object',
          additionalProperties: false,
          properties: {
            gzip: { type: 'boolean' },
            brotli: { type: 'boolean' },
            min_length: { type: 'integer', minimum: 0, maximum: 1073741824 },
            types: { type: 'array', maxItems: 100, items: { type: 'string', pattern: '^[a-z0-9.+-]+/[a-z0-9.+*-]+$', maxLength: 127 } },
          },
        },
        acme_webroot: filePath,
        access,
        unsafe_nginx_http: unsafe,
      },
    },
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
    listeners: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'port'],
        properties: {
          name,
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          address: { type: 'string', pattern: PATTERNS.bindAddress },
          server_names: { type: 'array', maxItems: 1000, items: host },
          default_server: { type: 'boolean' },
          unknown_host: { enum: [404, 444] },
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
          security_headers: {
            type: 'object',
            additionalProperties: false,
            properties: {
              preset: { enum: ['strict', 'basic', 'off'] },
              content_security_policy: text,
              frame_options: { enum: ['DENY', 'SAMEORIGIN', false] },
              referrer_policy: {
                enum: [
                  'no-referrer',
                  'no-referrer-when-downgrade',
                  'origin',
                  'origin-when-cross-origin',
                  'same-origin',
                  'strict-origin',
                  'strict-origin-when-cross-origin',
                  'unsafe-url',
                  false,
                ],
              },
            },
          },
          unsafe_nginx_server: unsafe,
        },
      },
    },
    upstreams: {
      type: 'object',
      propertyNames: { pattern: PATTERNS.name },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['servers'],
        properties: {
          balance: { enum: ['round_robin', 'weighted', 'least_conn', 'ip_hash', 'random', 'consistent_hash'] },
          hash_key: {
            oneOf: [
              { const: 'client_ip' },
              { type: 'object', additionalProperties: false, required: ['header'], properties: { header: headerName } },
              { type: 'object', additionalProperties: false, required: ['cookie'], properties: { cookie: { type: 'string', pattern: PATTERNS.token } } },
              { type: 'object', additionalProperties: false, required: ['query'], properties: { query: { type: 'string', pattern: PATTERNS.token } } },
              ...njsHashKeys,
            ],
          },
          hash_fallback: { enum: ['client_ip', 'random'] },
          sticky: {
            type: 'object',
            additionalProperties: false,
            required: ['cookie'],
            properties: { cookie: { type: 'string', pattern: PATTERNS.token } },
          },
          max_fails: { type: 'integer', minimum: 0, maximum: 1000 },
          fail_timeout: durationSec,
          keepalive: {
            oneOf: [
              { type: 'integer', minimum: 0, maximum: 10000 },
              {
                type: 'object',
                additionalProperties: false,
                properties: {
                  connections: { type: 'integer', minimum: 1, maximum: 10000 },
                  timeout: duration,
                  requests: { type: 'integer', minimum: 1, maximum: 100000000 },
                },
              },
            ],
          },
          servers: {
            type: 'array',
            minItems: 1,
            maxItems: 1000,
            items: {
              oneOf: [
                { type: 'string', pattern: PATTERNS.address, maxLength: 300 },
                {
                  type: 'object',
                  additionalProperties: false,
                  required: ['address'],
                  properties: {
                    address: { type: 'string', pattern: PATTERNS.address, maxLength: 300 },
                    weight: { type: 'integer', minimum: 1, maximum: 1000 },
                    max_fails: { type: 'integer', minimum: 0, maximum: 1000 },
                    fail_timeout: durationSec,
                    backup: { type: 'boolean' },
                    down: { type: 'boolean' },
                  },
                },
              ],
            },
          },
        },
      },
    },
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
              tier: zoneTier,
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
            properties: { key: limitKey, tier: zoneTier, max: { type: 'integer', minimum: 1, maximum: 65535 }, size: size },
          },
        },
      },
    },
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
    models: modelsSchema,
    auth: authSchema,
    routes: {
      type: 'array',
      maxItems: 5000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['match'],
        properties: {
          name,
          match: {
            type: 'object',
            additionalProperties: false,
            properties: {
              prefix: uriPath,
              exact: uriPath,
              regex: { type: 'string', pattern: '^[^\\x00-\\x1f\\x7f"]+$', maxLength: 2048 },
              case_insensitive: { type: 'boolean' },
              methods: { type: 'array', minItems: 1, items: method },
              host,
              headers: {
                type: 'object',
                maxProperties: 50,
                propertyNames: { pattern: PATTERNS.headerName },
                additionalProperties: { type: 'string', pattern: '^[^\\x00-\\x1f\\x7f"$]*$', maxLength: 256 },
              },
            },
          },
          listeners: { type: 'array', maxItems: 100, items: name },
          upstream: name,
          respond: {
            type: 'object',
            additionalProperties: false,
            required: ['status'],
            properties: {
              status: { type: 'integer', minimum: 200, maximum: 599 },
              body: text,
              content_type: { type: 'string', pattern: '^[a-z0-9.+-]+/[a-z0-9.+-]+(; ?charset=[a-z0-9-]+)?$' },
            },
          },
          strip_prefix: { type: 'boolean' },
          rewrite: uriPath,
          timeouts: {
            type: 'object',
            additionalProperties: false,
            properties: { connect: duration, send: duration, read: duration },
          },
          retries: {
            type: 'object',
            additionalProperties: false,
            properties: {
              tries: { type: 'integer', minimum: 1, maximum: 20 },
              timeout: duration,
              on: {
                type: 'array',
                items: {
                  enum: ['error', 'timeout', 'invalid_header', 'http_500', 'http_502', 'http_503', 'http_504', 'http_403', 'http_404', 'http_429'],
                },
              },
              non_idempotent: { type: 'boolean' },
            },
          },
          streaming: { type: 'boolean' },
          websocket: { type: 'boolean' },
          max_body: size,
          rate_limits: { type: 'array', maxItems: 20, uniqueItems: true, items: name },
          conn_limits: { type: 'array', maxItems: 20, uniqueItems: true, items: name },
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
          access,
          set_headers: {
            type: 'object',
            maxProperties: 100,
            propertyNames: { pattern: PATTERNS.headerName },
            additionalProperties: { type: 'string', pattern: PATTERNS.text, maxLength: 1024 },
          },
          models: routeModels,
          auth: routeAuthSchema,
          unsafe_nginx_route: unsafe,
        },
      },
    },
  },
} as const;
