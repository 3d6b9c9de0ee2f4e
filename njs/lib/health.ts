/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// The upstream state plane (src/features/health): active health checks, circuit breakers and
// the steering around unavailable servers, with the state in one shared dict.
//
//   js_shared_dict_zone zone=gw_state:1m type=number;
//   js_preload_object gw_health_conf from njs/health.json;     upstreams, rings, settings
//   location @gw_health_probe_<k> { root gw-probe/<u>; js_periodic gateway.healthPeriodic interval=…; }
//   location @gw_health_sync { root state; js_periodic gateway.healthPeriodic interval=1s; }
//   (worker 0 only: probes, flag files, half-open transitions)
//
// While every server of an upstream is up, no njs runs for its requests: nginx proxies to the
// upstream block as always. When one is not (probe down, breaker open or half-open), njs
// creates the flag file <prefix>/state/steer-<upstream>; the route's location checks it
// (`if (-f …) { return 418; }`) and jumps to its steer location, where the js_set
// $gw_steer_peer picks a per-server upstream block (gw_peer_<upstream>_<i>), placing hash keys
// exactly as nginx's ring does with the unavailable servers skipped (and with the runtime
// servers' ring points added, as if listed after the configured ones). The flag goes when every
// server is up again and no runtime server is left.
//
// Dict keys (U = upstream name, i = server index; absent = 0):
//   hd|U|i  1: the health check took the server out       ok|U|i ko|U|i  consecutive passes/fails
//   pt|U|i  last probe (ms since the epoch)  pl|U|i latency (ms)  pc|U|i status (0: none)
//   pe|U|i  last probe result: 0 passed, 1 connect error/timeout, 2 status, 3 body, 4 models
//   bs|R  1: breaker open (half-open once bo + open_for has passed)   bo|R opened at
//   bf|R  failures in the window that started at bw|R   bt|R trials let through (half-open)
//   bq|R  when the last trial was let through   bh|R 1: half-open was logged
//   rr|U    round-robin counter of the steer picks   fl|U 1: the flag file exists
//   n|U|i|to  health transitions of a server into state `to` (up, down; metrics)
//   n|R|to    breaker transitions of a record (open, half_open, closed; metrics)
// R is the server's breaker record: U|i, or, when an earlier upstream (gateway.yaml order) lists
// the same address with the same circuit_breaker, that upstream's record (UpstreamConf.recs):
// failures through either upstream count towards one breaker, whose state both read. Health
// checks stay per upstream (each probes with its own check; a probe sees a dead server within
// its interval without traffic, while a breaker only sees the traffic of its own pool).
import cr from 'crypto';
import fs from 'fs';
import { openAiError } from './keys.ts';
import { crc32, indexIn, probeVerdict, ringPickWith, serverPoints, sortedPoints, upstreamTries, weightedPick, type HealthCheckConf } from './peers.ts';

export type { HealthCheckConf };


export interface BreakerConf {
  failures: number;
  windowMs: number;
  openMs: number;
  halfOpen: number;
  on: number[];
}

export interface UpstreamConf {
  balance: string;
  addresses: string[];
  weights: number[];
  /** 1: the server is `down` in gateway.yaml (never picked) */
  down: number[];
  /** the per-server upstream blocks, by server index */
  peers: string[];
  /** consistent_hash: the ring's point hashes (sorted) and the server of each point */
  ring: number[];
  owners: number[];
  /** consistent_hash: the nginx variable the key is read from (without $) */
  hashVar: string;
  health: HealthCheckConf | null;
  breaker: BreakerConf | null;
  /**
   * the breaker record of each server: "" its own (U|i), else "<upstream>|<index>" of the
   * first upstream listing the same address with the same breaker; absent when no server of
   * the upstream shares one (each value of the preload object costs every njs request)
   */
  recs?: string[];
  /** the other upstreams holding each server's breaker record; absent like recs */
  shared?: string[][];
}

export interface HealthConf {
  /** the directory of the flag files, relative to the nginx prefix, with a trailing / */
  dir: string;
  /** hex SHA-256 of the admin API's bearer token ("" = no admin API) */
  admin: string;
  /** 1: some upstream has a circuit breaker (the failure map exists) */
  breakers: number;
  /** CRC-32 table (nginx's ngx_crc32_table256) */
  crc: number[];
  /** upstream names in gateway.yaml order (index k: gateway.healthProbe<k>) */
  names: string[];
  upstreams: { [name: string]: UpstreamConf };
  /** route name → its upstream ("" for model routes: the model's upstream) */
  routes: { [name: string]: string };
  /** the model catalogue, in order: id, upstream, owned_by, created */
  models: { id: string; upstream: string; owned_by: string; created: number }[];
}

declare const gw_health_conf: HealthConf | undefined;

const ZONE = 'gw_state';

function conf(): HealthConf {
  if (typeof gw_health_conf === 'undefined') {
    return { dir: 'state/', admin: '', breakers: 0, crc: [], names: [], upstreams: {}, routes: {}, models: [] };
  }
  return gw_health_conf;
}

function dict(): NgxSharedDict<number> {
  return ngx.shared[ZONE] as NgxSharedDict<number>;
}

// ---------------------------------------------------------------------------------------
// state

/**
 * A dict key, kind|U|i; with the upstream's conf, a breaker key, kind|R (R: server i's breaker
 * record, see above). i: a configured server's index, or "@<address>" for a runtime server
 * (runtime servers keep their own record). One function: the breaker's log-phase call creates
 * every function it may reach, on each request (see healthRecordIfFailed).
 */
function key(kind: string, u: string, i: number | string, uc?: UpstreamConf): string {
  // (recs["@<address>"] of a runtime server is undefined)
  const rs = uc ? uc.recs : undefined;
  const r = rs ? rs[i as number] : '';
  return r ? kind + '|' + r : kind + '|' + u + '|' + i;
}

function get(d: NgxSharedDict<number>, k: string): number {
  const v = d.get(k);
  return typeof v === 'number' ? v : 0;
}

/** 'up' | 'down' (health check) | 'open' | 'half_open' (breaker) | 'disabled' (down in gateway.yaml) */
export function peerState(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, i: number, now: number): string {
  if (uc.down[i] === 1) {
    return 'disabled';
  }
  if (get(d, key('dr', u, i)) === 1) {
    return 'draining';
  }
  if (uc.health !== null && get(d, key('hd', u, i)) === 1) {
    return 'down';
  }
  if (uc.breaker !== null && get(d, key('bs', u, i, uc)) === 1) {
    return now >= get(d, key('bo', u, i, uc)) + uc.breaker.openMs ? 'half_open' : 'open';
  }
  return 'up';
}

/** The breaker's own state (whatever the health check says): closed, open or half_open. */
function breakerState(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, i: number | string, now: number): string {
  if (uc.breaker === null || get(d, key('bs', u, i, uc)) !== 1) {
    return 'closed';
  }
  return now >= get(d, key('bo', u, i, uc)) + uc.breaker.openMs ? 'half_open' : 'open';
}

