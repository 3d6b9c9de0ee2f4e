// `gatewayctl servers add|drain|remove|list`: upstream servers at runtime, through the admin
// API on the status listener (src/features/health, njs/lib/health.ts healthAdmin).
import { adminToken, callAll, driftLines, failureText, targets } from './fanout.ts';

export const help = `
Talks to the running gateway's admin API (admin_api: in gateway.yaml) on the status listener,
with the bearer token from $GATEWAY_ADMIN_TOKEN (or the variable --token-env names). Changes
apply to the next request without a reload, survive reloads and restarts (state/runtime.json
under the nginx prefix) and show as drift in \`gatewayctl status\`. Runtime servers join
upstreams with health_check or circuit_breaker (on a consistent_hash upstream they join
the ring: see \`gatewayctl route --live\`).

Examples:
  $ gatewayctl servers list --upstream llm
  $ gatewayctl servers add --upstream llm --address 10.0.1.9:8000 --weight 2 --models llama-3
  $ gatewayctl servers drain --upstream llm --address 10.0.1.2:8000
  $ gatewayctl servers remove --upstream llm --address 10.0.1.9:8000
  $ gatewayctl servers add --upstream llm --address 10.0.1.9:8000 --endpoint 10.0.0.5:8081 --endpoint 10.0.0.6:8081
  $ gatewayctl servers list --upstream llm --dns gateway-replicas.edge.svc.cluster.local:8081

Several replicas (--endpoint HOST:PORT of each status listener, repeatable, or --dns NAME:PORT,
on Kubernetes the <name>-replicas headless Service): the change goes to every replica; a
replica that did not take it is named and the exit status is 1. \`list\` over several
replicas reports drift: a server one replica runs and another does not (exit status 1).`;

export interface ServersOptions {
  config: string;
  upstream: string;
  address?: string;
  weight?: string;
  models?: string[];
  url?: string;
  /** every replica: HOST:PORT of its status listener (repeatable) */
  endpoint?: string[];
  /** every replica: a DNS name with each one's address, NAME:PORT */
  dns?: string;
  tokenEnv?: string;
  json?: boolean;
}

interface Server {
  address: string;
  weight: number;
  state: string;
  runtime: boolean;
  models: string[] | null;
}

export async function run(action: 'add' | 'drain' | 'remove' | 'list', opts: ServersOptions): Promise<number> {
  const who = `gatewayctl servers ${action}`;
  const ts = await targets(opts, who);
  if (typeof ts === 'string') {
    process.stderr.write(`${ts}\n`);
    return 1;
  }
  const tok = adminToken(opts, who);
  if (typeof tok === 'string') {
    process.stderr.write(`${tok}\n`);
    return 1;
  }
  if (action !== 'list' && !opts.address) {
    process.stderr.write(`${who}: --address is required\n`);
    return 1;
  }
  const root = `/admin/upstreams/${encodeURIComponent(opts.upstream)}/servers`;
  let url = root;
  let method = 'GET';
  let body: unknown;
  if (action === 'add') {
    method = 'POST';
    const doc: Record<string, unknown> = { address: opts.address };
    if (opts.weight !== undefined) doc.weight = Number(opts.weight);
    if (opts.models?.length) doc.models = opts.models;
    body = doc;
  } else if (action === 'drain') {
    method = 'POST';
    url = `${root}/${encodeURIComponent(opts.address!)}/drain`;
  } else if (action === 'remove') {
    method = 'DELETE';
    url = `${root}/${encodeURIComponent(opts.address!)}`;
  }
  const results = await callAll(ts, tok.token, method, url, body);
  const many = ts.length > 1;
  const failed = results.filter((r) => r.status < 200 || r.status > 299);
  for (const r of failed) process.stderr.write(`${who}: ${many ? failureText(r) : failureText(r).slice(r.target.length + 2)}\n`);
  if (action !== 'list') {
    if (opts.json || !many) {
      const docs = results.filter((r) => !failed.includes(r)).map((r) => r.body);
      if (docs.length) process.stdout.write(`${JSON.stringify(many ? Object.fromEntries(results.map((r) => [r.target, r.body])) : docs[0], null, 2)}\n`);
    } else {
      for (const r of results) if (!failed.includes(r)) process.stdout.write(`${r.target}: ok\n`);
    }
    if (failed.length && many) process.stderr.write(`${who}: ${failed.length} of ${ts.length} replicas did not take the change: they drift from the others (run it again, or \`gatewayctl servers list\` with the same replicas)\n`);
    return failed.length ? 1 : 0;
  }
  if (failed.length === results.length) return 1;
  const ok = results.filter((r) => !failed.includes(r));
  // drift: the servers (address, weight, runtime or not, draining or not) each replica runs
  const views = new Map(
    ok.map((r) => [r.target, new Set(((r.body?.servers as Server[] | undefined) ?? []).map((s) => `${s.address} (weight ${s.weight}, ${s.runtime ? 'runtime' : 'gateway.yaml'}${s.state === 'draining' ? ', draining' : ''})`))]),
  );
  const drift = driftLines(views);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(many ? { replicas: Object.fromEntries(ok.map((r) => [r.target, r.body?.servers])), drift } : ok[0]!.body, null, 2)}\n`);
    return failed.length || drift.length ? 1 : 0;
  }
  for (const r of ok) {
    if (many) process.stdout.write(`${r.target}\n`);
    const rows = ((r.body?.servers as Server[] | undefined) ?? []).map((s) => [s.address, String(s.weight), s.state, s.runtime ? 'runtime' : 'gateway.yaml', s.models?.join(',') ?? '']);
    const head = ['SERVER', 'WEIGHT', 'STATE', 'FROM', 'MODELS'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
    const fmt = (x: string[]) => x.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
    process.stdout.write(`${[fmt(head), ...rows.map(fmt)].join('\n')}\n`);
  }
  for (const l of drift) process.stderr.write(`drift: upstream ${opts.upstream}: ${l}\n`);
  return failed.length || drift.length ? 1 : 0;
}
