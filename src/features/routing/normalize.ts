// Normalization of the routing additions: the top-level model catalogue and whether the
// build needs njs for routing (keys njs derives, model-aware routes).
import type { FallbackTarget, GatewayModel, ModelEntry, ModelFallback, ModelPool, SourcePos } from '../../model/types.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
function normalizePools(e: any): ModelPool[] {
  if (Array.isArray(e.pools)) return e.pools.map((p: any) => (typeof p === 'string' ? { upstream: p, weight: null } : { upstream: p.upstream, weight: p.weight ?? null }));
  return typeof e.upstream === 'string' ? [{ upstream: e.upstream, weight: null }] : [];
}

function normalizeFallback(f: any, at: SourcePos): ModelFallback | null {
  if (!f || typeof f !== 'object') return null;
  const to: FallbackTarget[] = ((f.to as any[]) ?? []).map((t: any) => (typeof t.model === 'string' ? { kind: 'model', id: t.model } : { kind: 'upstream', name: t.upstream }));
  return { to, on: ((f.on as unknown[]) ?? ['error', 'timeout']).map(String), deadline: f.deadline ?? null, at };
}

export function normalizeModels(raw: unknown, at: (p: string) => SourcePos): ModelEntry[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((e: any, i: number) => ({
    id: e.id,
    upstream: e.upstream ?? normalizePools(e)[0]?.upstream ?? '',
    pools: normalizePools(e),
    fallback: normalizeFallback(e.fallback, at(`models[${i}].fallback`)),
    ...(e.upstream !== undefined && e.pools !== undefined ? { upstreamAndPools: true } : {}),
    ownedBy: e.owned_by ?? 'gateway',
    created: e.created ?? 0,
    at: at(`models[${i}]`),
  }));
}

/** Upstreams whose hash key njs derives (request body or JWT claim). */
export function njsKeyedUpstreams(m: GatewayModel): string[] {
  return m.upstreams.filter((u) => u.balance === 'consistent_hash' && (u.hashKey?.kind === 'body_field' || u.hashKey?.kind === 'prompt_prefix' || u.hashKey?.kind === 'jwt_claim')).map((u) => u.name);
}

/** True when routing needs the njs module (derived keys or model-aware routes). */
export function routingNeedsNjs(m: GatewayModel): boolean {
  return njsKeyedUpstreams(m).length > 0 || m.routes.some((r) => r.models === 'route');
}
