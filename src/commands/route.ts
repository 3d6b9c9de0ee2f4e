// `gatewayctl route`: where a consistent-hash key goes, computed exactly as nginx places it.
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { explainRoute, hashedUpstreams, resolveQuery, RouteError, type RuntimeRingServer } from '../routing/explain.ts';
import type { GatewayModel } from '../model/types.ts';
import { statusUrl } from './status.ts';
import { explainTraffic } from '../routing/traffic.ts';

export const help = `
Examples:
  $ gatewayctl route --key user-42                      # the only consistent_hash upstream
  $ gatewayctl route --key alice --upstream sessions -c prod.yaml
  $ gatewayctl route --key alice --unavailable 10.0.2.1:8000   # where it goes while that server is failed
  $ gatewayctl route --key alice --json | jq .peer
  $ gatewayctl route --model gpt-4o --key end-user-7          # the pool serving a model
  $ gatewayctl route --body '{"model":"gpt-4o","user":"end-user-7"}'   # model and key as njs reads them
  $ gatewayctl route --route api --header 'X-Canary: 1'      # the upstream a traffic route picks
  $ gatewayctl route --route api --header 'X-User: u-7'      # a sticky split: which side u-7 is on
  $ gatewayctl route --key alice --live                 # with the running gateway's runtime servers and unavailable ones
  $ gatewayctl route --key alice --url http://10.0.0.5:8081/admin/status

The key is the value nginx hashes: the header/cookie/query value, the client id, the JWT
claim or the JSON body field named by the upstream's hash_key. The placement is nginx's own
\`hash … consistent\` (ketama: crc32 of each server address as written, 160 points per weight
unit); successors are where the key moves, in order, when the servers before it fail.
--live (or --url) reads /admin/status of the running gateway: servers added through the admin
API join the ring after the configured ones (as the gateway places keys while it has them),
draining runtime servers have left it, and servers down, open or draining are skipped.`;

export interface RouteOptions {
  config: string;
  key?: string;
  upstream?: string;
  model?: string;
  body?: string;
  unavailable?: string[];
  route?: string;
  header?: string[];
  cookie?: string[];
  query?: string[];
  claim?: string[];
  clientIp?: string;
  clientId?: string;
  /** read the runtime servers and unavailable ones from the running gateway's /admin/status */
  live?: boolean;
  /** the /admin/status URL to read (implies live) */
  url?: string;
  json?: boolean;
}

interface LivePeer {
  address: string;
  weight: number;
  state: string;
  runtime: boolean;
}

/** The upstream's active runtime servers and its unavailable servers, as the gateway reports them. */
async function liveState(m: GatewayModel, upstream: string | undefined, url: string | undefined): Promise<{ runtime: RuntimeRingServer[]; unavailable: string[]; notes: string[] }> {
  const where = url ?? statusUrl(m);
  if (!where) throw new RouteError('--live: global.status is false: there is no status listener to ask (give --url)');
  const hashed = hashedUpstreams(m);
  const name = upstream ?? (hashed.length === 1 ? hashed[0].name : undefined);
  let doc: { upstreams?: { name: string; peers: LivePeer[] }[] };
  try {
    const res = await fetch(where, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as typeof doc;
  } catch (e) {
    throw new RouteError(`cannot read ${where}: ${(e as Error).message}`);
  }
  const u = (doc.upstreams ?? []).find((x) => x.name === name);
  if (!u) return { runtime: [], unavailable: [], notes: [`${where}: upstream ${name ?? '?'} has no runtime state (no health_check or circuit_breaker): the ring of gateway.yaml`] };
  const runtime = u.peers.filter((p) => p.runtime && p.state !== 'draining').map((p) => ({ address: p.address, weight: p.weight }));
  // the steer pick skips servers that are out (njs/lib/health.ts usableFor): down, open, draining
  const unavailable = u.peers.filter((p) => p.state === 'down' || p.state === 'open' || (p.state === 'draining' && !p.runtime)).map((p) => p.address);
  const notes = [`${where}: ${runtime.length} runtime server(s) on the ring${runtime.length ? ` (${runtime.map((p) => `${p.address}×${p.weight}`).join(', ')})` : ''}${unavailable.length ? `; unavailable: ${unavailable.join(', ')}` : ''}`];
  return { runtime, unavailable, notes };
}

function pairs(list: string[] | undefined, sep: string, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of list ?? []) {
    const i = x.indexOf(sep);
    if (i <= 0) throw new RouteError(`--${what} ${JSON.stringify(x)}: expected name${sep}value`);
    out[x.slice(0, i).trim()] = x.slice(i + 1).trim();
  }
  return out;
}

