// Integration-test harness: real nginx (the project runtime unless GATEWAYCTL_NGINX says
// otherwise) in a throw-away prefix under os.tmpdir().
//
// nginx runs in the foreground as a child of the test process (`-g 'daemon off;'`), so its
// startup stderr is captured and a crash is noticed at once; startNginx() resolves once the
// pid file names that child, and we then wait until every port the caller listed accepts
// TCP connections. stop() always kills it; a process 'exit' hook SIGKILLs any gateway a
// failing test left behind. Set GATEWAYCTL_KEEP_PREFIX=1 to keep prefixes for inspection.
//
// When running as root, nginx workers switch to `nobody`: the prefix is made world-readable
// (mkdtemp creates it 0700) so workers can reach temp/ and cache/ below it.

import { chmodSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  childPids,
  findNginx,
  killProcess,
  preparePrefix,
  reloadNginx,
  startNginx,
  tail,
  waitForPorts,
  type NginxLocation,
  type NginxProcess,
} from '../../src/runtime/nginx/index.ts';

export interface Gateway {
  /** Absolute nginx prefix (`-p`). */
  prefix: string;
  /** Main config file nginx was started with. */
  confPath: string;
  /** Ports the harness waited for. */
  ports: number[];
  /** nginx master pid. */
  pid: number;
  /** `http://127.0.0.1:<port><path>`; port defaults to the first listed port. */
  url(pathname?: string, port?: number): string;
  /** Current error log text (plus nginx stderr, if any). */
  errorLog(): string;
  /** Current access log text ('' when the config logs elsewhere or nothing yet). */
  accessLog(): string;
  /** HUP and wait until new workers run (throws with the error log if the config is rejected). */
  reload(): Promise<void>;
  /** Stop nginx (fast shutdown, then SIGKILL) and remove the prefix. Idempotent. */
  stop(): Promise<void>;
}

export interface StartGatewayOptions {
  /** Build output directory holding nginx.conf (conf.d/, njs/ next to it). */
  distDir: string;
  /** Ports (on 127.0.0.1) that must accept connections before the gateway counts as started. */
  ports: number[];
  /** Use this prefix instead of a fresh temp directory (it is not removed by stop()). */
  prefix?: string;
  /** Explicit nginx binary (default: findNginx(), i.e. the project runtime). */
  nginx?: string;
  /** Log paths relative to the prefix, when the config's own cannot be read from nginx.conf. */
  errorLogPath?: string;
  accessLogPath?: string;
  timeoutMs?: number;
}

interface Live {
  proc: NginxProcess;
  stop: () => Promise<void>;
}
const live = new Set<Live>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL the master and its workers.
  process.on('exit', killAllSync);
  // A test worker terminated by a signal never runs 'exit' handlers: clean up, then let the
  // signal do what it would have done (re-raise when nobody else handles it).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) {
      process.on(sig, killAllSync);
    } else {
      process.once(sig, () => {
        killAllSync();
        process.kill(process.pid, sig);
      });
    }
  }
}

