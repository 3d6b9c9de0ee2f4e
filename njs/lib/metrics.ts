// Prometheus metrics (src/features/metrics): one log-phase call per request counts everything,
// /metrics renders the shared dict in the text exposition format.
//
//   js_shared_dict_zone zone=gw_metrics:4m type=number;
//   js_preload_object gw_metrics_conf from njs/metrics.json;
//   js_set $gw_metrics gateway.metricsLog;
//   map $gw_dollar $gw_metrics_in { default "$gw_route|$request_method|$status|…"; }
//   access_log /dev/null combined if=$gw_metrics;   # evaluated when nginx logs the request
//   location = /metrics { ... js_content gateway.metricsExport; }
//
// Dict keys (labels joined by "|"; route and upstream names cannot hold "|", methods are
// reduced to a fixed set, codes are three digits, cache results and auth reasons are nginx's
// and the gateway's own words):
//   r|route|method|code|upstream   requests                      (budgeted)
//   d|route|i  ds|route            request duration: bucket i (i = buckets.length: above the last), sum
//   u|route|i  us|route            upstream response time, the same
//   bi|route  bo|route             bytes received / sent
//   c|route|zone|result            cache results                 (budgeted)
//   l|route|kind                   requests refused by a rate/conn limit (budgeted)
//   a|route|reason                 authentication failures       (budgeted)
//   x|series  x|overflow  x|errors the budget's own bookkeeping
// Buckets are stored non-cumulative (one increment per request) and summed when rendered.

import { healthMetricLines, healthRecordIfFailed } from './health.ts';

interface MetricsConf {
  buckets: number[];
  maxSeries: number;
  routes: { [name: string]: { cache: string | null } };
  // upstream names as keys (the preload object's arrays lack Array.prototype methods)
  upstreams: { [name: string]: number };
}

declare const gw_metrics_conf: MetricsConf | undefined;

const ZONE = 'gw_metrics';

function conf(): MetricsConf {
  if (typeof gw_metrics_conf === 'undefined') {
    return { buckets: [], maxSeries: 0, routes: {}, upstreams: {} };
  }
  return gw_metrics_conf;
}

function bucketIndex(b: number[], t: number): number {
  for (let i = 0; i < b.length; i++) {
    if (t <= b[i]) {
      return i;
    }
  }
  return b.length;
}

// $upstream_response_time: "0.012", "0.010, 0.003" (tries), "0.010 : 0.002" (internal
// redirects), "-" for a try without an answer; the total over the tries, or -1 when none
function upstreamSeconds(v: string | undefined): number {
  if (!v) {
    return -1;
  }
  const parts = v.split(/[,:]/);
  let total = -1;
  for (let i = 0; i < parts.length; i++) {
    const x = parseFloat(parts[i]);
    if (x === x) {
      total = total < 0 ? x : total + x;
    }
  }
  return total;
}

// a counter whose labels come from the request: a new label set takes a place of the budget,
// or, when the budget is spent, is removed again and counted as overflow
function countSeries(d: NgxSharedDict<number>, key: string, max: number): void {
  if (d.incr(key, 1, 0) === 1) {
    if (d.incr('x|series', 1, 0) > max) {
      d.delete(key);
      d.incr('x|series', -1, 0);
      d.incr('x|overflow', 1, 0);
    }
  }
}

function observe(d: NgxSharedDict<number>, family: string, route: string, b: number[], t: number): void {
  d.incr(family + '|' + route + '|' + bucketIndex(b, t), 1, 0);
  d.incr(family + 's|' + route, t, 0);
}

