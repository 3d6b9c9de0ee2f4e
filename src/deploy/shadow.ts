// Prove a release before it takes traffic: run it in a second, throwaway nginx master with
// the same configuration on shadow loopback ports, probe its readiness endpoint (for the
// release's input hash, with the configured Host/SNI) and its health endpoint, then stop it.
//
// The shadow is a copy of the release directory in which only these are rewritten, through
// the config tokenizer (never text patterns):
//   - the address of every `listen` directive inside a `server` block (http, stream): each
//     distinct address becomes its own 127.0.0.1:<free port>, keeping every other listen
//     parameter (ssl, default_server, http2, proxy_protocol, …) except ipv6only=;
//   - in nginx.conf, at top level: `pid` (run/nginx.pid under the shadow prefix), an absolute
//     `error_log` (logs/error.log under the shadow prefix) and `worker_processes` (1).
// Paths relative to the nginx prefix (temp, cache, logs, pid) resolve under the shadow's own
// prefix (TARGET/shadow/), so nothing the live master uses is touched; paths relative to the
// config directory (include, njs, certificates in the build) resolve inside the copy.

import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { fatalLines, logOffset, nginxStart, type NginxLocation, preparePrefixDirs, readLogSince, runningMaster } from './nginx.ts';
import { applyEdits, mainDirectives, statements } from './nginxconf.ts';
import { probePath, type Readiness, waitReady } from './ready.ts';
import { stopNginx } from '../runtime/nginx/index.ts';

/** `listen` address → comparable key: `*:80`, `127.0.0.1:8080`, `[::]:443`, `unix:/run/x.sock`. IPv6 addresses keep their own key (`listen 80; listen [::]:80;` are two sockets). */
export function listenKey(addr: string): string {
  if (addr.startsWith('unix:')) return addr;
  const v6 = /^\[([^\]]*)\](?::(\d+))?$/.exec(addr);
  if (v6) return `[${v6[1]!.toLowerCase()}]:${v6[2] ?? '80'}`;
  if (/^\d+$/.test(addr)) return `*:${addr}`;
  const i = addr.lastIndexOf(':');
  const host = i >= 0 ? addr.slice(0, i) : addr;
  const port = i >= 0 ? addr.slice(i + 1) : '80';
  return `${host === '*' || host === '0.0.0.0' || host === '' ? '*' : host.toLowerCase()}:${port}`;
}

export interface ShadowRewrite {
  /** relative path → rewritten text, for the files that changed */
  files: Record<string, string>;
  /** listen key → shadow address (127.0.0.1:port) */
  addrs: Map<string, string>;
}

/**
 * Rewrite the listen addresses of the given config files (relative path → text) to shadow
 * addresses from `allocate`, and nginx.conf's pid / absolute error_log / worker_processes.
 */
export async function rewriteForShadow(files: Record<string, string>, allocate: () => Promise<number>): Promise<ShadowRewrite> {
  const addrs = new Map<string, string>();
  const out: Record<string, string> = {};
  for (const rel of Object.keys(files).sort()) {
    const text = files[rel]!;
    const edits: [number, number, string][] = [];
    for (const st of statements(text)) {
      const [name, ...args] = st.words;
      if (!name || name.quoted) continue;
      if (name.text === 'listen' && !st.opens && st.blocks[st.blocks.length - 1] === 'server' && args[0]) {
        const key = listenKey(args[0].text);
        let to = addrs.get(key);
        if (!to) {
          to = `127.0.0.1:${await allocate()}`;
          addrs.set(key, to);
        }
        edits.push([args[0].start, args[0].end, to]);
        for (const a of args.slice(1)) if (a.text.startsWith('ipv6only=')) edits.push([a.start, a.end, '']);
      }
      if (rel === 'nginx.conf' && st.blocks.length === 0 && !st.opens && args[0]) {
        if (name.text === 'pid') edits.push([args[0].start, args[0].end, '"run/nginx.pid"']);
        if (name.text === 'worker_processes') edits.push([args[0].start, args[0].end, '1']);
        if (name.text === 'error_log' && path.isAbsolute(args[0].text)) edits.push([args[0].start, args[0].end, '"logs/error.log"']);
      }
    }
    if (edits.length) out[rel] = applyEdits(text, edits);
  }
  return { files: out, addrs };
}

/** A loopback port nobody listens on right now. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The shadow address serving `listen` (a readiness address): same address, or the wildcard on its port. */
export function shadowAddress(addrs: Map<string, string>, listen: string): string | null {
  const key = listenKey(listen);
  const port = key.slice(key.lastIndexOf(':') + 1);
  const loopback = key.startsWith('127.') || key.startsWith('localhost:') ? (addrs.get(`localhost:${port}`) ?? addrs.get(`127.0.0.1:${port}`)) : undefined;
  return addrs.get(key) ?? addrs.get(`*:${port}`) ?? loopback ?? addrs.get(`[::]:${port}`) ?? null;
}

