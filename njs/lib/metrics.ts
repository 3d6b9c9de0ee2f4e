// Prometheus metrics (src/features/metrics): each worker counts its counting log in batches
// (metricsDrain, below), or one log-phase call counts a request where a feature needs that call
// (metricsLog); /metrics renders the shared dict in the text exposition format.
//
//   js_shared_dict_zone zone=gw_metrics:4m type=number;
//   js_preload_object gw_metrics_conf from njs/metrics.json;
//   js_set $gw_metrics gateway.metricsLog;          # gateway.metricsBreakerLog with breakers
//   map $gw_dollar $gw_metrics_in { default "r|$gw_metrics_route|…;$status;…"; }   # (below)
//   access_log /dev/null combined if=$gw_metrics;   # evaluated when nginx logs the request
//   location = /metrics { ... js_content gateway.metricsExport; }
//
// Dict keys (labels joined by "|"; route and upstream names cannot hold "|", methods are
// reduced to a fixed set, codes are three digits, cache results and auth reasons are nginx's
// and the gateway's own words, model and client names are reduced to label-safe characters):
//   r|route|method|code|upstream|di|ui   requests, folded with the duration bucket di and the
//                                        upstream-time bucket ui ("" when not proxied) they fell in:
//                                        ONE update counts the request and both histograms
//                                        (exposition sums them back apart)
//   s|r|route|method|code|upstream       the label set's budget marker (budgeted: one per label
//                                        set, however many bucket combinations it reaches)
//   d|route|i  u|route|i                 histogram buckets of requests refused by the budget
//   ds|route  us|route                   duration sums (request, upstream)
//   bi|route  bo|route                   bytes received / sent
//   c|route|zone|result                  cache results                 (budgeted)
//   l|route|kind                         requests refused by a rate/conn limit (budgeted)
//   a|route|reason                       authentication failures       (budgeted)
//   g|route|model|class|ti               LLM requests, folded with the TTFT bucket ti ("" when
//                                        none: not streamed, or not 2xx); marker s|g|route|model|class (budgeted)
//   gt|model                             TTFT sum
//   gi|model  go|model                   input (prompt) / output (completion) tokens (budgeted)
//   gu|model                             2xx LLM responses whose usage was not seen (budgeted)
//   gc|client|model|i  gc|client|model|o tokens by client (metrics.llm.client_label) (budgeted)
//   pf|upstream|peer|code                upstream tries that failed, per peer (passive) (budgeted)
//   x|series  x|overflow  x|errors       the budget's own bookkeeping
// Buckets are stored non-cumulative (one increment per request) and summed when rendered.
// A proxied request costs at most five updates (request key, two sums when not zero, two
// byte counters); the cache, limit, auth and LLM families only where they apply, reading
// their variables then.

import type fsModule from 'fs';
import { reconcileBudgets } from './budgets.ts';

// fs is required where the counting log is read (the periodic count, a scrape), not imported:
// the bundle binds a module-level import in every request VM of the gateway (≈ 400
// instructions a request, on every route that runs njs). Through globalThis, so that esbuild
// leaves the call alone (a bare require() becomes its Proxy-based shim, which njs lacks).
function files(): typeof fsModule {
  return (globalThis as unknown as { require(id: 'fs'): typeof fsModule }).require('fs');
}

interface RouteConf {
  cache: string | null;
  llm: number; // 1: an LLM route (the body filter of njs/lib/llm.ts runs there)
}

import { healthMetricLines, healthRecordIfFailed } from './health.ts';

// read by /metrics, and by the log-phase call only when a new key meets the series budget
interface MetricsConf {
  buckets: number[];
  bounds?: string; // the bounds as text for bucketIndex ("" for the default ones)
  spool?: string; // the counting log's directory under the prefix, with a trailing "/"

  maxSeries: number;
  clients: number; // 1: tokens by client as well
  routes: { [name: string]: RouteConf };
}

declare const gw_metrics_conf: MetricsConf | undefined;

const ZONE = 'gw_metrics';

function conf(): MetricsConf {
  if (typeof gw_metrics_conf === 'undefined') {
    return { buckets: [], bounds: '', maxSeries: 0, clients: 0, routes: {} };
  }
  return gw_metrics_conf;
}

// the index of the bucket t falls in. bs is "" for the default bounds (DEFAULT_BUCKETS in
// src/features/metrics/index.ts: 0.005 … 60 s), answered by comparisons alone; any other
// bounds come as text ("0.005,0.01,…") and are read one by one. Reading them costs a native
// call per bound passed (~3k instructions each: a 1 s request took ~30k for each of its two
// histograms), the comparisons ~200 in all.
export function bucketIndex(bs: string, t: number): number {
  return bs !== '' ? bucketOf(bs, t) : defaultBucket(t);
}

