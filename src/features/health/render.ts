// Rendering of the upstream state plane (njs/lib/health.ts has the runtime half).
//
//   http        js_shared_dict_zone gw_state, the preload object njs/health.json (servers,
//               rings, settings), js_set $gw_steer_peer, the failure map and (without the
//               metrics feature) the log of failing requests, conf.d/35-health-peers.conf
//               with one upstream block per server (gw_peer_<upstream>_<i>, keepalive kept)
//   status      js_periodic locations (probes, 1 s sync; worker 0 only) and /admin/status
//   route       while every server is up nothing but `if (-f $document_root/steer-<u>)`, an
//               open_file_cache lookup; with the flag: the steer location proxying to the
//               server njs picks, or 503 + Retry-After from @…_steer_503
import type { GatewayModel, Route, Upstream } from '../../model/types.ts';
import type { HttpContribution } from '../../core/feature.ts';
import type { ChainStage, RouteContext, SteerNeed } from '../../plan/slots.ts';
import { d, raw, type Block, type Directive } from '../../plan/directive.ts';
import { bare, ident, mapSourceValue, q } from '../../plan/quote.ts';
import { buildRing, CRC_TABLE } from '../../routing/ketama.ts';
import { breakerRecords, modelChain } from '../../routing/placement.ts';
import { hashKeyVar } from '../../targets/nginx/route.ts';
import { proxyPassVia, steerUriMap } from '../proxy/index.ts';
import { managedUpstreams } from './normalize.ts';

export const STATE_ZONE = 'gw_state';
export const HEALTH_PRELOAD = 'njs/health.json';
/** the flag files' directory, relative to the prefix (created by nginx, owned by the workers' user) */
export const STATE_DIR = 'state';
export const PEERS_CONF = 'conf.d/35-health-peers.conf';
export const STATUS_PATH = '/admin/status';
export const MODELS_FLAG = 'steer.models';

export const H = {
  steer: 'gateway.steerPeer',
  log: 'gateway.healthLog',
  /** js_periodic: the location's root says what to do (state: sync; gw-probe/<u>: probe u) */
  periodic: 'gateway.healthPeriodic',
  /** js_content: `set $gw_health_answer status|cluster|models|unavailable` says which answer */
  answer: 'gateway.healthAnswer',
};

export const RUNTIME_ZONE = 'gw_state_s';

const answer = (kind: 'status' | 'cluster' | 'models' | 'unavailable' | 'admin'): Directive[] => [d('set', '$gw_health_answer', kind), d('js_content', H.answer)];

export const peerBlockName = (u: Upstream, i: number): string => `gw_peer_${ident(u.name)}_${i}`;

/** statuses that never count as failures: exact map entries, so a healthy request needs no regex */
const COMMON_STATUSES = ['200', '201', '202', '204', '206', '301', '302', '304', '400', '401', '403', '404', '409', '422', '429', '500'];

const breakers = (m: GatewayModel) => managedUpstreams(m).filter((u) => u.circuitBreaker);

/** The steer pick of the k-th stage of a fallback chain (one js_set variable per stage index). */
const chainPeerVar = (k: number): string => `$gw_steer_peer_${k}`;

/** Stage indices of fallback chains that may proxy to a managed upstream. */
function steeredStageIndices(m: GatewayModel): number[] {
  if (!m.routes.some((r) => r.models === 'route')) return [];
  const managed = new Set(managedUpstreams(m).map((u) => u.name));
  const out = new Set<number>();
  for (const e of m.models) {
    const chain = modelChain(m, e);
    if (chain.length < 2) continue;
    chain.forEach((st, k) => {
      if (st.upstreams.some((u) => managed.has(u))) out.add(k);
    });
  }
  return [...out].sort((a, b) => a - b);
}

/** The upstream a route proxies to, when the state plane manages it. */
function managedUpstreamOf(r: Route, m: GatewayModel): Upstream | null {
  const u = m.upstreams.find((x) => x.name === r.upstream);
  return u && (u.healthCheck || u.circuitBreaker) ? u : null;
}

/** A model route some of whose models are served by managed upstreams (their own, or a pool or fallback of their chain). */
const steeredModelRoute = (r: Route, m: GatewayModel): boolean =>
  r.models === 'route' && m.models.some((e) => managedUpstreams(m).some((u) => u.name === e.upstream || modelChain(m, e).some((st) => st.upstreams.includes(u.name))));