function allUp(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, now: number): boolean {
  if (runtimeServers(u).length > 0) {
    return false; // nginx's upstream block does not know them: njs picks while they exist
  }
  for (let i = 0; i < uc.addresses.length; i++) {
    const s = peerState(d, u, uc, i, now);
    if (s !== 'up' && s !== 'disabled') {
      return false;
    }
  }
  return true;
}

function flagPath(u: string): string {
  return ngx.prefix + conf().dir + 'steer-' + u;
}

/**
 * Create or remove the upstream's flag file so it says whether every server is up; `why`, when
 * given, is logged with the change (another upstream's request changed a shared breaker).
 */
export function syncFlag(u: string, now: number, why?: string): void {
  const c = conf();
  const uc = c.upstreams[u];
  if (!uc) {
    return;
  }
  const d = dict();
  const steer = !allUp(d, u, uc, now);
  const p = flagPath(u);
  try {
    if (steer) {
      fs.writeFileSync(p, String(now));
      if (get(d, 'fl|' + u) !== 1) {
        d.set('fl|' + u, 1);
        ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ': steering around unavailable servers' + (why ? ' (' + why + ')' : ''));
      }
    } else {
      if (get(d, 'fl|' + u) === 1) {
        d.set('fl|' + u, 0);
        ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ': every server is up again' + (why ? ' (' + why + ')' : ''));
      }
      try {
        fs.unlinkSync(p);
      } catch (e) {
        // not there (the usual case)
      }
    }
  } catch (e) {
    ngx.log(ngx.ERR, 'gatewayctl: upstream ' + u + ': flag file ' + p + ': ' + e);
  }
  syncModelsFlag(c, d);
}

/** steer.models exists while an upstream serving a model is steered: /v1/models then lists only reachable models. */
function syncModelsFlag(c: HealthConf, d: NgxSharedDict<number>): void {
  if (c.models.length === 0) {
    return;
  }
  let any = false;
  for (let i = 0; i < c.models.length && !any; i++) {
    any = get(d, 'fl|' + c.models[i].upstream) === 1;
  }
  const p = ngx.prefix + c.dir + 'steer.models';
  try {
    if (any) {
      fs.writeFileSync(p, '1');
    } else {
      fs.unlinkSync(p);
    }
  } catch (e) {
    // not there
  }
}

/**
 * A server changes state: counted (breaker states once per record, a shared one for every
 * upstream holding it) and logged. A breaker that opens or closes has the flag file of every
 * upstream holding its record follow at once (for the others, the 1 s run would a second
 * later), so they all stop or resume sending to the server.
 */
function transition(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, i: number | string, to: string, why: string, now: number): void {
  const breaker = to === 'open' || to === 'half_open' || to === 'closed';
  d.incr(key('n', u, i, breaker ? uc : undefined) + '|' + to, 1, 0);
  const address = typeof i === 'number' ? uc.addresses[i] : i.substring(1);
  // (preload arrays have no Array.prototype methods)
  const others: string[] = (breaker && typeof i === 'number' && uc.shared && uc.shared[i]) || [];
  let shared = '';
  for (let k = 0; k < others.length; k++) {
    shared += (k === 0 ? '; its breaker is shared with upstream' + (others.length > 1 ? 's ' : ' ') : ', ') + others[k];
  }
  ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ' server ' + address + (typeof i === 'number' ? '' : ' (runtime)') + ': ' + to + ' (' + why + shared + ')');
  if (to === 'open' || to === 'closed') {
    syncFlag(u, now);
    for (let k = 0; k < others.length; k++) {
      syncFlag(others[k], now, 'the breaker of server ' + address + ', shared with upstream ' + u + ', ' + (to === 'open' ? 'opened' : 'closed') + ' through ' + u);
    }
  }
}

// ---------------------------------------------------------------------------------------
// active health checks: one js_periodic per upstream with a health check, on worker 0

function probeOne(u: string, uc: UpstreamConf, i: number | string, address: string): Promise<void> {
  const h = uc.health as HealthCheckConf;
  const d = dict();
  const started = Date.now();
  let settled = false;
  const finish = function (result: number, status: number): void {
    if (settled) {
      return;
    }
    settled = true;
    const now = Date.now();
    d.set(key('pt', u, i), now);
    d.set(key('pl', u, i), now - started);
    d.set(key('pc', u, i), status);
    d.set(key('pe', u, i), result);
    const down = get(d, key('hd', u, i)) === 1;
    if (result === 0) {
      d.set(key('ko', u, i), 0);
      const ok = d.incr(key('ok', u, i), 1, 0);
      if (down && ok >= h.rise) {
        d.set(key('hd', u, i), 0);
        transition(d, u, uc, i, 'up', ok + ' passed probes', now);
      }
    } else {
      d.set(key('ok', u, i), 0);
      const ko = d.incr(key('ko', u, i), 1, 0);
      if (!down && ko >= h.fall) {
        d.set(key('hd', u, i), 1);
        transition(d, u, uc, i, 'down', ko + ' failed probes, last: ' + probeResult(result) + (status ? ' ' + status : ''), now);
      }
    }
  };
  const timer = new Promise<void>(function (resolve) {
    setTimeout(function () {
      finish(1, 0);
      resolve();
    }, h.timeoutMs);
  });
  const fetch = ngx
    .fetch('http://' + address + h.path, { headers: { 'User-Agent': 'gatewayctl-health', Connection: 'close' } })
    .then(function (res) {
      if (h.expectBody === null && h.expectModels.length === 0) {
        finish(probeVerdict(h, res.status, ''), res.status);
        return;
      }
      return res.text().then(function (body) {
        finish(probeVerdict(h, res.status, body), res.status);
      });
    })
    .catch(function (e) {
      // the first failure of a run only: a server that refuses for an hour would otherwise add
      // this line every interval (njs's fetch logs the failed connection itself each time); the
      // transition to down says how the run ended
      if (!settled && get(d, key('ko', u, i)) === 0) {
        ngx.log(ngx.WARN, 'gatewayctl: probe of ' + address + h.path + ': ' + e + ' (not repeated until a probe passes)');
      }
      finish(1, 0);
    });
  return Promise.race([fetch, timer]);
}


export function probeResult(code: number): string {
  switch (code) {
    case 0:
      return 'passed';
    case 1:
      return 'no answer';
    case 2:
      return 'unexpected status';
    case 3:
      return 'body text missing';
    case 4:
      return 'model not listed';
    default:
      return 'unknown';
  }
}

/** One probe round of an upstream. */
export function probeUpstream(u: string): Promise<void> | void {
  const c = conf();
  const uc = c.upstreams[u];
  if (!uc || !uc.health) {
    return;
  }
  const all: Promise<void>[] = [];
  for (let i = 0; i < uc.addresses.length; i++) {
    if (uc.down[i] !== 1) {
      all.push(probeOne(u, uc, i, uc.addresses[i]));
    }
  }
  const rt = runtimeServers(u);
  for (let j = 0; j < rt.length; j++) {
    all.push(probeOne(u, uc, '@' + rt[j].address, rt[j].address));
  }
  return Promise.all(all).then(function () {
    syncFlag(u, Date.now());
  });
}

