// Rate and connection limits: zones in conf.d/10-limits.conf, keyed by client address, a
// header (the address when absent, so omitting it never bypasses), the authenticated client
// or a tier; a route's limits answer 429 with a JSON body and Retry-After.
import type { Feature } from '../../core/feature.ts';
import { diffBudgetZones, diffConnZones, diffRateZones } from './diff.ts';
import type { ConnZone, GatewayModel, LimitKey, RateZone, SourcePos } from '../../model/types.ts';
import { d, type Block, type Directive } from '../../plan/directive.ts';
import { CONN_LIMIT_STATUS, errorBody } from '../../plan/errors.ts';
import { bare, headerVar, ident } from '../../plan/quote.ts';
import { limitsSchema } from './schema.ts';
import { instanceConnZone, instanceRateZone } from '../fleet/index.ts';
import { checkTokenRules, hasWindows, normalizeTokens, tokenHttpLines, tokenMaps, tokenRoute } from './tokens.ts';

/** A limit zone whose key is only known after authentication. */
export const isClientZone = (z: RateZone | ConnZone): boolean => z.key.kind === 'client_id' || z.tier !== null;

/** limit_req_zone / limit_conn_zone key for a tiered zone (empty for other tiers: not counted). */
export function tierKeyVar(z: RateZone | ConnZone): string | null {
  return z.tier === null ? null : `$gw_tier_key_${ident(z.name)}`;
}

export function limitKeyVar(zoneName: string, key: LimitKey): string {
  switch (key.kind) {
    case 'client_ip':
      return '$binary_remote_addr';
    case 'header':
      return `$gw_limit_key_${ident(zoneName)}`;
    case 'client_id':
      return '$gw_client_id';
  }
}

export function rateZoneLine(z: RateZone): Directive {
  return d('limit_req_zone', tierKeyVar(z) ?? limitKeyVar(z.name, z.key), `zone=gw_rl_${ident(z.name)}:${bare(z.size, 'size')}`, `rate=${bare(z.rate, 'rate')}`);
}

export function connZoneLine(z: ConnZone): Directive {
  return d('limit_conn_zone', tierKeyVar(z) ?? limitKeyVar(z.name, z.key), `zone=gw_conn_${ident(z.name)}:${bare(z.size, 'size')}`);
}

function retryAfterSeconds(zones: RateZone[]): number {
  const slowest = Math.min(...zones.map((z) => z.ratePerSecond));
  return Math.max(1, Math.ceil(1 / slowest));
}

function limitKeyMaps(m: GatewayModel): Block[] {
  const blocks: Block[] = [];
  for (const z of [...m.rateZones, ...m.connZones]) {
    if (z.key.kind !== 'header') continue;
    blocks.push({
      comment: `limit key for zone ${z.name}: header ${z.key.name}, or the client IP when absent (no bypass by omitting it)`,
      head: `map ${headerVar(z.key.name)} $gw_limit_key_${ident(z.name)}`,
      origin: z.at,
      lines: [d('""', '$binary_remote_addr'), d('default', headerVar(z.key.name))],
    });
  }
  return blocks;
}