export const steersRoute = (r: Route, m: GatewayModel): boolean =>
  r.respond === null && (r.models === 'route' ? steeredModelRoute(r, m) : r.models === 'list' ? modelsListSteered(m) : managedUpstreamOf(r, m) !== null);

const modelsListSteered = (m: GatewayModel): boolean => m.models.some((e) => managedUpstreams(m).some((u) => u.name === e.upstream));

/** The configuration njs reads (js_preload_object gw_health_conf). */
export function healthPreload(m: GatewayModel): string {
  const managed = managedUpstreams(m);
  // a server several upstreams list with the same circuit_breaker has one breaker record
  const records = breakerRecords(m);
  const upstreams: Record<string, unknown> = {};
  for (const u of managed) {
    const ring = u.balance === 'consistent_hash' ? buildRing(u.servers.map((s) => ({ address: s.address, weight: s.weight, down: s.down }))) : null;
    const h = u.healthCheck;
    const b = u.circuitBreaker;
    upstreams[u.name] = {
      balance: u.balance,
      addresses: u.servers.map((s) => s.address),
      weights: u.servers.map((s) => s.weight),
      down: u.servers.map((s) => (s.down ? 1 : 0)),
      peers: u.servers.map((_, i) => peerBlockName(u, i)),
      ring: ring ? ring.points.map((p) => p.hash) : [],
      owners: ring ? ring.points.map((p) => p.server) : [],
      hashVar: u.balance === 'consistent_hash' ? hashKeyVar(u).slice(1) : '',
      health: h && {
        path: h.path,
        intervalMs: h.intervalMs,
        timeoutMs: h.timeoutMs,
        expectStatus: h.expectStatus,
        expectBody: h.expectBody,
        expectModels: h.expectModels,
        rise: h.rise,
        fall: h.fall,
      },
      breaker: b && { failures: b.failures, windowMs: b.windowMs, openMs: b.openMs, halfOpen: b.halfOpenRequests, on: b.on },
    };
    // only where a server shares its record: every value of the preload object costs each
    // request that calls njs, read or not (two empty arrays per upstream: +250 instructions per
    // request in the metrics log call of scripts/bench/instructions.ts gw_health)
    const rec = records.get(u.name);
    if (rec && rec.recs.length) Object.assign(upstreams[u.name] as object, { recs: rec.recs, shared: rec.shared });
  }
  const conf = {
    dir: `${STATE_DIR}/`,
    admin: m.adminApi?.tokenSha256 ?? '',
    breakers: breakers(m).length ? 1 : 0,
    crc: Array.from(CRC_TABLE),
    names: managed.map((u) => u.name),
    upstreams,
    routes: Object.fromEntries(m.routes.filter((r) => r.upstream || r.models === 'route').map((r) => [r.name, r.models === 'route' ? '' : r.upstream!])),
    models: m.models.map((e) => ({ id: e.id, upstream: e.upstream, owned_by: e.ownedBy, created: e.created })),
  };
  return `${JSON.stringify(conf)}\n`;
}

/** One upstream block per server of a managed upstream: where the steer location sends a request. */
function peerBlocks(m: GatewayModel): Block[] {
  const out: Block[] = [];
  for (const u of managedUpstreams(m)) {
    u.servers.forEach((s, i) => {
      // the picked server first; the others as backups, so a try that fails on the pick moves
      // on (per the route's retries) like it would in the upstream's own block
      const lines: string[] = [d('server', bare(s.address, 'address'), 'max_fails=0')];
      u.servers.forEach((o, j) => {
        if (j !== i && !o.down) lines.push(d('server', bare(o.address, 'address'), 'max_fails=0', 'backup'));
      });
      if (u.keepalive) {
        lines.push(d('keepalive', bare(u.keepalive.connections, 'int')));
        lines.push(d('keepalive_timeout', bare(u.keepalive.timeout, 'duration')));
        lines.push(d('keepalive_requests', bare(u.keepalive.requests, 'int')));
      }
      out.push({ comment: `upstream ${u.name}, server ${s.address}: used while a server of ${u.name} is unavailable`, head: `upstream ${peerBlockName(u, i)}`, lines, origin: s.at });
    });
  }
  return out;
}

