// Rules of the upstream state plane (GW260–GW269).
import type { GatewayModel } from '../../model/types.ts';
import type { Report } from '../../core/feature.ts';
import { managedUpstreams, passiveSettings } from './normalize.ts';

const IPV4 = /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}:[0-9]+$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+\]:[0-9]+$/;

export function checkHealthRules(m: GatewayModel, err: Report, warn: Report): void {
  const managed = managedUpstreams(m);
  const passive = passiveSettings.get(m);
  for (const u of m.upstreams) {
    const p = `upstreams.${u.name}`;
    const given = passive?.get(u.name) ?? [];
    if (!u.healthCheck && !u.circuitBreaker) {
      if (u.servers.filter((s) => !s.backup).length === 1) {
        for (const g of given.filter((x) => x.key.endsWith('max_fails'))) {
          warn('GW263', g.at, g.key, `upstream ${u.name} has a single server: nginx never marks it failed, so max_fails never trips; add circuit_breaker: to answer 503 at once while it fails`);
        }
      }
      continue;
    }
    for (const g of given) {
      warn('GW264', g.at, g.key, `ignored: upstream ${u.name} has ${u.healthCheck ? 'health_check' : 'circuit_breaker'}, which decides when a server is out (servers are rendered with max_fails=0)`);
    }
    u.servers.forEach((s, j) => {
      if (!IPV4.test(s.address) && !IPV6.test(s.address)) {
        err('GW261', s.at, `${p}.servers[${j}]`, `${s.address}: health checks and circuit breakers need an IP address and port (probes connect to it, and nginx reports tries by address); resolve the name or drop ${u.healthCheck ? 'health_check' : 'circuit_breaker'}`);
      }
    });
    const h = u.healthCheck;
    if (h) {
      if (h.intervalMs < 1000) err('GW260', h.at, `${p}.health_check.interval`, `interval ${h.intervalMs}ms: probes run at most once a second`);
      if (h.timeoutMs >= h.intervalMs) {
        err('GW260', h.at, `${p}.health_check.timeout`, `timeout ${h.timeoutMs}ms must be shorter than the interval ${h.intervalMs}ms (a probe round ends before the next one starts)`);
      }
      const served = new Set(m.models.filter((e) => e.upstream === u.name).map((e) => e.id));
      for (const id of h.expectModels) {
        if (m.models.length && !served.has(id)) warn('GW266', h.at, `${p}.health_check.expect_models`, `model ${id} is not served by upstream ${u.name} in the models catalogue`);
      }
    }
    const b = u.circuitBreaker;
    if (b) {
      if (b.windowMs < 1000 || b.openMs < 1000) {
        const k = b.windowMs < 1000 ? 'window' : 'open_for';
        err('GW262', b.at, `${p}.circuit_breaker.${k}`, `${k} must be at least 1s`);
      }
      const bad = b.on.filter((s) => s < 500 && s !== 429);
      if (bad.length) {
        err('GW262', b.at, `${p}.circuit_breaker.on`, `${bad.join(', ')}: only 5xx (and 429) answers can count as failures; a client error says nothing about the server`);
      }
      if (b.halfOpenRequests > b.failures) {
        err('GW262', b.at, `${p}.circuit_breaker.half_open_requests`, `half_open_requests ${b.halfOpenRequests} exceeds failures ${b.failures}: a half-open server would take more trials than it took failures to open`);
      }
    }
  }
  if (managed.length && !m.global.status) {
    err('GW265', managed[0].healthCheck?.at ?? managed[0].circuitBreaker!.at, `upstreams.${managed[0].name}`, 'health checks and circuit breakers run on the status listener (probes, /admin/status); global.status must not be false');
  }
  if (m.adminApi) {
    if (!m.global.status) err('GW269', m.adminApi.at, 'admin_api', 'the admin API is served on the status listener; global.status must not be false');
    // the admin API serves runtime servers (managed upstreams) and runtime API keys (auth feature)
    const keys = !!m.auth?.apiKeys && m.routes.some((r) => r.auth?.methods.includes('api_key'));
    // nginx OSS shares no runtime state between instances: gatewayctl applies each change to every replica
    if (m.fleet && m.fleet.replicas > 1) {
      warn(
        'GW570',
        m.adminApi.at,
        'admin_api',
        `fleet.replicas is ${m.fleet.replicas}: runtime servers and keys live in each instance; apply them to every replica (gatewayctl servers … / keys … --live with --endpoint HOST:PORT for each, or --dns <name>-replicas:PORT) and check drift with \`gatewayctl servers list\` / \`gatewayctl keys live\` over the same replicas`,
      );
    }
    if (!managed.length && !keys) err('GW269', m.adminApi.at, 'admin_api', 'no upstream has health_check or circuit_breaker and no route takes API keys: the admin API would have nothing to manage');
  }
  const cs = m.clusterStatus;
  if (cs) {
    if (!m.listeners.some((l) => l.name === cs.listener)) {
      err('GW267', cs.at, 'cluster_status.listener', `unknown listener "${cs.listener}" (defined: ${m.listeners.map((l) => l.name).join(', ')})`);
    }
    if (!managed.length) err('GW268', cs.at, 'cluster_status', 'no upstream has health_check or circuit_breaker: there is no state to report');
    const clash = m.routes.find((r) => r.listeners.includes(cs.listener) && r.match.path.kind === 'exact' && r.match.path.value === cs.path);
    if (clash) err('GW267', cs.at, 'cluster_status.path', `${cs.path} is already a route on listener ${cs.listener} (routes[${clash.index}])`);
  }
}
