// The njs module in the build output. One place for everything that needs it (auth, routing):
// when the model sets global.modules.njs, the renderer emits njsHttpLines() once in http{}
// and compile() adds the bundle as NJS_BUNDLE_PATH next to nginx.conf.
//
// `js_path` and `js_import` resolve relative to the directory of nginx.conf (checked with
// nginx 1.26 + njs 0.8.9), so dist/ stays self-contained wherever the prefix is.
import { statSync } from 'node:fs';
import { bundleNjsText, listNjsSourcesSync, NJS_ENTRY, NJS_SOURCE_DIR } from '../njs/bundle.ts';

export const NJS_BUNDLE_PATH = 'njs/gateway.js';

/** http-level directives that load the bundle as module `gateway` (emit once). */
export function njsHttpLines(): string[] {
  return ['js_path "njs/";', 'js_import gateway from gateway.js;'];
}

let cache: { stamp: string; code: string } | null = null;

/** The bundled module text (esbuild, synchronous), verified against the njs subset; cached per process. */
export function njsBundleText(): string {
  const files = listNjsSourcesSync(NJS_SOURCE_DIR);
  const stamp = files.map((f) => `${f}:${statSync(f).mtimeMs}:${statSync(f).size}`).join('|');
  if (cache && cache.stamp === stamp) return cache.code;
  const code = bundleNjsText(NJS_ENTRY, NJS_BUNDLE_PATH);
  cache = { stamp, code };
  return code;
}

/** Add the bundle to the build files when the model uses njs. */
export function addNjsFiles(model: { global: { modules: { njs: boolean } } }, files: Record<string, string>): void {
  if (model.global.modules.njs) files[NJS_BUNDLE_PATH] = njsBundleText();
}
