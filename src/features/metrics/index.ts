// Prometheus metrics: counters and histograms in an njs shared dict (`js_shared_dict_zone`),
// updated from a per-worker counting log or, where a feature needs it, by ONE njs call per
// request in the log phase; served at /metrics in the Prometheus text exposition format
// (njs/lib/metrics.ts).
//
// Two ways a request is counted, decided per route by a map on $gw_route:
// - The counting log (most routes): nginx writes one line per request to a file of the
//   worker's own, `access_log "temp/metrics/count.$pid.log" gw_metrics_count if=$gw_metrics_count;`,
//   and a js_periodic handler in every worker counts its file in batches every 250 ms
//   (njs/lib/metrics.ts, metricsDrain): no njs call per request at all.
// - The log-phase call, on routes where a feature needs one (LLM accounting, token budgets,
//   circuit breakers: logCallNeeds): `js_set $gw_metrics gateway.metricsLog;` is the condition
//   of an http-level `access_log /dev/null combined if=$gw_metrics_call;`. nginx evaluates the
//   condition when it logs the request (after the response is sent, so $request_time,
//   $status, $upstream_* and $bytes_sent are final); the handler counts and returns "", so
//   nothing is ever written.
// Locations with `access_log off` (health, status, the scrape itself) are not counted. The
// handlers read their configuration (buckets, series budget, each route's cache zone) from
// the preload object njs/metrics.json.
import type { Feature } from '../../core/feature.ts';
import type { GatewayModel, MetricsSettings, Route, SourcePos } from '../../model/types.ts';
import { d, raw, type Block, type Directive, type LogField } from '../../plan/directive.ts';
import { bare, mapSourceValue, q } from '../../plan/quote.ts';
import { metricsSchema } from './schema.ts';
import { hasTokenLimits, tokenLimitsUsed } from '../limits/tokens.ts';
import { perModel } from '../../model/memo.ts';
import { sizeBytes, zoneSizeProblem } from '../../model/nginx-limits.ts';

export const METRICS_LOG_HANDLER = 'gateway.metricsLog';
/** the same call with the circuit breakers' log-phase work (metrics and breakers on) */
export const METRICS_BREAKER_LOG_HANDLER = 'gateway.metricsBreakerLog';
export const METRICS_EXPORT_HANDLER = 'gateway.metricsExport';
/** js_periodic: every worker counts its counting log (njs/lib/metrics.ts, metricsDrain) */
export const METRICS_DRAIN_HANDLER = 'gateway.metricsDrain';
/**
 * The counting log's directory, one file per worker (count.<pid>.log): under the temp path
 * (relative to the prefix, writable wherever nginx runs: an emptyDir on Kubernetes' read-only
 * root). nginx creates it at start, owned by the workers' user: a *_temp_path names it (as the
 * health feature's flag directory).
 */
export const metricsSpoolDir = (m: GatewayModel): string => `${m.global.paths.temp}/metrics`;
/**
 * The document root of every location that sets none: nginx writes a log whose path holds a
 * variable only where the location's root exists, and no location of the gateway serves
 * files, so it is an empty directory nginx creates as well. Never the spool itself (a request
 * no location answers would be served from it), and a sibling of it, not inside: nginx creates
 * the spool for the workers' user, mode 0700, and a master without CAP_DAC_OVERRIDE (the
 * Kubernetes container) could not create anything inside it.
 */
const emptyRoot = (m: GatewayModel): string => `${m.global.paths.temp}/empty`;
/** how often each worker counts its counting log: a scrape lags by at most this */
export const METRICS_DRAIN_INTERVAL = '250ms';
export const METRICS_ZONE = 'gw_metrics';
export const METRICS_PRELOAD = 'njs/metrics.json';
/**
 * The fields of $gw_metrics_in, joined with ";", in the order njs/lib/metrics.ts reads them
 * (its comment lists them). Labels are normalised by maps ($gw_metrics_method, …) and the
 * request key's label set is joined by nginx: the log-phase call reads one variable, splits it
 * once, and never reads the preload object on the common path ($proxy_host cannot be read by
 * name from njs).
 */