// bucketIndex for the default bounds (metricsLogFast calls it alone, so its request VM creates
// this one function and not bucketOf)
export function defaultBucket(t: number): number {
  if (t <= 0.25) {
    return t <= 0.025 ? (t <= 0.005 ? 0 : t <= 0.01 ? 1 : 2) : t <= 0.05 ? 3 : t <= 0.1 ? 4 : 5;
  }
  if (t <= 2.5) {
    return t <= 0.5 ? 6 : t <= 1 ? 7 : 8;
  }
  return t <= 5 ? 9 : t <= 10 ? 10 : t <= 30 ? 11 : t <= 60 ? 12 : 13;
}

// bucketIndex for bounds as text (never empty): parseFloat reads one bound and stops at its
// comma, so nothing is split
export function bucketOf(bs: string, t: number): number {
  if (t <= parseFloat(bs)) {
    return 0;
  }
  let i = 0;
  let pos = bs.indexOf(',');
  while (pos >= 0) {
    i++;
    if (t <= parseFloat(bs.substring(pos + 1))) {
      return i;
    }
    pos = bs.indexOf(',', pos + 1);
  }
  return i + 1;
}

// $upstream_response_time: "0.012", "0.010, 0.003" (tries), "0.010 : 0.002" (internal
// redirects), "-" for a try without an answer; the total over the tries, or -1 when none
function upstreamSeconds(v: string): number {
  if (v.indexOf(',') < 0 && v.indexOf(':') < 0) {
    const x = parseFloat(v);
    return x === x ? x : -1;
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

// the series budget (metrics.max_series), read from the preload object only when a request
// brings a new key (reading the preload object costs as much as the rest of the call)
function maxSeries(): number {
  return typeof gw_metrics_conf === 'undefined' ? 0 : gw_metrics_conf.maxSeries;
}

// a request key seen for the first time (its incr returned 1): the label set's budget marker
// (whose value is how many bucket combinations the set was seen in) admits it, so a label set
// admitted before keeps counting in buckets it had not reached yet; over the budget the key
// is removed again, counted as overflow, and the requests (n: one from the log-phase call,
// a batch's from the counting log) still count in their route's histograms
function admitRequestKey(d: NgxSharedDict<number>, key: string, set: string, route: string, di: number, ui: number, n: number): void {
  const setKey = 's|' + set;
  if (d.incr(setKey, 1, 0) !== 1) {
    return;
  }
  if (d.incr('x|series', 1, 0) <= maxSeries()) {
    return;
  }
  d.delete(key);
  d.delete(setKey);
  d.incr('x|series', -1, 0);
  d.incr('x|overflow', n, 0);
  d.incr('d|' + route + '|' + di, n, 0);
  if (ui >= 0) {
    d.incr('u|' + route + '|' + ui, n, 0);
  }
}

// The variables countMore reads: the request's own (r.variables, in the log-phase call) or
// those the counting log wrote beside the fields (countLogLine).
interface CountVars {
  [name: string]: string | undefined;
}

// the families that count only some requests (cache results, LLM usage, limits, auth
// failures, peer failures): their helpers are created only when a request reaches here
function countMore(vars: CountVars, d: NgxSharedDict<number>, p: string[], route: string, status: string, bs: string, proxied: boolean): void {
  // add n (> 0) to a key whose labels come from the request: a new key takes a place of the
  // budget or, when the budget is spent, is removed again and counted as overflow (false)
  function add(d: NgxSharedDict<number>, key: string, n: number): boolean {
    if (d.incr(key, n, 0) !== n) {
      return true;
    }
    if (d.incr('x|series', 1, 0) <= maxSeries()) {
      return true;
    }
    d.delete(key);
    d.incr('x|series', -1, 0);
    d.incr('x|overflow', 1, 0);
    return false;
  }

  // addFolded for the LLM family: the key setKey counts the label set once in the budget
  function addFolded(d: NgxSharedDict<number>, key: string, setKey: string): boolean {
    if (d.incr(key, 1, 0) !== 1) {
      return true;
    }
    if (d.incr(setKey, 1, 0) !== 1) {
      return true;
    }
    if (d.incr('x|series', 1, 0) <= maxSeries()) {
      return true;
    }
    d.delete(key);
    d.delete(setKey);
    d.incr('x|series', -1, 0);
    d.incr('x|overflow', 1, 0);
    return false;
  }

  // a label value from a request (client id, model): label-safe or "other"
  function labelValue(s: string): string {
    return s.length <= 100 && /^[A-Za-z0-9._:\/@+-]+$/.test(s) ? s : 'other';
  }

  // passive peer health: each try of this request that a peer answered with a 5xx (or that
  // nginx ended with 502/504: refused, reset, timed out), from $upstream_addr and
  // $upstream_status ("10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80" / "502, 200 : 200")
  function countPeerFailures(d: NgxSharedDict<number>, v: CountVars, upstream: string): void {
    const addrs = (v.upstream_addr || '').split(/, | : /);
    const codes = (v.upstream_status || '').split(/, | : /);
    for (let i = 0; i < addrs.length && i < codes.length; i++) {
      const code = codes[i];
      if (code.charAt(0) === '5' && code.length === 3) {
        add(d, 'pf|' + upstream + '|' + labelValue(addrs[i]) + '|' + code, 1);
      }
    }
  }

  // $gw_llm, written by the body filter: "ttft|model|input|output|flag" (njs/lib/llm.ts);
  // clients: tokens by client as well (metrics.llm.client_label)
  function countLlm(d: NgxSharedDict<number>, v: CountVars, route: string, status: string, bs: string, clients: boolean): void {
    const s = v.gw_llm || '';
    // "i": the body step's mark (token budgets), no body seen yet
    const f = s === '' || s === 'i' ? ['', v.gw_model || '', '', '', ''] : s.split('|');
    const model = f[1] === '' ? 'unknown' : labelValue(f[1]);
    const ok = status.charAt(0) === '2';
    let ti = '';
    let ttft = -1;
    if (ok && f[0] !== '') {
      ttft = parseFloat(f[0]);
      if (ttft === ttft) {
        ti = String(bucketIndex(bs, ttft));
      }
    }
    const g = route + '|' + model + '|' + status.charAt(0) + 'xx';
    if (!addFolded(d, 'g|' + g + '|' + ti, 's|g|' + g)) {
      return;
    }
    if (ti !== '') {
      d.incr('gt|' + model, ttft, 0);
    }
    if (!ok) {
      return;
    }
    if (f[2] === '' || f[3] === '') {
      add(d, 'gu|' + model, 1);
      return;
    }
    const input = Number(f[2]);
    const output = Number(f[3]);
    if (input > 0) {
      add(d, 'gi|' + model, input);
    }
    if (output > 0) {
      add(d, 'go|' + model, output);
    }
    if (clients) {
      const client = v.gw_client_id || '';
      if (client !== '') {
        const k = 'gc|' + labelValue(client) + '|' + model + '|';
        if (input > 0) {
          add(d, k + 'i', input);
        }
        if (output > 0) {
          add(d, k + 'o', output);
        }
      }
    }
  }

  if (p[7] !== '') {
    const cs = vars.upstream_cache_status || '';
    if (cs !== '') {
      add(d, 'c|' + route + '|' + p[7] + '|' + cs.toLowerCase(), 1);
    }
  }
  if (p[8] !== '') {
    countLlm(d, vars, route, status, bs, p[8] === '2');
  }
  if (status === '429' || status === '503') {
    const v = vars;
    if (v.limit_req_status === 'REJECTED') {
      add(d, 'l|' + route + '|rate', 1);
    } else if (v.limit_conn_status === 'REJECTED') {
      add(d, 'l|' + route + '|conn', 1);
    }
  }
  if (proxied && (status.charAt(0) === '5' || p[4].indexOf(',') >= 0)) {
    // the upstream label: the last field of the label set "r|route|method|code|upstream"
    countPeerFailures(d, vars, p[0].substring(p[0].lastIndexOf('|') + 1));
  }
  if (status === '401' || status === '403') {
    const a = vars.gw_auth_status || '';
    if (a !== '' && a !== 'ok') {
      add(d, 'a|' + route + '|' + a, 1);
    }
  }
}

// js_set $gw_metrics (read by the access_log condition): the one log-phase call every feature
// shares. It counts (with metrics on: $gw_metrics_in exists) and reconciles token budgets
// (njs/lib/budgets.ts: a request that reserved has $gw_tokens); metricsBreakerLog also records
// the breakers' failures. Both return "" (nothing logged).
//
// $gw_metrics_in (a map in conf.d/00-maps.conf) gives, joined with ";", what every request
// needs, so the handler reads one nginx variable and the preload object not at all; nginx
// maps already normalised the method (GET … OPTIONS, else OTHER), the upstream (a configured
// name, "none" when not proxied, else "other") and the route ("-" when none matched):
//   0 the request key's label set "r|route|method|code|upstream"   1 route   2 $status
//   3 $request_time   4 $upstream_response_time   5 $request_length   6 $bytes_sent
//   7 the route's cache zone ("" when not cached)
//   8 LLM route: "1", "2" with tokens by client, "" when not
//   9 "1" when some route reserves token budgets (reconciled here)
//   10 the first histogram bound   11 all the bounds "0.005,0.01,…", "" for the default ones
// Fields 0-6 alone where 7-11 would be "", "", "", "0.005", "" (a plain route, default
// bounds, no budgets): what metricsLogFast reads.
// Each native call costs about as much as a dict update, so the common path makes few: one
// split, numbers by unary +, the bucket of a request faster than the first bound without a
// call. A plain request costs four dict updates (request key, duration sum, two byte
// counters; the upstream-time sum when proxied; sums only when not zero); the other families
// only where they apply (countMore: LLM and cached routes, 4xx/5xx answers, retried tries),
// reading their variables then.
//
// pre and counted come from metricsLogFast when it hands a request over: the fields it split
// already, and the request key it incremented when that key turned out new (admitted here).
export function metricsLog(r: NginxHTTPRequest, pre?: string[], counted?: string): string {
  const v = r.variables;
  // without metrics the call is there for the token budgets alone
  const s = pre ? '' : v.gw_metrics_in;
  const p = pre ? pre : s ? s.split(';') : null;
  if (p !== null && p.length === 7) {
    // a plain route's seven fields (src/features/metrics, inputMap): the rest is constant there
    p.push('', '', '', '0.005', '');
  }
  if (p === null || p[9] === '1') {
    try {
      const tk = v.gw_tokens;
      if (tk) {
        reconcileBudgets(r, tk);
      }
    } catch (e) {
      // the reservation stays: a budget never admits more because its bookkeeping failed
    }
  }
  if (p !== null) {
    try {
      if (p.length < 12) {
        throw new Error('gw_metrics_in');
      }
      const d = ngx.shared[ZONE] as NgxSharedDict<number>;
      const route = p[1];
      const status = p[2];
      const b0 = +p[10];
      const t = +p[3] || 0;
      const di = t <= b0 ? 0 : bucketIndex(p[11], t);
      const us = p[4];
      let up = -1;
      let tries = false;
      if (us !== '') {
        up = +us;
        if (up !== up) {
          // several tries ("0.010, 0.003"), or none that answered ("-")
          up = upstreamSeconds(us);
          tries = true;
        }
      }
      const ui = up < 0 ? -1 : up <= b0 ? 0 : bucketIndex(p[11], up);
      // ONE update counts the request and both histograms (its key is folded with the buckets)
      const key = ui < 0 ? p[0] + '|' + di + '|' : p[0] + '|' + di + '|' + ui;
      if (counted === key || d.incr(key, 1, 0) === 1) {
        admitRequestKey(d, key, p[0], route, di, ui, 1);
      }
      // (the same four sums are written out in metricsLogFast: keep the two in step)
      if (t > 0) {
        d.incr('ds|' + route, t, 0);
      }
      if (up > 0) {
        d.incr('us|' + route, up, 0);
      }
      d.incr('bi|' + route, +p[5] || 0, 0);
      d.incr('bo|' + route, +p[6] || 0, 0);
      if (p[7] !== '' || p[8] !== '' || status >= '400' || (tries && ui >= 0)) {
        countMore(r.variables as CountVars, d, p, route, status, p[11], ui >= 0);
      }
    } catch (e) {
      try {
        (ngx.shared[ZONE] as NgxSharedDict<number>).incr('x|errors', 1, 0);
      } catch (e2) {
        // the dict is full: nothing can be counted
      }
    }
  }
  return '';
}

// with metrics and circuit breakers: the breakers' log-phase work rides in the same call (one
// njs call per phase); metricsLog itself holds none of the breaker's code (about twenty
// functions of njs/lib/health.ts, each created again in every call)
export function metricsBreakerLog(r: NginxHTTPRequest, pre?: string[], counted?: string): string {
  metricsLog(r, pre, counted);
  healthRecordIfFailed(r);
  return '';
}

// Its fast path (src/njs/bundle.ts, hasFastPath): a request that did not fail (the failure map
// $gw_health_fail, the same read healthRecordIfFailed starts with) is only counted, so the
// breaker's functions are not even created; a failed one takes the full handler.
export function metricsBreakerLogFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest, pre?: string[], counted?: string) => string): string {
  if (r.variables.gw_health_fail === '1') {
    return full(r);
  }
  return metricsLogFast(r, full);
}

