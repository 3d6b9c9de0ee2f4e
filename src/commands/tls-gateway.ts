// Glue between `gatewayctl tls …` and the gateway: defaults come from gateway.yaml's
// tls.acme (so `gatewayctl tls issue` needs no flags), and after a certificate is issued or
// renewed the gateway that serves the config is made to load it.
//
// Certificate paths never change on renewal (the build holds the absolute paths of
// <certs-dir>/<name>/fullchain.pem and privkey.pem), so a reload (SIGHUP: nginx re-reads its
// configuration and the files it names; old workers finish their requests) is all it takes;
// nothing is rebuilt. What is reloaded, in this order:
//   1. a deployment (`gatewayctl deploy`): TARGET/current exists (--target, default
//      .gatewayctl/deploy; nginx prefix --prefix, default TARGET). `nginx -t` on the live
//      release, then --reload-cmd when given, else SIGHUP to its master. The one exception
//      is `tls issue` while the live release was built before the certificate existed (the
//      listener was left out and port 80 answers challenges only): then the config is
//      rebuilt into a temporary directory and deployed as a new release.
//   2. --reload-cmd alone (e.g. `systemctl reload nginx`), when there is no deployment.
//   3. a gateway run by `gatewayctl up` (nginx master under --prefix, default
//      .gatewayctl/run): `nginx -t` on the configuration it runs, then SIGHUP.
// Nothing running, or any of these failing, is an error (exit 1, the certificates stay
// stored and the next `tls renew` retries the reload); --no-reload skips this on purpose.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compile } from '../build/compile.ts';
import { writeBuild } from '../build/write.ts';
import { deploy, DeployError } from '../deploy/deploy.ts';
import { runCapture, runningMaster } from '../deploy/nginx.ts';
import { buildRuntime, layout, linkedRelease } from '../deploy/releases.ts';
import { formatDiagnostic } from '../model/diagnostics.ts';
import { PENDING_CERTIFICATE_ROUTE } from '../features/tls/servers.ts';
import { DEFAULT_PID_FILE, findNginx, preparePrefix, reloadNginx, testConfig, type NginxLocation } from '../runtime/nginx/index.ts';
import { detectModules, outputFiles } from './build.ts';
import { DEFAULT_TARGET, formatFailure } from './deploy.ts';
import { readUpRecord } from './up.ts';
import type { TlsOptions } from './tls.ts';

export const DEFAULT_UP_PREFIX = '.gatewayctl/run';