const REQUEST_FIELDS = [
  'r|$gw_metrics_route|$gw_metrics_method|$status|$gw_metrics_upstream',
  '$gw_metrics_route',
  '$status',
  '$request_time',
  '$upstream_response_time',
  '$request_length',
  '$bytes_sent',
];
const metricsInput = (budgets: boolean, buckets: number[]): string =>
  [
    ...REQUEST_FIELDS,
    '$gw_metrics_route_kind',
    budgets ? '1' : '',
    String(buckets[0]),
    // "" for the default bounds: njs compares with them in code (bucketIndex in njs/lib/metrics.ts)
    isDefaultBuckets(buckets) ? '' : buckets.map((b) => String(b)).join(','),
  ].join(';');

/**
 * $gw_metrics_in. A route that is neither cached nor an LLM route (kind ";"), on a gateway
 * with the default bounds and no token budgets, gets only the first seven fields: all that
 * the log-phase fast path (metricsLogFast) reads. Each field costs the call a split and nginx
 * an evaluation, so the other five, constant there, are left out; the full handler restores
 * them.
 */
function inputMap(budgets: boolean, buckets: number[]): Block {
  const comment = 'metrics: what the log-phase handler counts, in one variable (";" cannot occur in any of these values)';
  const full = d('default', `"${metricsInput(budgets, buckets)}"`);
  if (budgets || !isDefaultBuckets(buckets)) return { comment, head: 'map $gw_dollar $gw_metrics_in', lines: [full] };
  return { comment, head: 'map $gw_metrics_route_kind $gw_metrics_in', lines: [full, d('";"', `"${REQUEST_FIELDS.join(';')}"`)] };
}

/** methods counted under their own name; any other is OTHER */
const COUNTED_METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export const LLM_BODY_HANDLER = 'gateway.llmBody';
/** OpenAI-compatible endpoints: a route whose exact or prefix path ends in one is an LLM route */
export const OPENAI_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'];

/** seconds: 5 ms … 60 s, so histogram_quantile gives p50/p95/p99 for APIs and LLM calls alike */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** njs/lib/metrics.ts bucketIndex holds these bounds as comparisons: keep the two in step */
export const isDefaultBuckets = (b: readonly number[]): boolean => b.length === DEFAULT_BUCKETS.length && b.every((x, i) => x === DEFAULT_BUCKETS[i]);
export const DEFAULT_DICT_SIZE = '4m';
export const DEFAULT_MAX_SERIES = 5000;
/** a shared-dict entry (rbtree node, key, value, slab rounding), generously: what GW524 sizes with */
export const BYTES_PER_SERIES = 256;


/**
 * Series every counted route has from the start: two histograms (buckets, +Inf, sum) and the
 * byte counters. A route in exclude_routes has none (it is never counted), so it takes no room.
 */
export const fixedSeries = (m: GatewayModel, s: MetricsSettings): number =>
  m.routes.filter((r) => !s.excludeRoutes.includes(r.name)).length * (2 * (s.buckets.length + 2) + 2) + 4;

const proxies = (r: Route): boolean => r.respond === null && r.models !== 'list' && (r.upstream !== null || r.models === 'route');

/**
 * The routes whose responses are accounted as LLM responses: model routes (`models: route`),
 * proxied routes whose exact or prefix path ends in an OpenAI endpoint, and the routes
 * metrics.llm.routes names.
 */
export const llmRoutes = perModel((m: GatewayModel): readonly Route[] => {
  const s = m.metrics;
  if (!s || !s.llm) return [];
  const named = s.llm.routes;
  return m.routes.filter(
    (r) =>
      proxies(r) &&
      (r.models === 'route' || named.includes(r.name) || (r.match.path.kind !== 'regex' && OPENAI_PATHS.some((e) => r.match.path.value.replace(/\/$/, '').endsWith(e)))),
  );
});
const llmRouteNames = perModel((m: GatewayModel): ReadonlySet<string> => new Set(llmRoutes(m).map((x) => x.name)));

const isLlmRoute = (r: Route, m: GatewayModel): boolean => llmRouteNames(m).has(r.name);

