// Glue between `gatewayctl tls …` and the gateway: defaults come from gateway.yaml's
// tls.acme (so `gatewayctl tls issue` needs no flags), and after a certificate is issued or
// renewed the gateway is rebuilt, tested and reloaded once. Certificate paths do not change
// on renewal, so a reload (SIGHUP) is what makes nginx read the new files; a deploy alone
// would see an unchanged build and do nothing.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { compile } from '../build/compile.ts';
import { writeBuild } from '../build/write.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { findNginx, isRunning, preparePrefix, reloadNginx, testConfig } from '../runtime/nginx.ts';
import { detectModules, outputFiles } from './build.ts';
import type { TlsOptions } from './tls.ts';

export interface GatewayTlsOptions extends TlsOptions {
  config?: string;
  out?: string;
  prefix?: string;
  nginx?: string;
  reload?: boolean; // --no-reload sets false
}

/** Fill unset issue/renew options from tls.acme in the config, when the config exists. */
export function withConfigDefaults(opts: GatewayTlsOptions): GatewayTlsOptions {
  const config = opts.config ?? 'gateway.yaml';
  if (!existsSync(config)) return opts;
  const r = compile(config);
  const acme = r.model?.acme;
  if (!acme) return opts;
  const domains = Array.isArray(opts.domain) ? opts.domain : opts.domain ? [opts.domain] : [];
  return {
    ...opts,
    domain: domains.length ? domains : acme.domains,
    email: opts.email ?? acme.email,
    directory: opts.directory ?? (opts.staging ? undefined : acme.directory),
    keyType: opts.keyType ?? acme.keyType,
    webroot: opts.webroot ?? acme.webroot,
    certsDir: opts.certsDir ?? acme.certsDir,
  };
}

/** Rebuild dist/ and, when the gateway runs under `prefix`, nginx -t and reload it. */
export function rebuildAndReload(opts: GatewayTlsOptions): () => Promise<void> {
  return async () => {
    const config = opts.config ?? 'gateway.yaml';
    if (!existsSync(config)) return;
    const out = opts.out ?? 'dist';
    const r = compile(config, { availableModules: await detectModules({ nginx: opts.nginx }) });
    if (!r.ok || !r.files) {
      throw new Error(`rebuild failed:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
    }
    writeBuild(out, outputFiles(r));
    process.stderr.write(`rebuilt ${out}/ from ${config}\n`);
    const prefix = path.resolve(opts.prefix ?? '.gatewayctl/run');
    if (opts.reload === false || !(await isRunning(prefix))) {
      process.stderr.write(`gateway not running under ${prefix}: nothing reloaded\n`);
      return;
    }
    const loc = await findNginx({ nginx: opts.nginx });
    await preparePrefix(prefix, loc.modulesDir);
    const t = await testConfig(loc, prefix, path.resolve(out, 'nginx.conf'));
    if (!t.ok) throw new Error(`nginx -t failed, gateway not reloaded:\n${t.output}`);
    await reloadNginx(prefix);
    process.stderr.write(`reloaded the gateway under ${prefix}\n`);
  };
}