/**
 * js_periodic gateway.healthPeriodic, on worker 0. A periodic handler cannot tell which
 * location runs it, so each location says it with its `root`: "state" (every second: half-open
 * transitions, flag files match the state) or "gw-probe/<upstream>" (that upstream's probe
 * round, at its interval, with its fetch timeout).
 */
export function healthPeriodic(s: NginxPeriodicSession): Promise<void> | void {
  const root = s.variables.document_root || '';
  const at = root.lastIndexOf('/gw-probe/');
  if (at >= 0) {
    return probeUpstream(root.substring(at + 10));
  }
  healthSync();
}

/** Half-open transitions; flag files follow the state; runtime servers restored after a start. */
export function healthSync(): void {
  loadRuntime();
  const c = conf();
  const d = dict();
  const now = Date.now();
  for (let k = 0; k < c.names.length; k++) {
    const u = c.names[k];
    const uc = c.upstreams[u];
    if (uc.breaker !== null) {
      for (let i = 0; i < uc.addresses.length; i++) {
        if (peerState(d, u, uc, i, now) === 'half_open' && get(d, key('bh', u, i, uc)) !== 1) {
          d.set(key('bh', u, i, uc), 1);
          transition(d, u, uc, i, 'half_open', 'open for ' + uc.breaker.openMs / 1000 + 's, trials allowed', now);
        }
      }
      const rt = runtimeServers(u);
      for (let j = 0; j < rt.length; j++) {
        const id = '@' + rt[j].address;
        if (runtimeState(d, u, uc, rt[j], now) === 'half_open' && get(d, key('bh', u, id, uc)) !== 1) {
          d.set(key('bh', u, id, uc), 1);
          transition(d, u, uc, id, 'half_open', 'open for ' + uc.breaker.openMs / 1000 + 's, trials allowed', now);
        }
      }
    }
    syncFlag(u, now);
  }
}

// ---------------------------------------------------------------------------------------
// steering: js_set $gw_steer_peer (only in the steer locations)

/** Seconds until a server of the upstream may take requests again (Retry-After), at least 1. */
export function retryAfter(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, now: number): number {
  let best = -1;
  for (let i = 0; i < uc.addresses.length; i++) {
    let at = -1;
    const s = peerState(d, u, uc, i, now);
    if (s === 'open') {
      at = get(d, key('bo', u, i, uc)) + (uc.breaker as BreakerConf).openMs;
    } else if (s === 'down' && uc.health) {
      at = now + uc.health.intervalMs * uc.health.rise;
    } else if (s === 'half_open' || s === 'up') {
      at = now + 1000;
    }
    if (at >= 0 && (best < 0 || at < best)) {
      best = at;
    }
  }
  return best < 0 ? 60 : Math.max(1, Math.ceil((best - now) / 1000));
}

/**
 * May server i take this request? `peek` answers without side effects (a half-open server
 * with a trial place left counts); `take` is asked for the server actually picked and takes
 * the trial place (bounded by half_open_requests), marking the request a trial.
 */
function usableFor(
  r: NginxHTTPRequest,
  d: NgxSharedDict<number>,
  u: string,
  uc: UpstreamConf,
  now: number,
  stateOf: (i: number) => string,
  idOf: (i: number) => number | string,
): { peek: (i: number) => boolean; take: (i: number) => boolean } {
  const peek = function (i: number): boolean {
    const s = stateOf(i);
    if (s === 'up') {
      return true;
    }
    if (s !== 'half_open') {
      return false;
    }
    const b = uc.breaker as BreakerConf;
    const id = idOf(i);
    if (get(d, key('bt', u, id, uc)) < b.halfOpen) {
      return true;
    }
    // trials that never reported (a client gone, a reload) free their places after open_for
    if (now - get(d, key('bq', u, id, uc)) > b.openMs) {
      d.set(key('bt', u, id, uc), 0);
      return true;
    }
    return false;
  };
  const take = function (i: number): boolean {
    if (stateOf(i) !== 'half_open') {
      return true;
    }
    const id = idOf(i);
    if (d.incr(key('bt', u, id, uc), 1, 0) <= (uc.breaker as BreakerConf).halfOpen) {
      d.set(key('bq', u, id, uc), now);
      r.variables.gw_health_trial = 'T';
      return true;
    }
    return false; // another worker took the last place meanwhile
  };
  return { peek: peek, take: take };
}

// The fast path of steerPeer (src/njs/bundle.ts, hasFastPath) for an upstream its map entry
// describes ($gw_steer_fast, src/features/health/render.ts steerFastMap: round robin over equal
// weights, no server down in gateway.yaml): each server's state read straight from the dict (a
// shared breaker record under its record's key), in peerState's order, and the pick weightedPick makes, without the
// preload object or a closure. A half-open server (its trial place), runtime servers or no
// usable server at all: the full pick decides (and counts the turn) instead.
export function steerPeerFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest) => string): string {
  const spec = r.variables.gw_steer_fast;
  if (!spec) {
    return full(r);
  }
  // "<upstream>|<flags>|<open_for ms>|<weight>|<peer> <peer> …[|<record> <record> …]"
  const a = spec.indexOf('|');
  const b = spec.indexOf('|', a + 1);
  const c = spec.indexOf('|', b + 1);
  const e = spec.indexOf('|', c + 1);
  const u = spec.substring(0, a);
  const flags = spec.substring(a + 1, b);
  const sh = ngx.shared;
  if (flags.indexOf('a') >= 0) {
    const rt = (sh[RUNTIME_ZONE] as NgxSharedDict<string>).get('rt|' + u);
    if (typeof rt === 'string' && rt !== '') {
      return full(r);
    }
  }
  const d = sh[ZONE] as NgxSharedDict<number>;
  const health = flags.indexOf('h') >= 0;
  const breaker = flags.indexOf('b') >= 0;
  const f = spec.indexOf('|', e + 1);
  const peers = (f < 0 ? spec.substring(e + 1) : spec.substring(e + 1, f)).split(' ');
  // each server's breaker record where some are shared ("<upstream>|<index>"), else its own
  const recs = f < 0 ? null : spec.substring(f + 1).split(' ');
  const ok: number[] = [];
  let now = 0; // the clock and open_for, read once a breaker is found open
  let openMs = 0;
  for (let i = 0; i < peers.length; i++) {
    const k = '|' + u + '|' + i;
    if (d.get('dr' + k) === 1 || (health && d.get('hd' + k) === 1)) {
      continue; // draining, or down by its health check
    }
    const bk = recs === null ? k : '|' + recs[i];
    if (breaker && d.get('bs' + bk) === 1) {
      if (now === 0) {
        now = Date.now();
        openMs = +spec.substring(b + 1, c);
      }
      const at = d.get('bo' + bk);
      if (now >= (typeof at === 'number' ? at : 0) + openMs) {
        return full(r); // half-open: the full pick hands out the trial places
      }
      continue; // open
    }
    ok.push(i);
  }
  if (ok.length === 0) {
    return full(r);
  }
  // weightedPick over equal weights w: the (turn mod w·m)-th slot, w slots a server
  const w = +spec.substring(c + 1, e);
  const pos = d.incr('rr|' + u, 1, 0) % (w * ok.length);
  return peers[ok[(pos - (pos % w)) / w]];
}

