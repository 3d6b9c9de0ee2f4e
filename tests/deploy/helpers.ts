// Test helpers for deploy: hand-written fixture builds (nginx.conf + conf.d + manifest.json
// in the shape the compiler emits), a steady-load driver and the out-of-process load client.
// Ports, upstreams, the HTTP client (get, readSse) and fileMode come from tests/support.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

export async function tempDir(tag: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `gatewayctl-${tag}-`));
}

import { get, type Reply } from '../support/http.ts';

export interface FixtureOptions {
  /** Label that the gateway adds as `x-release` and that makes the input hash differ. */
  label: string;
  port: number; // the gateway's listen port (also serves /ready and /health)
  upstreamPort: number;
  /** Extra text inside the server block (e.g. a broken directive). */
  serverExtra?: string;
  /** Extra top-level http text (e.g. a second server on a taken port). */
  httpExtra?: string;
  /** Extra files: relative path -> content (e.g. njs/secrets.json, tls/server.key). */
  extraFiles?: Record<string, string>;
  /** Serve the listener (and so /ready) over TLS with this PEM certificate and key. */
  tls?: { cert: string; key: string };
  /** A release that is not ready: /ready answers 503 and every proxied request 503. */
  notReady?: boolean;
}

export interface Fixture {
  dir: string;
  hash: string; // input sha256 reported by /ready
}

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** Write a build directory like `gatewayctl build` would, proxying to a Node upstream. */
export async function writeFixture(dir: string, o: FixtureOptions): Promise<Fixture> {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(path.join(dir, 'conf.d'), { recursive: true });
  const input = `# fixture gateway.yaml\nrelease: ${o.label}\nlisten: ${o.port}\nupstream: ${o.upstreamPort}\n${o.serverExtra ?? ''}${o.httpExtra ?? ''}`;
  const hash = sha(input);
  const files: Record<string, string> = {};
  files['nginx.conf'] = `# generated fixture (${o.label})
worker_processes 1;
pid run/nginx.pid;
error_log logs/error.log notice;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    include conf.d/*.conf;
}
`;
  files['conf.d/30-upstreams.conf'] = `upstream app {
    server 127.0.0.1:${o.upstreamPort};
    keepalive 16;
}
`;
  const tlsLines = o.tls ? `    ssl_certificate tls/server.crt;\n    ssl_certificate_key tls/server.key;\n` : '';
  if (o.tls) {
    files['tls/server.crt'] = o.tls.cert;
    files['tls/server.key'] = o.tls.key;
  }
  files['conf.d/40-servers.conf'] = `server {
    listen 127.0.0.1:${o.port}${o.tls ? ' ssl' : ''};
${tlsLines}    add_header x-release "${o.label}" always;

    location = /ready {
        default_type application/json;
        return ${o.notReady ? `503 '{"status":"not ready"}'` : `200 '{"status":"ready","config":"${hash}"}'`};
    }
    location = /health {
        default_type text/plain;
        return 200 "ok\\n";
    }
    location /sse {
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_read_timeout 60s;
    }
    location / {
${o.notReady ? '        return 503;\n' : ''}        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
${o.serverExtra ?? ''}}
${o.httpExtra ?? ''}`;
  for (const [rel, text] of Object.entries(o.extraFiles ?? {})) files[rel] = text;
  const sums: Record<string, string> = {};
  for (const [rel, text] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fsp.writeFile(path.join(dir, rel), text);
    sums[rel] = sha(text);
  }
  const manifest = {
    input: { file: 'gateway.yaml', sha256: hash },
    version: '0.1.0',
    files: sums,
    readiness: { 'url path': '/ready', listen: `127.0.0.1:${o.port}` },
    listeners: [{ name: 'public', port: o.port, tls: !!o.tls }],
  };
  await fsp.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return { dir, hash };
}

export async function readyHash(port: number): Promise<string | null> {
  try {
    const r = await get(port, '/ready');
    return (JSON.parse(r.body) as { config?: string }).config ?? null;
  } catch {
    return null;
  }
}

export interface LoadStats {
  ok: number;
  failed: number;
  failures: string[];
  /** Requests retried once because their idle keep-alive connection was closed under them. */
  retried: string[];
  releases: Map<string, number>; // x-release -> count
}