// The log-phase call and the LLM body filter are shared: token budgets (src/features/limits/
// tokens.ts) reconcile in the same call and read the usage through the same filter, with or
// without metrics. One call per phase, whichever features use it.
/**
 * the shared log-phase call is rendered: routes counted there (metrics on), or routes with
 * token budgets (metrics off: every request then, as budgets are reconciled there)
 */
const logPhaseUsed = (m: GatewayModel): boolean => (m.metrics !== null ? callRoutes(m).length > 0 : tokenLimitsUsed(m));
/**
 * With metrics on, circuit breakers record failed tries in the same call (src/features/health
 * renders its own log call only without metrics); the handler holding the breaker's code is
 * used only then, the lighter one everywhere else.
 */
const breakerLogUsed = (m: GatewayModel): boolean => m.metrics !== null && logPhaseUsed(m) && m.upstreams.some((u) => u.circuitBreaker);
const logHandler = (m: GatewayModel): string => (breakerLogUsed(m) ? METRICS_BREAKER_LOG_HANDLER : METRICS_LOG_HANDLER);
/** the route's responses pass the shared body filter */
const readsLlmBody = (r: Route, m: GatewayModel): boolean => isLlmRoute(r, m) || hasTokenLimits(r, m);
const bodyFilterUsed = (m: GatewayModel): boolean => llmRoutes(m).length > 0 || tokenLimitsUsed(m);

/* eslint-disable @typescript-eslint/no-explicit-any */
function normalizeMetrics(raw: any, at: (p: string) => SourcePos): MetricsSettings | null {
  if (raw === undefined || raw === null || raw.enabled === false) return null;
  const keyAt: Record<string, SourcePos> = {};
  for (const k of Object.keys(raw)) keyAt[k] = at(`metrics.${k}`);
  for (const k of Object.keys(raw.llm ?? {})) keyAt[`llm.${k}`] = at(`metrics.llm.${k}`);
  (raw.llm?.routes ?? []).forEach((_: string, i: number) => (keyAt[`llm.routes[${i}]`] = at(`metrics.llm.routes[${i}]`)));
  (raw.exclude_routes ?? []).forEach((_: string, i: number) => (keyAt[`exclude_routes[${i}]`] = at(`metrics.exclude_routes[${i}]`)));
  return {
    listener: raw.listener === undefined || raw.listener === 'status' ? null : raw.listener,
    path: raw.path ?? '/metrics',
    allow: raw.allow ?? ['127.0.0.1', '::1'],
    buckets: raw.buckets ?? DEFAULT_BUCKETS,
    dictSize: raw.dict_size ?? DEFAULT_DICT_SIZE,
    maxSeries: raw.max_series ?? DEFAULT_MAX_SERIES,
    llm: raw.llm?.enabled === false ? null : { routes: raw.llm?.routes ?? [], clientLabel: raw.llm?.client_label === true },
    excludeRoutes: raw.exclude_routes ?? [],
    at: at('metrics'),
    keyAt,
  };
}

/**
 * What besides counting the route's requests needs the log-phase call (metrics.exclude_routes
 * cannot skip it then): LLM accounting and token budgets are settled there (request windows are
 * counted when the request is admitted, so they do not need it), and
 * with metrics on, circuit breakers record their failures and half-open trials there (a model
 * route may reach any pool or fallback, so it counts as reaching every breaker).
 */
function logCallNeeds(r: Route, m: GatewayModel): string | null {
  if (isLlmRoute(r, m)) return 'it is an LLM route (tokens, models and time to first token are counted in that call)';
  if (hasTokenLimits(r, m)) return 'its token budgets are reconciled in that call (the tokens used replace the reservation)';
  const breakers = new Set(m.upstreams.filter((u) => u.circuitBreaker).map((u) => u.name));
  if (breakers.size === 0) return null;
  const reached = [r.upstream, ...(r.traffic?.rules.map((x) => x.upstream) ?? []), ...(r.traffic?.split.map((x) => x.upstream) ?? [])];
  const hit = r.models === 'route' ? [...breakers][0] : reached.find((u) => u !== null && breakers.has(u));
  return hit ? `it proxies to upstream "${hit}", whose circuit breaker records failed tries in that call` : null;
}