export function steerPeer(r: NginxHTTPRequest): string {
  const c = conf();
  const u = r.variables.gw_steer_upstream || '';
  const uc = c.upstreams[u];
  if (!uc) {
    return '';
  }
  const d = dict();
  const now = Date.now();
  const n = uc.addresses.length;
  // the configured servers (0 … n-1), then the runtime ones
  const rt = runtimeServers(u);
  const usable = usableFor(
    r,
    d,
    u,
    uc,
    now,
    function (j: number): string {
      return j < n ? peerState(d, u, uc, j, now) : runtimeState(d, u, uc, rt[j - n], now);
    },
    function (j: number): number | string {
      return j < n ? j : '@' + rt[j - n].address;
    },
  );
  let i = -1;
  if (uc.balance === 'consistent_hash') {
    const raw = r.rawVariables[uc.hashVar];
    const bytes = raw ? raw : Buffer.from('');
    // the build-time ring, with the points of the active runtime servers added as nginx would
    // place them listed after the configured ones (draining ones have left the ring)
    const pts: string[] = [];
    const who: number[] = [];
    for (let j = 0; j < rt.length; j++) {
      if (rt[j].state === 'active') {
        pts.push(runtimePoints(u, rt[j]));
        who.push(n + j);
      }
    }
    // ring order: the first server that may take it (and, half-open, gets its trial place)
    i = ringPickWith(uc.ring, uc.owners, pts, who, n + rt.length, crc32(c.crc, bytes), function (j: number): boolean {
      return usable.peek(j) && usable.take(j);
    });
  } else {
    // the configured servers, then the runtime servers serving this request's model
    const weights: number[] = [];
    for (let j = 0; j < n; j++) {
      weights.push(uc.weights[j]);
    }
    for (let j = 0; j < rt.length; j++) {
      weights.push(rt[j].weight);
    }
    const model = rt.length ? r.variables.gw_model || '' : '';
    const lost: { [j: number]: number } = {};
    const all = function (j: number): boolean {
      if (lost[j] === 1) {
        return false;
      }
      if (j >= n && rt[j - n].models.length > 0 && indexIn(rt[j - n].models, model) < 0) {
        return false;
      }
      return usable.peek(j);
    };
    const turn = uc.balance === 'ip_hash' ? crc32(c.crc, Buffer.from(r.variables.remote_addr || '')) : d.incr('rr|' + u, 1, 0);
    // pick among the servers that may take it; a half-open pick whose trial place went to
    // another worker meanwhile is dropped and the pick repeated
    for (let tries = 0; tries <= n; tries++) {
      i = weightedPick(weights, turn, all);
      if (i < 0 || usable.take(i)) {
        break;
      }
      lost[i] = 1;
      i = -1;
    }
  }
  if (i < 0) {
    r.variables.gw_retry_after = String(retryAfter(d, u, uc, now));
    return '';
  }
  if (i >= n) {
    return rt[i - n].address; // proxy_pass http://<address>: no upstream block, no keepalive
  }
  return uc.peers[i];
}

// ---------------------------------------------------------------------------------------
// runtime servers (admin_api): the string dict gw_state_s holds "rt|<upstream>" → JSON list
// (and, on consistent-hash upstreams, "rp|<upstream>|<address>|<weight>" → its ring points),
// written through to <prefix>/state/runtime.json (loaded once after a start by the 1 s run)

export interface RuntimeServer {
  address: string;
  weight: number;
  models: string[];
  state: string; // active | draining
  added_at: string;
}

const RUNTIME_ZONE = 'gw_state_s';

/**
 * A runtime server's ring points (sorted), made once and kept in the runtime dict (they
 * depend on its address and weight only); made anew when the dict cannot hold them.
 */
function runtimePoints(u: string, e: RuntimeServer): string {
  const sd = runtimeDict() as NgxSharedDict<string>;
  const k = 'rp|' + u + '|' + e.address + '|' + e.weight;
  const v = sd.get(k);
  if (typeof v === 'string' && v !== '') {
    return v;
  }
  const pts = sortedPoints(serverPoints(conf().crc, e.address, e.weight));
  try {
    sd.set(k, pts);
  } catch (err) {
    // the dict is full: made on each request meanwhile
  }
  return pts;
}

/** 'up', 'draining' or 'down' (its health check took it out) */
export function runtimeState(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, e: RuntimeServer, now: number): string {
  if (e.state !== 'active') {
    return 'draining';
  }
  const id = '@' + e.address;
  if (uc.health !== null && get(d, key('hd', u, id)) === 1) {
    return 'down';
  }
  if (uc.breaker !== null && get(d, key('bs', u, id, uc)) === 1) {
    return now >= get(d, key('bo', u, id, uc)) + uc.breaker.openMs ? 'half_open' : 'open';
  }
  return 'up';
}

function runtimeDict(): NgxSharedDict<string> | null {
  return conf().admin !== '' ? (ngx.shared[RUNTIME_ZONE] as NgxSharedDict<string>) : null;
}

export function runtimeServers(u: string): RuntimeServer[] {
  const sd = runtimeDict();
  if (sd === null) {
    return [];
  }
  const v = sd.get('rt|' + u);
  if (typeof v !== 'string' || v === '') {
    return [];
  }
  try {
    return JSON.parse(v) as RuntimeServer[];
  } catch (e) {
    return [];
  }
}

function runtimePath(): string {
  return ngx.prefix + conf().dir + 'runtime.json';
}

/** The runtime servers and drained configured servers of every upstream, as persisted. */
function runtimeSnapshot(): { upstreams: { [u: string]: RuntimeServer[] }; drained: { [u: string]: string[] } } {
  const c = conf();
  const d = dict();
  const ups: { [u: string]: RuntimeServer[] } = {};
  const drained: { [u: string]: string[] } = {};
  for (let k = 0; k < c.names.length; k++) {
    const u = c.names[k];
    const rt = runtimeServers(u);
    if (rt.length) {
      ups[u] = rt;
    }
    const uc = c.upstreams[u];
    const dr: string[] = [];
    for (let i = 0; i < uc.addresses.length; i++) {
      if (get(d, key('dr', u, i)) === 1) {
        dr.push(uc.addresses[i]);
      }
    }
    if (dr.length) {
      drained[u] = dr;
    }
  }
  return { upstreams: ups, drained: drained };
}

/** Write the runtime state to disk (temporary file + rename); false when it could not. */
function persistRuntime(): boolean {
  const p = runtimePath();
  try {
    fs.writeFileSync(p + '.tmp', JSON.stringify(runtimeSnapshot()) + '\n');
    fs.renameSync(p + '.tmp', p);
    return true;
  } catch (e) {
    ngx.log(ngx.ERR, 'gatewayctl: admin API: cannot write ' + p + ': ' + e);
    return false;
  }
}

