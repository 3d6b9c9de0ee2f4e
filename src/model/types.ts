// The typed GatewayModel: the only thing renderers see. Produced by normalize() from a
// schema-valid YAML document; every default is filled in here so templates stay dumb.
// Positions (`at`) point back to gateway.yaml so later stages (rules, `check`) can report
// problems against the YAML entry that produced them.

export interface SourcePos {
  file: string; // path as given by the user (relative to cwd when possible)
  line: number; // 1-based
  col: number; // 1-based
  path: string; // YAML key path, e.g. routes[2].upstream
}

export type Duration = string; // nginx time, validated: e.g. "30s", "5m", "1h", "500ms"
export type Size = string; // nginx size, validated: e.g. "10m", "512k"

export interface GatewayModel {
  source: { file: string; hash: string }; // sha256 of the resolved input (after include/env)
  version: string; // gatewayctl version that built it
  global: GlobalSettings;
  listeners: Listener[];
  upstreams: Upstream[];
  rateZones: RateZone[];
  connZones: ConnZone[];
  caches: CacheZone[];
  routes: Route[];
  access: AccessRules; // global IP rules
  unsafeSnippets: UnsafeSnippet[]; // raw nginx escape hatch, flagged by validate
  auth: AuthSettings | null; // njs authentication (API keys, JWT); null = not configured
  models: ModelEntry[]; // model catalogue for model-aware routes and /v1/models (src/routing)
  acme: AcmeSettings | null; // certificates managed by `gatewayctl tls issue|renew`
  metrics: MetricsSettings | null; // Prometheus metrics (the metrics feature); null = off
  fleet: FleetSettings | null; // replicas serving this config and what limits mean across them (the fleet feature); null = one instance
  kubernetes: KubernetesSettings | null; // the Kubernetes target's settings (the kubernetes feature); null = its defaults
  clusterStatus: ClusterStatusSettings | null; // public upstream status route (the health feature); null = off
  adminApi: AdminApiSettings | null; // runtime servers through the status listener (the health feature); null = off
  /** token budgets (`limits.tokens`, the limits feature); absent = none */
  tokenZones?: TokenZone[];
  /** request windows of an hour or a day (`limits.rate` zones with r/h, r/d: njs counters, the limits feature); absent = none */
  windowZones?: WindowZone[];
}

/** `admin_api:` — add, drain, remove and list upstream servers at runtime (status listener). */
export interface AdminApiSettings {
  tokenSha256: string; // hex SHA-256 of the bearer token (the token itself is never kept)
  allow: string[]; // callers besides loopback (CIDRs); [] = loopback only
  at: SourcePos;
}

/** `cluster_status:` — upstream and model availability as JSON on a listener of the user's choice. */
export interface ClusterStatusSettings {
  listener: string;
  path: string;
  allow: string[]; // CIDRs; empty = everyone
  at: SourcePos;
}

/** What a token budget or request window is counted by. */
export type TokenKey = 'client_id' | 'tier' | 'model' | 'route' | 'client_ip';
export type TokenWindow = 'minute' | 'hour' | 'day';

/** `limits.tokens.<name>`: a token allowance per key and fixed window, reserved before the upstream. */
export interface TokenZone {
  name: string;
  key: TokenKey;
  window: TokenWindow;
  tokens: number;
  /** the completion part of the estimate when the request names no max_tokens */
  defaultMaxTokens: number;
  onExceed: 'refuse' | 'clamp';
  /** clamp: the fewest completion tokens worth sending upstream; fewer left → refuse */
  minTokens: number;
  at: SourcePos;
}

/** a `limits.rate` zone with r/h or r/d: a fixed-window request counter in njs */
export interface WindowZone {
  name: string;
  key: TokenKey;
  window: 'hour' | 'day';
  requests: number;
  at: SourcePos;
}

/**
 * How a limit zone's allowance is enforced when several gateway instances serve one config
 * (nginx OSS keeps counters per instance; nothing is shared between them).
 *   per_instance: each instance enforces the whole allowance (a client may get up to N×)
 *   divided: each instance enforces allowance ÷ replicas, rounded down
 *   affinity: a front tier sends each client to one instance, which enforces the whole allowance
 */
export type LimitMode = 'per_instance' | 'divided' | 'affinity';

/** `fleet:` — the instances that serve this gateway.yaml. */
export interface FleetSettings {
  replicas: number;
  limitMode: LimitMode;
  at: SourcePos;
  keyAt: Record<string, SourcePos>;
}

