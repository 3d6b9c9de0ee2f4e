// The pipeline without side effects beyond reading the input:
// load (gateway.yaml, then the inputs features ask for) → schema → normalize → finalize →
// rules → outputs + plan/render (+ manifest). Only the load stage reads the disk; the model
// is final before the rules run. Commands decide what to do next.
//
// This module is a composition root: it passes the feature registry to the core.
import { createHash } from 'node:crypto';
import { loadConfig, type LoadOptions } from '../config/load.ts';
import { checkSchema } from '../config/check-schema.ts';
import { gatewaySchema } from '../config/schema.ts';
import { normalize } from '../model/normalize.ts';
import { checkRules } from '../model/rules.ts';
import { hasErrors, sortDiagnostics } from '../model/diagnostics.ts';
import type { Diagnostic, GatewayModel, SourcePos } from '../model/types.ts';
import { render, RenderError } from '../targets/nginx/render.ts';
import type { RenderOptions } from '../targets/nginx/route.ts';
import { VERSION } from '../version.ts';
import { addNjsFiles } from './njs.ts';
import { readInputs } from '../config/inputs.ts';
import { FEATURES } from '../features/index.ts';
import type { Feature, VersionNeed } from '../core/feature.ts';
import { compareVersions } from '../model/versions.ts';
import { routeNjsCalls } from '../plan/route.ts';
import { markModelFinal } from '../model/memo.ts';

export interface CompileOptions extends LoadOptions, RenderOptions {
  /** clock for the API-key map (revoked/expired keys are left out); default now */
  now?: Date;
  /** the feature registry (default: every feature of gatewayctl) */
  features?: readonly Feature[];
  /**
   * Adapt the finished model to where the output runs (a container's paths and addresses:
   * `build --target k8s`), before the rules check it; returns its diagnostics.
   */
  adapt?: (m: GatewayModel) => Diagnostic[];
  /**
   * Adapt the normalized model before its inputs are read (`bench -c`: point the key store at
   * a temporary copy, upstreams at a stub); returns its diagnostics.
   */
  prepare?: (m: GatewayModel) => Diagnostic[];
}

export interface CompileResult {
  ok: boolean;
  model: GatewayModel | null;
  files: Record<string, string> | null; // relative path → content, manifest.json included
  diagnostics: Diagnostic[];
  inputFiles: string[];
  /** keys of maps written outside render (API key hashes): render sizes map_hash_* with them */
  mapKeys: string[][];
}

export const sha256 = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