function killAllSync(): void {
  for (const l of live) {
    for (const pid of [...childPids(l.proc.pid), l.proc.pid]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

let cachedLoc: Promise<NginxLocation> | null = null;
function nginxLocation(explicit?: string): Promise<NginxLocation> {
  if (explicit) return findNginx({ nginx: explicit });
  cachedLoc ??= findNginx({});
  return cachedLoc;
}

/**
 * Start real nginx on a build output directory: the prefix gets the standard layout plus the
 * manifest's prefixDirs, and the modules link to the runtime's modules.
 */
export async function startGateway(opts: StartGatewayOptions): Promise<Gateway> {
  const confPath = path.resolve(opts.distDir, 'nginx.conf');
  if (!existsSync(confPath)) throw new Error(`startGateway: ${confPath} does not exist`);
  return launch(confPath, opts.ports, {
    prefix: opts.prefix,
    nginx: opts.nginx,
    errorLogPath: opts.errorLogPath,
    accessLogPath: opts.accessLogPath,
    timeoutMs: opts.timeoutMs,
    confRoot: path.resolve(opts.distDir),
  });
}

export interface RawNginxOptions {
  /** Extra files written next to nginx.conf (relative paths), e.g. `{ 'main.js': '…' }` for js_import. */
  files?: Record<string, string>;
  nginx?: string;
  timeoutMs?: number;
}

/**
 * Start nginx on a hand-written config (njs tests before the compiler exists). The text is
 * written to `<prefix>/conf/nginx.conf`; `js_import foo.js` resolves against that directory.
 * Missing essentials are added (see completeRawConf): `error_log logs/error.log info;`, and
 * temp paths and `access_log logs/access.log` inside `http {}` so nothing touches the
 * compiled-in /var/lib/nginx and /var/log/nginx. Without a
 * `pid` directive the runner uses run/nginx.pid. `load_module modules/…` works as is.
 */
export async function startRawNginx(confText: string, ports: number[], opts: RawNginxOptions = {}): Promise<Gateway> {
  const prefix = await makePrefix();
  const confDir = path.join(prefix, 'conf');
  await mkdir(confDir, { recursive: true });
  for (const [rel, text] of Object.entries(opts.files ?? {})) {
    const file = path.join(confDir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  const confPath = path.join(confDir, 'nginx.conf');
  await writeFile(confPath, completeRawConf(confText));
  return launch(confPath, ports, { prefix, ownsPrefix: true, nginx: opts.nginx, timeoutMs: opts.timeoutMs, confRoot: confDir });
}

/** Add the directives a raw test config needs but tends to forget. Pure; exported for tests. */
export function completeRawConf(text: string): string {
  let out = text;
  if (!/^\s*error_log\s/m.test(out)) out = `error_log logs/error.log info;\n${out}`;
  const add: string[] = [];
  if (!/client_body_temp_path\s/.test(out)) add.push(...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path temp/${t};`));
  if (!/\baccess_log\s/.test(out)) add.push('  access_log logs/access.log;');
  if (add.length) out = out.replace(/^(\s*http\s*\{)/m, `$1\n${add.join('\n')}`);
  return out;
}

/** Write a new main config for a raw gateway (then call gw.reload()). */
export async function rewriteRawConf(gw: Gateway, confText: string, files: Record<string, string> = {}): Promise<void> {
  const confDir = path.dirname(gw.confPath);
  for (const [rel, text] of Object.entries(files)) await writeFile(path.join(confDir, rel), text);
  await writeFile(gw.confPath, completeRawConf(confText));
}

async function makePrefix(): Promise<string> {
  const prefix = await mkdtemp(path.join(tmpdir(), 'gatewayctl-gw-'));
  await chmod(prefix, 0o755);
  return prefix;
}

interface LaunchOptions {
  prefix?: string;
  ownsPrefix?: boolean;
  nginx?: string;
  errorLogPath?: string;
  accessLogPath?: string;
  timeoutMs?: number;
  confRoot: string; // directory whose *.conf files are scanned for log paths
}

async function launch(confPath: string, ports: number[], opts: LaunchOptions): Promise<Gateway> {
  installExitHook();
  const loc = await nginxLocation(opts.nginx);
  const ownsPrefix = opts.ownsPrefix ?? !opts.prefix;
  const prefix = opts.prefix ? path.resolve(opts.prefix) : await makePrefix();
  await preparePrefix(prefix, loc.modulesDir, { dirs: manifestPrefixDirs(opts.confRoot) });
  if (process.getuid?.() === 0) {
    try {
      chmodSync(prefix, 0o755);
    } catch {
      // not ours to change; workers may lack access
    }
  }

  const logs = scanLogPaths(opts.confRoot, confPath);
  const errorLogRel = opts.errorLogPath ?? logs.errorLog;
  const accessLogRel = opts.accessLogPath ?? logs.accessLog;
  const resolveLog = (p: string | null) => (p && p !== 'stderr' ? path.resolve(prefix, p) : null);
  const errorLogFile = resolveLog(errorLogRel);
  const accessLogFile = resolveLog(accessLogRel);

  let proc: NginxProcess;
  try {
    proc = await startNginx(loc, prefix, confPath, { foreground: true, timeoutMs: opts.timeoutMs ?? 15_000 });
  } catch (err) {
    if (ownsPrefix && !process.env.GATEWAYCTL_KEEP_PREFIX) await rm(prefix, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  const entry: Live = { proc, stop: async () => undefined };
  live.add(entry);
  let exited = false;
  void proc.exited?.then(() => {
    exited = true;
  });

  const readText = (f: string | null) => {
    if (!f) return '';
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const errorLog = () => {
    const stderr = proc.output().trim();
    return readText(errorLogFile) + (stderr ? `\n[nginx stderr]\n${stderr}\n` : '');
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      if (!exited) {
        // Fast shutdown (SIGTERM), escalating to SIGKILL for the master and its workers.
        await killProcess(proc.pid, 'SIGTERM', 5_000);
        await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 2_000))]);
      }
    } finally {
      live.delete(entry);
      if (ownsPrefix && !process.env.GATEWAYCTL_KEEP_PREFIX) await rm(prefix, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  entry.stop = stop;

  const gw: Gateway = {
    prefix,
    confPath,
    ports,
    pid: proc.pid,
    url: (pathname = '/', port = ports[0]) => `http://127.0.0.1:${port}${pathname.startsWith('/') ? '' : '/'}${pathname}`,
    errorLog,
    accessLog: () => readText(accessLogFile),
    reload: async () => {
      try {
        await reloadNginx(prefix, { wait: true, pidFile: proc.pidFile, errorLog: errorLogFile ?? undefined, timeoutMs: 10_000 });
      } catch (err) {
        throw attachLog(err, gw);
      }
    },
    stop,
  };

  try {
    await waitForPorts(ports, { timeoutMs: opts.timeoutMs ?? 15_000, alive: () => !exited });
  } catch (err) {
    const e = attachLog(err, gw);
    await stop();
    throw e;
  }
  return gw;
}

/** `prefixDirs` from a build's manifest.json (directories the config expects under the prefix). */
function manifestPrefixDirs(distDir: string): string[] {
  try {
    const m = JSON.parse(readFileSync(path.join(distDir, 'manifest.json'), 'utf8')) as { prefixDirs?: unknown };
    return Array.isArray(m.prefixDirs) ? m.prefixDirs.filter((d): d is string => typeof d === 'string') : [];
  } catch {
    return [];
  }
}

/** Main-level error_log and the first non-off access_log across the config's *.conf files. */
function scanLogPaths(confRoot: string, confPath: string): { errorLog: string; accessLog: string } {
  const files = [confPath, ...listConf(confRoot).filter((f) => f !== confPath)];
  let errorLog: string | null = null;
  let accessLog: string | null = null;
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8').replace(/#[^\n]*/g, '');
    } catch {
      continue;
    }
    if (!errorLog && f === confPath) {
      // Only a directive outside any block sets the main error log.
      const m = /^error_log\s+("[^"]+"|'[^']+'|[^\s;]+)/m.exec(text);
      if (m) errorLog = unquote(m[1]);
    }
    if (!accessLog) {
      for (const m of text.matchAll(/\baccess_log\s+("[^"]+"|'[^']+'|[^\s;]+)/g)) {
        const p = unquote(m[1]);
        if (p !== 'off' && !p.includes('$') && !p.startsWith('syslog:')) {
          accessLog = p;
          break;
        }
      }
    }
  }
  return { errorLog: errorLog ?? 'logs/error.log', accessLog: accessLog ?? 'logs/access.log' };
}

function listConf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 3) return;
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.name.endsWith('.conf')) out.push(p);
    }
  };
  walk(dir, 0);
  return out;
}