// metricsLog's fast path (src/njs/bundle.ts, hasFastPath): a request of the common kind —
// $gw_metrics_in of seven fields (default bounds, no token budgets, neither an LLM nor a
// cached route), an answer no other family counts (below 500, not 401, 403 or 429), at most
// one upstream try — counted by one flat function. metricsLog's request VM creates its eight
// helpers on every call (~4k instructions); this one creates defaultBucket alone. Anything
// else goes to the full handler with the fields split already (pre), before any update; a
// request key seen for the first time goes there after its increment (counted), since only
// the full handler holds the series budget.
export function metricsLogFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest, pre?: string[], counted?: string) => string): string {
  const s = r.variables.gw_metrics_in;
  if (!s) {
    return full(r);
  }
  const p = s.split(';');
  // the answers countMore counts more of: auth failures (401, 403), limits (429, 503), peer
  // failures (5xx); other 4xx (404, 499, …) are counted here
  const st = p[2];
  if (p.length !== 7 || (st >= '400' && (st >= '500' || st === '401' || st === '403' || st === '429'))) {
    return full(r, p);
  }
  const us = p[4];
  const up = us === '' ? -1 : +us;
  if (up !== up) {
    // several tries ("0.010, 0.003"), or none that answered ("-")
    return full(r, p);
  }
  try {
    const d = ngx.shared[ZONE] as NgxSharedDict<number>;
    const route = p[1];
    const t = +p[3] || 0;
    const di = t <= 0.005 ? 0 : defaultBucket(t);
    const key = up < 0 ? p[0] + '|' + di + '|' : p[0] + '|' + di + '|' + (up <= 0.005 ? 0 : defaultBucket(up));
    if (d.incr(key, 1, 0) === 1) {
      return full(r, p, key);
    }
    // the same four sums as metricsLog's, written out on purpose: a helper both call would be
    // one more function created in this request VM and a call (+820 instructions a request,
    // measured with callgrind); tests/njs/fast-paths.test.ts checks the two leave the same dict
    if (t > 0) {
      d.incr('ds|' + route, t, 0);
    }
    if (up > 0) {
      d.incr('us|' + route, up, 0);
    }
    d.incr('bi|' + route, +p[5] || 0, 0);
    d.incr('bo|' + route, +p[6] || 0, 0);
  } catch (e) {
    try {
      (ngx.shared[ZONE] as NgxSharedDict<number>).incr('x|errors', 1, 0);
    } catch (e2) {
      // the dict is full: nothing can be counted
    }
  }
  return '';
}

