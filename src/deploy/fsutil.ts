// Durable file operations for releases: fsync'd copies, directory fsync, atomic symlink
// swaps, checksums and the secret-file mode policy.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  h.update(await fsp.readFile(file));
  return h.digest('hex');
}

export async function fsyncPath(p: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(p, fs.constants.O_RDONLY);
    await fh.sync();
  } catch (e) {
    // Some filesystems refuse fsync on directories (EINVAL/EISDIR); durability is best effort there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EBADF') throw e;
  } finally {
    await fh?.close();
  }
}

/** Relative paths ("conf.d/40-servers.conf") of all regular files under dir, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    const entries = await fsp.readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.push(r);
      else if (e.isSymbolicLink()) {
        const st = await fsp.stat(path.join(dir, r));
        if (st.isDirectory()) await walk(r);
        else if (st.isFile()) out.push(r);
      }
    }
  };
  await walk('');
  return out.sort();
}

const SECRET_NAME = /(^|[._-])(secret|secrets|credential|credentials|private|apikeys?|api-keys?|keys|jwks-private|htpasswd)([._-]|$)/i;

/**
 * Whether a release file holds secret material and must stay 0600: `*.key`, PEM files with
 * a private key, secret-looking JSON (njs key stores), anything under a `keys/` or
 * `secrets/` directory, and files the build already wrote without group/other access.
 */
export function isSecretFile(rel: string, content: Buffer, srcMode: number): boolean {
  const base = path.posix.basename(rel);
  const dirs = path.posix.dirname(rel).split('/');
  if ((srcMode & 0o077) === 0) return true;
  if (/\.(key|p12|pfx|jwk)$/i.test(base)) return true;
  if (dirs.some((d) => /^(keys|secrets|private)$/i.test(d))) return true;
  if (/\.pem$/i.test(base) && content.includes('PRIVATE KEY')) return true;
  if (/\.json$/i.test(base) && SECRET_NAME.test(base.replace(/\.json$/i, ''))) return true;
  if (content.includes('-----BEGIN') && content.includes('PRIVATE KEY-----')) return true;
  return false;
}

export interface CopiedFile {
  rel: string;
  sha256: string;
  mode: number;
}

/**
 * Copy every regular file of src into dest (which must not exist), fsync each file and
 * directory. Secret-like files are created 0600 from the start (never briefly readable).
 */
export async function copyTreeDurable(src: string, dest: string): Promise<CopiedFile[]> {
  const files = await listFiles(src);
  await fsp.mkdir(dest, { mode: 0o755 });
  const dirs = new Set<string>(['']);
  const copied: CopiedFile[] = [];
  for (const rel of files) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        await fsp.mkdir(path.join(dest, d), { mode: 0o755 });
        dirs.add(d);
      }
    }
    const from = path.join(src, rel);
    const st = await fsp.stat(from);
    const content = await fsp.readFile(from);
    const mode = isSecretFile(rel, content, st.mode) ? 0o600 : 0o644;
    const fh = await fsp.open(path.join(dest, rel), 'wx', mode);
    try {
      await fh.writeFile(content);
      await fh.chmod(mode); // umask-proof
      await fh.sync();
    } finally {
      await fh.close();
    }
    copied.push({ rel, sha256: createHash('sha256').update(content).digest('hex'), mode });
  }
  // Deepest directories first, then the release root.
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await fsyncPath(path.join(dest, d));
  return copied;
}

/** Atomically point `link` at `target` (symlink to a temp name, then rename over). */
export async function atomicSymlink(target: string, link: string): Promise<void> {
  const tmp = `${link}.tmp-${process.pid}-${Date.now()}`;
  await fsp.symlink(target, tmp);
  try {
    await fsp.rename(tmp, link);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncPath(path.dirname(link));
}

export async function readLinkOrNull(link: string): Promise<string | null> {
  try {
    return await fsp.readlink(link);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return null;
    throw e;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}
