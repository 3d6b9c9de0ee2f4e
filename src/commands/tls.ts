// `gatewayctl tls <selfsigned|issue|renew|status>`: development certificates, ACME
// issuance/renewal (HTTP-01 through the gateway's own nginx) and certificate status.
import path from 'node:path';
import {
  AcmeError,
  LETSENCRYPT_PRODUCTION,
  LETSENCRYPT_STAGING,
  certificateStatus,
  certsDirFrom,
  createSelfSigned,
  issue,
  listenerYaml,
  renew,
  webrootFrom,
  type IssueHooks,
} from '../tls/index.ts';

export type TlsAction = 'selfsigned' | 'issue' | 'renew' | 'status';

export interface TlsOptions {
  domain?: string[] | string;
  out?: string; // selfsigned: output directory (default ssl/)
  keyType?: 'ec' | 'rsa' | string;
  days?: number | string; // selfsigned: validity; renew: window
  email?: string;
  staging?: boolean;
  directory?: string;
  webroot?: string;
  certsDir?: string;
  force?: boolean;
  json?: boolean; // status: machine-readable output
}

export interface TlsIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: TlsIo = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
};

export const help = `Certificates for TLS listeners.

  gatewayctl tls selfsigned --domain D [--domain D ...] [--out ssl/] [--key-type ec|rsa] [--days 365]
      Development certificate (EC P-256 by default) with every --domain as subject
      alternative name; prints the gateway.yaml lines that use it.

  gatewayctl tls issue --domain D [--domain D ...] --email E [--staging] [--directory URL]
                       [--key-type ec|rsa] [--webroot DIR] [--certs-dir DIR]
      Obtains a certificate via ACME HTTP-01 (Let's Encrypt unless --directory). The CA
      fetches http://D/.well-known/acme-challenge/<token> on port 80, which the gateway's
      nginx serves from the webroot (default .gatewayctl/acme, the same directory as
      global.acme_webroot in gateway.yaml). Writes
      <certs-dir>/<D>/fullchain.pem, privkey.pem (0600) and meta.json (default certs dir
      ssl/managed), then reloads the gateway that serves the config.

  gatewayctl tls renew [--days 30] [--force] [--certs-dir DIR]
      Renews every managed certificate expiring within --days (all with --force) and
      reloads once. Exits 0 when nothing is due. See scripts/gatewayctl-renew.timer.

  Reload after issue/renew: the deployment (--target, default .gatewayctl/deploy; nginx -t,
  then SIGHUP or --reload-cmd), else --reload-cmd, else the nginx of \`gatewayctl up\`
  (--prefix, default .gatewayctl/run). Nothing to reload, or a failed reload: exit 1, the
  certificate stays stored and the next \`tls renew\` retries. --no-reload: store only.

  gatewayctl tls status [--certs-dir DIR] [--json]
      Managed certificates: names, issuer, days to expiry, whether the key matches.

Examples:
  gatewayctl tls selfsigned --domain localhost --domain 127.0.0.1
  gatewayctl tls issue --domain api.example.com --email ops@example.com --staging
  gatewayctl tls issue --domain example.com --domain www.example.com --email ops@example.com
  gatewayctl tls renew --days 30
  gatewayctl tls status

Environment: GATEWAYCTL_CERTS_DIR, GATEWAYCTL_ACME_WEBROOT (defaults for the flags),
GATEWAYCTL_ACME_CA (PEM file trusted for a private ACME server's HTTPS, e.g. pebble).
Then reference the certificate in gateway.yaml:
  tls: { cert: ssl/managed/api.example.com/fullchain.pem, key: ssl/managed/api.example.com/privkey.pem }
`;

function domainsOf(opts: TlsOptions): string[] {
  const d = opts.domain;
  if (d === undefined) return [];
  return (Array.isArray(d) ? d : [d]).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
}

function keyTypeOf(v: string | undefined): 'ec' | 'rsa' {
  if (v === undefined || v === 'ec' || v === 'ecdsa') return 'ec';
  if (v === 'rsa') return 'rsa';
  throw new Error(`--key-type must be ec or rsa, not ${JSON.stringify(v)}`);
}