export function compile(configPath: string, opts: CompileOptions = {}): CompileResult {
  const features = opts.features ?? FEATURES;
  const loaded = loadConfig(configPath, opts);
  const diagnostics: Diagnostic[] = [...loaded.diagnostics];
  const fail = (): CompileResult => ({ ok: false, model: null, files: null, diagnostics: sortDiagnostics(diagnostics), inputFiles: loaded.files, mapKeys: [] });
  if (!loaded.value || hasErrors(diagnostics)) return fail();
  const schemaErrors = checkSchema(loaded.value, loaded.positions, loaded.file, gatewaySchema(features));
  diagnostics.push(...schemaErrors);
  const normalizeInput = {
    value: loaded.value,
    positions: loaded.positions,
    file: loaded.file,
    baseDir: loaded.baseDir,
    hash: loaded.hash,
    version: VERSION,
  };
  if (hasErrors(diagnostics)) {
    // Report semantic problems together with schema ones where the document's shape still
    // allows it; a shape too broken to normalize just yields the schema errors.
    try {
      const seen = new Set(schemaErrors.map((x) => x.at?.path));
      for (const x of checkRules(normalize(normalizeInput, features), features, loaded.positions)) if (!seen.has(x.at?.path)) diagnostics.push(x);
    } catch {
      // shape errors already reported
    }
    return fail();
  }
  const model = normalize(normalizeInput, features);
  if (opts.prepare) {
    diagnostics.push(...opts.prepare(model));
    if (hasErrors(diagnostics)) return { ...fail(), model };
  }
  // the rest of the load stage: what the features build from (key store, JWKS, secrets,
  // certificate files), read once, bounded
  const inputs = readInputs(features.flatMap((f) => f.inputs?.(model) ?? []), opts.env);
  // finalize, before any rule looks at the model: inputs are part of the input hash like
  // includes, and features complete what depends on them (a pending ACME certificate)
  if (inputs.digest) model.source.hash = sha256(`${model.source.hash}\n${inputs.digest}`);
  for (const f of features) diagnostics.push(...(f.finalize?.(model, inputs) ?? []));
  if (opts.adapt) diagnostics.push(...opts.adapt(model));
  markModelFinal(model); // nothing changes it from here on (src/model/memo.ts)
  diagnostics.push(...checkRules(model, features, loaded.positions));
  if (hasErrors(diagnostics)) return { ...fail(), model };
  const outputCtx = {
    now: opts.now,
    locate: (p: string, fallback: SourcePos) => loaded.positions.value.get(p) ?? loaded.positions.key.get(p) ?? fallback,
  };
  const outputs = features.map((f) => f.outputs?.(model, inputs, outputCtx) ?? { files: {}, diagnostics: [], mapKeys: [] });
  for (const o of outputs) diagnostics.push(...o.diagnostics);
  if (hasErrors(diagnostics)) return { ...fail(), model };
  const mapKeys = outputs.flatMap((o) => o.mapKeys);

  let files: Record<string, string>;
  let modules: Manifest['modules'];
  try {
    const r = render(model, features, { ...opts, externalMapKeys: mapKeys });
    files = r.files;
    modules = r.modules;
    for (const w of r.warnings) diagnostics.push({ code: 'GW501', severity: 'warning', message: w, at: null });
  } catch (e) {
    if (!(e instanceof RenderError)) throw e;
    diagnostics.push({ code: 'GW400', severity: 'error', message: `render: ${e.message}`, at: null });
    return { ...fail(), model };
  }
  addNjsFiles(model, files, njsHandlersUsed(model, features));
  for (const o of outputs) Object.assign(files, o.files);
  files['manifest.json'] = manifest(model, files, modules, features);
  return { ok: true, model, files, diagnostics: sortDiagnostics(diagnostics), inputFiles: [...loaded.files, ...inputs.files], mapKeys };
}

export interface Manifest {
  generator: 'gatewayctl';
  version: string;
  input: { file: string; sha256: string };
  files: Record<string, string>;
  prefixDirs: string[];
  /**
   * Where `deploy` checks the config hash. host: the Host header / TLS SNI to send when the
   * endpoint is on a listener with server_names (the catch-all server refuses other names);
   * health: the liveness path on the same listener.
   */
  readiness: { path: string; listen: string; host?: string; health: string };
  /** certificatePending: an ACME listener left out until `tls issue` (plain HTTP on its redirect port only) */
  listeners: { name: string; port: number; tls: boolean; certificatePending?: true }[];
  modules: { njs: boolean; brotli: boolean };
  /** oldest nginx / njs this output runs on (checked by `gatewayctl doctor` against a target) */
  requires: { nginx: string; njs: string | null };
  /** where the running nginx keeps its pid and error log, relative to the prefix unless absolute */
  runtime: { pid: string; errorLog: string };
  /** each route's njs calls per request, in total and by feature (the features' declared cost) */
  routes: { name: string; njsCalls: number; byFeature: Record<string, number> }[];
}

/** The oldest nginx / njs every build runs on (js_var, js_preload_object, the handlers: njs 0.8). */
export const BASELINE = { nginx: '1.24.0', njs: '0.8.0' };