/**
 * The steer pick's fast path (njs/lib/health.ts steerPeerFast) for each upstream it can decide
 * without the preload object: round robin over equal weights, no server `down` in gateway.yaml.
 * "<upstream>|<flags>|<open_for ms>|<weight>|<peer> <peer> …", flags "h" health check, "b"
 * circuit breaker, "a" admin API (runtime servers and drains possible: checked at request
 * time); where a server shares its breaker record with another upstream, "|<record> <record> …"
 * follows: each server's record ("<upstream>|<index>", the preload object's recs, its own
 * included). Other upstreams map to "" and take the full pick.
 */
function steerFastMap(m: GatewayModel): Block {
  const records = breakerRecords(m);
  // volatile: read again for each pick (a fallback chain steers several upstreams in one
  // request; nginx would otherwise keep the first value if the variable ever became indexed)
  const lines: string[] = [d('volatile'), d('default', '""')];
  for (const u of managedUpstreams(m)) {
    const w = u.servers[0]?.weight;
    if (u.balance !== 'round_robin' || u.servers.some((s) => s.down || s.weight !== w)) continue;
    const flags = `${u.healthCheck ? 'h' : ''}${u.circuitBreaker ? 'b' : ''}${m.adminApi ? 'a' : ''}`;
    const peers = u.servers.map((_, i) => peerBlockName(u, i)).join(' ');
    const rec = records.get(u.name);
    const recs = rec && rec.recs.length ? `|${u.servers.map((_, i) => rec.recs[i] || `${u.name}|${i}`).join(' ')}` : '';
    lines.push(d(mapSourceValue(bare(u.name, 'name')), q(`${u.name}|${flags}|${u.circuitBreaker?.openMs ?? 0}|${w}|${peers}${recs}`, 'expr')));
  }
  return { comment: "the steer pick's fast path: what it needs of each upstream it can decide alone (njs/lib/health.ts steerPeerFast)", head: 'map $gw_steer_upstream $gw_steer_fast', lines };
}

export function healthHttp(m: GatewayModel): HttpContribution {
  const managed = managedUpstreams(m);
  if (!managed.length) return {};
  const withMetrics = m.metrics !== null;
  const br = breakers(m);
  const mapLines: Directive[] = [
    raw('# upstream state plane: health checks and circuit breakers (njs/lib/health.ts)'),
    d('js_shared_dict_zone', `zone=${STATE_ZONE}:1m`, 'type=number'),
    d('js_preload_object', 'gw_health_conf', 'from', q(HEALTH_PRELOAD, 'file')),
    d('js_set', '$gw_steer_peer', H.steer),
    ...steeredStageIndices(m).map((k) => d('js_set', chainPeerVar(k), H.steer)),
    d('js_var', '$gw_health_trial'),
    d('js_var', '$gw_retry_after'),
    d('js_var', '$gw_steer_upstream'),
  ];
  if (m.adminApi) mapLines.push(d('js_shared_dict_zone', `zone=${RUNTIME_ZONE}:1m`, 'type=string'));
  const maps: Block[] = [steerFastMap(m)];
  const accessLogs: Directive[] = [];
  if (br.length) {
    const codes = [...new Set(br.flatMap((u) => u.circuitBreaker!.on))].sort();
    maps.push({
      comment: 'circuit breakers: a failed try (connect error 502, timeout 504, or a status counted as failure) or a half-open trial ("T")',
      head: 'map "$upstream_status$gw_health_trial" $gw_health_fail',
      lines: [
        d('default', '""'),
        ...COMMON_STATUSES.filter((s) => !codes.includes(Number(s))).map((s) => d(s, '""')),
        d(q('~T$', 'regex'), '1'),
        d(q(`~(^|[ ,:])(${codes.join('|')})([ ,:]|$)`, 'regex'), '1'),
      ],
    });
    maps.push({
      comment: 'what the breaker counts, in one variable (read by njs only for failed tries and trials)',
      head: 'map $gw_dollar $gw_health_in',
      lines: [d('default', '"$proxy_host|$upstream_addr|$upstream_status|$gw_health_trial|$gw_route"')],
    });
    if (!withMetrics) {
      mapLines.push(d('js_set', '$gw_health_log', H.log));
      maps.push({ comment: 'the breaker\'s log-phase call, for failed tries and trials only', head: 'map $gw_health_fail $gw_health_rec', lines: [d('default', '""'), d('1', '$gw_health_log')] });
      accessLogs.push(
        raw('# circuit breakers: njs counts failed tries in the log phase (only theirs); it returns "", so nothing is written'),
        d('access_log', q('/dev/null', 'file'), 'combined', 'if=$gw_health_rec'),
      );
    }
  }
  for (const r of m.routes) {
    if (!steersRoute(r, m) || r.models === 'list') continue;
    const b = steerUriMap(r);
    if (b) maps.push(b);
  }
  return {
    mapLines,
    maps,
    accessLogs,
    confFiles: { [PEERS_CONF]: { lines: [], blocks: peerBlocks(m) } },
  };
}