export interface KubernetesResources {
  requests: { cpu?: string; memory?: string };
  limits: { cpu?: string; memory?: string };
}

/** `kubernetes:` — what `gatewayctl build --target k8s` emits besides the nginx config. */
export interface KubernetesSettings {
  name: string; // object names and the app.kubernetes.io/name label
  namespace: string | null; // kustomization namespace; null = the one kubectl applies to
  image: string; // official nginx image (ships the njs module)
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  resources: KubernetesResources;
  service: { type: 'ClusterIP' | 'NodePort' | 'LoadBalancer'; annotations: Record<string, string> };
  autoscaling: { maxReplicas: number; cpuPercent: number } | null;
  drainSeconds: number; // preStop wait before the graceful quit (endpoint removal propagates)
  serviceMonitor: { interval: string; labels: Record<string, string> } | null; // null: none even with metrics
  at: SourcePos;
  keyAt: Record<string, SourcePos>;
}

/** `metrics:` — counters and histograms in an njs shared dict, served at /metrics. */
export interface MetricsSettings {
  /** null: the status listener (global.status); else the name of a listener */
  listener: string | null;
  path: string; // e.g. /metrics
  allow: string[]; // CIDRs that may scrape (the location denies everyone else)
  buckets: number[]; // histogram upper bounds in seconds, strictly increasing
  dictSize: Size; // js_shared_dict_zone size
  maxSeries: number; // label sets the dynamic families may create; more count as overflow
  /** LLM accounting (body filter + the log-phase call); null: off (metrics.llm.enabled: false) */
  llm: {
    routes: string[]; // LLM routes named in metrics.llm.routes (besides the detected ones)
    clientLabel: boolean; // tokens by client as well
  } | null;
  /** routes whose requests are not counted (metrics.exclude_routes): no log-phase call for them */
  excludeRoutes: string[];
  at: SourcePos; // the metrics: key
  /** positions of the keys given (rules point at them), by key */
  keyAt: Record<string, SourcePos>;
}

export interface GlobalSettings {
  workerProcesses: string; // "auto" or a number as string
  workerConnections: number;
  /**
   * nginx worker_shutdown_timeout: how long workers retired by a reload may finish open
   * requests and streams (global.worker_shutdown_timeout, else derived: src/model/shutdown.ts).
   */
  workerShutdownTimeout: Duration;
  serverTokens: boolean; // always false unless explicitly enabled
  trustedProxies: string[]; // CIDRs; set_real_ip_from
  realIpHeader: string; // default X-Forwarded-For
  requestId: { header: string; trustIncoming: boolean };
  accessLog: { path: string; format: 'json' | 'combined' } | null;
  errorLog: { path: string; level: 'debug' | 'info' | 'notice' | 'warn' | 'error' | 'crit' };
  health: { liveness: string; readiness: string }; // paths, e.g. /health, /ready
  status: { listen: string; path: string } | null; // stub_status listener, internal
  compression: { gzip: boolean; brotli: boolean; minLength: number; types: string[] };
  paths: { pid: string; logs: string; temp: string; cache: string }; // relative to nginx prefix
  modules: { njs: boolean; brotli: boolean }; // load_module lines (brotli degrades with a warning)
  acmeWebroot: string | null; // serve /.well-known/acme-challenge/ from here on plain-HTTP servers
  at: SourcePos;
}

export interface Listener {
  name: string;
  address: string | null; // bind address; null = all
  port: number;
  serverNames: string[]; // empty = catch-all for this listener
  defaultServer: boolean;
  unknownHost: 404 | 444 | null; // when serverNames set: answer for an unknown Host
  tls: ListenerTls | null;
  securityHeaders: SecurityHeaders;
  /** response_headers of the listener (the response-headers feature); absent/null = none */
  responseHeaders?: ResponseHeaders | null;
  /** shape of gateway-made error bodies on this listener's routes (src/plan/errors.ts); null = gateway */
  errors: 'gateway' | 'openai' | null;
  at: SourcePos;
}

/** `response_headers:` of a listener or a route: headers set on answers, upstream headers removed. */
export interface ResponseHeaders {
  /** set (replacing an upstream copy of the same name); always = also on error answers */
  set: { name: string; value: string; always: boolean }[];
  /** upstream response headers hidden from the client */
  remove: string[];
  at: SourcePos;
}

