// `gatewayctl doctor`: is this machine able to build and run gateways? Checks the nginx
// binary (and how it was found), its version, the njs and brotli dynamic modules, the
// built-in modules generated configs use, and openssl. Every failed check names what is
// missing and the command that fixes it. Exit code 1 when something required is missing.

import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import {
  BROTLI_MODULE,
  NJS_MODULE,
  NginxError,
  NginxNotFoundError,
  PROVISION_COMMAND,
  compareVersions,
  findNginx,
  nginxInfo,
  projectRoot,
  runtimeDir,
  type NginxInfo,
  type NginxLocation,
} from '../runtime/nginx/index.ts';
import { existsSync, readFileSync } from 'node:fs';
import { certificateWarnings } from '../tls/status.ts';

export const describe = 'Check nginx, njs, brotli, built-in modules and openssl; say what is missing and how to fix it';

export const help = `
Examples:
  $ gatewayctl doctor                      # check the nginx gatewayctl would use
  $ gatewayctl doctor --nginx /usr/sbin/nginx
  $ GATEWAYCTL_NGINX=/opt/nginx/sbin/nginx gatewayctl doctor
  $ gatewayctl doctor --json | jq '.checks[] | select(.status != "ok")'

nginx is looked up in this order: --nginx, $GATEWAYCTL_NGINX, the project runtime
(.runtime/bin/nginx, created by \`${PROVISION_COMMAND}\`), then nginx on PATH.
Exit status: 0 when everything required is present (warnings allowed), 1 otherwise.
`;

export const MIN_NGINX = '1.24.0';
export const MIN_NJS = '0.8.0';
/** Built-in modules the generated configuration relies on. */
export const REQUIRED_BUILTINS = ['http_ssl', 'http_v2', 'http_realip', 'http_stub_status'] as const;

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  id: 'nginx' | 'version' | 'njs' | 'brotli' | 'builtins' | 'openssl' | 'certs' | 'build';
  status: CheckStatus;
  /** One line: what was found. */
  summary: string;
  /** What is missing and how to fix it (warn/fail only). */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  nginx: NginxLocation | null;
  nginxVersion: string | null;
  njsVersion: string | null;
  checks: DoctorCheck[];
}

const SOURCE_LABEL: Record<NginxLocation['source'], string> = {
  flag: 'from --nginx',
  env: 'from $GATEWAYCTL_NGINX',
  runtime: 'project runtime .runtime/',
  path: 'found on PATH',
};

/** Gather the report without printing (used by run() and tests). */
export async function diagnose(opts: { nginx?: string } = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  let loc: NginxLocation | null = null;
  let info: NginxInfo | null = null;

  try {
    loc = await findNginx({ nginx: opts.nginx });
    checks.push({ id: 'nginx', status: 'ok', summary: `${loc.bin} (${SOURCE_LABEL[loc.source]})` });
  } catch (err) {
    const e = err as NginxError;
    const tried = err instanceof NginxNotFoundError ? err.tried.map((t) => `${t.candidate}: ${t.problem}`).join('; ') : firstLine(e.message);
    checks.push({ id: 'nginx', status: 'fail', summary: `nginx not found (${tried})`, fix: e.fix ?? e.message });
  }

  if (loc) {
    try {
      info = await nginxInfo(loc);
    } catch (err) {
      const e = err as NginxError;
      checks.push({ id: 'version', status: 'fail', summary: `could not run ${loc.bin}: ${firstLine(e.message)}`, fix: e.fix ?? undefined });
    }
  }

  if (info) {
    const old = compareVersions(info.version, MIN_NGINX) < 0;
    checks.push({
      id: 'version',
      status: old ? 'fail' : 'ok',
      summary: `nginx ${info.version} (>= ${short(MIN_NGINX)} required)`,
      fix: old ? `nginx ${info.version} lacks js_shared_dict_zone / js_periodic support; ${provisionFix()}` : undefined,
    });
    checks.push(njsCheck(info, loc!));
    checks.push(brotliCheck(info));
    const missing = REQUIRED_BUILTINS.filter((m) => !info!.builtinModules.includes(m));
    checks.push({
      id: 'builtins',
      status: missing.length ? 'fail' : 'ok',
      summary: missing.length
        ? `missing built-in modules: ${missing.join(', ')} (have ${REQUIRED_BUILTINS.filter((m) => !missing.includes(m)).join(', ') || 'none'})`
        : `${REQUIRED_BUILTINS.join(', ')}${info.builtinModules.includes('compat') ? ' (+ compat: dynamic modules supported)' : ''}`,
      fix: missing.length ? `this nginx was built without ${missing.map((m) => `--with-${m}_module`).join(' ')}; ${provisionFix()}` : undefined,
    });
  }
  // Without a runnable nginx the version/module checks cannot run; the failed check above
  // already says what to do.

  checks.push(await opensslCheck());

  return {
    ok: checks.every((c) => c.status !== 'fail'),
    nginx: loc,
    nginxVersion: info?.version ?? null,
    njsVersion: info?.njs.version ?? null,
    checks,
  };
}