/** After a start (the dict is empty), the persisted runtime state comes back; once. */
export function loadRuntime(): void {
  const sd = runtimeDict();
  if (sd === null || sd.get('loaded') === '1') {
    return;
  }
  const c = conf();
  const d = dict();
  let doc: { upstreams?: { [u: string]: RuntimeServer[] }; drained?: { [u: string]: string[] } } = {};
  try {
    doc = JSON.parse(fs.readFileSync(runtimePath(), 'utf8') as string);
  } catch (e) {
    doc = {};
  }
  for (let k = 0; k < c.names.length; k++) {
    const u = c.names[k];
    const uc = c.upstreams[u];
    const rt = doc.upstreams && doc.upstreams[u];
    if (rt && rt.length) {
      sd.set('rt|' + u, JSON.stringify(rt));
      ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ': ' + rt.length + ' runtime server(s) restored from ' + runtimePath());
    }
    const dr = doc.drained && doc.drained[u];
    if (dr) {
      for (let j = 0; j < dr.length; j++) {
        const i = indexIn(uc.addresses, dr[j]);
        if (i >= 0) {
          d.set(key('dr', u, i), 1);
        }
      }
    }
  }
  sd.set('loaded', '1');
}

function adminReply(r: NginxHTTPRequest, status: number, body: unknown): void {
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  r.return(status, JSON.stringify(body) + '\n');
}

function adminError(r: NginxHTTPRequest, status: number, code: string, message: string, field: string | null): void {
  const e: { [k: string]: unknown } = { code: code, message: message };
  if (field !== null) {
    e.field = field;
  }
  adminReply(r, status, { error: e });
}

const ADDRESS_RE = /^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}|\[[0-9A-Fa-f:.]+\]):([1-9][0-9]{0,4})$/;
const MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._:\/@+-]{0,99}$/;

/** A runtime server from a request body, or the first offending field. */
export function parseServer(text: string): { server: RuntimeServer | null; field: string; message: string } {
  let doc: { [k: string]: unknown };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { server: null, field: 'body', message: 'the body must be a JSON object' };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return { server: null, field: 'body', message: 'the body must be a JSON object' };
  }
  const keys = Object.keys(doc);
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] !== 'address' && keys[i] !== 'weight' && keys[i] !== 'models') {
      return { server: null, field: keys[i], message: 'unknown field (address, weight, models)' };
    }
  }
  const address = doc.address;
  const m = typeof address === 'string' ? ADDRESS_RE.exec(address) : null;
  if (m === null || parseInt(m[5], 10) > 65535) {
    return { server: null, field: 'address', message: 'an IP address and port, e.g. 10.0.0.5:8000 or [::1]:8000' };
  }
  let weight = 1;
  if (doc.weight !== undefined) {
    if (typeof doc.weight !== 'number' || doc.weight !== Math.floor(doc.weight) || doc.weight < 1 || doc.weight > 1000) {
      return { server: null, field: 'weight', message: 'an integer from 1 to 1000' };
    }
    weight = doc.weight;
  }
  const models: string[] = [];
  if (doc.models !== undefined) {
    const ms = doc.models;
    if (!Array.isArray(ms) || ms.length > 50) {
      return { server: null, field: 'models', message: 'a list of at most 50 model ids' };
    }
    for (let i = 0; i < ms.length; i++) {
      if (typeof ms[i] !== 'string' || !MODEL_RE.test(ms[i])) {
        return { server: null, field: 'models[' + i + ']', message: 'a model id' };
      }
      models.push(ms[i]);
    }
  }
  return { server: { address: address as string, weight: weight, models: models, state: 'active', added_at: '' }, field: '', message: '' };
}

function serverList(u: string, uc: UpstreamConf, now: number): unknown[] {
  const d = dict();
  const out: unknown[] = [];
  for (let i = 0; i < uc.addresses.length; i++) {
    out.push({ address: uc.addresses[i], weight: uc.weights[i], state: peerState(d, u, uc, i, now), runtime: false, models: null });
  }
  const rt = runtimeServers(u);
  for (let j = 0; j < rt.length; j++) {
    out.push({ address: rt[j].address, weight: rt[j].weight, state: runtimeState(d, u, uc, rt[j], now), runtime: true, models: rt[j].models, added_at: rt[j].added_at });
  }
  return out;
}

/**
 * The admin API (status listener, loopback only, bearer token):
 *   GET    /admin/upstreams/<u>/servers                  configured and runtime servers
 *   POST   /admin/upstreams/<u>/servers                  {"address","weight"?,"models"?} → 201
 *   POST   /admin/upstreams/<u>/servers/<address>/drain  no new requests
 *   DELETE /admin/upstreams/<u>/servers/<address>        a runtime server
 * Changes apply to the next request (no reload) and are written to state/runtime.json first
 * (nothing changes when that fails).
 */
