// `gatewayctl bench -c`: the user's model adapted to run in a throw-away prefix on loopback,
// next to nothing of the deployment (a CompileOptions.prepare hook, before inputs are read):
//   - every upstream server → a port of the stub backend (an nginx `return 200`), the number
//     of servers and their weights kept; health checks expect what the stub answers;
//   - listeners → 127.0.0.1 on free ports, plain HTTP (TLS handshakes are not per-request
//     cost on a keep-alive connection; certificates are not read); the status listener too;
//   - logs, pid, temp and cache paths → inside the prefix (the access log format is kept:
//     writing it is part of a request's cost); ACME off;
//   - rate and connection limits → allowances no run reaches (the zones are still counted);
//   - non-empty allow lists admit 127.0.0.1 (one more rule, the same work);
//   - the API key store → a temporary copy holding the run's keys;
//   - one worker process.
// Configs it cannot run are refused with diagnostics (GW580–GW581).
import type { Diagnostic, GatewayModel } from '../model/types.ts';

export interface BenchSetup {
  /** Ports of the stub backend; server i of an upstream → stubPorts[i % length]. */
  stubPorts: number[];
  /** Listener name → loopback port. */
  listenerPorts: Record<string, number>;
  /** Port of the status listener (when the config has one). */
  statusPort: number;
  /** The temporary key store (when the config has one). */
  keysFile: string | null;
  /** What the adapter changed that bears on the figures, for the report. */
  notes?: string[];
  /** The pre-flight build: the JSON access log on, whose `route` field names the route that answered. */
  probeLog?: boolean;
}

/** Why this config cannot be benchmarked in isolation (errors), before anything runs. */
export function benchRefusals(m: GatewayModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const s of m.unsafeSnippets) {
    out.push({
      code: 'GW580',
      severity: 'error',
      message: `bench: raw nginx (unsafe ${s.context} snippet) may reach files, hosts or ports of the deployment; bench runs only configs it can confine to a temporary prefix (measure without the snippet)`,
      at: s.at,
    });
  }
  if (!m.routes.length) out.push({ code: 'GW581', severity: 'error', message: 'bench: the config has no routes to measure', at: null });
  return out;
}

const LOOPBACK = '127.0.0.1';

/** Stub ports the adapter needs: as many as the largest upstream has servers (an upstream may not name one address twice, GW325). */
export function stubPortCount(m: GatewayModel): number {
  return Math.max(1, ...m.upstreams.map((u) => u.servers.length));
}

export function benchAdapter(s: BenchSetup): (m: GatewayModel) => Diagnostic[] {
  return (m) => {
    const errors = benchRefusals(m);
    if (errors.length) return errors;
    const g = m.global;
    g.workerProcesses = '1';
    g.paths = { pid: 'run/nginx.pid', logs: 'logs', temp: 'temp', cache: 'cache' };
    g.errorLog = { path: 'logs/error.log', level: 'error' };
    if (s.probeLog) g.accessLog = { path: 'logs/access.log', format: 'json' };
    else if (g.accessLog) g.accessLog = { ...g.accessLog, path: 'logs/access.log' };
    if (g.status) g.status = { ...g.status, listen: `${LOOPBACK}:${s.statusPort}` };
    g.acmeWebroot = null;
    m.acme = null;
    const note = (n: string) => s.notes?.push(n);
    const tls = m.listeners.filter((l) => l.tls).map((l) => l.name);
    if (tls.length) note(`TLS listener${tls.length > 1 ? 's' : ''} ${tls.join(', ')} measured as plain HTTP (no handshake on a keep-alive connection; certificates not read)`);
    if (m.rateZones.length || m.connZones.length) note('rate and connection limits raised out of reach (their zones are still evaluated)');
    if (m.access.allow.length || m.routes.some((r) => r.access.allow.length)) note('allow lists admit 127.0.0.1 (one more rule each)');
    for (const l of m.listeners) {
      l.address = LOOPBACK;
      l.port = s.listenerPorts[l.name];
      l.tls = null;
    }
    for (const u of m.upstreams) {
      u.servers = u.servers.map((srv, i) => ({ ...srv, address: `${LOOPBACK}:${s.stubPorts[i % s.stubPorts.length]}` }));
      if (u.healthCheck) u.healthCheck = { ...u.healthCheck, expectStatus: [200], expectBody: null, expectModels: [] };
    }
    for (const z of m.rateZones) {
      z.rate = '1000000r/s';
      z.ratePerSecond = 1_000_000;
      z.burst = 1_000_000;
      z.delay = null;
      z.nodelay = true;
    }
    for (const z of m.connZones) z.max = 65535;
    const admit = (a: { allow: string[] }) => {
      if (a.allow.length && !a.allow.includes(LOOPBACK)) a.allow = [LOOPBACK, ...a.allow];
    };
    admit(m.access);
    for (const r of m.routes) admit(r.access);
    if (m.auth) {
      if (m.auth.failureLog) m.auth.failureLog = 'logs/auth-failures.log';
      if (m.auth.apiKeys && s.keysFile) m.auth.apiKeys = { ...m.auth.apiKeys, file: s.keysFile };
    }
    for (const c of m.caches) c.path = `cache/bench-${c.name}`;
    return [];
  };
}