const ms = (n: number) => `${n}ms`;

export function healthStatusLocations(m: GatewayModel): Block[] {
  const managed = managedUpstreams(m);
  if (!managed.length) return [];
  const out: Block[] = [
    {
      comment: 'state plane: every second, flag files follow the state and open breakers turn half-open (worker 0 only); *_temp_path makes nginx create the flag directory for the workers\' user',
      head: 'location @gw_health_sync',
      lines: [d('root', q(STATE_DIR, 'file')), d('scgi_temp_path', q(STATE_DIR, 'file')), d('js_periodic', H.periodic, 'interval=1s')],
    },
  ];
  managed
    .filter((u) => u.healthCheck)
    .forEach((u, k) => {
      const h = u.healthCheck!;
      // the probe settles at h.timeoutMs (its own timer); the fetch may run a little longer, so
      // that the timer and not the fetch decides, but must be over before the next round: a
      // periodic handler with a pending fetch is still running when its next turn comes, and
      // nginx then kills it and logs two errors each interval for as long as a server hangs
      const fetchTimeoutMs = h.timeoutMs + Math.min(1000, Math.floor((h.intervalMs - h.timeoutMs) / 2));
      out.push({
        comment: `health checks of upstream ${u.name}: GET ${h.path} every ${h.intervalMs} ms (worker 0 only; the root names the upstream)`,
        head: `location @gw_health_probe_${k}`,
        origin: h.at,
        lines: [d('root', q(`gw-probe/${u.name}`, 'file')), d('js_fetch_timeout', ms(fetchTimeoutMs)), d('js_periodic', H.periodic, `interval=${ms(h.intervalMs)}`)],
      });
    });
  if (m.adminApi) {
    out.push({
      comment: 'admin API: add, drain, remove and list upstream servers at runtime (bearer token; persisted in state/runtime.json)',
      head: 'location /admin/upstreams/',
      origin: m.adminApi.at,
      lines: [
        d('access_log', 'off'),
        d('allow', '127.0.0.1'),
        d('allow', '::1'),
        ...m.adminApi.allow.map((c) => d('allow', bare(c, 'cidr'))),
        d('deny', 'all'),
        d('client_max_body_size', '16k'),
        d('client_body_buffer_size', '16k'),
        d('client_body_in_single_buffer', 'on'),
        ...answer('admin'),
      ],
    });
  }
  out.push({
    comment: 'upstreams, servers, health and breaker state (JSON); `gatewayctl status` prints it',
    head: `location = ${q(STATUS_PATH, 'path')}`,
    lines: [d('access_log', 'off'), d('allow', '127.0.0.1'), d('allow', '::1'), d('deny', 'all'), ...answer('status')],
  });
  return out;
}

/** cluster_status: a location on the chosen listener (js_content; no addresses in the answer). */
export function clusterStatusLocations(m: GatewayModel, listener: string): Block[] {
  const cs = m.clusterStatus;
  if (!cs || cs.listener !== listener || !managedUpstreams(m).length) return [];
  return [
    {
      comment: 'cluster status for clients: upstreams (servers up of total) and models (available or not)',
      head: `location = ${q(cs.path, 'path')}`,
      origin: cs.at,
      lines: [...(cs.allow.length ? [...cs.allow.map((c) => d('allow', bare(c, 'cidr'))), d('deny', 'all')] : []), ...answer('cluster')],
    },
  ];
}