function intOf(v: number | string | undefined, def: number, flag: string): number {
  if (v === undefined) return def;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a non-negative integer`);
  return n;
}

function rel(p: string): string {
  const r = path.relative(process.cwd(), p);
  return r && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
}

/**
 * Runs one tls action; returns the process exit code. hooks.afterIssue is called after a
 * successful issue and once after renewals (the CLI passes "build + reload").
 */
export async function run(action: TlsAction, opts: TlsOptions = {}, hooks: IssueHooks = {}, io: TlsIo = defaultIo): Promise<number> {
  try {
    switch (action) {
      case 'selfsigned':
        return await selfsigned(opts, io);
      case 'issue':
        return await issueCmd(opts, hooks, io);
      case 'renew':
        return await renewCmd(opts, hooks, io);
      case 'status':
        return await statusCmd(opts, io);
      default:
        io.err(`tls: unknown action ${JSON.stringify(action)} (selfsigned, issue, renew, status)`);
        return 2;
    }
  } catch (e) {
    if (e instanceof AcmeError && e.stage !== 'reload' && e.stage !== 'directory')
      io.err(`tls ${action}: ACME ${e.stage} failed: ${e.message}`);
    else io.err(`tls ${action}: ${(e as Error).message}`);
    return 1;
  }
}

async function selfsigned(opts: TlsOptions, io: TlsIo): Promise<number> {
  const domains = domainsOf(opts);
  if (domains.length === 0) {
    io.err('tls selfsigned: at least one --domain is required');
    return 2;
  }
  const r = await createSelfSigned({
    domains,
    outDir: opts.out ?? 'ssl',
    keyType: keyTypeOf(opts.keyType),
    days: intOf(opts.days, 365, '--days'),
  });
  io.err(`wrote ${rel(r.cert)} and ${rel(r.key)} (self-signed, ${r.info.names.join(', ')}, expires ${r.info.notAfter.toISOString()})`);
  io.out('# gateway.yaml');
  io.out(listenerYaml(rel(r.cert), rel(r.key), domains));
  return 0;
}

async function issueCmd(opts: TlsOptions, hooks: IssueHooks, io: TlsIo): Promise<number> {
  const domains = domainsOf(opts);
  if (domains.length === 0) {
    io.err('tls issue: at least one --domain is required');
    return 2;
  }
  if (!opts.email) {
    io.err('tls issue: --email is required (the CA sends expiry notices there)');
    return 2;
  }
  const directory = opts.directory ?? (opts.staging ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION);
  const certsDir = certsDirFrom(opts.certsDir);
  const r = await issue(
    {
      domains,
      email: opts.email,
      directory,
      keyType: keyTypeOf(opts.keyType),
      webroot: webrootFrom(opts.webroot),
      certsDir,
      log: io.err,
    },
    hooks,
  );
  const dir = path.join(certsDir, r.primary);
  io.out(`issued ${r.meta.domains.join(', ')}: serial ${r.meta.serial}, expires ${r.meta.notAfter}`);
  io.out(`  tls: { cert: ${rel(path.join(dir, 'fullchain.pem'))}, key: ${rel(path.join(dir, 'privkey.pem'))} }`);
  if (!hooks.afterIssue) io.err('note: the running gateway was not reloaded; rebuild and reload it to serve the new certificate');
  return 0;
}

async function renewCmd(opts: TlsOptions, hooks: IssueHooks, io: TlsIo): Promise<number> {
  const certsDir = certsDirFrom(opts.certsDir);
  const r = await renew({ certsDir, days: intOf(opts.days, 30, '--days'), force: !!opts.force, log: io.err }, hooks);
  for (const p of r.renewed) io.out(`renewed ${p}`);
  if (r.renewed.length > 0 && !hooks.afterIssue)
    io.err('note: the running gateway was not reloaded; reload it to serve the renewed certificates');
  for (const s of r.skipped) io.out(`not due ${s.primary} (${s.daysLeft} days left)`);
  for (const f of r.failed) io.err(`tls renew: ${f.primary}: ${f.reason}`);
  if (r.renewed.length + r.skipped.length + r.failed.length === 0) io.out(`no managed certificates in ${rel(certsDir)}`);
  else if (r.renewed.length === 0 && r.failed.length === 0 && !r.reloadError) io.out('nothing due');
  if (r.reloadError) io.err(`tls renew: ${r.reloadError}`);
  return r.failed.length > 0 || r.reloadError ? 1 : 0;
}

async function statusCmd(opts: TlsOptions, io: TlsIo): Promise<number> {
  const certsDir = certsDirFrom(opts.certsDir);
  const list = await certificateStatus(certsDir);
  if (opts.json) {
    io.out(JSON.stringify(list, null, 2));
    return 0;
  }
  if (list.length === 0) {
    io.out(`no managed certificates in ${rel(certsDir)}`);
    return 0;
  }
  for (const c of list) {
    const days = c.daysLeft === null ? '?' : String(c.daysLeft);
    io.out(`${c.primary}`);
    io.out(`  names:   ${c.names.join(', ')}`);
    io.out(`  issuer:  ${c.issuer ?? '?'}`);
    io.out(`  expires: ${c.notAfter ?? '?'} (${days} days)`);
    io.out(`  key:     ${c.keyMatch ? 'matches certificate' : 'DOES NOT MATCH certificate'}`);
    if (c.problem) io.out(`  problem: ${c.problem}`);
  }
  return 0;
}
