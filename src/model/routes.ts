// Queries over the model that rules of several concerns share.
import type { GatewayModel, Route } from './types.ts';

/** Routes that send requests to upstream `name` (directly, through a model's pools or fallbacks, a traffic rule or split). */
export function routesUsing(m: GatewayModel, name: string): Route[] {
  // a model's pools and its fallback upstreams (a fallback to another model reaches that model's pools, listed itself)
  const viaModel = m.models.some((x) => x.upstream === name || (x.pools ?? []).some((p) => p.upstream === name) || (x.fallback?.to ?? []).some((t) => t.kind === 'upstream' && t.name === name));
  const viaTraffic = (r: Route) => !!r.traffic && (r.traffic.rules.some((x) => x.upstream === name) || r.traffic.split.some((x) => x.upstream === name));
  return m.routes.filter((r) => r.upstream === name || (r.models === 'route' && viaModel) || viaTraffic(r));
}
