// health_check and circuit_breaker of the upstreams, into the typed model.
import type { GatewayModel, SourcePos, Upstream } from '../../model/types.ts';
import { perModel } from '../../model/memo.ts';
import type { NormalizeContext } from '../../core/feature.ts';
import { createHash } from 'node:crypto';
import { durationSeconds } from '../../model/shutdown.ts';

export const HEALTH_DEFAULTS = { path: '/health', interval: '5s', timeout: '2s', expectStatus: [200], rise: 2, fall: 3 };
export const BREAKER_DEFAULTS = { failures: 5, window: '10s', openFor: '30s', halfOpenRequests: 1, on: [502, 503, 504] };

const ms = (d: string): number => Math.round(durationSeconds(d) * 1000);

/** Where gateway.yaml set max_fails / fail_timeout explicitly on an upstream (rules GW263, GW264). */
export const passiveSettings = new WeakMap<GatewayModel, Map<string, { key: string; at: SourcePos }[]>>();

/* eslint-disable @typescript-eslint/no-explicit-any */
export function normalizeHealth(raw: Record<string, unknown>, m: GatewayModel, ctx: NormalizeContext): void {
  const ups = (raw.upstreams as Record<string, any>) ?? {};
  const passive = new Map<string, { key: string; at: SourcePos }[]>();
  for (const u of m.upstreams) {
    const r = ups[u.name] ?? {};
    const p = `upstreams.${u.name}`;
    const given: { key: string; at: SourcePos }[] = [];
    for (const k of ['max_fails', 'fail_timeout']) if (r[k] !== undefined) given.push({ key: `${p}.${k}`, at: ctx.at(`${p}.${k}`) });
    ((r.servers as any[]) ?? []).forEach((s, j) => {
      for (const k of ['max_fails', 'fail_timeout']) if (s && typeof s === 'object' && s[k] !== undefined) given.push({ key: `${p}.servers[${j}].${k}`, at: ctx.at(`${p}.servers[${j}].${k}`) });
    });
    passive.set(u.name, given);
    const h = r.health_check;
    if (h) {
      u.healthCheck = {
        path: h.path ?? HEALTH_DEFAULTS.path,
        intervalMs: ms(h.interval ?? HEALTH_DEFAULTS.interval),
        timeoutMs: ms(h.timeout ?? HEALTH_DEFAULTS.timeout),
        expectStatus: h.expect_status ?? HEALTH_DEFAULTS.expectStatus,
        expectBody: h.expect_body ?? null,
        expectModels: h.expect_models ?? [],
        rise: h.rise ?? HEALTH_DEFAULTS.rise,
        fall: h.fall ?? HEALTH_DEFAULTS.fall,
        at: ctx.at(`${p}.health_check`),
      };
    }
    const b = r.circuit_breaker;
    if (b) {
      u.circuitBreaker = {
        failures: b.failures ?? BREAKER_DEFAULTS.failures,
        windowMs: ms(b.window ?? BREAKER_DEFAULTS.window),
        openMs: ms(b.open_for ?? BREAKER_DEFAULTS.openFor),
        halfOpenRequests: b.half_open_requests ?? BREAKER_DEFAULTS.halfOpenRequests,
        on: b.on ?? BREAKER_DEFAULTS.on,
        at: ctx.at(`${p}.circuit_breaker`),
      };
    }
    // The state plane decides which servers take requests. nginx's passive marking (max_fails
    // within fail_timeout) would keep a recovered server out until fail_timeout passed, and
    // would move hash keys before the breaker counted anything: it is switched off here, so
    // the rendered upstream block says max_fails=0 and `gatewayctl diff` shows it.
    if (u.healthCheck || u.circuitBreaker) for (const s of u.servers) s.maxFails = 0;
  }
  passiveSettings.set(m, passive);
  const cs = raw.cluster_status as any;
  const aa = raw.admin_api as any;
  m.adminApi = aa ? { tokenSha256: createHash('sha256').update(String(aa.token)).digest('hex'), allow: aa.allow ?? [], at: ctx.at('admin_api') } : null;
  m.clusterStatus = cs ? { listener: cs.listener, path: cs.path ?? '/v1/cluster/status', allow: cs.allow ?? [], at: ctx.at('cluster_status') } : null;
}

/** Upstreams under the state plane (a health check or a circuit breaker), in gateway.yaml order. */
export const managedUpstreams = perModel((m: GatewayModel): readonly Upstream[] => m.upstreams.filter((u) => u.healthCheck || u.circuitBreaker));
