// IP access rules: the global deny list always applies; a route's allow list replaces the
// global one.
import type { Feature } from '../../core/feature.ts';
import { diffAccess } from '../../diff/semantic.ts';
import type { GatewayModel } from '../../model/types.ts';
import { d, type Directive } from '../../plan/directive.ts';
import { bare } from '../../plan/quote.ts';
import { accessSchema } from './schema.ts';

export function accessLines(allowRoute: string[], denyRoute: string[], m: GatewayModel): Directive[] {
  const deny = [...new Set([...denyRoute, ...m.access.deny])];
  const allow = allowRoute.length ? allowRoute : m.access.allow;
  const out = deny.map((c) => d('deny', bare(c, 'cidr')));
  out.push(...allow.map((c) => d('allow', bare(c, 'cidr'))));
  if (allow.length && !allow.includes('all')) out.push(d('deny', 'all'));
  return out;
}

export const accessFeature: Feature = {
  name: 'access',
  summary: 'allow/deny by client address, globally and per route',
  schema: accessSchema,
  cost: { njsCalls: () => 0, measured: 'nginx access module only' },
  serverLines: (m) => accessLines([], [], m),
  diff: (a, b, c) => diffAccess(c, 'access', 'global access', a.access, b.access),
  route(ctx) {
    ctx.slots.access.push(...accessLines(ctx.route.access.allow, ctx.route.access.deny, ctx.model));
  },
};
