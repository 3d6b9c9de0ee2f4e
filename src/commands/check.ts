// `gatewayctl check`: build in memory, write to a scratch directory and run the real
// `nginx -t` on it. nginx's errors are shown with the generated file and line and mapped
// back to the gateway.yaml entry that produced that block.
//
// Hosts that only resolve where the gateway is deployed (docker service names, internal
// DNS) would fail `nginx -t` here, so unresolvable upstream hosts are replaced by
// 127.0.0.1 in the checked copy, and missing certificate files by a throwaway self-signed
// pair; both are reported as warnings. Everything else is checked exactly as built.
import { lookup } from 'node:dns/promises';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeBuild } from '../build/write.ts';
import { compile } from '../build/compile.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import type { Diagnostic, GatewayModel, SourcePos } from '../model/types.ts';
import { render } from '../targets/nginx/render.ts';
import { FEATURES } from '../features/index.ts';
import { findNginx, preparePrefix, testConfig, type ConfigError } from '../runtime/nginx/index.ts';
import { findOpenssl } from '../tls/openssl.ts';
import { compileForTarget, printDiagnostics } from './build.ts';

export const help = `
Examples:
  $ gatewayctl check                          # ./gateway.yaml with the project's nginx runtime
  $ gatewayctl check -c examples/openai-compatible/gateway.yaml
  $ gatewayctl check --nginx /usr/sbin/nginx  # against another nginx binary
  $ gatewayctl check --strict-dns             # fail instead of substituting unresolvable hosts

Upstream hosts that do not resolve on this machine (docker service names, internal DNS)
are checked with 127.0.0.1 in their place, missing certificate files with a throwaway
self-signed pair, and listen addresses this machine does not have on all addresses; each
substitution is printed as a warning.`;

export interface CheckOptions {
  config: string;
  nginx?: string;
  strictDns?: boolean;
  keep?: boolean;
}

export interface CheckResult {
  ok: boolean;
  diagnostics: Diagnostic[];
  nginxOutput: string;
  dir: string | null;
}

/** Replace hosts that do not resolve here; returns the substitutions made. */
export async function substituteUnresolvable(m: GatewayModel): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  const cache = new Map<string, boolean>();
  for (const u of m.upstreams) {
    for (const s of u.servers) {
      if (s.address.startsWith('unix:')) continue;
      const host = s.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      if (isIP(host)) continue;
      if (!cache.has(host)) {
        cache.set(host, await lookup(host).then(() => true, () => false));
      }
      if (!cache.get(host)) {
        out.push({
          code: 'GW402',
          severity: 'warning',
          message: `upstream host "${host}" does not resolve here; checked with 127.0.0.1 in its place (it must resolve where the gateway runs)`,
          at: s.at,
        });
        s.address = s.address.replace(/^[^:]+|^\[[^\]]+\]/, '127.0.0.1');
      }
    }
  }
  return out;
}

/**
 * nginx -t binds every listening socket, so a listener address that belongs to the target
 * machine (a public or VPC address) fails here; such listeners are checked on all
 * addresses instead, with a warning (GW247), as unresolvable upstream hosts are.
 */
export function substituteForeignAddresses(m: GatewayModel): Diagnostic[] {
  const local = new Set(['127.0.0.1', '::1', '0.0.0.0', '::']);
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) local.add(a.address);
  const out: Diagnostic[] = [];
  for (const l of m.listeners) {
    if (!l.address) continue;
    const ip = l.address.replace(/^\[|\]$/g, '');
    if (local.has(ip)) continue;
    out.push({
      code: 'GW247',
      severity: 'warning',
      message: `listen address ${l.address} is not an address of this machine; checked on all addresses (it must exist where the gateway runs)`,
      at: l.at,
    });
    l.address = null;
  }
  const st = m.global.status;
  if (st) {
    const host = st.listen.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
    if (host !== st.listen && !local.has(host)) {
      out.push({ code: 'GW247', severity: 'warning', message: `global.status.listen address ${host} is not an address of this machine; checked on 127.0.0.1`, at: m.global.at });
      st.listen = `127.0.0.1:${st.listen.split(':').pop()}`;
    }
  }
  return out;
}