/**
 * Steady traffic: `concurrency` loops issuing GETs until `total` requests are done or
 * stop() is called, pausing `pauseMs` between requests. Every non-200 or transport error is
 * a failure. With a keep-alive agent, a GET whose *reused idle* connection is closed before
 * any response arrives is retried once on a new connection, as HTTP clients do for
 * idempotent requests (RFC 9112 §9.3.1): a server may close an idle connection at any time,
 * and nginx's old workers do exactly that when a reload retires them. Those are recorded in
 * `retried`; a second failure counts as failed. With `retries`, any transport error and any
 * 502/503/504 is retried on a new connection up to that many times.
 */
export function steadyLoad(port: number, o: { total: number; concurrency: number; pauseMs: number; agent?: http.Agent | false; retries?: number }) {
  const stats: LoadStats = { ok: 0, failed: 0, failures: [], retried: [], releases: new Map() };
  let issued = 0;
  let stopped = false;
  const retry = async (n: number, first: Error | null): Promise<Reply> => {
    let last = first;
    for (let i = 0; i < Math.max(1, o.retries ?? 0); i++) {
      try {
        return await get(port, `/api/item/${n}`, { agent: false });
      } catch (e) {
        last = e as Error;
        if (o.retries) stats.retried.push(`#${n}: ${last.message}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    throw last ?? new Error('retry failed');
  };
  const loop = async () => {
    while (!stopped && issued < o.total) {
      issued++;
      const n = issued;
      try {
        let r: Reply;
        try {
          r = await get(port, `/api/item/${n}`, { agent: o.agent ?? false });
        } catch (e) {
          if (!(e as { reusedSocket?: boolean }).reusedSocket && !o.retries) throw e;
          stats.retried.push(`#${n}: ${(e as Error).message}`);
          r = await retry(n, e as Error);
        }
        // with `retries`, a client that retries idempotent requests on transport errors and
        // 502/503/504 on a new connection (as a client of a replicated service does)
        for (let left = o.retries ?? 0; left > 0 && [502, 503, 504].includes(r.status); left--) {
          stats.retried.push(`#${n}: HTTP ${r.status}`);
          r = await retry(n, null);
        }
        if (r.status === 200) {
          stats.ok++;
          const rel = String(r.headers['x-release'] ?? '?');
          stats.releases.set(rel, (stats.releases.get(rel) ?? 0) + 1);
        } else {
          stats.failed++;
          stats.failures.push(`#${n}: HTTP ${r.status} ${r.body.slice(0, 120)}`);
        }
      } catch (e) {
        stats.failed++;
        stats.failures.push(`#${n}: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, o.pauseMs));
    }
  };
  const done = Promise.all(Array.from({ length: o.concurrency }, loop)).then(() => stats);
  return {
    stats,
    done,
    stop() {
      stopped = true;
      return done;
    },
  };
}

/** How many reload signals the master in TARGET (prefix = target) has received so far. */
export function reloadSignals(target: string): number {
  const log = fs.readFileSync(path.join(target, 'logs', 'error.log'), 'utf8');
  return (log.match(/signal 1 \(SIGHUP\) received/g) ?? []).length;
}

export interface LoadClientResult {
  fresh: Omit<LoadStats, 'releases'> & { releases: Record<string, number> };
  keepAlive: Omit<LoadStats, 'releases'> & { releases: Record<string, number> };
  sse: { ids: number[]; status: number; error: string | null };
  elapsed: number;
}

/**
 * Start tests/deploy/load-client.ts in its own process against `port` (one SSE stream of
 * `events` events plus `total` fresh and `total` keep-alive requests); resolves once traffic
 * runs. `result` resolves with the client's statistics when it is done.
 */
export async function startLoadClient(port: number, events: number, total: number): Promise<{ result: Promise<LoadClientResult>; kill(): void }> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const client = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./load-client.ts', import.meta.url)), String(port), String(events), String(total)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  client.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    client.stdout!.on('data', (c: string) => {
      out += c;
      if (out.includes('started\n')) resolve();
    });
    client.on('exit', (code) => reject(new Error(`load client exited early (${code}): ${out}`)));
  });
  const result = new Promise<LoadClientResult>((resolve, reject) =>
    client.on('exit', (code) => {
      if (code !== 0) reject(new Error(`load client exited with ${code}: ${out}`));
      else resolve(JSON.parse(out.slice(out.indexOf('started\n') + 8).trim()) as LoadClientResult);
    }),
  );
  return { result, kill: () => void (client.exitCode === null && client.kill('SIGKILL')) };
}