/** `http2 on` needs nginx 1.25.1; beyond that, what the features declare (Feature.requires). */
/** The njs handlers this model's output calls (`gateway.<name>` → name), in registry order. */
export function njsHandlersUsed(m: GatewayModel, features: readonly Feature[]): string[] {
  const names: string[] = [];
  for (const f of features) {
    for (const u of f.njs ?? []) {
      const name = u.handler.replace(/^gateway\./, '');
      if ((!u.used || u.used(m)) && !names.includes(name)) names.push(name);
    }
  }
  return names;
}

export function requirements(m: GatewayModel, njs: boolean, features: readonly Feature[]): Manifest['requires'] {
  const http2 = m.listeners.some((l) => l.tls && !l.tls.pending && l.tls.http2);
  let nginx = http2 ? '1.25.1' : BASELINE.nginx;
  let njsMin: string | null = njs ? BASELINE.njs : null;
  for (const need of versionNeeds(m, features)) {
    if (need.nginx && compareVersions(need.nginx, nginx) > 0) nginx = need.nginx;
    if (need.njs && (njsMin === null || compareVersions(need.njs, njsMin) > 0)) njsMin = need.njs;
  }
  return { nginx, njs: njsMin };
}

/** Every feature's version needs for this model. */
export function versionNeeds(m: GatewayModel, features: readonly Feature[]): VersionNeed[] {
  return features.flatMap((f) => f.requires?.(m) ?? []);
}

/**
 * The status listener when there is one; else the first plain-HTTP listener (a listener whose
 * certificate is pending serves plain HTTP on its redirect_from port), else the first one.
 */
export function readinessEndpoint(m: GatewayModel): Manifest['readiness'] {
  const base = { path: m.global.health.readiness };
  const health = m.global.health.liveness;
  if (m.global.status) return { ...base, listen: m.global.status.listen, health };
  const first = m.listeners.find((l) => !l.tls || l.tls.pending) ?? m.listeners[0];
  const port = first.tls?.pending ? (first.tls.redirectFrom ?? 80) : first.port;
  const host = readinessHost(first.serverNames);
  return { ...base, listen: `${first.address ?? '127.0.0.1'}:${port}`, ...(host ? { host } : {}), health };
}

/** A name the listener's servers answer to: the first exact server name, else one under the first wildcard. */
function readinessHost(names: string[]): string | null {
  const exact = names.find((n) => !n.startsWith('*.') && n !== '_');
  if (exact) return exact;
  const wild = names.find((n) => n.startsWith('*.'));
  return wild ? `ready.${wild.slice(2)}` : null;
}

function manifest(m: GatewayModel, files: Record<string, string>, modules: Manifest['modules'], features: readonly Feature[]): string {
  const sums: Record<string, string> = {};
  for (const f of Object.keys(files).sort()) sums[f] = sha256(files[f]);
  const readiness = readinessEndpoint(m);
  const g = m.global;
  const prefixDirs = [g.paths.logs, 'run', g.paths.temp, ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${g.paths.temp}/${t}`), g.paths.cache];
  // directories of relative log files (nginx opens them, it does not create their directory)
  for (const f of [g.accessLog?.path, g.errorLog.path, m.auth?.failureLog]) {
    const dir = f && !f.startsWith('/') ? f.split('/').slice(0, -1).join('/') : '';
    if (dir && !dir.split('/').includes('..') && !prefixDirs.includes(dir)) prefixDirs.push(dir);
  }
  const man: Manifest = {
    generator: 'gatewayctl',
    version: m.version,
    input: { file: m.source.file, sha256: m.source.hash },
    files: sums,
    prefixDirs,
    readiness,
    listeners: m.listeners.map((l) => ({ name: l.name, port: l.port, tls: !!l.tls, ...(l.tls?.pending ? { certificatePending: true as const } : {}) })),
    modules,
    requires: requirements(m, modules.njs, features),
    runtime: { pid: g.paths.pid, errorLog: g.errorLog.path },
    routes: m.routes.map((r) => {
      const c = routeNjsCalls(r, m, features);
      return { name: r.name, njsCalls: c.total, byFeature: c.byFeature };
    }),
  };
  return `${JSON.stringify(man, null, 2)}\n`;
}
