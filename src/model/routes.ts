// Queries over the model that rules of several concerns share.
import type { GatewayModel, Route } from './types.ts';

/** Routes that send requests to upstream `name` (directly or through a model). */
export function routesUsing(m: GatewayModel, name: string): Route[] {
  const viaModel = m.models.some((x) => x.upstream === name);
  return m.routes.filter((r) => r.upstream === name || (r.models === 'route' && viaModel));
}
