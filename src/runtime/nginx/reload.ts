// Reloading nginx: SIGHUP to the master, then wait until new workers run and the old ones
// have closed their listening sockets, or fail early on [emerg] lines in the error log.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { NginxError } from './errors.ts';
import { childPids, DEFAULT_PID_FILE, pidAlive, readPid } from './pid.ts';
import { parseNginxErrors, type ConfigError } from './test-config.ts';
import { tail, waitFor } from './wait.ts';

/** True when none of `pids` is alive and still holding a listening socket. */
function oldWorkersRetired(pids: Set<number>): boolean {
  const listening = listeningInodes();
  for (const p of pids) {
    if (!pidAlive(p)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue; // not inspectable: cannot tell, do not block on it
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSyncSafe(`/proc/${p}/fd/${fd}`));
        if (m && listening.has(m[1])) return false;
      } catch {
        // fd closed while scanning
      }
    }
  }
  return true;
}

function readlinkSyncSafe(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}

/** Inodes of listening TCP and unix sockets in this network namespace (Linux /proc/net). */
function listeningInodes(): Set<string> {
  const out = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
        const cols = line.trim().split(/\s+/);
        if (cols[3] === '0A' && cols[9]) out.add(cols[9]); // st 0A = LISTEN
      }
    } catch {
      // no IPv6, or not Linux
    }
  }
  try {
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 7 && (parseInt(cols[3], 16) & 0x10000) !== 0) out.add(cols[6]); // __SO_ACCEPTCON
    }
  } catch {
    // not Linux
  }
  return out;
}

export interface ReloadOptions {
  pidFile?: string; // relative to prefix; default run/nginx.pid
  /**
   * Wait until the master has started new worker processes and the old ones have closed
   * their listening sockets (Linux; default true): from then on every new connection gets
   * the new configuration. A rejected configuration never gets new workers: [emerg] lines
   * the error log (`errorLog`) receives after the HUP fail the reload early.
   */
  wait?: boolean;
  timeoutMs?: number; // default 10000
  errorLog?: string; // absolute, or relative to prefix; default logs/error.log
}

const DEFAULT_ERROR_LOG = 'logs/error.log';

/** SIGHUP to the master named by the pid file: nginx re-reads its config without dropping connections. */
export async function reloadNginx(prefix: string, opts: ReloadOptions = {}): Promise<void> {
  const pid = await readPid(prefix, opts);
  if (pid === null || !pidAlive(pid)) {
    throw new NginxError('NGINX_NOT_RUNNING', `nginx is not running for ${path.resolve(prefix)} (no live pid in ${opts.pidFile ?? DEFAULT_PID_FILE}).`, {
      fix: 'start it first.',
    });
  }
  const wait = (opts.wait ?? true) && process.platform === 'linux';
  const before = new Set(childPids(pid));
  const logPath = path.resolve(prefix, opts.errorLog ?? DEFAULT_ERROR_LOG);
  const logStart = await stat(logPath).then((s) => s.size).catch(() => 0);
  process.kill(pid, 'SIGHUP');
  if (!wait) return;

  const readNewLog = async () => {
    const buf = await readFile(logPath).catch(() => Buffer.alloc(0));
    return buf.subarray(Math.min(logStart, buf.length)).toString('utf8');
  };
  try {
    await waitFor(
      async () => {
        // Live when new workers run and the old ones have stopped accepting (on SIGQUIT they
        // close their listening sockets, then finish in-flight requests and exit).
        if (childPids(pid).some((c) => !before.has(c)) && oldWorkersRetired(before)) return true;
        const fresh = await readNewLog();
        const emerg = parseNginxErrors(fresh).filter((e) => e.level === 'emerg');
        if (emerg.length) {
          throw new NginxError('NGINX_RELOAD_FAILED', `nginx rejected the new configuration; the old one keeps serving: ${emerg.map(fmtError).join('; ')}`, { output: fresh });
        }
        if (!pidAlive(pid)) throw new NginxError('NGINX_RELOAD_FAILED', `nginx master ${pid} exited during reload.`, { output: fresh });
        return false;
      },
      opts.timeoutMs ?? 10_000,
      'nginx to start new workers after reload',
    );
  } catch (err) {
    if (err instanceof NginxError && err.code === 'NGINX_TIMEOUT') {
      const fresh = await readNewLog();
      throw new NginxError('NGINX_RELOAD_FAILED', `reload not applied: ${err.message}${fresh ? `\n${tail(fresh, 20)}` : ''}`, {
        fix: 'check the configuration with `nginx -t` and the error log.',
        output: fresh,
      });
    }
    throw err;
  }
}

function fmtError(e: ConfigError): string {
  return e.file ? `${e.message} (${e.file}:${e.line})` : e.message;
}
