// `gatewayctl build`: validate, render, and swap the output into place atomically.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BASELINE, compile, versionNeeds, type CompileResult } from '../build/compile.ts';
import type { Feature, VersionNeed } from '../core/feature.ts';
import { FEATURES } from '../features/index.ts';
import { compareVersions } from '../model/versions.ts';
import { sortDiagnostics } from '../model/diagnostics.ts';
import type { Diagnostic } from '../model/types.ts';
import { UnsafeReplaceError } from '../build/guard.ts';
import { staleFiles, writeBuild } from '../build/write.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { modelJson } from '../diff/sources.ts';
import { BROTLI_MODULE, findNginx, nginxInfo, type NginxInfo } from '../runtime/nginx/index.ts';

export const help = `
Examples:
  $ gatewayctl build                          # ./gateway.yaml → ./dist
  $ gatewayctl build -c prod.yaml -o /srv/gw/dist
  $ gatewayctl build --check                  # CI: exit 1 when dist/ is stale

  $ gatewayctl build --target k8s -o k8s      # Kubernetes manifests → ./k8s (kubectl apply -k k8s)

Output: nginx.conf, mime.types, conf.d/{00-maps,10-limits,20-caches,30-upstreams,40-servers}.conf
and manifest.json (input hash, version, files with sha256). Same input, byte-identical output.
A failed build leaves the previous output untouched. The output directory is replaced only
when it is absent, empty or a previous gatewayctl build (its manifest.json lists every file);
anything else is refused (GW610) and left as it is.`;

export interface BuildOptions {
  config: string;
  /** default: dist, or k8s for --target k8s */
  out?: string;
  /** nginx (default): the nginx config; k8s: a kustomize directory of Kubernetes manifests */
  target?: 'nginx' | 'k8s';
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

/**
 * Compile for the target nginx: the modules found there decide what the output may load, and
 * a feature that needs a newer nginx or njs than the target has is refused (GW503) at the key
 * that asks for it. The target's versions are probed only when some need exceeds the baseline
 * every build runs on.
 */
export async function compileForTarget(
  opts: { config: string; nginx?: string; modulesDir?: string },
  features: readonly Feature[] = FEATURES,
): Promise<CompileResult & { availableModules: { brotli: boolean } }> {
  const availableModules = await detectModules(opts);
  const r = compile(opts.config, { availableModules, features });
  if (!r.ok || !r.model) return { ...r, availableModules };
  const needs = versionNeeds(r.model, features).filter(
    (n) => (n.nginx && compareVersions(n.nginx, BASELINE.nginx) > 0) || (n.njs && compareVersions(n.njs, BASELINE.njs) > 0),
  );
  if (!needs.length) return { ...r, availableModules };
  const problems = await targetProblems(needs, opts.nginx);
  if (!problems.length) return { ...r, availableModules };
  const diagnostics = sortDiagnostics([...r.diagnostics, ...problems]);
  return { ...r, ok: false, files: null, diagnostics, availableModules };
}

/** GW503 for each need the target nginx (or its njs) does not meet. */
async function targetProblems(needs: VersionNeed[], nginx: string | undefined): Promise<Diagnostic[]> {
  let info: NginxInfo;
  try {
    info = await nginxInfo(await findNginx({ nginx }), { probeNjs: needs.some((n) => n.njs) });
  } catch (e) {
    return needs.map((n) => ({ code: 'GW503', severity: 'error', at: n.at, message: `${n.why} needs ${need(n)}; no target nginx to check it against (${(e as Error).message})` }));
  }
  const hint = 'provision the newer runtime (bash scripts/provision-runtime.sh --next) and build with --nginx .runtime-next/bin/nginx, or point --nginx at a newer nginx';
  const out: Diagnostic[] = [];
  for (const n of needs) {
    const nginxOld = n.nginx && compareVersions(info.version, n.nginx) < 0;
    const njsVersion = info.njs.version;
    const njsOld = n.njs && (njsVersion === null || compareVersions(njsVersion, n.njs) < 0);
    if (!nginxOld && !njsOld) continue;
    const has = [nginxOld ? `nginx ${info.version}` : null, njsOld ? `njs ${njsVersion ?? 'none'}` : null].filter(Boolean).join(' and ');
    out.push({ code: 'GW503', severity: 'error', at: n.at, message: `${n.why} needs ${need(n)}; the target ${info.bin} has ${has}: ${hint}` });
  }
  return out;
}

const need = (n: VersionNeed): string => [n.nginx ? `nginx >= ${n.nginx}` : null, n.njs ? `njs >= ${n.njs}` : null].filter(Boolean).join(' and ');

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

export async function run(o: BuildOptions): Promise<number> {
  if (o.target === 'k8s') return runK8s({ ...o, out: o.out ?? 'k8s' });
  if (o.target !== undefined && o.target !== 'nginx') {
    process.stderr.write(`unknown target ${o.target} (nginx or k8s)\n`);
    return 2;
  }
  const opts = { ...o, out: o.out ?? 'dist' };
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

/** `build --target k8s`: the kustomize directory (src/commands/build-k8s.ts). */
async function runK8s(opts: BuildOptions & { out: string }): Promise<number> {
  const { compileK8s, previousK8sOutput } = await import('./build-k8s.ts');
  const r = compileK8s(opts.config);
  printDiagnostics(r);
  if (!r.ok || !r.k8s) {
    process.stderr.write(`build failed: ${opts.out} left unchanged\n`);
    return 1;
  }
  if (opts.check) {
    const stale = staleFiles(opts.out, r.k8s);
    if (stale.length) {
      process.stderr.write(`${opts.out} is stale (${stale.length} file(s) differ): ${stale.join(', ')}\nrun: gatewayctl build --target k8s -c ${opts.config} -o ${opts.out}\n`);
      return 1;
    }
    process.stdout.write(`${opts.out} is up to date\n`);
    return 0;
  }
  try {
    writeBuild(opts.out, r.k8s, previousK8sOutput);
  } catch (e) {
    if (!(e instanceof UnsafeReplaceError)) throw e;
    process.stderr.write(`${e.message}\n(a build output directory is replaced only when it is absent, empty or a previous gatewayctl build; choose another -o)\n`);
    return 1;
  }
  process.stdout.write(`built ${opts.out}/ for Kubernetes from ${opts.config} (${Object.keys(r.k8s).length} files): kubectl apply -k ${opts.out}\n`);
  return 0;
}