/**
 * The routes counted in the log-phase call (a feature needs it there, logCallNeeds); every
 * other counted route, and a request no route took, is counted from the counting log.
 */
const callRoutes = perModel((m: GatewayModel): readonly Route[] => {
  const s = m.metrics;
  if (!s) return [];
  return m.routes.filter((r) => !s.excludeRoutes.includes(r.name) && logCallNeeds(r, m) !== null);
});

/** tokens by client as well (metrics.llm.client_label, on a gateway with LLM routes) */
const metricsClients = (m: GatewayModel): boolean => !!m.metrics?.llm?.clientLabel && llmRoutes(m).length > 0;

/**
 * The maps that normalise the labels of $gw_metrics_in (C hash lookups, no njs work): the
 * method, the upstream ($proxy_host: a configured upstream, "none" when the request was not
 * proxied, "other" for anything else), the route ("-" when none matched) and what the route
 * counts beyond requests (its cache zone, and whether it is an LLM route).
 */
function labelMaps(m: GatewayModel): Block[] {
  const llm = new Set(llmRoutes(m).map((r) => r.name));
  const llmFlag = metricsClients(m) ? '2' : '1';
  const kinds = m.routes.filter((r) => r.cache || llm.has(r.name));
  return [
    {
      comment: 'metrics: the labels of $gw_metrics_in, normalised by nginx',
      head: 'map $request_method $gw_metrics_method',
      lines: [d('default', 'OTHER'), ...COUNTED_METHODS.map((x) => d(bare(x, 'method'), x))],
    },
    {
      head: 'map $proxy_host $gw_metrics_upstream',
      lines: [d('default', 'other'), d('""', 'none'), ...m.upstreams.map((u) => d(mapSourceValue(bare(u.name, 'name')), bare(u.name, 'name')))],
    },
    { head: 'map $gw_route $gw_metrics_route', lines: [d('default', '$gw_route'), d('""', '-')] },
    {
      head: 'map $gw_route $gw_metrics_route_kind',
      lines: [d('default', '";"'), ...kinds.map((r) => d(mapSourceValue(bare(r.name, 'name')), q(`${r.cache ? r.cache.zone : ''};${llm.has(r.name) ? llmFlag : ''}`, 'expr')))],
    },
  ];
}

/**
 * Which log counts a request, by route: $gw_metrics_count ("1": the counting log) and, where
 * some route is counted in the log-phase call, $gw_metrics_call (that call's js_set, which a map
 * evaluates only for the value it picks). A route in metrics.exclude_routes has neither.
 */
function countMaps(m: GatewayModel, s: MetricsSettings): Block[] {
  const calls = callRoutes(m);
  const name = (r: Route) => mapSourceValue(bare(r.name, 'name'));
  const notInFile = [...calls.map((r) => r.name), ...s.excludeRoutes];
  const out: Block[] = [
    {
      comment: 'metrics: requests counted from the counting log (every route that needs no log-phase call, and requests no route took)',
      head: 'map $gw_route $gw_metrics_count',
      lines: [d('default', '"1"'), ...m.routes.filter((r) => notInFile.includes(r.name)).map((r) => d(name(r), '""'))],
    },
  ];
  if (calls.length > 0) {
    out.push({
      comment: 'metrics: routes counted in the log-phase call (LLM accounting, token budgets or a circuit breaker need it)',
      head: 'map $gw_route $gw_metrics_call',
      lines: [d('default', '""'), ...calls.map((r) => d(name(r), '$gw_metrics'))],
    });
  }
  return out;
}

/**
 * The counting log's line (njs/lib/metrics.ts countLogLine reads it): the request key's label
 * set, the two times, the bytes, the status and the route's cache zone and LLM flag (""
 * here); then what countMore reads for the rarer families, the upstream address last. The
 * bounds are the preload object's, so no line repeats them.
 */
const countLine = (m: GatewayModel): string =>
  [
    REQUEST_FIELDS[0],
    '$request_time',
    '$upstream_response_time',
    '$request_length',
    '$bytes_sent',
    '$status',
    '$gw_metrics_route_kind',
    '$upstream_cache_status',
    '$limit_req_status',
    '$limit_conn_status',
    m.auth ? '$gw_auth_status' : '',
    '$upstream_status',
    '$upstream_addr',
  ].join(';');

