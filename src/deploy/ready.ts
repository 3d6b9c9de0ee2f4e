// Poll the gateway's readiness endpoint until it reports the expected config hash.

import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';

export interface Readiness {
  path: string; // e.g. /ready
  listen: string; // host:port as in the manifest, e.g. 127.0.0.1:8080 or [::1]:8080
  tls?: boolean; // probe over https (certificate not verified: it is our own listener on loopback)
  /** Host header (and TLS SNI) to send: a name the readiness server answers to (server_names). */
  host?: string;
}

export interface ReadyProbe {
  status: number | null;
  config: string | null;
  error: string | null;
}

/** Turn a listen address into something connectable (wildcards become loopback). */
export function connectAddress(listen: string): { host: string; port: number } {
  let host = '127.0.0.1';
  let portText = listen;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(listen);
  if (v6) {
    host = v6[1] === '::' ? '::1' : v6[1]!;
    portText = v6[2]!;
  } else if (listen.includes(':')) {
    const i = listen.lastIndexOf(':');
    host = listen.slice(0, i);
    portText = listen.slice(i + 1);
    if (host === '*' || host === '0.0.0.0' || host === '') host = '127.0.0.1';
  }
  const port = Number.parseInt(portText, 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad readiness listen address: ${listen}`);
  return { host, port };
}

function isIp(h: string): boolean {
  return net.isIP(h) !== 0;
}

/** GET `p` on the readiness listener with its Host/SNI; resolves with the status and body. */
export function probePath(r: Readiness, p: string, timeoutMs = 1000): Promise<{ status: number | null; body: string; error: string | null }> {
  return new Promise((resolve) => {
    let addr: { host: string; port: number };
    try {
      addr = connectAddress(r.listen);
    } catch (e) {
      resolve({ status: null, body: '', error: (e as Error).message });
      return;
    }
    const get = r.tls ? https.get : http.get;
    const headers: Record<string, string> = { connection: 'close' };
    if (r.host) headers.host = r.host;
    const tlsOpts = r.tls ? { rejectUnauthorized: false, ...(r.host && !isIp(r.host) ? { servername: r.host } : {}) } : {};
    const req = get({ host: addr.host, port: addr.port, path: p, agent: false, timeout: timeoutMs, headers, ...tlsOpts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 65536) body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? null, body, error: null }));
      res.on('error', (e) => resolve({ status: res.statusCode ?? null, body, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: null, body: '', error: e.message }));
  });
}

export async function probeReady(r: Readiness, timeoutMs = 1000): Promise<ReadyProbe> {
  const res = await probePath(r, r.path, timeoutMs);
  if (res.error !== null && res.status === null) return { status: null, config: null, error: res.error };
  let config: string | null = null;
  try {
    const v = JSON.parse(res.body) as { config?: unknown };
    if (typeof v.config === 'string') config = v.config;
  } catch {
    /* not JSON */
  }
  return { status: res.status, config, error: res.error ?? (config === null ? `unexpected body: ${res.body.slice(0, 200)}` : null) };
}

export interface WaitReadyOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Called between probes; a returned string aborts the wait with that reason. */
  check?: () => Promise<string | null>;
  /**
   * The expected hash must be seen on every probe for this long (default 300 ms). Right
   * after a reload, old workers may still accept a connection or two before they close
   * their listening sockets.
   */
  stableMs?: number;
}

export type WaitReadyResult = { ok: true; probes: number } | { ok: false; reason: string; last: ReadyProbe | null };

export async function waitReady(r: Readiness, expected: string, opts: WaitReadyOptions): Promise<WaitReadyResult> {
  const until = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 100;
  const stableMs = opts.stableMs ?? 300;
  let last: ReadyProbe | null = null;
  let probes = 0;
  let firstOk: number | null = null;
  for (;;) {
    last = await probeReady(r, Math.min(1000, Math.max(100, until - Date.now())));
    probes++;
    if (last.status === 200 && last.config === expected) {
      firstOk ??= Date.now();
      if (Date.now() - firstOk >= stableMs) return { ok: true, probes };
      await new Promise((res) => setTimeout(res, 30));
      continue;
    }
    firstOk = null;
    if (opts.check) {
      const reason = await opts.check();
      if (reason) return { ok: false, reason, last };
    }
    if (Date.now() >= until) {
      const seen =
        last.status !== null && last.status !== 200
          ? `HTTP ${last.status}`
          : last.error
            ? last.error
            : `still reports config ${last.config}`;
      return {
        ok: false,
        reason: `${r.tls ? 'https' : 'http'}://${r.listen}${r.path} did not report config ${expected.slice(0, 12)} within ${opts.timeoutMs} ms (last: ${seen})`,
        last,
      };
    }
    await new Promise((res) => setTimeout(res, interval));
  }
}
