// Which upstream a traffic route (`traffic:`, src/features/traffic) sends a request to,
// computed as nginx does: the rules' maps (exact values, compared case-insensitively), then
// `split_clients` (MurmurHash2 of the sticky key against cumulative percent bounds), then the
// route's own upstream. Used by `gatewayctl route --route` and the traffic tests.
import type { GatewayModel, Route, RouteTraffic, TrafficSource } from '../model/types.ts';

/** nginx's ngx_murmur_hash2 (src/core/ngx_murmurhash.c) of the bytes of `s`. */
export function murmurHash2(s: string): number {
  const data = Buffer.from(s, 'utf8');
  let len = data.length;
  let h = (0 ^ len) >>> 0;
  let i = 0;
  while (len >= 4) {
    let k = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0;
    k = Math.imul(k, 0x5bd1e995) >>> 0;
    k = (k ^ (k >>> 24)) >>> 0;
    k = Math.imul(k, 0x5bd1e995) >>> 0;
    h = Math.imul(h, 0x5bd1e995) >>> 0;
    h = (h ^ k) >>> 0;
    i += 4;
    len -= 4;
  }
  switch (len) {
    case 3:
      h = (h ^ (data[i + 2] << 16)) >>> 0;
    // falls through
    case 2:
      h = (h ^ (data[i + 1] << 8)) >>> 0;
    // falls through
    case 1:
      h = (h ^ data[i]) >>> 0;
      h = Math.imul(h, 0x5bd1e995) >>> 0;
  }
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0x5bd1e995) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  return h;
}

/** Percent as nginx reads it in split_clients: hundredths (ngx_atofp with 2 digits). */
export const hundredths = (percent: number): number => Math.round(percent * 100);

/**
 * The split_clients parts of a route: each upstream with its percent, the route's own upstream
 * last as `*` (the rest); the upper hash bound of each part as nginx computes it.
 */
export function splitParts(t: RouteTraffic, fallback: string): { upstream: string; percent: number | null; bound: number }[] {
  let last = 0n;
  const out: { upstream: string; percent: number | null; bound: number }[] = t.split.map((s) => {
    last += (BigInt(hundredths(s.percent)) * 0xffffffffn) / 10000n;
    return { upstream: s.upstream, percent: s.percent, bound: Number(last) };
  });
  out.push({ upstream: fallback, percent: null, bound: 0x100000000 });
  return out;
}

/** The upstream split_clients picks for a sticky key. */
export function splitChoice(t: RouteTraffic, fallback: string, key: string): { upstream: string; hash: number } {
  const hash = murmurHash2(key);
  const part = splitParts(t, fallback).find((p) => hash < p.bound)!;
  return { upstream: part.upstream, hash };
}

export interface TrafficRequest {
  headers?: Record<string, string>;
  cookies?: Record<string, string>;
  query?: Record<string, string>;
  claims?: Record<string, string>;
  clientIp?: string;
  clientId?: string;
}

export interface TrafficExplanation {
  route: string;
  upstream: string | null; // null: a per-request split, no fixed answer
  shares: Record<string, number> | null; // a per-request split: the share of each upstream
  reasons: string[];
}

const lookup = (o: Record<string, string> | undefined, k: string): string | undefined => {
  if (!o) return undefined;
  const hit = Object.keys(o).find((x) => x.toLowerCase() === k.toLowerCase());
  return hit === undefined ? undefined : o[hit];
};

function sourceValue(s: TrafficSource, req: TrafficRequest): string | undefined {
  switch (s.kind) {
    case 'header':
      return lookup(req.headers, s.name);
    case 'cookie':
      return req.cookies?.[s.name];
    case 'query':
      return req.query?.[s.name];
    case 'jwt_claim':
      return req.claims?.[s.name];
  }
}

export const sourceText = (s: TrafficSource): string => (s.kind === 'jwt_claim' ? `JWT claim ${s.name}` : s.kind === 'query' ? `query argument ${s.name}` : `${s.kind} ${s.name}`);

/** Where nginx sends this request on a traffic route, and why. */
export function explainTraffic(m: GatewayModel, r: Route, req: TrafficRequest): TrafficExplanation {
  const t = r.traffic;
  const fallback = r.upstream ?? '';
  const reasons: string[] = [];
  if (!t) return { route: r.name, upstream: fallback, shares: null, reasons: [`route ${r.name} has no traffic rules: always upstream ${fallback}`] };
  for (const rule of t.rules) {
    const v = sourceValue(rule.source, req);
    // map keys compare case-insensitively
    if (v !== undefined && v.toLowerCase() === rule.value.toLowerCase()) {
      reasons.push(`${sourceText(rule.source)} is ${JSON.stringify(v)}: rule → upstream ${rule.upstream}`);
      return { route: r.name, upstream: rule.upstream, shares: null, reasons };
    }
  }
  if (t.rules.length) reasons.push('no rule matches');
  if (!t.split.length) {
    reasons.push(`default: upstream ${fallback}`);
    return { route: r.name, upstream: fallback, shares: null, reasons };
  }
  const key = stickyKey(t, req);
  if (key === null) {
    const shares: Record<string, number> = {};
    for (const p of splitParts(t, fallback)) shares[p.upstream] = (shares[p.upstream] ?? 0) + (p.percent ?? 100 - t.split.reduce((a, s) => a + s.percent, 0)) / 100;
    reasons.push(`split per request (${t.sticky ? 'the sticky key is missing' : 'no sticky key'}): ${Object.entries(shares).map(([u, x]) => `${u} ${(x * 100).toFixed(2)}%`).join(', ')}`);
    return { route: r.name, upstream: null, shares, reasons };
  }
  const c = splitChoice(t, fallback, key);
  reasons.push(`split: murmur2(${JSON.stringify(key)}) = ${c.hash} → upstream ${c.upstream} (${splitParts(t, fallback).map((p) => `${p.upstream} < ${p.bound}`).join(', ')})`);
  void m;
  return { route: r.name, upstream: c.upstream, shares: null, reasons };
}

/** The value split_clients hashes for this request, or null when it is random per request. */
function stickyKey(t: RouteTraffic, req: TrafficRequest): string | null {
  const s = t.sticky;
  if (!s) return null;
  const v = s.kind === 'client_ip' ? req.clientIp : s.kind === 'client_id' ? req.clientId : s.kind === 'header' ? lookup(req.headers, s.name) : req.cookies?.[s.name];
  return v === undefined || v === '' ? null : v;
}