// ---------------------------------------------------------------------------------------
// the counting log (src/features/metrics, countingLog): routes that need no log-phase call
// are counted from a log nginx writes, one file per worker
//
//   access_log "temp/metrics/count.$pid.log" gw_metrics_count if=$gw_metrics_count;
//   location @gw_metrics_spool { js_periodic gateway.metricsDrain interval=250ms worker_affinity=all; }
//
// A request costs nginx one formatted line and one write(2), and no njs at all; every 250 ms
// each worker reads its own file, truncates it and counts the lines in one batch: the sums
// and request keys are added up in the batch and written once each. Exact: only the worker
// that writes a file truncates it, and a worker runs its periodic handler and its requests'
// log phases one after the other, never at once; nginx writes each line with a write(2) of
// its own on a descriptor opened O_APPEND, so after the truncation the next line lands at
// the start. The file of a worker that has exited (a reload, a crash) is claimed by whichever
// worker renames it first, read, removed and counted.
//
// A line (src/features/metrics, COUNT_LINE):
//   0 the request key's label set "r|route|method|code|upstream"   1 $request_time
//   2 $upstream_response_time   3 $request_length   4 $bytes_sent   5 $status
//   6 the route's cache zone ("" when not cached)   7 "" (an LLM route is never counted here)
//   then what countMore reads, split only when it runs:
//   8 $upstream_cache_status  9 $limit_req_status  10 $limit_conn_status  11 $gw_auth_status
//   12 $upstream_status  13 $upstream_addr (last: a unix socket path may hold ";", so
//   anything after field 12 is the address)
// nginx writes an empty variable as "-" ($upstream_response_time of a request not proxied too).
// The bounds are the same on every line, so they come from the preload object, once a batch.
// Splitting costs ~600 instructions a field in njs, so a line holds no field twice and the
// split stops at field 7.

