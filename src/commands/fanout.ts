// One admin API call to every replica: the replicas are the status listeners named with
// --endpoint HOST:PORT (repeatable) and --dns NAME:PORT (every address the name resolves to;
// on Kubernetes the <name>-replicas headless Service of build --target k8s), or the one of
// gateway.yaml's global.status when neither is given. Used by `gatewayctl servers` and
// `gatewayctl keys … --live`: nginx OSS shares no state between instances, so gatewayctl
// applies a runtime change to each and reports the replicas that differ (drift).
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { resolveDns } from './replicas.ts';
import { statusUrl } from './status.ts';

export interface FanOutOptions {
  config?: string;
  url?: string;
  endpoint?: string[];
  dns?: string;
  tokenEnv?: string;
}

export interface Target {
  /** HOST:PORT, or the --url given */
  name: string;
  /** http://HOST:PORT, no trailing slash */
  base: string;
}

export interface CallResult {
  target: string;
  status: number; // 0: unreachable
  body: { error?: { code?: string; message: string; field?: string }; [k: string]: unknown } | null;
  error?: string;
}

/** The replicas to talk to, or an error message. */
export async function targets(opts: FanOutOptions, who: string): Promise<Target[] | string> {
  const out: Target[] = [];
  for (const e of opts.endpoint ?? []) {
    if (!/^(\[[^\]]+\]|[^:/]+):[0-9]{1,5}$/.test(e)) return `${who}: --endpoint wants HOST:PORT, got ${JSON.stringify(e)}`;
    out.push({ name: e, base: `http://${e}` });
  }
  if (opts.dns) {
    try {
      for (const e of await resolveDns(opts.dns)) out.push({ name: e, base: `http://${e}` });
    } catch (e) {
      return `${who}: --dns ${opts.dns}: ${(e as Error).message}`;
    }
  }
  if (opts.url) out.push({ name: opts.url, base: opts.url.replace(/\/$/, '') });
  if (out.length) return [...new Map(out.map((t) => [t.name, t])).values()];
  const r = compile(opts.config ?? 'gateway.yaml');
  if (!r.model || r.diagnostics.some((x) => x.severity === 'error')) return r.diagnostics.map((x) => formatDiagnostic(x)).join('\n');
  const s = statusUrl(r.model);
  if (!s) return `${who}: global.status is false: the admin API lives on the status listener (give --endpoint or --url)`;
  const base = s.replace(/\/admin\/status$/, '');
  return [{ name: base.replace(/^http:\/\//, ''), base }];
}

/** The admin token from the environment, or an error message. */
export function adminToken(opts: FanOutOptions, who: string): { token: string } | string {
  const envName = opts.tokenEnv ?? 'GATEWAY_ADMIN_TOKEN';
  const token = process.env[envName];
  return token ? { token } : `${who}: $${envName} is not set (the admin API's bearer token)`;
}

/** The same call on every target, in parallel. */
export function callAll(ts: Target[], token: string, method: string, path: string, body?: unknown): Promise<CallResult[]> {
  return Promise.all(
    ts.map(async (t): Promise<CallResult> => {
      try {
        const res = await fetch(`${t.base}${path}`, {
          method,
          body: body === undefined ? undefined : JSON.stringify(body),
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          signal: AbortSignal.timeout(5000),
        });
        return { target: t.name, status: res.status, body: (await res.json().catch(() => null)) as CallResult['body'] };
      } catch (e) {
        return { target: t.name, status: 0, body: null, error: (e as Error).message };
      }
    }),
  );
}

/** One line per replica that did not take the change: "HOST:PORT: 404: field: message". */
export function failureText(r: CallResult): string {
  if (r.status === 0) return `${r.target}: unreachable (${r.error})`;
  const e = r.body?.error;
  return `${r.target}: ${r.status}${e ? `: ${e.field ? `${e.field}: ` : ''}${e.message}` : ''}`;
}

/**
 * Replicas whose view differs from the others': `views` maps each replica to a set of
 * comparable strings; returns a line per difference ("HOST:PORT lacks X (on A, B)", "HOST:PORT
 * alone has X"), [] when every replica agrees.
 */
export function driftLines(views: Map<string, Set<string>>): string[] {
  const names = [...views.keys()];
  if (names.length < 2) return [];
  const all = new Set<string>();
  for (const v of views.values()) for (const x of v) all.add(x);
  const out: string[] = [];
  for (const x of [...all].sort()) {
    const have = names.filter((n) => views.get(n)!.has(x));
    if (have.length === names.length) continue;
    const lack = names.filter((n) => !views.get(n)!.has(x));
    out.push(`${lack.join(', ')} lack${lack.length === 1 ? 's' : ''} ${x} (on ${have.join(', ')})`);
  }
  return out;
}
