// The fleet: several gateway instances built from one gateway.yaml behind a load balancer.
// nginx OSS keeps limit_req / limit_conn counters in each instance's shared memory and
// shares nothing between instances, so an allowance means something different on a fleet.
// `fleet.limits` makes the choice explicit:
//   per_instance  every instance enforces the whole allowance (a client spread over N
//                 instances may get up to N× it); a warning (GW540) says so when replicas > 1
//   divided       every instance enforces allowance ÷ divisor, rounded down, where the divisor
//                 is the most instances that may run (replicas, or the autoscaler's maximum):
//                 the fleet never admits more than the allowance, and admits as little as
//                 allowance ÷ divisor when one instance receives all of a client's requests
//   affinity      a front tier hashes the client to one instance, whose counters then see
//                 all of that client's requests: exact while the front tier keeps the mapping
// The limits feature renders the zones through instanceRateZone / instanceConnZone; this
// feature owns the arithmetic, its refusals and the comment that shows it in 10-limits.conf.
import type { Feature } from '../../core/feature.ts';
import type { ConnZone, FleetSettings, GatewayModel, LimitMode, RateZone, SourcePos } from '../../model/types.ts';
import { raw, type Directive } from '../../plan/directive.ts';
import { fleetSchema } from './schema.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
function normalizeFleet(v: any, at: (p: string) => SourcePos): FleetSettings | null {
  if (v === undefined || v === null) return null;
  const keyAt: Record<string, SourcePos> = {};
  for (const k of Object.keys(v)) keyAt[k] = at(`fleet.${k}`);
  return { replicas: v.replicas ?? 1, limitMode: (v.limits ?? 'per_instance') as LimitMode, at: at('fleet'), keyAt };
}

/** Instances that may serve the config at once: replicas, or the autoscaler's maximum when higher. */
export function maxInstances(m: GatewayModel): number {
  return Math.max(m.fleet?.replicas ?? 1, m.kubernetes?.autoscaling?.maxReplicas ?? 1);
}

/** What each instance's counters are divided by: the most instances that may run, in `divided` mode; else 1. */
export function limitDivisor(m: GatewayModel): number {
  return m.fleet?.limitMode === 'divided' ? maxInstances(m) : 1;
}

/** "10r/s" → requests per minute (600). */
export function perMinute(rate: string): number {
  const n = Number.parseInt(rate, 10);
  return rate.endsWith('r/s') ? n * 60 : n;
}

/** The per-minute count written in the unit nginx keeps exact: r/s when whole, else r/m. */
function rateText(perMin: number): string {
  return perMin % 60 === 0 || perMin >= 600000 ? `${Math.floor(perMin / 60)}r/s` : `${perMin}r/m`;
}

/** The zone as one instance enforces it: rate, burst and delay ÷ the divisor, rounded down. */
export function instanceRateZone(z: RateZone, m: GatewayModel): RateZone {
  const n = limitDivisor(m);
  if (n === 1) return z;
  const perMin = Math.floor(perMinute(z.rate) / n);
  if (perMin < 1) return z; // refused by GW541; rendering never sees it
  const rate = rateText(perMin);
  return {
    ...z,
    rate,
    ratePerSecond: perMinute(rate) / 60,
    burst: Math.floor(z.burst / n),
    delay: z.delay === null ? null : Math.floor(z.delay / n),
  };
}

/** The connection zone as one instance enforces it: max ÷ the divisor, rounded down. */
export function instanceConnZone(z: ConnZone, m: GatewayModel): ConnZone {
  const n = limitDivisor(m);
  if (n === 1 || z.max < n) return z;
  return { ...z, max: Math.floor(z.max / n) };
}

function fleetComments(m: GatewayModel): Directive[] {
  const n = limitDivisor(m);
  if (n === 1 || (!m.rateZones.length && !m.connZones.length)) return [];
  const out = [raw(`# fleet.limits: divided: every zone above is this instance's share of the allowance, divided by ${n} instances, rounded down`)];
  for (const z of m.rateZones) {
    const i = instanceRateZone(z, m);
    out.push(raw(`#   ${z.name}: ${z.rate} burst ${z.burst} -> ${i.rate} burst ${i.burst} per instance`));
  }
  for (const z of m.connZones) out.push(raw(`#   ${z.name}: max ${z.max} -> ${instanceConnZone(z, m).max} per instance`));
  return out;
}

/** The most one client can get from the fleet, as a multiple of a zone's allowance. */
export const fleetBound = (m: GatewayModel): number => (m.fleet?.limitMode ?? 'per_instance') === 'per_instance' ? maxInstances(m) : 1;

export const fleetFeature: Feature = {
  name: 'fleet',
  summary: 'replicas serving one config, and what limit allowances mean across them (per_instance, divided, affinity)',
  schema: fleetSchema,
  cost: { njsCalls: () => 0, measured: 'none: it only changes the numbers in the limit zones' },
  normalize: (raw, m, ctx) => {
    m.fleet = normalizeFleet(raw.fleet, ctx.at);
  },
  rules(m, err, warn) {
    const f = m.fleet;
    if (!f) return;
    const n = maxInstances(m);
    const pos = (k: string) => f.keyAt[k] ?? f.at;
    if (f.limitMode === 'per_instance' && n > 1 && (m.rateZones.length || m.connZones.length)) {
      const zones = [...m.rateZones, ...m.connZones].map((z) => z.name).join(', ');
      warn(
        'GW540',
        pos(f.keyAt.limits ? 'limits' : 'replicas'),
        f.keyAt.limits ? 'fleet.limits' : 'fleet.replicas',
        `limits are per instance: with up to ${n} instances a client spread over them may get up to ${n}× the allowance of ${zones}; set fleet.limits to divided or affinity to bound it`,
      );
    }
    if (f.limitMode !== 'divided') return;
    for (const z of m.rateZones) {
      if (Math.floor(perMinute(z.rate) / n) < 1) {
        err('GW541', z.at, `limits.rate.${z.name}.rate`, `rate ${z.rate} cannot be divided over ${n} instances (fleet.limits: divided): each would get less than 1r/m; raise the rate or use affinity`);
      }
    }
    for (const z of m.connZones) {
      if (z.max < n) {
        err('GW542', z.at, `limits.conn.${z.name}.max`, `max ${z.max} cannot be divided over ${n} instances (fleet.limits: divided): each would allow less than 1 connection; raise max or use affinity`);
      }
    }
  },
  diff(a, b, c) {
    const ra = a.fleet?.replicas ?? 1;
    const rb = b.fleet?.replicas ?? 1;
    const ma = a.fleet?.limitMode ?? 'per_instance';
    const mb = b.fleet?.limitMode ?? 'per_instance';
    if (ra !== rb) c.add('limits', 'changed', 'fleet', `fleet.replicas ${ra} → ${rb}`);
    if (ma !== mb) c.add('limits', 'changed', 'fleet', `fleet.limits ${ma} → ${mb}`);
    const zones = b.rateZones.length + b.connZones.length;
    const [fa, fb] = [fleetBound(a), fleetBound(b)];
    if (zones && fb > fa) {
      c.add('limits', 'changed', 'fleet', `fleet: a client may now get up to ${fb}× each limit's allowance across the replicas (was ${fa}×)`, 'rate-limit-loosened');
    }
  },
  http: (m) => {
    const lines = fleetComments(m);
    return lines.length ? { limits: lines } : {};
  },
};
