// Normalize step: schema-valid YAML value → typed GatewayModel with every default filled.
// No validation beyond what the types need (cross-field rules live in rules.ts).
import path from 'node:path';
import type { PositionIndex } from '../config/load.ts';
import { defaultShutdownTimeout, SHUTDOWN_DEFAULT_S } from './shutdown.ts';
import type {
  AccessRules,
  AcmeSettings,
  CacheZone,
  ConnZone,
  Cors,
  GatewayModel,
  GlobalSettings,
  HashKey,
  LimitKey,
  Listener,
  PathMatch,
  RateZone,
  Route,
  SecurityHeaders,
  SourcePos,
  Upstream,
  UnsafeSnippet,
} from './types.ts';
import type { Feature } from '../core/feature.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Raw = any;

export interface NormalizeInput {
  value: Record<string, unknown>;
  positions: PositionIndex;
  file: string;
  baseDir: string;
  hash: string;
  version: string;
}

const IDEMPOTENT_RETRY_ON = ['error', 'timeout'];
export const LETSENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/**
 * The core's part of the model, then each feature's (Feature.normalize, registry order); the
 * njs module is loaded when some feature needs it for this model (Feature.needsNjs).
 */
export function normalize(input: NormalizeInput, features: readonly Feature[]): GatewayModel {
  const { value: v, positions, file } = input;
  // an entry's position is its key (`api:`) where it has one, else the value (a list item)
  const at = (p: string): SourcePos => positions.key.get(p) ?? positions.value.get(p) ?? { file, line: 1, col: 1, path: p };
  const g: Raw = v.global ?? {};
  const unsafeSnippets: UnsafeSnippet[] = [];
  if (typeof g.unsafe_nginx_http === 'string') {
    unsafeSnippets.push({ context: 'http', target: null, text: g.unsafe_nginx_http, at: at('global.unsafe_nginx_http') });
  }

  const global: GlobalSettings = {
    workerProcesses: String(g.worker_processes ?? 'auto'),
    workerConnections: g.worker_connections ?? 4096,
    workerShutdownTimeout: `${SHUTDOWN_DEFAULT_S}s`, // set once routes are known
    serverTokens: g.server_tokens ?? false,
    trustedProxies: g.trusted_proxies ?? [],
    realIpHeader: g.real_ip_header ?? 'X-Forwarded-For',
    requestId: { header: g.request_id?.header ?? 'X-Request-ID', trustIncoming: g.request_id?.trust_incoming ?? false },
    accessLog: g.access_log === false ? null : { path: g.access_log?.path ?? 'logs/access.log', format: g.access_log?.format ?? 'json' },
    errorLog: { path: g.error_log?.path ?? 'logs/error.log', level: g.error_log?.level ?? 'warn' },
    health: { liveness: g.health?.liveness ?? '/health', readiness: g.health?.readiness ?? '/ready' },
    status:
      g.status === false
        ? null
        : { listen: normalizeListen(g.status?.listen ?? '127.0.0.1:8081'), path: g.status?.path ?? '/nginx_status' },
    compression: {
      gzip: g.compression?.gzip ?? true,
      brotli: g.compression?.brotli ?? false,
      minLength: g.compression?.min_length ?? 1024,
      types: g.compression?.types ?? [
        'application/json',
        'application/javascript',
        'application/xml',
        'text/css',
        'text/plain',
        'text/xml',
      ],
    },
    paths: { pid: 'run/nginx.pid', logs: 'logs', temp: 'temp', cache: 'cache' },
    modules: { njs: false, brotli: g.compression?.brotli ?? false },
    acmeWebroot: typeof g.acme_webroot === 'string' ? path.resolve(input.baseDir, g.acme_webroot) : null,
    at: at('global'),
  };

  const a: Raw = (v.tls as Raw)?.acme;
  const acme: AcmeSettings | null = a
    ? {
        email: a.email,
        domains: a.domains,
        directory: a.directory ?? (a.staging ? LETSENCRYPT_STAGING : LETSENCRYPT),
        keyType: a.key_type ?? 'ec',
        certsDir: path.resolve(input.baseDir, a.certs_dir ?? 'ssl/managed'),
        webroot: path.resolve(input.baseDir, a.webroot ?? '.gatewayctl/acme'),
        at: at('tls.acme'),
      }
    : null;
  // ACME challenges are served from the managed webroot unless one is set explicitly
  if (acme && !global.acmeWebroot) global.acmeWebroot = acme.webroot;

  const listeners: Listener[] = ((v.listeners as Raw[]) ?? []).map((l: Raw, i: number) => {
    const p = `listeners[${i}]`;
    if (typeof l.unsafe_nginx_server === 'string') {
      unsafeSnippets.push({ context: 'server', target: l.name, text: l.unsafe_nginx_server, at: at(`${p}.unsafe_nginx_server`) });
    }
    const managed = l.tls?.acme === true && acme !== null;
    const tls = l.tls
      ? {
          // a missing cert/key stays '' (rules.ts reports it), not the config's directory
          cert: managed ? path.join(acme.certsDir, acme.domains[0], 'fullchain.pem') : l.tls.cert ? path.resolve(input.baseDir, l.tls.cert) : '',
          key: managed ? path.join(acme.certsDir, acme.domains[0], 'privkey.pem') : l.tls.key ? path.resolve(input.baseDir, l.tls.key) : '',
          acme: l.tls.acme === true,
          pending: false,
          profile: l.tls.profile ?? 'intermediate',
          http2: l.tls.http2 ?? true,
          redirectFrom: l.tls.redirect_from ?? null,
          hsts:
            l.tls.hsts === false
              ? null
              : {
                  maxAge: l.tls.hsts?.max_age ?? 63072000,
                  includeSubdomains: l.tls.hsts?.include_subdomains ?? true,
                  preload: l.tls.hsts?.preload ?? false,
                },
          at: at(`${p}.tls`),
        }
      : null;
    return {
      name: l.name,
      address: l.address && l.address !== '*' ? l.address : null,
      port: l.port,
      serverNames: l.server_names ?? [],
      defaultServer: l.default_server ?? true,
      unknownHost: (l.server_names ?? []).length ? (l.unknown_host ?? 404) : null,
      tls,
      securityHeaders: securityHeaders(l.security_headers),
      errors: l.errors ?? null,
      at: at(p),
    } satisfies Listener;
  });

  const upstreams: Upstream[] = Object.entries((v.upstreams as Record<string, Raw>) ?? {}).map(([nm, u]) => {
    const p = `upstreams.${nm}`;
    const balance = u.balance === 'weighted' || u.balance === undefined ? 'round_robin' : u.balance;
    const keepalive =
      u.keepalive === undefined
        ? { connections: 16, timeout: '60s', requests: 1000 }
        : typeof u.keepalive === 'number'
          ? u.keepalive === 0
            ? null
            : { connections: u.keepalive, timeout: '60s', requests: 1000 }
          : { connections: u.keepalive.connections ?? 16, timeout: u.keepalive.timeout ?? '60s', requests: u.keepalive.requests ?? 1000 };
    return {
      name: nm,
      balance,
      hashKey: hashKey(u.hash_key),
      hashFallback: balance === 'consistent_hash' ? (u.hash_fallback ?? 'random') : null,
      sticky: null, // the routing feature's (Feature.normalize: sticky cookies)
      servers: (u.servers as Raw[]).map((s: Raw, j: number) => {
        const o = typeof s === 'string' ? { address: s } : s;
        return {
          address: o.address,
          weight: o.weight ?? 1,
          maxFails: o.max_fails ?? u.max_fails ?? 1,
          failTimeout: o.fail_timeout ?? u.fail_timeout ?? '10s',
          maxConns: o.max_conns ?? u.max_conns ?? 0,
          backup: o.backup ?? false,
          down: o.down ?? false,
          at: at(`${p}.servers[${j}]`),
        };
      }),
      keepalive,
      healthCheck: null, // the health feature fills these
      circuitBreaker: null,
      at: at(p),
    } satisfies Upstream;
  });

  const lim: Raw = v.limits ?? {};
  const rateZones: RateZone[] = Object.entries((lim.rate as Record<string, Raw>) ?? {}).map(([nm, z]) => {
    const [n, unit] = String(z.rate).split('r/');
    return {
      name: nm,
      key: limitKey(z.key),
      rate: z.rate,
      ratePerSecond: unit === 's' ? Number(n) : Number(n) / 60,
      burst: z.burst ?? 0,
      nodelay: z.nodelay ?? z.delay === undefined,
      delay: z.delay ?? null,
      size: z.size ?? '10m',
      tier: z.tier ?? null,
      at: at(`limits.rate.${nm}`),
    };
  });
  const connZones: ConnZone[] = Object.entries((lim.conn as Record<string, Raw>) ?? {}).map(([nm, z]) => ({
    name: nm,
    key: limitKey(z.key),
    max: z.max,
    size: z.size ?? '10m',
    tier: z.tier ?? null,
    at: at(`limits.conn.${nm}`),
  }));
  const caches: CacheZone[] = Object.entries((v.caches as Record<string, Raw>) ?? {}).map(([nm, c]) => ({
    name: nm,
    path: c.path ?? `cache/${nm}`,
    size: c.size ?? '10m',
    maxSize: c.max_size ?? null,
    inactive: c.inactive ?? '10m',
    at: at(`caches.${nm}`),
  }));

  const allListenerNames = listeners.map((l) => l.name);
  const routes: Route[] = ((v.routes as Raw[]) ?? []).map((r: Raw, i: number) => {
    const p = `routes[${i}]`;
    if (typeof r.unsafe_nginx_route === 'string') {
      unsafeSnippets.push({ context: 'route', target: r.name ?? `route-${i}`, text: r.unsafe_nginx_route, at: at(`${p}.unsafe_nginx_route`) });
    }
    const m: Raw = r.match ?? {};
    const pathMatch: PathMatch =
      m.exact !== undefined
        ? { kind: 'exact', value: m.exact }
        : m.regex !== undefined
          ? { kind: 'regex', value: m.regex, caseInsensitive: m.case_insensitive ?? false }
          : { kind: 'prefix', value: m.prefix ?? '/' };
    const methods: string[] | null = m.methods ? [...new Set<string>(m.methods)].sort() : null;
    const cacheMethods: string[] = r.cache
      ? r.cache.methods ?? (r.cache.key_includes_body ? ['GET', 'HEAD', 'POST'] : ['GET', 'HEAD'])
      : [];
    const retries = r.retries
      ? {
          tries: r.retries.tries ?? 2,
          timeout: r.retries.timeout ?? null,
          on: r.retries.on ?? IDEMPOTENT_RETRY_ON,
          nonIdempotent: r.retries.non_idempotent ?? false,
        }
      : null;
    return {
      name: r.name ?? `route-${i}`,
      index: i,
      match: {
        path: pathMatch,
        methods,
        host: m.host ?? null,
        headers: Object.entries((m.headers as Record<string, string>) ?? {}).map(([name, value]) => ({ name, value, regex: false })),
      },
      listeners: r.listeners ?? allListenerNames,
      upstream: r.upstream ?? null,
      respond: r.respond
        ? { status: r.respond.status, body: r.respond.body ?? '', contentType: r.respond.content_type ?? 'application/json' }
        : null,
      rewrite: { stripPrefix: r.strip_prefix ?? false, replacePath: r.rewrite ?? null },
      timeouts: {
        connect: r.timeouts?.connect ?? '5s',
        send: r.timeouts?.send ?? (r.streaming ? '300s' : '60s'),
        read: r.timeouts?.read ?? (r.streaming ? '3600s' : '60s'),
      },
      retries,
      streaming: r.streaming ?? false,
      websocket: r.websocket ?? false,
      maxBody: r.max_body ?? null,
      rateLimits: r.rate_limits ?? [],
      connLimits: r.conn_limits ?? [],
      cache: r.cache
        ? {
            zone: r.cache.zone,
            ttl: Object.entries((r.cache.ttl as Record<string, string>) ?? { '200': '5m' })
              .map(([status, time]) => ({ status, time }))
              .sort((a, b) => a.status.localeCompare(b.status)),
            methods: cacheMethods,
            keyIncludesBody: r.cache.key_includes_body ?? false,
            bypassHeader: r.cache.bypass_header ?? 'X-Cache-Bypass',
            lock: r.cache.lock ?? true,
          }
        : null,
      cors: r.cors ? cors(r.cors) : null,
      access: accessRules(r.access),
      setRequestHeaders: Object.entries((r.set_headers as Record<string, string>) ?? {}).map(([name, value]) => ({ name, value })),
      models: r.models ?? null,
      errors: r.errors ?? null,
      auth: null, // the auth feature's (Feature.normalize)
      at: at(p),
    } satisfies Route;
  });

  const model: GatewayModel = {
    source: { file, hash: input.hash },
    version: input.version,
    global,
    listeners,
    upstreams,
    rateZones,
    connZones,
    caches,
    routes,
    access: accessRules(g.access),
    unsafeSnippets,
    auth: null,
    models: [],
    acme,
    metrics: null, // the metrics feature's (Feature.normalize)
    fleet: null, // the fleet feature's
    kubernetes: null, // the kubernetes feature's
    clusterStatus: null, // the health feature's
    adminApi: null, // the health feature's
  };
  model.global.workerShutdownTimeout = typeof g.worker_shutdown_timeout === 'string' ? g.worker_shutdown_timeout : defaultShutdownTimeout(routes);
  for (const f of features) f.normalize?.(v, model, { at, baseDir: input.baseDir });
  model.global.modules.njs = features.some((f) => f.needsNjs?.(model));
  return model;
}