/** The counting log (http level): its format, its per-worker file, and what that needs. */
function countingLog(m: GatewayModel): Directive[] {
  return [
    raw('# metrics: the counting log, one file per worker, counted by each worker every ' + METRICS_DRAIN_INTERVAL + ' (gateway.metricsDrain); no njs call per request'),
    d('log_format', 'gw_metrics_count', q(countLine(m), 'expr')),
    raw('# the per-worker file stays open; a log path with a variable is written only where the location\'s root exists,'),
    raw('# which nginx then checks on every request: the cache answers it (found files only; the health flags keep their own)'),
    d('open_log_file_cache', 'max=8', 'inactive=60s', 'valid=60s', 'min_uses=1'),
    d('open_file_cache', 'max=64', 'inactive=60s'),
    d('root', q(emptyRoot(m), 'file')),
    // our own path with the worker's pid: an expr, not a file name (file names hold no "$"),
    // so the temp path is checked as a file name first
    d('access_log', q(`${q(metricsSpoolDir(m), 'file').slice(1, -1)}/count.$pid.log`, 'expr'), 'gw_metrics_count', 'if=$gw_metrics_count'),
  ];
}

/** The configuration the njs handlers read (preload object gw_metrics_conf). */
export function metricsPreload(m: GatewayModel): string {
  const s = m.metrics!;
  const llm = new Set(llmRoutes(m).map((r) => r.name));
  const routes: Record<string, { cache: string | null; llm: number }> = {};
  // an excluded route is not counted, so it has no (always empty) histogram in the exposition
  for (const r of m.routes) if (!s.excludeRoutes.includes(r.name)) routes[r.name] = { cache: r.cache?.zone ?? null, llm: llm.has(r.name) ? 1 : 0 };
  const clients = metricsClients(m) ? 1 : 0;
  // bounds: the text bucketIndex reads ("" for the default ones, held in code), for the counting log
  const bounds = isDefaultBuckets(s.buckets) ? '' : s.buckets.map((b) => String(b)).join(',');
  return `${JSON.stringify({ buckets: s.buckets, bounds, maxSeries: s.maxSeries, clients, spool: `${metricsSpoolDir(m)}/`, routes }, null, 2)}\n`;
}

// the JSON access log's LLM fields, from $gw_llm ("ttft|model|input|output|flag", written by
// the body filter): the model as a string, token counts and TTFT as numbers or null
const llmLogMap = (name: string, regex: string, fallback: string): Block => ({
  head: `map $gw_llm ${name}`,
  lines: [d('default', fallback), raw(`"~${regex}" $1;`)],
});
const LLM_LOG_MAPS: Block[] = [
  { ...llmLogMap('$gw_log_llm_model', '^[^|]*\\|([^|]+)\\|', '""'), comment: 'metrics: the LLM fields of the JSON access log (model, tokens, time to first token)' },
  llmLogMap('$gw_log_llm_input_tokens', '^[^|]*\\|[^|]*\\|([0-9]+)\\|', 'null'),
  llmLogMap('$gw_log_llm_output_tokens', '^[^|]*\\|[^|]*\\|[0-9]*\\|([0-9]+)\\|', 'null'),
  llmLogMap('$gw_log_llm_ttft', '^([0-9]+\\.[0-9]+)\\|', 'null'),
];
const LLM_LOG_FIELDS: LogField[] = [
  ['model', '$gw_log_llm_model', true],
  ['input_tokens', '$gw_log_llm_input_tokens', false],
  ['output_tokens', '$gw_log_llm_output_tokens', false],
  ['ttft', '$gw_log_llm_ttft', false],
];

/**
 * Every worker counts its counting log (js_periodic, worker_affinity=all). The *_temp_path
 * directives make nginx create the spool and the empty root at start, owned by the workers'
 * user, wherever the prefix is.
 */
