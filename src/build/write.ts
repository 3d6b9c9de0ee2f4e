// Write step: the build goes into a sibling temp directory and is swapped into place only
// when complete, so a failed build never leaves a half-written output behind. Only an
// absent or empty directory, or a previous gatewayctl build, is replaced (src/build/guard.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { assertReplaceable, previousBuild, type Recogniser } from './guard.ts';

/** Throws UnsafeReplaceError (and writes nothing) when outDir is not replaceable. */
export function writeBuild(outDir: string, files: Record<string, string>, recognise: Recogniser = previousBuild): void {
  const abs = path.resolve(outDir);
  assertReplaceable(abs, 'build output directory', recognise);
  const tmp = `${abs}.tmp-${process.pid}`;
  const old = `${abs}.old-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(tmp, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content, { mode: isPrivateOutput(rel) ? 0o600 : 0o644 });
  }
  if (existsSync(abs)) renameSync(abs, old);
  try {
    renameSync(tmp, abs);
  } catch (e) {
    if (existsSync(old)) renameSync(old, abs);
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}

/**
 * Build outputs readable by the owner only: secrets, private keys, the njs auth preload
 * object (it holds HMAC secrets), the API-key map (key hashes) and the JWT cache generations
 * (digests over the providers' keys: they change when a secret does).
 */
export function isPrivateOutput(rel: string): boolean {
  return /secret|\.key$/.test(rel) || rel === 'njs/auth.json' || rel.endsWith('keys.map') || rel.endsWith('jwt-fast.map');
}

function listFiles(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p, base));
    else out.push(path.relative(base, p));
  }
  return out.sort();
}

/** Paths whose content on disk differs from `files` (missing, changed or extra). */
export function staleFiles(outDir: string, files: Record<string, string>): string[] {
  const stale: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(outDir, rel);
    if (!existsSync(p) || readFileSync(p, 'utf8') !== content) stale.push(rel);
  }
  for (const rel of listFiles(outDir)) if (!(rel in files)) stale.push(rel);
  return stale.sort();
}