export interface AcmeSettings {
  email: string;
  domains: string[];
  directory: string;
  keyType: 'ec' | 'rsa';
  certsDir: string; // absolute
  webroot: string; // absolute; served at /.well-known/acme-challenge/ on plain-HTTP servers
  at: SourcePos;
}

export interface ListenerTls {
  cert: string; // absolute path
  key: string; // absolute path
  acme: boolean; // cert/key are the ACME-managed pair of tls.acme.domains[0]
  pending: boolean; // acme certificate not issued yet: serve challenges only (set by compile)
  profile: 'modern' | 'intermediate';
  http2: boolean;
  redirectFrom: number | null; // plain-HTTP port that redirects to this listener
  hsts: { maxAge: number; includeSubdomains: boolean; preload: boolean } | null;
  at: SourcePos;
}

export interface SecurityHeaders {
  preset: 'strict' | 'basic' | 'off';
  contentSecurityPolicy: string | null;
  frameOptions: 'DENY' | 'SAMEORIGIN' | null;
  referrerPolicy: string | null;
  contentTypeOptions: boolean;
}

export type Balance = 'round_robin' | 'least_conn' | 'ip_hash' | 'random' | 'consistent_hash';

export type HashKey =
  | { kind: 'header'; name: string }
  | { kind: 'cookie'; name: string }
  | { kind: 'query'; name: string }
  | { kind: 'client_ip' }
  // derived by njs (src/routing, njs/lib/routing.ts); nginx still places the key on the ring
  | { kind: 'client_id' } // authenticated client ($gw_client_id from auth)
  | { kind: 'jwt_claim'; name: string } // a claim of the verified JWT
  | { kind: 'body_field'; name: string } // a top-level field of the JSON request body
  | { kind: 'prompt_prefix'; bytes: number }; // a digest of the first bytes of the prompt (LLM prefix caches)

export interface Upstream {
  name: string;
  balance: Balance;
  hashKey: HashKey | null; // consistent_hash key, or sticky source
  hashFallback: 'client_ip' | 'random' | null; // when the key is missing
  sticky: StickyCookie | null; // the routing feature's (`sticky:`)
  servers: UpstreamServer[];
  keepalive: { connections: number; timeout: Duration; requests: number } | null;
  /** active health checks (the health feature); null = none */
  healthCheck: HealthCheck | null;
  /** circuit breaker per peer (the health feature); null = none */
  circuitBreaker: CircuitBreaker | null;
  at: SourcePos;
}

/** `health_check:` of an upstream — probed by one worker (js_periodic), state in a shared dict. */
export interface HealthCheck {
  path: string; // request path of the probe (GET)
  intervalMs: number;
  timeoutMs: number;
  expectStatus: number[]; // the probe passes with one of these statuses
  expectBody: string | null; // …and a body containing this text
  expectModels: string[]; // …and a JSON body listing each of these ids in data[].id (/v1/models)
  rise: number; // consecutive passes that bring a down peer back
  fall: number; // consecutive failures that take an up peer down
  at: SourcePos;
}

/** `circuit_breaker:` of an upstream. */
export interface CircuitBreaker {
  failures: number; // failures within `windowMs` that open a peer's breaker
  windowMs: number;
  openMs: number; // how long an open breaker refuses before half-open trials
  halfOpenRequests: number; // trial requests a half-open breaker lets through
  on: number[]; // upstream statuses counted as failures (connect errors: 502, timeouts: 504)
  at: SourcePos;
}

/**
 * `sticky: { cookie }` of an upstream. issue: `upstream` — the backend sets the cookie and the
 * gateway hashes on it (client IP without it); `gateway` — the gateway sets it when absent, to
 * the request id the first request was already hashed on (nginx maps, any nginx); `nginx` —
 * nginx's own `sticky cookie` (nginx >= 1.29.6), the cookie names the server.
 */
export interface StickyCookie {
  kind: 'cookie';
  name: string;
  issue: 'upstream' | 'gateway' | 'nginx';
  path: string;
  maxAge: number | null; // seconds; null = a session cookie
  secure: boolean;
  httpOnly: boolean;
  sameSite: 'strict' | 'lax' | 'none' | null;
  at: SourcePos;
}

export interface UpstreamServer {
  address: string; // host:port or unix:/path
  weight: number;
  maxFails: number;
  failTimeout: Duration;
  /** most concurrent connections to this server across workers (the upstream has a shared zone); 0 = none */
  maxConns: number;
  backup: boolean;
  down: boolean;
  at: SourcePos;
}

