// Starting nginx for a prefix and config, daemonized or as a foreground child, and waiting
// until its pid file names a live master.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { NginxError } from './errors.ts';
import type { NginxLocation } from './locate.ts';
import { DEFAULT_PID_FILE, declaredPid, pidAlive, pidFileFor, readPidFile } from './pid.ts';
import { parseNginxErrors, prefixArgs } from './test-config.ts';
import { tail, waitFor } from './wait.ts';

export interface StartOptions {
  /**
   * false (default): nginx daemonizes. Resolves once the launching process exited with
   * status 0 (config loaded, listening sockets bound) and the master's pid file exists.
   * true: nginx runs as our child with `-g 'daemon off;'`; resolves once the pid file names
   * that child. Either way the ports are bound when the promise resolves (nginx binds
   * before writing the pid file); use waitForPorts() to also see connections accepted.
   */
  foreground?: boolean;
  /** Foreground only: 'pipe' (default) captures stderr into output(); 'inherit' shares the terminal. */
  stdio?: 'pipe' | 'inherit';
  /** Startup deadline in ms (default 15000). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface NginxProcess {
  pid: number; // master pid (the runtime wrapper execs, so it is the spawned pid in foreground)
  mode: 'daemon' | 'foreground';
  prefix: string;
  confPath: string;
  pidFile: string;
  /** Foreground: the child process. Daemon: null. */
  child: ChildProcess | null;
  /** Foreground: resolves when the master exits. Daemon: null (poll isRunning()). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null;
  /** Startup/stderr output captured so far (foreground 'pipe' or daemon launch output). */
  output(): string;
}

/**
 * Start nginx for PREFIX with CONF. Refuses (NGINX_ALREADY_RUNNING) when the pid file names
 * a live nginx; removes a stale pid file. Throws NGINX_START_FAILED with nginx's output
 * when it exits during startup.
 */
export async function startNginx(
  loc: NginxLocation,
  prefix: string,
  confPath: string,
  opts: StartOptions = {},
): Promise<NginxProcess> {
  const root = path.resolve(prefix);
  const conf = path.resolve(confPath);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const hasPid = declaredPid(conf) !== null;
  const pidFile = pidFileFor(root, conf);

  const existing = await readPidFile(pidFile);
  if (existing !== null) {
    if (pidAlive(existing)) {
      throw new NginxError('NGINX_ALREADY_RUNNING', `nginx is already running for ${root} (pid ${existing}, ${pidFile}).`, {
        fix: 'reload it instead, or stop it first.',
      });
    }
    await rm(pidFile, { force: true });
  }
  await mkdir(path.dirname(pidFile), { recursive: true });

  const globals = [opts.foreground ? 'daemon off;' : '', hasPid ? '' : `pid ${DEFAULT_PID_FILE};`].filter(Boolean).join(' ');
  const args = prefixArgs(root, conf, globals || undefined);
  const env = opts.env ?? process.env;

  if (opts.foreground) {
    const inherit = opts.stdio === 'inherit';
    const child = spawn(loc.bin, args, { env, stdio: inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const collect = (c: Buffer) => {
      out += c.toString('utf8');
      if (out.length > 1_000_000) out = out.slice(-500_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => {
        exitInfo = { code, signal };
        resolve(exitInfo);
      });
      child.on('error', (err) => {
        out += `\n${err.message}`;
        exitInfo = { code: -1, signal: null };
        resolve(exitInfo);
      });
    });
    const proc: NginxProcess = { pid: child.pid ?? -1, mode: 'foreground', prefix: root, confPath: conf, pidFile, child, exited, output: () => out };
    try {
      await waitFor(
        async () => {
          if (exitInfo) {
            // Let the last stderr chunks arrive before reporting.
            await new Promise((r) => setTimeout(r, 50));
            throw startFailed(root, conf, `exited with ${exitInfo.code ?? exitInfo.signal}`, out);
          }
          return (await readPidFile(pidFile)) === child.pid;
        },
        timeoutMs,
        `nginx to write ${pidFile}`,
      );
    } catch (err) {
      if (!exitInfo) child.kill('SIGKILL');
      if (err instanceof NginxError && err.code === 'NGINX_TIMEOUT') {
        throw new NginxError('NGINX_TIMEOUT', `${err.message}\n${tail(out, 30)}`, { output: out });
      }
      throw err;
    }
    return proc;
  }

  // Daemon mode: the launching process exits once nginx has forked; its output goes to a
  // file (a pipe would be held open by the daemon if the config logs to stderr).
  const launchLog = path.join(root, 'logs', 'nginx-launch.log');
  await mkdir(path.dirname(launchLog), { recursive: true });
  const fd = openSync(launchLog, 'w');
  let child: ChildProcess;
  try {
    child = spawn(loc.bin, args, { env, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, timeoutMs);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve(-1);
    });
  });
  const output = () => {
    try {
      return readFileSync(launchLog, 'utf8');
    } catch {
      return '';
    }
  };
  if (code !== 0) throw startFailed(root, conf, code === null ? 'timed out' : `exited with ${code}`, output());
  let pid: number | null = null;
  await waitFor(
    async () => {
      pid = await readPidFile(pidFile);
      return pid !== null && pidAlive(pid);
    },
    timeoutMs,
    `nginx to write ${pidFile}`,
  );
  return { pid: pid!, mode: 'daemon', prefix: root, confPath: conf, pidFile, child: null, exited: null, output };
}

function startFailed(prefix: string, conf: string, how: string, output: string): NginxError {
  const errs = parseNginxErrors(output);
  const first = errs[0];
  const where = first?.file ? ` (${first.file}:${first.line})` : '';
  return new NginxError(
    'NGINX_START_FAILED',
    `nginx failed to start (${how}) with prefix ${prefix} and ${conf}${first ? `: ${first.message}${where}` : ''}\n${output.trim()}`,
    { output },
  );
}
