// Where a consistent-hash key goes, explained from the GatewayModel (used by `gatewayctl route`).
import { createHash } from 'node:crypto';
import type { GatewayModel, ModelEntry, Upstream } from '../model/types.ts';
import { DEFAULT_FALLBACK_ON, isWeighted, modelChain } from './placement.ts';
import { buildRing, minimalMovedShare, movedShare, place, shares, type Placement, type Ring } from './ketama.ts';
import { keyOf, parseObject, promptPrefixText } from '../../njs/lib/keys.ts';

export interface RouteExplanation {
  upstream: string;
  key: string;
  keySource: string; // where nginx takes the key from, in words
  keyHash: number; // crc32(key)
  ringPoints: number;
  start: number; // first ring point >= keyHash (wraps to 0 at the end)
  peer: string | null; // server address nginx picks with every server healthy
  successors: string[]; // where the key goes when the ones before are down/failed, in order
  skipped: { server: string; reason: 'down' | 'unavailable' }[];
  share: Record<string, number>; // fraction of the hash space per server
  reasons: string[];
}

export class RouteError extends Error {}

export function keySourceText(u: Upstream): string {
  const k = u.hashKey;
  const fb = u.hashFallback === 'client_ip' ? 'the client IP' : 'the request id (random spread)';
  switch (k?.kind) {
    case 'header':
      return `header ${k.name} (missing: ${fb})`;
    case 'cookie':
      // sticky issue: gateway: the request id is the key, and the cookie set on the answer
      if (u.sticky?.issue === 'gateway') return `cookie ${k.name} (missing: the request id, which the gateway then sets as ${k.name}: a new client is pinned from its first answer)`;
      return `cookie ${k.name} (missing: ${fb})`;
    case 'query':
      return `query argument ${k.name} (missing: ${fb})`;
    case 'client_ip':
      return 'the client IP';
    case 'client_id':
      return `the authenticated client id (unauthenticated: ${fb})`;
    case 'jwt_claim':
      return `JWT claim ${k.name} (missing: ${fb})`;
    case 'body_field':
      return `JSON body field ${k.name} (missing: ${fb})`;
    case 'prompt_prefix':
      return `SHA-1 of the first ${k.bytes} bytes of the prompt (no messages or prompt: ${fb})`;
    default:
      return 'none';
  }
}

export function hashedUpstreams(m: GatewayModel): Upstream[] {
  return m.upstreams.filter((u) => u.balance === 'consistent_hash');
}

export function ringFor(u: Upstream): Ring {
  // backup servers are not allowed with hashing (GW321), so every server is on the ring
  return buildRing(u.servers.map((s) => ({ address: s.address, weight: s.weight, down: s.down })));
}

/** A server added through the admin API (src/features/health), as /admin/status lists it. */
export interface RuntimeRingServer {
  address: string;
  weight: number;
}

/**
 * `unavailable`: server addresses to treat as failed (passive health), as nginx would skip them.
 * `runtime`: the upstream's active runtime servers in the order the gateway lists them; njs
 * places keys on the ring of the configured servers followed by these (njs/lib/peers.ts ringWith).
 */
