// `gatewayctl status`: the running gateway's upstreams, servers, health checks and circuit
// breakers, read from /admin/status on the status listener (src/features/health), as a table.
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import type { GatewayModel } from '../model/types.ts';

export const help = `
Reads GET /admin/status from the status listener of the gateway built from the config
(global.status.listen; only loopback may ask) and prints one row per server: its state
(up, down: the health check took it out, open / half_open: its circuit breaker, disabled:
down in gateway.yaml), the last probe (result, status, latency, age) and the breaker's
failures in the current window (a server several upstreams list with the same circuit_breaker
has one breaker: the same state and failures in each, "shared with" the others). Servers the running gateway has but gateway.yaml does not
(or the other way round) are listed under "drift": the config changed and was not deployed.
Exit code 0 when every upstream has a usable server, 2 when one has none, 1 when the
gateway cannot be asked.

Examples:
  $ gatewayctl status
  $ gatewayctl status -c prod.yaml --json | jq '.upstreams[] | select(.state != "up")'
  $ gatewayctl status --url http://127.0.0.1:9145/admin/status`;

export interface StatusOptions {
  config: string;
  url?: string;
  json?: boolean;
}

interface PeerStatus {
  address: string;
  weight: number;
  state: string;
  health: { status: string; passes: number; failures: number; last_probe: { at: string; result: string; status: number | null; latency_ms: number } | null } | null;
  breaker: { state: string; failures_in_window: number; retry_after_s: number | null; shared_with?: string[] } | null;
}
interface UpstreamStatus {
  name: string;
  balance: string;
  state: string;
  steered: boolean;
  peers: PeerStatus[];
}
interface StatusDoc {
  time: string;
  upstreams: UpstreamStatus[];
}

/** http://<status listen>/admin/status, loopback when the listener binds every address. */
export function statusUrl(m: GatewayModel): string | null {
  const s = m.global.status;
  if (!s) return null;
  const listen = /^[0-9]+$/.test(s.listen) ? `127.0.0.1:${s.listen}` : s.listen;
  return `http://${listen}/admin/status`;
}

/** Servers in gateway.yaml but not running, and running but not in gateway.yaml, by upstream. */
export function drift(m: GatewayModel, doc: StatusDoc): string[] {
  const out: string[] = [];
  const running = new Map(doc.upstreams.map((u) => [u.name, u.peers.map((p) => p.address)]));
  for (const u of m.upstreams) {
    if (!u.healthCheck && !u.circuitBreaker) continue;
    const have = running.get(u.name);
    if (!have) {
      out.push(`upstream ${u.name}: in gateway.yaml, not running with a health check or breaker`);
      continue;
    }
    for (const s of u.servers) if (!have.includes(s.address)) out.push(`upstream ${u.name}: server ${s.address} in gateway.yaml, not running`);
    for (const a of have) if (!u.servers.some((s) => s.address === a)) out.push(`upstream ${u.name}: server ${a} running, not in gateway.yaml`);
  }
  for (const u of doc.upstreams) if (!m.upstreams.some((x) => x.name === u.name)) out.push(`upstream ${u.name}: running, not in gateway.yaml`);
  return out;
}

const age = (iso: string, now: number): string => {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`;
};

export function table(doc: StatusDoc, now: number): string {
  const head = ['UPSTREAM', 'SERVER', 'STATE', 'LAST PROBE', 'BREAKER'];
  const rows: string[][] = [];
  for (const u of doc.upstreams) {
    u.peers.forEach((p, i) => {
      const lp = p.health?.last_probe;
      const probe = !p.health ? '-' : lp ? `${lp.result}${lp.status ? ` ${lp.status}` : ''} ${lp.latency_ms}ms ${age(lp.at, now)}` : 'not yet';
      const br = !p.breaker
        ? '-'
        : `${p.breaker.state}${p.breaker.retry_after_s !== null ? ` (retry in ${p.breaker.retry_after_s}s)` : ''}, ${p.breaker.failures_in_window} failure${p.breaker.failures_in_window === 1 ? '' : 's'}${p.breaker.shared_with?.length ? `, shared with ${p.breaker.shared_with.join(', ')}` : ''}`;
      rows.push([i === 0 ? `${u.name} (${u.state}${u.steered ? ', steered' : ''})` : '', p.address, p.state, probe, br]);
    });
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)].join('\n');
}

export async function run(opts: StatusOptions): Promise<number> {
  const r = compile(opts.config);
  if (!r.model || r.diagnostics.some((x) => x.severity === 'error')) {
    for (const x of r.diagnostics) process.stderr.write(`${formatDiagnostic(x)}\n`);
    return 1;
  }
  const url = opts.url ?? statusUrl(r.model);
  if (!url) {
    process.stderr.write('gatewayctl status: global.status is false: there is no status listener to ask (give --url)\n');
    return 1;
  }
  let doc: StatusDoc;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (res.status === 404) {
      process.stderr.write(`gatewayctl status: ${url}: 404 — the running gateway has no health checks or circuit breakers (or predates them)\n`);
      return 1;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as StatusDoc;
  } catch (e) {
    process.stderr.write(`gatewayctl status: cannot read ${url}: ${(e as Error).message}\n`);
    return 1;
  }
  const d = drift(r.model, doc);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...doc, drift: d }, null, 2)}\n`);
  } else {
    const out = [table(doc, Date.now())];
    if (d.length) out.push('', 'drift (gateway.yaml vs running):', ...d.map((x) => `  ${x}`));
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return doc.upstreams.some((u) => u.state === 'down') ? 2 : 0;
}
