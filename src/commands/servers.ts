// `gatewayctl servers add|drain|remove|list`: upstream servers at runtime, through the admin
// API on the status listener (src/features/health, njs/lib/health.ts healthAdmin).
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { statusUrl } from './status.ts';

export const help = `
Talks to the running gateway's admin API (admin_api: in gateway.yaml) on the status listener,
with the bearer token from $GATEWAY_ADMIN_TOKEN (or the variable --token-env names). Changes
apply to the next request without a reload, survive reloads and restarts (state/runtime.json
under the nginx prefix) and show as drift in \`gatewayctl status\`. Runtime servers join
upstreams with health_check or circuit_breaker that do not hash consistently.

Examples:
  $ gatewayctl servers list --upstream llm
  $ gatewayctl servers add --upstream llm --address 10.0.1.9:8000 --weight 2 --models llama-3
  $ gatewayctl servers drain --upstream llm --address 10.0.1.2:8000
  $ gatewayctl servers remove --upstream llm --address 10.0.1.9:8000`;

export interface ServersOptions {
  config: string;
  upstream: string;
  address?: string;
  weight?: string;
  models?: string[];
  url?: string;
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
  let base = opts.url;
  if (!base) {
    const r = compile(opts.config);
    if (!r.model || r.diagnostics.some((x) => x.severity === 'error')) {
      for (const x of r.diagnostics) process.stderr.write(`${formatDiagnostic(x)}\n`);
      return 1;
    }
    const s = statusUrl(r.model);
    if (!s) {
      process.stderr.write('gatewayctl servers: global.status is false: the admin API lives on the status listener (give --url)\n');
      return 1;
    }
    base = s.replace(/\/admin\/status$/, '');
  }
  const envName = opts.tokenEnv ?? 'GATEWAY_ADMIN_TOKEN';
  const token = process.env[envName];
  if (!token) {
    process.stderr.write(`gatewayctl servers: $${envName} is not set (the admin API's bearer token)\n`);
    return 1;
  }
  if (action !== 'list' && !opts.address) {
    process.stderr.write(`gatewayctl servers ${action}: --address is required\n`);
    return 1;
  }
  const root = `${base.replace(/\/$/, '')}/admin/upstreams/${encodeURIComponent(opts.upstream)}/servers`;
  let url = root;
  let method = 'GET';
  let body: string | undefined;
  if (action === 'add') {
    method = 'POST';
    const doc: Record<string, unknown> = { address: opts.address };
    if (opts.weight !== undefined) doc.weight = Number(opts.weight);
    if (opts.models?.length) doc.models = opts.models;
    body = JSON.stringify(doc);
  } else if (action === 'drain') {
    method = 'POST';
    url = `${root}/${encodeURIComponent(opts.address!)}/drain`;
  } else if (action === 'remove') {
    method = 'DELETE';
    url = `${root}/${encodeURIComponent(opts.address!)}`;
  }
  let res: Response;
  try {
    res = await fetch(url, { method, body, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(5000) });
  } catch (e) {
    process.stderr.write(`gatewayctl servers: cannot reach ${url}: ${(e as Error).message}\n`);
    return 1;
  }
  const doc = (await res.json().catch(() => null)) as { error?: { message: string; field?: string }; servers?: Server[] } | null;
  if (!res.ok) {
    const e = doc?.error;
    process.stderr.write(`gatewayctl servers ${action}: ${res.status}${e ? `: ${e.field ? `${e.field}: ` : ''}${e.message}` : ''}\n`);
    return 1;
  }
  if (opts.json || action !== 'list') {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return 0;
  }
  const rows = (doc?.servers ?? []).map((s) => [s.address, String(s.weight), s.state, s.runtime ? 'runtime' : 'gateway.yaml', s.models?.join(',') ?? '']);
  const head = ['SERVER', 'WEIGHT', 'STATE', 'FROM', 'MODELS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  process.stdout.write(`${[fmt(head), ...rows.map(fmt)].join('\n')}\n`);
  return 0;
}