function normalizeListen(s: string): string {
  return /^[0-9]+$/.test(s) ? `127.0.0.1:${s}` : s;
}

function hashKey(k: Raw): HashKey | null {
  if (k === undefined) return null;
  if (k === 'client_ip') return { kind: 'client_ip' };
  if (k.header) return { kind: 'header', name: k.header };
  if (k.cookie) return { kind: 'cookie', name: k.cookie };
  if (k === 'client_id') return { kind: 'client_id' };
  if (k.jwt_claim) return { kind: 'jwt_claim', name: k.jwt_claim };
  if (k.body_field) return { kind: 'body_field', name: k.body_field };
  if (k.prompt_prefix) return { kind: 'prompt_prefix', bytes: k.prompt_prefix };
  return { kind: 'query', name: k.query };
}

function limitKey(k: Raw): LimitKey {
  if (k === undefined || k === 'client_ip') return { kind: 'client_ip' };
  if (k === 'client_id') return { kind: 'client_id' };
  return { kind: 'header', name: k.header };
}

function accessRules(a: Raw): AccessRules {
  return { allow: a?.allow ?? [], deny: a?.deny ?? [] };
}

function securityHeaders(s: Raw): SecurityHeaders {
  const preset = s?.preset ?? 'basic';
  if (preset === 'off') {
    return { preset, contentSecurityPolicy: s?.content_security_policy ?? null, frameOptions: null, referrerPolicy: null, contentTypeOptions: false };
  }
  const strict = preset === 'strict';
  return {
    preset,
    contentSecurityPolicy: s?.content_security_policy ?? (strict ? "default-src 'none'; frame-ancestors 'none'" : null),
    frameOptions: s?.frame_options === false ? null : (s?.frame_options ?? (strict ? 'DENY' : 'SAMEORIGIN')),
    referrerPolicy: s?.referrer_policy === false ? null : (s?.referrer_policy ?? (strict ? 'no-referrer' : 'strict-origin-when-cross-origin')),
    contentTypeOptions: true,
  };
}

function cors(c: Raw): Cors {
  return {
    origins: c.origins,
    methods: c.methods ?? ['GET', 'POST', 'OPTIONS'],
    headers: c.headers ?? ['Authorization', 'Content-Type', 'X-Request-ID'],
    exposeHeaders: c.expose_headers ?? ['X-Request-ID'],
    credentials: c.credentials ?? false,
    maxAge: c.max_age ?? 600,
  };
}