export type LimitKey =
  | { kind: 'client_ip' }
  | { kind: 'header'; name: string }
  | { kind: 'client_id' }; // authenticated client (njs auth)

export interface RateZone {
  name: string;
  key: LimitKey;
  rate: string; // nginx rate: "10r/s" or "5r/m"
  ratePerSecond: number; // derived, for Retry-After
  burst: number;
  nodelay: boolean;
  delay: number | null;
  size: Size;
  tier: string | null; // only clients of this tier are counted (others get an empty key)
  at: SourcePos;
}

export interface ConnZone {
  name: string;
  key: LimitKey;
  max: number;
  size: Size;
  tier: string | null; // only clients of this tier are counted
  at: SourcePos;
}

export interface CacheZone {
  name: string;
  path: string; // relative to nginx prefix unless absolute
  size: Size; // keys_zone size
  maxSize: Size | null;
  inactive: Duration;
  at: SourcePos;
}

export type PathMatch =
  | { kind: 'prefix'; value: string }
  | { kind: 'exact'; value: string }
  | { kind: 'regex'; value: string; caseInsensitive: boolean };

export interface Route {
  name: string; // unique, [a-z0-9_-]
  index: number; // position in routes[]
  match: {
    path: PathMatch;
    methods: string[] | null; // null = any
    host: string | null;
    headers: { name: string; value: string; regex: boolean }[];
  };
  listeners: string[]; // listener names it is served on
  upstream: string | null; // null only for `respond` routes
  respond: { status: number; body: string; contentType: string } | null;
  rewrite: { stripPrefix: boolean; replacePath: string | null };
  timeouts: { connect: Duration; send: Duration; read: Duration };
  retries: { tries: number; timeout: Duration | null; on: string[]; nonIdempotent: boolean } | null;
  streaming: boolean;
  websocket: boolean;
  maxBody: Size | null;
  rateLimits: string[]; // RateZone names
  connLimits: string[]; // ConnZone names
  /** token budgets of the route (TokenZone names; the limits feature); absent = none */
  tokenLimits?: string[];
  cache: RouteCache | null;
  cors: Cors | null;
  access: AccessRules;
  setRequestHeaders: { name: string; value: string }[];
  /** response_headers of the route (the response-headers feature); absent/null = none */
  responseHeaders?: ResponseHeaders | null;
  auth: RouteAuth | null; // null = public route (njs auth)
  models: 'route' | 'list' | null; // route by the body's `model` / answer GET /v1/models (src/routing)
  /** shape of gateway-made error bodies; null = openai on `models:` routes, else the listener's */
  errors: 'gateway' | 'openai' | null;
  /** choosing the upstream per request (the traffic feature); null = always `upstream` */
  traffic?: RouteTraffic | null;
  /** the feature that answers this route itself (e.g. "metrics": the scrape endpoint), set by
   *  that feature's normalize; such a route needs no upstream */
  answeredBy?: string | null;
  at: SourcePos;
}

/** What a traffic rule reads from the request (the traffic feature, src/features/traffic). */
export type TrafficSource =
  | { kind: 'header'; name: string }
  | { kind: 'cookie'; name: string }
  | { kind: 'query'; name: string }
  | { kind: 'jwt_claim'; name: string };

/**
 * `traffic:` of a route: rules in order (first match wins), then the weighted split, then the
 * route's own `upstream` (the default, last).
 */
export interface RouteTraffic {
  rules: { source: TrafficSource; value: string; upstream: string; at: SourcePos }[];
  /** upstream → percent of the requests no rule matched (the rest goes to the route's upstream) */
  split: { upstream: string; percent: number }[];
  /** what keeps one client on one side of the split; null = each request is split anew */
  sticky: { kind: 'client_ip' } | { kind: 'client_id' } | { kind: 'header'; name: string } | { kind: 'cookie'; name: string } | null;
  at: SourcePos;
}

export interface ModelEntry {
  id: string; // as clients send it in `model`
  /** the first pool (`upstream:`, or the first of `pools:`) */
  upstream: string;
  /** the pools serving the model: one for `upstream:`; ordered, or weighted when weights are given */
  pools: ModelPool[];
  /** where a request goes when the model's pools fail before the first response byte */
  fallback: ModelFallback | null;
  /** both `upstream:` and `pools:` were given (refused: GW460) */
  upstreamAndPools?: boolean;
  ownedBy: string;
  created: number; // unix seconds shown in /v1/models
  at: SourcePos;
}