const spoolLocation = (m: GatewayModel): Block => ({
  comment: `metrics: every worker counts its counting log every ${METRICS_DRAIN_INTERVAL}; *_temp_path makes nginx create ${metricsSpoolDir(m)}/ and ${emptyRoot(m)}/ for the workers' user`,
  head: 'location @gw_metrics_spool',
  lines: [
    d('scgi_temp_path', q(metricsSpoolDir(m), 'file')),
    d('client_body_temp_path', q(emptyRoot(m), 'file')),
    d('js_periodic', METRICS_DRAIN_HANDLER, `interval=${METRICS_DRAIN_INTERVAL}`, 'worker_affinity=all'),
  ],
});

function metricsLocation(s: MetricsSettings): Block {
  return {
    comment: 'Prometheus metrics (text exposition format), read from the shared dict',
    head: `location = ${q(s.path, 'path')}`,
    lines: [
      d('access_log', 'off'),
      ...s.allow.map((c) => d('allow', bare(c, 'cidr'))),
      d('deny', 'all'),
      d('js_content', METRICS_EXPORT_HANDLER),
    ],
  };
}

export const metricsFeature: Feature = {
  name: 'metrics',
  summary: 'Prometheus metrics at /metrics: requests, latency histograms, bytes, cache, limits, auth failures, LLM tokens and time to first token',
  schema: metricsSchema,
  njs: [
    { handler: METRICS_LOG_HANDLER, phase: 'log', used: (m) => logPhaseUsed(m) && !breakerLogUsed(m) },
    { handler: METRICS_BREAKER_LOG_HANDLER, phase: 'log', used: breakerLogUsed },
    { handler: METRICS_EXPORT_HANDLER, phase: 'js_content', used: (m) => m.metrics !== null },
    // js_periodic, like a js_content handler: no request VM of a request runs it
    { handler: METRICS_DRAIN_HANDLER, phase: 'js_content', used: (m) => m.metrics !== null },
    { handler: LLM_BODY_HANDLER, phase: 'body_filter', used: bodyFilterUsed },
  ],
  // js_periodic (the counting log's count) came with njs 0.8.1
  requires: (m) => (m.metrics ? [{ njs: '0.8.1', why: 'js_periodic (the counting log of metrics)', at: m.metrics.at }] : []),
  cost: {
    // the log-phase js_set, whatever the route does; on LLM routes also the body filter (one
    // call per response chunk, counted once here)
    // (also when only token budgets use them: the log-phase call runs for every request then)
    // (with metrics on, only on the routes counted in that call: the others are counted from the
    // counting log, with no njs call)
    njsCalls: (r, m) => ((m.metrics ? callRoutes(m).includes(r) : logPhaseUsed(m)) ? 1 : 0) + (readsLlmBody(r, m) ? 1 : 0),
    measured: 'a plain route is counted from the counting log, with no njs call: one log line and one write(2) a request in nginx, and its share of each worker\'s batch every 250 ms (≈ 17k instructions a line): +3.2 µs CPU a request on the benchmark\'s plain route, same run as the minimal log-phase counter (+3.4 µs) and the log-phase call it replaces (+6.9 µs) (README, Metrics, Refusals and cost). Routes whose LLM accounting, token budgets or circuit breakers need the log-phase js_set keep it (≈ 34k instructions where njs already runs); a route in metrics.exclude_routes is not counted at all'
  },
  normalize: (raw, m, ctx) => {
    m.metrics = normalizeMetrics(raw.metrics, ctx.at);
    const routes = (raw.routes as { metrics?: boolean }[] | undefined) ?? [];
    for (const r of m.routes) if (routes[r.index]?.metrics === true) r.answeredBy = 'metrics';
  },
  needsNjs: (m) => m.metrics !== null || tokenLimitsUsed(m),
  rules(m, err) {
    for (const r of m.routes.filter((x) => x.answeredBy === 'metrics')) {
      const p = `routes[${r.index}]`;
      if (!m.metrics) err('GW528', r.at, `${p}.metrics`, `route ${r.name} serves metrics, but there is no top-level metrics: block to count them`);
      const other = r.upstream !== null ? 'upstream' : r.respond !== null ? 'respond' : r.models !== null ? 'models' : null;
      if (other) err('GW529', r.at, `${p}.${other}`, `route ${r.name} serves metrics itself; it cannot also have ${other}`);
      if (r.streaming || r.websocket || r.cache || r.retries) err('GW529', r.at, `${p}.metrics`, `route ${r.name} serves metrics itself (no streaming, websocket, cache or retries)`);
    }
    const s = m.metrics;
    if (!s) return;
    const pos = (k: string) => s.keyAt[k] ?? s.at;
    if (s.listener !== null && !m.listeners.some((l) => l.name === s.listener)) {
      const names = ['status', ...m.listeners.map((l) => l.name)].join(', ');
      err('GW520', pos('listener'), 'metrics.listener', `unknown listener "${s.listener}" (defined: ${names})`);
    }
    if (s.listener === null && !m.global.status) {
      err('GW521', pos('listener'), 'metrics.listener', 'metrics are served on the status listener, but global.status is false; enable it or name a listener');
    }
    for (let i = 1; i < s.buckets.length; i++) {
      if (s.buckets[i] <= s.buckets[i - 1]) {
        err('GW522', pos('buckets'), `metrics.buckets[${i}]`, `histogram buckets must be strictly increasing (${s.buckets[i]} after ${s.buckets[i - 1]})`);
        break;
      }
    }
    const taken: [string, string][] = [
      [m.global.health.liveness, 'global.health.liveness'],
      [m.global.health.readiness, 'global.health.readiness'],
    ];
    if (s.listener === null && m.global.status) taken.push([m.global.status.path, 'global.status.path']);
    if (s.listener !== null) {
      for (const r of m.routes) if (r.listeners.includes(s.listener) && r.match.path.kind === 'exact') taken.push([r.match.path.value, `routes[${r.index}].match.exact`]);
    }
    const clash = taken.find(([p]) => p === s.path);
    if (clash) err('GW523', pos('path'), 'metrics.path', `${s.path} is already served on that listener (${clash[1]})`);
    if (s.llm) {
      s.llm.routes.forEach((name, i) => {
        const r = m.routes.find((x) => x.name === name);
        const at = s.keyAt[`llm.routes[${i}]`] ?? pos('llm');
        if (!r) err('GW525', at, `metrics.llm.routes[${i}]`, `unknown route "${name}"`);
        else if (!proxies(r)) err('GW526', at, `metrics.llm.routes[${i}]`, `route "${name}" does not proxy (it is answered by the gateway), so it has no LLM responses to account`);
      });
      if (s.llm.clientLabel && !m.auth) {
        err('GW527', s.keyAt['llm.client_label'] ?? pos('llm'), 'metrics.llm.client_label', 'tokens by client need an authenticated client id, but there is no auth: block');
      }
    }
    s.excludeRoutes.forEach((name, i) => {
      const r = m.routes.find((x) => x.name === name);
      const at = s.keyAt[`exclude_routes[${i}]`] ?? pos('exclude_routes');
      if (!r) {
        err('GW530', at, `metrics.exclude_routes[${i}]`, `unknown route "${name}" (defined: ${m.routes.map((x) => x.name).join(', ')})`);
        return;
      }
      const needs = logCallNeeds(r, m);
      if (needs) err('GW531', at, `metrics.exclude_routes[${i}]`, `route "${name}" cannot skip the log-phase call: ${needs}`);
    });
    const need = (fixedSeries(m, s) + s.maxSeries) * BYTES_PER_SERIES;
    // a size nginx cannot take is GW243, except one merely too small for the series: GW524
    // says how big it must be
    const zoneProblem = zoneSizeProblem(s.dictSize);
    if (zoneProblem && /g$/i.test(s.dictSize)) {
      err('GW243', pos('dict_size'), 'metrics.dict_size', zoneProblem);
    } else if (sizeBytes(s.dictSize) < need) {
      err(
        'GW524',
        pos(s.keyAt.dict_size ? 'dict_size' : 'max_series'),
        s.keyAt.dict_size ? 'metrics.dict_size' : 'metrics.max_series',
        `dict_size ${s.dictSize} cannot hold the ${fixedSeries(m, s)} series of the routes' histograms plus max_series ${s.maxSeries} (about ${BYTES_PER_SERIES} bytes each: at least ${Math.ceil(need / 1024)}k)`,
      );
    } else if (zoneProblem) {
      err('GW243', pos('dict_size'), 'metrics.dict_size', zoneProblem);
    }
  },
  outputs: (m) => {
    const files: Record<string, string> = {};
    if (m.metrics) files[METRICS_PRELOAD] = metricsPreload(m);
    return { files, diagnostics: [], mapKeys: [] };
  },
  http: (m) => {
    const s = m.metrics;
    if (!s) {
      if (!logPhaseUsed(m)) return {};
      return {
        mapLines: [
          raw('# the shared log-phase call (token budgets reconcile there) and the LLM body filter\'s record'),
          d('js_set', '$gw_metrics', METRICS_LOG_HANDLER),
          d('js_var', '$gw_llm'),
          d('js_var', '$gw_llm_scan'),
        ],
        accessLogs: [
          raw('# one njs call per request in the log phase (token budgets: reconciliation); it returns "", so nothing is written'),
          d('access_log', q('/dev/null', 'file'), 'combined', 'if=$gw_metrics'),
        ],
        proxyHeaderNames: bodyFilterUsed(m) ? ['Accept-Encoding'] : [],
      };
    }
    const llm = bodyFilterUsed(m);
    const call = logPhaseUsed(m);
    return {
      mapLines: [
        raw('# metrics: counters and histograms (njs/lib/metrics.ts), configuration from the preload object'),
        d('js_shared_dict_zone', `zone=${METRICS_ZONE}:${bare(s.dictSize, 'size')}`, 'type=number'),
        d('js_preload_object', 'gw_metrics_conf', 'from', q(METRICS_PRELOAD, 'file')),
        ...(call ? [d('js_set', '$gw_metrics', logHandler(m))] : []),
        ...(llm ? [d('js_var', '$gw_llm'), d('js_var', '$gw_llm_scan')] : []),
      ],
      maps: [
        ...labelMaps(m),
        ...countMaps(m, s),
        ...(call ? [inputMap(tokenLimitsUsed(m), s.buckets)] : []),
        ...(llmRoutes(m).length > 0 ? LLM_LOG_MAPS : []),
      ],
      logFields: llmRoutes(m).length > 0 ? LLM_LOG_FIELDS : [],
      accessLogs: [
        ...countingLog(m),
        ...(call
          ? [
              raw('# metrics: one njs call per request in the log phase on the routes that need it; it counts and returns "", so nothing is written'),
              d('access_log', q('/dev/null', 'file'), 'combined', 'if=$gw_metrics_call'),
            ]
          : []),
      ],
      // the LLM body filter asks the upstream for an uncompressed answer
      proxyHeaderNames: llm ? ['Accept-Encoding'] : [],
    };
  },
  route(ctx) {
    if (ctx.route.answeredBy === 'metrics') {
      // the scrape endpoint behind the route's own checks (auth, roles, access, limits)
      ctx.content = { kind: 'answer', name: `@${ctx.rid}_metrics`, lines: [d('access_log', 'off'), d('js_content', METRICS_EXPORT_HANDLER)] };
      return;
    }
    if (!ctx.content || ctx.content.kind !== 'proxy' || !readsLlmBody(ctx.route, ctx.model)) return;
    // the body filter must read what the upstream sends: ask for it uncompressed (the client's
    // own Accept-Encoding still applies to what the gateway sends back: gzip runs after it)
    if (!ctx.route.setRequestHeaders.some((h) => h.name.toLowerCase() === 'accept-encoding')) {
      ctx.slots.requestHeaders.push(d('proxy_set_header', 'Accept-Encoding', '""'));
    }
    ctx.slots.streaming.push(d('js_body_filter', LLM_BODY_HANDLER, 'buffer_type=buffer'));
  },
  statusLocations: (m) => (m.metrics && m.metrics.listener === null ? [metricsLocation(m.metrics), spoolLocation(m)] : []),
  serverLocations: (m, l) => (m.metrics && m.metrics.listener === l.name ? [metricsLocation(m.metrics), spoolLocation(m)] : []),
};