// a line countMore counts more of, counted after the batch's request keys (so that, as in
// metricsLog, a request's own label set meets the series budget before its rarer families)
interface MoreLine {
  vars: CountVars;
  p: string[];
  proxied: boolean;
}

// the variables countMore reads, from a whole line (the access log writes an empty one as "-")
function moreLine(line: string, p: string[], b0: number, bs: string, proxied: boolean): MoreLine | null {
  const f = line.split(';');
  if (f.length < 14) {
    return null;
  }
  const addr = f.length === 14 ? f[13] : f.slice(13).join(';');
  const vars: CountVars = {
    upstream_cache_status: f[8] === '-' ? '' : f[8],
    limit_req_status: f[9] === '-' ? '' : f[9],
    limit_conn_status: f[10] === '-' ? '' : f[10],
    gw_auth_status: f[11] === '-' ? '' : f[11],
    upstream_status: f[12] === '-' ? '' : f[12],
    upstream_addr: addr === '-' ? '' : addr,
  };
  // countMore's view of $gw_metrics_in (metricsLog): label set, route, status, times, bytes,
  // cache zone, LLM flag, budgets flag, bounds
  const route = p[0].split('|')[1];
  return { vars: vars, p: [p[0], route, p[5], p[1], p[2], p[3], p[4], p[6], '', '', String(b0), bs], proxied: proxied };
}

