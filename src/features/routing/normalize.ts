// Normalization of the routing additions: the top-level model catalogue and whether the
// build needs njs for routing (keys njs derives, model-aware routes).
import type { GatewayModel, ModelEntry, SourcePos } from '../../model/types.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
export function normalizeModels(raw: unknown, at: (p: string) => SourcePos): ModelEntry[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((e: any, i: number) => ({
    id: e.id,
    upstream: e.upstream,
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
