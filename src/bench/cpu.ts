// CPU time of a process from /proc: what the benchmarks divide by the requests served.
import { readdirSync, readFileSync } from 'node:fs';
import { childPids, processTitleIncludes, waitFor } from '../runtime/nginx/index.ts';

/** CPU time of one process in ns: sum_exec_runtime of its threads (/proc/<pid>/task/<tid>/schedstat), else utime+stime ticks. */
export function cpuNs(pid: number): number {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    if (total > 0) return total;
  } catch {
    // fall back to ticks
  }
  const t = cpuSplitUs(pid);
  return (t.user + t.sys) * 1e3;
}

/**
 * User and system CPU time of one process in µs (/proc/<pid>/stat, clock ticks of 10 ms, so
 * meaningful over runs of seconds). The split shows what cpuNs cannot: on loopback the kernel
 * share of a request is not fixed, it grows with how busy the worker is (README, Performance).
 */
export function cpuSplitUs(pid: number): { user: number; sys: number } {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return { user: Number(rest[11]) * 1e4, sys: Number(rest[12]) * 1e4 }; // USER_HZ 100
}

const isWorker = (p: number): boolean => processTitleIncludes(p, 'worker process');

/** The worker process of an nginx master (one worker). */
export function workerPid(master: number): number {
  const kids = childPids(master);
  const pid = kids.find(isWorker) ?? kids[0];
  if (!pid) throw new Error('nginx has no worker process');
  return pid;
}

/**
 * The worker of a master once it has one: nginx binds its ports before it forks the worker,
 * so a master whose ports answer may not have one yet (on a loaded machine, for a while).
 */
export async function waitForWorker(master: number, timeoutMs = 30_000): Promise<number> {
  await waitFor(async () => childPids(master).some(isWorker), timeoutMs, `nginx ${master} to start its worker`);
  return workerPid(master);
}
