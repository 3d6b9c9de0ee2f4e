// The njs module in the build output. One place for every feature that needs it (auth, routing,
// cache, metrics, health, …; Feature.njs):
// when the model sets global.modules.njs, the renderer emits njsHttpLines() once in http{}
// and compile() adds the bundle as NJS_BUNDLE_PATH next to nginx.conf.
//
// `js_path` and `js_import` resolve relative to the directory of nginx.conf (checked with
// nginx 1.26 + njs 0.8.9), so dist/ stays self-contained wherever the prefix is.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { assembleNjsModule, bundleNjsParts, listNjsSourcesSync, NJS_ENTRY, NJS_SOURCE_DIR, type NjsModuleParts } from '../njs/bundle.ts';
import { prebuiltNjs } from './njs-prebuilt.ts';

export const NJS_BUNDLE_PATH = 'njs/gateway.js';

/** http-level directives that load the bundle as module `gateway` (emit once). */
export function njsHttpLines(): string[] {
  return ['js_path "njs/";', 'js_import gateway from gateway.js;'];
}

/** Content key of the njs sources (each file's path and bytes, and njs/tsconfig.json). */
export function njsSourcesKey(): string {
  const h = createHash('sha256');
  const files = listNjsSourcesSync(NJS_SOURCE_DIR);
  const tsconfig = path.join(NJS_SOURCE_DIR, 'tsconfig.json');
  if (existsSync(tsconfig)) files.push(tsconfig);
  for (const f of files) h.update(`${path.relative(NJS_SOURCE_DIR, f)}\0`).update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

let cache: { key: string; parts: NjsModuleParts } | null = null;

/**
 * The bundle's pieces (esbuild, synchronous), verified against the njs subset; cached per
 * process. The bundled CLI carries the pieces built with it (scripts/build-cli.mjs fills
 * ./njs-prebuilt.ts) and uses them while the njs sources have the same content, so only an
 * edit under njs/ since the CLI was built pays for esbuild and the TypeScript-based lint.
 */
export function njsBundleParts(): NjsModuleParts {
  const key = njsSourcesKey();
  if (cache && cache.key === key) return cache.parts;
  const parts = prebuiltNjs && prebuiltNjs.key === key ? prebuiltNjs.parts : bundleNjsParts(NJS_ENTRY, NJS_BUNDLE_PATH);
  cache = { key, parts };
  return cache.parts;
}

/** The module exporting `handlers` (names without the `gateway.` prefix; all when null). */
export function njsBundleText(handlers: readonly string[] | null = null): string {
  return assembleNjsModule(njsBundleParts(), handlers);
}

/** Add the bundle to the build files when the model uses njs: only the handlers it calls. */
export function addNjsFiles(model: { global: { modules: { njs: boolean } } }, files: Record<string, string>, handlers: readonly string[] | null): void {
  if (model.global.modules.njs) files[NJS_BUNDLE_PATH] = njsBundleText(handlers);
}
