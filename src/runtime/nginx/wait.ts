// Waiting helpers: poll a condition until a deadline (NGINX_TIMEOUT), wait for ports to
// accept TCP connections, and the tail of a log text for error messages.

import { connect } from 'node:net';
import { NginxError } from './errors.ts';

/** Poll `check` every 25 ms until it returns true; throws NGINX_TIMEOUT after timeoutMs. Errors from check propagate. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new NginxError('NGINX_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Resolve once a TCP connection to host:port succeeds. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Wait until every port accepts TCP connections on `host` (default 127.0.0.1). `alive`, when
 * given, is consulted between attempts so a crashed nginx fails fast instead of timing out.
 */
export async function waitForPorts(
  ports: number[],
  opts: { host?: string; timeoutMs?: number; alive?: () => boolean | Promise<boolean> } = {},
): Promise<void> {
  const pending = new Set(ports);
  await waitFor(
    async () => {
      for (const p of [...pending]) if (await canConnect(p, opts.host)) pending.delete(p);
      if (pending.size && opts.alive && !(await opts.alive())) {
        throw new NginxError('NGINX_START_FAILED', `nginx exited before listening on ${[...pending].join(', ')}.`);
      }
      return pending.size === 0;
    },
    opts.timeoutMs ?? 10_000,
    `ports ${ports.join(', ')} to accept connections`,
  );
}

/** Last `n` lines of a text. */
export function tail(text: string, n: number): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}