function njsCheck(info: NginxInfo, loc: NginxLocation): DoctorCheck {
  const njs = info.njs;
  if (!njs.module) {
    const where = info.modulesDir ?? 'no modules directory found';
    const fix =
      loc.source === 'runtime'
        ? `re-provision the runtime: ${PROVISION_COMMAND} --force`
        : `install the njs module for this nginx (Debian: apt-get install libnginx-mod-http-js, needs njs >= ${short(MIN_NJS)}), or ${provisionFix()}`;
    return { id: 'njs', status: 'fail', summary: `${NJS_MODULE} missing (${where})`, fix };
  }
  if (!njs.module.loads) {
    return {
      id: 'njs',
      status: 'fail',
      summary: `${njs.module.file} does not load into nginx ${info.version}: ${njs.module.loadError}`,
      fix: `use an njs module built for nginx ${info.version}, or ${provisionFix()}`,
    };
  }
  if (!njs.version) {
    return { id: 'njs', status: 'fail', summary: `njs loads but its version could not be read: ${njs.probeError ?? 'unknown'}`, fix: provisionFix() };
  }
  const old = compareVersions(njs.version, MIN_NJS) < 0;
  const how = njs.versionSource === 'probe' ? 'answered by a running nginx' : `read from the module file; live probe failed: ${firstLine(njs.probeError ?? '')}`;
  return {
    id: 'njs',
    status: old ? 'fail' : 'ok',
    summary: `njs ${njs.version} (>= ${short(MIN_NJS)} required; ${how})`,
    fix: old ? `njs ${njs.version} lacks js_shared_dict_zone; ${provisionFix()}` : undefined,
  };
}

function brotliCheck(info: NginxInfo): DoctorCheck {
  if (info.brotli?.loads) return { id: 'brotli', status: 'ok', summary: `${BROTLI_MODULE} present` };
  const why = info.brotli ? `present but does not load: ${info.brotli.loadError}` : `${BROTLI_MODULE} not found${info.modulesDir ? ` in ${info.modulesDir}` : ''}`;
  return {
    id: 'brotli',
    status: 'warn',
    summary: `brotli ${why}; builds degrade to gzip only`,
    fix: `optional: install libnginx-mod-http-brotli-filter for this nginx, or ${provisionFix()}`,
  };
}

async function opensslCheck(): Promise<DoctorCheck> {
  const candidates: string[] = [];
  const rt = runtimeDir();
  if (rt) candidates.push(path.join(rt, 'bin', 'openssl'));
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) candidates.push(path.join(dir, 'openssl'));
  for (const bin of candidates) {
    if (!(await executable(bin))) continue;
    try {
      const r = await execa(bin, ['version'], { reject: false, timeout: 10_000 });
      if (r.exitCode === 0) return { id: 'openssl', status: 'ok', summary: `${r.stdout.trim()} (${bin})` };
    } catch {
      // try the next candidate
    }
  }
  return {
    id: 'openssl',
    status: 'warn',
    summary: 'openssl not found (needed for `tls` self-signed certificates and key inspection)',
    fix: `${provisionFix()} (it also provides .runtime/bin/openssl), or apt-get install openssl`,
  };
}