export interface ModelPool {
  upstream: string;
  weight: number | null; // null: ordered (the first serves, the next when it fails)
}

export type FallbackTarget = { kind: 'upstream'; name: string } | { kind: 'model'; id: string };

export interface ModelFallback {
  to: FallbackTarget[];
  /** error | timeout | 429 | 500 | 502 | 503 | 504 */
  on: string[];
  /** total time after which no further pool is tried */
  deadline: Duration | null;
  at: SourcePos;
}

export interface RouteCache {
  zone: string;
  ttl: { status: string; time: Duration }[]; // status: "200", "404", "any"
  methods: string[]; // GET HEAD (+ POST when keyIncludesBody)
  keyIncludesBody: boolean;
  bypassHeader: string | null;
  lock: boolean;
}

export interface Cors {
  origins: string[]; // exact origins or "*"
  methods: string[];
  headers: string[];
  exposeHeaders: string[];
  credentials: boolean;
  maxAge: number;
}

export interface AccessRules {
  allow: string[]; // CIDRs / addresses
  deny: string[];
}

export interface UnsafeSnippet {
  context: 'http' | 'server' | 'route';
  target: string | null; // listener or route name
  text: string;
  at: SourcePos;
}

// njs authentication (docs/njs-auth.md for the nginx shape, docs/auth.md for the YAML).
export type AuthMethod = 'api_key' | 'jwt';

export interface AuthSettings {
  /** file: absolute path of the keys store; nativeLane (set when the store is read): it holds
   *  a key nginx can check itself (an MD5), so API-key routes get the native lane */
  apiKeys: { file: string; header: string; at: SourcePos; nativeLane?: boolean } | null;
  jwt: JwtProviderSettings[];
  /** upstream request headers carrying the identity; null = not forwarded (the client's copy of the default name is still removed) */
  identityHeaders: { client: string | null; role: string | null; tier: string | null; method: string | null; claims: string | null };
  failureLog: string | null; // path relative to the nginx prefix; null = no dedicated log
  /** cache of verified JWTs (a js_shared_dict_zone); null = off (`jwt_cache: false`) */
  jwtCache: JwtCacheSettings | null;
  at: SourcePos;
}

export interface JwtCacheSettings {
  size: string; // nginx size of the shared dict zone, e.g. 1m
  ttlSeconds: number; // an entry lives min(exp + leeway, verified + ttl)
  /** what an entry is keyed by: the Authorization header itself (fast) or its SHA-256 (no
   *  bearer token in shared memory; every hit hashes the header) */
  key: 'header' | 'sha256';
}

export interface JwtProviderSettings {
  name: string;
  algorithms: string[];
  jwksFile: string | null; // absolute
  secretFile: string | null; // absolute
  secretEnv: string | null; // environment variable read at build time
  issuer: string[];
  audience: string[];
  leeway: number; // seconds
  requiredClaims: string[];
  /** claim values every token must carry (auth.jwt.<name>.claim_values) */
  claimValues: ClaimValueRule[];
  requireExp: boolean;
  maxTokenLength: number;
  clientClaim: string;
  roleClaim: string | null;
  tierClaim: string | null;
  at: SourcePos;
}

export interface RouteAuth {
  methods: AuthMethod[]; // non-empty; both = either credential is accepted
  jwtProvider: string | null; // resolved provider name when jwt is allowed
  roles: string[]; // empty = any authenticated client
  stripCredentials: boolean; // clear Authorization / the key header before proxying
  keyHeader: string; // API-key header for this route
  /** claim values a JWT must carry on this route, on top of its provider's (route auth.claim_values) */
  claimValues: ClaimValueRule[];
  at: SourcePos;
}

/** One required claim value: the claim is one of `oneOf`, and/or a list (or space-separated string) holding every `contains` value. */
export interface ClaimValueRule {
  claim: string;
  oneOf: (string | number | boolean)[] | null;
  contains: string[] | null;
}

// Diagnostics: stable codes, YAML positions, all collected before failing.
export type Severity = 'error' | 'warning';
export interface Diagnostic {
  code: string; // GW1xx yaml/include/env, GW2xx schema, GW3xx semantic, GW4xx nginx, GW5xx runtime
  severity: Severity;
  message: string;
  at: SourcePos | null;
}