// The lines of one read (whole lines: nginx writes each with one write(2)), counted as
// metricsLog counts a request, in one batch: by label set, the requests by bucket slot
// (di * stride + ui + 1) and the sums of the request and upstream times and the bytes in and
// out, in an array ([ds, us, bi, bo, slots]); then each request key is written once, under the
// series budget as metricsLog admits it, each route's sums once, and the rarer families
// (countMore) last. The loop is flat on purpose: a function call a line costs ~450
// instructions, a property of an object ~300 more than an array's element.
export function countLogText(d: NgxSharedDict<number>, text: string): number {
  const lines = text.split('\n');
  const c = conf();
  const bs = c.bounds || '';
  const b0 = c.buckets.length > 0 ? c.buckets[0] : 0.005;
  const stride = c.buckets.length + 2;
  const sets: { [labels: string]: Array<number | number[]> } = {};
  const more: MoreLine[] = [];
  let errors = 0;
  // the text ends with "\n": the last element is empty (anything else is a cut line)
  const n = lines.length - 1;
  if (lines[n] !== '') {
    errors++;
  }
  // var, not let or const, in this loop: njs gives a block's let and const a new scope on
  // every iteration (+1,200 instructions a line)
  /* eslint-disable no-var */
  for (var i = 0; i < n; i++) {
    var line = lines[i];
    var p = line.split(';', 8);
    if (p.length < 8) {
      errors++;
      continue;
    }
    var t = +p[1] || 0;
    var di = t <= b0 ? 0 : bs === '' ? defaultBucket(t) : bucketOf(bs, t);
    var us = p[2];
    var up = -1;
    var tries = false;
    if (us !== '-') {
      up = +us;
      if (up !== up) {
        // several tries ("0.010, 0.003"), or none that answered
        up = upstreamSeconds(us);
        tries = true;
      }
    }
    var ui = up < 0 ? -1 : up <= b0 ? 0 : bs === '' ? defaultBucket(up) : bucketOf(bs, up);
    var a = sets[p[0]];
    if (a === undefined) {
      a = [0, 0, 0, 0, []];
      sets[p[0]] = a;
    }
    var slots = a[4] as number[];
    var slot = di * stride + ui + 1;
    slots[slot] = (slots[slot] || 0) + 1;
    if (t > 0) {
      (a[0] as number) += t;
    }
    if (up > 0) {
      (a[1] as number) += up;
    }
    (a[2] as number) += +p[3] || 0;
    (a[3] as number) += +p[4] || 0;
    if (p[6] !== '' || p[5] >= '400' || (tries && ui >= 0)) {
      var m = moreLine(line, p, b0, bs, ui >= 0);
      if (m === null) {
        errors++;
      } else {
        more.push(m);
      }
    }
  }
  /* eslint-enable no-var */

  // as metricsLog: the time sums only when not zero, the byte counters always
  const sums: { [route: string]: number[] } = {};
  const labels = Object.keys(sets);
  for (let i = 0; i < labels.length; i++) {
    const set = labels[i];
    const a = sets[set];
    // "r|route|method|code|upstream": names cannot hold "|"
    const route = set.split('|')[1];
    const slots = a[4] as number[];
    for (let slot = 0; slot < slots.length; slot++) {
      const count = slots[slot];
      if (!count) {
        continue;
      }
      const ui = (slot % stride) - 1;
      const di = (slot - ui - 1) / stride;
      const key = ui < 0 ? set + '|' + di + '|' : set + '|' + di + '|' + ui;
      if (d.incr(key, count, 0) === count) {
        admitRequestKey(d, key, set, route, di, ui, count);
      }
    }
    let r = sums[route];
    if (r === undefined) {
      r = [0, 0, 0, 0];
      sums[route] = r;
    }
    for (let k = 0; k < 4; k++) {
      r[k] += a[k] as number;
    }
  }
  const routes = Object.keys(sums);
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i];
    const r = sums[route];
    if (r[0] > 0) {
      d.incr('ds|' + route, r[0], 0);
    }
    if (r[1] > 0) {
      d.incr('us|' + route, r[1], 0);
    }
    d.incr('bi|' + route, r[2], 0);
    d.incr('bo|' + route, r[3], 0);
  }
  for (let i = 0; i < more.length; i++) {
    const x = more[i];
    try {
      countMore(x.vars, d, x.p, x.p[1], x.p[2], bs, x.proxied);
    } catch (e) {
      errors++;
    }
  }
  if (errors > 0) {
    d.incr('x|errors', errors, 0);
  }
  return n;
}

// the spool directory, with a trailing "/" (metrics.json: "temp/metrics/", relative to the prefix)
function spoolDir(): string {
  return ngx.prefix + (typeof gw_metrics_conf === 'undefined' || !gw_metrics_conf.spool ? 'temp/metrics/' : gw_metrics_conf.spool);
}

// this worker's file: read, truncated, counted (nothing else in this worker runs meanwhile)
function drainOwn(d: NgxSharedDict<number>, dir: string): void {
  const fs = files();
  const f = dir + 'count.' + process.pid + '.log';
  let text: string;
  try {
    text = fs.readFileSync(f, 'utf8') as string;
  } catch (e) {
    // no request of this worker has been counted yet
    return;
  }
  if (text.length === 0) {
    return;
  }
  fs.writeFileSync(f, '');
  countLogText(d, text);
}

// whether a process runs (its /proc entry); where there is no /proc, every process does
function running(pid: string): boolean {
  const fs = files();
  try {
    fs.accessSync('/proc/' + pid);
    return true;
  } catch (e) {
    try {
      fs.accessSync('/proc/self');
    } catch (e2) {
      return true;
    }
    return false;
  }
}