function unquote(s: string): string {
  return s.replace(/^["']|["']$/g, '');
}

function attachLog(err: unknown, gw: Pick<Gateway, 'errorLog' | 'prefix'>): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const log = gw.errorLog();
  const marker = '--- nginx error log';
  if (!e.message.includes(marker)) {
    e.message += `\n${marker} (${gw.prefix}, last 60 lines) ---\n${log.trim() ? tail(log, 60) : '(empty)'}`;
  }
  return e;
}

/**
 * Run a block of assertions; if it throws, the error message gets the tail of nginx's error
 * log appended so a failing integration test shows what nginx said.
 *
 *   await withErrorLog(gw, async () => {
 *     const res = await fetch(gw.url('/v1/x'));
 *     expect(res.status).toBe(200);
 *   });
 */
export async function withErrorLog<T>(gw: Pick<Gateway, 'errorLog' | 'prefix'>, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw attachLog(err, gw);
  }
}

/** Throw (with the error log attached) unless `res` has the expected status (default: any 2xx). */
export async function expectOk(gw: Pick<Gateway, 'errorLog' | 'prefix'>, res: Response, status?: number): Promise<Response> {
  const good = status === undefined ? res.ok : res.status === status;
  if (!good) {
    const body = await res.clone().text().catch(() => '');
    throw attachLog(new Error(`expected ${status ?? '2xx'} from ${res.url}, got ${res.status}: ${body.slice(0, 500)}`), gw);
  }
  return res;
}

/** Stop every gateway still running (use in afterAll as a safety net). */
export async function stopAllGateways(): Promise<void> {
  await Promise.all([...live].map((l) => l.stop().catch(() => undefined)));
}
