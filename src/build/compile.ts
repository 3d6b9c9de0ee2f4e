// The pipeline without side effects beyond reading the input:
// load → schema → normalize → rules → render (+ manifest). Commands decide what to do next.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { loadConfig, type LoadOptions } from '../config/load.ts';
import { checkSchema } from '../config/check-schema.ts';
import { gatewaySchema } from '../config/schema.ts';
import { normalize } from '../model/normalize.ts';
import { checkRules } from '../model/rules.ts';
import { hasErrors, sortDiagnostics } from '../model/diagnostics.ts';
import type { Diagnostic, GatewayModel } from '../model/types.ts';
import { render, RenderError } from '../render/index.ts';
import type { RenderOptions } from '../render/view.ts';
import { VERSION } from '../version.ts';
import { addNjsFiles } from './njs.ts';
import { buildAuthArtifacts } from './auth.ts';
import { FEATURES } from '../features/index.ts';

export interface CompileOptions extends LoadOptions, RenderOptions {
  /** clock for the API-key map (revoked/expired keys are left out); default now */
  now?: Date;
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
  const loaded = loadConfig(configPath, opts);
  const diagnostics: Diagnostic[] = [...loaded.diagnostics];
  const fail = (): CompileResult => ({ ok: false, model: null, files: null, diagnostics: sortDiagnostics(diagnostics), inputFiles: loaded.files, mapKeys: [] });
  if (!loaded.value || hasErrors(diagnostics)) return fail();
  const schemaErrors = checkSchema(loaded.value, loaded.positions, loaded.file, gatewaySchema(FEATURES));
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
      for (const x of checkRules(normalize(normalizeInput), FEATURES, loaded.positions)) if (!seen.has(x.at?.path)) diagnostics.push(x);
    } catch {
      // shape errors already reported
    }
    return fail();
  }
  const model = normalize(normalizeInput);
  diagnostics.push(...checkRules(model, FEATURES, loaded.positions));
  markPendingCertificates(model, diagnostics);
  if (hasErrors(diagnostics)) return { ...fail(), model };
  // auth inputs (keys file, JWKS, secrets) are inputs like includes: part of the input hash
  const auth = buildAuthArtifacts(model, {
    env: opts.env,
    now: opts.now,
    locate: (p, fallback) => loaded.positions.value.get(p) ?? loaded.positions.key.get(p) ?? fallback,
  });
  diagnostics.push(...auth.diagnostics);
  if (hasErrors(diagnostics)) return { ...fail(), model };
  if (auth.inputDigest) model.source.hash = sha256(`${model.source.hash}\n${auth.inputDigest}`);

  let files: Record<string, string>;
  let modules: Manifest['modules'];
  try {
    const r = render(model, FEATURES, { ...opts, externalMapKeys: auth.mapKeys });
    files = r.files;
    modules = r.modules;
    for (const w of r.warnings) diagnostics.push({ code: 'GW501', severity: 'warning', message: w, at: null });
  } catch (e) {
    if (!(e instanceof RenderError)) throw e;
    diagnostics.push({ code: 'GW400', severity: 'error', message: `render: ${e.message}`, at: null });
    return { ...fail(), model };
  }
  addNjsFiles(model, files);
  Object.assign(files, auth.files);
  files['manifest.json'] = manifest(model, files, modules);
  return { ok: true, model, files, diagnostics: sortDiagnostics(diagnostics), inputFiles: [...loaded.files, ...auth.inputFiles], mapKeys: auth.mapKeys };
}

/**
 * An ACME-managed certificate that has not been issued yet cannot be loaded by nginx, so
 * until it exists the build serves plain HTTP with the challenge location only (and nginx
 * accepts the config); `gatewayctl tls issue` then rebuilds with the TLS server in place.
 */
function markPendingCertificates(m: GatewayModel, diagnostics: Diagnostic[]): void {
  for (const l of m.listeners) {
    if (!l.tls?.acme || !m.acme) continue;
    if (existsSync(l.tls.cert) && existsSync(l.tls.key)) continue;
    l.tls.pending = true;
    diagnostics.push({
      code: 'GW502',
      severity: 'warning',
      message: `certificate for ${m.acme.domains[0]} not issued yet: listener ${l.name} is left out and port ${l.tls.redirectFrom ?? 80} serves ACME challenges only; run \`gatewayctl tls issue\``,
      at: l.tls.at,
    });
  }
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
}

/** `http2 on` needs nginx 1.25.1; js_var, js_preload_object and the handlers need njs 0.8. */
export function requirements(m: GatewayModel, njs: boolean): Manifest['requires'] {
  const http2 = m.listeners.some((l) => l.tls && !l.tls.pending && l.tls.http2);
  return { nginx: http2 ? '1.25.1' : '1.24.0', njs: njs ? '0.8.0' : null };
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

function manifest(m: GatewayModel, files: Record<string, string>, modules: Manifest['modules']): string {
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
    requires: requirements(m, modules.njs),
    runtime: { pid: g.paths.pid, errorLog: g.errorLog.path },
  };
  return `${JSON.stringify(man, null, 2)}\n`;
}