async function executable(p: string): Promise<boolean> {
  try {
    if (!(await stat(p)).isFile()) return false;
    await access(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function provisionFix(): string {
  const root = projectRoot();
  return `run \`${PROVISION_COMMAND}\`${root ? ` in ${root}` : ''} to get nginx 1.26 + njs 0.8 under .runtime/`;
}

function short(v: string): string {
  return v.replace(/\.0$/, '');
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

/** Human-readable report. */
export function formatReport(report: DoctorReport): string {
  const lines = ['gatewayctl doctor'];
  for (const c of report.checks) {
    lines.push(`  [${MARK[c.status]}] ${c.id.padEnd(9)} ${c.summary}`);
    if (c.fix && c.status !== 'ok') lines.push(`${' '.repeat(19)}fix: ${c.fix}`);
  }
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(
    failed
      ? `\n${failed} required item${failed > 1 ? 's' : ''} missing: gatewayctl cannot run gateways on this machine yet.`
      : `\nReady${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}.`,
  );
  return lines.join('\n');
}

/**
 * Managed certificates (tls.acme certs_dir of the config, else ssl/managed): expiring within
 * 14 days, expired, unreadable or not matching their key are warnings.
 */
async function certificateCheck(config: string | undefined): Promise<DoctorCheck | null> {
  let certsDir = 'ssl/managed';
  const file = config ?? 'gateway.yaml';
  if (existsSync(file)) {
    const { compile } = await import('../build/compile.ts');
    certsDir = compile(file).model?.acme?.certsDir ?? certsDir;
  }
  if (!existsSync(certsDir)) return null;
  const warnings = await certificateWarnings(certsDir);
  return warnings.length
    ? { id: 'certs', status: 'warn', summary: warnings.map((w) => w.message).join('; '), fix: 'run `gatewayctl tls renew` (or `tls issue` for a new pair)' }
    : { id: 'certs', status: 'ok', summary: `managed certificates in ${certsDir} are valid for 14+ days` };
}

/**
 * Does this nginx run the build in `dist`? Its manifest says which nginx/njs versions and
 * modules the output needs (e.g. `http2 on` needs nginx 1.25.1, auth and routing need njs).
 */
export function buildCheck(report: DoctorReport, dist: string): DoctorCheck | null {
  const file = path.join(dist, 'manifest.json');
  if (!existsSync(file)) return null;
  let man: { requires?: { nginx: string; njs: string | null }; modules?: { njs: boolean; brotli: boolean } };
  try {
    man = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { id: 'build', status: 'fail', summary: `${file}: ${(e as Error).message}`, fix: 'rebuild with `gatewayctl build`' };
  }
  const req = man.requires ?? { nginx: MIN_NGINX, njs: man.modules?.njs ? MIN_NJS : null };
  const problems: string[] = [];
  if (report.nginxVersion && compareVersions(report.nginxVersion, req.nginx) < 0) problems.push(`needs nginx >= ${req.nginx}, target has ${report.nginxVersion}`);
  if (req.njs) {
    if (!report.njsVersion) problems.push(`needs njs >= ${req.njs}, target has none`);
    else if (compareVersions(report.njsVersion, req.njs) < 0) problems.push(`needs njs >= ${req.njs}, target has ${report.njsVersion}`);
  }
  if (man.modules?.brotli && report.checks.some((c) => c.id === 'brotli' && c.status !== 'ok')) problems.push('uses brotli, which the target lacks');
  return problems.length
    ? { id: 'build', status: 'fail', summary: `${dist}/: ${problems.join('; ')}`, fix: 'upgrade the target nginx/njs, or rebuild for it (`gatewayctl build --nginx BIN`)' }
    : { id: 'build', status: 'ok', summary: `${dist}/ runs here (needs nginx >= ${req.nginx}${req.njs ? `, njs >= ${req.njs}` : ''})` };
}

export async function run(opts: { nginx?: string; json?: boolean; config?: string; dist?: string } = {}): Promise<number> {
  const report = await diagnose({ nginx: opts.nginx });
  const certs = await certificateCheck(opts.config);
  if (certs) report.checks.push(certs);
  const build = buildCheck(report, opts.dist ?? 'dist');
  if (build) report.checks.push(build);
  report.ok = report.checks.every((c) => c.status !== 'fail');
  if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(formatReport(report) + '\n');
  return report.ok ? 0 : 1;
}
