// The keys of njs authentication: `auth:` at the top level, `auth:` on routes, `tier:` on
// limit zones.
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS } from '../../config/schema.ts';
import { RAW_KEY_MAX } from '../../../njs/lib/jwtcache.ts';

/** the JWT algorithms the njs handler verifies (src/njs/preload.ts checks keys against them) */
export const SUPPORTED_JWT_ALGS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384'] as const;

const HEADER = PATTERNS.headerName;
const NAME = PATTERNS.name;
const FILE = PATTERNS.filePath;
const LABEL = PATTERNS.token; // roles and tiers, as in the keys store
const CLAIM = '^[A-Za-z0-9_.:/-]{1,128}$';
const ENV = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
// issuer / audience values end up in njs/auth.json only (JSON-encoded), never in nginx config
const CLAIM_VALUE = '^[^\\x00-\\x1f\\x7f]{1,512}$';

const stringOrList = (description: string) => ({
  description,
  oneOf: [
    { type: 'string', pattern: CLAIM_VALUE },
    { type: 'array', minItems: 1, items: { type: 'string', pattern: CLAIM_VALUE } },
  ],
});

// required claim values: a scalar (exact), a list (one of), { contains: v | [v, …] } (a list
// claim, or a space-separated string such as OAuth `scope`, holding every value)
const claimScalar = { oneOf: [{ type: 'string', pattern: CLAIM_VALUE }, { type: 'number' }, { type: 'boolean' }] };
const claimValues = (where: string) => ({
  type: 'object',
  maxProperties: 20,
  description:
    `claim values ${where}: \`typ: access\` (exactly this value), \`token_use: [access, id]\` (one of these), ` +
    '`scope: { contains: chat:write }` (a list claim, or a space-separated string like `scope`, holding the value; ' +
    'every value of a list). A token failing one is refused with 401 (reason missing_claim when absent, bad_claims otherwise).',
  propertyNames: { pattern: CLAIM },
  additionalProperties: {
    oneOf: [
      claimScalar,
      { type: 'array', minItems: 1, maxItems: 50, items: claimScalar },
      {
        type: 'object',
        additionalProperties: false,
        required: ['contains'],
        properties: {
          contains: {
            oneOf: [
              { type: 'string', pattern: CLAIM_VALUE },
              { type: 'array', minItems: 1, maxItems: 50, items: { type: 'string', pattern: CLAIM_VALUE } },
            ],
          },
        },
      },
    ],
  },
});

const identityHeader = (what: string, dflt: string) => ({
  description: `upstream request header carrying ${what} (default ${dflt}); false = not forwarded`,
  oneOf: [{ type: 'string', pattern: HEADER }, { const: false }],
});