// $gw_metrics_in (a map in conf.d/00-maps.conf) joins what is counted with "|", so the
// handler reads one nginx variable instead of a dozen (each read is a lookup by name):
//   0 $gw_route  1 $request_method  2 $status  3 $request_time  4 $upstream_response_time
//   5 $proxy_host  6 $request_length  7 $bytes_sent  8 $upstream_cache_status
//   9 $limit_req_status  10 $limit_conn_status  11 $gw_auth_status ("" without auth:)
function count(r: NginxHTTPRequest): void {
  const d = ngx.shared[ZONE] as NgxSharedDict<number>;
  const c = conf();
  const p = (r.variables.gw_metrics_in || '').split('|');
  if (p.length < 12) {
    throw new Error('gw_metrics_in');
  }
  const route = p[0] || '-';
  const status = p[2] || '000';
  let method = p[1];
  switch (method) {
    case 'GET':
    case 'POST':
    case 'HEAD':
    case 'PUT':
    case 'PATCH':
    case 'DELETE':
    case 'OPTIONS':
      break;
    default:
      method = 'OTHER';
  }
  let upstream = p[5];
  if (upstream === '') {
    upstream = 'none';
  } else if (c.upstreams[upstream] !== 1) {
    upstream = 'other';
  }
  countSeries(d, 'r|' + route + '|' + method + '|' + status + '|' + upstream, c.maxSeries);
  observe(d, 'd', route, c.buckets, parseFloat(p[3]) || 0);
  if (p[4] !== '') {
    const up = upstreamSeconds(p[4]);
    if (up >= 0) {
      observe(d, 'u', route, c.buckets, up);
    }
  }
  d.incr('bi|' + route, parseInt(p[6], 10) || 0, 0);
  d.incr('bo|' + route, parseInt(p[7], 10) || 0, 0);
  if (p[8] !== '') {
    const rc = c.routes[route];
    if (rc && rc.cache) {
      countSeries(d, 'c|' + route + '|' + rc.cache + '|' + p[8].toLowerCase(), c.maxSeries);
    }
  }
  if (status === '429' || status === '503') {
    if (p[9] === 'REJECTED') {
      countSeries(d, 'l|' + route + '|rate', c.maxSeries);
    } else if (p[10] === 'REJECTED') {
      countSeries(d, 'l|' + route + '|conn', c.maxSeries);
    }
  }
  if ((status === '401' || status === '403') && p[11] !== '' && p[11] !== 'ok') {
    countSeries(d, 'a|' + route + '|' + p[11], c.maxSeries);
  }
}

// js_set $gw_metrics (read by the access_log condition): counts, returns "" (nothing logged)
export function metricsLog(r: NginxHTTPRequest): string {
  try {
    count(r);
  } catch (e) {
    try {
      (ngx.shared[ZONE] as NgxSharedDict<number>).incr('x|errors', 1, 0);
    } catch (e2) {
      // the dict is full: nothing can be counted
    }
  }
  // the circuit breakers' log-phase work rides in this call (one njs call per phase)
  healthRecordIfFailed(r);
  return '';
}

// ---------------------------------------------------------------------------------------
// exposition

function esc(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(names: string[], values: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < names.length; i++) {
    out.push(names[i] + '="' + esc(values[i]) + '"');
  }
  return '{' + out.join(',') + '}';
}

interface Hist {
  counts: number[];
  sum: number;
}

function hist(all: { [route: string]: Hist }, route: string, n: number): Hist {
  let h = all[route];
  if (!h) {
    h = { counts: [], sum: 0 };
    for (let i = 0; i <= n; i++) {
      h.counts.push(0);
    }
    all[route] = h;
  }
  return h;
}

function fmt(x: number): string {
  return String(Math.round(x * 1e9) / 1e9);
}

function histogramLines(out: string[], name: string, help: string, all: { [route: string]: Hist }, b: number[]): void {
  out.push('# HELP ' + name + ' ' + help);
  out.push('# TYPE ' + name + ' histogram');
  const routes = Object.keys(all).sort();
  for (let i = 0; i < routes.length; i++) {
    const h = all[routes[i]];
    const route = esc(routes[i]);
    let acc = 0;
    for (let j = 0; j < b.length; j++) {
      acc += h.counts[j];
      out.push(name + '_bucket{route="' + route + '",le="' + fmt(b[j]) + '"} ' + acc);
    }
    acc += h.counts[b.length];
    out.push(name + '_bucket{route="' + route + '",le="+Inf"} ' + acc);
    out.push(name + '_sum{route="' + route + '"} ' + fmt(h.sum));
    out.push(name + '_count{route="' + route + '"} ' + acc);
  }
}

function family(out: string[], name: string, type: string, help: string, samples: string[]): void {
  out.push('# HELP ' + name + ' ' + help);
  out.push('# TYPE ' + name + ' ' + type);
  samples.sort();
  for (let i = 0; i < samples.length; i++) {
    out.push(samples[i]);
  }
}

