// JSON Schema for gateway.yaml (draft 2020-12 subset understood by ajv): the core's keys,
// and gatewaySchema(features), which merges the features' fragments (Feature.schema, each in
// src/features/<name>/schema.ts) into them. Published for editors as
// schema/gateway.schema.json (scripts/write-schema.ts; kept in sync by a test).
// Patterns here are the first line of defence against config injection: every string
// that reaches nginx is constrained to an allow-list for its context. The render step's
// quoting helper checks again (defence in depth). Features build their keys from the
// PATTERNS and `parts` below.
import type { Feature, JsonSchema, SchemaKeys, SchemaPlace } from '../core/feature.ts';

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
const errorShape = {
  enum: ['gateway', 'openai'],
  description:
    'Shape of the error bodies the gateway itself answers: gateway {"error":{"status","code","message"},"request_id"} or openai {"error":{"message","type","param","code"}}. Default: openai on models: routes, else the listener\'s, else gateway.',
};
const unsafe = {
  type: 'string',
  description: 'Raw nginx directives inserted verbatim. Escape hatch: validate flags every use.',
};

/** the building blocks of keys, for the core's and the features' fragments */
export const parts = { name, duration, durationSec, host, uriPath, filePath, size, headerName, text, cidrList, method, unsafe };

/** The core's keys: what every gateway.yaml has, whichever features are registered. */
const coreSchema = (): JsonSchema => ({
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
        unsafe_nginx_http: unsafe,
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
          errors: errorShape,
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
            ],
          },
          hash_fallback: { enum: ['client_ip', 'random'] },
          max_fails: { type: 'integer', minimum: 0, maximum: 1000 },
          fail_timeout: durationSec,
          max_conns: { type: 'integer', minimum: 0, maximum: 100000, description: 'most concurrent connections to each server, for all workers (0 = no limit; a server at its limit is skipped like a failed one)' },
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
                    max_conns: { type: 'integer', minimum: 0, maximum: 100000 },
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
          set_headers: {
            type: 'object',
            maxProperties: 100,
            propertyNames: { pattern: PATTERNS.headerName },
            additionalProperties: { type: 'string', pattern: PATTERNS.text, maxLength: 1024 },
          },
          errors: errorShape,
          unsafe_nginx_route: unsafe,
        },
      },
    },
  },
});

// Where the core's places are (JSON Pointers into the schema). A feature can open places
// in the keys it adds (SchemaFragment.hosts): limits hosts the limit zones.
const CORE_PLACES: Partial<Record<SchemaPlace, string[]>> = {
  root: [''],
  global: ['/properties/global'],
  listener: ['/properties/listeners/items'],
  upstream: ['/properties/upstreams/additionalProperties'],
  route: ['/properties/routes/items'],
};
/** the order places are merged in: the root first, since features host places in their root keys */
const PLACE_ORDER: readonly SchemaPlace[] = ['root', 'global', 'listener', 'upstream', 'route', 'limitZone'];
const HASH_KEY_FORMS = '/properties/upstreams/additionalProperties/properties/hash_key/oneOf';

export class SchemaFragmentError extends Error {}

function at(schema: JsonSchema, pointer: string): unknown {
  let cur: unknown = schema;
  for (const seg of pointer.split('/').slice(1)) {
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  }
  return cur;
}

/** the object schema at `pointer` whose `properties` a place adds to */
function placeAt(schema: JsonSchema, pointer: string, place: SchemaPlace): { properties: Record<string, JsonSchema> } {
  const target = at(schema, pointer) as { properties?: unknown } | undefined;
  if (!target || typeof target !== 'object' || !target.properties || typeof target.properties !== 'object') {
    throw new SchemaFragmentError(`schema place ${place} (${pointer || '/'}) is not an object schema with properties`);
  }
  return target as { properties: Record<string, JsonSchema> };
}

