// The one rule for every directory gatewayctl replaces or manages as its own (build output,
// deploy target, managed certificate directory): it may be replaced only when it is absent,
// empty, or recognisably gatewayctl's own (a previous build with its manifest.json, a deploy
// target with its releases/, a certificate directory with its meta.json). Anything else is
// refused before anything is written, so `gatewayctl build -o .` can never wipe a project.
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { isReleaseName } from '../deploy/releases.ts';

/** A directory (GW610) or file (GW611) that gatewayctl refused to replace; nothing was changed. */
export class UnsafeReplaceError extends Error {
  constructor(
    public readonly code: 'GW610' | 'GW611',
    public readonly target: string,
    public readonly what: string,
    public readonly reason: string,
  ) {
    super(`${code} refusing to replace ${what} ${target}: ${reason}; nothing was changed`);
  }
}

/**
 * Why `dir` (existing, non-empty) is not gatewayctl's own, or null when it is. Each owner
 * of a kind of directory supplies one: previousBuild, deployTarget, managedCertDir.
 */
export type Recogniser = (dir: string) => string | null;

/** Throws UnsafeReplaceError unless `dir` is absent, an empty directory, or one `recognise` accepts. */
export function assertReplaceable(dir: string, what: string, recognise: Recogniser): void {
  const abs = path.resolve(dir);
  const l = lstatSync(abs, { throwIfNoEntry: false });
  if (!l) return;
  const st = statSync(abs, { throwIfNoEntry: false });
  if (!st) throw new UnsafeReplaceError('GW610', abs, what, 'it is a dangling symbolic link');
  if (!st.isDirectory()) throw new UnsafeReplaceError('GW610', abs, what, 'it is a file, not a directory');
  if (readdirSync(abs).length === 0) return;
  const why = recognise(abs);
  if (why) throw new UnsafeReplaceError('GW610', abs, what, why);
}

/** Every non-directory entry under dir (files, symlinks, sockets), relative, sorted; symlinks are not followed. */
export function entriesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

const listSome = (xs: string[]): string => (xs.length > 5 ? `${xs.slice(0, 5).join(', ')} and ${xs.length - 5} more` : xs.join(', '));

/**
 * A previous `gatewayctl build` output: manifest.json written by gatewayctl, and no file
 * besides the ones it lists, manifest.json and model.json (a file someone added to dist/
 * would be lost with the old build, so it blocks the replacement).
 */
export const previousBuild: Recogniser = (dir) => {
  let man: { generator?: unknown; files?: unknown };
  try {
    man = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'it is not empty and is not a gatewayctl build (no manifest.json)';
    return 'its manifest.json is not a gatewayctl build manifest';
  }
  if (!man || man.generator !== 'gatewayctl' || typeof man.files !== 'object' || man.files === null) {
    return 'its manifest.json is not a gatewayctl build manifest';
  }
  const known = new Set([...Object.keys(man.files), 'manifest.json', 'model.json']);
  const extra = entriesUnder(dir).filter((f) => !known.has(f));
  if (extra.length) return `it holds files that are not part of the previous build: ${listSome(extra)}`;
  return null;
};

/**
 * A deploy target (src/deploy/releases.ts layout): releases/ holds only release directories
 * (and interrupted copies, `.tmp-…`); `current` and `previous`, when present, are symbolic links.
 * Other entries (the nginx prefix: logs/, run/, …) are left alone by deploy and allowed.
 */
export const deployTarget: Recogniser = (dir) => {
  const rel = lstatSync(path.join(dir, 'releases'), { throwIfNoEntry: false });
  if (!rel) {
    // a target whose first deploy is under way (or was killed): nothing but its lock
    const names = readdirSync(dir);
    if (names.every((n) => n === 'deploy.lock' || n.startsWith('deploy.lock.stale-')) && isDeployLock(path.join(dir, 'deploy.lock'))) return null;
  }
  if (!rel?.isDirectory()) return 'it is not empty and is not a gatewayctl deploy target (no releases/ directory)';
  const foreign = readdirSync(path.join(dir, 'releases')).filter((n) => !isReleaseName(n) && !n.startsWith('.tmp-'));
  if (foreign.length) return `releases/ holds entries gatewayctl did not create: ${listSome(foreign)}`;
  for (const link of ['current', 'previous']) {
    const st = lstatSync(path.join(dir, link), { throwIfNoEntry: false });
    if (st && !st.isSymbolicLink()) return `${link} is not a symbolic link to a release`;
  }
  return null;
};

/** A deploy lock file as src/deploy/lock.ts writes it: JSON with the holder's pid and command. */
function isDeployLock(file: string): boolean {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown; command?: unknown };
    return typeof v.pid === 'number' && typeof v.command === 'string';
  } catch {
    return false;
  }
}