export const limitsFeature: Feature = {
  name: 'limits',
  summary: 'rate and connection limits, hourly/daily request windows and token budgets, with JSON 429 and Retry-After',
  schema: limitsSchema,
  // token budgets and r/h, r/d windows are reserved by the body step's own call (routing) and
  // reconciled by the shared log-phase call and body filter (metrics): no call of their own
  cost: { njsCalls: () => 0, measured: 'nginx limit_req/limit_conn; token budgets and r/h, r/d windows: shared-dict updates inside the body step and the log-phase call (README, Token budgets)' },
  normalize: (raw, m, ctx) => normalizeTokens(raw, m, ctx.at),
  rules: (m, err) => checkTokenRules(m, err),
  diff(a, b, c) {
    diffRateZones(c, a.rateZones, b.rateZones);
    diffConnZones(c, a.connZones, b.connZones);
    diffBudgetZones(c, a.tokenZones ?? [], b.tokenZones ?? [], 'token budget');
    diffBudgetZones(c, a.windowZones ?? [], b.windowZones ?? [], 'request window');
  },
  http: (m) => {
    // each instance's share of the allowance (the fleet feature: fleet.limits)
    const rates = m.rateZones.map((z) => instanceRateZone(z, m));
    const conns = m.connZones.map((z) => instanceConnZone(z, m));
    return {
      maps: [...limitKeyMaps(m), ...tokenMaps(m)],
      mapLines: tokenHttpLines(m),
      limits: [
        d('limit_req_status', '429'),
        // an internal status the error pages answer as 429 `concurrency_limited`: a client can tell
        // a concurrency limit from a rate limit (src/plan/errors.ts)
        d('limit_conn_status', String(CONN_LIMIT_STATUS)),
        d('limit_req_log_level', 'warn'),
        d('limit_conn_log_level', 'warn'),
        ...rates.map(rateZoneLine),
        ...conns.map(connZoneLine),
      ],
      origins: [...rates.map((z): [Directive, SourcePos] => [rateZoneLine(z), z.at]), ...conns.map((z): [Directive, SourcePos] => [connZoneLine(z), z.at])],
    };
  },
  route(ctx) {
    const { route: r, model: m, slots } = ctx;
    const zones = r.rateLimits.map((z) => m.rateZones.find((x) => x.name === z)!).filter(Boolean).map((z) => instanceRateZone(z, m));
    const conns = r.connLimits.map((z) => m.connZones.find((x) => x.name === z)!).filter(Boolean).map((z) => instanceConnZone(z, m));
    // nginx runs limit_req (and limit_conn) once per request: after the first location that
    // applied one, a named location's limits are skipped. So when some zone must wait for the
    // identity (after the auth/body hand-over), every zone of that kind waits with it.
    const reqLate = zones.some(isClientZone);
    const connLate = conns.some(isClientZone);
    for (const z of zones) {
      const parts = ['limit_req', `zone=gw_rl_${ident(z.name)}`];
      if (z.burst) parts.push(`burst=${bare(z.burst, 'int')}`);
      // delay 0 is nginx's default (every excess request waits) and a value its delay= refuses;
      // a divided fleet allowance can round a delay down to it
      if (z.delay !== null) {
        if (z.delay > 0) parts.push(`delay=${bare(z.delay, 'int')}`);
      } else if (z.nodelay) parts.push('nodelay');
      (reqLate ? slots.clientLimits : slots.limits).push(d(...parts));
    }
    for (const cz of conns) {
      (connLate ? slots.clientLimits : slots.limits).push(d('limit_conn', `gw_conn_${ident(cz.name)}`, bare(cz.max, 'int')));
    }
    const answer429 = (status: number, name: string, retryAfter: number | '$gw_tokens_retry'): void => {
      ctx.overrides[status] = `@${ctx.rid}_${name}`;
      ctx.errorLocations.push({
        head: `location @${ctx.rid}_${name}`,
        lines: [
          d('default_type', 'application/json'),
          ...ctx.responseHeaders,
          d('add_header', 'Retry-After', retryAfter === '$gw_tokens_retry' ? retryAfter : bare(retryAfter, 'int'), 'always'),
          d('return', '429', errorBody(status, ctx.errorFormat)),
        ],
      });
    };
    if (zones.length && hasWindows(r, m)) {
      // r/h, r/d windows on the same route: their refusal (the body step) shares this 429, and
      // writes its own Retry-After (seconds to the window's end) over the zones' one set here
      slots.routingKey.push(d('set', '$gw_tokens_retry', bare(retryAfterSeconds(zones), 'int')));
      answer429(429, '429', '$gw_tokens_retry');
    } else if (zones.length) answer429(429, '429', retryAfterSeconds(zones));
    if (conns.length) answer429(CONN_LIMIT_STATUS, '429_conn', 1);
    tokenRoute(ctx);
  },
};
