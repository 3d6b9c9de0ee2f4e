// `gatewayctl build`: validate, render, and swap the output into place atomically.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { compile, type CompileResult } from '../build/compile.ts';
import { UnsafeReplaceError } from '../build/guard.ts';
import { staleFiles, writeBuild } from '../build/write.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { modelJson } from '../diff/sources.ts';
import { BROTLI_MODULE, findNginx } from '../runtime/nginx/index.ts';

export const help = `
Examples:
  $ gatewayctl build                          # ./gateway.yaml → ./dist
  $ gatewayctl build -c prod.yaml -o /srv/gw/dist
  $ gatewayctl build --check                  # CI: exit 1 when dist/ is stale

Output: nginx.conf, mime.types, conf.d/{00-maps,10-limits,20-caches,30-upstreams,40-servers}.conf
and manifest.json (input hash, version, files with sha256). Same input, byte-identical output.
A failed build leaves the previous output untouched. The output directory is replaced only
when it is absent, empty or a previous gatewayctl build (its manifest.json lists every file);
anything else is refused (GW610) and left as it is.`;

export interface BuildOptions {
  config: string;
  out: string;
  check?: boolean;
  nginx?: string;
  modulesDir?: string;
}

/** brotli is emitted only when the target nginx has the module (warn and degrade otherwise). */
export async function detectModules(opts: { nginx?: string; modulesDir?: string }): Promise<{ brotli: boolean }> {
  if (opts.modulesDir) return { brotli: existsSync(path.join(opts.modulesDir, BROTLI_MODULE)) };
  try {
    const loc = await findNginx({ nginx: opts.nginx });
    return { brotli: !!loc.modulesDir && existsSync(path.join(loc.modulesDir, BROTLI_MODULE)) };
  } catch {
    return { brotli: false };
  }
}

/** Compile for the target nginx: the modules found there decide what the output may load. */
export async function compileForTarget(opts: { config: string; nginx?: string; modulesDir?: string }): Promise<CompileResult & { availableModules: { brotli: boolean } }> {
  const availableModules = await detectModules(opts);
  return { ...compile(opts.config, { availableModules }), availableModules };
}

/**
 * What goes on disk for a successful compile: the rendered files plus model.json, the typed
 * model beside the build, so `gatewayctl diff --against` a build or a deployed release can
 * give the semantic summary. model.json is not part of the manifest's checksums.
 */
export function outputFiles(r: CompileResult): Record<string, string> {
  if (!r.files || !r.model) throw new Error('outputFiles: compile failed');
  return { ...r.files, 'model.json': modelJson(r.model) };
}

export function printDiagnostics(r: CompileResult): void {
  for (const x of r.diagnostics) (x.severity === 'error' ? process.stderr : process.stdout).write(`${formatDiagnostic(x)}\n`);
}

export async function run(opts: BuildOptions): Promise<number> {
  const r = await compileForTarget(opts);
  printDiagnostics(r);
  if (!r.ok || !r.files) {
    process.stderr.write(`build failed: ${opts.out} left unchanged\n`);
    return 1;
  }
  const files = outputFiles(r);
  if (opts.check) {
    const stale = staleFiles(opts.out, files);
    if (stale.length) {
      process.stderr.write(`${opts.out} is stale (${stale.length} file(s) differ): ${stale.join(', ')}\nrun: gatewayctl build -c ${opts.config} -o ${opts.out}\n`);
      return 1;
    }
    process.stdout.write(`${opts.out} is up to date\n`);
    return 0;
  }
  try {
    writeBuild(opts.out, files);
  } catch (e) {
    if (!(e instanceof UnsafeReplaceError)) throw e;
    process.stderr.write(`${e.message}\n(a build output directory is replaced only when it is absent, empty or a previous gatewayctl build; choose another -o)\n`);
    return 1;
  }
  process.stdout.write(`built ${opts.out}/ from ${opts.config} (${Object.keys(files).length} files, sha256 ${r.model!.source.hash.slice(0, 12)})\n`);
  return 0;
}