export function explainRoute(m: GatewayModel, key: string, opts: { upstream?: string; unavailable?: string[]; runtime?: RuntimeRingServer[] } = {}): RouteExplanation {
  const hashed = hashedUpstreams(m);
  let u: Upstream | undefined;
  const nginxSticky = m.upstreams.filter((x) => x.sticky?.issue === 'nginx');
  if (!opts.upstream && !hashed.length && nginxSticky.length === 1) return explainNginxSticky(nginxSticky[0], key);
  if (opts.upstream) {
    u = m.upstreams.find((x) => x.name === opts.upstream);
    if (!u) throw new RouteError(`unknown upstream "${opts.upstream}" (defined: ${m.upstreams.map((x) => x.name).join(', ') || 'none'})`);
    if (u.sticky?.issue === 'nginx') return explainNginxSticky(u, key);
    if (u.balance !== 'consistent_hash') throw new RouteError(`upstream "${u.name}" balances with ${u.balance}, not consistent_hash: there is no fixed place for a key`);
  } else {
    if (hashed.length !== 1) {
      throw new RouteError(
        hashed.length ? `several consistent_hash upstreams (${hashed.map((x) => x.name).join(', ')}); choose one with --upstream` : 'no upstream uses consistent_hash',
      );
    }
    u = hashed[0];
  }
  const runtime = opts.runtime ?? [];
  const all = [...u.servers.map((s) => ({ address: s.address, weight: s.weight, down: s.down })), ...runtime.map((s) => ({ address: s.address, weight: s.weight }))];
  const ring = runtime.length ? buildRing(all) : ringFor(u);
  const unavailable = new Set<number>();
  for (const a of opts.unavailable ?? []) {
    const i = all.findIndex((s) => s.address === a);
    if (i < 0) throw new RouteError(`--unavailable ${a}: not a server of upstream ${u.name}`);
    unavailable.add(i);
  }
  const p: Placement = place(ring, key, unavailable);
  const addr = (i: number) => all[i].address;
  const sh = shares(ring);
  const share: Record<string, number> = {};
  all.forEach((s, i) => (share[s.address] = sh[i]));
  const reasons: string[] = [
    `key ${JSON.stringify(key)} → crc32 ${p.keyHash} (0x${p.keyHash.toString(16).padStart(8, '0')})`,
    `ring: ${ring.points.length} points (160 per weight unit; ${all.map((s, i) => `${s.address}×${s.weight}${i >= u!.servers.length ? ' (runtime)' : ''}`).join(', ')})`,
    `first point >= hash: #${p.start % ring.points.length}${p.start === ring.points.length ? ' (wrapped around)' : ''} → ${addr(ring.points[p.start % ring.points.length].server)}`,
  ];
  for (const s of p.skipped) reasons.push(`${addr(s.server)} skipped (${s.reason === 'down' ? 'marked down' : 'unavailable: failed within fail_timeout'}), next point`);
  if (p.server !== null) reasons.push(`picked ${addr(p.server)}; if it fails (max_fails within fail_timeout) the key moves to ${p.order[1] ? addr(p.order[1].server) : 'nowhere (no other server)'}`);
  else reasons.push('no usable server: nginx answers 502');
  return {
    upstream: u.name,
    key,
    keySource: keySourceText(u),
    keyHash: p.keyHash,
    ringPoints: ring.points.length,
    start: p.start,
    peer: p.server === null ? null : addr(p.server),
    successors: p.order.slice(1).map((o) => addr(o.server)),
    skipped: p.skipped.map((s) => ({ server: addr(s.server), reason: s.reason })),
    share,
    reasons,
  };
}

/**
 * nginx's own sticky cookie (sticky issue: nginx): the cookie value is the MD5 (hex) of the
 * server's address (ip:port; a server given by host name is hashed per resolved address,
 * which only nginx knows); any other value (or none) is a new client, placed by the
 * upstream's balancing and given the cookie of the server it reached.
 */
export function explainNginxSticky(u: Upstream, key: string): RouteExplanation {
  const md5 = (a: string) => createHash('md5').update(a).digest('hex');
  const i = u.servers.findIndex((s) => md5(s.address) === key.toLowerCase());
  const server = i < 0 ? null : u.servers[i];
  const usable = server !== null && !server.down;
  const share: Record<string, number> = {};
  for (const s of u.servers) share[s.address] = s.down ? 0 : s.weight / u.servers.filter((x) => !x.down).reduce((a, x) => a + x.weight, 0);
  const reasons = [
    `nginx's sticky cookie ${u.sticky!.name}: its value is the MD5 of a server address (${u.servers.map((s) => `${s.address} → ${md5(s.address)}`).join(', ')})`,
    server === null
      ? `no server has the value ${JSON.stringify(key)}: a new client; ${u.balance} picks its server and the answer sets the cookie to that server's value`
      : usable
        ? `picked ${server.address}; if it fails, ${u.balance} picks another server and the cookie is set anew`
        : `${server.address} is marked down: ${u.balance} picks another server and the cookie is set anew`,
  ];
  return {
    upstream: u.name,
    key,
    keySource: `nginx's sticky cookie ${u.sticky!.name} (missing or unknown: ${u.balance}, then the cookie is set)`,
    keyHash: 0,
    ringPoints: 0,
    start: 0,
    peer: usable ? server.address : null,
    successors: [],
    skipped: [],
    share,
    reasons,
  };
}

export interface RequestQuery {
  key?: string; // the hashed value itself
  upstream?: string;
  model?: string; // pick the upstream through the model catalogue
  body?: string; // a JSON request body: the model and a body_field key are taken from it, as njs does
}

export interface ResolvedQuery {
  upstream: string | undefined;
  key: string | null; // null: the request has no key, nginx uses hash_fallback
  notes: string[];
}

