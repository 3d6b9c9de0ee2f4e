// TARGET/deploy.lock: created with O_EXCL, holds {"pid","time","command"}. A lock whose
// pid is dead is stale and replaced (with a message); a live one refuses the deploy.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';

export interface LockInfo {
  pid: number;
  time: string;
  command: string;
  host?: string;
}

export class LockBusyError extends Error {
  constructor(
    public readonly lockFile: string,
    public readonly holder: LockInfo | null,
  ) {
    super(
      holder
        ? `another deploy holds ${lockFile} (pid ${holder.pid}, ${holder.command}, since ${holder.time})`
        : `${lockFile} exists and is being written by another deploy`,
    );
  }
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface HeldLock {
  file: string;
  info: LockInfo;
  release(): Promise<void>;
}

async function tryCreate(file: string, info: LockInfo): Promise<boolean> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await fh.writeFile(JSON.stringify(info) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

function parseLock(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number') return { pid: v.pid, time: String(v.time ?? '?'), command: String(v.command ?? '?'), host: v.host };
  } catch {
    /* fall through */
  }
  return null;
}

/**
 * Take the deploy lock. `onStale` is told when a dead holder's lock is replaced.
 * Throws LockBusyError when a live process holds it.
 */
export async function acquireLock(file: string, command: string, onStale: (msg: string) => void = () => {}): Promise<HeldLock> {
  const info: LockInfo = { pid: process.pid, time: new Date().toISOString(), command, host: os.hostname() };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await tryCreate(file, info)) {
      return {
        file,
        info,
        async release() {
          // Only remove the lock if it is still ours.
          try {
            const cur = parseLock(await fsp.readFile(file, 'utf8'));
            if (cur && cur.pid === info.pid && cur.time === info.time) await fsp.rm(file, { force: true });
          } catch {
            /* already gone */
          }
        },
      };
    }
    let text: string;
    let st: fs.Stats;
    try {
      st = await fsp.stat(file);
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw e;
    }
    const holder = parseLock(text);
    if (!holder) {
      // Freshly created by someone who has not written it yet: busy. Old garbage: stale.
      if (Date.now() - st.mtimeMs < 5000) throw new LockBusyError(file, null);
    } else if (holder.host && holder.host !== os.hostname()) {
      throw new LockBusyError(file, holder); // cannot judge another host's pid
    } else if (pidAlive(holder.pid)) {
      throw new LockBusyError(file, holder);
    }
    // Stale: move it aside under a private name, and make sure we moved the file we judged.
    const aside = `${file}.stale-${process.pid}-${Date.now()}`;
    try {
      await fsp.rename(file, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = await fsp.stat(aside);
    if (moved.ino !== st.ino) {
      // Someone replaced the stale lock in between: put theirs back and give up.
      await fsp.link(aside, file).catch(() => {});
      await fsp.rm(aside, { force: true });
      throw new LockBusyError(file, parseLock(await fsp.readFile(file, 'utf8').catch(() => '')));
    }
    await fsp.rm(aside, { force: true });
    onStale(
      holder
        ? `removed stale deploy lock ${file} (pid ${holder.pid} from ${holder.time} is not running)`
        : `removed unreadable stale deploy lock ${file}`,
    );
  }
  throw new LockBusyError(file, null);
}
