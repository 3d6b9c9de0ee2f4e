// CPU time of a process from /proc: what the benchmarks divide by the requests served.
import { readdirSync, readFileSync } from 'node:fs';
import { childPids } from '../runtime/nginx/index.ts';

/** CPU time of one process in ns: sum_exec_runtime of its threads (/proc/<pid>/task/<tid>/schedstat), else utime+stime ticks. */
export function cpuNs(pid: number): number {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    if (total > 0) return total;
  } catch {
    // fall back to ticks
  }
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 1e7; // USER_HZ 100
}

/** The worker process of an nginx master (one worker). */
export function workerPid(master: number): number {
  const kids = childPids(master);
  const worker = kids.find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('worker process');
    } catch {
      return false;
    }
  });
  const pid = worker ?? kids[0];
  if (!pid) throw new Error('nginx has no worker process');
  return pid;
}
