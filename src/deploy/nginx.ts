// nginx process control as deploy needs it, on top of src/runtime/nginx/: locate the
// binary, prepare a prefix, `nginx -t`, start (daemonized), signal the master by its pid
// file, run a user reload command (e.g. `systemctl reload nginx`), and read the error log
// written since a reload to tell why nginx refused a configuration.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  findNginx,
  NginxError,
  type NginxLocation,
  pidAlive,
  preparePrefix,
  readPid,
  reloadNginx,
  startNginx,
  stopNginx,
  testConfig,
} from '../runtime/nginx/index.ts';

export type { NginxLocation };

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string; // stdout + stderr
}

/**
 * Run a command and wait for it to exit. Output goes through a temp file rather than pipes:
 * a daemonizing nginx keeps stderr open in the master, which would hold a pipe forever.
 */
export async function runCapture(cmd: string, args: string[], opts: { shell?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'gatewayctl-run-'));
  const outFile = path.join(tmp, 'out');
  const fd = fs.openSync(outFile, 'w');
  try {
    const res = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      const child = opts.shell
        ? spawn(cmd, { shell: true, stdio: ['ignore', fd, fd] })
        : spawn(cmd, args, { stdio: ['ignore', fd, fd] });
      let timer: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
      child.on('error', (e) => {
        if (timer) clearTimeout(timer);
        reject(e);
      });
      child.on('exit', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code, signal });
      });
    });
    fs.closeSync(fd);
    const output = await fsp.readFile(outFile, 'utf8');
    return { ...res, output };
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* closed */
    }
    const err = e as NodeJS.ErrnoException;
    return { code: null, signal: null, output: `cannot run ${cmd}: ${err.message}` };
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/** Locate nginx (flag, GATEWAYCTL_NGINX, project runtime, PATH) through src/runtime. */
export async function locateNginx(flag?: string): Promise<NginxLocation> {
  return findNginx({ nginx: flag });
}

/** src/runtime's prefix layout plus the directories a manifest lists (`prefixDirs`). */
export async function preparePrefixDirs(prefix: string, loc: NginxLocation, extra: string[] = []): Promise<void> {
  await preparePrefix(prefix, loc.modulesDir);
  for (const d of extra) {
    if (path.isAbsolute(d) || d.split('/').includes('..')) continue;
    await fsp.mkdir(path.join(prefix, d), { recursive: true });
  }
}

export async function nginxTest(loc: NginxLocation, prefix: string, conf: string): Promise<{ ok: boolean; output: string }> {
  const r = await testConfig(loc, prefix, conf);
  return { ok: r.ok, output: r.output };
}

/** Start nginx daemonized with `-p PREFIX/ -c CONF`; resolves once the master's pid file is written. */
export async function nginxStart(loc: NginxLocation, prefix: string, conf: string, timeoutMs = 15_000): Promise<{ ok: boolean; output: string }> {
  try {
    const p = await startNginx(loc, prefix, conf, { timeoutMs });
    return { ok: true, output: p.output() };
  } catch (e) {
    return { ok: false, output: e instanceof NginxError ? e.message : (e as Error).message };
  }
}

/**
 * SIGHUP the master and wait until new workers run and the old ones stopped accepting
 * (src/runtime reloadNginx); [emerg] lines in errorLog after the HUP fail it early.
 */
export async function nginxReload(prefix: string, pidFile: string, errorLog: string | undefined, timeoutMs: number): Promise<{ ok: boolean; output: string; refused: boolean }> {
  try {
    await reloadNginx(prefix, { pidFile, errorLog, timeoutMs });
    return { ok: true, output: '', refused: false };
  } catch (e) {
    if (e instanceof NginxError) {
      const lines = fatalLines(e.output);
      // [emerg] while applying: nginx keeps the old configuration and its workers.
      const refused = e.code === 'NGINX_RELOAD_FAILED' && /rejected the new configuration/.test(e.message);
      return { ok: false, output: [e.message.split('\nFix:')[0], ...lines].join('\n'), refused };
    }
    return { ok: false, output: (e as Error).message, refused: false };
  }
}

/** Pid of the live master named by pidFile (absolute), or null. */
export async function runningMaster(pidFile: string): Promise<number | null> {
  const pid = await readPid(path.dirname(pidFile), { pidFile });
  return pid !== null && pidAlive(pid) ? pid : null;
}

/** Ask a master to finish in-flight requests and quit; wait for it (SIGKILL after graceMs). */
export async function stopMaster(pidFile: string, graceMs = 10_000): Promise<boolean> {
  return stopNginx(path.dirname(pidFile), { pidFile, timeoutMs: graceMs });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Remember an error log's size so new lines written after a reload can be read back. */
export async function logOffset(file: string): Promise<number> {
  try {
    return (await fsp.stat(file)).size;
  } catch {
    return 0;
  }
}

export async function readLogSince(file: string, offset: number): Promise<string> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(file, 'r');
    const st = await fh.stat();
    if (st.size <= offset) return '';
    const buf = Buffer.alloc(Math.min(st.size - offset, 256 * 1024));
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    await fh?.close();
  }
}

/** [emerg] lines: nginx could not apply a configuration (reload or start). */
export function fatalLines(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /\[emerg\]/.test(l))
    .map((l) => l.trim());
}

/**
 * Wait until none of the logs has grown for quietMs (at most maxMs). After a failed reload
 * the master may still be retrying bind() (5 tries, 500 ms apart); its next SIGHUP is only
 * handled afterwards, and its late lines must not be blamed on the next configuration.
 */
export async function waitLogsQuiet(logs: string[], quietMs = 800, maxMs = 8000): Promise<void> {
  const until = Date.now() + maxMs;
  let sizes = await Promise.all(logs.map(logOffset));
  let quietSince = Date.now();
  while (Date.now() < until) {
    await sleep(100);
    const now = await Promise.all(logs.map(logOffset));
    if (now.some((n, i) => n !== sizes[i])) {
      sizes = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) {
      return;
    }
  }
}