const authKeys = {
  type: 'object',
  additionalProperties: false,
  description:
    'Authentication inside nginx by the njs module: API keys (from a keys file managed by `gatewayctl keys`) and JWT providers. Routes opt in with their own `auth:`. See docs/auth.md.',
  properties: {
    api_keys: {
      type: 'object',
      additionalProperties: false,
      required: ['file'],
      description: 'API keys: the store written by `gatewayctl keys` (digests only: SHA-256, and MD5 for keys that carry their id); read at build time into conf.d/keys.map.',
      properties: {
        file: { type: 'string', pattern: FILE, description: 'keys file, relative to gateway.yaml (e.g. keys.yaml)' },
        header: { type: 'string', pattern: HEADER, description: 'request header carrying the key (default X-API-Key); `Authorization: Bearer <key>` is accepted too' },
      },
    },
    jwt: {
      type: 'object',
      description: 'JWT providers by name; a route picks one with `jwt_provider` (optional when there is only one).',
      propertyNames: { pattern: NAME },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['algorithms'],
        properties: {
          algorithms: {
            type: 'array',
            minItems: 1,
            uniqueItems: true,
            items: { enum: [...SUPPORTED_JWT_ALGS] },
            description: 'accepted `alg` values; `none` is never accepted',
          },
          jwks_file: { type: 'string', pattern: FILE, description: 'JWKS document with the public keys (RS*/PS*/ES*), relative to gateway.yaml' },
          secret_file: { type: 'string', pattern: FILE, description: 'file holding the HMAC secret (HS*; at least 32 bytes for HS256)' },
          secret_env: { type: 'string', pattern: ENV, description: 'environment variable holding the HMAC secret, read at build time' },
          issuer: stringOrList('accepted `iss` value(s); not checked when absent'),
          audience: stringOrList('accepted `aud` value(s); not checked when absent'),
          leeway: { type: 'string', pattern: '^[0-9]+(s|m)?$', description: 'clock skew allowed for exp/nbf/iat, e.g. 30s (max 10m; default 0)' },
          required_claims: { type: 'array', items: { type: 'string', pattern: CLAIM }, description: 'claims every token must carry' },
          claim_values: claimValues('every token of this provider must carry'),
          require_exp: { type: 'boolean', description: 'refuse tokens without `exp` (default true)' },
          max_token_length: { type: 'integer', minimum: 64, maximum: 8000, description: 'longest token accepted, in characters (default 4096)' },
          client_claim: { type: 'string', pattern: CLAIM, description: 'claim naming the client (default sub)' },
          role_claim: { type: 'string', pattern: CLAIM, description: 'claim holding the role checked by route `roles`' },
          tier_claim: { type: 'string', pattern: CLAIM, description: 'claim holding the tier used by tiered limits' },
        },
      },
    },
    jwt_cache: {
      description:
        `cache of verified JWTs in nginx shared memory, keyed by the Authorization header that carried the token (by its SHA-256 past ${RAW_KEY_MAX} characters): a token seen before skips signature verification until min(exp, ttl). Flushed by any change of a provider's keys or policy; false = off. See docs/auth.md.`,
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            size: { type: 'string', pattern: '^((3[2-9]|[4-9][0-9]|[1-9][0-9]{2,5})[kK]|([1-9][0-9]{0,2}|10[01][0-9]|102[0-4])[mM])$', description: 'shared memory for the cache, 32k..1024m (default 2m, ~3,000 tokens of 200 bytes; nginx maps all of it at start); the oldest entries are evicted when it is full' },
            ttl: { type: 'string', pattern: '^([1-9][0-9]{0,4}s?|[1-9][0-9]{0,3}m|([1-9]|1[0-9]|2[0-4])h)$', description: 'longest time a verified token is served from the cache, e.g. 90s, 5m, 1h (default 5m, at most 24h for h); never past its exp' },
            key: {
              enum: ['header', 'sha256'],
              description:
                'what an entry is keyed by: header (default) the Authorization header itself, the fastest (shared memory then holds the bearer tokens of live entries); sha256 its SHA-256, so no token is kept in shared memory, at the price of hashing the header on every request (docs/auth.md, "Verified-token cache")',
            },
          },
        },
        { const: false },
      ],
    },
    identity_headers: {
      type: 'object',
      additionalProperties: false,
      description:
        'Headers that carry the authenticated identity to upstreams. The gateway always replaces them: a client cannot forge them, on public routes either.',
      properties: {
        client: identityHeader('the client id (key name or client claim)', 'X-Gateway-Client'),
        role: identityHeader('the role', 'X-Gateway-Role'),
        tier: identityHeader('the tier', 'X-Gateway-Tier'),
        method: identityHeader('the method used: apikey or jwt', 'X-Gateway-Auth'),
        claims: identityHeader('the verified JWT payload (base64url JSON)', 'X-Gateway-Claims'),
      },
    },
    failure_log: {
      description: 'log of failed authentication (time, client IP, route, reason; never the credential). Default logs/auth.log; false = off',
      oneOf: [{ type: 'string', pattern: FILE }, { const: false }],
    },
  },
};

const routeAuth = {
  description: 'Who may use this route: `none` (public, the default), `api_key`, `jwt`, or an object. With both methods either credential is accepted.',
  oneOf: [
    { enum: ['none', 'api_key', 'jwt'] },
    {
      type: 'object',
      additionalProperties: false,
      required: ['methods'],
      properties: {
        methods: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { enum: ['api_key', 'jwt'] },
          description: 'accepted credentials: [api_key], [jwt] or [api_key, jwt] (either)',
        },
        jwt_provider: { type: 'string', pattern: NAME, description: 'auth.jwt provider (optional when only one is defined)' },
        roles: { type: 'array', minItems: 1, items: { type: 'string', pattern: LABEL }, description: 'roles allowed (403 otherwise); any authenticated client when absent' },
        strip_credentials: { type: 'boolean', description: 'remove Authorization and the API-key header before proxying (default true)' },
        key_header: { type: 'string', pattern: HEADER, description: 'API-key header for this route (default auth.api_keys.header)' },
        claim_values: claimValues('a JWT must carry on this route, besides its provider\'s (narrowing only)'),
      },
    },
  ],
};

const zoneTier = {
  type: 'string',
  pattern: LABEL,
  description: 'count only clients of this tier (key client_id); other clients are not limited by this zone',
};

export const authSchema: SchemaFragment = {
  root: { after: 'models', properties: { auth: authKeys } },
  route: { after: 'models', properties: { auth: routeAuth } },
  limitZone: { after: 'key', properties: { tier: zoneTier } },
};