export function substituteMissingCerts(m: GatewayModel, scratch: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  let pair: { cert: string; key: string } | null = null;
  for (const l of m.listeners) {
    if (!l.tls) continue;
    if (existsSync(l.tls.cert) && existsSync(l.tls.key)) continue;
    if (!pair) {
      pair = { cert: path.join(scratch, 'check-cert.pem'), key: path.join(scratch, 'check-key.pem') };
      execFileSync(findOpenssl(), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=gatewayctl-check', '-keyout', pair.key, '-out', pair.cert], { stdio: 'ignore' });
    }
    out.push({
      code: 'GW403',
      severity: 'warning',
      message: `certificate ${existsSync(l.tls.cert) ? l.tls.key : l.tls.cert} does not exist here; checked with a throwaway self-signed pair`,
      at: l.tls.at,
    });
    l.tls.cert = pair.cert;
    l.tls.key = pair.key;
  }
  return out;
}

/** The entry behind an nginx error that names no generated line (bind(), hash tables). */
function blameMessage(m: GatewayModel, message: string): SourcePos | null {
  const bind = /bind\(\) to (.+):([0-9]+) failed/.exec(message);
  if (bind) {
    const l = m.listeners.find((x) => x.port === Number(bind[2]) || x.tls?.redirectFrom === Number(bind[2]));
    if (l) return l.at;
  }
  if (/server_names_hash/.test(message)) {
    const l = m.listeners.find((x) => x.serverNames.length) ?? m.listeners[0];
    if (l) return l.at;
  }
  return null;
}

export async function checkConfig(opts: CheckOptions): Promise<CheckResult> {
  const first = await compileForTarget(opts);
  if (!first.ok || !first.model) return { ok: false, diagnostics: first.diagnostics, nginxOutput: '', dir: null };
  const diagnostics = [...first.diagnostics];
  // The scratch directory holds the full build, HMAC secrets (njs/auth.json) included: it
  // is removed on every way out (errors thrown, Ctrl-C), kept only when --keep asks for it.
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-check-'));
  const remove = () => rmSync(scratch, { recursive: true, force: true });
  const onSignal = (sig: NodeJS.Signals) => {
    remove();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.kill(process.pid, sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', remove);
  let keep = false;
  try {
    const r = await checkIn(scratch, opts, first, diagnostics);
    keep = !!opts.keep;
    return { ...r, dir: keep ? scratch : null };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', remove);
    if (!keep) remove();
  }
}

async function checkIn(
  scratch: string,
  opts: CheckOptions,
  first: Awaited<ReturnType<typeof compileForTarget>>,
  diagnostics: Diagnostic[],
): Promise<Omit<CheckResult, 'dir'>> {
  const model = structuredClone(first.model!);
  if (!opts.strictDns) diagnostics.push(...(await substituteUnresolvable(model)));
  diagnostics.push(...substituteMissingCerts(model, scratch));
  diagnostics.push(...substituteForeignAddresses(model));
  // build artefacts that are not rendered (njs bundle, auth preload, key map) come from the first build
  const rendered = render(model, FEATURES, { availableModules: first.availableModules, externalMapKeys: first.mapKeys });
  const files = { ...first.files!, ...rendered.files };
  const dist = path.join(scratch, 'dist');
  writeBuild(dist, files);
  const loc = await findNginx({ nginx: opts.nginx });
  const prefix = path.join(scratch, 'prefix');
  await preparePrefix(prefix, loc.modulesDir, { dirs: (JSON.parse(files['manifest.json']) as { prefixDirs: string[] }).prefixDirs });
  const res = await testConfig(loc, prefix, path.join(dist, 'nginx.conf'));
  const report = (e: ConfigError, severity: 'error' | 'warning') => {
    let at: SourcePos | null = null;
    let where = '';
    if (e.file && e.line && e.file.startsWith(dist)) {
      const rel = path.relative(dist, e.file);
      where = ` (generated ${rel}:${e.line})`;
      // the printer recorded the gateway.yaml entry behind every generated line
      at = rendered.lineOrigins[rel]?.[e.line - 1] ?? null;
    } else if (e.file) {
      where = ` (${e.file}${e.line ? `:${e.line}` : ''})`;
    }
    // every problem carries a position: the entry behind it, else the top of gateway.yaml
    at ??= blameMessage(model, e.message) ?? { file: model.source.file, line: 1, col: 1, path: '' };
    diagnostics.push({ code: 'GW401', severity, message: `nginx: ${e.message}${where}`, at });
  };
  for (const e of res.errors) report(e, 'error');
  for (const e of res.warnings) report(e, 'warning');
  if (!res.ok && !res.errors.length) {
    diagnostics.push({ code: 'GW401', severity: 'error', message: `nginx -t failed:\n${res.output}`, at: { file: model.source.file, line: 1, col: 1, path: '' } });
  }
  return { ok: res.ok, diagnostics, nginxOutput: res.output };
}

export async function run(opts: CheckOptions): Promise<number> {
  const r = await checkConfig(opts);
  for (const x of r.diagnostics) (x.severity === 'error' ? process.stderr : process.stdout).write(`${formatDiagnostic(x)}\n`);
  if (!r.ok) {
    process.stderr.write(`check failed${r.dir ? ` (scratch kept in ${r.dir})` : ''}\n`);
    return 1;
  }
  process.stdout.write(`${opts.config}: nginx -t passed\n`);
  return 0;
}