// the files of workers that have exited: "count.<pid>.log", or "count.<pid>.log.<claimer>"
// when a worker claimed it and exited before counting it. Renamed to this worker's claim
// first (one rename wins), then read, removed and counted.
function drainExited(d: NgxSharedDict<number>, dir: string): void {
  const fs = files();
  const own = String(process.pid);
  const names = fs.readdirSync(dir) as string[];
  for (let i = 0; i < names.length; i++) {
    const m = /^count\.(\d+)\.log(?:\.(\d+))?$/.exec(names[i]);
    if (m === null) {
      continue;
    }
    const holder = m[2] !== undefined ? m[2] : m[1];
    if (holder === own || running(holder)) {
      continue;
    }
    const claimed = dir + 'count.' + m[1] + '.log.' + own;
    try {
      fs.renameSync(dir + names[i], claimed);
    } catch (e) {
      // another worker claimed it first
      continue;
    }
    const text = fs.readFileSync(claimed, 'utf8') as string;
    fs.unlinkSync(claimed);
    if (text.length > 0) {
      countLogText(d, text);
    }
  }
}

// js_periodic gateway.metricsDrain (every worker, 250 ms)
export function metricsDrain(): void {
  const d = ngx.shared[ZONE] as NgxSharedDict<number>;
  const dir = spoolDir();
  try {
    drainOwn(d, dir);
    drainExited(d, dir);
  } catch (e) {
    ngx.log(ngx.ERR, 'gateway metrics: counting log: ' + String((e as Error).message).substring(0, 300));
  }
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

function hist(all: { [key: string]: Hist }, key: string, n: number): Hist {
  let h = all[key];
  if (!h) {
    h = { counts: [], sum: 0 };
    for (let i = 0; i <= n; i++) {
      h.counts.push(0);
    }
    all[key] = h;
  }
  return h;
}

function fmt(x: number): string {
  return String(Math.round(x * 1e9) / 1e9);
}

function histogramLines(out: string[], name: string, label: string, help: string, all: { [key: string]: Hist }, b: number[]): void {
  out.push('# HELP ' + name + ' ' + help);
  out.push('# TYPE ' + name + ' histogram');
  const keys = Object.keys(all).sort();
  for (let i = 0; i < keys.length; i++) {
    const h = all[keys[i]];
    const lv = label + '="' + esc(keys[i]) + '"';
    let acc = 0;
    for (let j = 0; j < b.length; j++) {
      acc += h.counts[j];
      out.push(name + '_bucket{' + lv + ',le="' + fmt(b[j]) + '"} ' + acc);
    }
    acc += h.counts[b.length];
    out.push(name + '_bucket{' + lv + ',le="+Inf"} ' + acc);
    out.push(name + '_sum{' + lv + '} ' + fmt(h.sum));
    out.push(name + '_count{' + lv + '} ' + acc);
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

// sum a value into a sample keyed by its label string (the folded keys of several dict
// entries become one series)
function sumInto(all: { [labels: string]: number }, labelText: string, val: number): void {
  all[labelText] = (all[labelText] || 0) + val;
}

function samplesOf(name: string, all: { [labels: string]: number }): string[] {
  const out: string[] = [];
  const keys = Object.keys(all);
  for (let i = 0; i < keys.length; i++) {
    out.push(name + keys[i] + ' ' + fmt(all[keys[i]]));
  }
  return out;
}

// js_content of /metrics
export function metricsExport(r: NginxHTTPRequest): void {
  const d = ngx.shared[ZONE] as NgxSharedDict<number>;
  // this worker's lines not yet counted (other workers' within their next 250 ms)
  try {
    drainOwn(d, spoolDir());
  } catch (e) {
    // counted by the next periodic run
  }
  const c = conf();
  const b = c.buckets;
  const items = d.items(100000000);
  // no prototype: a route may be called "constructor" or "__proto__"
  const dur: { [route: string]: Hist } = Object.create(null);
  const ups: { [route: string]: Hist } = Object.create(null);
  const ttft: { [model: string]: Hist } = Object.create(null);
  const routes = Object.keys(c.routes);
  for (let i = 0; i < routes.length; i++) {
    hist(dur, routes[i], b.length);
  }
  const req: { [labels: string]: number } = Object.create(null);
  const llmReq: { [labels: string]: number } = Object.create(null);
  const bytesIn: string[] = [];
  const bytesOut: string[] = [];
  const cache: string[] = [];
  const limited: string[] = [];
  const auth: string[] = [];
  const tokens: string[] = [];
  const clientTokens: string[] = [];
  const unknown: string[] = [];
  const peerFailures: string[] = [];
  let series = 0;
  let overflow = 0;
  let errors = 0;
  for (let i = 0; i < items.length; i++) {
    const k = items[i][0] as string;
    const val = items[i][1] as number;
    const p = k.split('|');
    const t = p[0];
    if (t === 'r' && p.length === 7) {
      sumInto(req, labels(['route', 'method', 'code', 'status_class', 'upstream'], [p[1], p[2], p[3], p[3].charAt(0) + 'xx', p[4]]), val);
      hist(dur, p[1], b.length).counts[parseInt(p[5], 10)] += val;
      if (p[6] !== '') {
        hist(ups, p[1], b.length).counts[parseInt(p[6], 10)] += val;
      }
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
    } else if (t === 'g' && p.length === 5) {
      sumInto(llmReq, labels(['route', 'model', 'status_class'], [p[1], p[2], p[3]]), val);
      if (p[4] !== '') {
        hist(ttft, p[2], b.length).counts[parseInt(p[4], 10)] += val;
      }
    } else if (t === 'gt' && p.length === 2) {
      hist(ttft, p[1], b.length).sum += val;
    } else if ((t === 'gi' || t === 'go') && p.length === 2) {
      tokens.push('gatewayctl_gen_ai_usage_tokens_total' + labels(['model', 'type'], [p[1], t === 'gi' ? 'input' : 'output']) + ' ' + val);
    } else if (t === 'gu' && p.length === 2) {
      unknown.push('gatewayctl_gen_ai_usage_unknown_total' + labels(['model'], [p[1]]) + ' ' + val);
    } else if (t === 'gc' && p.length === 4) {
      clientTokens.push('gatewayctl_gen_ai_client_usage_tokens_total' + labels(['client', 'model', 'type'], [p[1], p[2], p[3] === 'i' ? 'input' : 'output']) + ' ' + val);
    } else if (t === 'pf' && p.length === 4) {
      peerFailures.push('gatewayctl_upstream_peer_failures_total' + labels(['upstream', 'peer', 'code'], [p[1], p[2], p[3]]) + ' ' + val);
    } else if (k === 'x|series') {
      series = val;
    } else if (k === 'x|overflow') {
      overflow = val;
    } else if (k === 'x|errors') {
      errors = val;
    }
  }
  const out: string[] = [];
  family(out, 'gatewayctl_requests_total', 'counter', 'Requests by route, method, status code and upstream.', samplesOf('gatewayctl_requests_total', req));
  histogramLines(out, 'gatewayctl_request_duration_seconds', 'route', 'Time from the first byte of the request to the last byte of the response, by route.', dur, b);
  histogramLines(out, 'gatewayctl_upstream_response_duration_seconds', 'route', 'Time spent on upstream responses (all tries), by route.', ups, b);
  family(out, 'gatewayctl_request_bytes_total', 'counter', 'Bytes received from clients (request line, headers and body), by route.', bytesIn);
  family(out, 'gatewayctl_response_bytes_total', 'counter', 'Bytes sent to clients, by route.', bytesOut);
  family(out, 'gatewayctl_cache_requests_total', 'counter', 'Cache results (hit, miss, expired, stale, bypass, updating, revalidated) by route and zone.', cache);
  family(out, 'gatewayctl_limited_requests_total', 'counter', 'Requests refused by a rate (limit="rate") or connection (limit="conn") limit, by route.', limited);
  family(out, 'gatewayctl_auth_failures_total', 'counter', 'Failed authentications by route and reason.', auth);
  family(out, 'gatewayctl_gen_ai_requests_total', 'counter', 'Requests on LLM routes by route, model (the requested one, else the response\'s) and status_class.', samplesOf('gatewayctl_gen_ai_requests_total', llmReq));
  family(out, 'gatewayctl_gen_ai_usage_tokens_total', 'counter', 'Tokens by model and type (input: prompt, output: completion), from the usage the upstream reported.', tokens);
  if (c.clients === 1) {
    family(out, 'gatewayctl_gen_ai_client_usage_tokens_total', 'counter', 'Tokens by client (the authenticated client id), model and type.', clientTokens);
  }
  family(out, 'gatewayctl_gen_ai_usage_unknown_total', 'counter', 'Successful LLM responses whose usage was not seen (stream cut before its final chunk, no usage reported, compressed body), by model.', unknown);
  family(out, 'gatewayctl_upstream_peer_failures_total', 'counter', 'Upstream tries a peer answered with a 5xx or that failed (502 refused/reset, 504 timed out), by upstream, peer and code (passive health).', peerFailures);
  histogramLines(out, 'gatewayctl_gen_ai_server_time_to_first_token_seconds', 'model', 'Time from the request to the first body bytes of a successful streamed (SSE) response, by model.', ttft, b);
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
  family(out, 'gatewayctl_metrics_series', 'gauge', 'Label sets the budgeted families hold.', ['gatewayctl_metrics_series ' + series]);
  family(out, 'gatewayctl_metrics_series_limit', 'gauge', 'The series budget (metrics.max_series).', ['gatewayctl_metrics_series_limit ' + c.maxSeries]);
  family(out, 'gatewayctl_metrics_overflow_total', 'counter', 'Requests whose new label set did not fit the series budget.', ['gatewayctl_metrics_overflow_total ' + overflow]);
  family(out, 'gatewayctl_metrics_errors_total', 'counter', 'Requests the metrics handler could not count (e.g. the dict is full).', ['gatewayctl_metrics_errors_total ' + errors]);
  // upstream server states and transitions (src/features/health): that module renders the
  // gatewayctl_upstream_peer_* families, from its own dict, and only it (a second HELP/TYPE for
  // a family is a parse error for promtool and most scrapers)
  const health = healthMetricLines(Date.now());
  for (let i = 0; i < health.length; i++) {
    out.push(health[i]);
  }
  r.headersOut['Content-Type'] = 'text/plain; version=0.0.4; charset=utf-8';
  r.return(200, out.join('\n') + '\n');
}