/**
 * Adds each feature's keys of one place to `target`, refusing a key the core or another
 * feature already has. A group follows its `after` key (the core's or another feature's,
 * whichever feature adds it); groups are placed in registry order, in passes, so an anchor a
 * later feature adds still resolves. Groups without an anchor, or whose anchor no registered
 * feature adds (a registry without that feature), go last, in registry order.
 */
function mergePlace(target: { properties: Record<string, JsonSchema> }, place: SchemaPlace, groups: { feature: string; frag: SchemaKeys }[], where: string): void {
  const owner = new Map<string, string>(Object.keys(target.properties).map((k) => [k, 'the core']));
  for (const g of groups) {
    for (const key of Object.keys(g.frag.properties)) {
      const had = owner.get(key);
      if (had) throw new SchemaFragmentError(`schema: ${place} key "${key}" (${where}) is claimed by both ${had} and feature ${g.feature}`);
      owner.set(key, `feature ${g.feature}`);
    }
  }
  const order = Object.keys(target.properties);
  let pending = groups.filter((g) => g.frag.after !== undefined && owner.has(g.frag.after));
  while (pending.length) {
    const left = pending.filter((g) => {
      const i = order.indexOf(g.frag.after!);
      if (i >= 0) order.splice(i + 1, 0, ...Object.keys(g.frag.properties));
      return i < 0;
    });
    // every anchor is some group's key, so a pass that places nothing means a circle
    if (left.length === pending.length) {
      throw new SchemaFragmentError(`schema: the ${place} keys of ${left.map((g) => `feature ${g.feature} (after "${g.frag.after}")`).join(', ')} follow each other in a circle`);
    }
    pending = left;
  }
  for (const g of groups) if (!order.includes(Object.keys(g.frag.properties)[0]!)) order.push(...Object.keys(g.frag.properties));
  const value: Record<string, JsonSchema> = { ...target.properties };
  for (const g of groups) Object.assign(value, g.frag.properties);
  target.properties = Object.fromEntries(order.map((k) => [k, value[k]!]));
}

const built = new WeakMap<readonly Feature[], JsonSchema>();

/**
 * The schema of gateway.yaml for these features: the core's keys with every feature's
 * fragment merged in registry order. The same list gives the same schema, key order
 * included (the published schema/gateway.schema.json is compared byte for byte). Throws
 * SchemaFragmentError when two features (or a feature and the core) claim one key, or a
 * hosted place's pointer does not lead to an object schema.
 */
export function gatewaySchema(features: readonly Feature[]): JsonSchema {
  const cached = built.get(features);
  if (cached) return cached;
  const schema = coreSchema();
  // fragments are copied: merging writes into the places they host
  const frags = features.filter((f) => f.schema).map((f) => ({ feature: f.name, frag: structuredClone(f.schema!) }));
  const places: Partial<Record<SchemaPlace, string[]>> = structuredClone(CORE_PLACES);
  // hosted places resolve when they are merged, after the keys holding them
  for (const x of frags) {
    for (const [hosted, ptrs] of Object.entries(x.frag.hosts ?? {}) as [SchemaPlace, string[]][]) {
      if (hosted === 'root') throw new SchemaFragmentError(`schema: feature ${x.feature} cannot host the root`);
      (places[hosted] ??= []).push(...ptrs);
    }
  }
  for (const place of PLACE_ORDER) {
    const groups = frags.flatMap((x) => (x.frag[place] ? [{ feature: x.feature, frag: x.frag[place]! }] : []));
    // a place no registered feature hosts (no limits, so no limit zones) takes no keys
    const pointers = places[place] ?? [];
    // each host's copy of the groups: a place with several locations gets its own objects in each
    for (const pointer of pointers) mergePlace(placeAt(schema, pointer, place), place, groups.map((g) => ({ ...g, frag: structuredClone(g.frag) })), pointer || '/');
  }
  const forms = at(schema, HASH_KEY_FORMS) as JsonSchema[];
  for (const x of frags) forms.push(...(x.frag.hashKeys ?? []));
  built.set(features, schema);
  return schema;
}
