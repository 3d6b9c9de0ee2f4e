// `gatewayctl bench -c gateway.yaml`: each route of the user's config measured against a stub
// upstream, next to plain nginx (src/bench/run.ts does the work; this prints it).
import { formatDiagnostic } from '../model/diagnostics.ts';
import { benchConfig, BenchRefused, stopAll, type ConfigReport, type Spread } from '../bench/run.ts';
import type { RouteOverrides } from '../bench/requests.ts';

export const help = `
Compiles your gateway.yaml in-process, points every upstream at a stub nginx answering
\`return 200\`, serves it with one nginx worker on loopback ports in a temporary directory, and
measures each route with a request that reaches it: its path (a sample of a regex), Host and
required headers, a JSON body with a catalogue model on \`models: route\` routes, and a
credential: an API key made in a temporary copy of the key store, or an HS* token signed with
the provider's secret. Routes it cannot make a request for (a JWKS provider: no private key)
are skipped with the reason; give them one with --header. A pre-flight request must reach
its route (checked in a probe build's access log) and answer 2xx, else the route is skipped
with the reason (--path gives another path). Each route's figure is the gateway
worker's CPU per request (median of the rounds) and its ratio to a plain nginx proxy_pass
measured in the same rounds; --instructions adds callgrind's instruction counts, which a busy
machine does not disturb. Nothing of your deployment is touched: no file is written outside
the temporary directory, the key store is only read, and every nginx started is stopped.

Examples:
  $ gatewayctl bench -c gateway.yaml
  $ gatewayctl bench -c gateway.yaml --route chat,embeddings --seconds 5 --rounds 5
  $ gatewayctl bench -c gateway.yaml --header 'partner=Authorization: Bearer eyJ…' --path 'files=/files/a.txt'
  $ gatewayctl bench -c gateway.yaml --instructions --json

Exit status: 0 when every route was measured, 3 when some were skipped, 1 when the config is
refused or the run fails, 2 on a usage error.`;

export interface BenchCommandOptions {
  config: string;
  seconds?: string;
  rounds?: string;
  warmup?: string;
  connections?: string;
  threads?: string;
  client?: 'auto' | 'wrk' | 'node';
  route?: string;
  path?: string[];
  header?: string[];
  instructions?: boolean | string;
  nginx?: string;
  json?: boolean;
}

