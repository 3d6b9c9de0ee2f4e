// Prefix layout: the directories generated configs rely on (logs/, run/, temp/*, cache/)
// and the `modules` link to the runtime's modules directory, created by preparePrefix().

import { lstat, mkdir, readlink, rename, symlink } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_PID_FILE } from './pid.ts';

/** Directories (relative to the prefix) that generated configs rely on. */
export const PREFIX_DIRS = [
  'logs',
  'run',
  'temp',
  'temp/client_body',
  'temp/proxy',
  'temp/fastcgi',
  'temp/uwsgi',
  'temp/scgi',
  'cache',
] as const;

export interface PrefixLayout {
  prefix: string; // absolute
  dirs: string[]; // absolute paths of PREFIX_DIRS and the extra dirs
  pidFile: string; // PREFIX/run/nginx.pid
  /** PREFIX/modules when it was linked (or already is a directory); null when modulesDir was null. */
  modules: string | null;
}

/**
 * Create the prefix layout (idempotent): logs/, run/, temp/{client_body,proxy,fastcgi,uwsgi,scgi},
 * cache/, any extra `opts.dirs` (relative to the prefix, e.g. a build manifest's prefixDirs),
 * and `modules` → modulesDir. An existing symlink pointing elsewhere is replaced
 * atomically; an existing real `modules` directory is left alone (e.g. inside a container
 * image that ships its modules there); any other file there is refused, never replaced.
 */
export async function preparePrefix(
  prefix: string,
  modulesDir: string | null,
  opts: { dirs?: string[] } = {},
): Promise<PrefixLayout> {
  const root = path.resolve(prefix);
  const rels: string[] = [...PREFIX_DIRS];
  for (const d of opts.dirs ?? []) {
    const norm = path.normalize(d);
    if (path.isAbsolute(norm) || norm === '..' || norm.startsWith(`..${path.sep}`)) {
      throw new Error(`preparePrefix: ${JSON.stringify(d)} is not a directory inside the prefix`);
    }
    if (norm !== '.' && !rels.includes(norm)) rels.push(norm);
  }
  const dirs = rels.map((d) => path.join(root, d));
  for (const d of dirs) await mkdir(d, { recursive: true });

  let modules: string | null = null;
  if (modulesDir) {
    const link = path.join(root, 'modules');
    const target = path.resolve(modulesDir);
    const existing = await lstat(link).catch(() => null);
    if (existing?.isDirectory()) {
      modules = link;
    } else if (existing?.isSymbolicLink() && path.resolve(root, await readlink(link)) === target) {
      modules = link;
    } else if (existing && !existing.isSymbolicLink()) {
      // a file of someone else's: never replaced (only gatewayctl's own link is)
      throw new Error(`${link} exists and is not a directory or symbolic link; move it away so nginx modules can be linked there`);
    } else {
      const tmp = `${link}.tmp-${process.pid}-${Date.now()}`;
      await symlink(target, tmp);
      await rename(tmp, link); // atomic replace of a stale link
      modules = link;
    }
  }
  return { prefix: root, dirs, pidFile: path.join(root, DEFAULT_PID_FILE), modules };
}