export function healthAdmin(r: NginxHTTPRequest): void {
  const c = conf();
  if (c.admin === '') {
    adminError(r, 404, 'not_found', 'the admin API is off (admin_api: in gateway.yaml)', null);
    return;
  }
  const auth = r.headersIn.Authorization || '';
  if (auth.indexOf('Bearer ') !== 0) {
    r.headersOut['WWW-Authenticate'] = 'Bearer';
    adminError(r, 401, 'unauthorized', 'send Authorization: Bearer <admin token>', null);
    return;
  }
  if (cr.createHash('sha256').update(auth.substring(7)).digest('hex') !== c.admin) {
    adminError(r, 403, 'forbidden', 'wrong admin token', null);
    return;
  }
  const parts = r.uri.split('/');
  const u = parts[3] || '';
  const uc = c.upstreams[u];
  if (parts[4] !== 'servers' || !uc || typeof uc !== 'object') {
    adminError(r, 404, 'not_found', 'no upstream with a health check or breaker named ' + JSON.stringify(u), 'upstream');
    return;
  }
  const now = Date.now();
  const addr = parts[5] || '';
  const sd = runtimeDict() as NgxSharedDict<string>;
  const d = dict();
  const rt = runtimeServers(u);
  const rtAt = function (a: string): number {
    for (let j = 0; j < rt.length; j++) {
      if (rt[j].address === a) {
        return j;
      }
    }
    return -1;
  };
  const commit = function (status: number, body: unknown, undo: () => void): void {
    if (!persistRuntime()) {
      undo();
      adminError(r, 500, 'not_persisted', 'the change could not be written to ' + runtimePath() + '; nothing changed', null);
      return;
    }
    syncFlag(u, now);
    adminReply(r, status, body);
  };
  const before = sd.get('rt|' + u) || '';
  const restore = function (): void {
    sd.set('rt|' + u, before);
  };
  if (addr === '' && r.method === 'GET') {
    adminReply(r, 200, { upstream: u, servers: serverList(u, uc, now) });
    return;
  }
  if (addr === '' && r.method === 'POST') {
    const p = parseServer(r.requestText || '');
    if (p.server === null) {
      adminError(r, 400, 'invalid_field', p.message, p.field);
      return;
    }
    const sv = p.server;
    if (uc.balance === 'consistent_hash' && sv.models.length > 0) {
      // one ring places every key whatever its model: a server serving some models only
      // would make a key's place depend on the model
      adminError(r, 400, 'invalid_field', 'upstream ' + u + ' hashes consistently: a runtime server there takes every model (its ring places keys, not models); drop models', 'models');
      return;
    }
    if (uc.balance === 'consistent_hash' && sv.weight > 20) {
      // its 160 ring points per weight unit are read on each steered request
      adminError(r, 400, 'invalid_field', 'on a consistent-hash upstream an integer from 1 to 20', 'weight');
      return;
    }
    if (indexIn(uc.addresses, sv.address) >= 0 || rtAt(sv.address) >= 0) {
      adminError(r, 409, 'exists', sv.address + ' is already a server of ' + u, 'address');
      return;
    }
    sv.added_at = new Date(now).toISOString();
    const kinds = ['hd', 'ok', 'ko', 'pt', 'pe', 'pc', 'pl', 'bs', 'bo', 'bf', 'bw', 'bt', 'bq', 'bh'];
    for (let k = 0; k < kinds.length; k++) {
      d.delete(key(kinds[k], u, '@' + sv.address)); // a server added again starts afresh
    }
    rt.push(sv);
    sd.set('rt|' + u, JSON.stringify(rt));
    ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ': runtime server ' + sv.address + ' added (weight ' + sv.weight + ')');
    commit(201, { upstream: u, server: sv }, restore);
    return;
  }
  if (addr !== '' && parts[6] === 'drain' && parts.length === 7 && r.method === 'POST') {
    const i = indexIn(uc.addresses, addr);
    const j = rtAt(addr);
    if (i < 0 && j < 0) {
      adminError(r, 404, 'not_found', addr + ' is not a server of ' + u, 'address');
      return;
    }
    if (i >= 0) {
      d.set(key('dr', u, i), 1);
    } else {
      rt[j].state = 'draining';
      sd.set('rt|' + u, JSON.stringify(rt));
    }
    ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ': server ' + addr + ' draining');
    commit(200, { upstream: u, address: addr, state: 'draining' }, function () {
      restore();
      if (i >= 0) {
        d.set(key('dr', u, i), 0);
      }
    });
    return;
  }
  if (addr !== '' && parts.length === 6 && r.method === 'DELETE') {
    const j = rtAt(addr);
    if (j < 0) {
      adminError(
        r,
        indexIn(uc.addresses, addr) >= 0 ? 409 : 404,
        indexIn(uc.addresses, addr) >= 0 ? 'configured' : 'not_found',
        indexIn(uc.addresses, addr) >= 0 ? addr + ' is in gateway.yaml: drain it, or remove it there' : addr + ' is not a server of ' + u,
        'address',
      );
      return;
    }
    sd.delete('rp|' + u + '|' + addr + '|' + rt[j].weight); // its ring points (consistent hash)
    rt.splice(j, 1);
    sd.set('rt|' + u, JSON.stringify(rt));
    ngx.log(ngx.WARN, 'gatewayctl: upstream ' + u + ': runtime server ' + addr + ' removed');
    commit(200, { upstream: u, address: addr, removed: true }, restore);
    return;
  }
  adminError(r, 405, 'method_not_allowed', r.method + ' ' + r.uri + ' is not an admin API call', null);
}

// ---------------------------------------------------------------------------------------
// breaker: failures of proxied requests, counted in the log phase of failing requests only

/**
 * The configured server a try went to: its address in the upstream the request was proxied to
 * last ($proxy_host: the upstream, or a per-server block gw_peer_<upstream>_<i>, whose backups
 * are the upstream's other servers); null for an address that upstream does not list (a runtime
 * server, or a try of an earlier stage of a fallback chain, see healthRecord).
 */
function serverIndex(c: HealthConf, host: string, addr: string): { u: string; i: number } | null {
  let u = c.upstreams[host] ? host : '';
  for (let k = 0; k < c.names.length && u === ''; k++) {
    if (indexIn(c.upstreams[c.names[k]].peers, host) >= 0) {
      u = c.names[k];
    }
  }
  const i = u === '' ? -1 : indexIn(c.upstreams[u].addresses, addr);
  return i >= 0 ? { u: u, i: i } : null;
}

/** Count one try of a proxied request for the breaker of its server. */
export function recordTry(d: NgxSharedDict<number>, u: string, uc: UpstreamConf, i: number | string, failed: boolean, trial: boolean, now: number): void {
  const b = uc.breaker;
  if (b === null) {
    return;
  }
  const open = get(d, key('bs', u, i, uc)) === 1;
  if (open && trial) {
    if (failed) {
      d.set(key('bo', u, i, uc), now);
      d.set(key('bt', u, i, uc), 0);
      d.set(key('bh', u, i, uc), 0);
      transition(d, u, uc, i, 'open', 'a half-open trial failed', now);
    } else {
      d.set(key('bs', u, i, uc), 0);
      d.set(key('bf', u, i, uc), 0);
      d.set(key('bt', u, i, uc), 0);
      d.set(key('bh', u, i, uc), 0);
      transition(d, u, uc, i, 'closed', 'a half-open trial succeeded', now);
    }
    return;
  }
  if (!failed || open) {
    return;
  }
  if (now - get(d, key('bw', u, i, uc)) > b.windowMs) {
    d.set(key('bw', u, i, uc), now);
    d.set(key('bf', u, i, uc), 0);
  }
  if (d.incr(key('bf', u, i, uc), 1, 0) >= b.failures && get(d, key('bs', u, i, uc)) !== 1) {
    d.set(key('bs', u, i, uc), 1);
    d.set(key('bo', u, i, uc), now);
    d.set(key('bt', u, i, uc), 0);
    d.set(key('bh', u, i, uc), 0);
    transition(d, u, uc, i, 'open', b.failures + ' failures within ' + b.windowMs / 1000 + 's', now);
  }
}