async function listFiles(dir: string, base = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(dir, base), { withFileTypes: true })) {
    const rel = base ? `${base}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

export interface ProveOptions {
  nginx: NginxLocation;
  releaseDir: string;
  shadowRoot: string; // removed and recreated; removed again afterwards
  prefixDirs: string[];
  readiness: Readiness | null;
  health: string | null; // liveness path, expected to answer 200
  expectedHash: string;
  timeoutMs: number;
  log: (line: string) => void;
  /** port picker (default: a free loopback port) */
  allocatePort?: () => Promise<number>;
}

export type ProveResult = { ok: true; readyAt: string | null } | { ok: false; reason: string; detail: string };

/** Start the release on shadow ports, probe it, stop it. Never throws for release problems. */
export async function proveRelease(o: ProveOptions): Promise<ProveResult> {
  const root = path.resolve(o.shadowRoot);
  const confDir = path.join(root, 'config');
  const pidFile = path.join(root, 'run', 'nginx.pid'); // pid is rewritten to it, or startNginx sets it
  // A shadow left running by a deploy that was killed mid-proof goes first.
  await stopNginx(root, { pidFile, graceful: false, timeoutMs: 5_000 }).catch(() => false);
  await fsp.rm(root, { recursive: true, force: true });
  await fsp.mkdir(root, { recursive: true });
  try {
    await fsp.cp(o.releaseDir, confDir, { recursive: true });
    const texts: Record<string, string> = {};
    for (const rel of await listFiles(confDir)) if (rel === 'nginx.conf' || rel.endsWith('.conf')) texts[rel] = await fsp.readFile(path.join(confDir, rel), 'utf8');
    const main = mainDirectives(texts['nginx.conf'] ?? '');
    const errorLogs = main.errorLogs.map((p) => (path.isAbsolute(p) ? path.join(root, 'logs/error.log') : path.join(root, p)));
    await preparePrefixDirs(root, o.nginx, o.prefixDirs);
    const conf = path.join(confDir, 'nginx.conf');

    // Free ports are picked, then bound by nginx: another process may take one in between.
    // Such a start is retried with fresh ports; any other failure is the release's.
    let rw: ShadowRewrite;
    let offsets: number[];
    for (let attempt = 1; ; attempt++) {
      rw = await rewriteForShadow(texts, o.allocatePort ?? freeLoopbackPort);
      for (const [rel, text] of Object.entries(rw.files)) await fsp.writeFile(path.join(confDir, rel), text);
      o.log(`proving the release on shadow ports (${[...rw.addrs.entries()].map(([k, v]) => `${k} → ${v}`).join(', ') || 'no listen directives'})`);
      offsets = await Promise.all(errorLogs.map(logOffset));
      const started = await nginxStart(o.nginx, root, conf);
      if (started.ok) break;
      const extra = fatalLines((await Promise.all(errorLogs.map((l, i) => readLogSince(l, offsets[i] ?? 0)))).join('\n'));
      const detail = [started.output.trim(), ...extra].filter(Boolean).join('\n');
      const shadowPortTaken = [...rw.addrs.values()].some((a) => detail.includes(`bind() to ${a} failed (98`));
      if (shadowPortTaken && attempt < 3) continue;
      return { ok: false, reason: 'the release failed to start on shadow ports', detail };
    }
    const check = async (): Promise<string | null> => {
      const lines = fatalLines((await Promise.all(errorLogs.map((l, i) => readLogSince(l, offsets[i] ?? 0)))).join('\n'));
      if (lines.length) return `the release logged errors on shadow ports:\n${lines.join('\n')}`;
      if ((await runningMaster(pidFile)) === null) return 'the shadow nginx master exited';
      return null;
    };
    if (!o.readiness) {
      const reason = await check();
      return reason ? { ok: false, reason, detail: '' } : { ok: true, readyAt: null };
    }
    const addr = shadowAddress(rw.addrs, o.readiness.listen);
    if (!addr) {
      o.log(`readiness address ${o.readiness.listen} is not among the listen directives; proved by a clean start only`);
      const reason = await check();
      return reason ? { ok: false, reason, detail: '' } : { ok: true, readyAt: null };
    }
    const shadowReady: Readiness = { ...o.readiness, listen: addr };
    const w = await waitReady(shadowReady, o.expectedHash, { timeoutMs: o.timeoutMs, check, stableMs: 0 });
    if (!w.ok) return { ok: false, reason: `readiness failed on shadow ports (${o.readiness.listen} → ${addr}): ${w.reason}`, detail: '' };
    if (o.health) {
      const h = await probePath(shadowReady, o.health);
      if (h.status !== 200) return { ok: false, reason: `health check failed on shadow ports: ${o.health} answered ${h.status ?? h.error}`, detail: '' };
    }
    return { ok: true, readyAt: addr };
  } finally {
    await stopNginx(root, { pidFile, graceful: false, timeoutMs: 5_000 }).catch(() => false);
    await fsp.rm(root, { recursive: true, force: true });
  }
}
