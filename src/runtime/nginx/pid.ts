// Pid handling: which pid file a config uses, reading it, and whether a pid is a live nginx
// (and which processes are its children), from /proc on Linux.

import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export const DEFAULT_PID_FILE = 'run/nginx.pid';

/**
 * The pid file a config uses: its top-level `pid` directive (relative to the prefix) or
 * run/nginx.pid, which startNginx() imposes with `-g` when the config has none (the
 * compiled-in default would be the system-wide /run/nginx.pid).
 */
export function pidFileFor(prefix: string, confPath?: string): string {
  const declared = confPath ? declaredPid(confPath) : null;
  return path.resolve(prefix, declared ?? DEFAULT_PID_FILE);
}


/** The `pid` directive of a config, or null. Shared with test-config.ts and start.ts; not re-exported by index.ts. */
export function declaredPid(confPath: string): string | null {
  try {
    const text = readFileSync(confPath, 'utf8');
    const m = /^[ \t]*pid[ \t]+("[^"]+"|'[^']+'|[^;\s]+)[ \t]*;/m.exec(text);
    return m ? m[1].replace(/^["']|["']$/g, '') : null;
  } catch {
    return null;
  }
}

/** The master pid from the pid file, or null when the file is missing or not a number. */
export async function readPid(prefix: string, opts: { pidFile?: string } = {}): Promise<number | null> {
  return readPidFile(path.resolve(prefix, opts.pidFile ?? DEFAULT_PID_FILE));
}


/** The pid in `file` (absolute), or null. Shared with start.ts and stop.ts; not re-exported by index.ts. */
export async function readPidFile(file: string): Promise<number | null> {
  try {
    const n = parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** A live (non-zombie) process; on Linux also checks it is an nginx (guards against pid reuse). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform === 'linux') {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') return false;
      // The project runtime runs nginx through its glibc loader, so the master may show up
      // as ld-linux (its retitled argv is not always visible in cmdline).
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8') + readFileSync(`/proc/${pid}/comm`, 'utf8');
      return cmd.includes('nginx') || cmd.includes('ld-linux');
    } catch {
      return false;
    }
  }
  return true;
}

/** Pids whose parent is `pid` (Linux /proc; empty elsewhere): the master's workers/cache processes. */
export function childPids(pid: number): number[] {
  if (process.platform !== 'linux') return [];
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === pid && rest[0] !== 'Z') out.push(Number(e));
    } catch {
      // process vanished while scanning
    }
  }
  return out;
}

/**
 * Whether process `pid`'s command line holds `text` (nginx retitles its processes: "nginx:
 * worker process", "nginx: worker process is shutting down"); false once it has exited, which
 * a worker may do between childPids() listing it and this read.
 */
export function processTitleIncludes(pid: number, text: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
  } catch {
    return false;
  }
}

/** True when PREFIX's pid file names a live nginx master. */
export async function isRunning(prefix: string, opts: { pidFile?: string } = {}): Promise<boolean> {
  const pid = await readPid(prefix, opts);
  return pid !== null && pidAlive(pid);
}