// $gw_health_in: "$proxy_host|$upstream_addr|$upstream_status|$gw_health_trial|$gw_route".
// $proxy_host is empty after an error page (a refused connection's 502): the route's upstream
// (or, on model routes, the model's) names it then.
export function healthRecord(r: NginxHTTPRequest): void {
  const c = conf();
  const p = (r.variables.gw_health_in || '').split('|');
  if (p.length < 5) {
    return;
  }
  const d = dict();
  const now = Date.now();
  const tries = upstreamTries(p[1], p[2]);
  let host = p[0];
  if (host === '') {
    const ru = c.routes[p[4]];
    if (typeof ru === 'string') {
      host = ru === '' ? r.variables.gw_model_upstream || '' : ru;
    }
  }
  const steered = r.variables.gw_steer_upstream || '';
  // a model route: its request may have gone through several pools (a fallback chain)
  const chained = c.routes[p[4]] === '';
  for (let t = 0; t < tries.length; t++) {
    let at: { u: string; i: number | string } | null = serverIndex(c, host, tries[t].addr);
    if (at === null && steered !== '' && c.upstreams[steered]) {
      // a runtime server (only steer locations reach them)
      const rt = runtimeServers(steered);
      for (let j = 0; j < rt.length && at === null; j++) {
        if (rt[j].address === tries[t].addr) {
          at = { u: steered, i: '@' + rt[j].address };
        }
      }
    }
    for (let k = 0; k < c.names.length && at === null && chained; k++) {
      // a try of an earlier stage of a fallback chain (another pool): the upstream with a breaker
      // listing the address, when one does or all that do share its record (else not counted)
      const v = c.names[k];
      const vc = c.upstreams[v];
      const i = vc.breaker === null ? -1 : indexIn(vc.addresses, tries[t].addr);
      for (let w = k + 1; w < c.names.length && i >= 0; w++) {
        const wc = c.upstreams[c.names[w]];
        const j = wc.breaker === null ? -1 : indexIn(wc.addresses, tries[t].addr);
        if (j >= 0 && key('', c.names[w], j, wc) !== key('', v, i, vc)) {
          k = c.names.length; // ambiguous
          break;
        }
      }
      if (i >= 0 && k < c.names.length) {
        at = { u: v, i: i };
      }
    }
    if (at === null) {
      continue;
    }
    const uc = c.upstreams[at.u];
    const failed = uc.breaker !== null && indexIn(uc.breaker.on, tries[t].status) >= 0;
    recordTry(d, at.u, uc, at.i, failed, p[3] === 'T' && t === tries.length - 1, now);
  }
}

// js_set $gw_health_log, read by the access log of failing requests and trials only: records, returns ""
export function healthLog(r: NginxHTTPRequest): string {
  try {
    healthRecord(r);
  } catch (e) {
    ngx.log(ngx.ERR, 'gatewayctl: breaker: ' + e);
  }
  return '';
}

// ---------------------------------------------------------------------------------------
// status

/** The other upstreams holding server i's breaker record, as a plain array. */
function sharedWith(uc: UpstreamConf, i: number): string[] {
  const out: string[] = [];
  const s = uc.shared ? uc.shared[i] : undefined;
  for (let k = 0; s && k < s.length; k++) {
    out.push(s[k]);
  }
  return out;
}

export function upstreamsStatus(now: number): unknown[] {
  const c = conf();
  const d = dict();
  const out: unknown[] = [];
  for (let k = 0; k < c.names.length; k++) {
    const u = c.names[k];
    const uc = c.upstreams[u];
    const peers: unknown[] = [];
    let usable = 0;
    let total = 0;
    for (let i = 0; i < uc.addresses.length; i++) {
      const s = peerState(d, u, uc, i, now);
      if (s !== 'disabled') {
        total++;
      }
      if (s === 'up') {
        usable++;
      } else if (s === 'half_open') {
        usable += 0.5; // usable for trials, not up
      }
      const pt = get(d, key('pt', u, i));
      peers.push({
        address: uc.addresses[i],
        weight: uc.weights[i],
        state: s,
        health:
          uc.health === null
            ? null
            : {
                status: uc.down[i] === 1 ? 'disabled' : get(d, key('hd', u, i)) === 1 ? 'down' : pt ? 'up' : 'unknown',
                passes: get(d, key('ok', u, i)),
                failures: get(d, key('ko', u, i)),
                last_probe:
                  pt === 0
                    ? null
                    : {
                        at: new Date(pt).toISOString(),
                        result: probeResult(get(d, key('pe', u, i))),
                        status: get(d, key('pc', u, i)) || null,
                        latency_ms: get(d, key('pl', u, i)),
                      },
              },
        breaker:
          uc.breaker === null
            ? null
            : {
                state: breakerState(d, u, uc, i, now),
                failures_in_window: get(d, key('bf', u, i, uc)),
                opened_at: get(d, key('bs', u, i, uc)) === 1 ? new Date(get(d, key('bo', u, i, uc))).toISOString() : null,
                retry_after_s: breakerState(d, u, uc, i, now) === 'open' ? Math.max(1, Math.ceil((get(d, key('bo', u, i, uc)) + uc.breaker.openMs - now) / 1000)) : null,
                shared_with: sharedWith(uc, i),
              },
        in_flight: null,
        runtime: false,
      });
    }
    const rt = runtimeServers(u);
    for (let j = 0; j < rt.length; j++) {
      total++;
      const rs = runtimeState(d, u, uc, rt[j], now);
      if (rs === 'up') {
        usable++;
      }
      const id = '@' + rt[j].address;
      const rpt = get(d, key('pt', u, id));
      peers.push({
        address: rt[j].address,
        weight: rt[j].weight,
        state: rs,
        health:
          uc.health === null
            ? null
            : {
                status: get(d, key('hd', u, id)) === 1 ? 'down' : rpt ? 'up' : 'unknown',
                passes: get(d, key('ok', u, id)),
                failures: get(d, key('ko', u, id)),
                last_probe: rpt === 0 ? null : { at: new Date(rpt).toISOString(), result: probeResult(get(d, key('pe', u, id))), status: get(d, key('pc', u, id)) || null, latency_ms: get(d, key('pl', u, id)) },
              },
        breaker:
          uc.breaker === null
            ? null
            : {
                state: breakerState(d, u, uc, id, now),
                failures_in_window: get(d, key('bf', u, id, uc)),
                opened_at: get(d, key('bs', u, id, uc)) === 1 ? new Date(get(d, key('bo', u, id, uc))).toISOString() : null,
                retry_after_s: breakerState(d, u, uc, id, now) === 'open' ? Math.max(1, Math.ceil((get(d, key('bo', u, id, uc)) + uc.breaker.openMs - now) / 1000)) : null,
                shared_with: [],
              },
        in_flight: null,
        runtime: true,
        models: rt[j].models,
        added_at: rt[j].added_at,
      });
    }
    out.push({
      name: u,
      balance: uc.balance,
      state: usable === 0 ? 'down' : usable === total ? 'up' : 'degraded',
      steered: get(d, 'fl|' + u) === 1,
      health_check: uc.health === null ? null : { path: uc.health.path, interval_ms: uc.health.intervalMs, timeout_ms: uc.health.timeoutMs, rise: uc.health.rise, fall: uc.health.fall },
      circuit_breaker:
        uc.breaker === null ? null : { failures: uc.breaker.failures, window_ms: uc.breaker.windowMs, open_ms: uc.breaker.openMs, half_open_requests: uc.breaker.halfOpen },
      peers: peers,
    });
  }
  return out;
}

/**
 * js_content gateway.healthAnswer: the state plane's answers, by `set $gw_health_answer`:
 * status (/admin/status), cluster (cluster_status), models (a steered /v1/models),
 * unavailable (a steered route without a usable server).
 */