/** --path route=/p and --header [route=]Name: value → per-route overrides (an error text on a bad one). */
export function parseOverrides(paths: string[], headers: string[], routes: string[]): Record<string, RouteOverrides> | string {
  const out: Record<string, RouteOverrides> = {};
  const of = (r: string) => (out[r] ??= {});
  for (const p of paths) {
    const m = /^([a-z0-9_-]+)=(\/.*)$/.exec(p);
    if (!m) return `--path ${p}: expected <route>=/path`;
    of(m[1]).path = m[2];
  }
  for (const h of headers) {
    const m = /^(?:([a-z0-9_-]+)=)?([A-Za-z0-9!#$%&'*+.^_`|~-]+):\s*(.*)$/.exec(h);
    if (!m) return `--header ${h}: expected [<route>=]Name: value`;
    for (const r of m[1] ? [m[1]] : routes) (of(r).headers ??= {})[m[2]] = m[3];
  }
  return out;
}

const num = (v: string | undefined, dflt: number) => (v === undefined ? dflt : Number(v));
const f = (x: number, d: number) => x.toFixed(d);
const sp = (s: Spread, d: number) => `${f(s.median, d)} [${f(s.min, d)}–${f(s.max, d)}]`;

export function formatReport(r: ConfigReport): string {
  const lines: string[] = [];
  lines.push(`${r.config}: one nginx worker; load: ${r.client}${r.client === 'wrk' ? ` -t${r.threads}` : ''} -c${r.connections}, ${r.seconds}s per route x ${r.rounds} rounds (interleaved); ${r.cpus} CPUs`);
  lines.push(`plain nginx proxy_pass (baseline): ${sp(r.baseline.get, 1)} CPU µs/req GET (user ${f(r.baseline.getUserUs, 1)} + sys ${f(r.baseline.getSysUs, 1)})${r.baseline.post ? `, ${sp(r.baseline.post, 1)} POST` : ''}${r.baseline.instructions ? `; ${Math.round(r.baseline.instructions)} instructions/req GET${r.baseline.instructionsPost ? `, ${Math.round(r.baseline.instructionsPost)} POST` : ''}` : ''}`);
  lines.push('CPU ratio: to the baseline of the same round (body routes to its POST); figures are median [min–max]; user + sys: medians from /proc ticks (10 ms each)');
  const instr = r.rows.some((x) => x.instructions);
  const head = ['route', 'request', 'auth', 'njs', 'CPU µs/req', 'user + sys', 'CPU ratio', ...(instr ? ['instr/req', 'instr ratio'] : [])];
  const table: string[][] = [head];
  for (const x of r.rows) {
    const req = x.method ? `${x.method} ${x.path}` : '';
    if (x.skipped) {
      table.push([x.route, req, x.credential ?? '', String(x.njsCalls), 'skipped', '', '', ...(instr ? ['', ''] : [])]);
      continue;
    }
    table.push([
      x.route,
      req,
      x.credential ?? '',
      String(x.njsCalls),
      x.cpuUs ? sp(x.cpuUs, 1) : '',
      x.userUs !== null && x.sysUs !== null ? `${f(x.userUs, 1)} + ${f(x.sysUs, 1)}` : '',
      x.cpuRatio ? sp(x.cpuRatio, 2) : '',
      ...(instr ? [x.instructions ? String(Math.round(x.instructions.perRequest)) : '', x.instructions ? f(x.instructions.ratio, 2) : ''] : []),
    ]);
  }
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) lines.push(row.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
  const skipped = r.rows.filter((x) => x.skipped);
  if (skipped.length) {
    lines.push('');
    for (const x of skipped) lines.push(`skipped ${x.route}: ${x.skipped}`);
  }
  const answered = r.rows.filter((x) => !x.skipped && !x.proxied);
  if (answered.length) lines.push(`answered by the gateway itself (no upstream): ${answered.map((x) => x.route).join(', ')}`);
  lines.push('');
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

export async function run(opts: BenchCommandOptions): Promise<number> {
  const seconds = num(opts.seconds, 2);
  const rounds = num(opts.rounds, 3);
  const warmup = num(opts.warmup, 1);
  const connections = num(opts.connections, 32);
  const threads = num(opts.threads, 2);
  for (const [name, v, int] of [['--seconds', seconds, false], ['--rounds', rounds, true], ['--warmup', warmup, false], ['--connections', connections, true], ['--threads', threads, true]] as const) {
    if (!(v > 0) || (int && !Number.isInteger(v)) || v > 100_000) {
      process.stderr.write(`gatewayctl bench: ${name} must be a positive ${int ? 'integer' : 'number'}\n`);
      return 2;
    }
  }
  const instrN = opts.instructions === undefined || opts.instructions === false ? null : opts.instructions === true ? 400 : Number(opts.instructions);
  if (instrN !== null && !(Number.isInteger(instrN) && instrN > 0)) {
    process.stderr.write('gatewayctl bench: --instructions takes a positive number of requests\n');
    return 2;
  }
  const only = opts.route?.split(',').filter(Boolean);
  // route names for headers given to all routes: known only after compiling; '*' stands for them
  const over = parseOverrides(opts.path ?? [], opts.header ?? [], ['*']);
  if (typeof over === 'string') {
    process.stderr.write(`gatewayctl bench: ${over}\n`);
    return 2;
  }
  const onSignal = () => {
    stopAll();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', stopAll);
  try {
    const all = over['*'];
    delete over['*'];
    const report = await benchConfig({
      config: opts.config,
      seconds,
      rounds,
      warmup,
      connections,
      threads,
      client: opts.client ?? 'auto',
      overrides: over,
      allRoutes: all,
      only,
      instructions: instrN ? { requests: instrN } : null,
      nginx: opts.nginx,
      log: opts.json ? undefined : (l) => process.stderr.write(`${l}\n`),
    });
    process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return report.rows.some((x) => x.skipped) ? 3 : 0;
  } catch (e) {
    if (e instanceof BenchRefused) {
      for (const d of e.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
      process.stderr.write(`gatewayctl bench: ${opts.config} cannot be benchmarked (${e.diagnostics.length} error(s))\n`);
      return 1;
    }
    process.stderr.write(`gatewayctl bench: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('exit', stopAll);
  }
}
