// Stopping nginx: signal the master named by a pid file and wait for it to exit, escalating
// to SIGKILL for the master and its workers after a timeout.

import { rm } from 'node:fs/promises';
import path from 'node:path';
import { childPids, DEFAULT_PID_FILE, pidAlive, readPidFile } from './pid.ts';
import { waitFor } from './wait.ts';

export interface StopOptions {
  /** true: SIGQUIT (finish in-flight requests); false: SIGTERM (fast). Default true. */
  graceful?: boolean;
  /** After this many ms the master and its children get SIGKILL (default 10000). */
  timeoutMs?: number;
  pidFile?: string;
}

/**
 * Stop the nginx named by PREFIX's pid file. Returns false when nothing was running (a stale
 * pid file is removed), true once the master has exited.
 */
export async function stopNginx(prefix: string, opts: StopOptions = {}): Promise<boolean> {
  const pidFile = path.resolve(prefix, opts.pidFile ?? DEFAULT_PID_FILE);
  const pid = await readPidFile(pidFile);
  if (pid === null || !pidAlive(pid)) {
    await rm(pidFile, { force: true });
    return false;
  }
  await killProcess(pid, opts.graceful === false ? 'SIGTERM' : 'SIGQUIT', opts.timeoutMs ?? 10_000);
  await rm(pidFile, { force: true }); // nginx removes it itself unless it had to be killed
  return true;
}

/**
 * Signal an nginx master and wait for it to go; after timeoutMs escalate to SIGKILL for the
 * master and its children (workers outlive a SIGKILLed master otherwise, keeping the ports).
 */
export async function killProcess(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  const children = childPids(pid);
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  try {
    await waitFor(async () => !pidAlive(pid), timeoutMs, `nginx ${pid} to exit`);
  } catch {
    for (const p of [pid, ...children, ...childPids(pid)]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitFor(async () => !pidAlive(pid), 5_000, `nginx ${pid} to die`).catch(() => undefined);
  }
}