/** The flag file's root and its open_file_cache (a cached lookup while the flag is absent). */
const flagLookup = (): Directive[] => [d('root', q(STATE_DIR, 'file')), d('open_file_cache', 'max=64', 'inactive=60s'), d('open_file_cache_valid', '1s'), d('open_file_cache_errors', 'on')];

/** Lines of the location that checks the flag file. */
function checkLines(next: string): Directive[] {
  return [...flagLookup(), d('error_page', '418', '=', next), d('recursive_error_pages', 'on')];
}

/**
 * routeFinish: the stages of a model's fallback chain that proxy to a managed upstream check its
 * flag too. While it exists a stage jumps (418) to its twin `<stage>_steer`, which proxies to the
 * server njs picks (as the route's steer location does) with the stage's own error pages, and,
 * without a usable server, goes on to the stage after it (418 again: no answer from a server
 * has been sent). So an open breaker (shared or not) or a health check takes the server out of
 * a chain's pools as it does for routes. (A stage intercepts upstream errors: an upstream that
 * answers 418 itself is taken for the jump, as any status with an error page would be.)
 */
export function healthChains(ctx: RouteContext): void {
  const chains = ctx.needs.bodyStep?.chains;
  if (!chains) return;
  const managed = new Set(managedUpstreams(ctx.model).map((u) => u.name));
  for (const c of chains) {
    c.stages = c.stages.flatMap((st, k): ChainStage[] => {
      if (!st.upstreams.some((u) => managed.has(u))) return [st];
      const twin = `${st.name}_steer`;
      // a js_set value is kept for the rest of the request: each stage picks through its own
      const peer = chainPeerVar(k);
      return [
        { ...st, after: [...st.after, ...flagLookup(), d('error_page', '418', '=', twin)], checks: [...st.checks, { head: `if (-f $document_root/steer-${st.target})`, lines: [d('return', '418')] }] },
        {
          ...st,
          name: twin,
          proxyPass: proxyPassVia(ctx.route, peer),
          before: [...st.before, d('set', '$gw_steer_upstream', st.target)],
          after: [...st.after, d('error_page', '418', '=', st.next)],
          checks: [{ head: `if (${peer} = "")`, lines: [d('return', '418')] }],
        },
      ];
    });
  }
}

/** The route's steering (RouteContext.needs.steer), its 503 answer and override. */
export function healthRoute(ctx: RouteContext): void {
  const { route: r, model: m, rid } = ctx;
  if (!ctx.content || !steersRoute(r, m)) return;
  if (ctx.content.kind === 'answer') {
    if (r.models !== 'list') return;
    const next = `@${rid}_models_live`;
    const steer: SteerNeed = {
      lines: checkLines(next),
      check: { head: `if (-f $document_root/${MODELS_FLAG})`, lines: [d('return', '418')] },
      next,
      head: [],
      blocks: [],
      proxyPass: null,
      answer: [...ctx.responseHeaders, ...answer('models')],
      named: [],
    };
    ctx.needs.steer = steer;
    return;
  }
  const model = r.models === 'route';
  const u = model ? null : managedUpstreamOf(r, m);
  const flag = model ? '$document_root/steer-$gw_model_upstream' : `$document_root/steer-${bare(u!.name, 'name')}`;
  const next = `@${rid}_steer`;
  const unavailable = `@${rid}_steer_503`;
  ctx.overrides[503] = unavailable;
  ctx.needs.steer = {
    lines: checkLines(next),
    check: { head: `if (-f ${flag})`, lines: [d('return', '418')] },
    next,
    head: [d('set', '$gw_steer_upstream', model ? '$gw_model_upstream' : bare(u!.name, 'name')), d('recursive_error_pages', 'on')],
    blocks: [{ head: 'if ($gw_steer_peer = "")', lines: [d('return', '503')] }],
    proxyPass: proxyPassVia(r, '$gw_steer_peer'),
    answer: null,
    named: [
      {
        comment: `route ${r.name}: no server of the upstream is available: 503 with Retry-After`,
        head: `location ${unavailable}`,
        lines: [...ctx.responseHeaders, ...answer('unavailable')],
      },
    ],
  };
}
