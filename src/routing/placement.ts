// Placement of a model on its pools and its fallback chain, from the GatewayModel: which
// upstreams a request for a model may reach, in which order, and on what. Used by the routing
// feature (the nginx locations of the chain), its rules and `gatewayctl route`.
//
// A chain is a list of stages; the first serves, each next one is tried only when the one
// before failed *before the first response byte* (nginx cannot move a request once the
// response header went to the client). Stages:
//   - the model's pools: ordered (the list order), or weighted (a split picks one; the others
//     follow in list order after it, so each is tried at most once);
//   - then `fallback.to` in order: an upstream, or another model's pools (the request body's
//     `model` is rewritten to that model's id). A fallback model's own fallback is not
//     followed: chains do not nest, so they cannot loop.
import type { CircuitBreaker, GatewayModel, ModelEntry } from '../model/types.ts';

/** `fallback.on` words as the status nginx gives the failure (a connection error is 502, a timeout 504). */
export const FALLBACK_STATUS: Record<string, number> = { error: 502, timeout: 504, 429: 429, 500: 500, 502: 502, 503: 503, 504: 504 };

export const DEFAULT_FALLBACK_ON = ['error', 'timeout'];

export type StagePick =
  | { kind: 'upstream'; name: string }
  /** the weighted split of model `model` (its index), shifted by `shift` places in its pool list */
  | { kind: 'split'; model: number; shift: number };

export interface Stage {
  pick: StagePick;
  /** the upstreams this stage may send to (one, or the pools of a weighted split) */
  upstreams: string[];
  /** the `model` the request body is rewritten to (a fallback to another model); null: as sent */
  model: string | null;
}

export const isWeighted = (e: ModelEntry): boolean => e.pools.length > 1 && e.pools.some((p) => p.weight !== null);

export const findModel = (m: GatewayModel, id: string): ModelEntry | undefined => m.models.find((x) => x.id.toLowerCase() === id.toLowerCase());

function poolStages(m: GatewayModel, e: ModelEntry, rewrite: string | null): Stage[] {
  const i = m.models.indexOf(e);
  const names = e.pools.map((p) => p.upstream);
  if (isWeighted(e)) return names.map((_, shift) => ({ pick: { kind: 'split', model: i, shift }, upstreams: names, model: rewrite }));
  return names.map((name) => ({ pick: { kind: 'upstream', name }, upstreams: [name], model: rewrite }));
}

/** Every stage a request for model `e` may go through, the first included. */
export function modelChain(m: GatewayModel, e: ModelEntry): Stage[] {
  const out = poolStages(m, e, null);
  for (const t of e.fallback?.to ?? []) {
    if (t.kind === 'upstream') {
      out.push({ pick: { kind: 'upstream', name: t.name }, upstreams: [t.name], model: null });
      continue;
    }
    const y = findModel(m, t.id);
    if (y && y !== e) out.push(...poolStages(m, y, y.id));
  }
  return out;
}

/** The model has somewhere to go when its first pool fails. */
export const hasChain = (m: GatewayModel, e: ModelEntry): boolean => modelChain(m, e).length > 1;

/** The statuses that move a request of model `e` to its next stage. */
export function fallbackStatuses(e: ModelEntry): number[] {
  const on = e.fallback?.on ?? DEFAULT_FALLBACK_ON;
  return [...new Set(on.map((w) => FALLBACK_STATUS[w]).filter((s) => s !== undefined))].sort((a, b) => a - b);
}

/** A fallback deadline in milliseconds ("1500ms", "30s", "2m"). */
export function deadlineMs(d: string): number {
  const x = /^([0-9]+)(ms|s|m)$/.exec(d);
  if (!x) throw new Error(`bad deadline ${JSON.stringify(d)}`);
  return Number(x[1]) * (x[2] === 'ms' ? 1 : x[2] === 's' ? 1000 : 60000);
}

/** Alternatives matching the digit strings of n's length that are greater than n. */
function greater(n: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n.length; i++) {
    const dgt = Number(n[i]);
    if (dgt === 9) continue;
    const rest = n.length - i - 1;
    out.push(`${n.slice(0, i)}${dgt === 8 ? '9' : `[${dgt + 1}-9]`}${rest ? `[0-9]{${rest}}` : ''}`);
  }
  return out;
}

