#!/usr/bin/env node
// Packs the gatewayctl CLI for docker/Dockerfile.tools (the `tls` service of
// docker-compose.yml): what the bundled CLI reads at run time and nothing else.
//   <out>/package.json, bin/gatewayctl.js, lib/gatewayctl.mjs (built here by build-cli.mjs),
//   templates/, njs/ (the prebuilt njs bundle is keyed by these sources),
//   node_modules/: acme-client and its dependency closure (the CLI's only external
//   dependency at run time; `tls issue`/`renew` load it), copied from this checkout.
//   node scripts/pack-cli.mjs [--out .gatewayctl/cli]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--out');
const out = path.resolve(root, i > 0 ? process.argv[i + 1] : '.gatewayctl/cli');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [path.join(root, 'scripts', 'build-cli.mjs'), '--outfile', path.join(out, 'lib', 'gatewayctl.mjs')], { stdio: 'inherit' });
cpSync(path.join(root, 'package.json'), path.join(out, 'package.json'));
for (const d of ['bin', 'templates', 'njs']) cpSync(path.join(root, d), path.join(out, d), { recursive: true, dereference: true });

/** The directory of package `name` as Node resolves it from `from` (a package directory). */
function packageDir(name, from) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const cand = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(cand, 'package.json'))) return cand;
    if (dir === path.dirname(dir)) throw new Error(`pack-cli: ${name} not found from ${from} (npm ci first)`);
  }
}
const seen = new Set();
const queue = [packageDir('acme-client', root)];
while (queue.length) {
  const dir = queue.pop();
  if (seen.has(dir)) continue;
  seen.add(dir);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    try {
      queue.push(packageDir(dep, dir));
    } catch (e) {
      if (!(pkg.optionalDependencies ?? {})[dep]) throw e;
    }
  }
}
const modules = path.join(root, 'node_modules');
for (const dir of seen) {
  const rel = path.relative(modules, dir);
  cpSync(dir, path.join(out, 'node_modules', rel), { recursive: true, dereference: true });
}
console.log(path.relative(root, out) || '.');