/** --route: the upstream a traffic route picks for the described request. */
function runTraffic(model: NonNullable<ReturnType<typeof compile>['model']>, opts: RouteOptions): number {
  const r = model.routes.find((x) => x.name === opts.route);
  if (!r) throw new RouteError(`unknown route "${opts.route}" (defined: ${model.routes.map((x) => x.name).join(', ')})`);
  const e = explainTraffic(model, r, {
    headers: pairs(opts.header, ':', 'header'),
    cookies: pairs(opts.cookie, '=', 'cookie'),
    query: pairs(opts.query, '=', 'query'),
    claims: pairs(opts.claim, '=', 'claim'),
    clientIp: opts.clientIp,
    clientId: opts.clientId,
  });
  if (opts.json) process.stdout.write(`${JSON.stringify(e, null, 2)}\n`);
  else process.stdout.write(`${[`route ${e.route} → ${e.upstream ?? 'a split per request'}`, 'why:', ...e.reasons.map((x) => `  ${x}`)].join('\n')}\n`);
  return 0;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export async function run(opts: RouteOptions): Promise<number> {
  const r = compile(opts.config);
  if (!r.model || r.diagnostics.some((x) => x.severity === 'error')) {
    for (const x of r.diagnostics) process.stderr.write(`${formatDiagnostic(x)}\n`);
    return 1;
  }
  if (opts.route !== undefined) {
    try {
      return runTraffic(r.model, opts);
    } catch (err) {
      if (!(err instanceof RouteError)) throw err;
      process.stderr.write(`gatewayctl route: ${err.message}\n`);
      return 1;
    }
  }
  let e;
  let notes: string[] = [];
  try {
    const q = resolveQuery(r.model, { key: opts.key, upstream: opts.upstream, model: opts.model, body: opts.body });
    notes = q.notes;
    const u = r.model.upstreams.find((x) => x.name === q.upstream);
    if (u && u.balance !== 'consistent_hash' && opts.upstream === undefined) {
      // reached through the model catalogue: say where the model goes, there is no ring
      process.stdout.write(`${[...notes, `upstream ${u.name} balances with ${u.balance}: no fixed place for a key`].join('\n')}\n`);
      return 0;
    }
    if (q.key === null) throw new RouteError(notes.length ? notes[notes.length - 1] : 'give --key, or --body with the field the upstream hashes on');
    let runtime: RuntimeRingServer[] = [];
    let unavailable = opts.unavailable ?? [];
    if (opts.live || opts.url !== undefined) {
      const live = await liveState(r.model, q.upstream, opts.url);
      runtime = live.runtime;
      unavailable = [...new Set([...unavailable, ...live.unavailable])];
      notes.push(...live.notes);
    }
    e = { ...explainRoute(r.model, q.key, { upstream: q.upstream, unavailable, runtime }), notes };
  } catch (err) {
    if (!(err instanceof RouteError)) throw err;
    process.stderr.write(`gatewayctl route: ${err.message}\n`);
    return 1;
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(e, null, 2)}\n`);
    return e.peer ? 0 : 1;
  }
  const out = [
    ...notes,
    `upstream ${e.upstream}: key from ${e.keySource}`,
    `key ${JSON.stringify(e.key)} → ${e.peer ?? 'no usable server (502)'}`,
    `successors: ${e.successors.length ? e.successors.join(' → ') : 'none'}`,
    'why:',
    ...e.reasons.map((x) => `  ${x}`),
    'share of keys:',
    ...Object.entries(e.share).map(([s, x]) => `  ${s.padEnd(24)} ${pct(x)}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return e.peer ? 0 : 1;
}