/**
 * A PCRE matching nginx's $request_time ("<seconds>.<milliseconds>", e.g. "12.034") when it is
 * at least `ms` milliseconds: nginx maps compare strings, so the comparison is spelled out.
 */
export function atLeastMsRegex(ms: number): string {
  const a = String(Math.floor(ms / 1000));
  const b = String(ms % 1000).padStart(3, '0');
  const alts = [`[1-9][0-9]{${a.length},}\\.[0-9]{3}`, ...greater(a).map((g) => `${g}\\.[0-9]{3}`), `${a}\\.(?:${[b, ...greater(b)].join('|')})`];
  return `^(?:${alts.join('|')})$`;
}

/**
 * Servers (by address) that more than one upstream lists, with those upstreams. nginx OSS keeps
 * passive failure state (max_fails/fail_timeout) per upstream block, so such a server has one
 * nginx failure record in each. The gateway's own record, the circuit breaker of the state
 * plane (src/features/health, njs/lib/health.ts), is keyed by record, not by upstream: the
 * upstreams holding one address with the same circuit_breaker share one (breakerRecords);
 * `breakerSharing` says which cannot and why (rule GW465).
 */
export function sharedServers(m: GatewayModel, upstreams: string[] = m.upstreams.map((u) => u.name)): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const u of m.upstreams.filter((x) => upstreams.includes(x.name))) {
    for (const s of u.servers) by.set(s.address, [...(by.get(s.address) ?? []), u.name]);
  }
  return new Map([...by].filter(([, us]) => new Set(us).size > 1));
}

/** What makes two circuit breakers one: every setting that decides when it opens and closes. */
export const breakerSettings = (b: CircuitBreaker): string =>
  `failures ${b.failures}, window ${b.windowMs}ms, open_for ${b.openMs}ms, half_open_requests ${b.halfOpenRequests}, on [${[...new Set(b.on)].sort((x, y) => x - y).join(', ')}]`;

/**
 * The breaker records of the servers of each upstream with a circuit_breaker, by upstream name:
 * `recs[i]` is "" for server i's own record (`<upstream>|<i>` in the state dict), else the
 * record of the first upstream (gateway.yaml order) listing the same address with the same
 * breaker settings, as "<upstream>|<index>"; `shared[i]` the other upstreams holding server i's
 * record. Both are [] for an upstream none of whose servers shares a record (the health preload
 * then leaves them out).
 */
export function breakerRecords(m: GatewayModel): Map<string, { recs: string[]; shared: string[][] }> {
  const owner = new Map<string, string>();
  const holders = new Map<string, string[]>();
  const ids = new Map<string, string[]>();
  for (const u of m.upstreams) {
    const b = u.circuitBreaker;
    if (!b) continue;
    const settings = breakerSettings(b);
    ids.set(
      u.name,
      u.servers.map((s, i) => {
        const k = `${s.address} ${settings}`;
        const id = owner.get(k) ?? `${u.name}|${i}`;
        owner.set(k, id);
        holders.set(id, [...(holders.get(id) ?? []), u.name]);
        return id;
      }),
    );
  }
  const out = new Map<string, { recs: string[]; shared: string[][] }>();
  for (const [name, list] of ids) {
    const recs = list.map((id, i) => (id === `${name}|${i}` ? '' : id));
    const shared = list.map((id) => holders.get(id)!.filter((x) => x !== name));
    out.set(name, shared.some((x) => x.length) ? { recs, shared } : { recs: [], shared: [] });
  }
  return out;
}

/**
 * For a server several of `upstreams` list: the groups of those upstreams that share one breaker
 * record (same circuit_breaker settings), and the upstreams without a breaker. One group and
 * none without: one record, every failure known to all of them.
 */
export function breakerSharing(m: GatewayModel, address: string, upstreams: string[]): { groups: { settings: string; upstreams: string[] }[]; without: string[] } {
  const groups: { settings: string; upstreams: string[] }[] = [];
  const without: string[] = [];
  for (const u of m.upstreams.filter((x) => upstreams.includes(x.name) && x.servers.some((s) => s.address === address))) {
    if (!u.circuitBreaker) {
      without.push(u.name);
      continue;
    }
    const settings = breakerSettings(u.circuitBreaker);
    const g = groups.find((x) => x.settings === settings);
    if (g) g.upstreams.push(u.name);
    else groups.push({ settings, upstreams: [u.name] });
  }
  return { groups, without };
}
