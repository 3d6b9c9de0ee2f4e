#!/usr/bin/env node
// Launcher. Runs the bundled CLI, lib/gatewayctl.mjs: plain JavaScript that esbuild builds
// from src/ (`npm run build:cli`; run by `npm ci`/`npm install` through `prepare`, by
// `npm start`, `npm test` and the test suite's global setup). src/ stays the truth: when the
// bundle is missing or older than a file under src/ (sources edited since the last build),
// the launcher runs src/cli.ts through tsx instead (correct, about a second slower to start)
// and says so on stderr. GATEWAYCTL_FROM_SOURCE=1 always runs the sources.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bundle = path.join(root, 'lib', 'gatewayctl.mjs');

/** Why the bundle cannot be used, or null when it is at least as new as every source. */
function staleReason() {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return 'lib/gatewayctl.mjs is missing';
  }
  // Files and directories (a directory's time changes when a file is added or removed).
  const newer = (p) => {
    try {
      return statSync(p).mtimeMs > built;
    } catch {
      return false; // removed meanwhile
    }
  };
  const walk = (dir) => {
    if (newer(dir)) return dir;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const hit = e.isDirectory() ? walk(p) : newer(p) ? p : null;
      if (hit) return hit;
    }
    return null;
  };
  let hit;
  try {
    hit = walk(path.join(root, 'src'));
  } catch {
    return null; // installed without sources: the bundle is all there is
  }
  hit ??= newer(path.join(root, 'scripts', 'build-cli.mjs')) ? path.join(root, 'scripts', 'build-cli.mjs') : null;
  return hit ? `${path.relative(root, hit)} is newer than lib/gatewayctl.mjs` : null;
}

const reason = process.env.GATEWAYCTL_FROM_SOURCE === '1' ? null : staleReason();
if (process.env.GATEWAYCTL_FROM_SOURCE === '1' || reason) {
  if (reason) process.stderr.write(`gatewayctl: ${reason}; running src/ through tsx (slow start). \`npm run build:cli\` rebuilds it.\n`);
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(root, 'src', 'cli.ts')).href);
} else {
  await import(pathToFileURL(bundle).href);
}
