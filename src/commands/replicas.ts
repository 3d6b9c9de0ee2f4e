// `gatewayctl replicas`: which config each replica of a fleet serves. Every replica's /ready
// answers the input hash of the config it runs (the core's readiness location); this asks
// each one and reports drift from the config given with -c (and from fleet.replicas), so a
// rollout that stalled, a replica that missed a reload or one left on an old ConfigMap shows.
// Replicas are named as HOST:PORT of their status listener (--endpoint, repeatable) or found
// by a DNS name with every replica's address (--dns NAME:PORT; on Kubernetes the headless
// Service build --target k8s writes, <name>-replicas).
import { lookup } from 'node:dns/promises';
import { request } from 'node:http';
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';

export const help = `
Examples:
  $ gatewayctl replicas --endpoint 10.0.0.5:8081 --endpoint 10.0.0.6:8081
  $ gatewayctl replicas -c gateway.yaml --dns gateway-replicas.edge.svc.cluster.local:8081
  $ gatewayctl replicas --json ...

Each replica's readiness endpoint (global.health.readiness, /ready) answers the sha256 of
the gateway.yaml it runs; the expected one is -c's. Exit status: 0 every replica is ready
on that config and as many as fleet.replicas answered; 1 otherwise (drift, unreachable,
missing replicas).`;

export interface ReplicasOptions {
  config: string;
  endpoint?: string[];
  dns?: string;
  json?: boolean;
  timeoutMs?: number;
}

export interface ReplicaState {
  endpoint: string;
  ready: boolean;
  config: string | null;
  state: 'current' | 'drift' | 'unready' | 'unreachable';
  error?: string;
}

function readiness(endpoint: string, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  const m = /^(\[[^\]]+\]|[^:]+):([0-9]+)$/.exec(endpoint);
  if (!m) return Promise.reject(new Error(`not HOST:PORT: ${endpoint}`));
  return new Promise((resolve, reject) => {
    const req = request({ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]), path, agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c.length + body.length > 4096 ? '' : c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Every replica's state against the expected input hash. */
export async function replicaStates(endpoints: string[], expected: string, readyPath: string, timeoutMs = 3000): Promise<ReplicaState[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<ReplicaState> => {
      try {
        const r = await readiness(endpoint, readyPath, timeoutMs);
        let config: string | null = null;
        try {
          const v = JSON.parse(r.body) as { config?: unknown };
          config = typeof v.config === 'string' ? v.config : null;
        } catch {
          // not the gateway's readiness answer
        }
        const ready = r.status === 200 && config !== null;
        return { endpoint, ready, config, state: !ready ? 'unready' : config === expected ? 'current' : 'drift' };
      } catch (e) {
        return { endpoint, ready: false, config: null, state: 'unreachable', error: (e as Error).message };
      }
    }),
  );
}

export async function resolveDns(spec: string): Promise<string[]> {
  const m = /^(.+):([0-9]+)$/.exec(spec);
  if (!m) throw new Error(`--dns wants NAME:PORT, got ${spec}`);
  const addrs = await lookup(m[1], { all: true });
  return [...new Set(addrs.map((a) => (a.family === 6 ? `[${a.address}]:${m[2]}` : `${a.address}:${m[2]}`)))].sort();
}

export async function run(opts: ReplicasOptions): Promise<number> {
  const r = compile(opts.config);
  if (!r.model) {
    for (const d of r.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return 1;
  }
  const expected = r.model.source.hash;
  const want = r.model.fleet?.replicas ?? null;
  let endpoints = [...(opts.endpoint ?? [])];
  if (opts.dns) {
    try {
      endpoints.push(...(await resolveDns(opts.dns)));
    } catch (e) {
      process.stderr.write(`replicas: ${opts.dns}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  endpoints = [...new Set(endpoints)];
  if (!endpoints.length) {
    process.stderr.write('replicas: name the replicas with --endpoint HOST:PORT (their status listener) or --dns NAME:PORT\n');
    return 1;
  }
  const states = await replicaStates(endpoints, expected, r.model.global.health.readiness, opts.timeoutMs);
  const current = states.filter((s) => s.state === 'current').length;
  const missing = want !== null && endpoints.length < want ? want - endpoints.length : 0;
  const ok = current === states.length && missing === 0;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ expected, replicas: want, current, missing, ok, states }, null, 2)}\n`);
    return ok ? 0 : 1;
  }
  for (const s of states) {
    const what = s.state === 'current' ? 'current' : s.state === 'drift' ? `DRIFT (serves ${s.config!.slice(0, 12)})` : s.state === 'unready' ? 'NOT READY' : `UNREACHABLE (${s.error})`;
    process.stdout.write(`${s.endpoint.padEnd(24)} ${what}\n`);
  }
  const summary = `${current}/${states.length} replicas serve ${opts.config} (sha256 ${expected.slice(0, 12)})${missing ? `; ${missing} fewer than fleet.replicas ${want}` : ''}`;
  (ok ? process.stdout : process.stderr).write(`${summary}\n`);
  return ok ? 0 : 1;
}