export interface GatewayTlsOptions extends TlsOptions {
  config?: string;
  /** Deploy target whose live release is reloaded (default .gatewayctl/deploy). */
  target?: string;
  /** nginx prefix: of the deployment (default: the target) or of `up` (default .gatewayctl/run). */
  prefix?: string;
  nginx?: string;
  /** Shell command that reloads the nginx serving the config (e.g. `systemctl reload nginx`). */
  reloadCmd?: string;
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

/** The build's manifest, or null (not a gatewayctl build, or unreadable). */
function manifestOf(buildDir: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path.join(buildDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * A build that left an ACME listener out because its certificate did not exist yet, as its
 * manifest says; builds made before the manifest said so carry the pending route's marker.
 */
export function servesPendingCertificate(buildDir: string): boolean {
  const listeners = manifestOf(buildDir)?.listeners;
  if (Array.isArray(listeners) && listeners.some((l) => l && typeof l === 'object' && 'certificatePending' in l)) return true;
  const confD = path.join(buildDir, 'conf.d');
  let names: string[];
  try {
    names = readdirSync(confD).filter((n) => n.endsWith('.conf'));
  } catch {
    return false;
  }
  const marker = `"${PENDING_CERTIFICATE_ROUTE}"`;
  return names.some((n) => readFileSync(path.join(confD, n), 'utf8').includes(marker));
}


async function nginxTestOrThrow(loc: NginxLocation, prefix: string, conf: string, what: string): Promise<void> {
  const t = await testConfig(loc, prefix, conf);
  if (!t.ok) throw new Error(`nginx -t rejects ${what} with the new certificate files; nothing reloaded:\n${t.output.trim()}`);
}

async function runReloadCmd(cmd: string, log: (l: string) => void): Promise<void> {
  log(`reloading with: ${cmd}`);
  const r = await runCapture(cmd, [], { shell: true, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`reload command failed (exit ${r.code ?? r.signal}): ${cmd}${r.output.trim() ? `\n${r.output.trim()}` : ''}`);
}

/** Compile the config into a temporary directory and deploy it (the first issuance). */
async function deployRebuilt(opts: GatewayTlsOptions, target: string, log: (l: string) => void): Promise<void> {
  const config = opts.config ?? 'gateway.yaml';
  if (!existsSync(config)) throw new Error(`the live release was built before the certificate existed and ${config} is not here to rebuild it`);
  const r = compile(config, { availableModules: await detectModules({ nginx: opts.nginx }) });
  if (!r.ok || !r.files) throw new Error(`rebuild of ${config} failed:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'gatewayctl-tls-build-'));
  try {
    const from = path.join(tmp, 'build');
    writeBuild(from, outputFiles(r));
    log(`the live release predates the certificate: deploying a rebuild of ${config} to ${target}`);
    const d = await deploy({ from, target, prefix: opts.prefix, nginx: opts.nginx, reloadCmd: opts.reloadCmd, log: (l) => log(`deploy: ${l}`) });
    log(`deployed ${d.release}`);
  } catch (e) {
    if (e instanceof DeployError) throw new Error(formatFailure('deploy', e));
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The afterIssue hook of `tls issue` / `tls renew`: make whatever serves the config load the
 * new certificate files, or throw saying why not (see the header of this file).
 */
export function reloadServingGateway(
  opts: GatewayTlsOptions,
  action: 'issue' | 'renew',
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): () => Promise<boolean> {
  return async () => {
    if (opts.reload === false) {
      log('--no-reload: the gateway was not reloaded; it serves the new certificate after its next reload (or the next `tls renew`)');
      return false;
    }
    const target = path.resolve(opts.target ?? DEFAULT_TARGET);
    const L = layout(target, opts.prefix);
    const live = await linkedRelease(L.current);
    const checked: string[] = [];

    // 1. a deployment
    if (live) {
      const releaseDir = path.join(L.releasesDir, live);
      const conf = path.join(L.current, 'nginx.conf');
      if (action === 'issue' && servesPendingCertificate(releaseDir)) {
        await deployRebuilt(opts, target, log);
        return true;
      }
      const loc = await findNginx({ nginx: opts.nginx });
      const rt = buildRuntime(path.dirname(conf));
      const pidFile = path.resolve(L.prefix, rt.pid ?? DEFAULT_PID_FILE);
      if (opts.reloadCmd) {
        await nginxTestOrThrow(loc, L.prefix, conf, `release ${live}`);
        await runReloadCmd(opts.reloadCmd, log);
        log(`reloaded the deployment at ${target} (release ${live})`);
        return true;
      }
      if ((await runningMaster(pidFile)) !== null) {
        await nginxTestOrThrow(loc, L.prefix, conf, `release ${live}`);
        await reloadNginx(L.prefix, { pidFile, errorLog: rt.errorLogs[0] });
        log(`reloaded the deployment at ${target} (release ${live}, nginx prefix ${L.prefix})`);
        return true;
      }
      checked.push(`deployment ${target} (release ${live}): no nginx running (pid file ${pidFile})`);
    } else {
      checked.push(`no deployment at ${target}`);
    }

    // 2. an explicit reload command
    if (opts.reloadCmd) {
      await runReloadCmd(opts.reloadCmd, log);
      return true;
    }

    // 3. `gatewayctl up`
    const upPrefix = path.resolve(opts.prefix ?? DEFAULT_UP_PREFIX);
    if (!live || upPrefix !== L.prefix) {
      const pid = await runningMaster(path.join(upPrefix, DEFAULT_PID_FILE));
      if (pid !== null) {
        // what `up` runs (its record); another nginx on this prefix is only signalled
        const rec = readUpRecord(upPrefix);
        const conf = rec && rec.pid === pid && existsSync(rec.conf) ? rec.conf : null;
        const loc = await findNginx({ nginx: opts.nginx });
        if (conf) {
          if (action === 'issue' && servesPendingCertificate(path.dirname(conf))) {
            await rebuildInPlace(rec!.config, path.dirname(conf), opts.nginx, log);
          }
          await preparePrefix(upPrefix, loc.modulesDir);
          await nginxTestOrThrow(loc, upPrefix, conf, conf);
        }
        await reloadNginx(upPrefix, { errorLog: conf ? buildRuntime(path.dirname(conf)).errorLogs[0] : undefined });
        log(`reloaded the gateway under ${upPrefix}${conf ? ` (${conf})` : ''}`);
        return true;
      }
      checked.push(`no nginx running under ${upPrefix} (gatewayctl up)`);
    }

    throw new Error(
      `no running gateway found to reload: ${checked.join('; ')}. ` +
        'Point --target (and --prefix) at the deployment, or --prefix at the nginx prefix of `gatewayctl up`, ' +
        "or pass --reload-cmd (e.g. 'systemctl reload nginx'); --no-reload only stores the certificate.",
    );
  };
}

/** `up` serves <dir>/nginx.conf, built from `config`: rewrite that build with the certificate in place. */
async function rebuildInPlace(config: string, dir: string, nginx: string | undefined, log: (l: string) => void): Promise<void> {
  if (!existsSync(config)) throw new Error(`${dir} was built before the certificate existed and ${config} is gone`);
  const r = compile(config, { availableModules: await detectModules({ nginx }) });
  if (!r.ok || !r.files) throw new Error(`rebuild of ${config} failed:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  writeBuild(dir, outputFiles(r));
  log(`rebuilt ${dir} from ${config} (the listener waiting for the certificate is now served)`);
}