/** How a model is placed: its first pool (or its split) and, in order, what is tried when that fails. */
export function placementNotes(m: GatewayModel, e: ModelEntry, asAsked: string = e.id): string[] {
  const notes: string[] = [];
  if (isWeighted(e)) {
    const total = e.pools.reduce((a, p) => a + (p.weight ?? 1), 0);
    notes.push(`model ${asAsked} → pools by weight: ${e.pools.map((p) => `${p.upstream} ${Math.round(((p.weight ?? 1) * 1000) / total) / 10}%`).join(', ')} (explained below: ${e.upstream})`);
  } else {
    notes.push(`model ${asAsked} → upstream ${e.upstream}`);
  }
  const chain = modelChain(m, e);
  if (chain.length > 1) {
    const later = chain.slice(1).map((s) => {
      const where = s.pick.kind === 'upstream' ? `upstream ${s.pick.name}` : `the next pool of the split (${s.upstreams.join('/')})`;
      return s.model !== null ? `${where} as model ${s.model}` : where;
    });
    const on = e.fallback?.on ?? DEFAULT_FALLBACK_ON;
    notes.push(`before the first response byte, on ${on.join(', ')}: then ${later.join(', then ')}${e.fallback?.deadline ? `; no new try after ${e.fallback.deadline}` : ''}; all failed: 503 upstream_unavailable`);
  }
  return notes;
}

/** Turn --model/--body into the upstream and key nginx would use (same parsing as njs/lib/routing.ts). */
export function resolveQuery(m: GatewayModel, q: RequestQuery): ResolvedQuery {
  const notes: string[] = [];
  let upstream = q.upstream;
  const doc = q.body === undefined ? null : parseObject(q.body);
  if (q.body !== undefined && doc === null) throw new RouteError('--body is not a JSON object (a model route answers 400 invalid_json)');
  const model = q.model ?? (upstream === undefined && doc && typeof doc.model === 'string' ? doc.model : undefined);
  if (model !== undefined && upstream === undefined) {
    const e = m.models.find((x) => x.id.toLowerCase() === model.toLowerCase()); // nginx map keys are case-insensitive
    if (!e) throw new RouteError(`model "${model}" is not in the catalogue (a model route answers 404 model_not_found)`);
    upstream = e.upstream;
    notes.push(...placementNotes(m, e, model));
  }
  let key: string | null = q.key ?? null;
  if (key === null && doc) {
    const u = m.upstreams.find((x) => x.name === upstream) ?? (upstream === undefined ? hashedUpstreams(m)[0] : undefined);
    if (u?.hashKey?.kind === 'body_field') {
      key = keyOf(doc, u.hashKey.name) || null;
      notes.push(key === null ? `body has no usable "${u.hashKey.name}": nginx uses hash_fallback (${u.hashFallback})` : `key from body field ${u.hashKey.name}`);
    }
    if (u?.hashKey?.kind === 'prompt_prefix') {
      key = promptPrefixDigest(doc, u.hashKey.bytes) || null;
      notes.push(key === null ? `body has no messages or prompt: nginx uses hash_fallback (${u.hashFallback})` : `key: SHA-1 of the first ${u.hashKey.bytes} bytes of the prompt`);
    }
  }
  return { upstream, key, notes };
}

/**
 * Share of keys that land on another server after a change of a consistent_hash upstream
 * (servers added/removed/reweighted/down), or null when it is not comparable (not hashed on
 * both sides, or the hash key itself changed: then every key is placed anew).
 */
export function keysMovedShare(before: Upstream, after: Upstream): number | null {
  if (before.balance !== 'consistent_hash' || after.balance !== 'consistent_hash') return null;
  if (JSON.stringify(before.hashKey) !== JSON.stringify(after.hashKey)) return null;
  return movedShare(ringFor(before), ringFor(after));
}

/**
 * Keys a server change of a consistent_hash upstream moves (keysMovedShare) and the least
 * any placement would have to move (minimalMovedShare); null when not comparable.
 */
export function keysMoved(before: Upstream, after: Upstream): { moved: number; minimal: number } | null {
  const moved = keysMovedShare(before, after);
  if (moved === null) return null;
  const minimal = minimalMovedShare(ringFor(before).servers, ringFor(after).servers);
  return minimal === null ? null : { moved, minimal };
}

/** The prompt-prefix key as njs/lib/prefix.ts derives it: SHA-1 hex of the first `bytes` UTF-8 bytes of the prompt text ("" without one). */
export function promptPrefixDigest(doc: { [k: string]: unknown } | null, bytes: number): string {
  const text = promptPrefixText(doc, bytes);
  return text.length === 0 ? '' : createHash('sha1').update(Buffer.from(text, 'utf8').subarray(0, bytes)).digest('hex');
}