// js_content of /metrics
export function metricsExport(r: NginxHTTPRequest): void {
  const d = ngx.shared[ZONE] as NgxSharedDict<number>;
  const c = conf();
  const b = c.buckets;
  const items = d.items(100000000);
  // no prototype: a route may be called "constructor" or "__proto__"
  const dur: { [route: string]: Hist } = Object.create(null);
  const ups: { [route: string]: Hist } = Object.create(null);
  const routes = Object.keys(c.routes);
  for (let i = 0; i < routes.length; i++) {
    hist(dur, routes[i], b.length);
  }
  const req: string[] = [];
  const bytesIn: string[] = [];
  const bytesOut: string[] = [];
  const cache: string[] = [];
  const limited: string[] = [];
  const auth: string[] = [];
  let series = 0;
  let overflow = 0;
  let errors = 0;
  for (let i = 0; i < items.length; i++) {
    const k = items[i][0] as string;
    const val = items[i][1] as number;
    const p = k.split('|');
    const t = p[0];
    if (t === 'r' && p.length === 5) {
      req.push('gatewayctl_requests_total' + labels(['route', 'method', 'code', 'status_class', 'upstream'], [p[1], p[2], p[3], p[3].charAt(0) + 'xx', p[4]]) + ' ' + val);
    } else if ((t === 'd' || t === 'u') && p.length === 3) {
      hist(t === 'd' ? dur : ups, p[1], b.length).counts[parseInt(p[2], 10)] += val;
    } else if ((t === 'ds' || t === 'us') && p.length === 2) {
      hist(t === 'ds' ? dur : ups, p[1], b.length).sum += val;
    } else if (t === 'bi' && p.length === 2) {
      bytesIn.push('gatewayctl_request_bytes_total' + labels(['route'], [p[1]]) + ' ' + val);
    } else if (t === 'bo' && p.length === 2) {
      bytesOut.push('gatewayctl_response_bytes_total' + labels(['route'], [p[1]]) + ' ' + val);
    } else if (t === 'c' && p.length === 4) {
      cache.push('gatewayctl_cache_requests_total' + labels(['route', 'zone', 'result'], [p[1], p[2], p[3]]) + ' ' + val);
    } else if (t === 'l' && p.length === 3) {
      limited.push('gatewayctl_limited_requests_total' + labels(['route', 'limit'], [p[1], p[2]]) + ' ' + val);
    } else if (t === 'a' && p.length === 3) {
      auth.push('gatewayctl_auth_failures_total' + labels(['route', 'reason'], [p[1], p[2]]) + ' ' + val);
    } else if (k === 'x|series') {
      series = val;
    } else if (k === 'x|overflow') {
      overflow = val;
    } else if (k === 'x|errors') {
      errors = val;
    }
  }
  const out: string[] = [];
  family(out, 'gatewayctl_requests_total', 'counter', 'Requests by route, method, status code and upstream.', req);
  histogramLines(out, 'gatewayctl_request_duration_seconds', 'Time from the first byte of the request to the last byte of the response, by route.', dur, b);
  histogramLines(out, 'gatewayctl_upstream_response_duration_seconds', 'Time spent on upstream responses (all tries), by route.', ups, b);
  family(out, 'gatewayctl_request_bytes_total', 'counter', 'Bytes received from clients (request line, headers and body), by route.', bytesIn);
  family(out, 'gatewayctl_response_bytes_total', 'counter', 'Bytes sent to clients, by route.', bytesOut);
  family(out, 'gatewayctl_cache_requests_total', 'counter', 'Cache results (hit, miss, expired, stale, bypass, updating, revalidated) by route and zone.', cache);
  family(out, 'gatewayctl_limited_requests_total', 'counter', 'Requests refused by a rate (limit="rate") or connection (limit="conn") limit, by route.', limited);
  family(out, 'gatewayctl_auth_failures_total', 'counter', 'Failed authentications by route and reason.', auth);
  const v = r.variables;
  const conns: string[] = [];
  const states = ['active', 'reading', 'writing', 'waiting'];
  for (let i = 0; i < states.length; i++) {
    const x = v['connections_' + states[i]];
    if (x) {
      conns.push('gatewayctl_connections{state="' + states[i] + '"} ' + x);
    }
  }
  family(out, 'gatewayctl_connections', 'gauge', 'Client connections of this nginx by state (writing: requests in flight, this scrape included).', conns);
  family(out, 'gatewayctl_metrics_series', 'gauge', 'Label sets the per-request families hold.', ['gatewayctl_metrics_series ' + series]);
  family(out, 'gatewayctl_metrics_series_limit', 'gauge', 'The series budget (metrics.max_series).', ['gatewayctl_metrics_series_limit ' + c.maxSeries]);
  family(out, 'gatewayctl_metrics_overflow_total', 'counter', 'Requests whose new label set did not fit the series budget.', ['gatewayctl_metrics_overflow_total ' + overflow]);
  family(out, 'gatewayctl_metrics_errors_total', 'counter', 'Requests the metrics handler could not count (e.g. the dict is full).', ['gatewayctl_metrics_errors_total ' + errors]);
  const health = healthMetricLines(Date.now()); // upstream server states (src/features/health)
  for (let i = 0; i < health.length; i++) {
    out.push(health[i]);
  }
  r.headersOut['Content-Type'] = 'text/plain; version=0.0.4; charset=utf-8';
  r.return(200, out.join('\n') + '\n');
}