export function healthAnswer(r: NginxHTTPRequest): void {
  switch (r.variables.gw_health_answer) {
    case 'status':
      healthStatus(r);
      return;
    case 'cluster':
      healthCluster(r);
      return;
    case 'models':
      healthModels(r);
      return;
    case 'admin':
      healthAdmin(r);
      return;
    default:
      healthUnavailable(r);
  }
}

// /admin/status on the status listener
export function healthStatus(r: NginxHTTPRequest): void {
  const now = Date.now();
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  r.return(200, JSON.stringify({ time: new Date(now).toISOString(), upstreams: upstreamsStatus(now) }) + '\n');
}

// cluster_status (a listener of the user's choice): no addresses, no settings
export function healthCluster(r: NginxHTTPRequest): void {
  const c = conf();
  const d = dict();
  const now = Date.now();
  const ups: unknown[] = [];
  let usableAll = 0;
  for (let k = 0; k < c.names.length; k++) {
    const u = c.names[k];
    const uc = c.upstreams[u];
    let up = 0;
    let total = 0;
    for (let i = 0; i < uc.addresses.length; i++) {
      const s = peerState(d, u, uc, i, now);
      if (s !== 'disabled') {
        total++;
      }
      if (s === 'up' || s === 'half_open') {
        up++;
      }
    }
    if (up === total) {
      usableAll++;
    }
    ups.push({ name: u, status: up === 0 ? 'down' : up === total ? 'ok' : 'degraded', servers: { up: up, total: total } });
  }
  const models: unknown[] = [];
  for (let i = 0; i < c.models.length; i++) {
    const e = c.models[i];
    models.push({ id: e.id, status: upstreamAvailable(d, e.upstream, now) ? 'available' : 'unavailable' });
  }
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  const status = usableAll === c.names.length ? 'ok' : 'degraded';
  r.return(200, JSON.stringify({ object: 'cluster.status', status: status, time: new Date(now).toISOString(), upstreams: ups, models: models }) + '\n');
}

/** Is any server of the upstream usable (up, or half-open)? Upstreams without state are. */
export function upstreamAvailable(d: NgxSharedDict<number>, u: string, now: number): boolean {
  const uc = conf().upstreams[u];
  if (!uc) {
    return true;
  }
  for (let i = 0; i < uc.addresses.length; i++) {
    const s = peerState(d, u, uc, i, now);
    if (s === 'up' || s === 'half_open') {
      return true;
    }
  }
  const rt = runtimeServers(u);
  for (let j = 0; j < rt.length; j++) {
    if (runtimeState(d, u, uc, rt[j], now) === 'up') {
      return true;
    }
  }
  return false;
}

// a `models: list` route while an upstream is steered: the models one can reach
export function healthModels(r: NginxHTTPRequest): void {
  const c = conf();
  const d = dict();
  const now = Date.now();
  const data: unknown[] = [];
  for (let i = 0; i < c.models.length; i++) {
    const e = c.models[i];
    if (upstreamAvailable(d, e.upstream, now)) {
      data.push({ id: e.id, object: 'model', created: e.created, owned_by: e.owned_by });
    }
  }
  r.headersOut['Content-Type'] = 'application/json';
  r.return(200, JSON.stringify({ object: 'list', data: data }));
}

/** The OpenAI-style body of a model route's 503 (every server of the model's upstream down). */
export function modelUnavailableBody(model: string): string {
  const m = model.length > 200 ? model.substring(0, 200) + ' (truncated)' : model;
  return openAiError('The model `' + m + '` is currently unavailable: none of its servers is up. Retry later.', 'server_error', 'model_unavailable', 'model');
}

// @…_steer_503: no server of the upstream can take the request (all down or open)
export function healthUnavailable(r: NginxHTTPRequest): void {
  const v = r.variables;
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  const retry = v.gw_retry_after || '';
  if (retry === '') {
    // a 503 the gateway made for another reason on this route
    r.return(503, JSON.stringify({ error: { status: 503, code: 'service_unavailable', message: 'service unavailable' }, request_id: v.gw_request_id || '' }) + '\n');
    return;
  }
  r.headersOut['Retry-After'] = retry;
  const model = v.gw_model || '';
  const body =
    model !== ''
      ? modelUnavailableBody(model)
      : JSON.stringify({
          error: { status: 503, code: 'upstream_unavailable', message: 'no server of upstream ' + (v.gw_steer_upstream || '') + ' is available (health check or circuit breaker)' },
          request_id: v.gw_request_id || '',
        });
  r.return(503, body + '\n');
}

/** metrics.ts's log-phase call records the breaker's failures in the same call (one njs call per phase). */
export function healthRecordIfFailed(r: NginxHTTPRequest): void {
  // the failure map first: most requests did not fail, and the first read of the preload object
  // in a request costs about as much as the rest of the call (without breakers the variable does
  // not exist and reads as undefined)
  if (r.variables.gw_health_fail !== '1' || typeof gw_health_conf === 'undefined' || gw_health_conf.breakers !== 1) {
    return;
  }
  try {
    healthRecord(r);
  } catch (e) {
    ngx.log(ngx.ERR, 'gatewayctl: breaker: ' + e);
  }
}

// ---------------------------------------------------------------------------------------
// metrics (the metrics feature's /metrics appends these families)

// Both families are declared even with no health check nor breaker configured (no samples), so
// a dashboard's queries name families every gateway exports; declared here only, once each.
export function healthMetricLines(now: number): string[] {
  const c = conf();
  const out: string[] = [];
  out.push('# HELP gatewayctl_upstream_peer_state Server state by upstream and server (1 for the current state).');
  out.push('# TYPE gatewayctl_upstream_peer_state gauge');
  const trans: string[] = [];
  const d = dict(); // undefined without the zone: then the loop below does not run
  const states = ['up', 'down', 'open', 'half_open', 'draining', 'disabled'];
  for (let k = 0; k < c.names.length; k++) {
    const u = c.names[k];
    const uc = c.upstreams[u];
    for (let i = 0; i < uc.addresses.length; i++) {
      const s = peerState(d, u, uc, i, now);
      const l = 'upstream="' + u + '",peer="' + uc.addresses[i] + '"';
      for (let j = 0; j < states.length; j++) {
        out.push('gatewayctl_upstream_peer_state{' + l + ',state="' + states[j] + '"} ' + (states[j] === s ? 1 : 0));
      }
      const tos = ['up', 'down', 'open', 'half_open', 'closed'];
      for (let j = 0; j < tos.length; j++) {
        const n = get(d, key('n', u, i, j < 2 ? undefined : uc) + '|' + tos[j]); // up, down: per upstream; breaker states: per record
        if (n > 0) {
          trans.push('gatewayctl_upstream_peer_transitions_total{' + l + ',to="' + tos[j] + '"} ' + n);
        }
      }
    }
  }
  out.push('# HELP gatewayctl_upstream_peer_transitions_total Health and breaker transitions by upstream, server and new state.');
  out.push('# TYPE gatewayctl_upstream_peer_transitions_total counter');
  for (let t = 0; t < trans.length; t++) {
    out.push(trans[t]);
  }
  return out;
}

